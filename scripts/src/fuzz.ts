// `npx agentgate fuzz`: the fuzz test's run at any length. Generates frames from a seed (frames
// 0..9999 of a seed are exactly the ones tests/e2e/fuzz.test.ts sends for that seed), sends them in
// lockstep through one agent's socket, checks every answer against the oracle, keeps a second agent
// sending valid UpdateStats, and at the end compares the database with what the valid frames wrote.
// By default it starts its own PostgreSQL and gateway; with --url and --database-url it targets a
// running gateway (and leaves the two agents it seeds there).
import { writeFileSync } from 'node:fs';
import { type OptionTable, parse, UsageError } from '@agentgate/gateway/options';
import { connect, type Sql } from '@agentgate/gateway/store/db';
import { migrate } from '@agentgate/gateway/store/migrate';
import { formatProtoDuration } from '@agentgate/shared';
import fc from 'fast-check';
import { type BenchDatabase, startBenchDatabase } from './bench/bench-db.js';
import { rssKiB } from './bench/proc-stats.js';
import { liveServerPids, type ServerProcess, startGatewayServer } from './bench/server-process.js';
import { type DriveResult, FuzzDriver, formatMismatch, mergeResults } from './fuzz/driver.js';
import { FUZZ_METADATA_KEYS, frameArbitrary } from './fuzz/generate.js';
import type { FuzzTarget } from './fuzz/oracle.js';
import { type SteadyResult, startSteadyAgent } from './fuzz/steady.js';
import { checkStored, declareMetadataKeys, Ledger, type StoredCheck, storedRxBytes } from './fuzz/stored.js';
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
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Where the frames go: a gateway and the database it writes. */
interface Target {
  url: string;
  admin: Sql;
  /** The gateway's PID when it runs here (for its RSS). */
  pid: number | undefined;
  paced: number | undefined;
  close(): Promise<void>;
}

async function embeddedTarget(maxFrameBytes: number, reportIntervalMs: number): Promise<Target> {
  log('starting PostgreSQL ...');
  let db: BenchDatabase | undefined = await startBenchDatabase();
  let server: ServerProcess | undefined;
  const close = async () => {
    await server?.stop();
    await db?.close();
    server = undefined;
    db = undefined;
  };
  try {
    server = await startGatewayServer('gateway', db.gatewayUrl, [
      '--session-rate',
      String(EMBEDDED_SESSION_RATE),
      '--max-frame-bytes',
      String(maxFrameBytes),
      '--stats-report-interval',
      `${reportIntervalMs}ms`,
      '--shutdown-timeout',
      '5s',
    ]);
    log(`gateway ${server.url} (pid ${server.pid})`);
    return { url: server.url, admin: db.admin, pid: server.pid, paced: undefined, close };
  } catch (e) {
    await close();
    throw e;
  }
}

async function remoteTarget(url: string, databaseUrl: string, sessionRate: number): Promise<Target> {
  const admin = connect(databaseUrl, { max: 2, applicationName: 'agentgate-fuzz' });
  await migrate(admin);
  return { url, admin, pid: undefined, paced: sessionRate, close: () => admin.end({ timeout: 5 }) };
}

/** Median RSS of a few samples (KiB). */
async function settledRss(pid: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    if (i > 0) await sleep(300);
    xs.push(rssKiB(pid));
  }
  return xs.sort((a, b) => a - b)[2]!;
}

