// The bench's database: one embedded PostgreSQL with pg_stat_statements. The gateway connects as the
// embedded cluster's own non-superuser role, which owns its database and migrates it (SPEC §7), so
// PostgreSQL's own counters separate its statements from the bench's (superuser) by `userid`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type EmbeddedPostgresHandle,
  GATEWAY_ROLE,
  removeEmbeddedCluster,
  startEmbeddedPostgres,
} from '@agentgate/gateway/ops/embedded-postgres';
import { connect, type Sql } from '@agentgate/gateway/store/db';
import { migrate } from '@agentgate/gateway/store/migrate';

export interface BenchDatabase {
  pg: EmbeddedPostgresHandle;
  /** Superuser connection to the gateway's database: seeding and reading counters. */
  admin: Sql;
  /** The gateway's URL: the embedded cluster's gateway role on its database. */
  gatewayUrl: string;
  serverVersion: string;
  close(): Promise<void>;
}

export async function startBenchDatabase(onLog?: (line: string) => void): Promise<BenchDatabase> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentgate-bench-'));
  const dataDir = path.join(dir, 'pgdata');
  let pg: EmbeddedPostgresHandle | undefined;
  let admin: Sql | undefined;
  const close = async () => {
    await admin?.end({ timeout: 5 }).catch(() => {});
    await pg?.stop().catch(() => {});
    removeEmbeddedCluster(dataDir);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    pg = await startEmbeddedPostgres({
      dataDir,
      settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top' },
      ...(onLog ? { onLog } : {}),
    });
    const adminUrl = new URL(pg.adminUrl);
    adminUrl.pathname = new URL(pg.url).pathname;
    admin = connect(adminUrl.toString(), { max: 2, applicationName: 'agentgate-bench' });
    // Only a superuser may create it (it is not a trusted extension).
    await admin`create extension if not exists pg_stat_statements`;
    const gw = connect(pg.url, { max: 1, applicationName: 'agentgate-bench' });
    try {
      await migrate(gw);
    } finally {
      await gw.end({ timeout: 5 });
    }
    const [v] = await admin<{ server_version: string }[]>`show server_version`;
    return { pg, admin, gatewayUrl: pg.url, serverVersion: v?.server_version ?? 'unknown', close };
  } catch (e) {
    await close();
    throw e;
  }
}

export interface DbCounters {
  /**
   * seq_scan + idx_scan of `workspaces` (pg_stat_user_tables, every role). An index scan is counted
   * per probe, so one batched statement that joins 1000 workspaces counts 1000.
   */
  workspaceScans: number;
  /** Statements the gateway's role ran (pg_stat_statements calls). */
  statements: number;
  /** Of those, the statements that read `workspaces` or `workspaces_expanded` (select/with). */
  workspaceStatements: number;
  /** The gateway's most frequent statements, for a reader who wants to know what they were. */
  top: TopStatement[];
}

export interface TopStatement {
  calls: number;
  meanMs: number;
  maxMs: number;
  query: string;
}

export async function resetStatements(admin: Sql): Promise<void> {
  await admin`select pg_stat_statements_reset()`;
}

export async function workspaceScans(admin: Sql): Promise<number> {
  const [t] = await admin<{ scans: number }[]>`
    select (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::bigint as scans
    from pg_stat_user_tables where relname = 'workspaces'`;
  return Number(t?.scans ?? 0);
}

/** Counters since the last resetStatements (statements) and `scansBefore` (table scans). */
export async function readDbCounters(admin: Sql, scansBefore: number): Promise<DbCounters> {
  const rows = await admin<{ calls: number; mean: number; max: number; query: string }[]>`
    select s.calls::bigint as calls, s.mean_exec_time as mean, s.max_exec_time as max, s.query
    from pg_stat_statements s join pg_roles r on r.oid = s.userid
    where r.rolname = ${GATEWAY_ROLE} and s.dbid = (select oid from pg_database where datname = current_database())
    order by s.calls desc`;
  let statements = 0;
  let workspaceStatements = 0;
  for (const r of rows) {
    const calls = Number(r.calls);
    statements += calls;
    if (/^\s*(select|with)\b/i.test(r.query) && /\bworkspaces(_expanded)?\b/i.test(r.query))
      workspaceStatements += calls;
  }
  return {
    workspaceScans: (await workspaceScans(admin)) - scansBefore,
    statements,
    workspaceStatements,
    top: rows.slice(0, 6).map((r) => ({
      calls: Number(r.calls),
      meanMs: Math.round(r.mean * 1000) / 1000,
      maxMs: Math.round(r.max * 1000) / 1000,
      query: r.query.replace(/\s+/g, ' ').slice(0, 160),
    })),
  };
}
