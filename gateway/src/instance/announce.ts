// What `serve` says of a gateway it started, in one process or as a cluster primary (SPEC §1): the
// `"msg":"listening"` line with the agents' URL (and the `/metrics` one of `--metrics-listen`), and
// the last line once the database it started is stopped.
import { RPC_PATH } from '@agentgate/shared';
import type { Config } from '../config.js';
import type { Logger } from '../ops/log.js';

/** The database of a process tree: started if embedded, checked and migrated. */
export interface PreparedDatabase {
  url: string;
  embedded: boolean;
  /** Stops the embedded PostgreSQL this process started; a no-op with DATABASE_URL. */
  stop(): Promise<void>;
}

const hostPart = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** The agents' URL of the `"msg":"listening"` line (SPEC §1). */
function agentsUrl(config: Config, port: number): string {
  return `ws://${hostPart(config.listenHost)}:${port}${RPC_PATH}`;
}

/** The `/metrics` URL of `--metrics-listen`, when there is one and its port is known. */
function metricsUrl(config: Config, port: number | undefined): string | undefined {
  if (config.metricsListenHost === undefined || !port) return undefined;
  return `http://${hostPart(config.metricsListenHost)}:${port}/metrics`;
}

/** Logs the `"msg":"listening"` line: the gateway (or every worker) accepts connections. */
export function logListening(
  log: Logger,
  config: Config,
  o: { port: number; metricsPort: number | undefined; embedded: boolean; workers?: number },
): void {
  const metrics = metricsUrl(config, o.metricsPort);
  log.info(
    {
      url: agentsUrl(config, o.port),
      ...(metrics !== undefined ? { metricsUrl: metrics } : {}),
      ...(o.workers !== undefined ? { workers: o.workers } : {}),
      workspaceCache: config.workspaceCache ? 'on' : 'off',
      embeddedDatabase: o.embedded,
    },
    'listening',
  );
}

/** Stops the database and logs the last line; resolves to the exit code. */
export function stopper(db: PreparedDatabase, log: Logger): (code: number) => Promise<number> {
  return async (code) => {
    await db.stop();
    log.info(code === 0 ? 'stopped' : 'stopped without finishing the drain');
    return code;
  };
}
