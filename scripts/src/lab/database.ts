// The database of a run: a given PostgreSQL (migrated), or a fresh embedded one with
// pg_stat_statements. On the embedded one the gateway connects as the cluster's own non-superuser
// role, which owns its database and migrates it (SPEC §7), so PostgreSQL's own counters separate
// its statements from the tool's (superuser) by `userid` (statements.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type EmbeddedPostgresHandle, removeEmbeddedCluster, startEmbeddedPostgres } from '@agentgate/gateway/embedded';
import { connect, type Sql } from '@agentgate/gateway/store/db';
import { migrate } from '@agentgate/gateway/store/migrate';
import { livePids } from './interrupt.js';

export interface LabDatabase {
  /** The embedded cluster, when the run started one. */
  pg: EmbeddedPostgresHandle | undefined;
  /** Seeding, changes and counters: a superuser on the embedded cluster, else the given URL. */
  admin: Sql;
  /** The gateway's URL: the embedded cluster's gateway role on its database, else the given URL. */
  gatewayUrl: string;
  serverVersion: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** A PostgreSQL to use (its schema is migrated); without it, a fresh embedded one. */
  url?: string | undefined;
  /** application_name of the tool's own connections. */
  app: string;
  onLog?: (line: string) => void;
}

export async function openDatabase(o: OpenOptions): Promise<LabDatabase> {
  if (o.url === undefined) return startEmbedded(o);
  const admin = connect(o.url, { max: 4, applicationName: o.app });
  try {
    await migrate(admin);
    const serverVersion = await showServerVersion(admin);
    return { pg: undefined, admin, gatewayUrl: o.url, serverVersion, close: () => admin.end({ timeout: 5 }) };
  } catch (e) {
    await admin.end({ timeout: 5 });
    throw e;
  }
}

async function showServerVersion(sql: Sql): Promise<string> {
  const [v] = await sql<{ server_version: string }[]>`show server_version`;
  return v?.server_version ?? 'unknown';
}

async function startEmbedded(o: OpenOptions): Promise<LabDatabase> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentgate-lab-'));
  const dataDir = path.join(dir, 'pgdata');
  let pg: EmbeddedPostgresHandle | undefined;
  let admin: Sql | undefined;
  const close = async () => {
    await admin?.end({ timeout: 5 }).catch(() => {});
    await pg?.stop().catch(() => {});
    if (pg?.pid !== undefined) livePids.delete(pg.pid);
    removeEmbeddedCluster(dataDir);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    pg = await startEmbeddedPostgres({
      dataDir,
      settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top' },
      ...(o.onLog ? { onLog: o.onLog } : {}),
    });
    if (pg.pid !== undefined) livePids.add(pg.pid);
    const adminUrl = new URL(pg.adminUrl);
    adminUrl.pathname = new URL(pg.url).pathname;
    admin = connect(adminUrl.toString(), { max: 2, applicationName: o.app });
    // Only a superuser may create it (it is not a trusted extension).
    await admin`create extension if not exists pg_stat_statements`;
    const gw = connect(pg.url, { max: 1, applicationName: o.app });
    try {
      await migrate(gw);
    } finally {
      await gw.end({ timeout: 5 });
    }
    return { pg, admin, gatewayUrl: pg.url, serverVersion: await showServerVersion(admin), close };
  } catch (e) {
    await close();
    throw e;
  }
}
