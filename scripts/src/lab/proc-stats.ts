// CPU time and resident memory of a process (and of PostgreSQL's backends), read from /proc.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { statFields } from '@agentgate/gateway/ops/proc';

/** Linux reports utime/stime in clock ticks of 1/100 s (USER_HZ). */
const MS_PER_TICK = 10;

/** utime + stime of `pid` in ms (0 when the process is gone). */
export function cpuMs(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  // After the name: [0] state, [1] ppid, ... [11] utime, [12] stime (fields 14 and 15 of stat).
  return (Number(f[11]) + Number(f[12])) * MS_PER_TICK;
}

/** Resident set size of `pid` in KiB (VmRSS; 0 when the process is gone). */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Median of a few RSS samples of `pid` (KiB): one sample can land just before or after a GC. */
export async function settledRss(pid: number, o: { samples?: number; everyMs?: number } = {}): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < (o.samples ?? 5); i++) {
    if (i > 0) await sleep(o.everyMs ?? 400);
    xs.push(rssKiB(pid));
  }
  xs.sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)]!;
}

/** PIDs whose parent is `ppid` (e.g. PostgreSQL's backends under its postmaster). */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && Number(f[1]) === ppid) out.push(Number(name));
  }
  return out;
}

/** CPU ms per PID of a process tree's root and its direct children, to diff two snapshots by PID. */
export function treeCpu(root: number): Map<number, number> {
  const m = new Map<number, number>([[root, cpuMs(root)]]);
  for (const pid of childPids(root)) m.set(pid, cpuMs(pid));
  return m;
}

/** CPU ms spent between two treeCpu snapshots (a process born in between counts from 0). */
export function treeCpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0;
  for (const [pid, t] of after) ms += t - (before.get(pid) ?? 0);
  return ms;
}
