// Starts a server under test (the gateway or the echo server) as its own process, waits for its
// `"msg":"listening"` log line, and stops it by PID: SIGTERM, then SIGKILL after a bound.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export interface ServerProcess {
  name: string;
  pid: number;
  /** ws://HOST:PORT/api/v2/workspaceagents/me/rpc */
  url: string;
  /** The last lines it printed (stdout and stderr), for error messages. */
  tail(): string;
  /** Sends SIGTERM, waits up to `graceMs`, then SIGKILL; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

/** PIDs of every server started here and not yet stopped, for a last-resort cleanup. */
export const liveServerPids = new Set<number>();

const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');

/** `node <file>` arguments for a compiled entry of this package (or its source under tsx). */
export function scriptCommand(relativeToBench: string): string[] {
  const file = fileURLToPath(new URL(relativeToBench.replace(/\.js$/, fromSource ? '.ts' : '.js'), import.meta.url));
  return fromSource ? ['--import', 'tsx', file] : [file];
}

/** `node scripts/bin/agentgate.js`: the CLI of this package (its compiled build, even under tsx). */
function cliCommand(): string[] {
  return [fileURLToPath(new URL('../../bin/agentgate.js', import.meta.url))];
}

/**
 * `agentgate serve` on `databaseUrl`, on a free loopback port, logging at info, with `extra` flags:
 * the gateway under test of bench, soak, fuzz, scrape and staleness.
 */
export function startGatewayServer(
  name: string,
  databaseUrl: string,
  extra: string[],
  opts: { timeoutMs?: number } = {},
): Promise<ServerProcess> {
  // The URL (with its password) goes through the environment: argv is world-readable in `ps`.
  const args = [...cliCommand(), 'serve', '--listen', '127.0.0.1:0', ...extra];
  return startServer(name, args, { env: { AGENTGATE_LOG_LEVEL: 'info', DATABASE_URL: databaseUrl }, ...opts });
}

/**
 * Ctrl-C handling of a long run (returns its remover): the first SIGINT/SIGTERM aborts `abort` (the run stops and cleans
 * up); a second kills every process this one started, by PID, and exits 130.
 */
export function onInterrupt(abort: AbortController, log: (line: string) => void, morePids: () => number[]): () => void {
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    abort.abort();
    log(interrupts > 1 ? 'interrupted again: killing everything' : 'interrupted: stopping (Ctrl-C again to kill)');
    if (interrupts > 1) {
      for (const pid of [...liveServerPids, ...morePids()]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

export async function startServer(
  name: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ServerProcess> {
  const child: ChildProcess = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: could not start ${args.join(' ')}`);
  liveServerPids.add(pid);
  const lines: string[] = [];
  let onListening: ((url: string) => void) | undefined;
  const onLine = (line: string) => {
    lines.push(line);
    if (lines.length > 40) lines.shift();
    if (!onListening || !line.includes('"listening"')) return;
    try {
      const entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
      if (entry.msg === 'listening' && typeof entry.url === 'string') onListening(entry.url);
    } catch {
      /* not a JSON line */
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      liveServerPids.delete(pid);
      resolve(code);
    }),
  );
  const tail = () => lines.join('\n');
  const stop = async (graceMs = 15_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  const timeoutMs = opts.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    const url = await Promise.race([
      new Promise<string>((resolve) => {
        onListening = resolve;
      }),
      exited.then((code) => {
        throw new Error(`${name} exited with ${code} before listening:\n${tail()}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${name} did not listen within ${timeoutMs} ms:\n${tail()}`)),
          timeoutMs,
        );
      }),
    ]);
    onListening = undefined;
    return { name, pid, url, tail, stop };
  } catch (e) {
    await stop(2000);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
