// Every answer a frame can get (SPEC §4 errors), built in one place: handler outcomes as values
// (STYLE: expected conditions are values with codes), their JSON-RPC text, and the internal-error
// log line whose correlation id the agent's error message carries.
import { randomUUID } from 'node:crypto';
import { type ParamError, RpcError, type RpcErrorCode, RpcErrorMessage, type RpcErrorObject } from '@agentgate/shared';
import type { Logger } from '../ops/log.js';
import type { WriteOutcome } from '../store/batch-writer.js';
import { isRetryable } from '../store/errors.js';

export type HandlerOutcome =
  | { result: unknown; error?: undefined /** `result` serialized once, for constant answers. */; json?: string }
  | { error: RpcErrorObject; result?: undefined; json?: undefined };

/** A constant successful outcome whose JSON is computed once, not per frame. */
export function constantResult(result: unknown): HandlerOutcome {
  // Not enumerable: the outcome still looks like `{ result }` to anything that inspects it.
  return Object.defineProperty({ result }, 'json', { value: JSON.stringify(result), enumerable: false });
}

/** An error outcome with the catalog's message unless another is given. */
export function rpcError(code: RpcErrorCode, message?: string, data?: unknown): HandlerOutcome {
  const error: RpcErrorObject = { code, message: message ?? RpcErrorMessage[code] };
  if (data !== undefined) error.data = data;
  return { error };
}

export const notAuthorized = rpcError(RpcError.NotAuthorized);
const unavailable = rpcError(RpcError.Unavailable);

/** -32602 with `data.errors` listing `{path, message}`. */
export function invalidParams(errors: ParamError[]): HandlerOutcome {
  return rpcError(RpcError.InvalidParams, undefined, { errors });
}

/** A short id that ties an agent's -32603 answer to the log line that explains it. */
function correlationId(): string {
  return randomUUID().slice(0, 8);
}

/** -32603: logs `err` (a bug, or data the database refused) with a correlation id. */
export function internalError(log: Logger, err: unknown, context: Record<string, unknown> = {}): HandlerOutcome {
  const id = correlationId();
  log.error({ ...context, err, correlationId: id }, 'internal error');
  return rpcError(RpcError.InternalError, `${RpcErrorMessage[RpcError.InternalError]} (correlation id ${id})`);
}

/** A thrown error: the database being unavailable is -32002 (retry later); anything else is -32603. */
export function failure(log: Logger, err: unknown, context: Record<string, unknown> = {}): HandlerOutcome {
  return isRetryable(err) ? unavailable : internalError(log, err, context);
}

/** The JSON-RPC 2.0 response text for the request whose id is `id` (already JSON). */
export function responseText(id: string, o: HandlerOutcome): string {
  if (o.error) return `{"jsonrpc":"2.0","id":${id},"error":${JSON.stringify(o.error)}}`;
  return `{"jsonrpc":"2.0","id":${id},"result":${o.json ?? JSON.stringify(o.result)}}`;
}

/** The answer to a frame whose write did not commit: -32002, or -32603 when the database refused its data. */
export function writeFailed(
  log: Logger,
  outcome: Exclude<WriteOutcome, 'ok'>,
  err: unknown,
  context: Record<string, unknown>,
): HandlerOutcome {
  return outcome === 'unavailable' ? unavailable : internalError(log, err, context);
}
