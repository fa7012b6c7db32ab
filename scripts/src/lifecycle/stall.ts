// SPEC §10: does a maintenance pass stall the frames? A gateway under a steady load of UpdateStats
// frames (interval mode: every frame is a stats insert), measured twice over the same window:
// without a pass, then with a pass that rolls up a day of N rows and drops the partition of another
// day of N rows. Two views: the load generator's ack latency, and PostgreSQL's own account of every
// lock wait over 10 ms (log_lock_waits with deadlock_timeout = 10ms: "acquired … after X ms").
import { hostname } from 'node:os';
import { connect, type Sql } from '@agentgate/gateway/store/db';
import { addDays, partitionName, rollUpDay } from '@agentgate/gateway/store/maintenance';
import { type PassResult, runMaintenancePass } from '@agentgate/gateway/store/maintenance-pass';
import type { LabDatabase } from '../lab/database.js';
import { startGateway } from '../lab/process.js';
import type { LatencyMs } from '../loadtest/histogram.js';
import { runLoad } from '../loadtest/run-load.js';
import { seed } from '../seed.js';
import { fillStats } from './tables.js';

const DAY_MS = 86_400_000;
const ACQUIRED_RE = /process \d+ acquired (\w+) on (relation \d+)[^\n]* after ([\d.]+) ms/;
const TIMED_OUT_RE = /canceling statement due to lock timeout/;

/** PostgreSQL's log lines about lock waits, kept with the time they arrived. */
export class LockLog {
  private readonly lines: { at: number; line: string }[] = [];

  push(line: string): void {
    if (ACQUIRED_RE.test(line) || TIMED_OUT_RE.test(line)) this.lines.push({ at: performance.now(), line });
  }

  /** Waits (over 10 ms) that ended between `from` and `to`, by lock mode; and the statements cancelled by lock_timeout. */
  between(from: number, to: number): LockWaits {
    const out: LockWaits = { byMode: {}, lockTimeouts: 0 };
    for (const { at, line } of this.lines) {
      if (at < from || at > to) continue;
      if (TIMED_OUT_RE.test(line)) {
        out.lockTimeouts++;
        continue;
      }
      const m = ACQUIRED_RE.exec(line)!;
      const w = out.byMode[m[1]!] ?? { count: 0, maxMs: 0 };
      out.byMode[m[1]!] = w;
      w.count++;
      w.maxMs = Math.max(w.maxMs, Number(m[3]));
    }
    return out;
  }
}

export interface LockWaits {
  byMode: Record<string, { count: number; maxMs: number }>;
  lockTimeouts: number;
}

export interface StallRun {
  label: string;
  framesPerSec: number;
  acked: number;
  errors: Record<string, number>;
  latencyMs: LatencyMs;
  lockWaits: LockWaits;
  /** The p99 ack latency of each second of the window, by when the second ended (ms into the window). */
  perSecondP99Ms: { atMs: number; p99: number }[];
  pass?: { startsAfterMs: number; seconds: number; result: PassResult };
}

interface StallOptions {
  db: LabDatabase;
  lockLog: LockLog;
  rows: number;
  agents: number;
  rate: number;
  durationMs: number;
  signal: AbortSignal;
  log: (m: string) => void;
}

export async function measureStall(o: StallOptions): Promise<StallRun[]> {
  const dbName = new URL(o.db.gatewayUrl).pathname.slice(1);
  // Read at session start: set before the gateway connects.
  await o.db.admin.unsafe(`alter database ${dbName} set log_lock_waits = on`);
  await o.db.admin.unsafe(`alter database ${dbName} set deadlock_timeout = '10ms'`);
  o.log(`stall: seeding ${o.agents} agents ...`);
  const tokens = (await seed(o.db.admin, { agents: o.agents, metadataKeys: 0, prebuildFraction: 0 })).map(
    (a) => a.token,
  );
  const server = await startGateway({
    databaseUrl: o.db.gatewayUrl,
    args: ['--maintenance-interval', '24h', '--shutdown-timeout', '5s'],
  });
  const sql = connect(o.db.gatewayUrl, { max: 1, prepare: false, applicationName: 'agentgate-lifecycle' });
  try {
    // The gateway's own pass at start must be over before the days to maintain exist.
    await waitFor(async () => {
      const [r] = await sql<{ n: number }[]>`
        select count(*)::int as n from agentgate_maintenance_runs where finished_at is not null`;
      return r!.n > 0;
    });
    const passDays = await prepareDays(sql, o);
    const runs: StallRun[] = [];
    for (const withPass of [false, true]) {
      if (o.signal.aborted) break;
      runs.push(await loadWindow(o, server.url, tokens, withPass ? passDays : undefined));
    }
    return runs;
  } finally {
    await sql.end({ timeout: 5 });
    await server.stop();
  }
}

