// The hub (Centrifuge's node.go): one per gateway process. It holds the gateway's parts
// (wiring.ts), the open connections, and what spans sessions: the database health, the heartbeat,
// the usage timer, what the routes answer (Routes) and the drain. `connect` is the one place where a
// socket becomes a session and its connection; the upgrade and the unit tests both go through it.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode, type DebugSession, MAX_SESSIONS_PER_AGENT } from '@agentgate/shared';
import { WebSocketServer } from 'ws';
import type { Config } from '../config.js';
import { AdminAuth } from '../http/admin-auth.js';
import { type Accepted, AgentAuth } from '../http/agent-auth.js';
import { describeSession } from '../http/debug-sessions.js';
import type { Routes } from '../http/server.js';
import type { AgentSamplesPart } from '../ops/exposition.js';
import { type Clock, systemClock, type TimerHandle } from '../ops/clock.js';
import { DbHealth } from '../ops/db-health.js';
import type { Logger } from '../ops/log.js';
import type { RefusalReason, RegistryJson } from '../ops/metrics.js';
import { AgentConnection, type AgentSocket, type Corkable } from '../rpc/connection.js';
import { Router } from '../rpc/router.js';
import { Session } from '../session/session.js';
import type { IdentitySink } from '../store/identity-listener.js';
import type { Db } from '../store/db.js';
import { ping } from '../store/lookups.js';
import { drain } from './drain.js';
import { Heartbeat } from './heartbeat.js';
import { type GatewayParts, type PartsConfig, wireParts } from './wiring.js';

type GatewayConfig = PartsConfig &
  Pick<Config, 'heartbeatIntervalMs' | 'usageFlushIntervalMs' | 'maxFrameBytes' | 'sessionRate' | 'adminToken'>;

/** Closed sessions whose bookkeeping one turn of the event loop does (a mass disconnect is spread). */
const CLOSES_PER_TURN = 200;

export interface GatewayOptions {
  config: GatewayConfig;
  db: Db;
  log: Logger;
  clock?: Clock;
  /** Health probe; a `select 1` through `db` by default (serve passes one on its own connection). */
  ping?: () => Promise<void>;
  /** Activity is coalesced per workspace over this window (wiring.ts). */
  activityDelayMs?: number;
  /** The refresh jitter's random source. */
  random?: () => number;
}

export class Gateway implements Routes {
  readonly parts: GatewayParts;
  readonly health: DbHealth;
  readonly agentAuth: AgentAuth;
  readonly adminAuth: AdminAuth;
  private readonly router: Router;
  private readonly wss: WebSocketServer;
  private readonly connections = new Map<Session, AgentConnection>();
  private readonly heartbeat: Heartbeat;
  private readonly clock: Clock;
  private readonly log: Logger;
  private usageTimer: TimerHandle | undefined;
  private draining = false;
  /** The bookkeeping of closed sockets, done a chunk per turn of the event loop. */
  private readonly closing: (() => void)[] = [];

