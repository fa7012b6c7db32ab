// Configuration of SPEC §1: defaults, env vs flag (flag wins), both flag spellings, durations, and
// one clear UsageError naming the option as the operator wrote it (flag or env var).
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import { loadConfig, SERVE_OPTIONS } from '../../gateway/src/config.ts';
import { DataDirBusyError } from '../../gateway/src/embedded/postgres.ts';
import { UsageError } from '../../gateway/src/options/parse.ts';

/** Runs loadConfig and returns the UsageError it must throw. */
function configError(argv: string[], env: NodeJS.ProcessEnv = {}): UsageError {
  try {
    loadConfig(argv, env);
  } catch (e) {
    assert.ok(e instanceof UsageError, `expected a UsageError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `one line: ${JSON.stringify(e.message)}`);
    return e;
  }
  assert.fail(`loadConfig(${JSON.stringify(argv)}, ${JSON.stringify(env)}) did not throw`);
}

describe('loadConfig', () => {
  test('defaults are the SPEC §1 table', () => {
    const c = loadConfig([], {});
    const want = {
      listenHost: '127.0.0.1',
      listenPort: 8080,
      workspaceCache: true,
      workspaceRefreshIntervalMs: 5 * 60_000,
      statsReportIntervalMs: 30_000,
      heartbeatIntervalMs: 15_000,
      usageFlushIntervalMs: 60_000,
      maxFrameBytes: 65_536,
      sessionRate: 100,
      writeBuffer: 10_000,
      shutdownTimeoutMs: 30_000,
      logLevel: 'info',
      workers: 1,
      maxConnections: 16_000,
    };
    for (const [k, v] of Object.entries(want)) assert.equal(c[k as keyof typeof c], v, k);
    assert.equal(c.databaseUrl, undefined, 'no DATABASE_URL means embedded');
    assert.equal(c.adminToken, undefined, 'no admin token by default');
    assert.equal(c.metricsListenHost, undefined, 'no metrics listener by default');
    assert.equal(c.listenDatabaseUrl, undefined, 'LISTEN on DATABASE_URL by default');
  });

  test('every option is read from its env var', () => {
    const c = loadConfig([], {
      DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
      AGENTGATE_LISTEN: '127.0.0.1:0',
      AGENTGATE_WORKSPACE_CACHE: 'off',
      AGENTGATE_WORKSPACE_REFRESH_INTERVAL: '2m',
      AGENTGATE_STATS_REPORT_INTERVAL: '10s',
      AGENTGATE_HEARTBEAT_INTERVAL: '500ms',
      AGENTGATE_USAGE_FLUSH_INTERVAL: '1h',
      AGENTGATE_MAX_FRAME_BYTES: '1024',
      AGENTGATE_SESSION_RATE: '7',
      AGENTGATE_WRITE_BUFFER: '50',
      AGENTGATE_SHUTDOWN_TIMEOUT: '5s',
      AGENTGATE_ADMIN_TOKEN: 'admin-secret',
      AGENTGATE_LOG_LEVEL: 'debug',
      AGENTGATE_WORKERS: '3',
      AGENTGATE_MAX_CONNECTIONS: '500',
      AGENTGATE_METRICS_LISTEN: '127.0.0.1:9100',
      AGENTGATE_LISTEN_DATABASE_URL: 'postgres://u:p@127.0.0.1:5433/db',
    });
    assert.equal(c.databaseUrl, 'postgres://u:p@127.0.0.1:5432/db');
    assert.equal(c.listenHost, '127.0.0.1');
    assert.equal(c.listenPort, 0);
    assert.equal(c.workspaceCache, false);
    assert.equal(c.workspaceRefreshIntervalMs, 120_000);
    assert.equal(c.statsReportIntervalMs, 10_000);
    assert.equal(c.heartbeatIntervalMs, 500);
    assert.equal(c.usageFlushIntervalMs, 3_600_000);
    assert.equal(c.maxFrameBytes, 1024);
    assert.equal(c.sessionRate, 7);
    assert.equal(c.writeBuffer, 50);
    assert.equal(c.shutdownTimeoutMs, 5000);
    assert.equal(c.adminToken, 'admin-secret');
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.workers, 3);
    assert.equal(c.maxConnections, 500);
    assert.equal(c.metricsListenHost, '127.0.0.1');
    assert.equal(c.metricsListenPort, 9100);
    assert.equal(c.listenDatabaseUrl, 'postgres://u:p@127.0.0.1:5433/db');
    assert.equal(loadConfig(['--workers', 'auto'], {}).workers, availableParallelism(), 'auto = one per CPU');
  });

  test('a flag wins over its env var', () => {
    const env = {
      AGENTGATE_LISTEN: '127.0.0.1:9001',
      AGENTGATE_SESSION_RATE: '5',
      AGENTGATE_WORKSPACE_CACHE: 'on',
      AGENTGATE_HEARTBEAT_INTERVAL: '1h',
    };
    const c = loadConfig(
      ['--listen', '127.0.0.1:9002', '--session-rate=9', '--workspace-cache', 'off', '--heartbeat-interval=2s'],
      env,
    );
    assert.equal(c.listenPort, 9002);
    assert.equal(c.sessionRate, 9);
    assert.equal(c.workspaceCache, false);
    assert.equal(c.heartbeatIntervalMs, 2000);
    // An env var without its flag still applies next to other flags.
    assert.equal(loadConfig(['--session-rate', '9'], env).listenPort, 9001);
  });

  test('an invalid env var is not consulted when its flag is given', () => {
    const c = loadConfig(['--max-frame-bytes', '2048'], { AGENTGATE_MAX_FRAME_BYTES: 'abc' });
    assert.equal(c.maxFrameBytes, 2048);
  });

  test('--flag=value and --flag value are the same', () => {
    const a = loadConfig(['--listen=127.0.0.1:7000', '--log-level=warn', '--admin-token=t=1'], {});
    const b = loadConfig(['--listen', '127.0.0.1:7000', '--log-level', 'warn', '--admin-token', 't=1'], {});
    assert.deepEqual(a, b);
    assert.equal(a.listenPort, 7000);
    assert.equal(a.logLevel, 'warn');
    assert.equal(a.adminToken, 't=1', 'only the first = splits name from value');
  });

  test('durations are written 500ms, 30s, 5m, 1h, 2d', () => {
    const cases: [string, number][] = [
      ['500ms', 500],
      ['30s', 30_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['2d', 172_800_000],
    ];
    for (const [text, ms] of cases) {
      assert.equal(loadConfig(['--workspace-refresh-interval', text], {}).workspaceRefreshIntervalMs, ms, text);
      assert.equal(loadConfig([], { AGENTGATE_SHUTDOWN_TIMEOUT: text }).shutdownTimeoutMs, ms, text);
    }
  });

  test('data lifecycle (SPEC §1, §10): retention 2d and 400d, a pass every 10m; 0 keeps data forever', () => {
    const d = loadConfig([], {});
    assert.equal(d.statsRetentionMs, 2 * 86_400_000);
    assert.equal(d.rollupRetentionMs, 400 * 86_400_000);
    assert.equal(d.maintenanceIntervalMs, 600_000);
    const c = loadConfig(['--stats-retention', '0', '--maintenance-interval', '30s'], {
      AGENTGATE_STATS_ROLLUP_RETENTION: '0',
      AGENTGATE_STATS_RETENTION: '7d',
    });
    assert.equal(c.statsRetentionMs, 0);
    assert.equal(c.rollupRetentionMs, 0);
    assert.equal(c.maintenanceIntervalMs, 30_000);
    assert.equal(loadConfig([], { AGENTGATE_STATS_RETENTION: '36h' }).statsRetentionMs, 36 * 3_600_000);
    assert.throws(() => loadConfig(['--maintenance-interval', '0'], {}), /--maintenance-interval: expected a duration/);
    assert.throws(() => loadConfig(['--stats-retention', '2 days'], {}), /--stats-retention: expected a duration/);
  });

  test('listen takes host:port, port 0 picks a free one, IPv6 in brackets', () => {
    const zero = loadConfig(['--listen', '127.0.0.1:0'], {});
    assert.equal(zero.listenHost, '127.0.0.1');
    assert.equal(zero.listenPort, 0);
    const v6 = loadConfig(['--listen', '[::1]:9000'], {});
    assert.equal(v6.listenHost, '::1');
    assert.equal(v6.listenPort, 9000);
  });

  describe('invalid values throw one UsageError naming the option and what is allowed', () => {
    // [flag, env var, bad values, what the message must say is allowed]
    const cases: [string, string, string[], RegExp][] = [
      ['--listen', 'AGENTGATE_LISTEN', ['localhost', '127.0.0.1:65536', ':x'], /host:port/],
      ['--workspace-cache', 'AGENTGATE_WORKSPACE_CACHE', ['maybe', 'o n'], /\bon\b.*\boff\b/],
      ['--workspace-refresh-interval', 'AGENTGATE_WORKSPACE_REFRESH_INTERVAL', ['5', '5x', '-1s', 'm'], /duration/],
      ['--stats-report-interval', 'AGENTGATE_STATS_REPORT_INTERVAL', ['30', '1.2.3s', 'soon'], /duration/],
      ['--heartbeat-interval', 'AGENTGATE_HEARTBEAT_INTERVAL', ['5x', '15', '0s'], /duration/],
      ['--usage-flush-interval', 'AGENTGATE_USAGE_FLUSH_INTERVAL', ['60', 'ms'], /duration/],
      ['--shutdown-timeout', 'AGENTGATE_SHUTDOWN_TIMEOUT', ['30', 'forever'], /duration/],
      ['--max-frame-bytes', 'AGENTGATE_MAX_FRAME_BYTES', ['abc', '-5', '1.5', '64k'], /integer/],
      ['--session-rate', 'AGENTGATE_SESSION_RATE', ['fast', '-1', '2.5'], /integer/],
      ['--write-buffer', 'AGENTGATE_WRITE_BUFFER', ['lots', '-10'], /integer/],
      ['--log-level', 'AGENTGATE_LOG_LEVEL', ['verbose', 'INFO!'], /info/],
      ['--database-url', 'DATABASE_URL', ['mysql://u:p@h/db', 'localhost:5432'], /postgres/],
    ];
    for (const [flag, env, values, allowed] of cases) {
      test(`${flag} / ${env}`, () => {
        for (const v of values) {
          const byFlag = configError([flag, v], {});
          assert.ok(byFlag.message.includes(flag), `${JSON.stringify(byFlag.message)} names ${flag}`);
          assert.match(byFlag.message, allowed);
          const byEq = configError([`${flag}=${v}`], {});
          assert.ok(byEq.message.includes(flag), `${JSON.stringify(byEq.message)} names ${flag}`);
          const byEnv = configError([], { [env]: v });
          assert.ok(byEnv.message.includes(env), `${JSON.stringify(byEnv.message)} names ${env}`);
          assert.ok(!byEnv.message.includes(flag), `${JSON.stringify(byEnv.message)} does not blame the flag`);
          assert.match(byEnv.message, allowed);
        }
      });
    }

    test('durations name the units', () => {
      const e = configError(['--heartbeat-interval', '5x'], {});
      for (const unit of ['ms', 's', 'm', 'h']) assert.match(e.message, new RegExp(`\\d${unit}\\b`));
    });

    test('a database URL is never echoed with its password', () => {
      const e = configError(['--database-url', 'mysql://root:hunter2secret@127.0.0.1/db'], {});
      assert.ok(!e.message.includes('hunter2secret'), e.message);
      const e2 = configError([], { DATABASE_URL: 'mysql://root:hunter2secret@127.0.0.1/db' });
      assert.ok(!e2.message.includes('hunter2secret'), e2.message);
    });
  });

  test('unknown flags, stray arguments and missing values throw', () => {
    assert.match(configError(['--nope', '1']).message, /--nope/);
    assert.match(configError(['--listen=127.0.0.1:0', '--Listen', 'x']).message, /--Listen/);
    assert.throws(() => loadConfig(['serve-now'], {}), UsageError);
    assert.match(configError(['--listen']).message, /--listen/);
    assert.match(configError(['--listen', '--log-level', 'info']).message, /--listen/);
  });

  test('the environment outside the option table is ignored', () => {
    const c = loadConfig([], { AGENTGATE_UNKNOWN: 'x', PATH: '/bin', AGENTGATE_WORKERS_TYPO: '3' });
    assert.equal(c.listenPort, 8080);
  });

  test('an empty env var counts as unset; an empty flag value is an error', () => {
    assert.equal(loadConfig([], { AGENTGATE_LISTEN: '' }).listenPort, 8080);
    assert.equal(loadConfig([], { AGENTGATE_ADMIN_TOKEN: '' }).adminToken, undefined);
    assert.match(configError(['--admin-token=']).message, /--admin-token/);
  });

  test('every serve option has a flag and an env var, and the data dir is one of them', () => {
    for (const [key, spec] of Object.entries(SERVE_OPTIONS)) {
      assert.match(spec.flag, /^--[a-z-]+$/, key);
      assert.match(spec.env, /^(DATABASE_URL|AGENTGATE_[A-Z_]+)$/, key);
    }
    const c = loadConfig(['--data-dir', '/tmp/x'], {});
    assert.equal(c.dataDir, '/tmp/x');
    assert.equal(loadConfig([], { AGENTGATE_DATA_DIR: '/tmp/y' }).dataDir, '/tmp/y');
    assert.equal(loadConfig([], {}).dataDir, '.agentgate');
  });
});

test('a busy data dir is a UsageError (exit 2 in the CLI)', () => {
  const e = new DataDirBusyError('/tmp/pgdata', 123);
  assert.ok(e instanceof UsageError);
  assert.equal(e.name, 'DataDirBusyError');
});
