// The parts of one gateway, built once (Coder's agentapi `api.go`): the methods of the agent API
// (one line each), the writers they share a buffer with, the coalesced usage writes, and what every
// session shares. The Gateway holds them; a unit test builds a Gateway on a fake Db and clock, so
// the wiring it tests is this one.
import type { Config } from '../config.js';
import { nextAutostart } from '../handlers/autostart.js';
import { batchUpdateMetadata } from '../handlers/metadata.js';
import { updateStats } from '../handlers/stats.js';
import { type Method, writerFactory } from '../handlers/types.js';
import { AgentMetrics } from '../ops/agent-metrics.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { GatewayMetrics } from '../ops/metrics.js';
import { IdentityInvalidation } from '../session/invalidation.js';
import { RefreshBatcher } from '../session/refresh-batcher.js';
import { SessionRegistry } from '../session/registry.js';
import type { AgentConnectionEvent, Session, SessionDeps } from '../session/session.js';
import { WriteBuffer } from '../store/batch-writer.js';
import type { Db } from '../store/db.js';
import { KeyedFlusher } from '../store/keyed-flusher.js';
import { ActivityWriter, updateAgentConnections } from '../store/activity.js';

/** How long a pushed refresh waits for others to share its read (SPEC §8: within 1 s in all). */
const REFRESH_WINDOW_MS = 20;

export type PartsConfig = Pick<
  Config,
  'workspaceCache' | 'workspaceRefreshIntervalMs' | 'statsReportIntervalMs' | 'writeBuffer'
>;

export interface PartsOptions {
  config: PartsConfig;
  db: Db;
  clock: Clock;
  log: Logger;
  /** Told of every statement the writers run: the database health follows them (SPEC §7). */
  onDatabase: { succeeded(): void; failed(err: unknown): void };
  /** Activity is coalesced per workspace over this window: one bump and one NOTIFY each. */
  activityDelayMs?: number;
  /** The refresh jitter's random source. */
  random?: () => number;
}

export function wireParts(o: PartsOptions) {
  const { config, db, clock, log } = o;
  const hooks = { onSuccess: () => o.onDatabase.succeeded(), onFailure: (err: unknown) => o.onDatabase.failed(err) };
  const metrics = new GatewayMetrics();
  const agentMetrics = new AgentMetrics(2 * config.statsReportIntervalMs, (n) => metrics.agentMetricsDropped.inc(n));
  const registry = new SessionRegistry<Session>();
  const buffer = new WriteBuffer(config.writeBuffer);
  const activity = new ActivityWriter({
    db,
    clock,
    log,
    nextAutostart,
    bumpDelayMs: o.activityDelayMs ?? 500,
    ...hooks,
  });
  const writer = writerFactory(buffer, clock, (table) => ({ ...hooks, onBatch: (n) => metrics.batch(table, n) }));
  const deps = { db, clock, log, agentMetrics, activity, reportIntervalMs: config.statsReportIntervalMs, writer };
  // The agent API: one line per method.
  const methods: Method[] = [updateStats(deps), batchUpdateMetadata(deps)];
  const connectionTimes = new KeyedFlusher<AgentConnectionEvent>({
    name: 'agent_connections',
    delayMs: 0,
    clock,
    log,
    ...hooks,
    merge: (older, newer) =>
      newer.connectedAt !== null ? newer : { connectedAt: older.connectedAt, disconnectedAt: newer.disconnectedAt },
    write: (entries) =>
      db.bulk(
        updateAgentConnections,
        entries.map(([agentId, e]) => ({ agentId, ...e })),
      ),
  });
  // A timer refresh may wait up to a second (a twentieth of the interval) to share a statement.
  const timerWindowMs = Math.max(REFRESH_WINDOW_MS, Math.min(1000, Math.round(config.workspaceRefreshIntervalMs / 20)));
  const refreshBatcher = new RefreshBatcher(
    db,
    clock,
    () => metrics.lookup('refresh'),
    REFRESH_WINDOW_MS,
    1000,
    timerWindowMs,
  );
  const invalidation = new IdentityInvalidation({ registry, clock, log, metrics, chunkSize: refreshBatcher.maxBatch });
  const sessionDeps: SessionDeps = {
    db,
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
  return { metrics, agentMetrics, registry, buffer, activity, methods, connectionTimes, sessionDeps, invalidation };
}

/** Everything a gateway process shares across its sessions. */
export type GatewayParts = ReturnType<typeof wireParts>;
