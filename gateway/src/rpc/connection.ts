// The per-socket state machine (Centrifuge's client.go): frames in → JSON-RPC 2.0 envelope → rate
// limit → handler → answer after commit. Backpressure: at most 64 unanswered frames per session,
// beyond which the socket is not read; a client that does not read its answers is closed with 4008.
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  CloseCode,
  CloseReason,
  MAX_UNANSWERED_PER_SESSION,
  RpcError,
  RpcErrorMessage,
  type RpcErrorCode,
  SLOW_CONSUMER_BYTES,
} from '@agentgate/shared';
import type { WebSocket } from 'ws';
import type { Handler, HandlerOutcome } from '../handlers/types.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { FrameMethod, FrameOutcome, GatewayMetrics } from '../ops/metrics.js';
import type { Session } from '../session/session.js';
import { isRetryable } from '../store/write-buffer.js';
import { TokenBucket } from './token-bucket.js';

export interface ConnectionDeps {
  handlers: ReadonlyMap<string, Handler>;
  metrics: GatewayMetrics;
  clock: Clock;
  log: Logger;
  sessionRate: number;
}

type Answer = string | undefined;

const errorText = (id: string, code: RpcErrorCode, message?: string, data?: unknown) =>
  `{"jsonrpc":"2.0","id":${id},"error":${JSON.stringify({ code, message: message ?? RpcErrorMessage[code], ...(data === undefined ? {} : { data }) })}}`;

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

/** The request's id as JSON, or undefined when the element is a notification. */
function idOf(el: Record<string, unknown>): string | undefined {
  if (!('id' in el)) return undefined;
  const id = el['id'];
  if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) || id === null)
    return JSON.stringify(id);
  return 'null';
}

export class AgentConnection {
  lastSeen: number;
  /** When the heartbeat pings this socket next (spread per socket by the gateway). */
  nextPingAt = 0;
  private readonly bucket: TokenBucket;
  private unanswered = 0;
  private backlog: string[] = [];
  private closing = false;
  private draining = false;
  private corked = false;

  constructor(
    readonly ws: WebSocket,
    readonly session: Session,
    private readonly deps: ConnectionDeps,
  ) {
    this.lastSeen = deps.clock.now();
    this.bucket = new TokenBucket(deps.sessionRate, this.lastSeen);
    session.onRevoke = () => {
      // Let the frame that found out answer -32001 first (it resolves in this turn's microtasks).
      setImmediate(() => this.close(CloseCode.NotAuthorized));
    };
  }

  onMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    this.lastSeen = this.deps.clock.now();
    // Once our close frame is out, an answer can no longer reach the agent: a frame that arrives now
    // is neither processed nor persisted (the agent sends it again after reconnecting).
    if (this.closing) return;
    if (isBinary) {
      this.close(CloseCode.UnsupportedData);
      return;
    }
    const text = data.toString();
    if (this.unanswered >= MAX_UNANSWERED_PER_SESSION || this.backlog.length > 0) {
      this.backlog.push(text);
      return;
    }
    this.onText(text);
  }

  private onText(text: string): void {
    const t0 = performance.now();
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      this.send(this.reject('unknown', 'null', this.take() ? RpcError.ParseError : RpcError.RateLimited));
      return;
    }
    if (Array.isArray(msg)) {
      if (msg.length === 0) {
        const code = this.take() ? RpcError.InvalidRequest : RpcError.RateLimited;
        this.send(this.reject('unknown', 'null', code));
        return;
      }
      const answers = msg.map((el) => this.one(el, t0));
      if (answers.some((a) => a instanceof Promise)) {
        this.track(
          Promise.all(answers).then((list) => this.sendBatch(list as Answer[])),
          answers.length,
        );
      } else this.sendBatch(answers as Answer[]);
      return;
    }
    const answer = this.one(msg, t0);
    if (answer instanceof Promise)
      this.track(
        answer.then((a) => this.send(a)),
        1,
      );
    else this.send(answer);
  }

  /** Processes one request or notification; returns its answer text (undefined for a notification). */
  private one(el: unknown, t0: number): Answer | Promise<Answer> {
    const isObject = typeof el === 'object' && el !== null && !Array.isArray(el);
    const rec = isObject ? (el as Record<string, unknown>) : undefined;
    const id = rec ? idOf(rec) : 'null';
    const methodName = rec && typeof rec['method'] === 'string' ? rec['method'] : undefined;
    const handler = methodName === undefined ? undefined : this.deps.handlers.get(methodName);
    const method: FrameMethod = handler ? (methodName as FrameMethod) : 'unknown';
    if (!this.take()) {
      if (id === undefined) {
        this.deps.metrics.frame(method, 'rate_limited');
        return undefined;
      }
      return this.reject(method, id, RpcError.RateLimited);
    }
    if (rec?.['jsonrpc'] !== '2.0' || methodName === undefined || !this.validId(rec)) {
      return this.reject(method, id ?? 'null', RpcError.InvalidRequest);
    }
    if (!handler)
      return id === undefined ? this.count(method, 'invalid') : this.reject(method, id, RpcError.MethodNotFound);
    const params = rec['params'];
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
      const a = this.reject(method, id ?? 'null', RpcError.InvalidParams, 'invalid params', {
        errors: [{ path: '/params', message: 'Expected an object' }],
      });
      return id === undefined ? undefined : a;
    }
    let outcome: HandlerOutcome | Promise<HandlerOutcome>;
    try {
      outcome = handler(this.session, params);
    } catch (err) {
      outcome = this.internal(err);
    }
    if (outcome instanceof Promise) {
      return outcome.then(
        (o) => this.answer(method, id, o, t0),
        (err) => this.answer(method, id, this.failed(err), t0),
      );
    }
    return this.answer(method, id, outcome, t0);
  }

  private validId(rec: Record<string, unknown>): boolean {
    if (!('id' in rec)) return true;
    const id = rec['id'];
    return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) || id === null;
  }

  /** A store error while authorizing means the database is unavailable; anything else is a bug. */
  private failed(err: unknown): HandlerOutcome {
    if (isRetryable(err))
      return { error: { code: RpcError.Unavailable, message: RpcErrorMessage[RpcError.Unavailable] } };
    return this.internal(err);
  }

  private internal(err: unknown): HandlerOutcome {
    const correlationId = Math.random().toString(36).slice(2, 10);
    this.deps.log.error({ err, correlationId, agentId: this.session.subject.agentId }, 'internal error');
    return {
      error: {
        code: RpcError.InternalError,
        message: `${RpcErrorMessage[RpcError.InternalError]} (correlation id ${correlationId})`,
      },
    };
  }

  private answer(method: FrameMethod, id: string | undefined, o: HandlerOutcome, t0: number): Answer {
    this.deps.metrics.frame(method, o.error ? outcomeOf(o.error.code) : 'ok');
    this.deps.metrics.ack(method, (performance.now() - t0) / 1000);
    if (id === undefined) return undefined;
    if (o.error) return `{"jsonrpc":"2.0","id":${id},"error":${JSON.stringify(o.error)}}`;
    return `{"jsonrpc":"2.0","id":${id},"result":${o.json ?? JSON.stringify(o.result)}}`;
  }

  private count(method: FrameMethod, outcome: FrameOutcome): undefined {
    this.deps.metrics.frame(method, outcome);
    return undefined;
  }

  private reject(method: FrameMethod, id: string, code: RpcErrorCode, message?: string, data?: unknown): string {
    this.deps.metrics.frame(method, outcomeOf(code));
    return errorText(id, code, message, data);
  }

  private take(): boolean {
    return this.bucket.take(this.deps.clock.now());
  }

  /** Counts `n` frames as unanswered until `p` settles; at the limit the socket is not read. */
  private track(p: Promise<void>, n: number): void {
    this.unanswered += n;
    if (this.unanswered >= MAX_UNANSWERED_PER_SESSION && !this.ws.isPaused) this.ws.pause();
    p.finally(() => {
      this.unanswered -= n;
      if (this.unanswered < MAX_UNANSWERED_PER_SESSION) this.drainBacklog();
    });
  }

  private drainBacklog(): void {
    while (this.backlog.length > 0 && this.unanswered < MAX_UNANSWERED_PER_SESSION) {
      this.onText(this.backlog.shift()!);
    }
    if (
      !this.draining &&
      this.backlog.length === 0 &&
      this.unanswered < MAX_UNANSWERED_PER_SESSION &&
      this.ws.isPaused
    ) {
      this.ws.resume();
    }
  }

  private sendBatch(list: Answer[]): void {
    const parts = list.filter((a): a is string => a !== undefined);
    if (parts.length > 0) this.send(`[${parts.join(',')}]`);
  }

  private send(text: Answer): void {
    if (text === undefined || this.closing || this.ws.readyState !== 1) return;
    // Answers of one committed batch settle together: cork the TCP socket so they leave in one write.
    if (!this.corked) {
      const raw = (this.ws as unknown as { _socket?: Socket })._socket;
      if (raw) {
        this.corked = true;
        raw.cork();
        process.nextTick(() => {
          this.corked = false;
          raw.uncork();
        });
      }
    }
    this.ws.send(text);
    if (this.ws.bufferedAmount > SLOW_CONSUMER_BYTES) {
      this.deps.log.info(
        { agentId: this.session.subject.agentId, bufferedBytes: this.ws.bufferedAmount },
        'client does not read its answers; closing with 4008',
      );
      this.close(CloseCode.SlowConsumer);
    }
  }

  /** Resolves once the socket has closed (the close handshake finished or the socket was cut). */
  closed(): Promise<void> {
    if (this.ws.readyState === 3) return Promise.resolve();
    return new Promise((resolve) => this.ws.once('close', () => resolve()));
  }

  /** Closes the socket with `code` (the session closes on the socket's close event). */
  close(code: number, reason?: string): void {
    if (this.closing) return;
    this.closing = true;
    const r = reason ?? CloseReason[code as keyof typeof CloseReason] ?? '';
    if (this.ws.readyState === 1 || this.ws.readyState === 0) this.ws.close(code, r);
    // A peer that never answers the close handshake is cut off.
    setTimeout(() => {
      if (this.ws.readyState !== 3) this.ws.terminate();
    }, 5000).unref();
  }

  /** Stops reading and resolves when every unanswered frame has been answered (shutdown drain). */
  async quiesce(maxMs: number): Promise<void> {
    this.draining = true;
    this.ws.pause();
    const until = Date.now() + maxMs;
    while ((this.unanswered > 0 || this.backlog.length > 0) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
