// A real HAProxy on loopback, run from a copy of a committed config whose addresses (the frontend's
// bind, each server's address, the stats socket) are moved onto this machine, and read through its
// stats socket. Stopped by PID.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { eventually } from './wait.ts';

export interface HaproxyProcess {
  /** ws://127.0.0.1:PORT of the frontend. */
  origin: string;
  child: ChildProcess;
  /** Every line HAProxy wrote (its log goes to stderr), each with when it arrived. */
  lines: { at: number; text: string }[];
  /** One row per proxy and server of `show stat`, by column name. */
  stat(): Promise<Record<string, string>[]>;
  /** The row of server `server` in backend `backend`. */
  server(backend: string, server: string): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

/** Replaces every match of `re` in `text`, and fails unless there were exactly `count`. */
function replaceExactly(text: string, re: RegExp, count: number, by: (m: string[]) => string): string {
  const hits = [...text.matchAll(re)].length;
  if (hits !== count) throw new Error(`the config has ${hits} lines matching ${re}, expected ${count}`);
  return text.replace(re, (...m: string[]) => by(m));
}

/**
 * Runs `haproxy` on `config` with its one `bind` on a free loopback port and server `name` at
 * `servers[name]`. The privilege lines of `global` (user, group, chroot) are left out and the log
 * goes to stderr; everything else is the config as written.
 */
export async function startHaproxy(
  haproxy: string,
  config: string,
  servers: Record<string, string>,
): Promise<HaproxyProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentgate-haproxy-'));
  const port = await freePort();
  const socket = path.join(dir, 'stats.sock');
  let text = replaceExactly(config, /^(\s*bind\s+)\S+/gm, 1, (m) => `${m[1]}127.0.0.1:${port}`);
  text = replaceExactly(
    text,
    /^(\s*server\s+(\S+)\s+)\S+/gm,
    Object.keys(servers).length,
    (m) => `${m[1]}${servers[m[2]!] ?? `unknown-server-${m[2]}`}`,
  );
  text = replaceExactly(text, /^(\s*stats socket\s+)\S+/gm, 1, (m) => `${m[1]}${socket}`);
  text = replaceExactly(text, /^(\s*log\s+)\/\S+.*$/gm, 1, (m) => `${m[1]}stderr format raw local0 info`);
  text = text.replace(/^\s*(user|group|chroot)\s.*$/gm, '');
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, text);

  const child = spawn(haproxy, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: { at: number; text: string }[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (l) => lines.push({ at: Date.now(), text: l }));
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const command = (cmd: string) =>
    new Promise<string>((resolve, reject) => {
      const c = net.connect(socket);
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      c.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      c.on('error', reject);
      c.end(`${cmd}\n`);
    });
  const stat = async () => {
    const [header, ...rows] = (await command('show stat')).trim().split('\n');
    const names = header!.replace(/^# /, '').split(',');
    return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [names[i], v])));
  };
  const server = async (backend: string, name: string) => {
    const row = (await stat()).find((r) => r['pxname'] === backend && r['svname'] === name);
    if (!row) throw new Error(`no server ${backend}/${name} in show stat`);
    return row;
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await eventually(
      'HAProxy to answer on its stats socket',
      async () => {
        if (child.exitCode !== null) throw new Error(`haproxy exited:\n${lines.map((l) => l.text).join('\n')}`);
        return (await stat()).length > 0;
      },
      { timeoutMs: 10_000 },
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { origin: `ws://127.0.0.1:${port}`, child, lines, stat, server, stop };
}
