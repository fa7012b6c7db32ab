// Every outcome a request can have (SPEC §4 errors), as values (STYLE: expected conditions are
// values with codes), and the internal-error log line whose correlation id the agent's error
// message carries. The router turns an outcome into the answer's text.
import { randomUUID } from 'node:crypto';
import { type ParamError, RpcError, type RpcErrorCode, RpcErrorMessage, type RpcErrorObject } from '@agentgate/shared';
import type { Logger } from '../ops/log.js';
import { Rejected, type Written } from '../store/batch-writer.js';
import { isRetryable } from '../store/errors.js';

export type Outcome =
  | { result: unknown; error?: undefined /** `result` serialized once, for constant answers. */; json?: string }
  | { error: RpcErrorObject; result?: undefined; json?: undefined };

/** A constant successful outcome whose JSON is computed once, not per frame. */
export function constantResult(result: unknown): Outcome {
  // Not enumerable: the outcome still looks like `{ result }` to anything that inspects it.
  return Object.defineProperty({ result }, 'json', { value: JSON.stringify(result), enumerable: false });
}

/** An error outcome with the catalog's message unless another is given. */
export function rpcError(code: RpcErrorCode, message?: string, data?: unknown): Outcome {
  const error: RpcErrorObject = { code, message: message ?? RpcErrorMessage[code] };
  if (data !== undefined) error.data = data;
  return { error };
}

export const notAuthorized = rpcError(RpcError.NotAuthorized);
const unavailable = rpcError(RpcError.Unavailable);

/** -32602 with `data.errors` listing `{path, message}`. */
export function invalidParams(errors: ParamError[]): Outcome {
  return rpcError(RpcError.InvalidParams, undefined, { errors });
}

/** A short id that ties an agent's -32603 answer to the log line that explains it. */
function correlationId(): string {
  return randomUUID().slice(0, 8);
}

/** -32603: logs `err` (a bug, or data the database refused) with a correlation id. */
function internalError(log: Logger, err: unknown, context: Record<string, unknown> = {}): Outcome {
  const id = correlationId();
  log.error({ ...context, err, correlationId: id }, 'internal error');
  return rpcError(RpcError.InternalError, `${RpcErrorMessage[RpcError.InternalError]} (correlation id ${id})`);
}

/** A thrown error: the database being unavailable is -32002 (retry later); anything else is -32603. */
export function failure(log: Logger, err: unknown, context: Record<string, unknown> = {}): Outcome {
  return isRetryable(err) ? unavailable : internalError(log, err, context);
}

/** The answer to a frame whose write did not commit: -32002, or -32603 when the database refused its data. */
export function writeFailed(log: Logger, written: Exclude<Written, 'ok'>, context: Record<string, unknown>): Outcome {
  return written instanceof Rejected ? internalError(log, written.err, context) : unavailable;
}
