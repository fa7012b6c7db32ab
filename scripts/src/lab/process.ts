// The one starter of a server under test (the gateway, the echo server), for the tools and the
// tests: a child process whose output lines are kept and read as JSON log lines, awaited until it
// logs `"msg":"listening"`, and stopped by PID (a signal, then SIGKILL after a bound).
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { httpBaseUrl } from './http.js';
import { livePids } from './interrupt.js';

/** `scripts/bin/agentgate.js`: the CLI as a user runs it (its compiled build, even under tsx). */
export const AGENTGATE_BIN = fileURLToPath(new URL('../../bin/agentgate.js', import.meta.url));

type LogEntry = Record<string, unknown>;

export interface ServerProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  /** ws://HOST:PORT/api/v2/workspaceagents/me/rpc ('' when not awaited: `untilListening: false`). */
  url: string;
  /** http://HOST:PORT ('' likewise). */
  httpUrl: string;
  /** Its stdout and stderr lines so far (the last `keepLines`). */
  lines: string[];
  /** Its last lines, for an error message. */
  tail(): string;
  /** The exit code, or the signal that killed it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log line (parsed) for which `pred` holds, kept lines included. */
  waitForLog(pred: (entry: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  /** Sends `signal` (to its whole process group with `group`, as a terminal's Ctrl-C does) and returns at once. */
  signal(signal: NodeJS.Signals, o?: { group?: boolean }): void;
  /** Sends `signal` (SIGTERM), SIGKILL after `killAfterMs`; resolves with the exit code. */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<number | null>;
}

export interface StartOptions {
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** How long it may take to log `listening` (default 30 s). */
  timeoutMs?: number;
  /** false: return as soon as it runs, without waiting for `listening`. */
  untilListening?: boolean;
  /** Its own process group, so that `signal(s, { group: true })` reaches its workers too. */
  detached?: boolean;
  /** stop(): SIGKILL after this long (default 15 s). */
  killAfterMs?: number;
  /** Output lines kept (default 1000). */
  keepLines?: number;
  /** Called when it exits on its own (not after stop() or signal()). */
  onUnexpectedExit?: (code: number | null, lines: string[]) => void;
}

/** `node` arguments that run the program `file`: its TypeScript source under tsx, or its build. */
export function nodeArgs(file: string | URL): string[] {
  const path = fileURLToPath(file);
  return path.endsWith('.ts') ? ['--import', 'tsx', path] : [path];
}

function parseLine(line: string): LogEntry | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null ? (v as LogEntry) : undefined;
  } catch {
    return undefined;
  }
}

/** The kept output of a child and the waiters for a log line. */
class OutputLog {
  readonly lines: string[] = [];
  private readonly waiters = new Set<{ pred: (e: LogEntry) => boolean; found: (e: LogEntry) => void }>();

  constructor(private readonly keep: number) {}

  add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.keep) this.lines.shift();
    if (this.waiters.size === 0) return;
    const entry = parseLine(line);
    if (!entry) return;
    for (const w of this.waiters) if (w.pred(entry)) w.found(entry);
  }

  tail(n = 60): string {
    return this.lines.slice(-n).join('\n');
  }

  /** The first kept or coming entry for which `pred` holds; `cancel` drops the wait. */
  wait(pred: (e: LogEntry) => boolean, timeoutMs: number): { found: Promise<LogEntry>; cancel(): void } {
    for (const l of this.lines) {
      const e = parseLine(l);
      if (e && pred(e)) return { found: Promise.resolve(e), cancel: () => {} };
    }
    let cancel = () => {};
    const found = new Promise<LogEntry>((resolve, reject) => {
      const w = {
        pred,
        found: (e: LogEntry) => {
          cancel();
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        cancel();
        reject(new Error(`log line not seen in ${timeoutMs} ms; output so far:\n${this.lines.join('\n')}`));
      }, timeoutMs);
      cancel = () => {
        clearTimeout(timer);
        this.waiters.delete(w);
      };
      this.waiters.add(w);
    });
    return { found, cancel };
  }
}

/** Starts `node ARGS` and (unless told not to) waits for its `listening` log line. */
export async function startServer(name: string, args: string[], o: StartOptions = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: o.env ?? process.env,
    detached: o.detached === true,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: could not start ${args.join(' ')}`);
  livePids.add(pid);
  const log = new OutputLog(o.keepLines ?? 1000);
  createInterface({ input: child.stdout! }).on('line', (l) => log.add(l));
  createInterface({ input: child.stderr! }).on('line', (l) => log.add(l));
  let stopping = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      livePids.delete(pid);
      if (!stopping) o.onUnexpectedExit?.(code, log.lines);
      resolve({ code, signal });
    }),
  );
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', killAfterMs = o.killAfterMs ?? 15_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    stopping = true;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    const { code } = await exited;
    clearTimeout(timer);
    return code;
  };
  const server: ServerProcess = {
    name,
    pid,
    child,
    url: '',
    httpUrl: '',
    lines: log.lines,
    tail: () => log.tail(),
    exited,
    waitForLog: (pred, timeoutMs = 10_000) => log.wait(pred, timeoutMs).found,
    signal(signal, s = {}) {
      stopping = true;
      if (s.group) process.kill(-pid, signal);
      else child.kill(signal);
    },
    stop,
  };
  if (o.untilListening === false) return server;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const listening = log.wait((e) => e['msg'] === 'listening' && typeof e['url'] === 'string', timeoutMs);
  try {
    const entry = await Promise.race([
      listening.found.catch(() => {
        throw new Error(`${name} did not listen within ${timeoutMs} ms:\n${log.tail()}`);
      }),
      exited.then(({ code }) => {
        throw new Error(`${name} exited with ${code} before listening:\n${log.tail()}`);
      }),
    ]);
    server.url = String(entry['url']);
    server.httpUrl = httpBaseUrl(server.url);
    return server;
  } catch (e) {
    listening.cancel();
    await stop('SIGTERM', 2000);
    throw e;
  }
}

export interface GatewayStart extends Omit<StartOptions, 'env'> {
  /** For messages (default `gateway`). */
  name?: string;
  /** Its DATABASE_URL, through the environment (argv is world-readable in `ps`); without it, its embedded PostgreSQL. */
  databaseUrl?: string;
  /** `serve` flags after `--listen 127.0.0.1:0`, e.g. ['--workspace-cache', 'off']. */
  args?: string[];
  /** AGENTGATE_LOG_LEVEL (default info). */
  logLevel?: string;
  /** Added to this process's environment (which loses its DATABASE_URL). */
  env?: Record<string, string>;
}

/** `agentgate serve` on a free loopback port: the gateway under test of the tools and the tests. */
export function startGateway(o: GatewayStart = {}): Promise<ServerProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, AGENTGATE_LOG_LEVEL: o.logLevel ?? 'info' };
  delete env['DATABASE_URL'];
  if (o.databaseUrl !== undefined) env['DATABASE_URL'] = o.databaseUrl;
  Object.assign(env, o.env);
  const args = [AGENTGATE_BIN, 'serve', '--listen', '127.0.0.1:0', ...(o.args ?? [])];
  return startServer(o.name ?? 'gateway', args, { ...o, env });
}
