// `npx agentgate lifecycle` (SPEC §10): the figures of the data lifecycle, on one embedded
// PostgreSQL started here: migration 5 converting an unpartitioned table of --rows rows, disk per
// million rows before and after, the rollup of a day of --day-rows rows, dropping that day's
// partition against DELETE of the same rows, and the stall of the frames (ack latency, and lock
// waits as PostgreSQL logs them) while a pass drops and rolls up such days under a steady load.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { type OptionTable, parse } from '@agentgate/gateway/options';
import { type LabDatabase, openDatabase } from './lab/database.js';
import { onInterrupt } from './lab/interrupt.js';
import { LockLog, measureStall, type StallRun } from './lifecycle/stall.js';
import {
  type ConversionResult,
  type DayResult,
  labDatabase,
  measureConversion,
  measureDay,
} from './lifecycle/tables.js';

const PHASES = ['conversion', 'day', 'stall'] as const;

export const LIFECYCLE_OPTIONS = {
  rows: {
    flag: '--rows',
    kind: 'int',
    min: 1000,
    default: '5000000',
    help: 'rows of the table that migration 5 converts',
  },
  days: { flag: '--days', kind: 'int', min: 1, default: '10', help: 'days those rows span (up to now)' },
  dayRows: {
    flag: '--day-rows',
    kind: 'int',
    min: 1000,
    default: '1000000',
    help: 'rows of a day to roll up and drop',
  },
  agents: { flag: '--agents', kind: 'int', min: 1, default: '2500', help: 'agents of the rows, and of the load' },
  rate: { flag: '--rate', kind: 'int', min: 1, default: '5000', help: 'UpdateStats frames/s of the load' },
  duration: { flag: '--duration', kind: 'duration', default: '30s', min: 5000, help: 'measured window of each load' },
  phases: {
    flag: '--phases',
    kind: 'list',
    choices: PHASES,
    default: PHASES.join(','),
    help: 'what to measure, in this order',
  },
  json: { flag: '--json', kind: 'out-file', help: 'write every figure here' },
} as const satisfies OptionTable;

const log = (m: string) => process.stderr.write(`lifecycle: ${m}\n`);
const mb = (b: number) => `${(b / 1_048_576).toFixed(1)} MiB`;

/** `agentgate lifecycle ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = parse(LIFECYCLE_OPTIONS, argv, env);
  const abort = new AbortController();
  const lockLog = new LockLog();
  let db: LabDatabase | undefined;
  const stopInterrupts = onInterrupt(abort, { log });
  const out: { conversion?: ConversionResult; day?: DayResult; stall?: StallRun[] } = {};
  try {
    log('starting PostgreSQL ...');
    db = await openDatabase({ app: 'agentgate-lifecycle', onLog: (line) => lockLog.push(line) });
    const admin = db.admin;
    for (const phase of o.phases) {
      if (abort.signal.aborted) break;
      if (phase === 'conversion') {
        const sql = await labDatabase(admin, db.gatewayUrl, 'lifecycle_conversion');
        const checkpoint = async () => void (await admin`checkpoint`);
        out.conversion = await measureConversion(sql, {
          rows: o.rows,
          days: o.days,
          agents: o.agents,
          log,
          checkpoint,
        });
        await sql.end({ timeout: 5 });
      } else if (phase === 'day') {
        const sql = await labDatabase(admin, db.gatewayUrl, 'lifecycle_day');
        out.day = await measureDay(sql, { rows: o.dayRows, agents: o.agents, log });
        await sql.end({ timeout: 5 });
      } else {
        out.stall = await measureStall({
          db,
          lockLog,
          rows: o.dayRows,
          agents: o.agents,
          rate: o.rate,
          durationMs: o.duration,
          signal: abort.signal,
          log,
        });
      }
    }
  } finally {
    stopInterrupts();
    await db?.close();
  }
  process.stdout.write(
    `${format(out)}\n${cpus().length} cores, Node ${process.version}, PostgreSQL ${db?.serverVersion}\n`,
  );
  if (o.json) writeFileSync(o.json, `${JSON.stringify(out, null, 2)}\n`);
  return abort.signal.aborted ? 130 : 0;
}

function format(out: { conversion?: ConversionResult; day?: DayResult; stall?: StallRun[] }): string {
  const lines: string[] = [];
  const c = out.conversion;
  if (c) {
    lines.push(
      `conversion of ${c.rows} rows (${c.days} days) by migration 5: ${c.seconds.toFixed(1)} s`,
      `disk per million rows, before: ${mb(c.before.bytesPerMillion)} (heap ${mb((c.before.heapBytes / c.rows) * 1e6)}, indexes ${mb((c.before.indexBytes / c.rows) * 1e6)})`,
      `disk per million rows, after:  ${mb(c.after.bytesPerMillion)} (heap ${mb((c.after.heapBytes / c.rows) * 1e6)}, indexes ${mb((c.after.indexBytes / c.rows) * 1e6)})`,
    );
  }
  const d = out.day;
  if (d) {
    lines.push(
      `rollup of a day of ${d.rows} rows: ${d.rollupSeconds.toFixed(2)} s`,
      `drop of that day: TRUNCATE ${d.drop.truncateMs.toFixed(1)} ms + DROP ${d.drop.dropMs.toFixed(1)} ms, WAL ${mb(d.drop.walBytes)}`,
      `DELETE of a day of ${d.rows} rows: ${(d.delete.deleteMs / 1000).toFixed(2)} s + VACUUM ${(d.delete.vacuumMs / 1000).toFixed(2)} s, WAL ${mb(d.delete.walBytes)}`,
    );
  }
  for (const r of out.stall ?? []) {
    const during = r.pass
      ? { from: r.pass.startsAfterMs, to: r.pass.startsAfterMs + r.pass.seconds * 1000 + 1000 }
      : undefined;
    const inPass = (s: { atMs: number }) => during !== undefined && s.atMs >= during.from && s.atMs <= during.to;
    const worst = (xs: { p99: number }[]) => (xs.length ? Math.max(...xs.map((x) => x.p99)).toFixed(1) : '-');
    const waits = Object.entries(r.lockWaits.byMode)
      .map(([mode, w]) => `${mode} ${w.count}x max ${w.maxMs.toFixed(1)} ms`)
      .join(', ');
    lines.push(
      `load ${r.label}: ${r.framesPerSec.toFixed(0)} frames/s acked, errors ${JSON.stringify(r.errors)}, ` +
        `ack ms p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} max ${r.latencyMs.max}; ` +
        `worst 1-s p99 ${worst(r.perSecondP99Ms.filter((x) => !inPass(x)))} ms` +
        (during ? ` (seconds of the pass: ${worst(r.perSecondP99Ms.filter(inPass))} ms)` : '') +
        `; lock waits > 10 ms: ${waits || 'none'}; lock timeouts ${r.lockWaits.lockTimeouts}` +
        (r.pass
          ? `; pass ${r.pass.seconds.toFixed(2)} s from ${(r.pass.startsAfterMs / 1000).toFixed(1)} s: ${JSON.stringify(r.pass.result)}`
          : ''),
    );
  }
  return lines.join('\n');
}
