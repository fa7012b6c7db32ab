// The one error a user fixes by changing the command line or the environment (a bad flag, a busy
// data dir, a port in use): the CLI prints `agentgate <cmd>: <message>` on one line and exits 2.
// A leaf module so that the lowest layers (ops/) can throw it too.

export class UsageError extends Error {
  override name = 'UsageError';
}
