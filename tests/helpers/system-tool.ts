// Debian tools that some checks use when the machine has them (systemd-analyze, kubectl, haproxy):
// where one is, looked up on PATH and in the sbin folders a non-root PATH may lack.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The path of the executable `name`, or undefined when this machine lacks it. */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}
