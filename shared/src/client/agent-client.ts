// The agent side of the protocol: one socket, typed calls, timeouts, and reconnect with jittered
// exponential backoff. A close with a "do not reconnect" code (4501) or a refused token ends it.
// Answers are checked before they settle a call: a malformed one rejects that call, never the process.
import { EventEmitter } from 'node:events';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import WebSocket from 'ws';
import { CloseCode, shouldReconnect } from '../protocol/codes.js';
import {
  BatchUpdateMetadataResult,
  type MetadataItem,
  Methods,
  type RpcRequest,
  type RpcResponse,
  type Stats,
  UpdateStatsResult,
} from '../protocol/schemas.js';

export interface AgentClientOptions {
  /** `ws://host:port/api/v2/workspaceagents/me/rpc` */
  url: string;
  token: string;
  /** Header that carries the token; default `Coder-Session-Token`. */
  tokenHeader?: 'coder' | 'bearer';
  /** Reject a call that got no answer in this many ms (default 30 s). */
  requestTimeoutMs?: number;
  /** Give up on the opening handshake after this many ms (default 10 s). */
  connectTimeoutMs?: number;
  /** Reconnect after an unexpected close (default true). */
  reconnect?: boolean;
  /** Ceiling of the first reconnect delay (default 250 ms); it doubles with each reconnect up to `backoffMaxMs`. */
  backoffInitialMs?: number;
  /** Largest ceiling of a reconnect delay (default 30 s). */
  backoffMaxMs?: number;
  /**
   * A connection that stayed open this long resets the backoff (default 30 s). A shorter one does
   * not: a gateway that accepts and then closes at once is backed off from like one that refuses.
   */
  stableAfterMs?: number;
  /**
   * After a close with 4009 (replaced by a newer session of the same agent), the delays start from
   * this ceiling instead of `backoffInitialMs` (default 5 s), until a connection is stable again:
   * agents sharing a token then take turns slowly instead of replacing each other in a loop.
   */
  replacedBackoffMs?: number;
  /** Stop after this many consecutive reconnect attempts that did not open (default unbounded). */
  maxReconnectAttempts?: number;
  /** The local address to connect from (a load generator spreads its sockets over several). */
  localAddress?: string;
}

/** The server answered a call with a JSON-RPC error. */
export class RpcCallError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcCallError';
  }
}

/** The upgrade was refused with an HTTP status (401, 403, 503, ...). */
export class ConnectRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(`connect refused with ${status}: ${message}`);
    this.name = 'ConnectRefusedError';
  }
}

/** The answer to a call is not a JSON-RPC 2.0 answer this client can read; `answer` is its text (cut at 200 characters). */
export class BadAnswerError extends Error {
  constructor(
    readonly method: string,
    readonly problem: string,
    readonly answer: string,
  ) {
    super(`${method}: malformed answer from the server (${problem}): ${answer}`);
    this.name = 'BadAnswerError';
  }
}

/** The call could not complete: timeout, or the socket closed before the answer came. */
export class CallAbortedError extends Error {
  constructor(
    readonly reason: 'timeout' | 'closed',
    message: string,
  ) {
    super(message);
    this.name = 'CallAbortedError';
  }
}

interface Pending {
  method: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  /** Checks the result of a typed call; undefined when it is fine. */
  checkResult: ResultCheck | undefined;
}

type ResultCheck = (result: unknown) => string | undefined;

function resultCheck(schema: TSchema): ResultCheck {
  const check = TypeCompiler.Compile(schema);
  return (result) => {
    if (check.Check(result)) return undefined;
    const e = check.Errors(result).First();
    return `result${e?.path ?? ''}: ${e?.message ?? 'does not match the schema'}`;
  };
}

const checkUpdateStatsResult = resultCheck(UpdateStatsResult);
const checkBatchUpdateMetadataResult = resultCheck(BatchUpdateMetadataResult);

/** What is wrong with a JSON-RPC 2.0 answer (SPEC §4), or undefined when it can settle its call. */
function answerProblem(r: Record<string, unknown>): string | undefined {
  if (r['jsonrpc'] !== '2.0') return 'jsonrpc is not "2.0"';
  const hasResult = 'result' in r;
  const hasError = 'error' in r;
  if (hasResult && hasError) return 'both result and error';
  if (!hasResult && !hasError) return 'neither result nor error';
  if (hasError) {
    const e = r['error'];
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return 'error is not an object';
    const { code, message } = e as Record<string, unknown>;
    if (!Number.isSafeInteger(code)) return 'error.code is not an integer';
    if (typeof message !== 'string') return 'error.message is not a string';
  }
  return undefined;
}

