// One whole gateway in this process (the single-process `serve`, or one cluster worker): its
// database pools, the Gateway hub, the agents' listener (and the `--metrics-listen` one), and the
// §7 shutdown of all of them. The database is ready (started and migrated) before this runs.
import { createServer, type Server } from 'node:http';
import type { Config } from '../config.js';
import { Gateway } from '../hub/gateway.js';
import { createHttpServer, type Routes } from '../http/server.js';
import { systemClock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { UsageError } from '../options/parse.js';
import { connect, pgDb } from '../store/db.js';
import { IdentityListener } from '../store/identity-listener.js';
import { MaintenanceTimer } from './maintenance-timer.js';

export interface InstanceOptions {
  config: Config;
  databaseUrl: string;
  log: Logger;
  /** What the routes answer; the gateway itself by default (a cluster worker answers for the tree). */
  api?: (gateway: Gateway) => Routes;
}

export interface GatewayInstance {
  readonly gateway: Gateway;
  /** The port actually bound (port 0 picks one). */
  readonly port: number;
  /** The `--metrics-listen` listener's port actually bound, when there is one. */
  readonly metricsPort: number | undefined;
  /**
   * SPEC §7: drains within the shutdown timeout unless `forced` settles first, then closes the
   * listeners and the pools. Resolves 'forced' when the drain was cut short.
   */
  shutdown(forced: Promise<unknown>): Promise<'drained' | 'forced'>;
  /** Closes everything without a drain (startup cut short). */
  close(): Promise<void>;
}

export async function startInstance({ config, databaseUrl, log, api }: InstanceOptions): Promise<GatewayInstance> {
  const pools = openPools(config, databaseUrl, log);
  const gateway = new Gateway({ config, db: pgDb(pools.sql, pools.bulkSql), log, ping: pools.ping });
  const listeners = makeListeners(api ? api(gateway) : gateway, config, log);
  try {
    await listeners.listen();
  } catch (err) {
    await listeners.close();
    await pools.end(1);
    throw err;
  }
  gateway.start();
  pools.start(gateway);
  return {
    gateway,
    port: listeners.port(),
    metricsPort: listeners.metricsPort(),
    async shutdown(forced) {
      const budgetMs = config.shutdownTimeoutMs;
      // Whatever happens below, the process does not outlive the budget by much.
      const hardStop = setTimeout(() => {
        log.error('shutdown timeout reached; exiting');
        process.exit(1);
      }, budgetMs + 5000);
      hardStop.unref();
      const outcome = await Promise.race([
        gateway.drain(budgetMs - 1000).then(() => 'drained' as const),
        forced.then(() => 'forced' as const),
      ]);
      gateway.stop();
      await listeners.close();
      await pools.end(outcome === 'drained' ? 5 : 1);
      return outcome;
    },
    async close() {
      gateway.stop();
      await listeners.close();
      await pools.end(1);
    },
  };
}

/**
 * The process's connections to PostgreSQL: the lookups' pool, the writers' pool, the health probe,
 * the `LISTEN` connection and the maintenance pass's (README: up to 18 at once, with the pass's).
 */
function openPools(config: Config, databaseUrl: string, log: Logger) {
  // statement_timeout below the writers' attempt timeout: a slow database aborts the statement
  // itself, so a retried batch never runs beside its first attempt.
  const sql = connect(databaseUrl, { max: 10, applicationName: 'agentgate', statementTimeoutMs: 8000 });
  const bulkSql = connect(databaseUrl, {
    max: 6,
    applicationName: 'agentgate-writer',
    statementTimeoutMs: 8000,
    prepare: false,
  });
  const probe = connect(databaseUrl, { max: 1, applicationName: 'agentgate-health', connectTimeoutS: 2 });
  // SPEC §8: one dedicated LISTEN connection, direct to PostgreSQL (not through a transaction pooler).
  const direct = config.listenDatabaseUrl ?? databaseUrl;
  const identityFeed = new IdentityListener(direct, { clock: systemClock, log });
  let maintenance: MaintenanceTimer | undefined;
  return {
    sql,
    bulkSql,
    ping: async () => {
      await probe`select 1`;
    },
    /** The LISTEN connection feeds the gateway's sessions; SPEC §10 a pass now and every interval. */
    start(gateway: Gateway) {
      identityFeed.start(gateway.identitySink);
      maintenance = new MaintenanceTimer({
        databaseUrl: direct,
        intervalMs: config.maintenanceIntervalMs,
        statsRetentionMs: config.statsRetentionMs,
        rollupRetentionMs: config.rollupRetentionMs,
        metrics: gateway.parts.metrics,
        log,
        clock: systemClock,
      });
      maintenance.start();
    },
    end: (timeoutS: number) =>
      Promise.allSettled([
        sql.end({ timeout: timeoutS }),
        bulkSql.end({ timeout: timeoutS }),
        probe.end({ timeout: Math.min(1, timeoutS) }),
        identityFeed.stop(),
        maintenance?.stop(Math.min(1, timeoutS)),
      ]),
  };
}

/** The agents' listener and, with `--metrics-listen`, the operators' one (SPEC §1). */
function makeListeners(routes: Routes, config: Config, log: Logger) {
  const opsApart = config.metricsListenHost !== undefined;
  const maxConnections = config.maxConnections;
  const server = createHttpServer(routes, log, { routes: opsApart ? 'agents' : 'all', maxConnections });
  const opsServer = opsApart ? createHttpServer(routes, log, { routes: 'ops', maxConnections }) : undefined;
  const servers = [server, opsServer].filter((s): s is Server => s !== undefined);
  return {
    async listen() {
      await listen(server, config.listenHost, config.listenPort);
      if (opsServer) await listen(opsServer, config.metricsListenHost!, config.metricsListenPort!);
    },
    port: () => boundPort(server) ?? config.listenPort,
    metricsPort: () => (opsServer ? (boundPort(opsServer) ?? config.metricsListenPort) : undefined),
    close: () =>
      Promise.all(
        servers
          .filter((s) => s.listening)
          .map(
            (s) =>
              new Promise<void>((resolve) => {
                s.close(() => resolve());
                s.closeAllConnections();
              }),
          ),
      ),
  };
}

function boundPort(server: Server): number | undefined {
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : undefined;
}

/** Fails with the same one line as a worker would when host:port cannot be bound (the primary checks first). */
export async function checkListen(host: string, port: number): Promise<void> {
  const server = createServer();
  await listen(server, host, port);
  await new Promise((resolve) => server.close(resolve));
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
