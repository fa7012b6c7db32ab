// `npx agentgate usage [--days N] [--by template|workspace] [--json]` (SPEC §10): the daily rollup
// as a report for people: a table, or JSON with --json.
import path from 'node:path';
import { DATABASE_OPTIONS } from '@agentgate/gateway/config';
import { resolveDatabase } from '@agentgate/gateway/ops/embedded-postgres';
import { type OptionTable, parse } from '@agentgate/gateway/options';
import { connect } from '@agentgate/gateway/store/db';
import { checkDatabase } from '@agentgate/gateway/store/db-check';
import { requireCurrentSchema } from '@agentgate/gateway/store/migrate';
import { type UsageGrouping, type UsageReport, usageReport } from '@agentgate/gateway/store/usage';

export const USAGE_OPTIONS = {
  ...DATABASE_OPTIONS,
  days: { flag: '--days', kind: 'int', min: 1, max: 100_000, default: '30', help: 'the last N ended UTC days' },
  by: {
    flag: '--by',
    kind: 'choice',
    choices: ['template', 'workspace'],
    arg: 'template|workspace',
    default: 'template',
    help: 'one row per template or per workspace',
  },
  json: { flag: '--json', kind: 'switch', default: 'off', help: 'print JSON instead of a table' },
} as const satisfies OptionTable;

/** `agentgate usage ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parse(USAGE_OPTIONS, argv, env);
  const by = args.by as UsageGrouping;
  const db = await resolveDatabase({ databaseUrl: args.databaseUrl, dataDir: path.join(args.dataDir, 'pgdata') });
  let sql: ReturnType<typeof connect> | undefined;
  try {
    await checkDatabase(db.url);
    sql = connect(db.url, { max: 1, applicationName: 'agentgate-usage' });
    await requireCurrentSchema(sql);
    const report = await usageReport(sql, args.days, by);
    process.stdout.write(
      args.json ? `${JSON.stringify({ days: args.days, by, ...report })}\n` : formatUsage(report, by),
    );
    return 0;
  } finally {
    await sql?.end({ timeout: 5 });
    await db.stop();
  }
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${x.toFixed(1)} ${units[i]}`;
}

function formatUsage(r: UsageReport, by: UsageGrouping): string {
  const head = `usage by ${by}, ${r.from} to ${r.to} (UTC days, from the daily rollup)`;
  if (r.rows.length === 0) return `${head}\nno usage recorded\n`;
  const header = [
    by === 'template' ? 'TEMPLATE' : 'WORKSPACE',
    'WORKSPACES',
    'REPORTS',
    'BYTES IN',
    'BYTES OUT',
    'DAYS WITH USAGE',
  ];
  const cells = r.rows.map((u) => [
    u.name || u.id,
    String(u.workspaces),
    String(u.reports),
    bytes(u.rxBytes),
    bytes(u.txBytes),
    String(u.daysWithUsage),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[head, '', line(header), ...cells.map(line)].join('\n')}\n`;
}
