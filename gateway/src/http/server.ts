// One HTTP server: `/healthz`, `/readyz`, `/metrics`, `/debug/sessions`, and the agent RPC endpoint
// (SPEC §3). Refusals are checked in the order of the SPEC table; 404 for everything else. What the
// routes answer comes from the hub through GatewayApi; this module knows HTTP only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type DebugSession, RPC_PATH } from '@agentgate/shared';
import type { Logger } from '../ops/log.js';
import type { AdminAuth } from './admin-auth.js';
import type { Accepted, AgentAuth } from './agent-auth.js';
import { type Refusal, refuse, refuseUpgrade, releaseSoon, respondJson } from './responses.js';

export type Readiness = 'ready' | 'draining' | 'database';

/** What the routes need from the gateway hub (or, in a cluster worker, from the whole tree). */
export interface GatewayApi {
  readonly agentAuth: AgentAuth;
  readonly adminAuth: AdminAuth;
  /** SPEC §3 `/readyz`: 'ready', or why not. */
  readiness(): Readiness | Promise<Readiness>;
  /** The Prometheus text of `/metrics`, in chunks. */
  metricsText(): AsyncIterable<string>;
  debugSessions(): { sessions: DebugSession[] } | Promise<{ sessions: DebugSession[] }>;
  /** Completes an authenticated upgrade. */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, accepted: Accepted): void;
}

/** Which routes a listener serves (SPEC §1 `--metrics-listen`: /metrics and /debug/* move off the agents' one). */
type RouteSet = 'all' | 'agents' | 'ops';

export interface HttpServerOptions {
  routes: RouteSet;
  /** Open sockets of this listener beyond which new connections get 503 (SPEC §3). */
  maxConnections: number;
  /** A scrape whose client reads nothing for this long is closed (SPEC §3: 10 s; tests shorten it). */
  scrapeStallMs?: number;
}

/** Request headers must arrive within this long (SPEC §3), checked every second. */
const HEADERS_TIMEOUT_MS = 10_000;
const overLimit: Refusal = { status: 503, message: 'too many connections', retryAfterS: 1 };
/**
 * SPEC §3: `/metrics` scrapes at once. Per server, which is per process: only one listener of a
 * process serves `/metrics` (the main one, or the `--metrics-listen` one).
 */
const MAX_SCRAPES = 4;
const SCRAPE_STALL_MS = 10_000;
const tooManyScrapes: Refusal = { status: 503, message: 'too many scrapes at once', retryAfterS: 1 };
const OVER = Symbol('over the connection limit');

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

const isOpsPath = (path: string) => path === '/metrics' || path.startsWith('/debug/');

export function createHttpServer(api: GatewayApi, log: Logger, opts: HttpServerOptions): Server {
  const server = createServer(
    {
      keepAliveTimeout: 5000,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: HEADERS_TIMEOUT_MS + 5000,
      // Node checks the two timeouts above only this often (30 s by default).
      connectionsCheckingInterval: 1000,
    },
    (req, res) => {
      if ((req.socket as Socket & { [OVER]?: true })[OVER]) {
        refuse(res, overLimit);
        return;
      }
      handleRequest(api, opts.routes, req, res, scrapes).catch((err) => {
        log.error({ err }, 'http handler failed');
        if (!res.headersSent) respondJson(res, 500, { message: 'internal error' });
        else res.destroy();
      });
    },
  );
  const scrapes = new Scrapes(opts.scrapeStallMs ?? SCRAPE_STALL_MS, log);
  let open = 0;
  server.on('connection', (socket: Socket & { [OVER]?: true }) => {
    open++;
    socket.once('close', () => open--);
    // Counted from the first byte: an over-limit socket is answered 503 and released.
    if (open > opts.maxConnections) socket[OVER] = true;
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if ((socket as Socket & { [OVER]?: true })[OVER]) {
      refuseUpgrade(socket, overLimit);
      return;
    }
    handleUpgrade(api, opts.routes, req, socket, head).catch((err) => {
      log.error({ err }, 'upgrade failed');
      refuseUpgrade(socket, { status: 500, message: 'internal error' });
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    releaseSoon(socket);
  });
  return server;
}

async function handleUpgrade(
  api: GatewayApi,
  routes: RouteSet,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  if (routes === 'ops' || pathOf(req) !== RPC_PATH || req.method !== 'GET') {
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

async function handleRequest(
  api: GatewayApi,
  routes: RouteSet,
  req: IncomingMessage,
  res: ServerResponse,
  scrapes: Scrapes,
): Promise<void> {
  const path = pathOf(req);
  const served =
    routes === 'all' || (routes === 'ops' ? isOpsPath(path) || !path.startsWith('/api/') : !isOpsPath(path));
  switch (served ? path : '') {
    case '/healthz':
      respondJson(res, 200, { status: 'ok' });
      return;
    case '/readyz': {
      const r = await api.readiness();
      if (r === 'ready') respondJson(res, 200, { status: 'ready' });
      else {
        const message = r === 'draining' ? 'draining' : 'the database is unreachable';
        respondJson(res, 503, { status: 'unavailable', message }, { 'retry-after': '5' });
      }
      return;
    }
    case '/metrics':
      await scrapes.serve(api, res);
      return;
    case '/debug/sessions':
      if (!api.adminAuth.configured) break;
      if (!api.adminAuth.allows(req)) {
        respondJson(res, 401, { message: 'admin token required' });
        return;
      }
      respondJson(res, 200, await api.debugSessions());
      return;
    case RPC_PATH: {
      const auth = await api.agentAuth.check(req);
      if ('status' in auth) refuse(res, auth);
      else refuse(res, { status: 426, message: 'this endpoint needs a WebSocket upgrade' }, { upgrade: 'websocket' });
      return;
    }
  }
  respondJson(res, 404, { message: 'not found' });
}

/** `/metrics` answers (SPEC §3): at most MAX_SCRAPES at once, each closed when its client stops reading. */
class Scrapes {
  private running = 0;

  constructor(
    private readonly stallMs: number,
    private readonly log: Logger,
  ) {}

  async serve(api: GatewayApi, res: ServerResponse): Promise<void> {
    if (this.running >= MAX_SCRAPES) {
      refuse(res, tooManyScrapes);
      return;
    }
    this.running++;
    const chunks = api.metricsText()[Symbol.asyncIterator]();
    try {
      // The first chunk before the status: a gathering that fails at once is a 500, not a cut body.
      let next = await chunks.next();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      for (; !next.done; next = await chunks.next()) {
        if (res.destroyed) return; // the scraper went away
        if (!res.write(next.value) && !(await this.progress(res, 'drain'))) return;
      }
      // The slot is held until the body has left the process.
      res.end();
      if (!res.writableFinished) await this.progress(res, 'finish');
    } finally {
      this.running--;
      // Releases the generator (and in a worker, the primary's answer) at once, whatever happened.
      await chunks.return?.();
    }
  }

  /** Waits for `event`; false, with the response destroyed, when it closed or its client read nothing for stallMs. */
  private progress(res: ServerResponse, event: 'drain' | 'finish'): Promise<boolean> {
    if (res.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const settle = (ok: boolean) => {
        clearTimeout(timer);
        res.off(event, onEvent);
        res.off('close', onClose);
        if (!ok) res.destroy();
        resolve(ok);
      };
      const onEvent = () => settle(true);
      const onClose = () => settle(false);
      const timer = setTimeout(() => {
        this.log.info({ stallMs: this.stallMs }, 'a /metrics client stopped reading; closing its scrape');
        settle(false);
      }, this.stallMs);
      res.on(event, onEvent);
      res.on('close', onClose);
    });
  }
}
