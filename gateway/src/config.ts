// Configuration of SPEC §1: every option is an env var and a `serve` flag (flag wins), read and
// validated once into a typed object. Nothing else in the gateway reads process.env.
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { parseDuration } from '@agentgate/shared';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Kind = 'string' | 'duration' | 'int' | 'onoff' | 'listen' | 'level' | 'url';

interface OptionSpec {
  key: keyof RawConfig;
  env: string;
  flag: string;
  kind: Kind;
  default?: string;
  min?: number;
}

interface RawConfig {
  databaseUrl: string | undefined;
  listen: string;
  workspaceCache: string;
  workspaceRefreshInterval: string;
  statsReportInterval: string;
  heartbeatInterval: string;
  usageFlushInterval: string;
  maxFrameBytes: string;
  sessionRate: string;
  writeBuffer: string;
  shutdownTimeout: string;
  adminToken: string | undefined;
  logLevel: string;
  dataDir: string;
}

export const OPTIONS: OptionSpec[] = [
  { key: 'databaseUrl', env: 'DATABASE_URL', flag: '--database-url', kind: 'url' },
  { key: 'listen', env: 'AGENTGATE_LISTEN', flag: '--listen', kind: 'listen', default: '127.0.0.1:8080' },
  { key: 'workspaceCache', env: 'AGENTGATE_WORKSPACE_CACHE', flag: '--workspace-cache', kind: 'onoff', default: 'on' },
  {
    key: 'workspaceRefreshInterval',
    env: 'AGENTGATE_WORKSPACE_REFRESH_INTERVAL',
    flag: '--workspace-refresh-interval',
    kind: 'duration',
    default: '5m',
    min: 1,
  },
  {
    key: 'statsReportInterval',
    env: 'AGENTGATE_STATS_REPORT_INTERVAL',
    flag: '--stats-report-interval',
    kind: 'duration',
    default: '30s',
    min: 1,
  },
  {
    key: 'heartbeatInterval',
    env: 'AGENTGATE_HEARTBEAT_INTERVAL',
    flag: '--heartbeat-interval',
    kind: 'duration',
    default: '15s',
    min: 10,
  },
  {
    key: 'usageFlushInterval',
    env: 'AGENTGATE_USAGE_FLUSH_INTERVAL',
    flag: '--usage-flush-interval',
    kind: 'duration',
    default: '60s',
    min: 10,
  },
  {
    key: 'maxFrameBytes',
    env: 'AGENTGATE_MAX_FRAME_BYTES',
    flag: '--max-frame-bytes',
    kind: 'int',
    default: '65536',
    min: 64,
  },
  { key: 'sessionRate', env: 'AGENTGATE_SESSION_RATE', flag: '--session-rate', kind: 'int', default: '100', min: 1 },
  { key: 'writeBuffer', env: 'AGENTGATE_WRITE_BUFFER', flag: '--write-buffer', kind: 'int', default: '10000', min: 1 },
  {
    key: 'shutdownTimeout',
    env: 'AGENTGATE_SHUTDOWN_TIMEOUT',
    flag: '--shutdown-timeout',
    kind: 'duration',
    default: '30s',
    min: 100,
  },
  { key: 'adminToken', env: 'AGENTGATE_ADMIN_TOKEN', flag: '--admin-token', kind: 'string' },
  { key: 'logLevel', env: 'AGENTGATE_LOG_LEVEL', flag: '--log-level', kind: 'level', default: 'info' },
  { key: 'dataDir', env: 'AGENTGATE_DATA_DIR', flag: '--data-dir', kind: 'string', default: '.agentgate' },
];

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const ConfigSchema = Type.Object({
  databaseUrl: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  listenHost: Type.String({ minLength: 1 }),
  listenPort: Type.Integer({ minimum: 0, maximum: 65535 }),
  workspaceCache: Type.Boolean(),
  workspaceRefreshIntervalMs: Type.Integer({ minimum: 1 }),
  statsReportIntervalMs: Type.Integer({ minimum: 1 }),
  heartbeatIntervalMs: Type.Integer({ minimum: 10 }),
  usageFlushIntervalMs: Type.Integer({ minimum: 10 }),
  maxFrameBytes: Type.Integer({ minimum: 64 }),
  sessionRate: Type.Integer({ minimum: 1 }),
  writeBuffer: Type.Integer({ minimum: 1 }),
  shutdownTimeoutMs: Type.Integer({ minimum: 100 }),
  adminToken: Type.Optional(Type.String({ minLength: 1 })),
  logLevel: Type.Union(LEVELS.map((l) => Type.Literal(l))),
  dataDir: Type.String({ minLength: 1 }),
});
export type Config = Static<typeof ConfigSchema>;
const checkConfig = TypeCompiler.Compile(ConfigSchema);

