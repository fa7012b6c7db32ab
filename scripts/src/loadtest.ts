// `npx agentgate loadtest` (SPEC §9): holds N agent sockets over P worker processes, drives stats
// and metadata at the given intervals (or a fixed total rate, or a closed loop), shows progress on
// stderr, prints a summary on stdout and optionally writes the JSON report.
import { readFileSync } from 'node:fs';
import { type OptionTable, parseWithSources, UsageError } from '@agentgate/gateway/options';
import { connect } from '@agentgate/gateway/store/db';
import { migrate } from '@agentgate/gateway/store/migrate';
import { formatSummary, noConnectionLine, ProgressPrinter } from './loadtest/report.js';
import { onInterrupt } from './lab/interrupt.js';
import { type LoadMode, type LoadReport, runLoad } from './loadtest/run-load.js';
import { SEED_OPTIONS, seed } from './seed.js';
import { writeReports } from './report/render.js';

/** Agents per worker process by default: well under the 20 000 open files of one process. */
export const AGENTS_PER_PROC = 15_000;

export const LOADTEST_OPTIONS = {
  url: {
    flag: '--url',
    kind: 'ws-url',
    required: true,
    help: 'the gateway, ws://HOST:PORT/api/v2/workspaceagents/me/rpc',
  },
  tokens: { flag: '--tokens', kind: 'string', arg: 'FILE', help: 'agent tokens written by `agentgate seed --out`' },
  databaseUrl: {
    flag: '--database-url',
    env: 'DATABASE_URL',
    kind: 'postgres-url',
    help: 'seed --agents agents into this database instead of reading --tokens',
  },
  agents: {
    flag: '--agents',
    kind: 'int',
    min: 1,
    defaultHelp: 'every token',
    help: 'agents to drive (to seed, with --database-url)',
  },
  duration: { flag: '--duration', kind: 'duration', default: '60s', min: 100, help: 'how long to drive the load' },
  statsInterval: {
    flag: '--stats-interval',
    kind: 'duration',
    default: '1s',
    min: 1,
    help: 'UpdateStats period of each agent (without --rate or --inflight)',
  },
  metadataInterval: {
    flag: '--metadata-interval',
    kind: 'duration',
    default: '1s',
    min: 1,
    help: 'BatchUpdateMetadata period of each agent (without --rate or --inflight)',
  },
  metadataKeys: { ...SEED_OPTIONS.metadataKeys, help: 'metadata keys per agent (m0..m{K-1}, as seed declares them)' },
  procs: {
    flag: '--procs',
    kind: 'int',
    min: 1,
    arg: 'P',
    defaultHelp: `one per ${AGENTS_PER_PROC} agents`,
    help: 'worker processes that hold the sockets',
  },
  rate: { flag: '--rate', kind: 'int', min: 1, arg: 'R', help: 'a fixed total of R frames/s (open loop)' },
  inflight: {
    flag: '--inflight',
    kind: 'int',
    min: 1,
    arg: 'W',
    help: 'W requests in flight per agent (closed loop: saturation)',
  },
  ramp: { flag: '--ramp', kind: 'int', min: 1, default: '1000', help: 'new connections per second' },
  requestTimeout: {
    flag: '--request-timeout',
    kind: 'duration',
    default: '30s',
    min: 10,
    help: 'a frame with no answer by then counts as unanswered',
  },
  json: { flag: '--json', kind: 'out-file', help: 'write the JSON report here (README: loadtest)' },
  html: {
    flag: '--html',
    kind: 'out-file',
    help: 'write a self-contained HTML page with per-second plots and every figure of the report here',
  },
} as const satisfies OptionTable;

interface LoadtestArgs {
  url: string;
  tokensFile: string | undefined;
  databaseUrl: string | undefined;
  agents: number | undefined;
  durationMs: number;
  mode: LoadMode;
  metadataKeys: number;
  procs: number | undefined;
  rampPerSec: number;
  requestTimeoutMs: number;
  jsonFile: string | undefined;
  htmlFile: string | undefined;
}

