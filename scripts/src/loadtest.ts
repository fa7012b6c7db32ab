// `npx agentgate loadtest` (SPEC §9): holds N agent sockets over P worker processes, drives stats
// and metadata at the given intervals (or a fixed total rate, or a closed loop), shows progress on
// stderr, prints a summary on stdout and optionally writes the JSON report.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseFlags } from '@agentgate/gateway/config';
import { connect } from '@agentgate/gateway/store/db';
import { migrate } from '@agentgate/gateway/store/migrate';
import { parseDuration } from '@agentgate/shared';
import { formatSummary, ProgressPrinter } from './loadtest/report.js';
import { type LoadMode, type LoadReport, liveWorkerPids, runLoad } from './loadtest/run-load.js';
import { seed } from './seed.js';

/** An error the user fixes by changing the command line: one line, exit 2 (see gateway cli.ts). */
export class UsageError extends Error {
  readonly userError = true;
  override name = 'UsageError';
}

/** Agents per worker process by default: well under the 20 000 open files of one process. */
export const AGENTS_PER_PROC = 15_000;
export const DEFAULT_METADATA_KEYS = 4;

export interface LoadtestArgs {
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
}

const FLAGS = [
  '--url',
  '--tokens',
  '--database-url',
  '--agents',
  '--duration',
  '--stats-interval',
  '--metadata-interval',
  '--metadata-keys',
  '--procs',
  '--rate',
  '--inflight',
  '--ramp',
  '--request-timeout',
  '--json',
];

export function durationFlag(flags: Map<string, string>, name: string, fallback: string, minMs = 1): number {
  const raw = flags.get(name) ?? fallback;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < minMs)
    throw new UsageError(`invalid ${name}: expected a duration like 500ms, 30s or 5m`);
  return ms;
}

export function intFlag(flags: Map<string, string>, name: string, min: number): number | undefined {
  const raw = flags.get(name);
  if (raw === undefined) return undefined;
  const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw new UsageError(`invalid ${name}: expected an integer of at least ${min}`);
  return n;
}

export function parseLoadtestArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): LoadtestArgs {
  const flags = parseFlags(argv, FLAGS);
  const url = flags.get('--url');
  if (!url) throw new UsageError('missing --url WS_URL (ws://HOST:PORT/api/v2/workspaceagents/me/rpc)');
  if (!/^wss?:\/\/./.test(url)) throw new UsageError('invalid --url: expected a ws:// or wss:// URL');
  const tokensFile = flags.get('--tokens');
  const databaseUrl =
    flags.get('--database-url') ?? (flags.has('--tokens') ? undefined : env['DATABASE_URL'] || undefined);
  const agents = intFlag(flags, '--agents', 1);
  if (tokensFile && flags.has('--database-url'))
    throw new UsageError('give either --tokens or --database-url, not both');
  if (!tokensFile) {
    if (!databaseUrl) throw new UsageError('missing --tokens FILE (or --database-url URL --agents N to seed agents)');
    if (!/^postgres(ql)?:\/\/./.test(databaseUrl))
      throw new UsageError('invalid --database-url: expected a postgres:// URL');
    if (agents === undefined) throw new UsageError('missing --agents N: how many agents to seed');
  }
  const rate = intFlag(flags, '--rate', 1);
  const inflight = intFlag(flags, '--inflight', 1);
  if (rate !== undefined && inflight !== undefined) throw new UsageError('give either --rate or --inflight, not both');
  let mode: LoadMode;
  if (rate !== undefined) mode = { kind: 'rate', framesPerSec: rate };
  else if (inflight !== undefined) mode = { kind: 'inflight', perAgent: inflight };
  else {
    mode = {
      kind: 'interval',
      statsIntervalMs: durationFlag(flags, '--stats-interval', '1s'),
      metadataIntervalMs: durationFlag(flags, '--metadata-interval', '1s'),
    };
  }
  return {
    url,
    tokensFile,
    databaseUrl,
    agents,
    durationMs: durationFlag(flags, '--duration', '60s', 100),
    mode,
    metadataKeys: intFlag(flags, '--metadata-keys', 0) ?? DEFAULT_METADATA_KEYS,
    procs: intFlag(flags, '--procs', 1),
    rampPerSec: intFlag(flags, '--ramp', 1) ?? 1000,
    requestTimeoutMs: durationFlag(flags, '--request-timeout', '30s', 10),
    jsonFile: flags.get('--json'),
  };
}

/** Tokens from a seed output file: `[{agentId, workspaceId, token}]` (plain strings are accepted too). */
export function readTokens(file: string): string[] {
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
export async function seedTokens(url: string, agents: number, metadataKeys: number): Promise<string[]> {
  const sql = connect(url, { max: 1, applicationName: 'agentgate-loadtest' });
  try {
    await migrate(sql);
    const seeded = await seed(sql, { agents, metadataKeys, prebuildFraction: 0 });
    return seeded.map((a) => a.token);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The JSON report of SPEC §9 (and a few extra fields). */
export function reportJson(r: LoadReport): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const args = parseLoadtestArgs(argv);
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
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    abort.abort();
    if (interrupts > 1) {
      for (const pid of liveWorkerPids) process.kill(pid, 'SIGKILL');
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
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
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(`${formatSummary(report)}\n`);
  if (args.jsonFile) writeFileSync(args.jsonFile, reportJson(report));
  if (report.connected === 0) {
    process.stderr.write('loadtest: no agent could connect\n');
    return 1;
  }
  return abort.signal.aborted ? 130 : 0;
}