interface Summary {
  seed: number;
  frames: number;
  elapsedMs: number;
  byLabel: Record<string, number>;
  closes: Record<string, number>;
  reconnects: number;
  mismatches: number;
  stored: { statsRows: number; expectedStatsRows: number; metadataWrites: number; problems: string[] };
  neighbour: { acked: number; stored: number; errors: string[] };
  healthz: number | null;
  rssKiB: { start: number; warmed: number; after: number } | null;
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
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    abort.abort();
    log(interrupts > 1 ? 'interrupted again: killing the gateway' : 'interrupted: stopping after this frame');
    if (interrupts > 1) {
      for (const pid of liveServerPids) process.kill(pid, 'SIGKILL');
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const target =
    o.url === undefined
      ? await embeddedTarget(o.maxFrameBytes, o.reportInterval)
      : await remoteTarget(o.url, o.databaseUrl!, o.sessionRate ?? DEFAULT_SESSION_RATE);
  let summary: Summary;
  let shown: string[];
  try {
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
      signal: abort.signal,
    });
    const start = target.pid ? rssKiB(target.pid) : 0;
    let warmed = 0;
    let result: DriveResult | undefined;
    let steady: SteadyResult;
    try {
      for (let k = 0, done = 0; done < o.frames && !abort.signal.aborted; k++) {
        const n = Math.min(CHUNK, o.frames - done);
        const frames = fc.sample(frameArbitrary(fuzzTarget), { seed: (seedValue + k) % 2 ** 31, numRuns: n });
        // The first 1000 frames warm the gateway up; its RSS then is the baseline (as in the test).
        const parts = k === 0 ? [frames.slice(0, 1000), frames.slice(1000)] : [frames];
        for (const part of parts) {
          if (part.length === 0) continue;
          const r = await driver.run(part, done);
          done += r.frames;
          result = result ? mergeResults(result, r) : r;
          if (target.pid && warmed === 0) warmed = await settledRss(target.pid);
          log(
            `${done}/${o.frames} frames checked against the SPEC, ${mismatches(result.mismatches.length)}` +
              (target.pid ? `, RSS ${rssKiB(target.pid)} KiB` : ''),
          );
        }
      }
    } finally {
      steady = await neighbour.stop();
    }
    if (!result) throw new Error('no frame was sent');
    const stored: StoredCheck = await checkStored(target.admin, fuzzAgent!.agentId, ledger);
    const neighbourRows = await storedRxBytes(target.admin, neighbourAgent!.agentId);
    const neighbourErrors = [...steady.errors];
    if (neighbourRows.join(',') !== steady.ackedRxBytes.join(',')) {
      neighbourErrors.push(`${neighbourRows.length} rows stored for ${steady.acked} acknowledged frames`);
    }
    const httpUrl = target.url.replace(/^ws/, 'http').replace(/\/api\/.*$/, '');
    const healthz = await fetch(`${httpUrl}/healthz`).then(
      (r) => r.status,
      () => null,
    );
    let rss: Summary['rssKiB'] = null;
    if (target.pid) {
      await sleep(1000);
      rss = { start, warmed, after: await settledRss(target.pid) };
    }
    summary = {
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
    shown = result.mismatches.slice(0, 20).map(formatMismatch);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await target.close();
  }

  const out = process.stdout;
  if (shown.length > 0) {
    out.write(
      `frames the gateway answered otherwise than the SPEC says (first ${shown.length}):\n${shown.join('\n')}\n\n`,
    );
  }
  if (summary.stored.problems.length > 0) {
    out.write(`the database holds what it should not:\n  ${summary.stored.problems.slice(0, 20).join('\n  ')}\n\n`);
  }
  const s = summary;
  out.write(
    [
      `seed ${s.seed}: ${s.frames} frames in ${(s.elapsedMs / 1000).toFixed(1)} s (${Math.round((s.frames * 1000) / Math.max(1, s.elapsedMs))}/s), ${s.reconnects} reconnects`,
      `  by kind: ${Object.entries(s.byLabel)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
      `  closes: ${Object.entries(s.closes)
        .map(([k, v]) => `${k} x${v}`)
        .join(', ')}`,
      `  checked against the SPEC: ${s.frames} frames, ${mismatches(s.mismatches)}`,
      `  stored: ${s.stored.statsRows} stats rows for ${s.stored.expectedStatsRows} valid frames, ${s.stored.metadataWrites} metadata writes; ${s.stored.problems.length} problem(s)`,
      `  neighbour: ${s.neighbour.acked} acknowledged, ${s.neighbour.stored} stored, ${s.neighbour.errors.length} error(s)${s.neighbour.errors.length ? `: ${s.neighbour.errors.slice(0, 3).join('; ')}` : ''}`,
      `  /healthz: ${s.healthz ?? 'no answer'}`,
      s.rssKiB
        ? `  gateway RSS: ${s.rssKiB.start} KiB at start, ${s.rssKiB.warmed} KiB after 1000 frames, ${s.rssKiB.after} KiB at the end`
        : '  gateway RSS: not measured (--url)',
      '',
    ].join('\n'),
  );
  if (o.json) writeFileSync(o.json, `${JSON.stringify(summary, null, 2)}\n`);
  if (abort.signal.aborted) return 130;
  const clean =
    s.mismatches === 0 && s.stored.problems.length === 0 && s.neighbour.errors.length === 0 && s.healthz === 200;
  return clean ? 0 : 1;
}

/** `0 mismatches` reads as the good news it is; a bare `0 answered against the SPEC` read as a failure. */
function mismatches(n: number): string {
  return n === 1 ? '1 mismatch' : `${n} mismatches`;
}
