// `agentgate serve` on its embedded PostgreSQL (no DATABASE_URL), as `npm start` runs it: a child
// process (optionally behind a command prefix such as `unshare`), its output lines, its exit code.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, removeEmbeddedCluster, runningPostmaster } from '../../gateway/src/embedded/postgres.ts';
import { pgBinaries, serverUser } from '../../gateway/src/embedded/binaries.ts';
import { initCluster, locateCluster, startServer } from '../../gateway/src/embedded/cluster.ts';
import { httpBaseUrl } from '../../scripts/src/lab/http.ts';
import { AGENTGATE_BIN, cliEnv } from './cli.ts';

export interface Served {
  child: ChildProcess;
  out: string[];
  err: string[];
  exited: Promise<number | null>;
}

export function serveEmbedded(dataDir: string, o: { env?: Record<string, string>; prefix?: string[] } = {}): Served {
  const cmd = [
    ...(o.prefix ?? []),
    process.execPath,
    AGENTGATE_BIN,
    'serve',
    '--data-dir',
    dataDir,
    '--listen',
    '127.0.0.1:0',
  ];
  const child = spawn(cmd[0]!, cmd.slice(1), { env: cliEnv(o.env), stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  const err: string[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr!.on('data', (d: Buffer) => err.push(...d.toString().split('\n').filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, err, exited };
}

/** The gateway's http://host:port once it logs `listening` (60 s at most). */
export async function listening(s: Served): Promise<string> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    for (const line of s.out) {
      if (line.includes('"listening"')) {
        return httpBaseUrl(String((JSON.parse(line) as { url: string }).url));
      }
    }
    if (s.child.exitCode !== null) throw new Error(`serve exited ${s.child.exitCode}: ${s.err.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('serve did not listen within 60 s');
}

/** A fresh state directory (mode 0700, as mkdtemp makes it) and its cleanup, cluster included. */
export function embeddedWorkDir(prefix: string): {
  work: string;
  dataDir: string;
  cleanup(served: Served[]): Promise<void>;
} {
  const work = mkdtempSync(path.join(tmpdir(), prefix));
  const dataDir = path.join(work, 'state');
  return {
    work,
    dataDir,
    async cleanup(served) {
      for (const s of served) {
        if (s.child.exitCode === null && s.child.signalCode === null) {
          s.child.kill('SIGTERM');
          await s.exited;
        }
      }
      const pid = runningPostmaster(path.join(dataDir, 'pgdata'));
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
      removeEmbeddedCluster(path.join(dataDir, 'pgdata'));
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/**
 * A cluster as an agentgate older than the gateway's own role left it (SPEC §7 came later): one
 * superuser, whose password is `<dataDir>.secret`, and whatever `fill` puts in it through the URL
 * that agentgate used then (the superuser on database `postgres`). Stopped when `fill` is done.
 */
export async function olderAgentgateCluster(dataDir: string, fill: (url: string) => Promise<void>): Promise<void> {
  mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o700 });
  const user = serverUser();
  const bins = pgBinaries(user);
  const clusterDir = locateCluster(dataDir, user);
  const password = randomBytes(18).toString('base64url');
  writeFileSync(`${dataDir}.secret`, password, { mode: 0o600 });
  await initCluster(bins, clusterDir, password, user, () => {});
  const port = await freePort();
  const server = await startServer(bins, dataDir, clusterDir, port, {}, user, () => {});
  try {
    await fill(`postgres://postgres:${password}@127.0.0.1:${port}/postgres`);
  } finally {
    const exited = new Promise((r) => server.child.once('exit', r));
    server.child.kill('SIGINT');
    await exited;
  }
}

/** Whether the process `pid` still runs (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
