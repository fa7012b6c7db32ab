// `npx agentgate maintain` (SPEC §1, §10): one maintenance pass by hand or from cron, on DATABASE_URL
// or the embedded database, with the retention options of `serve` (flags or the same env vars).
// When a gateway's pass is running, it waits for that pass to end, then runs its own. Prints one
// JSON line: {"partitionsCreated":[...],"daysRolledUp":[...],"partitionsDropped":[...],"rollupRowsDeleted":N}.
import { hostname } from 'node:os';
import path from 'node:path';
import { DATABASE_OPTIONS, RETENTION_OPTIONS } from '@agentgate/gateway/config';
import { resolveDatabase } from '@agentgate/gateway/ops/embedded-postgres';
import { type OptionTable, parse } from '@agentgate/gateway/options';
import { connect } from '@agentgate/gateway/store/db';
import { checkDatabase } from '@agentgate/gateway/store/db-check';
import { runMaintenancePass } from '@agentgate/gateway/store/maintenance-pass';
import { requireCurrentSchema } from '@agentgate/gateway/store/migrate';

export const MAINTAIN_OPTIONS = { ...DATABASE_OPTIONS, ...RETENTION_OPTIONS } as const satisfies OptionTable;

/** `agentgate maintain ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parse(MAINTAIN_OPTIONS, argv, env);
  const db = await resolveDatabase({ databaseUrl: args.databaseUrl, dataDir: path.join(args.dataDir, 'pgdata') });
  let sql: ReturnType<typeof connect> | undefined;
  try {
    await checkDatabase(db.url);
    // No statement_timeout: the rollup of a big day takes seconds.
    sql = connect(db.url, { max: 1, applicationName: 'agentgate-maintain', prepare: false });
    await requireCurrentSchema(sql);
    const result = await runMaintenancePass(sql, {
      statsRetentionMs: args.statsRetentionMs,
      rollupRetentionMs: args.rollupRetentionMs,
      runner: `${hostname()}:${process.pid} maintain`,
      wait: true,
    });
    const { partitionsCreated, daysRolledUp, partitionsDropped, rollupRowsDeleted } = result!;
    console.log(JSON.stringify({ partitionsCreated, daysRolledUp, partitionsDropped, rollupRowsDeleted }));
    return 0;
  } finally {
    await sql?.end({ timeout: 5 });
    await db.stop();
  }
}
