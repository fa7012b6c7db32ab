// The embedded PostgreSQL's state directory and its files (SPEC §7: "It trusts no file another user
// controls"). The directory must be a real directory of the effective user that neither group nor
// others may write; its files are made exclusively, without following links (a temp name, then a
// rename), and an existing file is read only when it is a regular file of ours with a safe mode.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  type Stats,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { UsageError } from '../ops/usage-error.js';

const { O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = constants;

export const euid = (): number => process.geteuid?.() ?? 0;
const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** Why `st` (the state dir or one of its files) cannot be trusted, or undefined. */
function untrusted(st: Stats, badBits: number): string | undefined {
  if (st.uid !== euid()) return `is owned by uid ${st.uid}, not by this user (uid ${euid()})`;
  if (st.mode & badBits) return `has mode ${octal(st.mode)} (${st.mode & 0o022 ? 'writable' : 'readable'} by others)`;
  return undefined;
}

function openNoFollow(file: string, flags: number): number | undefined {
  try {
    return openSync(file, flags | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new UsageError(`${file} is a symbolic link; the embedded PostgreSQL refuses it`);
    if (code === 'ENOTDIR') throw new UsageError(`${file} is not a directory; the embedded PostgreSQL refuses it`);
    throw e;
  }
}

/**
 * Makes `stateDir` (mode 0700) if it is missing, and refuses it — one line, exit 2 — when it is a
 * symlink, not a directory, not owned by the effective user, or writable by group or others.
 */
export function secureStateDir(stateDir: string): void {
  mkdirSync(path.dirname(stateDir), { recursive: true, mode: 0o700 });
  try {
    mkdirSync(stateDir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const refuse = (why: string) =>
    new UsageError(
      `the state directory ${stateDir} ${why}; the embedded PostgreSQL refuses it: use a --data-dir of your own`,
    );
  const seen = lstatSync(stateDir);
  if (seen.isSymbolicLink()) throw refuse('is a symbolic link');
  if (!seen.isDirectory()) throw refuse('is not a directory');
  const fd = openNoFollow(stateDir, O_RDONLY | O_DIRECTORY);
  if (fd === undefined) throw refuse('vanished while it was being checked');
  try {
    const st = fstatSync(fd);
    if (st.ino !== seen.ino || st.dev !== seen.dev) throw refuse('was replaced while it was being checked');
    const why = untrusted(st, 0o022);
    if (why) throw refuse(why);
    fchmodSync(fd, 0o700); // ours and not writable by others: closing it to them is safe
  } finally {
    closeSync(fd);
  }
}

/**
 * The content of `file` in the state dir, or undefined when it is missing. Refused (UsageError) when
 * it is a symlink or not a regular file, not ours, writable by others, or — for a `secret` — readable
 * by them.
 */
export function readStateFile(file: string, o: { secret?: boolean } = {}): string | undefined {
  const fd = openNoFollow(file, O_RDONLY);
  if (fd === undefined) return undefined;
  try {
    const st = fstatSync(fd);
    const why = st.isFile() ? untrusted(st, o.secret ? 0o077 : 0o022) : 'is not a regular file';
    if (why) throw new UsageError(`${file} ${why}; the embedded PostgreSQL refuses it: remove it`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `content` to a new file beside `file` (O_EXCL|O_NOFOLLOW, mode 0600, given to `owner` if
 * any) and returns its name: never a write through a link or into a file someone else made.
 */
export function createExclusive(file: string, content: string, owner?: { uid: number; gid: number }): string {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, content);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  return tmp;
}

/**
 * Replaces `file` with `content`, mode 0600 (a rename: never a write through a link). An existing
 * `file` that is not a plain file of ours, or that others may read, is refused rather than replaced.
 */
export function writeStateFile(file: string, content: string): void {
  const st = lstatSync(file, { throwIfNoEntry: false });
  if (st) {
    const why = st.isFile()
      ? untrusted(st, 0o077)
      : st.isSymbolicLink()
        ? 'is a symbolic link'
        : 'is not a regular file';
    if (why) throw new UsageError(`${file} ${why}; the embedded PostgreSQL refuses it: remove it`);
  }
  const tmp = createExclusive(file, content);
  try {
    renameSync(tmp, file);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}

/**
 * The content of a file that another user (the `postgres` user, as root) may control — the
 * cluster's postmaster.pid — or undefined when it is missing, a symlink or not a regular file.
 * Never blocks on a FIFO; reads at most 64 KiB.
 */
export function readForeignFile(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(65_536);
    return buf.subarray(0, readSync(fd, buf)).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
