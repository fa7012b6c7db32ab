// Migration 5 of migrations.ts (released: never edit it, add the next one).
// SPEC §2, §10: workspace_agent_stats range-partitioned by UTC day on created_at, primary key
// (id, created_at), so that retention drops a day instead of deleting rows. A DEFAULT partition
// stores a row that no day partition covers (never refused); the maintenance pass moves such rows
// into a partition of their own day. An existing table is converted in this transaction: its rows
// are copied into day partitions (one per UTC day it holds, plus yesterday to 3 days ahead)
// before the keys exist, and the keys are built once at the end, which is faster than inserting
// into indexed tables (5 million rows in about 26 s here; README).
export const statsPartitionsAndRollup = /* sql */ `
set local maintenance_work_mem = '256MB';
alter table workspace_agent_stats rename to workspace_agent_stats_unpartitioned;

create table workspace_agent_stats (
  id uuid not null,
  created_at timestamptz not null,
  user_id uuid not null,
  agent_id uuid not null,
  workspace_id uuid not null,
  template_id uuid not null,
  connections_by_proto jsonb not null default '{}',
  connection_count bigint not null default 0,
  rx_packets bigint not null default 0,
  rx_bytes bigint not null default 0,
  tx_packets bigint not null default 0,
  tx_bytes bigint not null default 0,
  connection_median_latency_ms double precision not null default -1,
  session_count_vscode bigint not null default 0,
  session_count_jetbrains bigint not null default 0,
  session_count_reconnecting_pty bigint not null default 0,
  session_count_ssh bigint not null default 0,
  usage boolean not null default false
) partition by range (created_at);
create table workspace_agent_stats_default partition of workspace_agent_stats default;

-- The days of the old rows, found by a walk down the created_at index (one probe per day).
do $$
declare
  d date;
begin
  for d in
    with recursive days(day) as (
      select (min(created_at) at time zone 'UTC')::date from workspace_agent_stats_unpartitioned
      union all
      select (select (min(s.created_at) at time zone 'UTC')::date from workspace_agent_stats_unpartitioned s
              where s.created_at >= (days.day + 1)::timestamp at time zone 'UTC')
      from days where days.day is not null
    )
    select day from days where day is not null
    union
    select generate_series((now() at time zone 'UTC')::date - 1, (now() at time zone 'UTC')::date + 3, interval '1 day')::date
  loop
    execute format('create table %I partition of workspace_agent_stats for values from (%L) to (%L)',
      'workspace_agent_stats_p' || to_char(d, 'YYYYMMDD'), d || ' 00:00:00+00', (d + 1) || ' 00:00:00+00');
  end loop;
end
$$;

insert into workspace_agent_stats (
  id, created_at, user_id, agent_id, workspace_id, template_id, connections_by_proto, connection_count,
  rx_packets, rx_bytes, tx_packets, tx_bytes, connection_median_latency_ms, session_count_vscode,
  session_count_jetbrains, session_count_reconnecting_pty, session_count_ssh, usage)
select
  id, created_at, user_id, agent_id, workspace_id, template_id, connections_by_proto, connection_count,
  rx_packets, rx_bytes, tx_packets, tx_bytes, connection_median_latency_ms, session_count_vscode,
  session_count_jetbrains, session_count_reconnecting_pty, session_count_ssh, usage
from workspace_agent_stats_unpartitioned;
drop table workspace_agent_stats_unpartitioned;
alter table workspace_agent_stats add primary key (id, created_at);
create index workspace_agent_stats_created_at_idx on workspace_agent_stats (created_at);

-- One row per UTC day and agent (SPEC §2), rolled up from the raw rows once the day has ended.
create table workspace_agent_stats_daily (
  day date not null,
  agent_id uuid not null,
  workspace_id uuid not null,
  template_id uuid not null,
  user_id uuid not null,
  reports bigint not null,
  usage_reports bigint not null,
  rx_packets bigint not null,
  rx_bytes bigint not null,
  tx_packets bigint not null,
  tx_bytes bigint not null,
  connection_count_max bigint not null,
  connection_median_latency_ms double precision not null,
  session_count_vscode_max bigint not null,
  session_count_jetbrains_max bigint not null,
  session_count_reconnecting_pty_max bigint not null,
  session_count_ssh_max bigint not null,
  primary key (day, agent_id)
);

-- The days rolled up (a day without rows too), so that retention drops only rolled-up days.
-- raw_rows: the raw rows the rollup counted; raw_dropped_at: when its partition was emptied.
create table agentgate_stats_rollups (
  day date primary key,
  raw_rows bigint not null,
  rolled_up_at timestamptz not null default now(),
  raw_dropped_at timestamptz null
);

-- One row per maintenance pass (SPEC §10): who ran it, when, and what it did.
create table agentgate_maintenance_runs (
  id bigint generated always as identity primary key,
  runner text not null,
  started_at timestamptz not null default clock_timestamp(),
  finished_at timestamptz null,
  outcome text null,
  result jsonb null
);
`;
