// `agentgate serve` (SPEC §1): configuration, the shutdown signals (installed first, SPEC §7), the
// database (embedded when no DATABASE_URL) and its migrations, then one gateway in this process or,
// with `--workers N`, a cluster primary and N workers (SPEC §8, gateway/src/cluster/). Exits 0 after
// a clean drain.
import cluster from 'node:cluster';
import path from 'node:path';
import { runPrimary } from './cluster/primary.js';
import { runWorker } from './cluster/worker.js';
import { type Config, loadConfig } from './config.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from './embedded/postgres.js';
import { installLastResort } from './ops/last-resort.js';
import { createLogger, type Logger } from './ops/log.js';
import { connect, redactUrl } from './store/db.js';
import { checkDatabase, explainDatabaseError, StartupAborted } from './store/db-check.js';
import { migrate } from './store/migrate.js';
import { logListening, type PreparedDatabase, stopper } from './instance/announce.js';
import { checkListen, startInstance } from './instance/instance.js';
import { ShutdownSignals } from './instance/signals.js';

/** `agentgate serve`: returns the exit code; throws UsageError for what the user must fix. */
export async function serveMain(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(argv, env);
  const log = createLogger(config.logLevel);
  installLastResort(log);
  if (cluster.isWorker) return runWorker(config, log);
  // Before anything slow: a signal during startup stops what was started (SPEC §7).
  const signals = new ShutdownSignals(log).install();
  // Every startup phase honours the signals: the database check and the migrations stop at once.
  const startup = new AbortController();
  void signals.requested.then(() => startup.abort());
  try {
    // An address in use is one line before anything slow (no cluster initialised for nothing).
    await checkListen(config.listenHost, config.listenPort);
    if (config.metricsListenHost !== undefined) await checkListen(config.metricsListenHost, config.metricsListenPort!);
    const prepare = () => prepareDatabase(config, log, startup.signal);
    return await (config.workers > 1
      ? runPrimary(config, log, signals, prepare)
      : serve(config, log, signals, prepare));
  } catch (err) {
    if (!(err instanceof StartupAborted)) throw err;
    log.info('stopped before the gateway started');
    return signals.isForced ? 1 : 0;
  }
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
  // `postmasterPid`: pino's own `pid` is this process's. `database`: the gateway's own role (SPEC §7).
  log.info(
    {
      dataDir,
      clusterDir: embedded.clusterDir,
      port: embedded.port,
      postmasterPid: embedded.pid,
      database: redactUrl(embedded.url),
    },
    'embedded PostgreSQL started',
  );
  return { url: embedded.url, embedded };
}

/** Migrations run on their own connection, without the gateway's statement_timeout; a signal ends them. */
async function migrateWith(url: string, signal: AbortSignal) {
  const m = connect(url, { max: 1, applicationName: 'agentgate-migrate' });
  const onAbort = () => void m.end({ timeout: 0 }).catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await migrate(m);
  } catch (err) {
    if (signal.aborted) throw new StartupAborted('migrations cut short by a signal');
    throw explainDatabaseError(err, url) ?? err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await m.end({ timeout: 5 });
  }
}

/** The database, started if embedded, checked and migrated, once per process tree. */
async function prepareDatabase(config: Config, log: Logger, signal: AbortSignal): Promise<PreparedDatabase> {
  const db = await openDatabase(config, log);
  const stop = async () => {
    if (db.embedded) await db.embedded.stop();
  };
  try {
    if (signal.aborted) throw new StartupAborted('startup cut short by a signal');
    await checkDatabase(db.url, signal);
    const m = await migrateWith(db.url, signal);
    if (m.applied.length) log.info({ applied: m.applied }, 'migrations applied');
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: db.url, embedded: Boolean(db.embedded), stop };
}

/** One gateway in this process (`--workers 1`). */
async function serve(
  config: Config,
  log: Logger,
  signals: ShutdownSignals,
  prepareDatabase: () => Promise<PreparedDatabase>,
): Promise<number> {
  const db = await prepareDatabase();
  const stopped = stopper(db, log);
  if (signals.isRequested) return stopped(signals.isForced ? 1 : 0);
  let instance: Awaited<ReturnType<typeof startInstance>>;
  try {
    instance = await startInstance({ config, databaseUrl: db.url, log });
  } catch (err) {
    await db.stop();
    throw err;
  }
  if (signals.isRequested) {
    await instance.close();
    return stopped(signals.isForced ? 1 : 0);
  }
  logListening(log, config, { port: instance.port, metricsPort: instance.metricsPort, embedded: db.embedded });
  await signals.requested;
  log.info({ sessions: instance.gateway.sessionCount, timeoutMs: config.shutdownTimeoutMs }, 'draining the gateway');
  const outcome = await instance.shutdown(signals.forced);
  return stopped(outcome === 'drained' ? 0 : 1);
}
