// `npx agentgate migrate` (SPEC §2): applies the schema migrations to DATABASE_URL, or to the
// embedded database in <data-dir>/pgdata (the one a running `npm start` owns, or one started here).
import path from 'node:path';
import { DATABASE_OPTIONS } from '@agentgate/gateway/config';
import { resolveDatabase } from '@agentgate/gateway/embedded';
import { type OptionTable, parse } from '@agentgate/gateway/options';
import { connect } from '@agentgate/gateway/store/db';
import { checkDatabase, explainDatabaseError } from '@agentgate/gateway/store/db-check';
import { migrate } from '@agentgate/gateway/store/migrate';

export const MIGRATE_OPTIONS = { ...DATABASE_OPTIONS } as const satisfies OptionTable;

/** `agentgate migrate ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parse(MIGRATE_OPTIONS, argv, env);
  const db = await resolveDatabase({ databaseUrl: args.databaseUrl, dataDir: path.join(args.dataDir, 'pgdata') });
  let sql: ReturnType<typeof connect> | undefined;
  try {
    await checkDatabase(db.url);
    sql = connect(db.url, { max: 1, applicationName: 'agentgate-migrate' });
    const r = await migrate(sql).catch((err: unknown) => {
      throw explainDatabaseError(err, db.url) ?? err;
    });
    console.log(
      r.applied.length
        ? `applied ${r.applied.length} migration(s): ${r.applied.join(', ')}; schema is at version ${r.current}`
        : `schema is up to date at version ${r.current}`,
    );
    return 0;
  } finally {
    await sql?.end({ timeout: 5 });
    await db.stop();
  }
}
