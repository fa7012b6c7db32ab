// Configuration of SPEC §1: every option is an env var and a `serve` flag (flag wins), read and
// validated once into a typed object. The environment reaches it as a parameter from the CLI entry.
import { availableParallelism } from 'node:os';
import { type OptionTable, type Options, parse } from './options/parse.js';

/** The database options that `serve`, `migrate` and `seed` share. */
export const DATABASE_OPTIONS = {
  databaseUrl: {
    flag: '--database-url',
    env: 'DATABASE_URL',
    kind: 'postgres-url',
    defaultHelp: 'embedded',
    help: 'the PostgreSQL to use; without it, an embedded one in <data-dir>/pgdata',
  },
  dataDir: {
    flag: '--data-dir',
    env: 'AGENTGATE_DATA_DIR',
    kind: 'string',
    default: '.agentgate',
    arg: 'DIR',
    help: 'state directory of the embedded PostgreSQL',
  },
} as const satisfies OptionTable;

/** The retention options that `serve` and `maintain` share (SPEC §1, §10); `0` keeps data forever. */
export const RETENTION_OPTIONS = {
  statsRetentionMs: {
    flag: '--stats-retention',
    env: 'AGENTGATE_STATS_RETENTION',
    kind: 'duration',
    default: '2d',
    min: 0,
    help: 'raw stats rows older than this are dropped, a whole UTC day at a time, once rolled up; 0 keeps them',
  },
  rollupRetentionMs: {
    flag: '--stats-rollup-retention',
    env: 'AGENTGATE_STATS_ROLLUP_RETENTION',
    kind: 'duration',
    default: '400d',
    min: 0,
    help: 'daily rollup rows older than this are deleted; 0 keeps them',
  },
} as const satisfies OptionTable;

/** The options of `agentgate serve`, in the order of SPEC §1's table. */
export const SERVE_OPTIONS = {
  databaseUrl: DATABASE_OPTIONS.databaseUrl,
  listen: {
    flag: '--listen',
    env: 'AGENTGATE_LISTEN',
    kind: 'listen',
    default: '127.0.0.1:8080',
    help: 'where agents connect; port 0 picks a free one',
  },
  workspaceCache: {
    flag: '--workspace-cache',
    env: 'AGENTGATE_WORKSPACE_CACHE',
    kind: 'onoff',
    default: 'on',
    help: 'off = look the workspace up on every frame (as before the cache; for benchmarks)',
  },
  workspaceRefreshIntervalMs: {
    flag: '--workspace-refresh-interval',
    env: 'AGENTGATE_WORKSPACE_REFRESH_INTERVAL',
    kind: 'duration',
    default: '5m',
    min: 1,
    help: 'identity refresh period of a session',
  },
  statsReportIntervalMs: {
    flag: '--stats-report-interval',
    env: 'AGENTGATE_STATS_REPORT_INTERVAL',
    kind: 'duration',
    default: '30s',
    min: 1,
    help: 'the stats interval returned to agents',
  },
  heartbeatIntervalMs: {
    flag: '--heartbeat-interval',
    env: 'AGENTGATE_HEARTBEAT_INTERVAL',
    kind: 'duration',
    default: '15s',
    min: 10,
    help: 'WebSocket ping period; a peer silent for 2 periods is dropped',
  },
  usageFlushIntervalMs: {
    flag: '--usage-flush-interval',
    env: 'AGENTGATE_USAGE_FLUSH_INTERVAL',
    kind: 'duration',
    default: '60s',
    min: 10,
    help: 'flush period of last_used_at and the connection timestamps',
  },
  maxFrameBytes: {
    flag: '--max-frame-bytes',
    env: 'AGENTGATE_MAX_FRAME_BYTES',
    kind: 'int',
    default: '65536',
    min: 64,
    help: 'largest inbound frame',
  },
  sessionRate: {
    flag: '--session-rate',
    env: 'AGENTGATE_SESSION_RATE',
    kind: 'int',
    default: '100',
    min: 1,
    help: 'frames per second per session (token bucket, burst = 2x)',
  },
  writeBuffer: {
    flag: '--write-buffer',
    env: 'AGENTGATE_WRITE_BUFFER',
    kind: 'int',
    default: '10000',
    min: 1,
    help: 'frames that may wait for the database',
  },
  shutdownTimeoutMs: {
    flag: '--shutdown-timeout',
    env: 'AGENTGATE_SHUTDOWN_TIMEOUT',
    kind: 'duration',
    default: '30s',
    min: 100,
    help: 'drain limit on SIGTERM/SIGINT',
  },
  adminToken: {
    flag: '--admin-token',
    env: 'AGENTGATE_ADMIN_TOKEN',
    kind: 'string',
    arg: 'TOKEN',
    defaultHelp: 'none',
    help: 'bearer token for /debug/*; without it those routes are 404',
  },
  logLevel: {
    flag: '--log-level',
    env: 'AGENTGATE_LOG_LEVEL',
    kind: 'level',
    default: 'info',
    help: 'pino log level',
  },
  workers: {
    flag: '--workers',
    env: 'AGENTGATE_WORKERS',
    kind: 'count-or-auto',
    default: '1',
    min: 1,
    max: 64,
    help: 'gateway processes on the one port (node:cluster); auto = one per CPU',
  },
  maxConnections: {
    flag: '--max-connections',
    env: 'AGENTGATE_MAX_CONNECTIONS',
    kind: 'int',
    default: '16000',
    min: 1,
    help: 'open sockets per gateway process (agents and HTTP); beyond: 503',
  },
  metricsListen: {
    flag: '--metrics-listen',
    env: 'AGENTGATE_METRICS_LISTEN',
    kind: 'listen',
    defaultHelp: 'none',
    help: 'a second listener for /metrics and /debug/* (the main one then answers 404 for them)',
  },
  listenDatabaseUrl: {
    flag: '--listen-database-url',
    env: 'AGENTGATE_LISTEN_DATABASE_URL',
    kind: 'postgres-url',
    defaultHelp: 'DATABASE_URL',
    help: 'the connection that LISTENs for identity changes (and holds the maintenance lock); set it when DATABASE_URL goes through a transaction-pooling proxy',
  },
  ...RETENTION_OPTIONS,
  maintenanceIntervalMs: {
    flag: '--maintenance-interval',
    env: 'AGENTGATE_MAINTENANCE_INTERVAL',
    kind: 'duration',
    default: '10m',
    min: 10,
    help: 'how often a maintenance pass runs (partitions, rollup, retention); one process of the fleet at a time',
  },
  dataDir: DATABASE_OPTIONS.dataDir,
} as const satisfies OptionTable;

type Parsed = Options<typeof SERVE_OPTIONS>;

/**
 * What `serve` runs with: the table's values as parsed (every bound is the table's own, checked by
 * the parser: the options are stated once), the listen addresses split into host and port, and
 * `--workers auto` resolved to a count.
 */
export type Config = Omit<Parsed, 'listen' | 'metricsListen' | 'workers'> & {
  listenHost: string;
  listenPort: number;
  metricsListenHost?: string | undefined;
  metricsListenPort?: number | undefined;
  workers: number;
};

/** Reads the `serve` configuration from flags and environment; throws a one-line UsageError. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  const { listen, metricsListen, workers, ...options } = parse(SERVE_OPTIONS, argv, env);
  return {
    ...options,
    listenHost: listen.host,
    listenPort: listen.port,
    ...(metricsListen ? { metricsListenHost: metricsListen.host, metricsListenPort: metricsListen.port } : {}),
    workers: workers === 'auto' ? availableParallelism() : workers,
  };
}
