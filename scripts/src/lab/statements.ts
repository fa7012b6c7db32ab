// What the gateway asked of PostgreSQL over a window, by PostgreSQL's own counters: its role's
// statements (pg_stat_statements, on the embedded database of database.ts) and the scans of
// `workspaces` (pg_stat_user_tables).
import { GATEWAY_ROLE } from '@agentgate/gateway/embedded';
import type { Sql } from '@agentgate/gateway/store/db';

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
