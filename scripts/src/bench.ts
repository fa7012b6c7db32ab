// `npx agentgate bench` (SPEC §9): on one embedded PostgreSQL, under the same load, one after
// another: a bare `ws` echo server (the ceiling), the gateway with its workspace cache, and the
// gateway with `--workspace-cache off`. Each server runs in its own process; the load runs in
// worker processes. Prints one table (progress goes to stderr) and optionally writes JSON.
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { type OptionTable, parse } from '@agentgate/gateway/options';
import { startEchoProcess } from './bench/echo-server.js';
import { type LoadShape, type Measured, measureLoad, type RunResult, toRunResult } from './bench/measure.js';
import { formatBenchTable, formatIdleTable, type IdleResult } from './bench/table.js';
import { type LabDatabase, openDatabase } from './lab/database.js';
import { onInterrupt } from './lab/interrupt.js';
import { type ServerProcess, startGateway } from './lab/process.js';
import { settledRss } from './lab/proc-stats.js';
import { runLoad } from './loadtest/run-load.js';
import { seed } from './seed.js';
import { emptySeries } from './report/series.js';
import { writeReports } from './report/render.js';

const RUN_NAMES = ['echo', 'cached', 'uncached'] as const;
type RunName = (typeof RUN_NAMES)[number];

interface BenchArgs {
  agents: number;
  durationMs: number;
  warmupMs: number;
  jsonFile: string | undefined;
  htmlFile: string | undefined;
  idleSessions: number;
  rate: number;
  inflight: number;
  procs: number;
  rampPerSec: number;
  metadataKeys: number;
  runs: RunName[];
}

/**
 * Offered load of the latency run: one frame per second per default agent, which even the
 * uncached gateway sustains on 2 cores (shared with its database and the load generator), so
 * that the latencies compare the work per frame rather than queueing.
 */
const DEFAULT_FIXED_RATE = 2000;

/** Sessions one gateway process may hold: its open files are capped at 20 000. */
const MAX_IDLE_SESSIONS = 19_500;

export const BENCH_OPTIONS = {
  agents: { flag: '--agents', kind: 'int', min: 1, default: '2000', help: 'agents that drive the load' },
  duration: { flag: '--duration', kind: 'duration', default: '20s', min: 1000, help: 'measured time of each run' },
  warmup: { flag: '--warmup', kind: 'duration', default: '3s', min: 0, help: 'unmeasured load before each run' },
  json: { flag: '--json', kind: 'out-file', help: 'write the JSON report here (README: bench)' },
  html: {
    flag: '--html',
    kind: 'out-file',
    help: 'write a self-contained HTML page with the runs plotted side by side, second by second, here',
  },
  idleSessions: {
    flag: '--idle-sessions',
    kind: 'int',
    min: 0,
    max: MAX_IDLE_SESSIONS,
    default: '0',
    help: 'also measure the memory of N idle sessions (echo vs gateway; one process holds 20 000 files)',
  },
  rate: {
    flag: '--rate',
    kind: 'int',
    min: 0,
    default: String(DEFAULT_FIXED_RATE),
    arg: 'R',
    help: 'total frames/s of the fixed-rate latency run; 0 skips it',
  },
  inflight: {
    flag: '--inflight',
    kind: 'int',
    min: 1,
    default: '1',
    arg: 'W',
    help: 'requests in flight per agent in the saturation run',
  },
  procs: { flag: '--procs', kind: 'int', min: 1, default: '1', arg: 'P', help: 'load generator processes' },
  ramp: { flag: '--ramp', kind: 'int', min: 1, default: '2000', help: 'new connections per second' },
  metadataKeys: {
    flag: '--metadata-keys',
    kind: 'int',
    min: 0,
    default: '4',
    arg: 'K',
    help: 'metadata keys per agent',
  },
  runs: {
    flag: '--runs',
    kind: 'list',
    choices: RUN_NAMES,
    default: RUN_NAMES.join(','),
    help: 'which servers to measure, in this order',
  },
} as const satisfies OptionTable;

