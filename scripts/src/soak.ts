// `npx agentgate soak`: a long steady load against a gateway started here (the hardening issue's
// soak: 5000 agents sending stats and metadata every second for 10 minutes). It starts its own
// embedded PostgreSQL and `agentgate serve` (default options), seeds the agents, runs the loadtest
// engine, samples the gateway's RSS (/proc) and event-loop delay (prom-client's
// `agentgate_nodejs_eventloop_lag_*`, reset at each scrape, so each sample is one window) every few
// seconds, and at the end compares acknowledged frames with what PostgreSQL holds: one stats row
// per acknowledged UpdateStats, and row updates of workspace_agent_metadata (K per frame).
import { type OptionTable, type Options, parse } from '@agentgate/gateway/options';
import type { Sql } from '@agentgate/gateway/store/db';
import { type LabDatabase, openDatabase } from './lab/database.js';
import { onInterrupt } from './lab/interrupt.js';
import { type ServerProcess, startGateway } from './lab/process.js';
import { ProgressPrinter } from './loadtest/report.js';
import { type LoadReport, runLoad } from './loadtest/run-load.js';
import { AGENTS_PER_PROC, LOADTEST_OPTIONS } from './loadtest.js';
import { seed } from './seed.js';
import { Sampler } from './soak/samples.js';
import { formatSoak, type SoakRun, soakReport, summarize } from './soak/summary.js';
import { writeReports } from './report/render.js';

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
    default: '1s',
    min: 500,
    help: "how often the gateway's RSS and event-loop delay are sampled (the series has one point per second)",
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
  html: {
    flag: '--html',
    kind: 'out-file',
    help: 'write a self-contained HTML page with per-second plots (load, RSS, event-loop delay) here',
  },
} as const satisfies OptionTable;

const log = (msg: string) => process.stderr.write(`soak: ${msg}\n`);

type SoakOptions = Options<typeof SOAK_OPTIONS>;

/** Row updates of workspace_agent_metadata counted by PostgreSQL (n_tup_upd). */
async function metadataRowUpdates(admin: Sql): Promise<number> {
  await admin`select pg_stat_clear_snapshot()`;
  const [r] = await admin<{ n: string }[]>`
    select n_tup_upd::text as n from pg_stat_user_tables where relname = 'workspace_agent_metadata'`;
  return Number(r?.n ?? 0);
}

/** The gateway's connections to PostgreSQL (not this tool's), by application_name (reads, writers, probe, LISTEN). */
async function gatewayConnections(admin: Sql): Promise<Record<string, number>> {
  const rows = await admin<{ app: string; n: number }[]>`
    select application_name as app, count(*)::int as n from pg_stat_activity
    where application_name like 'agentgate%' and usename <> current_user group by 1 order by 1`;
  return Object.fromEntries(rows.map((r) => [r.app, r.n]));
}

async function statsRows(admin: Sql): Promise<number> {
  const [r] = await admin<{ n: string }[]>`select count(*)::text as n from workspace_agent_stats`;
  return Number(r?.n ?? 0);
}

/** `agentgate soak ...`; returns the exit code (1 when an acknowledged frame is missing, or no agent connected). */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = parse(SOAK_OPTIONS, argv, env);
  const abort = new AbortController();
  const stopInterrupts = onInterrupt(abort, { log });
  let run: SoakRun;
  try {
    run = await soak(o, abort.signal);
  } finally {
    stopInterrupts();
  }
  const summary = summarize(o, run);
  process.stdout.write(formatSoak(o, run, summary));
  writeReports('soak', soakReport(o, run, summary), { json: o.json, html: o.html });
  if (abort.signal.aborted) return 130;
  if (run.report.connected === 0) return 1;
  return summary.frames.statsOk ? 0 : 1;
}

/** The database, the agents, the gateway, the load with its samples, and what PostgreSQL then holds. */
async function soak(o: SoakOptions, signal: AbortSignal): Promise<SoakRun> {
  let db: LabDatabase | undefined;
  let gw: ServerProcess | undefined;
  try {
    log('starting PostgreSQL ...');
    db = await openDatabase({ app: 'agentgate-soak' });
    log(`seeding ${o.agents} agents (${o.metadataKeys} metadata keys each) ...`);
    const tokens = (await seed(db.admin, { agents: o.agents, metadataKeys: o.metadataKeys })).map((a) => a.token);
    gw = await startGateway({
      databaseUrl: db.gatewayUrl,
      // Every agent of a large fleet may connect through one worker: the open-file limit decides.
      args: ['--shutdown-timeout', '10s', '--workers', String(o.workers), '--max-connections', '19000'],
    });
    log(`gateway ${gw.url} (pid ${gw.pid}); ${o.agents} agents, ${o.duration / 1000} s`);
    const updates0 = await metadataRowUpdates(db.admin);
    const sampler = new Sampler(gw, o.workers);
    // Samples from the start (connecting too): the first one is the idle baseline.
    await sampler.take();
    sampler.every(o.sampleEvery);
    let load: { report: LoadReport; connectS: number | null };
    try {
      load = await drive(o, gw.url, tokens, sampler, signal);
    } finally {
      sampler.stop();
    }
    await sampler.take();
    const pgConnections = await gatewayConnections(db.admin);
    // Stop the gateway first: its drain commits what it holds, and its backends flush their table statistics.
    const code = await gw.stop();
    gw = undefined;
    if (code !== 0) log(`the gateway exited with ${code}`);
    const stored = {
      stats: await statsRows(db.admin),
      metadataUpdates: (await metadataRowUpdates(db.admin)) - updates0,
    };
    return { ...load, samples: sampler.samples, during: sampler.during(), pgConnections, stored };
  } finally {
    await gw?.stop();
    await db?.close();
  }
}

/** The load itself, with progress on stderr; marks the load's window on the sampler. */
async function drive(o: SoakOptions, url: string, tokens: string[], sampler: Sampler, signal: AbortSignal) {
  const printer = new ProgressPrinter(process.stderr, 'soak');
  const connectStart = performance.now();
  let connectS: number | null = null;
  try {
    const report = await runLoad({
      url,
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
      onMeasureStart: () => sampler.loadStarted(),
      onMeasureEnd: () => sampler.loadEnded(),
      signal,
    });
    return { report, connectS };
  } finally {
    printer.done();
  }
}
