// Wires sessions, writers and handlers with the gateway's own wiring (hub/wiring.ts), on a FakeClock
// and a FakeStore, so a unit test can drive frames and time and then assert exactly which store calls ran.
import pino from 'pino';
import type { RevokeReason } from '../../gateway/src/domain.ts';
import type { HandlerOutcome } from '../../gateway/src/handlers/outcome.ts';
import type { Handler } from '../../gateway/src/handlers/types.ts';
import { type Core, createCore } from '../../gateway/src/hub/wiring.ts';
import { AgentConnection } from '../../gateway/src/rpc/connection.ts';
import { Router } from '../../gateway/src/rpc/router.ts';
import type { AgentMetrics } from '../../gateway/src/ops/agent-metrics.ts';
import type { Logger } from '../../gateway/src/ops/log.ts';
import type { GatewayMetrics } from '../../gateway/src/ops/metrics.ts';
import type { RefreshBatcher } from '../../gateway/src/session/refresh-batcher.ts';
import type { SessionRegistry } from '../../gateway/src/session/registry.ts';
import { type AgentConnectionEvent, Session } from '../../gateway/src/session/session.ts';
import type { ActivityWriter } from '../../gateway/src/store/activity-writer.ts';
import type { BatchWriter } from '../../gateway/src/store/batch-writer.ts';
import type { MetadataWrite } from '../../gateway/src/store/frame-writers.ts';
import type { StatsRow } from '../../gateway/src/store/store.ts';
import type { WriteBuffer } from '../../gateway/src/store/write-buffer.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeSocket } from '../helpers/fake-socket.ts';
import { type FakeFixture, FakeStore, type StoreMethod } from '../helpers/fake-store.ts';

export const NIL_UUID = '00000000-0000-0000-0000-000000000000';
export const MINUTE = 60_000;
/** The RefreshBatcher's window for a pushed refresh (hub/wiring.ts). */
export const REFRESH_WINDOW_MS = 20;

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A pino logger at debug level that keeps its lines in memory. */
function captureLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino(
    { level: 'debug' },
    {
      write(s: string) {
        lines.push(JSON.parse(s) as LogLine);
      },
    },
  );
  return { log, lines };
}

