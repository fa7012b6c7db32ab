// `npx agentgate soak`: a long steady load against a gateway started here (the hardening issue's
// soak: 5000 agents sending stats and metadata every second for 10 minutes). It starts its own
// embedded PostgreSQL and `agentgate serve` (default options), seeds the agents, runs the loadtest
// engine, samples the gateway's RSS (/proc) and event-loop delay (prom-client's
// `agentgate_nodejs_eventloop_lag_*`, reset at each scrape, so each sample is one window) every few
// seconds, and at the end compares acknowledged frames with what PostgreSQL holds: one stats row
// per acknowledged UpdateStats, and row updates of workspace_agent_metadata (K per frame).
import { writeFileSync } from 'node:fs';
import { type OptionTable, parse } from '@agentgate/gateway/options';
import type { Sql } from '@agentgate/gateway/store/db';
import { type BenchDatabase, startBenchDatabase } from './bench/bench-db.js';
import { childPids, rssKiB } from './bench/proc-stats.js';
import { type ServerProcess, startGatewayServer, onInterrupt } from './bench/server-process.js';
import { formatSummary, ProgressPrinter } from './loadtest/report.js';
import { type LoadReport, liveWorkerPids, runLoad } from './loadtest/run-load.js';
import { AGENTS_PER_PROC, LOADTEST_OPTIONS } from './loadtest.js';
import { seed } from './seed.js';

export const SOAK_OPTIONS = {
  agents: { flag: '--agents', kind: 'int', min: 1, default: '5000', help: 'agents, each with its own socket' },
  duration: { flag: '--duration', kind: 'duration', default: '10m', min: 1000, help: 'how long the load runs' },
  statsInterval: {
    flag: '--stats-interval',
    kind: 'duration',
    default: '1s',
    min: 1,
    help: 'UpdateStats period of each agent',
  },
  metadataInterval: {
    flag: '--metadata-interval',
    kind: 'duration',
    default: '1s',
    min: 1,
    help: 'BatchUpdateMetadata period of each agent',
  },
  metadataKeys: {
    flag: '--metadata-keys',
    kind: 'int',
    min: 1,
    default: '4',
    arg: 'K',
    help: 'metadata keys per agent (each metadata frame writes all K)',
  },
  sampleEvery: {
    flag: '--sample-every',
    kind: 'duration',
    default: '5s',
    min: 500,
    help: "how often the gateway's RSS and event-loop delay are sampled",
  },
  workers: {
    flag: '--workers',
    kind: 'int',
    min: 1,
    max: 16,
    default: '1',
    help: "gateway worker processes (serve --workers): for a fleet over one process's 20,000 open files",
  },
  procs: LOADTEST_OPTIONS.procs,
  ramp: { flag: '--ramp', kind: 'int', min: 1, default: '1000', help: 'new connections per second' },
  json: { flag: '--json', kind: 'out-file', help: 'write the results (and every sample) as JSON here' },
} as const satisfies OptionTable;

const log = (msg: string) => process.stderr.write(`soak: ${msg}\n`);

interface Sample {
  /** Seconds since the load started (negative while connecting). */
  t: number;
  /** The gateway's RSS: the process, or with workers the primary and every worker. */
  rssKiB: number;
  /** With workers: each worker's RSS, by PID. */
  workerRssKiB?: Record<number, number>;
  /** p99 / max of the event-loop delay over the window since the previous sample, ms (null: no answer). */
  lagP99Ms: number | null;
  lagMaxMs: number | null;
  sessions: number | null;
}

