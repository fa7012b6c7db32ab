// The hub (Centrifuge's node.go): wires store, writers, sessions and connections once, and owns what
// spans sessions: the token check, heartbeat, usage flush, `/debug/sessions` and the shutdown drain.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { CloseCode, type DebugSession, formatProtoDuration } from '@agentgate/shared';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Config } from './config.js';
import { nextAutostart } from './handlers/autostart.js';
import { metadataHandler } from './handlers/metadata.js';
import { statsHandler } from './handlers/stats.js';
import type { Handler } from './handlers/types.js';
import type { Refusal } from './http/routes.js';
import { AgentMetrics } from './ops/agent-metrics.js';
import { type Clock, systemClock, type TimerHandle } from './ops/clock.js';
import { DbHealth } from './ops/db-health.js';
import type { Logger } from './ops/log.js';
import { GatewayMetrics } from './ops/metrics.js';
import { AgentConnection } from './rpc/connection.js';
import { RefreshBatcher } from './session/refresh-batcher.js';
import { SessionRegistry } from './session/registry.js';
import { type AgentConnectionEvent, Session, type SessionDeps } from './session/session.js';
import { ActivityWriter } from './store/activity-writer.js';
import type { BatchWriter } from './store/batch-writer.js';
import { createFrameWriters, type MetadataWrite } from './store/frame-writers.js';
import { KeyedFlusher } from './store/keyed-flusher.js';
import type { AgentWorkspaceRow, StatsRow, Store } from './store/store.js';
import { WriteBuffer } from './store/write-buffer.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** How long the token check may wait for the database before answering 503 (SPEC §3: within 3 s). */
const AUTH_TIMEOUT_MS = 2500;

export type GatewayConfig = Pick<
  Config,
  | 'workspaceCache'
  | 'workspaceRefreshIntervalMs'
  | 'statsReportIntervalMs'
  | 'heartbeatIntervalMs'
  | 'usageFlushIntervalMs'
  | 'maxFrameBytes'
  | 'sessionRate'
  | 'writeBuffer'
  | 'adminToken'
>;

export interface GatewayOptions {
  config: GatewayConfig;
  store: Store;
  log: Logger;
  clock?: Clock;
  /** Health probe; defaults to store.ping (serve passes one on its own connection). */
  ping?: () => Promise<void>;
}

export class Gateway {
  readonly metrics = new GatewayMetrics();
  readonly agentMetrics: AgentMetrics;
  readonly registry = new SessionRegistry<Session>();
  readonly health: DbHealth;
  readonly wss: WebSocketServer;
  readonly stats: BatchWriter<StatsRow>;
  readonly metadata: BatchWriter<MetadataWrite>;
  readonly activity: ActivityWriter;
  private readonly connectionTimes: KeyedFlusher<AgentConnectionEvent>;
  private readonly refreshBatcher: RefreshBatcher;
  private readonly sessionDeps: SessionDeps;
  private readonly handlers: Map<string, Handler>;
  private readonly connections = new Map<Session, AgentConnection>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly store: Store;
  private readonly buffer: WriteBuffer;
  private heartbeatTimer: TimerHandle | undefined;
  private usageTimer: TimerHandle | undefined;
  draining = false;

