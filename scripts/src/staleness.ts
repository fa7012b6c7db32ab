// `npx agentgate staleness` (SPEC §8): how long an identity change takes to reach the sessions.
// Starts R replicas (`agentgate serve --workers W`, refresh interval 1 h so that only the push
// counts) on one PostgreSQL (embedded by default, with pg_stat_statements), seeds and connects
// R × N agents (agent i on replica i mod R), then makes C changes — workspace renames, prebuild
// claims, token rotations — each in its own committed statement, and measures per change the time
// from the change sent until the affected session reflects it (changes.ts says how). Prints
// progress to stderr, a summary p50/p99/max per kind and overall, and optionally writes JSON.
import { writeFileSync } from 'node:fs';
import { type OptionTable, type Options, parse, UsageError } from '@agentgate/gateway/options';
import { PREBUILDS_OWNER_ID } from '@agentgate/shared';
import { type LabDatabase, openDatabase } from './lab/database.js';
import { onInterrupt } from './lab/interrupt.js';
import { readDbCounters, resetStatements, workspaceScans } from './lab/statements.js';
import { type SeededAgent, seed } from './seed.js';
import {
  CHANGE_KINDS,
  type ChangeKind,
  type ChangeResult,
  makeChange,
  SessionPoller,
  summarize,
  type Target,
} from './staleness/changes.js';
import { Fleet, pool } from './staleness/fleet.js';
import { measureIdle } from './staleness/idle.js';
import { formatStaleness, type StalenessRun, stalenessJson } from './staleness/report.js';

export const STALENESS_OPTIONS = {
  replicas: {
    flag: '--replicas',
    kind: 'int',
    min: 1,
    max: 16,
    default: '2',
    help: 'gateway replicas (serve processes)',
  },
  workers: {
    flag: '--workers',
    kind: 'int',
    min: 1,
    max: 64,
    default: '2',
    help: 'worker processes per replica (passed to serve --workers)',
  },
  agents: { flag: '--agents', kind: 'int', min: 1, default: '1000', help: 'connected agents (sessions) per replica' },
  changes: { flag: '--changes', kind: 'int', min: 1, default: '500', help: 'identity changes to make and measure' },
  kinds: {
    flag: '--kinds',
    kind: 'list',
    choices: CHANGE_KINDS,
    default: CHANGE_KINDS.join(','),
    help: 'the kinds of change, taken in turn',
  },
  concurrency: {
    flag: '--concurrency',
    kind: 'int',
    min: 1,
    max: 64,
    default: '1',
    help: 'changes in flight at once',
  },
  refreshInterval: {
    flag: '--refresh-interval',
    kind: 'duration',
    min: 1000,
    default: '1h',
    help: 'the replicas’ --workspace-refresh-interval (the timer backstop)',
  },
  timeout: {
    flag: '--timeout',
    kind: 'duration',
    min: 100,
    default: '30s',
    help: 'a change not reflected within this counts as timed out',
  },
  idle: {
    flag: '--idle',
    kind: 'duration',
    min: 0,
    default: '0s',
    help: 'before the changes: one refresh interval of warm-up, then count the replicas’ statements per minute over this long (embedded database only)',
  },
  json: { flag: '--json', kind: 'out-file', help: 'write the results here' },
  databaseUrl: {
    flag: '--database-url',
    env: 'DATABASE_URL',
    kind: 'postgres-url',
    defaultHelp: 'embedded',
    help: 'the PostgreSQL to use (its schema is migrated); without it, a fresh embedded one',
  },
} as const satisfies OptionTable;

const log = (msg: string) => process.stderr.write(`staleness: ${msg}\n`);

type StalenessOptions = Options<typeof STALENESS_OPTIONS>;

/** The kind of each change, in turn; a usage error when they cannot be made. */
function planChanges(o: StalenessOptions): ChangeKind[] {
  const kinds = o.kinds as ChangeKind[];
  if (kinds.length === 0) throw new UsageError('--kinds: name at least one kind of change');
  const total = o.replicas * o.agents;
  if (o.changes > total)
    throw new UsageError(`--changes (${o.changes}) exceeds the agents (${total}): one change per agent`);
  if (o.idle > 0 && o.databaseUrl)
    throw new UsageError('--idle counts with pg_stat_statements of the embedded database: drop --database-url');
  return Array.from({ length: o.changes }, (_, i) => kinds[i % kinds.length]!);
}

