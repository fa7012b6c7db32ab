// The composition root of one gateway process (Coder's agentapi `api.go`): builds the writers, the
// handlers and the dependencies every session shares, once. The hub and the unit-test harness both
// wire through here, so they cannot drift.
import { formatProtoDuration, Methods } from '@agentgate/shared';
import type { Config } from '../config.js';
import { nextAutostart } from '../handlers/autostart.js';
import { metadataHandler } from '../handlers/metadata.js';
import { statsHandler } from '../handlers/stats.js';
import type { Handler } from '../handlers/types.js';
import { AgentMetrics } from '../ops/agent-metrics.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { GatewayMetrics } from '../ops/metrics.js';
import { IdentityInvalidation } from '../session/invalidation.js';
import { RefreshBatcher } from '../session/refresh-batcher.js';
import { SessionRegistry } from '../session/registry.js';
import type { AgentConnectionEvent, Session, SessionDeps } from '../session/session.js';
import { ActivityWriter } from '../store/activity-writer.js';
import type { BatchWriter } from '../store/batch-writer.js';
import { createFrameWriters, type MetadataWrite } from '../store/frame-writers.js';
import { KeyedFlusher } from '../store/keyed-flusher.js';
import type { StatsRow, Store } from '../store/store.js';
import { WriteBuffer } from '../store/write-buffer.js';

/** How long a pushed refresh waits for others to share its read (SPEC §8: within 1 s in all). */
const REFRESH_WINDOW_MS = 20;

export type CoreConfig = Pick<
  Config,
  'workspaceCache' | 'workspaceRefreshIntervalMs' | 'statsReportIntervalMs' | 'writeBuffer'
>;

export interface CoreOptions {
  config: CoreConfig;
  store: Store;
  clock: Clock;
  log: Logger;
  /** Told of every statement the writers run: the database health follows them (SPEC §7). */
  onDatabase?: { succeeded(): void; failed(err: unknown): void };
  /** Activity is coalesced per workspace over this window: one bump and one NOTIFY each. */
  activityDelayMs?: number;
  /** The refresh jitter's random source. */
  random?: () => number;
}

/** Everything a gateway process shares across its sessions. */
export interface Core {
  metrics: GatewayMetrics;
  agentMetrics: AgentMetrics;
  registry: SessionRegistry<Session>;
  buffer: WriteBuffer;
  stats: BatchWriter<StatsRow>;
  metadata: BatchWriter<MetadataWrite>;
  activity: ActivityWriter;
  connectionTimes: KeyedFlusher<AgentConnectionEvent>;
  handlers: ReadonlyMap<string, Handler>;
  /** One object shared by every session (a session holds a reference, not a copy). */
  sessionDeps: SessionDeps;
  /** SPEC §8: what the LISTEN connection's notifications do to the sessions. */
  invalidation: IdentityInvalidation;
}

export function createCore(o: CoreOptions): Core {
  const { config, store, clock, log } = o;
  const hooks = {
    onSuccess: () => o.onDatabase?.succeeded(),
    onFailure: (err: unknown) => o.onDatabase?.failed(err),
    onCallbackError: (err: unknown) => log.error({ err }, 'a frame answer callback failed'),
  };
  const metrics = new GatewayMetrics();
  const agentMetrics = new AgentMetrics(2 * config.statsReportIntervalMs, (n) => metrics.agentMetricsDropped.inc(n));
  const registry = new SessionRegistry<Session>();
  const buffer = new WriteBuffer(config.writeBuffer);
  const activity = new ActivityWriter({
    store,
    clock,
    log,
    nextAutostart,
    bumpDelayMs: o.activityDelayMs ?? 500,
    ...hooks,
  });
  const { stats, metadata } = createFrameWriters({
    store,
    clock,
    buffer,
    hooks,
    onBatch: (table, n) => metrics.batch(table, n),
  });
  const connectionTimes = new KeyedFlusher<AgentConnectionEvent>({
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
  const handlers = new Map<string, Handler>([
    [
      Methods.UpdateStats,
      statsHandler({
        writer: stats,
        activity,
        agentMetrics,
        clock,
        log,
        reportInterval: formatProtoDuration(config.statsReportIntervalMs),
      }),
    ],
    [Methods.BatchUpdateMetadata, metadataHandler({ writer: metadata, log })],
  ]);
  // A timer refresh may wait up to a second (a twentieth of the interval) to share a statement.
  const refreshBatcher = new RefreshBatcher(
    store,
    clock,
    () => metrics.lookup('refresh'),
    REFRESH_WINDOW_MS,
    1000,
    Math.max(REFRESH_WINDOW_MS, Math.min(1000, Math.round(config.workspaceRefreshIntervalMs / 20))),
  );
  const invalidation = new IdentityInvalidation({ registry, clock, log, metrics, chunkSize: refreshBatcher.maxBatch });
  const sessionDeps: SessionDeps = {
    store,
    clock,
    log,
    metrics,
    agentMetrics,
    refreshBatcher,
    registry,
    recordConnection: (agentId, e) => connectionTimes.set(agentId, e),
    cacheEnabled: config.workspaceCache,
    refreshIntervalMs: config.workspaceRefreshIntervalMs,
    ...(o.random ? { random: o.random } : {}),
    onStart: (session) => invalidation.started(session),
  };
  return {
    metrics,
    agentMetrics,
    registry,
    buffer,
    stats,
    metadata,
    activity,
    connectionTimes,
    handlers,
    sessionDeps,
    invalidation,
  };
}
