// HTTP side of SPEC §3: refusals as JSON `{"message"}` bodies, on a plain response or on the raw
// socket of a refused upgrade (no WebSocket is ever created for those). A refused connection is
// released within 2 s even when the client never closes its end.
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RefusalReason } from '../ops/metrics.js';

export interface Refusal {
  status: number;
  /** The agentgate_connections_refused_total label (SPEC §3). */
  reason: RefusalReason;
  message: string;
  retryAfterS?: number;
}

/** How long a refused client may take to close its end before the gateway cuts the socket. */
const REFUSED_LINGER_MS = 2000;

export function respondJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** Destroys `socket` unless it closes by itself within REFUSED_LINGER_MS (its descriptor is released). */
export function releaseSoon(socket: Duplex): void {
  if (socket.destroyed) return;
  const t = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}

/** A refused request on the agent endpoint: the answer, then the connection is closed. */
export function refuse(res: ServerResponse, r: Refusal, extra: Record<string, string> = {}): void {
  const headers: Record<string, string> = { ...extra, connection: 'close' };
  if (r.retryAfterS) headers['retry-after'] = String(r.retryAfterS);
  respondJson(res, r.status, { message: r.message }, headers);
  releaseSoon(res.socket ?? res.req.socket);
}

export function refuseUpgrade(socket: Duplex, r: Refusal): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ message: r.message });
  const head =
    `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\n` +
    'Connection: close\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n' +
    (r.retryAfterS ? `Retry-After: ${r.retryAfterS}\r\n` : '') +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  socket.end(head + body);
  releaseSoon(socket);
}
