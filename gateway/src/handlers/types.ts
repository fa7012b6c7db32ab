// What a handler returns: a result, or an expected error as a value with its code (STYLE: errors
// are values; exceptions are bugs).
import type { RpcErrorObject } from '@agentgate/shared';
import type { Session } from '../session/session.js';

export type HandlerOutcome = { result: unknown; error?: undefined } | { error: RpcErrorObject; result?: undefined };
export type Handler = (session: Session, params: unknown) => HandlerOutcome | Promise<HandlerOutcome>;
