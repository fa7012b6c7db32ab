// Starts the real gateway CLI (`agentgate serve`) as a child process against a test database and
// waits for its `"msg":"listening"` line. Stopped by PID with a real signal.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { AGENTGATE_BIN, cliEnv } from './cli.ts';

export interface GatewayProcess {
  /** ws://127.0.0.1:PORT/api/v2/workspaceagents/me/rpc */
  url: string;
  /** http://127.0.0.1:PORT */
  httpUrl: string;
  child: ChildProcess;
  /** Every stdout/stderr line so far (JSON log lines and anything else). */
  lines: string[];
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Sends `signal` (to the whole process group with `group`, as a terminal's Ctrl-C does) and returns at once. */
  signal(signal: NodeJS.Signals, o?: { group?: boolean }): void;
  /** The exit code, or the signal that killed the process. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log line (parsed) for which `pred` holds. */
  waitForLog(pred: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export interface StartOptions {
  /** Without it: the embedded PostgreSQL (pass `--data-dir`); DATABASE_URL is taken out of the environment. */
  databaseUrl?: string;
  /** Extra `serve` flags, e.g. ['--workspace-cache', 'off']. */
  args?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Return as soon as the process runs, without waiting for `listening` (url and httpUrl are then empty). */
  untilListening?: boolean;
  /** Its own process group (so that `signal(s, { group: true })` reaches the workers too, as Ctrl-C does). */
  detached?: boolean;
}

export async function startGateway(opts: StartOptions): Promise<GatewayProcess> {
  const child = spawn(
    process.execPath,
    [
      AGENTGATE_BIN,
      'serve',
      ...(opts.databaseUrl !== undefined ? ['--database-url', opts.databaseUrl] : []),
      '--listen',
      '127.0.0.1:0',
      ...(opts.args ?? []),
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...cliEnv(), AGENTGATE_LOG_LEVEL: 'debug', ...opts.env },
      detached: opts.detached === true,
    },
  );
  const lines: string[] = [];
  const waiters: { pred: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] =
    [];
  const onLine = (line: string) => {
    lines.push(line);
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    for (const w of [...waiters]) {
      if (w.pred(entry)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(entry);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  let stopping = false;
  const exitedWith = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const exited = exitedWith.then((e) => e.code);
  // A gateway that dies on its own is a bug: show what it said last, so the failure can be read.
  void exited.then((code) => {
    if (!stopping) {
      process.stderr.write(`gateway exited unexpectedly with ${code}; last output:\n${lines.slice(-60).join('\n')}\n`);
    }
  });

  const waitForLog = (pred: (e: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    for (const l of lines) {
      try {
        const e = JSON.parse(l) as Record<string, unknown>;
        if (pred(e)) return Promise.resolve(e);
      } catch {
        /* not JSON */
      }
    }
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`log line not seen in ${timeoutMs} ms; output so far:\n${lines.join('\n')}`)),
        timeoutMs,
      );
      waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(t);
          resolve(e);
        },
      });
    });
  };

  const listening =
    opts.untilListening === false
      ? { url: '' }
      : await Promise.race([
          waitForLog((e) => e['msg'] === 'listening', opts.timeoutMs ?? 20_000),
          exited.then((code) => {
            throw new Error(`gateway exited with ${code} before listening:\n${lines.join('\n')}`);
          }),
        ]);
  const url = String(listening['url']);
  const httpUrl = url.replace(/^ws:/, 'http:').replace(/\/api\/.*$/, '');
  return {
    url,
    httpUrl,
    child,
    lines,
    waitForLog,
    exited: exitedWith,
    signal(signal, o = {}) {
      stopping = true;
      if (o.group) process.kill(-child.pid!, signal);
      else child.kill(signal);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      stopping = true;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 40_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}
