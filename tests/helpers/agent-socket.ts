// Agent connections to the real gateway: an AgentClient that does not reconnect, a raw WebSocket
// that queues every message (for frames the SDK would never send), and JSON-RPC request frames.
import { AgentClient } from '@agentgate/shared';
import WebSocket from 'ws';
import { withTimeout } from './wait.ts';

/** An AgentClient that does not reconnect, connected. */
export async function connectAgent(
  url: string,
  token: string,
  o: { tokenHeader?: 'coder' | 'bearer'; requestTimeoutMs?: number } = {},
): Promise<AgentClient> {
  const c = new AgentClient({ url, token, reconnect: false, requestTimeoutMs: o.requestTimeoutMs ?? 10_000, ...o });
  await c.connect();
  return c;
}

/** The code the client's socket closed with: at once if it is closed, else within `timeoutMs`. */
export function closeCode(c: AgentClient, timeoutMs: number): Promise<number> {
  if (!c.connected) return Promise.resolve(c.lastCloseCode);
  return withTimeout(
    new Promise<number>((resolve) => c.once('close', (code) => resolve(code))),
    timeoutMs,
    'the socket to close',
  );
}

export interface CloseInfo {
  code: number;
  reason: string;
  at: number;
}

/** A raw WebSocket that queues every text message (parsed JSON) and records the close. */
export class RawSocket {
  readonly messages: unknown[] = [];
  private waiters: (() => void)[] = [];
  readonly closed: Promise<CloseInfo>;
  closeInfo: CloseInfo | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      let v: unknown;
      try {
        v = isBinary ? { binary: text } : JSON.parse(text);
      } catch {
        v = { unparsable: text };
      }
      this.messages.push(v);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        this.wake();
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {
      /* surfaced through `closed` */
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static open(url: string, token: string, header: 'coder' | 'bearer' = 'coder'): Promise<RawSocket> {
    const headers: Record<string, string> =
      header === 'bearer' ? { Authorization: `Bearer ${token}` } : { 'Coder-Session-Token': token };
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: 10_000 });
    return new Promise((resolve, reject) => {
      const s = new RawSocket(ws);
      ws.once('open', () => resolve(s));
      ws.once('unexpected-response', (_req, res) => {
        ws.terminate();
        reject(new Error(`upgrade refused with ${res.statusCode}`));
      });
      ws.once('error', reject);
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a string as is, or an object as JSON. */
  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  sendBytes(data: Buffer, binary: boolean): void {
    this.ws.send(data, { binary });
  }

  /** The next message not yet taken; rejects after `timeoutMs` or when the socket closes first. */
  async next(timeoutMs = 5000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.messages.length > 0) return this.messages.shift();
      if (this.closeInfo) throw new Error(`socket closed with ${this.closeInfo.code} before a message came`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends `frame` and returns the next message. */
  async request(frame: unknown, timeoutMs = 5000): Promise<Record<string, unknown>> {
    this.send(frame);
    return (await this.next(timeoutMs)) as Record<string, unknown>;
  }

  async waitClosed(timeoutMs = 5000): Promise<CloseInfo> {
    return withTimeout(this.closed, timeoutMs, 'socket close');
  }

  close(): Promise<CloseInfo> {
    if (!this.closeInfo) this.ws.close(1000);
    return withTimeout(this.closed, 3000, 'socket close').catch(() => {
      this.ws.terminate();
      return { code: 1006, reason: 'terminated', at: Date.now() };
    });
  }
}

/** A JSON-RPC 2.0 request frame. */
export function rpc(id: unknown, method: string, params?: unknown): Record<string, unknown> {
  const f: Record<string, unknown> = { jsonrpc: '2.0', id, method };
  if (params !== undefined) f['params'] = params;
  return f;
}