/** `agentgate staleness ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = parse(STALENESS_OPTIONS, argv, env);
  const plan = planChanges(o);
  const abort = new AbortController();
  const stopInterrupts = onInterrupt(abort, { log });
  const started = performance.now();
  const fleet = new Fleet();
  let db: LabDatabase | undefined;
  let run: Omit<StalenessRun, 'serverVersion' | 'tookMs'> | undefined;
  try {
    log(o.databaseUrl ? 'using the given database' : 'starting an embedded PostgreSQL (pg_stat_statements) ...');
    db = await openDatabase({ url: o.databaseUrl, app: 'agentgate-staleness' });
    run = await staleness(o, plan, db, fleet, abort.signal);
  } finally {
    stopInterrupts();
    await fleet.close();
    await db?.close();
  }
  if (!run) return 130;
  const done: StalenessRun = { ...run, serverVersion: db.serverVersion, tookMs: performance.now() - started };
  const kinds = o.kinds as ChangeKind[];
  process.stdout.write(formatStaleness(o, kinds, done));
  if (o.json) writeFileSync(o.json, stalenessJson(o, kinds, done));
  return summarize(done.results).timedOut > 0 || done.results.length < o.changes ? 1 : 0;
}

/** Seeds, starts the replicas, connects the agents, then measures (undefined when interrupted before the changes). */
async function staleness(o: StalenessOptions, plan: ChangeKind[], db: LabDatabase, fleet: Fleet, signal: AbortSignal) {
  const total = o.replicas * o.agents;
  const claims = plan.filter((k) => k === 'claim').length;
  log(`seeding ${total} agents (${claims} of them unclaimed prebuilds) ...`);
  const seeded = await seed(db.admin, { agents: total, prebuildFraction: claims / total });
  const prebuilds = await prebuildWorkspaces(db, seeded);
  log(`starting ${o.replicas} replica(s) x ${o.workers} worker(s) ...`);
  const adminToken = `staleness-${Math.random().toString(36).slice(2)}`;
  const httpUrls = await fleet.startReplicas({ ...o, adminToken }, db.gatewayUrl);
  log(`connecting ${total} agents ...`);
  const targets = await fleet.connect(seeded, signal);
  if (signal.aborted) return undefined;
  const idle =
    o.idle > 0 && db.pg
      ? await measureIdle(db.admin, { intervalMs: o.refreshInterval, measureMs: o.idle, sessions: total, log }, signal)
      : undefined;
  if (signal.aborted) return undefined;
  // One change per agent: claims take the prebuilds, renames and rotations the others.
  const pick = {
    prebuild: targets.filter((t) => prebuilds.has(t.workspaceId)),
    owned: targets.filter((t) => !prebuilds.has(t.workspaceId)),
  };
  const work = plan.map((kind) => ({ kind, target: (kind === 'claim' ? pick.prebuild : pick.owned).shift()! }));
  if (work.some((w) => !w.target)) throw new Error('not enough agents for the planned changes');
  fleet.poller = new SessionPoller(httpUrls, adminToken);
  const scansBefore = db.pg ? await workspaceScans(db.admin) : 0;
  if (db.pg) await resetStatements(db.admin);
  log(`making ${o.changes} changes (${o.kinds.join(', ')}), ${o.concurrency} at a time ...`);
  const results = await makeChanges(o, work, { admin: db.admin, poller: fleet.poller, timeoutMs: o.timeout }, signal);
  let counters: StalenessRun['counters'];
  if (db.pg) {
    const c = await readDbCounters(db.admin, scansBefore);
    counters = { statements: c.statements, workspaceReads: c.workspaceStatements };
  }
  return { results, counters, idle };
}

/** The workspaces of `seeded` that are unclaimed prebuilds. */
async function prebuildWorkspaces(db: LabDatabase, seeded: SeededAgent[]): Promise<Set<string>> {
  const rows = await db.admin<{ id: string }[]>`
    select id from workspaces where owner_id = ${PREBUILDS_OWNER_ID} and id = any(${seeded.map((a) => a.workspaceId)}::uuid[])`;
  return new Set(rows.map((r) => r.id));
}

/** Makes every change, `concurrency` at a time, with progress on stderr. */
async function makeChanges(
  o: StalenessOptions,
  work: { kind: ChangeKind; target: Target }[],
  ctx: Parameters<typeof makeChange>[0],
  signal: AbortSignal,
): Promise<ChangeResult[]> {
  const results: ChangeResult[] = [];
  const step = Math.max(1, Math.round(o.changes / 10));
  await pool(work, o.concurrency, async ({ kind, target }) => {
    if (signal.aborted) return;
    const r = await makeChange(ctx, kind, target);
    results.push(r);
    if (r.error) log(`${kind} of agent ${r.agentId}: ${r.error}`);
    if (results.length % step === 0 || results.length === o.changes) {
      const s = summarize(results);
      log(`${results.length}/${o.changes} changes: p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms`);
    }
  });
  return results;
}
