// One HTTP server: `/healthz`, `/readyz`, `/metrics`, `/debug/sessions`, and the agent RPC endpoint
// (SPEC §3). Refusals are checked in the order of the SPEC table; 404 for everything else. What the
// routes answer comes from the hub through GatewayApi; this module knows HTTP only.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { type DebugSession, RPC_PATH } from '@agentgate/shared';
import type { Logger } from '../ops/log.js';
import type { AdminAuth } from './admin-auth.js';
import type { Accepted, AgentAuth } from './agent-auth.js';
import { refuse, refuseUpgrade, respondJson } from './responses.js';

/** What the routes need from the gateway hub. */
export interface GatewayApi {
  readonly agentAuth: AgentAuth;
  readonly adminAuth: AdminAuth;
  /** SPEC §3 `/readyz`: 'ready', or why not. */
  readiness(): 'ready' | 'draining' | 'database';
  /** The Prometheus text of `/metrics`, in chunks. */
  metricsText(): AsyncIterable<string>;
  debugSessions(): { sessions: DebugSession[] };
  /** Completes an authenticated upgrade. */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, accepted: Accepted): void;
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function createHttpServer(api: GatewayApi, log: Logger): Server {
  const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
    handleRequest(api, req, res).catch((err) => {
      log.error({ err }, 'http handler failed');
      if (!res.headersSent) respondJson(res, 500, { message: 'internal error' });
      else res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    handleUpgrade(api, req, socket, head).catch((err) => {
      log.error({ err }, 'upgrade failed');
      refuseUpgrade(socket, { status: 500, message: 'internal error' });
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

async function handleUpgrade(api: GatewayApi, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  if (pathOf(req) !== RPC_PATH || req.method !== 'GET') {
    refuseUpgrade(socket, { status: 404, message: 'not found' });
    return;
  }
  const auth = await api.agentAuth.check(req);
  if ('status' in auth) {
    refuseUpgrade(socket, auth);
    return;
  }
  if (socket.destroyed) return;
  api.accept(req, socket, head, auth);
}

async function handleRequest(api: GatewayApi, req: IncomingMessage, res: ServerResponse): Promise<void> {
  switch (pathOf(req)) {
    case '/healthz':
      respondJson(res, 200, { status: 'ok' });
      return;
    case '/readyz': {
      const r = api.readiness();
      if (r === 'ready') respondJson(res, 200, { status: 'ready' });
      else {
        const message = r === 'draining' ? 'draining' : 'the database is unreachable';
        respondJson(res, 503, { status: 'unavailable', message }, { 'retry-after': '5' });
      }
      return;
    }
    case '/metrics': {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      for await (const chunk of api.metricsText()) {
        if (res.destroyed) return; // the scraper went away
        if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      }
      res.end();
      return;
    }
    case '/debug/sessions':
      if (!api.adminAuth.configured) break;
      if (!api.adminAuth.allows(req)) {
        respondJson(res, 401, { message: 'admin token required' });
        return;
      }
      respondJson(res, 200, api.debugSessions());
      return;
    case RPC_PATH: {
      const auth = await api.agentAuth.check(req);
      if ('status' in auth) refuse(res, auth);
      else respondJson(res, 426, { message: 'this endpoint needs a WebSocket upgrade' }, { upgrade: 'websocket' });
      return;
    }
  }
  respondJson(res, 404, { message: 'not found' });
}
