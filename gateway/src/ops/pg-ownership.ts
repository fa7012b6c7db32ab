// Who owns an embedded PostgreSQL (SPEC §7: never stop a server that a live gateway uses). The
// process that starts a cluster records itself in `<name>.owner` beside the data, by PID, start time
// (/proc/<pid>/stat) and PID namespace, before it spawns the server. A running server is an orphan
// only when that owner is gone or its PID now names another process — not when the server's parent
// is PID 1, which it is for a gateway that is PID 1 in a container.
import { existsSync, linkSync, readFileSync, readlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from './usage-error.js';

export interface OwnerRecord {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot); tells a reused PID apart. */
  start: string | undefined;
  /** `pid:[inode]` of the owner's PID namespace: its PID means nothing in another namespace. */
  pidns: string | undefined;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields from the 3rd on, after the command name in parentheses (which may hold spaces).
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

export function parentOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[1]) : undefined;
}

function startOf(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

function ownPidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/** This process, as an owner record. */
function self(): OwnerRecord {
  return { pid: process.pid, start: startOf(process.pid), pidns: ownPidNamespace() };
}

/** Whether `o` (seen from this PID namespace) still runs; in another namespace it cannot be told. */
export function ownerState(o: OwnerRecord): 'alive' | 'gone' | 'unknown' {
  if (o.pidns !== undefined && ownPidNamespace() !== undefined && o.pidns !== ownPidNamespace()) return 'unknown';
  if (!alive(o.pid)) return 'gone';
  const start = startOf(o.pid);
  if (o.start !== undefined && start !== undefined && start !== o.start) return 'gone'; // PID reused
  return 'alive';
}

function ownerFile(dataDir: string): string {
  return path.join(path.dirname(dataDir), `${path.basename(dataDir)}.owner`);
}

export function readOwner(dataDir: string): OwnerRecord | undefined {
  try {
    const o = JSON.parse(readFileSync(ownerFile(dataDir), 'utf8')) as Partial<OwnerRecord>;
    if (typeof o.pid !== 'number') return undefined;
    return { pid: o.pid, start: o.start ?? undefined, pidns: o.pidns ?? undefined };
  } catch {
    return undefined;
  }
}

/**
 * Records this process as the owner unless there is one already: false then. Atomic (the record is
 * written aside and hard-linked into place), so two starters never both see themselves recorded.
 */
export function claimOwner(dataDir: string): boolean {
  const file = ownerFile(dataDir);
  const tmp = `${file}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify(self()), { mode: 0o600 });
  try {
    linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}

/** Removes the owner record if it names this process. */
export function releaseOwner(dataDir: string): void {
  const o = readOwner(dataDir);
  const me = self();
  if (o && o.pid === me.pid && o.start === me.start && existsSync(ownerFile(dataDir))) unlinkSync(ownerFile(dataDir));
}

/** Removes a record of an owner that is gone. */
export function dropOwner(dataDir: string): void {
  try {
    unlinkSync(ownerFile(dataDir));
  } catch {
    /* already gone */
  }
}

/** PID in the data dir's postmaster.pid, if that process still runs (and is a postgres, where /proc says). */
export function runningPostmaster(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  if (!existsSync('/proc/self/comm')) return pid; // no /proc: trust the PID
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('postgres') ? pid : undefined;
  } catch {
    return undefined; // exited meanwhile
  }
}

/** Another live process uses the data dir (a second `npm start` on the same data): one line, exit 2. */
export class DataDirBusyError extends UsageError {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(`the embedded PostgreSQL data dir ${dataDir} is in use by PID ${pid} (is another agentgate running?)`);
    this.name = 'DataDirBusyError';
  }
}
