// A real Gateway (hub/gateway.ts, its wiring and its per-connection wiring) on a FakeClock and a
// FakeStore's Db, so a unit test can drive frames and time and then assert exactly which statements ran.
import pino from 'pino';
import type { RevokeReason } from '../../gateway/src/domain.ts';
import type { Outcome } from '../../gateway/src/handlers/outcome.ts';
import type { Method } from '../../gateway/src/handlers/types.ts';
import { Gateway } from '../../gateway/src/hub/gateway.ts';
import type { GatewayParts } from '../../gateway/src/hub/wiring.ts';
import type { AgentMetrics } from '../../gateway/src/ops/agent-metrics.ts';
import type { Logger } from '../../gateway/src/ops/log.ts';
import type { GatewayMetrics } from '../../gateway/src/ops/metrics.ts';
import type { AgentConnection } from '../../gateway/src/rpc/connection.ts';
import type { RefreshBatcher } from '../../gateway/src/session/refresh-batcher.ts';
import type { SessionRegistry } from '../../gateway/src/session/registry.ts';
import { type AgentConnectionEvent, Session } from '../../gateway/src/session/session.ts';
import type { WriteBuffer } from '../../gateway/src/store/batch-writer.ts';
import type { ActivityWriter } from '../../gateway/src/store/activity.ts';
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
  /** Frames per second per session (the token bucket). */
  sessionRate?: number;
  refreshIntervalMs?: number;
  /** The refresh jitter's random source (default: the first tick at 0.75 of the interval). */
  random?: () => number;
  statsReportIntervalMs?: number;
  writeBuffer?: number;
}

export class Harness {
  readonly clock = new FakeClock();
  readonly store = new FakeStore(this.clock);
  /** The gateway itself, on the fake clock and store (not started: no health probe, heartbeat or usage timer). */
  readonly gateway: Gateway;
  /** Its parts (hub/wiring.ts). */
  readonly core: GatewayParts;
  readonly metrics: GatewayMetrics;
  readonly registry: SessionRegistry<Session>;
  readonly agentMetrics: AgentMetrics;
  readonly refreshBatcher: RefreshBatcher;
  readonly buffer: WriteBuffer;
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
  private readonly statsMethod: Method;
  private readonly metadataMethod: Method;

  constructor(opts: HarnessOptions = {}) {
    const { clock, store } = this;
    const captured = captureLogger();
    this.log = captured.log;
    this.lines = captured.lines;
    this.refreshIntervalMs = opts.refreshIntervalMs ?? 5 * MINUTE;
    this.timerWindowMs = Math.max(REFRESH_WINDOW_MS, Math.min(1000, Math.round(this.refreshIntervalMs / 20)));
    this.random = opts.random ?? (() => 0.5);
    this.gateway = new Gateway({
      config: {
        workspaceCache: opts.cacheEnabled ?? true,
        workspaceRefreshIntervalMs: this.refreshIntervalMs,
        statsReportIntervalMs: opts.statsReportIntervalMs ?? 30_000,
        writeBuffer: opts.writeBuffer ?? 1000,
        heartbeatIntervalMs: 15_000,
        usageFlushIntervalMs: 60_000,
        maxFrameBytes: 65_536,
        sessionRate: opts.sessionRate ?? 100,
        adminToken: undefined,
      },
      db: store.db(),
      clock,
      log: this.log,
      activityDelayMs: 200,
      random: this.random,
    });
    const core = this.gateway.parts;
    this.core = core;
    this.metrics = core.metrics;
    this.registry = core.registry;
    this.agentMetrics = core.agentMetrics;
    this.refreshBatcher = core.sessionDeps.refreshBatcher;
    this.buffer = core.buffer;
    this.activity = core.activity;
    this.statsMethod = core.methods.find((m) => m.name === 'UpdateStats')!;
    this.metadataMethod = core.methods.find((m) => m.name === 'BatchUpdateMetadata')!;
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
   * Opens a session and its AgentConnection on a FakeSocket through the gateway's own `connect`, as
   * for an upgrade (the test calls conn.onMessage, or emits the socket's events, itself).
   */
  open(fx: FakeFixture): { conn: AgentConnection; socket: FakeSocket; session: Session } {
    const socket = new FakeSocket();
    const conn = this.gateway.connect(socket, { row: fx.row, token: fx.agent.token });
    return { conn, socket, session: conn.session };
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
  stats(session: Session, params: unknown): Promise<Outcome> {
    return this.statsMethod.handle(session, params);
  }

  /** One BatchUpdateMetadata call (params as sent), awaited. */
  metadata(session: Session, params: unknown): Promise<Outcome> {
    return this.metadataMethod.handle(session, params);
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
