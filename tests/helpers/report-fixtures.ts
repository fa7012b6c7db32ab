// Reports made up for the rendering tests (same shapes as the commands write): a loadtest report,
// a soak report of any length built by soak's own soakReport(), and a bench report; deterministic
// (a seeded generator), with realistic magnitudes so that sizes measured on them hold.
import type { LoadReport } from '../../scripts/src/loadtest/run-load.ts';
import type { LoadSeries } from '../../scripts/src/report/series.ts';
import type { Sample } from '../../scripts/src/soak/samples.ts';
import { type SoakConfig, soakReport, summarize } from '../../scripts/src/soak/summary.ts';

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ms = (x: number) => Math.round(x * 1000) / 1000;

/** `n` seconds of a load of about `rate` frames/s over `agents` sockets, with two error codes. */
export function syntheticSeries(n: number, rate: number, agents: number, seed = 1): LoadSeries {
  const r = random(seed);
  const t = Array.from({ length: n }, (_, i) => i);
  return {
    t,
    ackedPerSec: t.map(() => Math.round(rate * (0.95 + r() * 0.1))),
    p50Ms: t.map((i) => (i === 3 ? null : ms(5 + r() * 40))),
    p99Ms: t.map((i) => (i === 3 ? null : ms(60 + r() * 400))),
    errors: { '-32002': t.map(() => (r() < 0.05 ? Math.round(r() * 2000) : 0)), timeout: t.map(() => 0) },
    sessions: t.map(() => agents - (r() < 0.01 ? 1 : 0)),
  };
}

export function loadReport(series: LoadSeries, extra: Partial<LoadReport> = {}): LoadReport {
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const acked = sum(series.ackedPerSec);
  const errors = Object.fromEntries(Object.entries(series.errors).map(([k, v]) => [k, sum(v)]));
  return {
    agents: series.sessions[0] ?? 0,
    durationS: series.t.length,
    sent: acked + sum(Object.values(errors)),
    acked,
    ackedByMethod: { stats: Math.floor(acked / 2), metadata: Math.ceil(acked / 2) },
    allFrames: { acked: { stats: Math.floor(acked / 2), metadata: Math.ceil(acked / 2) }, unknown: 0 },
    errors,
    framesPerSec: Math.round((acked / Math.max(1, series.t.length)) * 10) / 10,
    latencyMs: { p50: 33.123, p95: 208.456, p99: 396.789, max: 919.5 },
    connected: series.sessions[0] ?? 0,
    reconnects: 0,
    disconnects: 0,
    skipped: { disconnected: 0, inflightCap: 0 },
    mode: 'interval(stats 1000ms, metadata 1000ms)',
    procs: 1,
    maxScheduleLagMs: 12.345,
    series,
    ...extra,
  };
}

/** The JSON report of a soak of `seconds` seconds (5000 agents), sampled every second. */
export function soakJson(seconds: number): unknown {
  const r = random(7);
  const o: SoakConfig = {
    agents: 5000,
    workers: 1,
    duration: seconds * 1000,
    statsInterval: 1000,
    metadataInterval: 1000,
    metadataKeys: 4,
    sampleEvery: 1000,
  };
  const series = syntheticSeries(seconds, 10_000, 5000);
  const samples: Sample[] = [];
  for (let t = -5; t <= seconds + 1; t++) {
    samples.push({
      t: Math.round((t + r() * 0.05) * 10) / 10,
      rssKiB: 260_000 + Math.round(r() * 60_000),
      lagP99Ms: ms(10 + r() * 100),
      lagMaxMs: ms(20 + r() * 200),
      sessions: 5000,
    });
  }
  const during = samples.filter((s) => s.t >= 0 && s.t <= seconds + 0.5);
  const report = loadReport(series);
  const run = {
    report,
    samples,
    during,
    connectS: 5.4,
    pgConnections: { 'agentgate-read': 10, 'agentgate-write': 5, 'agentgate-probe': 1, 'agentgate-listen': 1 },
    stored: { stats: report.allFrames.acked.stats, metadataUpdates: report.allFrames.acked.metadata * 4 },
  };
  return JSON.parse(JSON.stringify(soakReport(o, run, summarize(o, run))));
}

function run(name: string, seed: number, rate: number) {
  const series = syntheticSeries(5, 15_000 / seed, 200, seed);
  const fixed = syntheticSeries(5, rate, 200, seed + 10);
  const top = [
    {
      calls: 1200,
      meanMs: 1.234,
      maxMs: 45.6,
      query: 'insert into workspace_agent_stats (id, ...)\n  select * from unnest($1::uuid[])',
    },
    { calls: 12, meanMs: 0.5, maxMs: 0.9, query: 'select 1' },
  ];
  const l = { p50: 10.5, p95: 30.25, p99: 40.125, max: 80 };
  return {
    name,
    framesPerSec: 15_000 / seed,
    latencyMs: { p50: l.p50, p99: l.p99 },
    workspaceReadsPerFrame: 0.001 * seed,
    dbStatementsPerFrame: 0.003,
    cpuMsPerKFrame: 44.2,
    rssKiBPerSession: 20.9,
    load: 'inflight(1/agent)',
    sessions: 200,
    sent: 75_000,
    acked: 75_000,
    errors: {},
    latencyMsFull: l,
    pgCpuMsPerKFrame: 28.1,
    workspaceScansPerFrame: 0.21,
    topStatements: name === 'echo' ? [] : top,
    series,
    fixedRate: {
      offeredPerSec: rate,
      framesPerSec: rate,
      latencyMs: l,
      errors: {},
      workspaceReadsPerFrame: 0,
      workspaceScansPerFrame: 0,
      dbStatementsPerFrame: 0.01,
      cpuMsPerKFrame: 50,
      pgCpuMsPerKFrame: 30,
      topStatements: name === 'echo' ? [] : top,
      series: fixed,
    },
  };
}

export function benchJson(): unknown {
  return {
    runs: [run('echo', 1, 2000), run('cached', 2, 2000), run('uncached', 4, 2000)],
    machine: { cores: 2, node: 'v20.20.2', postgres: '17.10' },
    config: {
      agents: 200,
      durationS: 5,
      warmupS: 1,
      inflightPerAgent: 1,
      fixedRate: 2000,
      metadataKeys: 4,
      loadProcs: 1,
    },
  };
}