function parseBenchArgs(argv: string[], env: NodeJS.ProcessEnv): BenchArgs {
  const o = parse(BENCH_OPTIONS, argv, env);
  return {
    agents: o.agents,
    durationMs: o.duration,
    warmupMs: o.warmup,
    jsonFile: o.json,
    htmlFile: o.html,
    idleSessions: o.idleSessions,
    rate: o.rate,
    inflight: o.inflight,
    procs: o.procs,
    rampPerSec: o.ramp,
    metadataKeys: o.metadataKeys,
    runs: o.runs as RunName[],
  };
}

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

function startTarget(name: RunName, db: LabDatabase): Promise<ServerProcess> {
  if (name === 'echo') return startEchoProcess();
  return startGateway({
    name: `gateway (${name})`,
    databaseUrl: db.gatewayUrl,
    args: ['--shutdown-timeout', '5s', ...(name === 'uncached' ? ['--workspace-cache', 'off'] : [])],
  });
}

interface BenchResults {
  runs: RunResult[];
  idle: IdleResult | undefined;
  /** A run failed. */
  failed: boolean;
}

/** `agentgate bench ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseBenchArgs(argv, env);
  const abort = new AbortController();
  const stopInterrupts = onInterrupt(abort, { log });
  const started = performance.now();
  let db: LabDatabase | undefined;
  let results: BenchResults;
  try {
    log('starting PostgreSQL (pg_stat_statements) ...');
    db = await openDatabase({ app: 'agentgate-bench' });
    results = await runBench(db, args, abort.signal);
  } finally {
    stopInterrupts();
    await db?.close();
  }
  printResults(results, args, db.serverVersion, performance.now() - started);
  if (abort.signal.aborted) return 130;
  return results.failed ? 1 : 0;
}

/** Seeds the agents, then measures each server in turn, then (when asked) the idle sessions. */
async function runBench(db: LabDatabase, args: BenchArgs, signal: AbortSignal): Promise<BenchResults> {
  const seedCount = Math.max(args.agents, args.idleSessions);
  log(`PostgreSQL ${db.serverVersion}; seeding ${seedCount} agents (${args.metadataKeys} metadata keys each) ...`);
  const seeded = await seed(db.admin, { agents: seedCount, metadataKeys: args.metadataKeys, prebuildFraction: 0 });
  const tokens = seeded.map((a) => a.token);
  const shape: LoadShape = {
    tokens: tokens.slice(0, args.agents),
    durationMs: args.durationMs,
    warmupMs: args.warmupMs,
    cooldownMs: 1000,
    metadataKeys: args.metadataKeys,
    procs: args.procs,
    rampPerSec: args.rampPerSec,
  };
  const results: BenchResults = { runs: [], idle: undefined, failed: false };
  for (const name of args.runs) {
    if (signal.aborted) break;
    try {
      results.runs.push(await measureServer(name, db, shape, args, signal));
    } catch (e) {
      results.failed = true;
      const message = (e as Error).message;
      log(`${name}: failed: ${message}`);
      results.runs.push(failedRun(name, message.split('\n')[0] ?? message));
    }
  }
  if (args.idleSessions > 0 && !signal.aborted) {
    results.idle = await measureIdle(db, tokens.slice(0, args.idleSessions), args, signal);
  }
  return results;
}

/** One server: its saturation run and (with --rate) its fixed-rate run. */
async function measureServer(
  name: RunName,
  db: LabDatabase,
  shape: LoadShape,
  args: BenchArgs,
  signal: AbortSignal,
): Promise<RunResult> {
  let server: ServerProcess | undefined;
  try {
    log(`${name}: starting the server ...`);
    server = await startTarget(name, db);
    await sleep(500);
    const rssBefore = await settledRss(server.pid);
    log(`${name}: saturation, ${args.agents} agents x ${args.inflight} in flight, ${args.durationMs / 1000} s`);
    const mode = { kind: 'inflight', perAgent: args.inflight } as const;
    const sat = await measureLoad({ label: `${name} saturation`, server, db, mode, shape, rssBefore, signal });
    let fixed: Measured | undefined;
    if (args.rate > 0 && !signal.aborted) {
      log(`${name}: fixed rate ${args.rate} frames/s, ${args.durationMs / 1000} s`);
      const rate = { kind: 'rate', framesPerSec: args.rate } as const;
      fixed = await measureLoad({ label: `${name} @${args.rate}/s`, server, db, mode: rate, shape, signal });
    }
    const result = toRunResult(name, sat, fixed, args.rate);
    log(
      `${name}: ${result.framesPerSec} frames/s, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms` +
        (result.fixedRate ? `; at ${args.rate}/s p99 ${result.fixedRate.latencyMs.p99} ms` : ''),
    );
    return result;
  } finally {
    await server?.stop();
  }
}

