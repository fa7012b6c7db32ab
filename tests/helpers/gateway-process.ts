// The real gateway CLI (`agentgate serve`) as a child process against a test database, started by
// the lab's one process starter (scripts/src/lab/process.ts) with the tests' defaults: debug logs,
// every output line kept, 20 s to listen, 40 s from a stop signal to SIGKILL, and a gateway that
// dies on its own reported with its last output.
import { type GatewayStart, type ServerProcess, startGateway as start } from '../../scripts/src/lab/process.ts';

export type GatewayProcess = ServerProcess;

export interface StartOptions extends Pick<GatewayStart, 'databaseUrl' | 'args' | 'env' | 'timeoutMs' | 'detached'> {
  /** Return as soon as the process runs, without waiting for `listening` (url and httpUrl are then empty). */
  untilListening?: boolean;
}

export function startGateway(opts: StartOptions): Promise<GatewayProcess> {
  return start({
    logLevel: 'debug',
    timeoutMs: 20_000,
    killAfterMs: 40_000,
    keepLines: Number.POSITIVE_INFINITY,
    onUnexpectedExit: (code, lines) =>
      process.stderr.write(`gateway exited unexpectedly with ${code}; last output:\n${lines.slice(-60).join('\n')}\n`),
    ...opts,
  });
}
