// The `agentgate` command as a user runs it: the bin's path, an environment without the caller's
// DATABASE_URL (so a test's flags are the only database it can reach), and one run to completion.
import { execFile } from 'node:child_process';
import { AGENTGATE_BIN } from '../../scripts/src/lab/process.ts';

export { AGENTGATE_BIN };

/** This process's environment without DATABASE_URL, plus `extra`. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['DATABASE_URL'];
  return Object.assign(env, extra);
}

export interface CliResult {
  /** The exit code; null when it was killed (60 s at most). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `agentgate ARGS` to its exit. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [AGENTGATE_BIN, ...args],
      { env: cliEnv(env), timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
      },
    );
  });
}
