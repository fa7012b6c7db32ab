// The JSON-RPC 2.0 envelope of one text frame (SPEC §4): parse → rate limit → request checks →
// handler → answer text. Requests, notifications and batches; the answer of a request that waits
// for the database comes as a promise. No socket here: the connection owns that.
import { performance } from 'node:perf_hooks';
import { MAX_BATCH_ELEMENTS, RpcError, type RpcErrorCode } from '@agentgate/shared';
import {
  failure,
  type HandlerOutcome,
  invalidParams,
  internalError,
  responseText,
  rpcError,
} from '../handlers/outcome.js';
import type { Handler } from '../handlers/types.js';
import type { Logger } from '../ops/log.js';
import type { FrameMethod, FrameOutcome, GatewayMetrics } from '../ops/metrics.js';
import type { Session } from '../session/session.js';

/** An answer's text; undefined when nothing is sent (a notification). */
export type Answer = string | undefined;

export interface RouterDeps {
  handlers: ReadonlyMap<string, Handler>;
  metrics: GatewayMetrics;
  log: Logger;
}

/** What a frame is processed for: the session it authorizes against and its rate limit. */
export interface FrameSource {
  readonly session: Session;
  /** Takes one token of the session's bucket (SPEC §7 rate limit); false when there is none. */
  take(): boolean;
}

/** A routed frame: its answer (now, or after commit) and how many requests wait for it. */
export interface Routed {
  answer: Answer | Promise<Answer>;
  requests: number;
}

const paramsNotObject = invalidParams([{ path: '/params', message: 'Expected an object' }]);

function outcomeOf(code: number): FrameOutcome {
  switch (code) {
    case RpcError.NotAuthorized:
      return 'unauthorized';
    case RpcError.Unavailable:
      return 'unavailable';
    case RpcError.RateLimited:
      return 'rate_limited';
    case RpcError.ParseError:
    case RpcError.InvalidRequest:
    case RpcError.MethodNotFound:
    case RpcError.InvalidParams:
      return 'invalid';
    default:
      return 'error';
  }
}

const validId = (id: unknown): boolean =>
  typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) || id === null;

/** The request's id as JSON, `null` when it is not a valid id, or undefined for a notification. */
function idOf(el: Record<string, unknown>): string | undefined {
  if (!('id' in el)) return undefined;
  const id = el['id'];
  return validId(id) ? JSON.stringify(id) : 'null';
}

export class Router {
  constructor(private readonly deps: RouterDeps) {}

  /** Routes one text frame from `src`. */
  frame(text: string, src: FrameSource): Routed {
    const t0 = performance.now();
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return {
        answer: this.reject('unknown', 'null', src.take() ? RpcError.ParseError : RpcError.RateLimited),
        requests: 0,
      };
    }
    if (!Array.isArray(msg)) return { answer: this.one(msg, src, t0), requests: 1 };
    // An empty batch, or one over 64 elements (SPEC §4): one -32600 for a token, nothing in it processed.
    if (msg.length === 0 || msg.length > MAX_BATCH_ELEMENTS) {
      const code = src.take() ? RpcError.InvalidRequest : RpcError.RateLimited;
      return { answer: this.reject('unknown', 'null', code), requests: 0 };
    }
    const answers = msg.map((el) => this.one(el, src, t0));
    if (answers.some((a) => a instanceof Promise)) {
      return { answer: Promise.all(answers).then(batchText), requests: answers.length };
    }
    return { answer: batchText(answers as Answer[]), requests: 0 };
  }

  /** Processes one request or notification; returns its answer text (undefined for a notification). */
  private one(el: unknown, src: FrameSource, t0: number): Answer | Promise<Answer> {
    const rec =
      typeof el === 'object' && el !== null && !Array.isArray(el) ? (el as Record<string, unknown>) : undefined;
    const id = rec ? idOf(rec) : 'null';
    const methodName = rec && typeof rec['method'] === 'string' ? rec['method'] : undefined;
    const handler = methodName === undefined ? undefined : this.deps.handlers.get(methodName);
    const method: FrameMethod = handler ? (methodName as FrameMethod) : 'unknown';
    if (!src.take()) {
      if (id === undefined) return this.count(method, 'rate_limited');
      return this.reject(method, id, RpcError.RateLimited);
    }
    if (rec?.['jsonrpc'] !== '2.0' || methodName === undefined || ('id' in rec && !validId(rec['id']))) {
      return this.reject(method, id ?? 'null', RpcError.InvalidRequest);
    }
    if (!handler) {
      return id === undefined ? this.count(method, 'invalid') : this.reject(method, id, RpcError.MethodNotFound);
    }
    const params = rec['params'];
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
      return this.answer(method, id, paramsNotObject, t0);
    }
    const { session } = src;
    let outcome: HandlerOutcome | Promise<HandlerOutcome>;
    try {
      outcome = handler(session, params);
    } catch (err) {
      outcome = internalError(this.deps.log, err, { method, agentId: session.subject.agentId });
    }
    if (outcome instanceof Promise) {
      return outcome.then(
        (o) => this.answer(method, id, o, t0),
        // A store error while authorizing: the database is unavailable, or a bug.
        (err) => this.answer(method, id, failure(this.deps.log, err, { method, agentId: session.subject.agentId }), t0),
      );
    }
    return this.answer(method, id, outcome, t0);
  }

  private answer(method: FrameMethod, id: string | undefined, o: HandlerOutcome, t0: number): Answer {
    this.deps.metrics.frame(method, o.error ? outcomeOf(o.error.code) : 'ok');
    this.deps.metrics.ack(method, (performance.now() - t0) / 1000);
    return id === undefined ? undefined : responseText(id, o);
  }

  private count(method: FrameMethod, outcome: FrameOutcome): undefined {
    this.deps.metrics.frame(method, outcome);
    return undefined;
  }

  private reject(method: FrameMethod, id: string, code: RpcErrorCode): string {
    this.deps.metrics.frame(method, outcomeOf(code));
    return responseText(id, rpcError(code));
  }
}

function batchText(list: Answer[]): Answer {
  const parts = list.filter((a): a is string => a !== undefined);
  return parts.length > 0 ? `[${parts.join(',')}]` : undefined;
}
