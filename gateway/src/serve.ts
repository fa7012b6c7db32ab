// `agentgate serve` (SPEC §1): configuration, database (embedded when no DATABASE_URL), migrations,
// the gateway, and the SIGTERM/SIGINT drain (SPEC §7). Exits 0 after a clean drain.
import type { Server } from 'node:http';
import path from 'node:path';
import { RPC_PATH } from '@agentgate/shared';
import { type Config, loadConfig } from './config.js';
import { Gateway } from './hub/gateway.js';
import { createHttpServer } from './http/server.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from './ops/embedded-postgres.js';
import { createLogger, type Logger } from './ops/log.js';
import { UsageError } from './options.js';
import { systemClock } from './ops/clock.js';
import { connect, redactUrl } from './store/db.js';
import { IdentityListener } from './store/identity-listener.js';
import { migrate } from './store/migrate.js';
import { PgStore } from './store/pg-store.js';

/** `agentgate serve`: returns the exit code; throws UsageError for what the user must fix. */
export async function serveMain(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(argv, env);
  const log = createLogger(config.logLevel);
  return serve(config, log);
}

async function openDatabase(config: Config, log: Logger): Promise<{ url: string; embedded?: EmbeddedPostgresHandle }> {
  if (config.databaseUrl) {
    log.info({ database: redactUrl(config.databaseUrl) }, 'using DATABASE_URL');
    return { url: config.databaseUrl };
  }
  const dataDir = path.resolve(config.dataDir, 'pgdata');
  log.info({ dataDir }, 'starting embedded PostgreSQL');
  const pgLog = log.child({ component: 'postgres' });
  const embedded = await startEmbeddedPostgres({ dataDir, onLog: (line) => pgLog.debug(line) });
  log.info(
    { dataDir, clusterDir: embedded.clusterDir, port: embedded.port, pid: embedded.pid },
    'embedded PostgreSQL started',
  );
  return { url: embedded.url, embedded };
}

/** Migrations run on their own connection, without the gateway's statement_timeout. */
async function migrateWith(url: string) {
  const m = connect(url, { max: 1, applicationName: 'agentgate-migrate' });
  try {
    return await migrate(m);
  } finally {
    await m.end({ timeout: 5 });
  }
}

async function serve(config: Config, log: Logger): Promise<number> {
  const db = await openDatabase(config, log);
  // statement_timeout below the writers' attempt timeout: a slow database aborts the statement
  // itself, so a retried batch never runs beside its first attempt.
  const sql = connect(db.url, { max: 10, applicationName: 'agentgate', statementTimeoutMs: 8000 });
  const batchSql = connect(db.url, {
    max: 6,
    applicationName: 'agentgate-writer',
    statementTimeoutMs: 8000,
    prepare: false,
  });
  const probe = connect(db.url, { max: 1, applicationName: 'agentgate-health', connectTimeoutS: 2 });
  // SPEC §8: one dedicated LISTEN connection, direct to PostgreSQL (not through a transaction pooler).
  const identityFeed = new IdentityListener(config.listenDatabaseUrl ?? db.url, { clock: systemClock, log });
  const shutdownDb = async () => {
    await Promise.allSettled([
      sql.end({ timeout: 5 }),
      batchSql.end({ timeout: 5 }),
      probe.end({ timeout: 1 }),
      identityFeed.stop(),
    ]);
    if (db.embedded) await db.embedded.stop();
  };
  try {
    const m = await migrateWith(db.url);
    if (m.applied.length) log.info({ applied: m.applied }, 'migrations applied');
  } catch (err) {
    await shutdownDb();
    throw err;
  }

  const gateway = new Gateway({
    config,
    store: new PgStore(sql, batchSql),
    log,
    ping: async () => {
      await probe`select 1`;
    },
    identityFeed,
  });
  const opsApart = config.metricsListenHost !== undefined;
  const server = createHttpServer(gateway, log, {
    routes: opsApart ? 'agents' : 'all',
    maxConnections: config.maxConnections,
  });
  const opsServer = opsApart
    ? createHttpServer(gateway, log, { routes: 'ops', maxConnections: config.maxConnections })
    : undefined;
  try {
    await listen(server, config.listenHost, config.listenPort);
    if (opsServer) await listen(opsServer, config.metricsListenHost!, config.metricsListenPort!);
  } catch (err) {
    server.close();
    await shutdownDb();
    throw err;
  }
  gateway.start();
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.listenPort;
  const host = config.listenHost.includes(':') ? `[${config.listenHost}]` : config.listenHost;
  log.info(
    {
      url: `ws://${host}:${port}${RPC_PATH}`,
      workspaceCache: config.workspaceCache ? 'on' : 'off',
      embeddedDatabase: Boolean(db.embedded),
    },
    'listening',
  );

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info({ signal, sessions: gateway.sessionCount, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
  // A second signal means "now": skip the drain.
  const force = () => {
    log.warn('second signal; exiting without finishing the drain');
    process.exit(1);
  };
  process.once('SIGTERM', force);
  process.once('SIGINT', force);
  const hardStop = setTimeout(() => {
    log.error('shutdown timeout reached; exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs + 5000);
  hardStop.unref();
  await gateway.drain(config.shutdownTimeoutMs - 1000);
  gateway.stop();
  await Promise.all(
    [server, opsServer].map(
      (s) =>
        s &&
        new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        }),
    ),
  );
  await shutdownDb();
  log.info('stopped');
  return 0;
}

/** Listens on host:port; an address in use or not available is the user's to fix (one line, exit 2). */
async function listen(server: Server, host: string, port: number): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UsageError(`cannot listen on ${host}:${port}: address in use`);
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES')
      throw new UsageError(`cannot listen on ${host}:${port}: ${e.code}`);
    throw err;
  }
}
