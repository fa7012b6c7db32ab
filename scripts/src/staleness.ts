// `npx agentgate staleness` (SPEC §8): how long an identity change takes to reach the sessions.
// Starts R replicas (`agentgate serve --workers W`, refresh interval 1 h so that only the push
// counts) on one PostgreSQL (embedded by default, with pg_stat_statements), seeds and connects
// R × N agents (agent i on replica i mod R), then makes C changes — workspace renames, prebuild
// claims, token rotations — each in its own committed statement, and measures per change the time
// from the change sent until the affected session reflects it (changes.ts says how). Prints
// progress to stderr, a summary p50/p99/max per kind and overall, and optionally writes JSON.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { type OptionTable, parse, UsageError } from '@agentgate/gateway/options';
import { connect, type Sql } from '@agentgate/gateway/store/db';
import { migrate } from '@agentgate/gateway/store/migrate';
import { AgentClient, ConnectRefusedError, PREBUILDS_OWNER_ID } from '@agentgate/shared';
import {
  type BenchDatabase,
  readDbCounters,
  resetStatements,
  startBenchDatabase,
  workspaceScans,
} from './bench/bench-db.js';
import { liveServerPids, type ServerProcess, startGatewayServer } from './bench/server-process.js';
import { seed } from './seed.js';
import {
  CHANGE_KINDS,
  type ChangeKind,
  type ChangeResult,
  makeChange,
  SessionPoller,
  type Summary,
  summarize,
  type Target,
} from './staleness/changes.js';

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

interface Database {
  /** The replicas connect here. */
  url: string;
  /** Seeding and changes. */
  admin: Sql;
  serverVersion: string;
  /** The embedded bench database: its pg_stat_statements counts the gateways' statements. */
  bench?: BenchDatabase;
  close(): Promise<void>;
}

async function openDatabase(url: string | undefined): Promise<Database> {
  if (!url) {
    const bench = await startBenchDatabase();
    return { url: bench.gatewayUrl, admin: bench.admin, serverVersion: bench.serverVersion, bench, close: bench.close };
  }
  const admin = connect(url, { max: 4, applicationName: 'agentgate-staleness' });
  await migrate(admin);
  const [v] = await admin<{ server_version: string }[]>`show server_version`;
  return {
    url,
    admin,
    serverVersion: v?.server_version ?? 'unknown',
    close: () => admin.end({ timeout: 5 }),
  };
}