export interface AgentClientEvents {
  open: [];
  close: [code: number, reason: string];
  reconnecting: [attempt: number, delayMs: number];
  refused: [err: ConnectRefusedError];
  error: [err: Error];
}

/** An answer as it can be shown in an error message. */
function excerpt(r: unknown): string {
  const text = JSON.stringify(r);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

export class AgentClient extends EventEmitter<AgentClientEvents> {
  readonly opts: Required<Omit<AgentClientOptions, 'localAddress'>> & Pick<AgentClientOptions, 'localAddress'>;
  private ws: WebSocket | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedByUser = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Reconnects scheduled since a connection last stayed up `stableAfterMs`: the backoff's exponent. */
  private backoffStep = 0;
  /** A 4009 closed a connection since then: the backoff starts from `replacedBackoffMs`. */
  private replacedSinceStable = false;
  /** Reconnects scheduled since the last open (for `maxReconnectAttempts`). */
  private attemptsSinceOpen = 0;
  /** performance.now() of the current connection's open. */
  private openedAt = 0;
  /** Successful connections after the first. */
  reconnects = 0;
  private everConnected = false;
  /** Code of the last close seen (0 before any). */
  lastCloseCode = 0;

  constructor(opts: AgentClientOptions) {
    super();
    this.opts = {
      tokenHeader: 'coder',
      requestTimeoutMs: 30_000,
      connectTimeoutMs: 10_000,
      reconnect: true,
      backoffInitialMs: 250,
      backoffMaxMs: 30_000,
      stableAfterMs: 30_000,
      replacedBackoffMs: 5_000,
      maxReconnectAttempts: Number.POSITIVE_INFINITY,
      ...opts,
    };
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Opens the socket; resolves once it is open, rejects on refusal or network error. */
  connect(): Promise<void> {
    this.closedByUser = false;
    return this.open();
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> =
        this.opts.tokenHeader === 'bearer'
          ? { Authorization: `Bearer ${this.opts.token}` }
          : { 'Coder-Session-Token': this.opts.token };
      const ws = new WebSocket(this.opts.url, {
        headers,
        perMessageDeflate: false,
        handshakeTimeout: this.opts.connectTimeoutMs,
        ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}),
      });
      this.ws = ws;
      let settled = false;
      /** The upgrade was refused: this socket's close is not a reason to reconnect. */
      let refused = false;
      let opened = false;
      ws.on('unexpected-response', (_req, res) => {
        refused = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let message = '';
          try {
            message = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: string }).message ?? '';
          } catch {
            message = Buffer.concat(chunks).toString('utf8').slice(0, 200);
          }
          const err = new ConnectRefusedError(res.statusCode ?? 0, message);
          ws.terminate();
          this.emit('refused', err);
          if (!settled) {
            settled = true;
            reject(err);
          }
          // 401/403 mean the token is no good: reconnecting cannot help.
          if (err.status !== 401 && err.status !== 403 && err.status !== 404) this.scheduleReconnect();
        });
      });
      ws.on('open', () => {
        if (this.everConnected) this.reconnects++;
        this.everConnected = true;
        this.attemptsSinceOpen = 0;
        this.openedAt = performance.now();
        opened = true;
        settled = true;
        this.emit('open');
        resolve();
      });
      ws.on('message', (data, isBinary) => {
        if (!isBinary) this.onMessage(data.toString());
      });
      ws.on('error', (err) => {
        if (!settled) {
          settled = true;
          reject(err);
          this.scheduleReconnect();
        } else if (this.listenerCount('error') > 0) {
          this.emit('error', err);
        }
      });
      ws.on('close', (code, reasonBuf) => {
        if (this.ws !== ws) return;
        this.lastCloseCode = code;
        this.failPending('closed', `socket closed with ${code}`);
        const reason = reasonBuf.toString();
        // Only a connection that stayed up resets the backoff: one reset per open let agents that
        // replace each other (4009 after 4009) reconnect every few hundred ms forever.
        if (opened && performance.now() - this.openedAt >= this.opts.stableAfterMs) {
          this.backoffStep = 0;
          this.replacedSinceStable = false;
        }
        if (code === CloseCode.Replaced) this.replacedSinceStable = true;
        if (!settled) {
          settled = true;
          reject(new Error(`socket closed with ${code} before it opened`));
        }
        this.emit('close', code, reason);
        // A refused upgrade decides for itself (401/403 never reconnect; terminate() closes with 1006).
        if (!refused && !this.closedByUser && shouldReconnect(code)) this.scheduleReconnect();
      });
    });
  }

  private scheduleReconnect(): void {
    if (this.closedByUser || !this.opts.reconnect || this.reconnectTimer) return;
    if (this.attemptsSinceOpen >= this.opts.maxReconnectAttempts) return;
    this.attemptsSinceOpen++;
    this.backoffStep++;
    const first = this.replacedSinceStable
      ? Math.max(this.opts.backoffInitialMs, this.opts.replacedBackoffMs)
      : this.opts.backoffInitialMs;
    const ceiling = Math.min(this.opts.backoffMaxMs, first * 2 ** Math.min(this.backoffStep - 1, 30));
    // Equal jitter (half the ceiling, plus up to half at random), not full jitter: a delay never
    // drops near 0, which would be a hot loop against a gateway that is down or keeps replacing us,
    // and the random half still spreads agents that lost the same gateway over time.
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.emit('reconnecting', this.backoffStep, delay);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.open().catch(() => {
        /* the next attempt is already scheduled by open() */
      });
    }, delay);
    this.reconnectTimer.unref?.();
  }

  /** Settles the calls a message answers; a message or answer it cannot read never throws out of here. */
  private onMessage(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return; // not JSON: no call can be told which answer it was
    }
    const list: unknown[] = Array.isArray(msg) ? msg : [msg];
    for (const item of list) {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) continue;
      const r = item as Record<string, unknown>;
      const id = r['id'];
      if (typeof id !== 'number') continue;
      const p = this.pending.get(id);
      if (!p) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      const problem = answerProblem(r) ?? ('result' in r ? p.checkResult?.(r['result']) : undefined);
      if (problem !== undefined) {
        p.reject(new BadAnswerError(p.method, problem, excerpt(r)));
        continue;
      }
      const answer = r as unknown as RpcResponse; // checked just above
      if ('error' in answer) p.reject(new RpcCallError(answer.error.code, answer.error.message, answer.error.data));
      else p.resolve(answer.result);
    }
  }

  private failPending(reason: 'closed' | 'timeout', message: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new CallAbortedError(reason, message));
    }
  }

  /**
   * Sends one request and resolves with its result; rejects with RpcCallError (an error answer),
   * BadAnswerError (an answer that is not JSON-RPC 2.0) or CallAbortedError.
   */
  call<R = unknown>(method: string, params?: unknown): Promise<R> {
    return this.request<R>(method, params, undefined);
  }

  private request<R>(method: string, params: unknown, checkResult: ResultCheck | undefined): Promise<R> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new CallAbortedError('closed', 'socket is not open'));
    }
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CallAbortedError('timeout', `${method} got no answer in ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer, checkResult });
      const frame: RpcRequest = { jsonrpc: '2.0', id, method };
      if (params !== undefined) frame.params = params;
      ws.send(JSON.stringify(frame));
    });
  }

  /** Sends a notification (no id, no answer). */
  notify(method: string, params?: unknown): void {
    const frame: RpcRequest = { jsonrpc: '2.0', method };
    if (params !== undefined) frame.params = params;
    this.sendRaw(JSON.stringify(frame));
  }

  /** Sends a frame as is (tests use it for malformed input). */
  sendRaw(data: string | Buffer): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new CallAbortedError('closed', 'socket is not open');
    ws.send(data);
  }

  /** Resolves with `{reportInterval}`; an answer without it rejects with BadAnswerError. */
  updateStats(stats?: Stats): Promise<UpdateStatsResult> {
    return this.request<UpdateStatsResult>(
      Methods.UpdateStats,
      stats === undefined ? {} : { stats },
      checkUpdateStatsResult,
    );
  }

  batchUpdateMetadata(metadata: MetadataItem[]): Promise<BatchUpdateMetadataResult> {
    return this.request<BatchUpdateMetadataResult>(
      Methods.BatchUpdateMetadata,
      { metadata },
      checkBatchUpdateMetadataResult,
    );
  }

  /** Number of calls waiting for an answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Closes the socket and stops reconnecting; resolves when the close completed. */
  close(code = 1000, reason = ''): Promise<void> {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(code, reason);
    });
  }
}