function parseLoadtestArgs(argv: string[], env: NodeJS.ProcessEnv): LoadtestArgs {
  const { values: o, sources } = parseWithSources(LOADTEST_OPTIONS, argv, env);
  // DATABASE_URL from the environment only matters when there is no --tokens.
  const databaseUrl = o.tokens !== undefined && sources.databaseUrl === 'env' ? undefined : o.databaseUrl;
  if (o.tokens !== undefined && databaseUrl !== undefined) {
    throw new UsageError('give either --tokens or --database-url, not both');
  }
  if (o.tokens === undefined) {
    if (databaseUrl === undefined) {
      throw new UsageError('missing --tokens FILE (or --database-url URL --agents N to seed agents)');
    }
    if (o.agents === undefined) throw new UsageError('missing --agents N: how many agents to seed');
  }
  if (o.rate !== undefined && o.inflight !== undefined) {
    throw new UsageError('give either --rate or --inflight, not both');
  }
  let mode: LoadMode;
  if (o.rate !== undefined) mode = { kind: 'rate', framesPerSec: o.rate };
  else if (o.inflight !== undefined) mode = { kind: 'inflight', perAgent: o.inflight };
  else mode = { kind: 'interval', statsIntervalMs: o.statsInterval, metadataIntervalMs: o.metadataInterval };
  return {
    url: o.url,
    tokensFile: o.tokens,
    databaseUrl,
    agents: o.agents,
    durationMs: o.duration,
    mode,
    metadataKeys: o.metadataKeys,
    procs: o.procs,
    rampPerSec: o.ramp,
    requestTimeoutMs: o.requestTimeout,
    jsonFile: o.json,
    htmlFile: o.html,
  };
}

/** Tokens from a seed output file: `[{agentId, workspaceId, token}]` (plain strings are accepted too). */
function readTokens(file: string): string[] {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read --tokens ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!Array.isArray(data)) throw new UsageError(`invalid --tokens ${file}: expected a JSON array`);
  const tokens = data.map((x: unknown) => (typeof x === 'string' ? x : (x as { token?: unknown })?.token));
  if (tokens.length === 0 || !tokens.every((t): t is string => typeof t === 'string' && t.length > 0)) {
    throw new UsageError(`invalid --tokens ${file}: expected [{"token": "..."}, ...] with at least one entry`);
  }
  return tokens;
}

/** Seeds `agents` agents with `metadataKeys` keys each into the database at `url`; returns their tokens. */
async function seedTokens(url: string, agents: number, metadataKeys: number): Promise<string[]> {
  const sql = connect(url, { max: 1, applicationName: 'agentgate-loadtest' });
  try {
    await migrate(sql);
    const seeded = await seed(sql, { agents, metadataKeys, prebuildFraction: 0 });
    return seeded.map((a) => a.token);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** `agentgate loadtest ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseLoadtestArgs(argv, env);
  let tokens: string[];
  if (args.tokensFile) {
    tokens = readTokens(args.tokensFile);
    if (args.agents !== undefined) {
      if (args.agents > tokens.length) {
        throw new UsageError(`--agents ${args.agents} but ${args.tokensFile} holds only ${tokens.length} tokens`);
      }
      tokens = tokens.slice(0, args.agents);
    }
  } else {
    process.stderr.write(`loadtest: seeding ${args.agents} agents...\n`);
    tokens = await seedTokens(args.databaseUrl!, args.agents!, args.metadataKeys);
  }
  const procs = args.procs ?? Math.max(1, Math.ceil(tokens.length / AGENTS_PER_PROC));

  const abort = new AbortController();
  // Quiet: the progress line is being redrawn on the terminal.
  const stopInterrupts = onInterrupt(abort);
  const printer = new ProgressPrinter(process.stderr, 'loadtest');
  let report: LoadReport;
  try {
    report = await runLoad({
      url: args.url,
      tokens,
      mode: args.mode,
      durationMs: args.durationMs,
      metadataKeys: args.metadataKeys,
      procs,
      rampPerSec: args.rampPerSec,
      requestTimeoutMs: args.requestTimeoutMs,
      onProgress: (p) => printer.update(p),
      progressEveryMs: printer.intervalMs,
      signal: abort.signal,
    });
  } finally {
    printer.done();
    stopInterrupts();
  }
  process.stdout.write(`${formatSummary(report)}\n`);
  // The JSON report of SPEC §9 (and a few extra fields), and its page.
  writeReports('loadtest', report, { json: args.jsonFile, html: args.htmlFile });
  if (report.connected === 0) {
    process.stderr.write(`loadtest: ${noConnectionLine(report, args.url)}\n`);
    return 1;
  }
  return abort.signal.aborted ? 130 : 0;
}
