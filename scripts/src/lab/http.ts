// Talking HTTP to a gateway under test: its http:// base from its ws:// URL, a timed GET, a value
// of its /metrics text, and a scrape that stops reading after one packet.
import http from 'node:http';
import net from 'node:net';

/** http://HOST:PORT of a gateway from its ws://HOST:PORT/api/... URL (wss:// gives https://). */
export function httpBaseUrl(wsUrl: string): string {
  return wsUrl.replace(/^ws/, 'http').replace(/\/api\/.*$/, '');
}

/** A GET on a fresh connection: status, body, and the time to the whole body (ms). */
export function timedGet(url: string): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: performance.now() - t0 }),
        );
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** The value of the first sample of `name` (any labels) in a Prometheus text, or null. */
export function metricValue(text: string, name: string): number | null {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

export interface StalledScrape {
  socket: net.Socket;
  /** The status line of the answer. */
  status: string;
  /** The start of the first packet (up to 200 characters). */
  head: string;
  /** When the first packet came (ms since the epoch). */
  at: number;
}

/** A `GET /metrics` that reads one packet and stops reading (the socket is paused, not closed). */
export function stalledScrape(httpUrl: string): Promise<StalledScrape> {
  const { hostname, port } = new URL(httpUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    socket.on('error', () => {});
    socket.once('connect', () => socket.write(`GET /metrics HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`));
    socket.once('data', (d: Buffer) => {
      socket.pause();
      const status = d.toString('latin1', 0, d.indexOf('\r\n'));
      resolve({ socket, status, head: d.toString('latin1', 0, 200), at: Date.now() });
    });
    socket.once('close', () => reject(new Error('a stalled scrape was closed before its first packet')));
  });
}
