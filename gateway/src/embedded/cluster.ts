// Running PostgreSQL's own programs for the embedded cluster: where the cluster's files live (as
// root, under /var/lib/agentgate, reachable by the `postgres` user), initdb with scram-sha-256 and
// the password on stdin, and the postmaster started detached and watched until it is ready.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  cpSync,
  fstatSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import path from 'node:path';
import { mkdirReachable, type PgBinaries, ROOT_HOME, type ServerUser } from './binaries.js';
import { DataDirBusyError, postmasterOf } from './ownership.js';
import { createExclusive, euid } from './state.js';
import { UsageError } from '../ops/usage-error.js';

export const SUPERUSER = 'postgres';
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readIfThere(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function chownTree(dir: string, user: ServerUser): void {
  lchownSync(dir, user.uid, user.gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) chownTree(p, user);
    else lchownSync(p, user.uid, user.gid);
  }
}

const CLUSTERS = path.join(ROOT_HOME, 'clusters');

/**
 * Where `dataDir` leads, once it is trusted (SPEC §7), or undefined when there is nothing yet. As
 * root a symlink must be one that locateCluster made: to a directory right under ROOT_HOME/clusters
 * (root-owned, so only root makes entries there) that belongs to `user` or is gone. As a normal
 * user it must lead to a directory of our own. Anything else is refused with one line.
 */
export function trustedClusterDir(dataDir: string, user: ServerUser | undefined): string | undefined {
  const st = lstatSync(dataDir, { throwIfNoEntry: false });
  if (!st) return undefined;
  const refuse = (why: string) =>
    new UsageError(`${dataDir} ${why}; the embedded PostgreSQL refuses it: remove it, or choose another data dir`);
  if (st.isDirectory()) {
    if (!user && st.uid !== euid()) throw refuse(`is owned by uid ${st.uid}, not by this user`);
    return dataDir;
  }
  if (!st.isSymbolicLink()) throw refuse('is neither a directory nor a symbolic link');
  const target = path.resolve(path.dirname(dataDir), readlinkSync(dataDir));
  if (user) {
    mkdirReachable(CLUSTERS); // checks that it is root's, and makes it again if it was wiped
    if (path.dirname(target) !== CLUSTERS || !/^[A-Za-z0-9_-]+$/.test(path.basename(target)))
      throw refuse(`points to ${target}, not to a cluster of ${CLUSTERS}`);
    const t = lstatSync(target, { throwIfNoEntry: false });
    if (t && !(t.isDirectory() && t.uid === user.uid))
      throw refuse(`points to ${target}, which is not a directory of the ${user.name} user`);
    return target;
  }
  const t = statSync(target, { throwIfNoEntry: false });
  if (t && !(t.isDirectory() && t.uid === euid()))
    throw refuse(`points to ${target}, which is not a directory of this user`);
  return target;
}

/**
 * Where the cluster's files are (trustedClusterDir). As root: under ROOT_HOME/clusters, pointed to
 * by a symlink at `dataDir` (made on first use; a cluster an older agentgate kept in `dataDir` is
 * moved there).
 */
export function locateCluster(dataDir: string, user: ServerUser | undefined): string {
  const found = trustedClusterDir(dataDir, user);
  if (!user) return found ?? dataDir;
  if (found !== undefined && found !== dataDir) return found;
  const stateDir = path.dirname(dataDir);
  const label = `${path.basename(path.dirname(stateDir))}-${path.basename(stateDir)}`.replace(/[^A-Za-z0-9_-]+/g, '');
  const target = path.join(CLUSTERS, `${label}-${randomBytes(4).toString('hex')}`);
  if (found === dataDir) {
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
export async function initCluster(
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
  if (user) lchownSync(clusterDir, user.uid, user.gid);
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

/**
 * A cluster made by an older agentgate allowed `password` (clear text); its stored verifier is scram
 * already. pg_hba.conf belongs to the server's user, who may have made it a link or a FIFO: it is
 * read only as a plain file of that user, and replaced by a new file, never written through.
 */
export function upgradeToScram(clusterDir: string, user: ServerUser | undefined): void {
  const hba = path.join(clusterDir, 'pg_hba.conf');
  const refuse = () =>
    new UsageError(
      `${hba} is not a plain file of ${user ? `the ${user.name} user` : 'this user'}; remove ${clusterDir} to start over`,
    );
  let fd: number;
  try {
    fd = openSync(hba, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    throw refuse();
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1 || st.uid !== (user?.uid ?? euid())) throw refuse();
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const upgraded = text.replace(/^(\s*(?:local|host)\b.*?\s)(password|md5)(\s*)$/gm, '$1scram-sha-256$3');
  if (upgraded === text) return;
  const tmp = createExclusive(hba, upgraded, user);
  try {
    renameSync(tmp, hba);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export interface Server {
  child: ChildProcess;
  pid: number;
}

/** Spawns the postmaster and waits until its postmaster.pid says `ready`. */
export async function startServer(
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
        throw new DataDirBusyError(dataDir, postmasterOf(clusterDir)?.pid ?? 0);
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