  constructor(private readonly opts: GatewayOptions) {
    const { config, db, log } = opts;
    const clock = opts.clock ?? systemClock;
    this.clock = clock;
    this.log = log;
    this.health = new DbHealth(opts.ping ?? (() => db.query(ping)), clock, log);
    this.parts = wireParts({
      config,
      db,
      clock,
      log,
      onDatabase: this.health,
      ...(opts.activityDelayMs !== undefined ? { activityDelayMs: opts.activityDelayMs } : {}),
      ...(opts.random ? { random: opts.random } : {}),
    });
    const { metrics, methods } = this.parts;
    this.agentAuth = new AgentAuth({ db, health: this.health, metrics, draining: () => this.draining });
    this.adminAuth = new AdminAuth(config.adminToken);
    this.router = new Router({ methods, metrics, log, now: () => clock.now() });
    this.heartbeat = new Heartbeat(() => this.connections.values(), clock, config.heartbeatIntervalMs, log);
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: config.maxFrameBytes,
      clientTracking: false,
    });
  }

  start(): void {
    this.health.start();
    this.heartbeat.start();
    this.parts.agentMetrics.startSweeping(this.clock);
    const usage = () => {
      this.flushUsage();
      this.usageTimer = this.clock.setTimeout(usage, this.opts.config.usageFlushIntervalMs, 'usage_flush');
      this.usageTimer.unref?.();
    };
    this.usageTimer = this.clock.setTimeout(usage, this.opts.config.usageFlushIntervalMs, 'usage_flush');
    this.usageTimer.unref?.();
  }

  get sessionCount(): number {
    return this.parts.registry.size;
  }

  /** Where the `LISTEN` connection's notifications go (SPEC §8). */
  get identitySink(): IdentitySink {
    return this.parts.invalidation;
  }

  /** `last_used_at` of active workspaces and `last_connected_at` of live agents (SPEC §4, §5). */
  private flushUsage(): void {
    const at = new Date(this.clock.now()).toISOString();
    for (const agentId of this.parts.registry.byAgent.keys()) {
      this.parts.connectionTimes.set(agentId, { connectedAt: at, disconnectedAt: null });
    }
    void this.parts.activity.flushUsage();
  }

  accept(req: IncomingMessage, socket: Duplex, head: Buffer, accepted: Accepted): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connect(ws, accepted, socket as Socket));
  }

  /** One session and one connection per socket (SPEC §5 connect), until the socket closes. */
  connect(ws: AgentSocket, { row, token }: Accepted, raw?: Corkable): AgentConnection {
    const { parts, clock, log } = this;
    const session = new Session(parts.sessionDeps, row, token);
    const conn = new AgentConnection(
      ws,
      session,
      { router: this.router, clock, log, sessionRate: this.opts.config.sessionRate },
      raw,
    );
    this.heartbeat.add(conn);
    this.replaceOldest(row.agentId);
    this.connections.set(session, conn);
    session.start();
    parts.metrics.sessions.inc();
    ws.on('message', (data, isBinary) => conn.onMessage(data, isBinary));
    ws.on('pong', () => conn.seen());
    ws.on('ping', () => conn.seen());
    ws.on('error', (err) => {
      // ws closes the socket itself with the matching code (1007, 1009, ...).
      log.debug({ agentId: session.subject.agentId, err: err.message }, 'socket error');
    });
    ws.on('close', (code) => {
      this.connections.delete(session);
      conn.onClosed();
      // The session's own bookkeeping waits a turn (in chunks): a mass disconnect does not hold
      // the other sessions' answers for all of it at once.
      this.afterClose(() => {
        session.close();
        parts.metrics.sessions.dec();
        parts.metrics.sessionClosed(code);
        log.debug({ agentId: session.subject.agentId, code }, 'session closed');
      });
    });
    log.debug({ agentId: row.agentId, workspaceId: row.workspace.id }, 'session opened');
    return conn;
  }

  /** Runs `work` in a later turn of the event loop, at most CLOSES_PER_TURN of them per turn. */
  private afterClose(work: () => void): void {
    this.closing.push(work);
    if (this.closing.length === 1) setImmediate(() => this.closeSome());
  }

  private closeSome(): void {
    const batch = this.closing.splice(0, CLOSES_PER_TURN);
    for (const work of batch) work();
    if (this.closing.length > 0) setImmediate(() => this.closeSome());
  }

  /**
   * SPEC §3: at most 4 sessions per agent in a process (a reconnect may overlap the old socket); a
   * newer one closes the agent's oldest with 4009, a reconnect code. One leaked token cannot open
   * N sockets with N times the rate.
   */
  private replaceOldest(agentId: string): void {
    const same = this.parts.registry.byAgent.get(agentId);
    if (!same || same.size < MAX_SESSIONS_PER_AGENT) return;
    const live: AgentConnection[] = [];
    for (const s of same) {
      const c = this.connections.get(s);
      if (c && !c.isClosing) live.push(c);
    }
    live.sort((a, b) => a.session.connectedAt - b.session.connectedAt || a.session.id - b.session.id);
    for (let i = 0; i <= live.length - MAX_SESSIONS_PER_AGENT; i++) {
      this.log.info({ agentId }, 'a fifth session of the agent; closing its oldest with 4009');
      live[i]!.close(CloseCode.Replaced);
    }
  }

  refused(reason: RefusalReason): void {
    this.parts.metrics.refusal(reason);
  }

  readiness(): 'ready' | 'draining' | 'database' {
    if (this.draining) return 'draining';
    return this.health.up ? 'ready' : 'database';
  }

  debugSessions(): { sessions: DebugSession[] } {
    return { sessions: Array.from(this.parts.registry.values(), describeSession) };
  }

  /** The gauges that are read rather than kept up to date on the hot path. */
  private setGauges(): void {
    const { metrics, registry, buffer } = this.parts;
    metrics.sessions.set(registry.size);
    metrics.writeBufferUsed.set(buffer.size);
    metrics.writeBufferCapacity.set(buffer.capacity);
    metrics.databaseUp.set(this.health.up ? 1 : 0);
  }

  /** `/metrics`: the gateway's own series, then the agents', in chunks (a scrape does not stall the sockets). */
  async *metricsText(): AsyncGenerator<string> {
    const { metrics, agentMetrics } = this.parts;
    this.setGauges();
    yield await metrics.registry.metrics();
    for (const chunk of agentMetrics.chunks(this.clock.now())) {
      yield chunk;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** The gateway's own series as prom-client JSON, for a cluster primary to sum over workers (SPEC §8). */
  metricsJson(): Promise<RegistryJson> {
    this.setGauges();
    return this.parts.metrics.registry.getMetricsAsJSON();
  }

  /** The agents' live series in parts of about `bytes`, for a cluster primary to merge. */
  agentSampleParts(bytes: number): Generator<AgentSamplesPart> {
    return this.parts.agentMetrics.sampleParts(this.clock.now(), bytes);
  }

  /** SPEC §7 shutdown: stop accepting (503), answer and close every socket, flush every writer. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const { parts } = this;
    await drain(
      [...this.connections.values()],
      {
        clock: this.clock,
        log: this.log,
        writersIdle: () => Promise.all(parts.methods.map((m) => m.idle())),
        finalFlushes: [() => parts.activity.flushAll(), () => parts.connectionTimes.flush()],
      },
      timeoutMs,
    );
  }

  stop(): void {
    this.health.stop();
    this.heartbeat.stop();
    this.parts.agentMetrics.stopSweeping();
    this.clock.clearTimeout(this.usageTimer);
    this.parts.connectionTimes.stop();
    for (const conn of this.connections.values()) conn.ws.terminate();
  }
}
