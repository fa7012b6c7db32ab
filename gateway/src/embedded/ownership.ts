// Who owns an embedded PostgreSQL (SPEC §7: never stop a server that a live gateway uses). The
// process that starts a cluster records itself in `<name>.owner` beside the data, by PID, start time
// (/proc/<pid>/stat) and PID namespace, before it spawns the server. A running server is an orphan
// only when that owner is gone or its PID now names another process — not when the server's parent
// is PID 1, which it is for a gateway that is PID 1 in a container. A PID read from postmaster.pid is
// that cluster's server only if the process works in the cluster's directory and started when the
// file says: after a reboot the PID may name anything, another PostgreSQL included.
import { existsSync, linkSync, readFileSync, readlinkSync, realpathSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { createExclusive, readForeignFile, readStateFile } from './state.js';
import { UsageError } from '../ops/usage-error.js';
import { statFields } from '../ops/proc.js';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on every Linux architecture we run on). */
const CLK_TCK = 100;
/** postmaster.pid records its start in whole seconds, and /proc/stat's btime is whole seconds too. */
const START_SLACK_S = 2;

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

export function parentOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[1]) : undefined;
}

function startOf(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** When `pid` started, in seconds since the epoch: boot time (/proc/stat btime) plus its start in ticks. */
function startedAt(pid: number): number | undefined {
  const ticks = Number(startOf(pid));
  let btime = Number.NaN;
  try {
    btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
  } catch {
    /* no /proc */
  }
  return Number.isFinite(ticks) && btime > 0 ? btime + ticks / CLK_TCK : undefined;
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
  const text = readStateFile(ownerFile(dataDir));
  if (text === undefined) return undefined;
  try {
    const o = JSON.parse(text) as Partial<OwnerRecord>;
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
  const tmp = createExclusive(file, JSON.stringify(self()));
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

export interface Postmaster {
  pid: number;
  /**
   * `ours`: the cluster's own server. `other`: another process (not a postgres, or one working in
   * another directory): its postmaster.pid is stale. `unsure`: it cannot be told — a postgres in
   * this directory whose start time does not match, or no /proc to ask.
   */
  verdict: 'ours' | 'other' | 'unsure';
}

/**
 * The live process that `clusterDir`/postmaster.pid names, if any (SPEC §7): line 1 its PID, line 3
 * its start in seconds since the epoch. Ours when /proc/<pid>/cwd is the cluster's directory and
 * its start time matches within START_SLACK_S.
 */
export function postmasterOf(clusterDir: string): Postmaster | undefined {
  const lines = readForeignFile(path.join(clusterDir, 'postmaster.pid'))?.split('\n') ?? [];
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  if (!existsSync('/proc/self/cwd')) return { pid, verdict: 'unsure' };
  let comm: string;
  let cwd: string;
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'utf8');
    cwd = readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return alive(pid) ? { pid, verdict: 'unsure' } : undefined; // hidden from us, or exited meanwhile
  }
  if (!comm.startsWith('postgres') || cwd !== realpathSync(clusterDir)) return { pid, verdict: 'other' };
  const recorded = Number(lines[2]);
  const started = startedAt(pid);
  const matches = started !== undefined && Number.isFinite(recorded) && Math.abs(started - recorded) <= START_SLACK_S;
  return { pid, verdict: matches ? 'ours' : 'unsure' };
}

/** The PID of the data dir's own running server (postmasterOf says `ours`), if one runs. */
export function runningPostmaster(dataDir: string): number | undefined {
  try {
    const p = postmasterOf(dataDir);
    return p?.verdict === 'ours' ? p.pid : undefined;
  } catch {
    return undefined; // the directory vanished meanwhile
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
