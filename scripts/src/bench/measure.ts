// One bench run: a load against a server process, with the server's CPU and RSS (from /proc) and
// PostgreSQL's own counters taken around the same measured window.
import type { LatencyMs } from '../loadtest/histogram.js';
import type { LoadSeries } from '../report/series.js';
import { ProgressPrinter } from '../loadtest/report.js';
import { type LoadMode, type LoadReport, runLoad } from '../loadtest/run-load.js';
import type { LabDatabase } from '../lab/database.js';
import type { ServerProcess } from '../lab/process.js';
import { cpuMs, settledRss, treeCpu, treeCpuDelta } from '../lab/proc-stats.js';
import {
  type DbCounters,
  readDbCounters,
  resetStatements,
  type TopStatement,
  workspaceScans,
} from '../lab/statements.js';

export interface LoadShape {
  tokens: string[];
  durationMs: number;
  warmupMs: number;
  cooldownMs: number;
  metadataKeys: number;
  procs: number;
  rampPerSec: number;
}

export interface Measured {
  report: LoadReport;
  /** Server CPU (utime+stime) over the window, ms. */
  serverCpuMs: number;
  /** PostgreSQL CPU (postmaster and backends) over the window, ms. */
  pgCpuMs: number;
  db: DbCounters | undefined;
  /** Server RSS before the first connection and with every session open, KiB (when asked for). */
  rss?: { before: number; connected: number; sessions: number };
}

export async function measureLoad(opts: {
  label: string;
  server: ServerProcess;
  db: LabDatabase | undefined;
  mode: LoadMode;
  shape: LoadShape;
  /** RSS before any connection, to report RSS per session (measured once all are connected). */
  rssBefore?: number;
  signal: AbortSignal;
}): Promise<Measured> {
  const { server, db, shape } = opts;
  const pgPid = db?.pg?.pid;
  let cpu0 = 0;
  let cpu1 = 0;
  let pg0 = new Map<number, number>();
  let pg1 = new Map<number, number>();
  let scans0 = 0;
  let counters: DbCounters | undefined;
  let rss: Measured['rss'];
  const printer = new ProgressPrinter(process.stderr, opts.label);
  let report: LoadReport;
  try {
    report = await runLoad({
      url: server.url,
      tokens: shape.tokens,
      mode: opts.mode,
      durationMs: shape.durationMs,
      warmupMs: shape.warmupMs,
      cooldownMs: shape.cooldownMs,
      metadataKeys: shape.metadataKeys,
      procs: shape.procs,
      rampPerSec: shape.rampPerSec,
      signal: opts.signal,
      onProgress: (p) => printer.update(p),
      progressEveryMs: printer.intervalMs,
      onConnected: async (p) => {
        if (opts.rssBefore === undefined) return;
        rss = { before: opts.rssBefore, connected: await settledRss(server.pid), sessions: p.connected };
      },
      onMeasureStart: async () => {
        if (db) {
          await resetStatements(db.admin);
          scans0 = await workspaceScans(db.admin);
        }
        if (pgPid !== undefined) pg0 = treeCpu(pgPid);
        cpu0 = cpuMs(server.pid);
      },
      onMeasureEnd: async () => {
        cpu1 = cpuMs(server.pid);
        if (pgPid !== undefined) pg1 = treeCpu(pgPid);
        if (db) counters = await readDbCounters(db.admin, scans0);
      },
    });
  } finally {
    printer.done();
  }
  return {
    report,
    serverCpuMs: cpu1 - cpu0,
    pgCpuMs: treeCpuDelta(pg0, pg1),
    db: counters,
    ...(rss ? { rss } : {}),
  };
}

const round = (x: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export interface RunResult {
  name: string;
  framesPerSec: number;
  latencyMs: { p50: number; p99: number };
  workspaceReadsPerFrame: number;
  dbStatementsPerFrame: number;
  cpuMsPerKFrame: number;
  rssKiBPerSession: number;
  /** Extra detail (SPEC allows more fields). */
  load: string;
  sessions: number;
  sent: number;
  acked: number;
  errors: Record<string, number>;
  latencyMsFull: LatencyMs;
  pgCpuMsPerKFrame: number;
  /** seq_scan + idx_scan of `workspaces` per frame: counts rows read by batched statements too. */
  workspaceScansPerFrame: number;
  topStatements: TopStatement[];
  /** The saturation load, one point per second. */
  series: LoadSeries;
  /** The same metrics at a fixed offered rate (open loop), when that run was made. */
  fixedRate?: FixedRateResult;
  error?: string;
}

interface FixedRateResult {
  offeredPerSec: number;
  framesPerSec: number;
  latencyMs: LatencyMs;
  errors: Record<string, number>;
  workspaceReadsPerFrame: number;
  workspaceScansPerFrame: number;
  dbStatementsPerFrame: number;
  cpuMsPerKFrame: number;
  pgCpuMsPerKFrame: number;
  topStatements: TopStatement[];
  series: LoadSeries;
}

function perFrame(m: Measured) {
  const acked = Math.max(1, m.report.acked);
  return {
    workspaceReadsPerFrame: round((m.db?.workspaceStatements ?? 0) / acked, 4),
    workspaceScansPerFrame: round((m.db?.workspaceScans ?? 0) / acked, 4),
    dbStatementsPerFrame: round((m.db?.statements ?? 0) / acked, 4),
    cpuMsPerKFrame: round((m.serverCpuMs / acked) * 1000, 1),
    pgCpuMsPerKFrame: round((m.pgCpuMs / acked) * 1000, 1),
  };
}

export function toRunResult(name: string, sat: Measured, fixed: Measured | undefined, rate: number): RunResult {
  const r = sat.report;
  const pf = perFrame(sat);
  const rssPerSession =
    sat.rss && sat.rss.sessions > 0 ? round((sat.rss.connected - sat.rss.before) / sat.rss.sessions, 1) : 0;
  const out: RunResult = {
    name,
    framesPerSec: r.framesPerSec,
    latencyMs: { p50: r.latencyMs.p50, p99: r.latencyMs.p99 },
    workspaceReadsPerFrame: pf.workspaceReadsPerFrame,
    dbStatementsPerFrame: pf.dbStatementsPerFrame,
    cpuMsPerKFrame: pf.cpuMsPerKFrame,
    rssKiBPerSession: rssPerSession,
    load: r.mode,
    sessions: r.connected,
    sent: r.sent,
    acked: r.acked,
    errors: r.errors,
    latencyMsFull: r.latencyMs,
    pgCpuMsPerKFrame: pf.pgCpuMsPerKFrame,
    workspaceScansPerFrame: pf.workspaceScansPerFrame,
    topStatements: sat.db?.top ?? [],
    series: r.series,
  };
  if (fixed) {
    const f = perFrame(fixed);
    out.fixedRate = {
      offeredPerSec: rate,
      framesPerSec: fixed.report.framesPerSec,
      latencyMs: fixed.report.latencyMs,
      errors: fixed.report.errors,
      workspaceReadsPerFrame: f.workspaceReadsPerFrame,
      workspaceScansPerFrame: f.workspaceScansPerFrame,
      dbStatementsPerFrame: f.dbStatementsPerFrame,
      cpuMsPerKFrame: f.cpuMsPerKFrame,
      pgCpuMsPerKFrame: f.pgCpuMsPerKFrame,
      topStatements: fixed.db?.top ?? [],
      series: fixed.report.series,
    };
  }
  return out;
}
