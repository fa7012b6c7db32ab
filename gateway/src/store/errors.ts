// How the writers and the slow path tell an outage (retry, answer -32002) from a bad frame (SPEC §7).

/**
 * Errors after which retrying the same statement can succeed. Only errors about the data itself
 * (PostgreSQL classes 21 cardinality, 22 data exception, 23 integrity, 42 syntax/access, 44, 0A)
 * are permanent; connection, timeout, resource, shutdown and "not accepting connections" errors
 * are retried. An error without a code is a bug, not an outage.
 */
export function isRetryable(err: unknown): boolean {
  const code = String((err as { code?: unknown })?.code ?? '');
  if (code === '') return false;
  if (/^[0-9A-Z]{5}$/.test(code)) return !/^(21|22|23|42|44|0A)/.test(code);
  return true;
}

/** Failures where the statement never reached the server: nothing of it can have committed. */
const NOT_SENT = new Set(['ECONNREFUSED', 'CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a retryable failure leaves the statement's outcome unknown (SPEC §7 in-doubt commits):
 * the connection broke, or the attempt was abandoned, after the statement may have reached the
 * server. An error the server itself reported (a SQLSTATE) means the statement did not commit.
 */
export function outcomeUnknown(err: unknown): boolean {
  const code = String((err as { code?: unknown })?.code ?? '');
  if (/^[0-9A-Z]{5}$/.test(code)) return false;
  return !NOT_SENT.has(code);
}
