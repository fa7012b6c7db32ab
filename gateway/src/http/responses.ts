// HTTP side of SPEC §3: refusals as JSON `{"message"}` bodies, on a plain response or on the raw
// socket of a refused upgrade (no WebSocket is ever created for those).
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

export interface Refusal {
  status: number;
  message: string;
  retryAfterS?: number;
}

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

export function refuse(res: ServerResponse, r: Refusal): void {
  respondJson(res, r.status, { message: r.message }, r.retryAfterS ? { 'retry-after': String(r.retryAfterS) } : {});
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
}