/** A day past the retention (rolled up, to be dropped) and a recent day (to be rolled up), of `rows` rows each. */
async function prepareDays(sql: Sql, o: StallOptions): Promise<{ drop: string; rollup: string }> {
  const [t] = await sql<{ today: string }[]>`select ((now() at time zone 'UTC')::date)::text as today`;
  const days = { drop: addDays(t!.today, -5), rollup: addDays(t!.today, -2) };
  for (const day of [days.drop, days.rollup]) {
    await sql.unsafe(
      `create table if not exists ${partitionName(day)} partition of workspace_agent_stats for values from ('${day} 00:00:00+00') to ('${addDays(day, 1)} 00:00:00+00')`,
    );
    o.log(`stall: day ${day}, ${o.rows} rows ...`);
    const from = Date.parse(`${day}T00:00:00Z`);
    await fillStats(sql, { fromMs: from, toMs: from + DAY_MS - 1000, rows: o.rows, agents: o.agents, log: o.log });
    await sql`vacuum analyze ${sql(partitionName(day))}`;
  }
  await rollUpDay(sql, days.drop);
  return days;
}

async function loadWindow(
  o: StallOptions,
  url: string,
  tokens: string[],
  passDays: { drop: string; rollup: string } | undefined,
): Promise<StallRun> {
  const label = passDays ? `with a pass (drop ${passDays.drop}, roll up ${passDays.rollup})` : 'without a pass';
  o.log(`stall: ${o.rate} stats frames/s for ${o.durationMs / 1000} s, ${label} ...`);
  let windowStart = 0;
  let passRun: Promise<StallRun['pass']> | undefined;
  const perSecondP99Ms: StallRun['perSecondP99Ms'] = [];
  const report = await runLoad({
    url,
    tokens,
    mode: { kind: 'interval', statsIntervalMs: (tokens.length * 1000) / o.rate, metadataIntervalMs: 3_600_000 },
    durationMs: o.durationMs,
    warmupMs: 5000,
    cooldownMs: 1000,
    metadataKeys: 0,
    procs: 1,
    rampPerSec: 2000,
    signal: o.signal,
    progressEveryMs: 1000,
    onProgress: (p) => {
      if (p.phase === 'running')
        perSecondP99Ms.push({ atMs: Math.round(performance.now() - windowStart), p99: p.recentP99Ms });
    },
    onMeasureStart: () => {
      windowStart = performance.now();
      if (passDays) passRun = runPassLater(o, Math.min(5000, o.durationMs / 4), windowStart);
    },
  });
  const windowEnd = performance.now();
  const pass = await passRun;
  return {
    label,
    framesPerSec: report.framesPerSec,
    acked: report.acked,
    errors: report.errors,
    latencyMs: report.latencyMs,
    lockWaits: o.lockLog.between(windowStart, windowEnd),
    perSecondP99Ms,
    ...(pass ? { pass } : {}),
  };
}

/** The pass `agentgate maintain` would run, `delayMs` into the window, on a connection of its own. */
async function runPassLater(o: StallOptions, delayMs: number, windowStart: number): Promise<StallRun['pass']> {
  await new Promise((r) => setTimeout(r, delayMs));
  const sql = connect(o.db.gatewayUrl, { max: 1, prepare: false, applicationName: 'agentgate-maintain' });
  try {
    const at = performance.now();
    const result = await runMaintenancePass(sql, {
      statsRetentionMs: 2 * DAY_MS,
      rollupRetentionMs: 0,
      runner: `${hostname()}:${process.pid} lifecycle`,
      wait: true,
    });
    return { startsAfterMs: at - windowStart, seconds: (performance.now() - at) / 1000, result: result! };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function waitFor(done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the gateway did not finish its first maintenance pass within 60 s');
}
