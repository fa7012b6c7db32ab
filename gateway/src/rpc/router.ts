// The JSON-RPC 2.0 envelope of one text frame (SPEC §4): parse → rate limit → request checks →
// method → answer text. Requests, notifications and batches; every answer comes as a promise (one
// path: a frame that needs no database waits one turn of microtasks, not more). No socket here: the
// connection owns that, and hands in its session and its token bucket.
import { performance } from 'node:perf_hooks';
import { MAX_BATCH_ELEMENTS, RpcError, type RpcErrorCode } from '@agentgate/shared';
import { failure, invalidParams, type Outcome, rpcError } from '../handlers/outcome.js';
import type { Method } from '../handlers/types.js';
import type { Logger } from '../ops/log.js';
import type { FrameMethod, FrameOutcome, GatewayMetrics } from '../ops/metrics.js';
import type { Session } from '../session/session.js';

/** An answer's text; undefined when nothing is sent (a notification). */
export type Answer = string | undefined;

/** A routed frame: its answer, and how many requests wait for it (the connection's backpressure). */
export interface Routed {
  answer: Promise<Answer>;
  requests: number;
}

/** SPEC §7 rate limit of one session: starts full, refills at `rate` per second, holds 2 s worth. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly capacity: number;
  private readonly perMs: number;

  constructor(rate: number, now: number) {
    this.capacity = rate * 2;
    this.perMs = rate / 1000;
    this.tokens = this.capacity;
    this.last = now;
  }

  take(now: number): boolean {
    if (this.tokens < 1) {
      const refill = (now - this.last) * this.perMs;
      this.last = now;
      this.tokens = Math.min(this.capacity, this.tokens + refill);
      if (this.tokens < 1) return false;
    } else if (this.tokens < this.capacity) {
      this.tokens = Math.min(this.capacity, this.tokens + (now - this.last) * this.perMs);
      this.last = now;
    } else {
      this.last = now;
    }
    this.tokens -= 1;
    return true;
  }
}

export interface RouterDeps {
  methods: readonly Method[];
  metrics: GatewayMetrics;
  log: Logger;
  now(): number;
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

/** The JSON-RPC 2.0 response text for the request whose id is `id` (already JSON). */
function responseText(id: string, o: Outcome): string {
  if (o.error) return `{"jsonrpc":"2.0","id":${id},"error":${JSON.stringify(o.error)}}`;
  return `{"jsonrpc":"2.0","id":${id},"result":${o.json ?? JSON.stringify(o.result)}}`;
}

function batchText(list: Answer[]): Answer {
  const parts = list.filter((a): a is string => a !== undefined);
  return parts.length > 0 ? `[${parts.join(',')}]` : undefined;
}

export class Router {
  private readonly methods: ReadonlyMap<string, Method>;

  constructor(private readonly deps: RouterDeps) {
    this.methods = new Map(deps.methods.map((m) => [m.name, m]));
  }

  /** Routes one text frame of `session`, charging `bucket` one token per request or notification. */
  frame(text: string, session: Session, bucket: TokenBucket): Routed {
    const t0 = performance.now();
    const take = () => bucket.take(this.deps.now());
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      const code = take() ? RpcError.ParseError : RpcError.RateLimited;
      return { answer: Promise.resolve(this.reject('unknown', 'null', code)), requests: 0 };
    }
    if (!Array.isArray(msg)) return { answer: this.one(msg, session, take, t0), requests: 1 };
    // An empty batch, or one over 64 elements (SPEC §4): one -32600 for a token, nothing in it processed.
    if (msg.length === 0 || msg.length > MAX_BATCH_ELEMENTS) {
      const code = take() ? RpcError.InvalidRequest : RpcError.RateLimited;
      return { answer: Promise.resolve(this.reject('unknown', 'null', code)), requests: 0 };
    }
    const answers = msg.map((el) => this.one(el, session, take, t0));
    return { answer: Promise.all(answers).then(batchText), requests: answers.length };
  }

  /** One request or notification; resolves to its answer text (undefined for a notification). */
  private async one(el: unknown, session: Session, take: () => boolean, t0: number): Promise<Answer> {
    const rec =
      typeof el === 'object' && el !== null && !Array.isArray(el) ? (el as Record<string, unknown>) : undefined;
    const id = rec ? idOf(rec) : 'null';
    const methodName = rec && typeof rec['method'] === 'string' ? rec['method'] : undefined;
    const method = methodName === undefined ? undefined : this.methods.get(methodName);
    const label: FrameMethod = method ? (methodName as FrameMethod) : 'unknown';
    if (!take()) {
      if (id === undefined) return this.count(label, 'rate_limited');
      return this.reject(label, id, RpcError.RateLimited);
    }
    if (rec?.['jsonrpc'] !== '2.0' || methodName === undefined || ('id' in rec && !validId(rec['id']))) {
      return this.reject(label, id ?? 'null', RpcError.InvalidRequest);
    }
    if (!method) {
      return id === undefined ? this.count(label, 'invalid') : this.reject(label, id, RpcError.MethodNotFound);
    }
    const params = rec['params'];
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
      return this.answer(label, id, paramsNotObject, t0);
    }
    let outcome: Outcome;
    try {
      outcome = await method.handle(session, params);
    } catch (err) {
      // A store error while authorizing: the database is unavailable (-32002), or a bug (-32603).
      outcome = failure(this.deps.log, err, { method: label, agentId: session.subject.agentId });
    }
    return this.answer(label, id, outcome, t0);
  }

  private answer(method: FrameMethod, id: string | undefined, o: Outcome, t0: number): Answer {
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
