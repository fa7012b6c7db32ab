// `npx agentgate fuzz`: the fuzz test's run at any length. Generates frames from a seed (frames
// 0..9999 of a seed are exactly the ones tests/e2e/fuzz.test.ts sends for that seed), sends them in
// lockstep through one agent's socket, checks every answer against the oracle, keeps a second agent
// sending valid UpdateStats, and at the end compares the database with what the valid frames wrote.
// By default it starts its own PostgreSQL and gateway; with --url and --database-url it targets a
// running gateway (and leaves the two agents it seeds there).
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { type OptionTable, type Options, parse, UsageError } from '@agentgate/gateway/options';
import type { Sql } from '@agentgate/gateway/store/db';
import { formatProtoDuration } from '@agentgate/shared';
import fc from 'fast-check';
import { type DriveResult, FuzzDriver, formatMismatch, mergeResults } from './fuzz/driver.js';
import { FUZZ_METADATA_KEYS, frameArbitrary } from './fuzz/generate.js';
import type { FuzzTarget } from './fuzz/oracle.js';
import { type SteadyResult, startSteadyAgent } from './fuzz/steady.js';
import { checkStored, declareMetadataKeys, Ledger, storedRxBytes } from './fuzz/stored.js';
import { type FuzzSummary, formatFuzzSummary, isClean, mismatches } from './fuzz/summary.js';
import { type LabDatabase, openDatabase } from './lab/database.js';
import { httpBaseUrl } from './lab/http.js';
import { onInterrupt } from './lab/interrupt.js';
import { type ServerProcess, startGateway } from './lab/process.js';
import { rssKiB, settledRss } from './lab/proc-stats.js';
import { seed } from './seed.js';

/** Frames generated at once (and the seed of chunk k is seed + k): the test's 10 000 are chunk 0. */
const CHUNK = 10_000;
/** The embedded gateway's rate: a session can send 200 000 frames at once, so no answer is -32003. */
const EMBEDDED_SESSION_RATE = 100_000;
/** A gateway's default --session-rate (SPEC §1), for --url without --session-rate. */
const DEFAULT_SESSION_RATE = 100;

export const FUZZ_OPTIONS = {
  frames: { flag: '--frames', kind: 'int', min: 1, default: '10000', arg: 'N', help: 'frames to send' },
  seed: {
    flag: '--seed',
    kind: 'int',
    min: 0,
    max: 2 ** 31 - 1,
    arg: 'S',
    defaultHelp: 'random (printed)',
    help: "the generator's seed; frames 0..9999 of a seed are the fuzz test's",
  },
  url: {
    flag: '--url',
    kind: 'ws-url',
    defaultHelp: 'embedded',
    help: 'a running gateway (with --database-url); without it PostgreSQL and a gateway are started here',
  },
  databaseUrl: {
    flag: '--database-url',
    kind: 'postgres-url',
    help: "the --url gateway's database: two agents are seeded there and their rows are checked",
  },
  maxFrameBytes: {
    flag: '--max-frame-bytes',
    kind: 'int',
    min: 64,
    default: '65536',
    help: "the gateway's --max-frame-bytes (the embedded gateway is started with it)",
  },
  sessionRate: {
    flag: '--session-rate',
    kind: 'int',
    min: 32,
    defaultHelp: `${DEFAULT_SESSION_RATE} with --url`,
    help: "the --url gateway's --session-rate: frames are paced under it so that none is rate limited",
  },
  reportInterval: {
    flag: '--stats-report-interval',
    kind: 'duration',
    default: '30s',
    min: 1,
    help: "the gateway's --stats-report-interval (what UpdateStats answers)",
  },
  json: { flag: '--json', kind: 'out-file', help: 'write the summary as JSON here' },
} as const satisfies OptionTable;

const log = (msg: string) => process.stderr.write(`fuzz: ${msg}\n`);

type FuzzOptions = Options<typeof FUZZ_OPTIONS>;

/** Where the frames go: a gateway and the database it writes. */
interface Target {
  url: string;
  admin: Sql;
  /** The gateway's PID when it runs here (for its RSS). */
  pid: number | undefined;
  /** The --url gateway's session rate, to pace the frames under. */
  paced: number | undefined;
  close(): Promise<void>;
}