function allowed(o: OptionSpec): string {
  switch (o.kind) {
    case 'duration':
      return `a duration like 500ms, 30s, 5m or 1h${o.min !== undefined ? ` (at least ${o.min}ms)` : ''}`;
    case 'int':
      return `an integer${o.min !== undefined ? ` of at least ${o.min}` : ''}`;
    case 'onoff':
      return 'on or off';
    case 'listen':
      return 'host:port with a port from 0 to 65535';
    case 'level':
      return LEVELS.join(', ');
    case 'url':
      return 'a postgres:// URL';
    default:
      return 'a non-empty string';
  }
}

function bad(o: OptionSpec, source: 'flag' | 'env'): ConfigError {
  const name = source === 'flag' ? o.flag : o.env;
  return new ConfigError(`invalid ${name}: expected ${allowed(o)}`);
}

/** Splits `--flag value` / `--flag=value` pairs; unknown flags are an error. */
export function parseFlags(argv: string[], known: Iterable<string>): Map<string, string> {
  const names = new Set(known);
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (!names.has(name)) throw new ConfigError(`unknown option ${name}`);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new ConfigError(`option ${name} needs a value`);
      i++;
    }
    out.set(name, value);
  }
  return out;
}

/** Reads the `serve` configuration from flags and environment; throws ConfigError with one line. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const flags = parseFlags(
    argv,
    OPTIONS.map((o) => o.flag),
  );
  const out: Record<string, unknown> = {};
  for (const o of OPTIONS) {
    const fromFlag = flags.get(o.flag);
    const fromEnv = env[o.env] === '' ? undefined : env[o.env];
    const source: 'flag' | 'env' = fromFlag !== undefined ? 'flag' : 'env';
    const raw = fromFlag ?? fromEnv ?? o.default;
    if (raw === undefined) continue;
    switch (o.kind) {
      case 'duration': {
        const ms = parseDuration(raw);
        if (ms === undefined || (o.min !== undefined && ms < o.min)) throw bad(o, source);
        out[`${o.key}Ms`] = ms;
        break;
      }
      case 'int': {
        if (!/^\d+$/.test(raw.trim())) throw bad(o, source);
        const n = Number(raw);
        if (!Number.isSafeInteger(n) || (o.min !== undefined && n < o.min)) throw bad(o, source);
        out[o.key] = n;
        break;
      }
      case 'onoff': {
        const v = raw.trim().toLowerCase();
        if (v !== 'on' && v !== 'off') throw bad(o, source);
        out[o.key] = v === 'on';
        break;
      }
      case 'listen': {
        const m = /^(.+):(\d{1,5})$/.exec(raw.trim());
        const port = m ? Number(m[2]) : Number.NaN;
        if (!m || port > 65535) throw bad(o, source);
        out['listenHost'] = m[1]!.replace(/^\[(.*)\]$/, '$1');
        out['listenPort'] = port;
        break;
      }
      case 'level':
        if (!(LEVELS as readonly string[]).includes(raw)) throw bad(o, source);
        out[o.key] = raw;
        break;
      case 'url':
        if (!/^postgres(ql)?:\/\/./.test(raw)) throw bad(o, source);
        out[o.key] = raw;
        break;
      default:
        out[o.key] = raw;
    }
  }
  if (!checkConfig.Check(out)) {
    const first = checkConfig.Errors(out).First();
    throw new ConfigError(`invalid configuration at ${first?.path ?? '/'}: ${first?.message ?? 'unknown'}`);
  }
  return out as Config;
}
