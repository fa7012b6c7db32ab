// Plain HTTP requests to the gateway (routes, refused upgrades) and the admin /debug/sessions list.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { DebugSession } from '@agentgate/shared';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON, or undefined. */
  json: unknown;
  /** The server switched protocols (a WebSocket was created). */
  upgraded: boolean;
}

/**
 * One HTTP request; with `upgrade` it carries a valid WebSocket handshake. A 101 answer is reported
 * as `upgraded` and its socket closed at once.
 */
export function httpRequest(
  url: string,
  o: { method?: string; headers?: Record<string, string>; upgrade?: boolean; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.upgrade) {
    headers['Connection'] = 'Upgrade';
    headers['Upgrade'] = 'websocket';
    headers['Sec-WebSocket-Version'] = '13';
    headers['Sec-WebSocket-Key'] = randomBytes(16).toString('base64');
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? 'GET', headers, agent: false });
    const t = setTimeout(() => {
      req.destroy(new Error(`no answer from ${url} within ${o.timeoutMs ?? 5000} ms`));
    }, o.timeoutMs ?? 5000);
    req.on('upgrade', (res, socket) => {
      clearTimeout(t);
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '', json: undefined, upgraded: true });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(t);
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json, upgraded: false });
      });
      res.on('error', reject);
    });
    req.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    req.end();
  });
}

/** GET /debug/sessions with the admin token. */
export async function debugSessions(httpUrl: string, adminToken: string): Promise<DebugSession[]> {
  const r = await httpRequest(`${httpUrl}/debug/sessions`, { headers: { Authorization: `Bearer ${adminToken}` } });
  if (r.status !== 200) throw new Error(`/debug/sessions answered ${r.status}: ${r.body}`);
  return (r.json as { sessions: DebugSession[] }).sessions;
}

/** The agent's session in `GET /debug/sessions`, or undefined. */
export async function debugSessionOf(
  httpUrl: string,
  adminToken: string,
  agentId: string,
): Promise<DebugSession | undefined> {
  return (await debugSessions(httpUrl, adminToken)).find((s) => s.agentId === agentId);
}