/** The tables on stdout, and the JSON with --json. */
function printResults(results: BenchResults, args: BenchArgs, postgres: string, tookMs: number): void {
  const { runs, idle } = results;
  if (runs.length) process.stdout.write(`${formatBenchTable(runs, args.rate)}\n\n`);
  if (idle) process.stdout.write(`${formatIdleTable(idle)}\n\n`);
  process.stdout.write(
    `${args.agents} agents, ${args.durationMs / 1000} s per run after ${args.warmupMs / 1000} s warm-up; ` +
      `${cpus().length} cores, Node ${process.version}, PostgreSQL ${postgres}; took ${Math.round(tookMs / 1000)} s\n`,
  );
  if (!args.jsonFile && !args.htmlFile) return;
  const out = {
    runs,
    ...(idle ? { idleSessions: idle } : {}),
    machine: { cores: cpus().length, node: process.version, postgres },
    config: {
      agents: args.agents,
      durationS: args.durationMs / 1000,
      warmupS: args.warmupMs / 1000,
      inflightPerAgent: args.inflight,
      fixedRate: args.rate,
      metadataKeys: args.metadataKeys,
      loadProcs: args.procs,
    },
  };
  writeReports('bench', out, { json: args.jsonFile, html: args.htmlFile });
}

function failedRun(name: string, error: string): RunResult {
  return {
    name,
    framesPerSec: 0,
    latencyMs: { p50: 0, p99: 0 },
    workspaceReadsPerFrame: 0,
    dbStatementsPerFrame: 0,
    cpuMsPerKFrame: 0,
    rssKiBPerSession: 0,
    load: '',
    sessions: 0,
    sent: 0,
    acked: 0,
    errors: {},
    latencyMsFull: { p50: 0, p95: 0, p99: 0, max: 0 },
    pgCpuMsPerKFrame: 0,
    workspaceScansPerFrame: 0,
    topStatements: [],
    series: emptySeries(),
    error,
  };
}

/** Holds `tokens.length` idle sockets on the echo server, then on the gateway; RSS per session of each. */
async function measureIdle(
  db: LabDatabase,
  tokens: string[],
  args: BenchArgs,
  signal: AbortSignal,
): Promise<IdleResult> {
  const one = async (name: 'echo' | 'cached') => {
    const server = await startTarget(name, db);
    try {
      await sleep(500);
      const before = await settledRss(server.pid);
      let connected = 0;
      let after = before;
      log(`idle sessions on ${name === 'echo' ? 'the echo server' : 'the gateway'}: ${tokens.length} sockets ...`);
      await runLoad({
        url: server.url,
        tokens,
        mode: { kind: 'idle' },
        durationMs: 0,
        metadataKeys: args.metadataKeys,
        procs: Math.max(1, Math.ceil(tokens.length / 10_000)),
        rampPerSec: args.rampPerSec,
        signal,
        onConnected: async (p) => {
          connected = p.connected;
          // Let the connect-time work (identity load, timers, first writes) finish before sampling.
          await sleep(2000);
          after = await settledRss(server.pid);
        },
      });
      return {
        connected,
        rssBeforeKiB: before,
        rssConnectedKiB: after,
        rssKiBPerSession: connected ? (after - before) / connected : 0,
      };
    } finally {
      await server.stop();
    }
  };
  const echo = await one('echo');
  const gateway = await one('cached');
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    sessions: tokens.length,
    echo: { ...echo, rssKiBPerSession: r1(echo.rssKiBPerSession) },
    gateway: { ...gateway, rssKiBPerSession: r1(gateway.rssKiBPerSession) },
    differenceKiBPerSession: r1(gateway.rssKiBPerSession - echo.rssKiBPerSession),
  };
}
