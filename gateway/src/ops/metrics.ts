// `/metrics` (SPEC §3, §6): prom-client for the gateway's own series, with label children bound
// once so that the hot path only increments. Agent-reported metrics come from AgentMetrics.
import { type MethodName, Methods } from '@agentgate/shared';
import client from 'prom-client';
import { unhandledRejections } from './last-resort.js';
import { VERSION } from './version.js';

const FRAME_OUTCOMES = ['ok', 'error', 'invalid', 'unauthorized', 'unavailable', 'rate_limited'] as const;
export type FrameOutcome = (typeof FRAME_OUTCOMES)[number];
/** The method label of a frame: a known method, or `unknown` for anything else. */
export type FrameMethod = MethodName | 'unknown';
const FRAME_METHODS: readonly FrameMethod[] = [...(Object.keys(Methods) as MethodName[]), 'unknown'];
/** The gateway's own series as prom-client hands them over (`registry.getMetricsAsJSON()`). */
export type RegistryJson = Awaited<ReturnType<client.Registry['getMetricsAsJSON']>>;

const LOOKUP_REASONS = ['connect', 'refresh', 'fallback'] as const;
export type LookupReason = (typeof LOOKUP_REASONS)[number];
const NOTIFICATION_KINDS = ['workspace_id', 'owner_id', 'template_id', 'agent_id', 'all', 'malformed'] as const;
/** What an agentgate_identity NOTIFY named (SPEC §8); a payload naming several ids counts once per id. */
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];
/** Why sessions were refreshed by push: a NOTIFY named them, or a resync (lost LISTEN, {"all": true}). */
export type PushTrigger = 'notify' | 'resync';
/** Why a connection or request was refused (SPEC §3), one label value each, exported from start. */
const REFUSAL_REASONS = [
  'not_found',
  'unauthorized',
  'forbidden',
  'not_websocket',
  'database_down',
  'draining',
  'token_checks_full',
  'token_check_timeout',
  'max_connections',
  'header_timeout',
  'bad_request',
  'scrapes_full',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
/** Close codes exported from start at 0 (others appear when first seen): the catalog, and 1005/1006 (no code, abnormal). */
const KNOWN_CLOSE_CODES = [1000, 1001, 1003, 1005, 1006, 1007, 1009, 1011, 4008, 4009, 4501];
const MAINTENANCE_OUTCOMES = ['ok', 'skipped', 'error'] as const;
/** A maintenance pass (SPEC §10): ran, skipped (another process held the lock), or failed. */
export type MaintenanceOutcome = (typeof MAINTENANCE_OUTCOMES)[number];

/** A counter with one child per label value, each exported from start at 0. */
function labelled<V extends string>(
  registers: client.Registry[],
  name: string,
  help: string,
  label: string,
  values: readonly V[],
): Record<V, client.Counter.Internal> {
  const counter = new client.Counter({ name, help, labelNames: [label], registers });
  const out = {} as Record<V, client.Counter.Internal>;
  for (const v of values) {
    out[v] = counter.labels(v);
    out[v].inc(0);
  }
  return out;
}

/** The process's own series: Node's defaults, the build, and the last-resort handler's count. */
function processSeries(registers: client.Registry[]): void {
  client.collectDefaultMetrics({ register: registers[0]!, prefix: 'agentgate_' });
  new client.Gauge({
    name: 'agentgate_build_info',
    help: 'Always 1; the version of the gateway in its label.',
    labelNames: ['version'],
    registers,
    aggregator: 'max',
  })
    .labels(VERSION)
    .set(1);
  let rejectionsSeen = 0;
  new client.Counter({
    name: 'agentgate_unhandled_rejections_total',
    help: 'Rejections nobody awaited, caught by the last-resort handler (SPEC §7); each is logged at error level.',
    registers,
    collect() {
      const n = unhandledRejections();
      if (n > rejectionsSeen) this.inc(n - rejectionsSeen);
      rejectionsSeen = n;
    },
  });
}

export class GatewayMetrics {
  readonly registry = new client.Registry();
  sessions!: client.Gauge;
  private frames!: client.Counter<'method' | 'outcome'>;
  private readonly frameChildren = {} as Record<FrameMethod, Record<FrameOutcome, client.Counter.Internal>>;
  private lookups!: Record<LookupReason, client.Counter.Internal>;
  cacheHit!: client.Counter.Internal;
  cacheMiss!: client.Counter.Internal;
  private batchSize!: client.Histogram<'table'>;
  private ackLatency!: client.Histogram<'method'>;
  private readonly ackChildren = new Map<string, client.Histogram.Internal<'method'>>();
  agentMetricsDropped!: client.Counter;
  refreshOutcomes!: client.Counter<'outcome'>;
  writeBufferUsed!: client.Gauge;
  /** The bound of writeBufferUsed (`--write-buffer`; with workers each one's share, summed). */
  writeBufferCapacity!: client.Gauge;
  private notifications!: Record<NotificationKind, client.Counter.Internal>;
  private pushed!: Record<PushTrigger, client.Counter.Internal>;
  /** 1 while the LISTEN connection is up (SPEC §8). */
  identityListening!: client.Gauge;
  /** 1 while the health probe reaches the database (SPEC §3); the lowest over workers. */
  databaseUp!: client.Gauge;
  private refused!: Record<RefusalReason, client.Counter.Internal>;
  private closes!: client.Counter<'code'>;
  private maintenanceRuns!: Record<MaintenanceOutcome, client.Counter.Internal>;
  private maintenanceDuration!: client.Histogram;
  /** SPEC §10: the oldest stats row's created_at (the current time when there is none). */
  statsOldestRow!: client.Gauge;

  constructor() {
    const registers = [this.registry];
    processSeries(registers);
    this.frameSeries(registers);
    this.identitySeries(registers);
    this.operatorSeries(registers);
  }

  /** Sessions, frames and their answers, the writers (SPEC §4, §7). */
  private frameSeries(registers: client.Registry[]): void {
    this.sessions = new client.Gauge({ name: 'agentgate_sessions', help: 'Open agent sessions.', registers });
    this.frames = new client.Counter({
      name: 'agentgate_frames_total',
      help: 'JSON-RPC requests and notifications by method and outcome.',
      labelNames: ['method', 'outcome'],
      registers,
    });
    for (const m of FRAME_METHODS) {
      this.frameChildren[m] = {} as Record<FrameOutcome, client.Counter.Internal>;
      for (const o of FRAME_OUTCOMES) this.frameChildren[m][o] = this.frames.labels(m, o);
      for (const o of FRAME_OUTCOMES) this.frameChildren[m][o].inc(0);
    }
    this.batchSize = new client.Histogram({
      name: 'agentgate_write_batch_size',
      help: 'Frames per committed batch, by table.',
      labelNames: ['table'],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
      registers,
    });
    this.ackLatency = new client.Histogram({
      name: 'agentgate_ack_latency_seconds',
      help: 'Time from a frame received to its answer sent, by method.',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    for (const m of FRAME_METHODS) this.ackChildren.set(m, this.ackLatency.labels(m));
    this.agentMetricsDropped = new client.Counter({
      name: 'agentgate_agent_metrics_dropped_total',
      help: 'Agent-reported metrics dropped: invalid or reserved name, a name or label name over 128 bytes, over 16 labels, a label value over 1024 bytes, or a new series beyond 200 or 64 KiB of text per agent.',
      registers,
    });
    this.writeBufferUsed = new client.Gauge({
      name: 'agentgate_write_buffer_frames',
      help: 'Frames waiting for the database (queued or in a batch in flight).',
      registers,
    });
    this.writeBufferCapacity = new client.Gauge({
      name: 'agentgate_write_buffer_capacity_frames',
      help: 'Frames that may wait for the database at most (--write-buffer); beyond, frames are answered -32002.',
      registers,
    });
  }

  /** Lookups, the cache, refreshes and push invalidation (SPEC §6, §8). */
  private identitySeries(registers: client.Registry[]): void {
    // Every label value is exported from start, at 0 (SPEC §6).
    this.lookups = labelled(
      registers,
      'agentgate_workspace_lookups_total',
      'Workspace queries by reason (one per query).',
      'reason',
      LOOKUP_REASONS,
    );
    const cache = labelled(
      registers,
      'agentgate_identity_cache_total',
      'Authorizations served from the cached identity (hit) or the database (miss).',
      'result',
      ['hit', 'miss'] as const,
    );
    this.cacheHit = cache.hit;
    this.cacheMiss = cache.miss;
    this.refreshOutcomes = new client.Counter({
      name: 'agentgate_identity_refresh_total',
      help: 'Session identity refreshes by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    for (const o of ['unchanged', 'changed', 'prebuild', 'error', 'revoked']) this.refreshOutcomes.labels(o).inc(0);
    this.notifications = labelled(
      registers,
      'agentgate_identity_notifications_total',
      'NOTIFYs received on agentgate_identity, by the id they named (or all, or malformed).',
      'kind',
      NOTIFICATION_KINDS,
    );
    this.pushed = labelled(
      registers,
      'agentgate_identity_push_refreshes_total',
      'Session refreshes requested by push invalidation, by trigger (the reads are batched).',
      'trigger',
      ['notify', 'resync'] as const,
    );
    this.identityListening = new client.Gauge({
      name: 'agentgate_identity_listening',
      help: '1 while the LISTEN connection for identity changes is up (the lowest of all workers).',
      registers,
      aggregator: 'min',
    });
  }

  /** What an operator watches besides: the database, refusals, closes, maintenance (SPEC §3, §10). */
  private operatorSeries(registers: client.Registry[]): void {
    this.databaseUp = new client.Gauge({
      name: 'agentgate_database_up',
      help: '1 while the health probe reaches the database, else 0 (the lowest of all workers).',
      registers,
      aggregator: 'min',
    });
    this.databaseUp.set(1);
    this.refused = labelled(
      registers,
      'agentgate_connections_refused_total',
      'HTTP requests and upgrades refused, by reason (SPEC §3).',
      'reason',
      REFUSAL_REASONS,
    );
    this.closes = new client.Counter({
      name: 'agentgate_sessions_closed_total',
      help: 'Agent sessions closed, by the close code sent or received.',
      labelNames: ['code'],
      registers,
    });
    for (const c of KNOWN_CLOSE_CODES) this.closes.labels(String(c)).inc(0);
    this.maintenanceRuns = labelled(
      registers,
      'agentgate_maintenance_runs_total',
      'Maintenance passes by outcome: ok, skipped (another process of the fleet held the lock), error.',
      'outcome',
      MAINTENANCE_OUTCOMES,
    );
    this.maintenanceDuration = new client.Histogram({
      name: 'agentgate_maintenance_duration_seconds',
      help: 'Duration of the maintenance passes this process ran (ok or error).',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900],
      registers,
    });
    this.statsOldestRow = new client.Gauge({
      name: 'agentgate_stats_oldest_row_timestamp_seconds',
      help: 'created_at of the oldest workspace_agent_stats row, in seconds since the epoch (now when there is none).',
      // Every process reads the same table: the freshest reading wins across workers, not a sum.
      aggregator: 'max',
      registers,
    });
  }

  maintenance(outcome: MaintenanceOutcome, seconds?: number): void {
    this.maintenanceRuns[outcome].inc();
    if (seconds !== undefined) this.maintenanceDuration.observe(seconds);
  }

  refusal(reason: RefusalReason): void {
    this.refused[reason].inc();
  }

  sessionClosed(code: number): void {
    this.closes.labels(String(code)).inc();
  }

  identityNotification(kind: NotificationKind): void {
    this.notifications[kind].inc();
  }

  pushRefreshes(trigger: PushTrigger, sessions: number): void {
    this.pushed[trigger].inc(sessions);
  }

  frame(method: FrameMethod, outcome: FrameOutcome): void {
    this.frameChildren[method][outcome].inc();
  }

  lookup(reason: LookupReason): void {
    this.lookups[reason].inc();
  }

  batch(table: string, size: number): void {
    this.batchSize.labels(table).observe(size);
  }

  ack(method: FrameMethod, seconds: number): void {
    this.ackChildren.get(method)!.observe(seconds);
  }
}
