// One HTTP server: `/healthz`, `/readyz`, `/metrics`, `/debug/sessions`, and the agent RPC endpoint
// (SPEC §3). Refusals are checked in the order of the SPEC table; 404 for everything else.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { RPC_PATH } from '@agentgate/shared';
import type { Gateway } from '../gateway.js';
import type { Logger } from '../ops/log.js';
import { refuse, refuseUpgrade, respondJson } from './routes.js';

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function createHttpServer(gateway: Gateway, log: Logger): Server {
  const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
    handleRequest(gateway, req, res).catch((err) => {
      log.error({ err }, 'http handler failed');
      if (!res.headersSent) respondJson(res, 500, { message: 'internal error' });
      else res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    handleUpgrade(gateway, req, socket, head).catch((err) => {
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

async function handleUpgrade(gateway: Gateway, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  if (pathOf(req) !== RPC_PATH || req.method !== 'GET') {
    refuseUpgrade(socket, { status: 404, message: 'not found' });
    return;
  }
  const auth = await gateway.authenticate(req);
  if ('status' in auth) {
    refuseUpgrade(socket, auth);
    return;
  }
  if (socket.destroyed) return;
  gateway.accept(req, socket, head, auth.row, auth.token);
}

async function handleRequest(gateway: Gateway, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = pathOf(req);
  switch (path) {
    case '/healthz':
      respondJson(res, 200, { status: 'ok' });
      return;
    case '/readyz':
      if (gateway.ready) respondJson(res, 200, { status: 'ready' });
      else
        respondJson(
          res,
          503,
          { status: 'unavailable', message: gateway.draining ? 'draining' : 'the database is unreachable' },
          { 'retry-after': '5' },
        );
      return;
    case '/metrics': {
      const text = await gateway.renderMetrics();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(text);
      return;
    }
    case '/debug/sessions':
      if (gateway.adminConfigured === false) break;
      if (!gateway.isAdmin(req)) {
        respondJson(res, 401, { message: 'admin token required' });
        return;
      }
      respondJson(res, 200, gateway.debugSessions());
      return;
    case RPC_PATH: {
      const auth = await gateway.authenticate(req);
      if ('status' in auth) refuse(res, auth);
      else respondJson(res, 426, { message: 'this endpoint needs a WebSocket upgrade' }, { upgrade: 'websocket' });
      return;
    }
  }
  respondJson(res, 404, { message: 'not found' });
}
