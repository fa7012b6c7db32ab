// A raw agent WebSocket, for frames the SDK would never send: it queues every message (parsed as
// JSON) and records the close, and reads them back one at a time. Used by the fuzzer, scrape and
// the tests.
import WebSocket from 'ws';

export interface CloseInfo {
  code: number;
  reason: string;
  at: number;
}

/** What came next: a message, the close (after every message), or nothing within the time. */
export type Incoming = { msg: unknown } | { closed: number } | { timeout: true };

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

  /** Opens a socket with the token in `Coder-Session-Token` (or `Authorization: Bearer`); rejects a refused upgrade. */
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

  /** The next message not yet taken, else the close, else a timeout after `timeoutMs`; never throws. */
  async nextEvent(timeoutMs: number): Promise<Incoming> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.messages.length > 0) return { msg: this.messages.shift() };
      if (this.closeInfo) return { closed: this.closeInfo.code };
      const left = deadline - Date.now();
      if (left <= 0) return { timeout: true };
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The next message not yet taken; rejects after `timeoutMs` or when the socket closes first. */
  async next(timeoutMs = 5000): Promise<unknown> {
    const x = await this.nextEvent(timeoutMs);
    if ('msg' in x) return x.msg;
    if ('closed' in x) throw new Error(`socket closed with ${x.closed} before a message came`);
    throw new Error(`no message within ${timeoutMs} ms`);
  }

  /** Sends `frame` and returns the next message. */
  async request(frame: unknown, timeoutMs = 5000): Promise<Record<string, unknown>> {
    this.send(frame);
    return (await this.next(timeoutMs)) as Record<string, unknown>;
  }

  /** The close, within `timeoutMs`. */
  waitClosed(timeoutMs = 5000): Promise<CloseInfo> {
    let t: NodeJS.Timeout | undefined;
    return Promise.race([
      this.closed.finally(() => clearTimeout(t)),
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: socket close`)), timeoutMs);
      }),
    ]);
  }

  /** A normal close (1000); terminated when the peer does not answer it within 3 s. */
  close(): Promise<CloseInfo> {
    if (!this.closeInfo) this.ws.close(1000);
    return this.waitClosed(3000).catch(() => {
      this.ws.terminate();
      return { code: 1006, reason: 'terminated', at: Date.now() };
    });
  }
}