/** The gateway's own series from a /metrics text (no labels). */
function series(text: string, name: string): number | null {
  const m = new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

async function sample(server: ServerProcess, httpUrl: string, t: number, workers: number): Promise<Sample> {
  const workerPids = workers > 1 ? childPids(server.pid) : [];
  const workerRss = Object.fromEntries(workerPids.map((pid) => [pid, rssKiB(pid)]));
  const rss = rssKiB(server.pid) + Object.values(workerRss).reduce((a, b) => a + b, 0);
  let text = '';
  try {
    const r = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
    text = await r.text();
  } catch {
    /* a sample without metrics */
  }
  const ms = (s: number | null) => (s === null ? null : Math.round(s * 1e6) / 1e3);
  return {
    t: Math.round(t * 10) / 10,
    rssKiB: rss,
    ...(workers > 1 ? { workerRssKiB: workerRss } : {}),
    lagP99Ms: ms(series(text, 'agentgate_nodejs_eventloop_lag_p99_seconds')),
    lagMaxMs: ms(series(text, 'agentgate_nodejs_eventloop_lag_max_seconds')),
    sessions: series(text, 'agentgate_sessions'),
  };
}

/** Row updates of workspace_agent_metadata counted by PostgreSQL (n_tup_upd). */
async function metadataRowUpdates(admin: Sql): Promise<number> {
  await admin`select pg_stat_clear_snapshot()`;
  const [r] = await admin<{ n: string }[]>`
    select n_tup_upd::text as n from pg_stat_user_tables where relname = 'workspace_agent_metadata'`;
  return Number(r?.n ?? 0);
}

/** The gateway's connections to PostgreSQL, by application_name (reads, writers, probe, LISTEN). */
async function gatewayConnections(admin: Sql): Promise<Record<string, number>> {
  const rows = await admin<{ app: string; n: number }[]>`
    select application_name as app, count(*)::int as n from pg_stat_activity
    where application_name like 'agentgate%' group by 1 order by 1`;
  return Object.fromEntries(rows.map((r) => [r.app, r.n]));
}

async function statsRows(admin: Sql): Promise<number> {
  const [r] = await admin<{ n: string }[]>`select count(*)::text as n from workspace_agent_stats`;
  return Number(r?.n ?? 0);
}

const median = (xs: number[]) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const maxOf = (xs: number[]) => (xs.length ? Math.max(...xs) : null);
const mib = (kib: number | null | undefined) => (kib == null ? 'n/a' : `${(kib / 1024).toFixed(1)} MiB`);

/** `agentgate soak ...`; returns the exit code (1 when an acknowledged frame is missing, or no agent connected). */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = parse(SOAK_OPTIONS, argv, env);
  const abort = new AbortController();
  let db: BenchDatabase | undefined;
  let server: ServerProcess | undefined;
  const stopInterrupts = onInterrupt(abort, log, () => [...liveWorkerPids, ...(db?.pg.pid ? [db.pg.pid] : [])]);

  const samples: Sample[] = [];
  let report: LoadReport;
  let loadStart = performance.now();
  let loadEnd: number | undefined;
  let rows: { stats: number; metadataUpdates: number };
  let exitCode: number | null = null;
  let connectS = null as number | null;
  let pgConnections: Record<string, number> = {};
  try {
    log('starting PostgreSQL ...');
    db = await startBenchDatabase();
    log(`seeding ${o.agents} agents (${o.metadataKeys} metadata keys each) ...`);
    const tokens = (await seed(db.admin, { agents: o.agents, metadataKeys: o.metadataKeys })).map((a) => a.token);
    server = await startGatewayServer('gateway', db.gatewayUrl, [
      '--shutdown-timeout',
      '10s',
      '--workers',
      String(o.workers),
      // Every agent of a large fleet may connect through one worker: the open-file limit decides.
      '--max-connections',
      '19000',
    ]);
    const gw = server;
    const httpUrl = gw.url.replace(/^ws/, 'http').replace(/\/api\/.*$/, '');
    log(`gateway ${gw.url} (pid ${gw.pid}); ${o.agents} agents, ${o.duration / 1000} s`);
    const updates0 = await metadataRowUpdates(db.admin);
    // Samples from the start (connecting too): the first one is the idle baseline.
    samples.push(await sample(gw, httpUrl, (performance.now() - loadStart) / 1000, o.workers));
    let sampling = false;
    const timer = setInterval(() => {
      if (sampling) return;
      sampling = true;
      void sample(gw, httpUrl, (performance.now() - loadStart) / 1000, o.workers)
        .then((s) => samples.push(s))
        .finally(() => {
          sampling = false;
        });
    }, o.sampleEvery);
    const printer = new ProgressPrinter(process.stderr, 'soak');
    const connectStart = performance.now();
    try {
      report = await runLoad({
        url: gw.url,
        tokens,
        mode: { kind: 'interval', statsIntervalMs: o.statsInterval, metadataIntervalMs: o.metadataInterval },
        durationMs: o.duration,
        metadataKeys: o.metadataKeys,
        procs: o.procs ?? Math.max(1, Math.ceil(o.agents / AGENTS_PER_PROC)),
        rampPerSec: o.ramp,
        onProgress: (p) => printer.update(p),
        progressEveryMs: printer.intervalMs,
        onConnected: () => {
          connectS = (performance.now() - connectStart) / 1000;
        },
        onMeasureStart: () => {
          // Samples taken while connecting get negative times.
          const shift = (performance.now() - loadStart) / 1000;
          for (const s of samples) s.t = Math.round((s.t - shift) * 10) / 10;
          loadStart = performance.now();
        },
        onMeasureEnd: () => {
          loadEnd = performance.now();
        },
        signal: abort.signal,
      });
    } finally {
      clearInterval(timer);
      printer.done();
    }
    samples.push(await sample(gw, httpUrl, (performance.now() - loadStart) / 1000, o.workers));
    pgConnections = await gatewayConnections(db.admin);
    // Stop the gateway first: its drain commits what it holds, and its backends flush their table statistics.
    const code = await gw.stop();
    server = undefined;
    if (code !== 0) log(`the gateway exited with ${code}`);
    rows = { stats: await statsRows(db.admin), metadataUpdates: (await metadataRowUpdates(db.admin)) - updates0 };
    if (report.connected === 0) exitCode = 1;
  } finally {
    stopInterrupts();
    await server?.stop();
    await db?.close();
  }

  const during = samples.filter(
    (s) => s.t >= 0 && (loadEnd === undefined || s.t <= (loadEnd - loadStart) / 1000 + 0.5),
  );
  const at = (t: number) => during.find((s) => s.t >= t);
  const last = during.at(-1);
  const sessions = last?.sessions ?? null;
  const workerEnd = last?.workerRssKiB ? Object.values(last.workerRssKiB) : [];
  const workerIdle = samples[0]?.workerRssKiB ? Object.values(samples[0].workerRssKiB) : [];
  const perSessionKiB =
    sessions && last && samples[0] ? Math.round(((last.rssKiB - samples[0].rssKiB) / sessions) * 10) / 10 : null;
  const pgTotal = Object.values(pgConnections).reduce((a, b) => a + b, 0);
  const rss = {
    idle: samples[0]?.rssKiB ?? null,
    minute1: o.duration >= 60_000 ? (at(60)?.rssKiB ?? null) : null,
    end: during.at(-1)?.rssKiB ?? null,
    max: maxOf(during.map((s) => s.rssKiB)),
  };
  const p99s = during.map((s) => s.lagP99Ms).filter((x): x is number => x !== null);
  const lag = {
    p99Median: median(p99s),
    p99Max: maxOf(p99s),
    max: maxOf(during.map((s) => s.lagMaxMs).filter((x): x is number => x !== null)),
  };
  // Every frame of the run counts here, not only the measured window's (frames of the cool-down are
  // stored too); frames whose outcome the load generator could not learn may or may not be stored.
  const unknown = report.allFrames.unknown;
  const ackedStats = report.allFrames.acked.stats;
  const ackedMetadata = report.allFrames.acked.metadata;
  const statsExtra = rows.stats - ackedStats;
  const statsOk = statsExtra >= 0 && statsExtra <= unknown;
  const expectedUpdates = ackedMetadata * o.metadataKeys;

  const lines = [
    '',
    formatSummary(report),
    '',
    `soak: ${o.agents} agents, ${report.durationS.toFixed(0)} s, stats every ${o.statsInterval} ms and metadata every ${o.metadataInterval} ms (${o.metadataKeys} keys)`,
    `connect                ${o.agents} agents in ${connectS === null ? 'n/a' : `${connectS.toFixed(1)} s`}`,
    `gateway RSS            idle ${mib(rss.idle)}, at 1 min ${mib(rss.minute1)}, at the end ${mib(rss.end)}, max ${mib(rss.max)}; ${perSessionKiB ?? 'n/a'} KiB per session (${sessions ?? 'n/a'} sessions)`,
    ...(o.workers > 1
      ? [
          `worker RSS             at the end ${workerEnd.map((k) => mib(k)).join(', ')} (idle ${workerIdle.map((k) => mib(k)).join(', ')})`,
        ]
      : []),
    `PostgreSQL connections ${pgTotal} of the gateway at the end (${Object.entries(pgConnections)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')})`,
    `event-loop delay       p99 per ${o.sampleEvery / 1000} s window: median ${lag.p99Median ?? 'n/a'} ms, max ${lag.p99Max ?? 'n/a'} ms; longest ${lag.max ?? 'n/a'} ms`,
    `acked frames           ${ackedStats + ackedMetadata} in the whole run: ${ackedStats} UpdateStats, ${ackedMetadata} BatchUpdateMetadata; ${unknown} with no known outcome`,
    `stats rows             ${rows.stats} stored for ${ackedStats} acknowledged (${statsExtra >= 0 ? '+' : ''}${statsExtra}): ${statsOk ? 'every acknowledged frame stored, nothing else but frames of unknown outcome' : 'MISMATCH'}`,
    `metadata row updates   ${rows.metadataUpdates} counted by PostgreSQL for ${ackedMetadata} acknowledged x ${o.metadataKeys} keys = ${expectedUpdates} (repeats of a key within one batch are one update)`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
  if (o.json) {
    const out = {
      agents: o.agents,
      workers: o.workers,
      durationS: report.durationS,
      connectS,
      rssKiB: rss,
      rssKiBPerSession: perSessionKiB,
      workerRssKiB: { idle: workerIdle, end: workerEnd },
      pgConnections,
      eventLoopDelayMs: lag,
      frames: {
        sent: report.sent,
        acked: report.acked,
        ackedStats,
        ackedMetadata,
        errors: report.errors,
        unknownOutcome: unknown,
        latencyMs: report.latencyMs,
      },
      stored: { statsRows: rows.stats, metadataRowUpdates: rows.metadataUpdates, metadataKeys: o.metadataKeys },
      statsRowsMatchAcked: statsOk,
      samples,
    };
    writeFileSync(o.json, `${JSON.stringify(out, null, 2)}\n`);
  }
  if (abort.signal.aborted) return 130;
  if (exitCode !== null) return exitCode;
  return statsOk ? 0 : 1;
}
