// What a handler returns: a result, or an expected error as a value with its code (STYLE: errors
// are values; exceptions are bugs).
import type { RpcErrorObject } from '@agentgate/shared';
import type { Session } from '../session/session.js';

export type HandlerOutcome =
  | { result: unknown; error?: undefined /** `result` serialized once, for constant answers. */; json?: string }
  | { error: RpcErrorObject; result?: undefined; json?: undefined };

/** A constant successful outcome whose JSON is computed once, not per frame. */
export function constantResult(result: unknown): HandlerOutcome {
  // Not enumerable: the outcome still looks like `{ result }` to anything that inspects it.
  return Object.defineProperty({ result }, 'json', { value: JSON.stringify(result), enumerable: false });
}
export type Handler = (session: Session, params: unknown) => HandlerOutcome | Promise<HandlerOutcome>;