/** The --url gateway and its database, or PostgreSQL and a gateway started here. */
async function openTarget(o: FuzzOptions): Promise<Target> {
  if (o.url !== undefined) {
    const db = await openDatabase({ url: o.databaseUrl, app: 'agentgate-fuzz' });
    const paced = o.sessionRate ?? DEFAULT_SESSION_RATE;
    return { url: o.url, admin: db.admin, pid: undefined, paced, close: db.close };
  }
  log('starting PostgreSQL ...');
  const db: LabDatabase = await openDatabase({ app: 'agentgate-fuzz' });
  let server: ServerProcess | undefined;
  const close = async () => {
    await server?.stop();
    await db.close();
  };
  try {
    server = await startGateway({
      databaseUrl: db.gatewayUrl,
      args: [
        ...['--session-rate', String(EMBEDDED_SESSION_RATE), '--max-frame-bytes', String(o.maxFrameBytes)],
        ...['--stats-report-interval', `${o.reportInterval}ms`, '--shutdown-timeout', '5s'],
      ],
    });
    log(`gateway ${server.url} (pid ${server.pid})`);
    return { url: server.url, admin: db.admin, pid: server.pid, paced: undefined, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** `agentgate fuzz ...`; returns the exit code: 0 when every frame got its answer and the database holds what it should. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = parse(FUZZ_OPTIONS, argv, env);
  if ((o.url === undefined) !== (o.databaseUrl === undefined)) {
    throw new UsageError('give --url and --database-url together (or neither, to start a gateway here)');
  }
  if (o.url === undefined && o.sessionRate !== undefined) {
    throw new UsageError('--session-rate describes a --url gateway (the embedded one is not rate limited)');
  }
  const seedValue = o.seed ?? Math.floor(Math.random() * 2 ** 31);
  log(`seed ${seedValue}, ${o.frames} frames`);
  const abort = new AbortController();
  const stopInterrupts = onInterrupt(abort, { log, stopping: 'stopping after this frame' });
  let summary: FuzzSummary;
  let shown: string[];
  try {
    const target = await openTarget(o);
    try {
      ({ summary, shown } = await fuzz(o, target, seedValue, abort.signal));
    } finally {
      await target.close();
    }
  } finally {
    stopInterrupts();
  }
  process.stdout.write(formatFuzzSummary(summary, shown));
  if (o.json) writeFileSync(o.json, `${JSON.stringify(summary, null, 2)}\n`);
  if (abort.signal.aborted) return 130;
  return isClean(summary) ? 0 : 1;
}

/** Seeds the fuzzing agent and its neighbour, sends the frames, then checks the rows and the gateway. */
async function fuzz(o: FuzzOptions, target: Target, seedValue: number, signal: AbortSignal) {
  const [fuzzAgent, neighbourAgent] = await seed(target.admin, { agents: 2, metadataKeys: 0 });
  await declareMetadataKeys(target.admin, fuzzAgent!.agentId, FUZZ_METADATA_KEYS);
  const fuzzTarget: FuzzTarget = {
    maxFrameBytes: o.maxFrameBytes,
    reportInterval: formatProtoDuration(o.reportInterval),
    declaredKeys: FUZZ_METADATA_KEYS,
  };
  const ledger = new Ledger(FUZZ_METADATA_KEYS);
  // The neighbour stays at half the rate limit, when there is one.
  const pauseMs = target.paced ? Math.ceil(2000 / target.paced) : 5;
  const neighbour = await startSteadyAgent(target.url, neighbourAgent!.token, pauseMs);
  const driver = new FuzzDriver({
    url: target.url,
    token: fuzzAgent!.token,
    target: fuzzTarget,
    ledger,
    ...(target.paced ? { sessionRate: target.paced } : {}),
    maxMismatches: 1000,
    signal,
  });
  const start = target.pid ? rssKiB(target.pid) : 0;
  let driven: { result: DriveResult | undefined; warmed: number };
  let steady: SteadyResult;
  try {
    driven = await drive(o, driver, fuzzTarget, seedValue, target.pid, signal);
  } finally {
    steady = await neighbour.stop();
  }
  const { result, warmed } = driven;
  if (!result) throw new Error('no frame was sent');
  const stored = await checkStored(target.admin, fuzzAgent!.agentId, ledger);
  const neighbourRows = await storedRxBytes(target.admin, neighbourAgent!.agentId);
  const neighbourErrors = [...steady.errors];
  if (neighbourRows.join(',') !== steady.ackedRxBytes.join(',')) {
    neighbourErrors.push(`${neighbourRows.length} rows stored for ${steady.acked} acknowledged frames`);
  }
  const healthz = await fetch(`${httpBaseUrl(target.url)}/healthz`).then(
    (r) => r.status,
    () => null,
  );
  let rss: FuzzSummary['rssKiB'] = null;
  if (target.pid) {
    await sleep(1000);
    rss = { start, warmed, after: await settledRss(target.pid, { everyMs: 300 }) };
  }
  const summary: FuzzSummary = {
    seed: seedValue,
    frames: result.frames,
    elapsedMs: result.elapsedMs,
    byLabel: result.byLabel,
    closes: result.closes,
    reconnects: result.reconnects,
    mismatches: result.mismatches.length,
    stored: {
      statsRows: stored.statsRows,
      expectedStatsRows: ledger.statsRows,
      metadataWrites: ledger.metadataWrites,
      problems: stored.problems,
    },
    neighbour: { acked: steady.acked, stored: neighbourRows.length, errors: neighbourErrors },
    healthz,
    rssKiB: rss,
  };
  return { summary, shown: result.mismatches.slice(0, 20).map(formatMismatch) };
}

/** Generates and sends the frames chunk by chunk; the gateway's RSS after the first 1000 is the baseline. */
async function drive(
  o: FuzzOptions,
  driver: FuzzDriver,
  fuzzTarget: FuzzTarget,
  seedValue: number,
  pid: number | undefined,
  signal: AbortSignal,
): Promise<{ result: DriveResult | undefined; warmed: number }> {
  let warmed = 0;
  let result: DriveResult | undefined;
  for (let k = 0, done = 0; done < o.frames && !signal.aborted; k++) {
    const n = Math.min(CHUNK, o.frames - done);
    const frames = fc.sample(frameArbitrary(fuzzTarget), { seed: (seedValue + k) % 2 ** 31, numRuns: n });
    // The first 1000 frames warm the gateway up; its RSS then is the baseline (as in the test).
    const parts = k === 0 ? [frames.slice(0, 1000), frames.slice(1000)] : [frames];
    for (const part of parts) {
      if (part.length === 0) continue;
      const r = await driver.run(part, done);
      done += r.frames;
      result = result ? mergeResults(result, r) : r;
      if (pid && warmed === 0) warmed = await settledRss(pid, { everyMs: 300 });
      log(
        `${done}/${o.frames} frames checked against the SPEC, ${mismatches(result.mismatches.length)}` +
          (pid ? `, RSS ${rssKiB(pid)} KiB` : ''),
      );
    }
  }
  return { result, warmed };
}