/** The value of a counter/gauge series in `metrics`' registry (0 when the series does not exist). */
export async function metricValue(
  metrics: GatewayMetrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = metrics.registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  const hit = values.find((v) =>
    Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  return hit?.value ?? 0;
}

/** A change to the store that revokes a session, with the reason the session must give. */
export interface Revocation {
  name: string;
  reason: RevokeReason;
  change: (store: FakeStore, fx: FakeFixture) => void;
}

/** Every SPEC §6 revocation, as a change a test makes to the fake store. */
export const REVOCATIONS: readonly Revocation[] = [
  {
    name: 'workspace deleted',
    reason: 'workspace_deleted',
    change: (st, fx) => st.updateWorkspace(fx.workspace.id, { deleted: true }),
  },
  {
    name: 'workspace dormant',
    reason: 'workspace_dormant',
    change: (st, fx) => st.updateWorkspace(fx.workspace.id, { dormant: true }),
  },
  { name: 'workspace gone', reason: 'workspace_gone', change: (st, fx) => st.workspaces.delete(fx.workspace.id) },
  {
    name: 'agent deleted',
    reason: 'agent_deleted',
    change: (st, fx) => st.updateAgent(fx.agent.id, { deleted: true }),
  },
  { name: 'agent gone', reason: 'agent_gone', change: (st, fx) => st.agents.delete(fx.agent.id) },
  {
    name: 'token changed',
    reason: 'token_changed',
    change: (st, fx) => st.updateAgent(fx.agent.id, { token: 'aaaaaaaa-1111-4222-8333-444444444444' }),
  },
];

export interface HarnessOptions {
  cacheEnabled?: boolean;
  refreshIntervalMs?: number;
  /** The refresh jitter's random source (default: the first tick at 0.75 of the interval). */
  random?: () => number;
  statsReportIntervalMs?: number;
  writeBuffer?: number;
}

export class Harness {
  readonly clock = new FakeClock();
  readonly store = new FakeStore(this.clock);
  /** The same wiring as the gateway (hub/wiring.ts), on the fake clock and store. */
  readonly core: Core;
  readonly metrics: GatewayMetrics;
  readonly registry: SessionRegistry<Session>;
  readonly agentMetrics: AgentMetrics;
  readonly refreshBatcher: RefreshBatcher;
  readonly buffer: WriteBuffer;
  readonly statsWriter: BatchWriter<StatsRow>;
  readonly metadataWriter: BatchWriter<MetadataWrite>;
  readonly activity: ActivityWriter;
  readonly log: Logger;
  readonly lines: LogLine[];
  /** Every recordConnection call of every session. */
  readonly connectionEvents: { agentId: string; event: AgentConnectionEvent }[] = [];
  /** Every onRevoke call, per session. */
  readonly revokes = new Map<Session, RevokeReason[]>();
  readonly refreshIntervalMs: number;
  /** How long a timer refresh waits for others to share its read (hub/wiring.ts: a twentieth of the interval, 20 ms to 1 s). */
  readonly timerWindowMs: number;
  private readonly random: () => number;
  private readonly statsHandler: Handler;
  private readonly metadataHandler: Handler;

  constructor(opts: HarnessOptions = {}) {
    const { clock, store } = this;
    const captured = captureLogger();
    this.log = captured.log;
    this.lines = captured.lines;
    this.refreshIntervalMs = opts.refreshIntervalMs ?? 5 * MINUTE;
    this.timerWindowMs = Math.max(REFRESH_WINDOW_MS, Math.min(1000, Math.round(this.refreshIntervalMs / 20)));
    this.random = opts.random ?? (() => 0.5);
    this.core = createCore({
      config: {
        workspaceCache: opts.cacheEnabled ?? true,
        workspaceRefreshIntervalMs: this.refreshIntervalMs,
        statsReportIntervalMs: opts.statsReportIntervalMs ?? 30_000,
        writeBuffer: opts.writeBuffer ?? 1000,
      },
      store,
      clock,
      log: this.log,
      activityDelayMs: 200,
      random: this.random,
    });
    const core = this.core;
    this.metrics = core.metrics;
    this.registry = core.registry;
    this.agentMetrics = core.agentMetrics;
    this.refreshBatcher = core.sessionDeps.refreshBatcher;
    this.buffer = core.buffer;
    this.statsWriter = core.stats;
    this.metadataWriter = core.metadata;
    this.activity = core.activity;
    this.statsHandler = core.handlers.get('UpdateStats')!;
    this.metadataHandler = core.handlers.get('BatchUpdateMetadata')!;
    // Observe the connection events on their way to the real flusher.
    const record = core.sessionDeps.recordConnection;
    core.sessionDeps.recordConnection = (agentId, event) => {
      this.connectionEvents.push({ agentId, event });
      record(agentId, event);
    };
  }

  /** Opens a session from the token-check row of `fx` (as the hub's open does) and starts it. */
  connect(fx: FakeFixture, opts: { row?: FakeFixture['row']; token?: string } = {}): Session {
    const session = new Session(this.core.sessionDeps, opts.row ?? fx.row, opts.token ?? fx.agent.token);
    const revokes: RevokeReason[] = [];
    this.revokes.set(session, revokes);
    session.onRevoke = (reason) => revokes.push(reason);
    session.start();
    return session;
  }

  /**
   * Opens a session and its AgentConnection on a FakeSocket, as the hub does for an upgrade (without
   * the `ws` events: the test calls conn.onMessage and socket.finishClose itself).
   */
  open(
    fx: FakeFixture,
    opts: { sessionRate?: number } = {},
  ): { conn: AgentConnection; socket: FakeSocket; session: Session } {
    const session = new Session(this.core.sessionDeps, fx.row, fx.agent.token);
    const socket = new FakeSocket();
    const router = new Router({ handlers: this.core.handlers, metrics: this.metrics, log: this.log });
    const conn = new AgentConnection(socket, session, {
      router,
      clock: this.clock,
      log: this.log,
      sessionRate: opts.sessionRate ?? 100,
    });
    session.start();
    socket.once('close', () => {
      conn.onClosed();
      session.close();
    });
    return { conn, socket, session };
  }

  /**
   * Store calls by method, without the connection timestamps that every connect and close records
   * (SPEC §5; `connectionEvents` shows those): what the session and handlers themselves ran.
   */
  calls(): Partial<Record<StoreMethod, number>> {
    const { updateAgentConnections: _bookkeeping, ...rest } = this.store.counts();
    return rest;
  }

  /** The number of calls() in all. */
  callCount(): number {
    return Object.values(this.calls()).reduce((a, n) => a + n, 0);
  }

  revokesOf(session: Session): RevokeReason[] {
    return this.revokes.get(session) ?? [];
  }

  /** One UpdateStats call (params as sent), awaited. */
  stats(session: Session, params: unknown): Promise<HandlerOutcome> {
    return Promise.resolve(this.statsHandler(session, params));
  }

  /** One BatchUpdateMetadata call (params as sent), awaited. */
  metadata(session: Session, params: unknown): Promise<HandlerOutcome> {
    return Promise.resolve(this.metadataHandler(session, params));
  }

  /** The raw handler result (a value on the fast path, a promise when it waits). */
  statsRaw(session: Session, params: unknown): HandlerOutcome | Promise<HandlerOutcome> {
    return this.statsHandler(session, params);
  }

  async cache(): Promise<{ hit: number; miss: number }> {
    return {
      hit: await metricValue(this.metrics, 'agentgate_identity_cache_total', { result: 'hit' }),
      miss: await metricValue(this.metrics, 'agentgate_identity_cache_total', { result: 'miss' }),
    };
  }

  async lookups(reason: 'connect' | 'refresh' | 'fallback'): Promise<number> {
    return metricValue(this.metrics, 'agentgate_workspace_lookups_total', { reason });
  }

  /** Log lines above debug (info, warn, error). */
  loudLines(): LogLine[] {
    return this.lines.filter((l) => l.level > 20);
  }

  /** Time of the first refresh tick of a session connected now (SPEC §5 jitter). */
  firstTickDelay(): number {
    return Math.round(this.refreshIntervalMs * (0.5 + 0.5 * this.random()));
  }
}

export const statsOk = { result: { reportInterval: '30s' } };
