// The agent side of the protocol: one socket, typed calls, timeouts, and reconnect with jittered
// exponential backoff. A close with a "do not reconnect" code (4501) or a refused token ends it.
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { shouldReconnect } from '../protocol/codes.js';
import {
  type BatchUpdateMetadataResult,
  type MetadataItem,
  Methods,
  type RpcRequest,
  type RpcResponse,
  type Stats,
  type UpdateStatsResult,
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
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Stop after this many consecutive failed reconnect attempts (default unbounded). */
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
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export interface AgentClientEvents {
  open: [];
  close: [code: number, reason: string];
  reconnecting: [attempt: number, delayMs: number];
  refused: [err: ConnectRefusedError];
  error: [err: Error];
}

export class AgentClient extends EventEmitter<AgentClientEvents> {
  readonly opts: Required<Omit<AgentClientOptions, 'localAddress'>> & Pick<AgentClientOptions, 'localAddress'>;
  private ws: WebSocket | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedByUser = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
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
        this.attempt = 0;
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
    if (this.attempt >= this.opts.maxReconnectAttempts) return;
    this.attempt++;
    const ceiling = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** (this.attempt - 1));
    // Full jitter: agents that lost the same gateway do not come back in one wave.
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.emit('reconnecting', this.attempt, delay);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.open().catch(() => {
        /* the next attempt is already scheduled by open() */
      });
    }, delay);
    this.reconnectTimer.unref?.();
  }

  private onMessage(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    const list = Array.isArray(msg) ? msg : [msg];
    for (const r of list as RpcResponse[]) {
      if (typeof r !== 'object' || r === null || typeof r.id !== 'number') continue;
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      if ('error' in r) p.reject(new RpcCallError(r.error.code, r.error.message, r.error.data));
      else p.resolve(r.result);
    }
  }

  private failPending(reason: 'closed' | 'timeout', message: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new CallAbortedError(reason, message));
    }
  }

  /** Sends one request and resolves with its result; rejects with RpcCallError or CallAbortedError. */
  call<R = unknown>(method: string, params?: unknown): Promise<R> {
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
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
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

  updateStats(stats?: Stats): Promise<UpdateStatsResult> {
    return this.call<UpdateStatsResult>(Methods.UpdateStats, stats === undefined ? {} : { stats });
  }

  batchUpdateMetadata(metadata: MetadataItem[]): Promise<BatchUpdateMetadataResult> {
    return this.call<BatchUpdateMetadataResult>(Methods.BatchUpdateMetadata, { metadata });
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