  constructor(private readonly opts: GatewayOptions) {
    const { config, store, log } = opts;
    this.clock = opts.clock ?? systemClock;
    this.log = log;
    this.store = store;
    const clock = this.clock;
    this.health = new DbHealth(opts.ping ?? (() => store.ping()), clock, log);
    const hooks = {
      onSuccess: () => this.health.succeeded(),
      onFailure: (err: unknown) => this.health.failed(err),
    };
    this.agentMetrics = new AgentMetrics(2 * config.statsReportIntervalMs, (n) =>
      this.metrics.agentMetricsDropped.inc(n),
    );
    this.buffer = new WriteBuffer(config.writeBuffer);
    this.activity = new ActivityWriter({
      store,
      clock,
      log,
      nextAutostart,
      // Activity is coalesced per workspace over this window: one bump and one NOTIFY each.
      bumpDelayMs: 500,
      ...hooks,
    });
    const writers = createFrameWriters({
      store,
      clock,
      log,
      buffer: this.buffer,
      hooks,
      onBatch: (table, n) => this.metrics.batch(table, n),
    });
    this.stats = writers.stats;
    this.metadata = writers.metadata;
    this.connectionTimes = new KeyedFlusher<AgentConnectionEvent>({
      name: 'agent_connections',
      delayMs: 0,
      clock,
      log,
      ...hooks,
      merge: (older, newer) =>
        newer.connectedAt !== null ? newer : { connectedAt: older.connectedAt, disconnectedAt: newer.disconnectedAt },
      write: (entries) =>
        store.updateAgentConnections(
          entries.map(([agentId, e]) => ({ agentId, connectedAt: e.connectedAt, disconnectedAt: e.disconnectedAt })),
        ),
    });
    this.refreshBatcher = new RefreshBatcher(store, clock, () => this.metrics.lookup('refresh'));
    const reportInterval = formatProtoDuration(config.statsReportIntervalMs);
    this.handlers = new Map<string, Handler>([
      [
        'UpdateStats',
        statsHandler({
          writer: this.stats,
          activity: this.activity,
          agentMetrics: this.agentMetrics,
          clock,
          reportInterval,
        }),
      ],
      ['BatchUpdateMetadata', metadataHandler({ writer: this.metadata })],
    ]);
    // One deps object shared by every session (a session holds a reference, not a copy).
    this.sessionDeps = {
      store,
      clock,
      log,
      metrics: this.metrics,
      agentMetrics: this.agentMetrics,
      refreshBatcher: this.refreshBatcher,
      registry: this.registry,
      recordConnection: (agentId, e) => this.connectionTimes.set(agentId, e),
      cacheEnabled: config.workspaceCache,
      refreshIntervalMs: config.workspaceRefreshIntervalMs,
    };
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: config.maxFrameBytes,
      clientTracking: false,
    });
  }

  start(): void {
    this.health.start();
    const tickMs = this.opts.config.heartbeatIntervalMs / 10;
    const tick = () => {
      this.heartbeat();
      this.heartbeatTimer = this.clock.setTimeout(tick, tickMs);
      this.heartbeatTimer.unref?.();
    };
    this.heartbeatTimer = this.clock.setTimeout(tick, tickMs);
    this.heartbeatTimer.unref?.();
    const usage = () => {
      void this.flushUsage();
      this.usageTimer = this.clock.setTimeout(usage, this.opts.config.usageFlushIntervalMs);
      this.usageTimer.unref?.();
    };
    this.usageTimer = this.clock.setTimeout(usage, this.opts.config.usageFlushIntervalMs);
    this.usageTimer.unref?.();
  }

  get sessionCount(): number {
    return this.registry.size;
  }

  /**
   * SPEC §5 heartbeat: each socket is pinged once per interval, at its own phase (pinging every
   * socket in one tick stalls the event loop with thousands of sessions), and a peer silent for two
   * intervals is terminated. Ticks run ten times per interval, so silence is caught within 2.1.
   */
  private heartbeat(): void {
    const now = this.clock.now();
    const hb = this.opts.config.heartbeatIntervalMs;
    for (const conn of this.connections.values()) {
      if (now - conn.lastSeen >= 2 * hb) {
        this.log.info({ agentId: conn.session.subject.agentId }, 'heartbeat timeout; terminating');
        conn.ws.terminate();
      } else if (now >= conn.nextPingAt) {
        conn.nextPingAt = now + hb;
        conn.ws.ping();
      }
    }
  }

  /** `last_used_at` of active workspaces and `last_connected_at` of live agents (SPEC §4, §5). */
  private async flushUsage(): Promise<void> {
    const at = new Date(this.clock.now()).toISOString();
    for (const agentId of this.registry.byAgent.keys()) {
      this.connectionTimes.set(agentId, { connectedAt: at, disconnectedAt: null });
    }
    await this.activity.flushUsage();
  }

  /** SPEC §3: the checks before the upgrade, in order; resolves to the loaded row or a refusal. */
  async authenticate(req: IncomingMessage): Promise<{ row: AgentWorkspaceRow; token: string } | Refusal> {
    if (this.draining) return { status: 503, message: 'the gateway is shutting down', retryAfterS: 5 };
    if (!this.health.up) return { status: 503, message: 'the database is unreachable', retryAfterS: 5 };
    const token = tokenOf(req);
    if (!token) return { status: 401, message: 'missing agent token (Coder-Session-Token or Authorization: Bearer)' };
    if (!UUID_RE.test(token)) return { status: 401, message: 'agent token is not a valid UUID' };
    this.metrics.lookup('connect');
    let row: AgentWorkspaceRow | undefined;
    try {
      row = await raceTimeout(this.store.agentByToken(token), AUTH_TIMEOUT_MS);
    } catch (err) {
      this.health.failed(err);
      return { status: 503, message: 'the database is unreachable', retryAfterS: 5 };
    }
    if (!row) return { status: 401, message: 'unknown agent token' };
    if (row.agentDeleted) return { status: 401, message: 'the agent has been deleted' };
    if (row.workspace.deleted) return { status: 401, message: 'the workspace has been deleted' };
    if (row.workspace.dormant) return { status: 401, message: 'the workspace is dormant' };
    if (row.buildNumber !== row.latestBuildNumber) {
      return { status: 403, message: "the agent does not belong to the workspace's latest build" };
    }
    if (this.draining) return { status: 503, message: 'the gateway is shutting down', retryAfterS: 5 };
    return { row, token };
  }

  /** Completes an authenticated upgrade: one session and one connection per socket. */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, row: AgentWorkspaceRow, token: string): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, row, token));
  }

  private open(ws: WebSocket, row: AgentWorkspaceRow, token: string): void {
    const session = new Session(this.sessionDeps, row, token);
    const conn = new AgentConnection(ws, session, {
      handlers: this.handlers,
      metrics: this.metrics,
      clock: this.clock,
      log: this.log,
      sessionRate: this.opts.config.sessionRate,
    });
    // A random phase spreads the pings of sockets that connected together.
    conn.nextPingAt = this.clock.now() + this.opts.config.heartbeatIntervalMs * Math.random();
    this.connections.set(session, conn);
    session.start();
    this.metrics.sessions.inc();
    ws.on('message', (data, isBinary) => conn.onMessage(data, isBinary));
    ws.on('pong', () => {
      conn.lastSeen = this.clock.now();
    });
    ws.on('ping', () => {
      conn.lastSeen = this.clock.now();
    });
    ws.on('error', (err) => {
      // ws closes the socket itself with the matching code (1007, 1009, ...).
      this.log.debug({ agentId: session.subject.agentId, err: err.message }, 'socket error');
    });
    ws.on('close', (code) => {
      this.connections.delete(session);
      session.close();
      this.metrics.sessions.dec();
      this.log.debug({ agentId: session.subject.agentId, code }, 'session closed');
    });
    this.log.debug({ agentId: row.agentId, workspaceId: row.workspace.id }, 'session opened');
  }

  /** `GET /debug/sessions` (SPEC §3). */
  debugSessions(): { sessions: DebugSession[] } {
    const sessions: DebugSession[] = [];
    for (const s of this.registry.values()) {
      sessions.push({
        agentId: s.subject.agentId,
        workspaceId: s.subject.workspaceId,
        connectedAt: new Date(s.connectedAt).toISOString(),
        identityCached: s.identity.cached,
        lastRefreshAt: s.lastRefreshAt === undefined ? null : new Date(s.lastRefreshAt).toISOString(),
        lastRefreshOutcome: s.lastRefreshOutcome,
      });
    }
    return { sessions };
  }

  get adminConfigured(): boolean {
    return Boolean(this.opts.config.adminToken);
  }

  /** Whether `req` carries the admin bearer token (constant-time comparison). */
  isAdmin(req: IncomingMessage): boolean {
    const want = this.opts.config.adminToken;
    if (!want) return false;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const a = Buffer.from(m[1]!.trim());
    const b = Buffer.from(want);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  async renderMetrics(): Promise<string> {
    this.metrics.sessions.set(this.registry.size);
    this.metrics.writeBufferUsed.set(this.buffer.size);
    return (await this.metrics.registry.metrics()) + this.agentMetrics.render(this.clock.now());
  }

  get ready(): boolean {
    return !this.draining && this.health.up;
  }

  /**
   * SPEC §7 shutdown: stop accepting (503), close sockets with 1001 spread over
   * min(5 s, timeout/3) after answering what they sent, flush every writer, last usage flush.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const started = Date.now();
    const conns = [...this.connections.values()];
    const spreadMs = Math.min(5000, timeoutMs / 3);
    const perConnMs = Math.max(100, timeoutMs - spreadMs - 2000);
    this.log.info({ sessions: conns.length, spreadMs }, 'draining');
    await Promise.all(
      conns.map(async (conn, i) => {
        const delay = conns.length > 1 ? (spreadMs * i) / conns.length : 0;
        await new Promise((r) => setTimeout(r, delay));
        await conn.quiesce(perConnMs - delay);
        const closed = conn.closed();
        conn.close(CloseCode.GoingAway, 'server shutting down');
        // A peer that does not finish the close handshake is cut off within the drain budget.
        const left = Math.max(100, timeoutMs - (Date.now() - started) - 1000);
        await raceTimeout(closed, Math.min(5000, left)).catch(() => conn.ws.terminate());
      }),
    );
    const left = () => Math.max(0, timeoutMs - (Date.now() - started) - 500);
    await raceTimeout(Promise.all([this.stats.idle(), this.metadata.idle()]), left()).catch(() => {
      this.log.warn('some frames were still waiting for the database at shutdown');
    });
    await raceTimeout(this.activity.flushAll(), left()).catch(() => {});
    await raceTimeout(this.connectionTimes.flush(), left()).catch(() => {});
  }

  stop(): void {
    this.health.stop();
    this.clock.clearTimeout(this.heartbeatTimer);
    this.clock.clearTimeout(this.usageTimer);
    this.connectionTimes.stop();
    for (const conn of this.connections.values()) conn.ws.terminate();
  }
}

function tokenOf(req: IncomingMessage): string | undefined {
  const direct = req.headers['coder-session-token'];
  if (typeof direct === 'string' && direct.trim() !== '') return direct.trim();
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return m ? m[1]!.trim() : undefined;
}

function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
