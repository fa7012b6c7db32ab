// `agentgate usage` (SPEC §10): the daily rollup as a report for people, per template or per
// workspace, over the last N ended UTC days (today is rolled up once it has ended).
import type { Sql } from './db.js';

export type UsageGrouping = 'template' | 'workspace';

export interface UsageRow {
  id: string;
  /** The template's name, or `owner/workspace`; empty when it no longer exists. */
  name: string;
  /** Workspaces with at least one report. */
  workspaces: number;
  reports: number;
  /** Bytes the agents received (rx) and sent (tx). */
  rxBytes: number;
  txBytes: number;
  /** Days on which a workspace had usage: a report with `usage`, or a connection or session open. */
  daysWithUsage: number;
}

export interface UsageReport {
  /** The first and last UTC day covered. */
  from: string;
  to: string;
  rows: UsageRow[];
}

export async function usageReport(sql: Sql, days: number, by: UsageGrouping): Promise<UsageReport> {
  const [range] = await sql<{ from: string; to: string }[]>`
    select (((now() at time zone 'UTC')::date - ${days}::int))::text as from,
           (((now() at time zone 'UTC')::date - 1))::text as to`;
  const { from, to } = range!;
  const rows = await sql<UsageRow[]>`
    with d as (
      select *, (usage_reports > 0 or connection_count_max > 0
                 or session_count_vscode_max + session_count_jetbrains_max
                    + session_count_reconnecting_pty_max + session_count_ssh_max > 0) as used
      from workspace_agent_stats_daily where day between ${from}::date and ${to}::date
    ), grouped as (
      select case when ${by} = 'template' then template_id else workspace_id end as id,
             count(distinct workspace_id)::bigint as workspaces, sum(reports)::bigint as reports,
             sum(rx_bytes)::bigint as rx_bytes, sum(tx_bytes)::bigint as tx_bytes,
             count(distinct day) filter (where used)::bigint as days_with_usage
      from d group by 1
    )
    select g.id::text as id,
           coalesce(case when ${by} = 'template' then t.name else u.username || '/' || w.name end, '') as name,
           g.workspaces, g.reports, g.rx_bytes as "rxBytes", g.tx_bytes as "txBytes",
           g.days_with_usage as "daysWithUsage"
    from grouped g
    left join templates t on t.id = g.id
    left join workspaces w on w.id = g.id
    left join users u on u.id = w.owner_id
    order by g.reports desc, name, g.id`;
  return { from, to, rows: [...rows] };
}
