// What Linux's /proc says of a process: the fields of /proc/<pid>/stat, for the embedded
// PostgreSQL's owner checks (PID reuse, parents) and the tools' CPU and memory measurements.
import { readFileSync } from 'node:fs';

/** The fields of /proc/<pid>/stat from the 3rd on (state, ppid, ...), or undefined when it is gone. */
export function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: the fields after it start past the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