/** Waits until every replica's LISTEN connection is up (agentgate_identity_listening on /metrics). */
async function waitListening(httpUrls: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const url of httpUrls) {
    for (;;) {
      const text = await fetch(`${url}/metrics`)
        .then((r) => r.text())
        .catch(() => '');
      const m = /^agentgate_identity_listening(?:\{[^}]*\})?\s+(\S+)/m.exec(text);
      if (m && Number(m[1]) >= 1) break;
      if (Date.now() > deadline) throw new Error(`${url} is not LISTENing for identity changes`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Runs `fn` over `items` with at most `width` at once. */
async function pool<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

function line(name: string, s: Summary): string {
  const timedOut = s.timedOut ? `  (${s.timedOut} timed out)` : '';
  return `${name.padEnd(8)} ${String(s.count).padStart(6)} ${String(s.p50).padStart(8)} ${String(s.p99).padStart(8)} ${String(s.max).padStart(8)}${timedOut}`;
}

/** `agentgate staleness ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = parse(STALENESS_OPTIONS, argv, env);
  const kinds = o.kinds as ChangeKind[];
  if (kinds.length === 0) throw new UsageError('--kinds: name at least one kind of change');
  const total = o.replicas * o.agents;
  const plan = Array.from({ length: o.changes }, (_, i) => kinds[i % kinds.length]!);
  const claims = plan.filter((k) => k === 'claim').length;
  if (o.changes > total)
    throw new UsageError(`--changes (${o.changes}) exceeds the agents (${total}): one change per agent`);
  if (o.idle > 0 && o.databaseUrl)
    throw new UsageError('--idle counts with pg_stat_statements of the embedded database: drop --database-url');

  const adminToken = `staleness-${Math.random().toString(36).slice(2)}`;
  const servers: ServerProcess[] = [];
  const clients: AgentClient[] = [];
  let db: Database | undefined;
  let poller: SessionPoller | undefined;
  const abort = new AbortController();
  const onSignal = () => {
    if (abort.signal.aborted) {
      for (const pid of [...liveServerPids, ...(db?.bench?.pg.pid ? [db.bench.pg.pid] : [])]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      process.exit(130);
    }
    abort.abort();
    log('interrupted: stopping (Ctrl-C again to kill)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const results: ChangeResult[] = [];
  let counters: { statements: number; workspaceReads: number } | undefined;
  let idle: IdleLoad | undefined;
  const started = performance.now();
  try {
    log(o.databaseUrl ? 'using the given database' : 'starting an embedded PostgreSQL (pg_stat_statements) ...');
    db = await openDatabase(o.databaseUrl);
    log(`seeding ${total} agents (${claims} of them unclaimed prebuilds) ...`);
    const seeded = await seed(db.admin, { agents: total, prebuildFraction: claims / total });
    const prebuildRows = await db.admin<{ id: string }[]>`
      select id from workspaces where owner_id = ${PREBUILDS_OWNER_ID} and id = any(${seeded.map((a) => a.workspaceId)}::uuid[])`;
    const prebuilds = new Set(prebuildRows.map((r) => r.id));

    log(`starting ${o.replicas} replica(s) x ${o.workers} worker(s) ...`);
    for (let r = 0; r < o.replicas; r++) {
      servers.push(
        await startGatewayServer(`replica ${r}`, db.url, [
          '--workers',
          String(o.workers),
          '--workspace-refresh-interval',
          `${o.refreshInterval}ms`,
          '--admin-token',
          adminToken,
          '--shutdown-timeout',
          '5s',
        ]),
      );
    }
    const httpUrls = servers.map((s) => s.url.replace(/^ws:/, 'http:').replace(/\/api\/.*$/, ''));
    await waitListening(httpUrls);

    log(`connecting ${total} agents ...`);
    const targets: Target[] = [];
    // Below the gateway's 64 token checks at once (SPEC §3); a 503 is retried.
    await pool(seeded, 32, async (a, i) => {
      if (abort.signal.aborted) return;
      const replica = i % o.replicas;
      const client = new AgentClient({ url: servers[replica]!.url, token: a.token, reconnect: false });
      for (let attempt = 1; ; attempt++) {
        try {
          await client.connect();
          break;
        } catch (e) {
          if (!(e instanceof ConnectRefusedError && e.status === 503) || attempt >= 20) throw e;
          await new Promise((r) => setTimeout(r, 100 * attempt));
        }
      }
      clients.push(client);
      const t: Target = { agentId: a.agentId, workspaceId: a.workspaceId, replica, client };
      client.once('close', (code) => {
        t.closedAt = Date.now();
        t.closeCode = code;
      });
      targets.push(t);
    });
    if (abort.signal.aborted) return 130;
    if (o.idle > 0 && db.bench) idle = await measureIdle(db.bench, o.refreshInterval, o.idle, total, abort.signal);
    if (abort.signal.aborted) return 130;

    // One change per agent: claims take the prebuilds, renames and rotations the others.
    const pick = { prebuild: targets.filter((t) => prebuilds.has(t.workspaceId)), owned: [] as Target[] };
    pick.owned = targets.filter((t) => !prebuilds.has(t.workspaceId));
    const work = plan.map((kind) => ({ kind, target: (kind === 'claim' ? pick.prebuild : pick.owned).shift()! }));
    if (work.some((w) => !w.target)) throw new Error('not enough agents for the planned changes');

    poller = new SessionPoller(httpUrls, adminToken);
    const scansBefore = db.bench ? await workspaceScans(db.admin) : 0;
    if (db.bench) await resetStatements(db.admin);
    log(`making ${o.changes} changes (${kinds.join(', ')}), ${o.concurrency} at a time ...`);
    const step = Math.max(1, Math.round(o.changes / 10));
    await pool(work, o.concurrency, async ({ kind, target }) => {
      if (abort.signal.aborted) return;
      const r = await makeChange({ admin: db!.admin, poller: poller!, timeoutMs: o.timeout }, kind, target);
      results.push(r);
      if (r.error) log(`${kind} of agent ${r.agentId}: ${r.error}`);
      if (results.length % step === 0 || results.length === o.changes) {
        const s = summarize(results);
        log(`${results.length}/${o.changes} changes: p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms`);
      }
    });
    if (db.bench) {
      const c = await readDbCounters(db.admin, scansBefore);
      counters = { statements: c.statements, workspaceReads: c.workspaceStatements };
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    poller?.stop();
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Promise.all(servers.map((s) => s.stop()));
    await db?.close();
  }

  const overall = summarize(results);
  const byKind = Object.fromEntries(kinds.map((k) => [k, summarize(results.filter((r) => r.kind === k))]));
  const out = process.stdout;
  out.write(`\nstaleness: from the change sent until every affected session reflects it (ms)\n`);
  out.write(
    `${'kind'.padEnd(8)} ${'count'.padStart(6)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}\n`,
  );
  for (const k of kinds) out.write(`${line(k, byKind[k]!)}\n`);
  out.write(`${line('all', overall)}\n\n`);
  if (idle) {
    out.write(
      `idle, ${total} sessions at a ${o.refreshInterval / 1000} s refresh interval: ${idle.statementsPerMin} ` +
        `statements/min, of which ${idle.workspaceReadsPerMin} refresh reads/min ` +
        `(${idle.refreshesPerMin} refreshes/min due)\n`,
    );
  }
  if (counters) {
    out.write(
      `gateway statements while changing: ${counters.statements} (${counters.workspaceReads} workspace reads, ` +
        `${(counters.workspaceReads / Math.max(1, results.length)).toFixed(2)} per change)\n`,
    );
  }
  const took = Math.round((performance.now() - started) / 1000);
  out.write(
    `${o.replicas} replica(s) x ${o.workers} worker(s), ${o.agents} agents each, refresh interval ` +
      `${o.refreshInterval / 1000} s; ${cpus().length} cores, Node ${process.version}, PostgreSQL ` +
      `${db?.serverVersion ?? '?'}; took ${took} s\n`,
  );
  if (o.json) {
    const report = {
      config: {
        replicas: o.replicas,
        workers: o.workers,
        agentsPerReplica: o.agents,
        changes: o.changes,
        kinds,
        concurrency: o.concurrency,
        refreshIntervalS: o.refreshInterval / 1000,
      },
      machine: { cores: cpus().length, node: process.version, postgres: db?.serverVersion ?? null },
      stalenessMs: { overall, byKind },
      ...(counters ? { statements: counters } : {}),
      ...(idle ? { idle } : {}),
      changes: results,
    };
    writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
  }
  return overall.timedOut > 0 || results.length < o.changes ? 1 : 0;
}

interface IdleLoad {
  sessions: number;
  refreshIntervalS: number;
  measuredS: number;
  /** Refreshes the timers make per minute: sessions / interval. */
  refreshesPerMin: number;
  statementsPerMin: number;
  workspaceReadsPerMin: number;
  top: { calls: number; query: string }[];
}

const abortableSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/**
 * The cost of the timers alone: after one refresh interval (the jittered first ticks are past),
 * the replicas' statements over `measureMs`, counted by pg_stat_statements.
 */
async function measureIdle(
  bench: BenchDatabase,
  intervalMs: number,
  measureMs: number,
  sessions: number,
  signal: AbortSignal,
): Promise<IdleLoad> {
  log(`idle: ${intervalMs / 1000} s of warm-up (one refresh interval), then ${measureMs / 1000} s counted ...`);
  await abortableSleep(intervalMs, signal);
  const scans = await workspaceScans(bench.admin);
  await resetStatements(bench.admin);
  const t0 = performance.now();
  await abortableSleep(measureMs, signal);
  const c = await readDbCounters(bench.admin, scans);
  const minutes = (performance.now() - t0) / 60_000;
  const perMin = (n: number) => Math.round((n / minutes) * 10) / 10;
  return {
    sessions,
    refreshIntervalS: intervalMs / 1000,
    measuredS: Math.round(minutes * 60),
    refreshesPerMin: Math.round((sessions / intervalMs) * 60_000 * 10) / 10,
    statementsPerMin: perMin(c.statements),
    workspaceReadsPerMin: perMin(c.workspaceStatements),
    top: c.top.map((t) => ({ calls: t.calls, query: t.query })),
  };
}
