// The statements of the data lifecycle (SPEC §2, §10): the day partitions of workspace_agent_stats,
// the daily rollup, retention, and the advisory lock and log of a maintenance pass. The pass that
// runs them in order is maintenance-pass.ts. Partition DDL takes no bind parameters: its names and
// bounds come from `day` strings checked against DAY_RE, never from input.
import type { Sql } from './db.js';

/** One maintenance pass at a time across every process on the database (SPEC §10). */
const MAINTENANCE_LOCK = 7_245_002;
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
const PARTITION_RE = /^workspace_agent_stats_p(\d{4})(\d{2})(\d{2})$/;
export const DAY_MS = 86_400_000;

function checked(day: string): string {
  if (!DAY_RE.test(day)) throw new Error(`not a day: ${JSON.stringify(day)}`);
  return day;
}

/** `2025-01-31` → `workspace_agent_stats_p20250131`. */
export function partitionName(day: string): string {
  return `workspace_agent_stats_p${checked(day).replaceAll('-', '')}`;
}

function partitionDay(name: string): string | undefined {
  const m = PARTITION_RE.exec(name);
  return m ? `${m[1]}-${m[2]}-${m[3]}` : undefined;
}

/** The UTC day `n` days after `day`. */
export function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
}

/** A UTC day's start as a timestamptz literal (the session's TimeZone does not matter). */
const dayStart = (day: string) => `'${checked(day)} 00:00:00+00'`;

/** The database's clock: every process of the fleet agrees on the day. */
export async function databaseClock(sql: Sql): Promise<{ today: string; nowMs: number }> {
  const [r] = await sql<{ today: string; now_ms: number }[]>`
    select ((now() at time zone 'UTC')::date)::text as today, (extract(epoch from now()) * 1000)::float8 as now_ms`;
  return { today: r!.today, nowMs: r!.now_ms };
}

/** The day partitions of workspace_agent_stats, by day (partitions named otherwise are left alone). */
export async function statsPartitions(sql: Sql): Promise<Map<string, string>> {
  const rows = await sql<{ name: string }[]>`
    select c.relname::text as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'workspace_agent_stats'::regclass`;
  const out = new Map<string, string>();
  for (const { name } of rows) {
    const day = partitionDay(name);
    if (day) out.set(day, name);
  }
  return out;
}

/** The UTC days of the rows that wait in the DEFAULT partition (no day partition covered them). */
export async function defaultPartitionDays(sql: Sql, limit: number): Promise<string[]> {
  const rows = await sql<{ day: string }[]>`
    select distinct ((created_at at time zone 'UTC')::date)::text as day
    from workspace_agent_stats_default order by 1 limit ${limit}`;
  return rows.map((r) => r.day);
}

/**
 * Creates the partition of `day` (one transaction): the new table is attached, not created as a
 * partition, so the parent gets SHARE UPDATE EXCLUSIVE (inserts go on), and only the DEFAULT
 * partition is locked, to move the day's rows out of it. Resolves to the rows moved.
 */
export async function createStatsPartition(sql: Sql, day: string, lockTimeoutMs: number): Promise<number> {
  const name = partitionName(day);
  return inTransaction(sql, async () => {
    await sql`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`;
    await sql`lock table workspace_agent_stats_default in access exclusive mode`;
    await sql`create table ${sql(name)} (like workspace_agent_stats including defaults including constraints)`;
    const moved = await sql`
      with moved as (
        delete from workspace_agent_stats_default
        where created_at >= ${sql.unsafe(dayStart(day))} and created_at < ${sql.unsafe(dayStart(addDays(day, 1)))}
        returning *)
      insert into ${sql(name)} select * from moved`;
    await sql`alter table workspace_agent_stats attach partition ${sql(name)}
      for values from (${sql.unsafe(dayStart(day))}) to (${sql.unsafe(dayStart(addDays(day, 1)))})`;
    return moved.count;
  });
}

/**
 * SPEC §2: one row per agent for `day`, from its partition (the ids of the agent's latest row),
 * replacing what an earlier rollup of the day wrote; the day is recorded in agentgate_stats_rollups
 * with the raw rows counted. Reads the partition only: the inserts are never blocked.
 */
export async function rollUpDay(sql: Sql, day: string): Promise<number> {
  const name = partitionName(day);
  // Fresh statistics: without them (a day just filled) the planner probes the latest rows through
  // the wrong index, and a day of 500 000 rows took 80 s instead of 1 s.
  await sql`analyze ${sql(name)}`;
  return inTransaction(sql, async () => {
    await sql`delete from workspace_agent_stats_daily where day = ${day}::date`;
    await sql`
      insert into workspace_agent_stats_daily (
        day, agent_id, workspace_id, template_id, user_id, reports, usage_reports,
        rx_packets, rx_bytes, tx_packets, tx_bytes, connection_count_max, connection_median_latency_ms,
        session_count_vscode_max, session_count_jetbrains_max, session_count_reconnecting_pty_max, session_count_ssh_max)
      with agg as (
        select agent_id, max(created_at) as last_at, count(*) as reports, count(*) filter (where usage) as usage_reports,
               sum(rx_packets)::bigint as rx_packets, sum(rx_bytes)::bigint as rx_bytes,
               sum(tx_packets)::bigint as tx_packets, sum(tx_bytes)::bigint as tx_bytes,
               max(connection_count) as connection_count_max,
               coalesce(avg(connection_median_latency_ms) filter (where connection_median_latency_ms >= 0), -1)
                 as connection_median_latency_ms,
               max(session_count_vscode) as vscode, max(session_count_jetbrains) as jetbrains,
               max(session_count_reconnecting_pty) as reconnecting_pty, max(session_count_ssh) as ssh
        from ${sql(name)} group by agent_id
      )
      select ${day}::date, agg.agent_id, latest.workspace_id, latest.template_id, latest.user_id, reports, usage_reports,
             rx_packets, rx_bytes, tx_packets, tx_bytes, connection_count_max, agg.connection_median_latency_ms,
             vscode, jetbrains, reconnecting_pty, ssh
      from agg cross join lateral (
        select s.workspace_id, s.template_id, s.user_id from ${sql(name)} s
        where s.created_at = agg.last_at and s.agent_id = agg.agent_id order by s.id desc limit 1
      ) latest`;
    const [r] = await sql<{ n: number }[]>`
      insert into agentgate_stats_rollups (day, raw_rows)
      select ${day}::date, coalesce(sum(reports), 0) from workspace_agent_stats_daily where day = ${day}::date
      on conflict (day) do update set raw_rows = excluded.raw_rows, rolled_up_at = now(), raw_dropped_at = null
      returning raw_rows as n`;
    return r!.n;
  });
}

export interface RolledUpDay {
  rawRows: number;
  /** Its partition was emptied (then dropped): rows of that day now arriving are late. */
  rawDropped: boolean;
}

export async function rolledUpDays(sql: Sql): Promise<Map<string, RolledUpDay>> {
  const rows = await sql<{ day: string; raw_rows: number; dropped: boolean }[]>`
    select day::text, raw_rows, raw_dropped_at is not null as dropped from agentgate_stats_rollups`;
  return new Map(rows.map((r) => [r.day, { rawRows: r.raw_rows, rawDropped: r.dropped }]));
}

/**
 * Empties the partition of a rolled-up day, if it still holds the `rolledUpRows` that its rollup
 * counted (false: rows arrived since, roll the day up again). Its lock is the partition's only,
 * which no insert of today needs; TRUNCATE frees the files, so that the DROP which follows holds
 * the parent's lock for an empty table (milliseconds).
 */
export async function emptyPartition(
  sql: Sql,
  day: string,
  rolledUpRows: number,
  lockTimeoutMs: number,
): Promise<boolean> {
  const name = partitionName(day);
  return inTransaction(sql, async () => {
    await sql`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`;
    await sql`lock table ${sql(name)} in access exclusive mode`;
    const [r] = await sql<{ n: number }[]>`select count(*)::bigint as n from ${sql(name)}`;
    if (r!.n !== rolledUpRows) return false;
    await sql`truncate table ${sql(name)}`;
    await sql`update agentgate_stats_rollups set raw_dropped_at = now() where day = ${day}::date`;
    return true;
  });
}

/** DROP takes ACCESS EXCLUSIVE on the parent: `lockTimeoutMs` bounds how long inserts queue behind it. */
export async function dropPartition(sql: Sql, day: string, lockTimeoutMs: number): Promise<void> {
  await inTransaction(sql, async () => {
    await sql`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`;
    await sql`drop table ${sql(partitionName(day))}`;
  });
}

/** Late rows in the DEFAULT partition of days whose partition was already dropped, before `beforeDay`. */
export async function deleteLateRows(sql: Sql, beforeDay: string): Promise<number> {
  const r = await sql`
    delete from workspace_agent_stats_default d
    where d.created_at < ${sql.unsafe(dayStart(beforeDay))}
      and exists (select 1 from agentgate_stats_rollups r
                  where r.day = (d.created_at at time zone 'UTC')::date and r.raw_dropped_at is not null)`;
  return r.count;
}

/** Rollup rows of days up to `lastDay`; the ledger forgets those days once their raw rows are gone. */
export async function deleteRollupsThrough(sql: Sql, lastDay: string): Promise<number> {
  const r = await sql`delete from workspace_agent_stats_daily where day <= ${lastDay}::date`;
  await sql`delete from agentgate_stats_rollups where day <= ${lastDay}::date and raw_dropped_at is not null`;
  return r.count;
}

/** Seconds since the epoch of the oldest stats row, or undefined when there is none. */
export async function oldestStatsRow(sql: Sql): Promise<number | undefined> {
  const [r] = await sql<{ oldest: number | null }[]>`
    select extract(epoch from min(created_at))::float8 as oldest from workspace_agent_stats`;
  return r?.oldest ?? undefined;
}

/** Session-level: held across the pass's transactions, released by unlock or by the connection's end. */
export async function tryMaintenanceLock(sql: Sql): Promise<boolean> {
  const [r] = await sql<{ ok: boolean }[]>`select pg_try_advisory_lock(${MAINTENANCE_LOCK}) as ok`;
  return r!.ok;
}

export async function waitMaintenanceLock(sql: Sql): Promise<void> {
  await sql`select pg_advisory_lock(${MAINTENANCE_LOCK})`;
}

export async function releaseMaintenanceLock(sql: Sql): Promise<void> {
  await sql`select pg_advisory_unlock(${MAINTENANCE_LOCK})`;
}

/** A pass begins: one row in agentgate_maintenance_runs, finished by finishRun. */
export async function startRun(sql: Sql, runner: string): Promise<number> {
  const [r] = await sql<{ id: number }[]>`
    insert into agentgate_maintenance_runs (runner) values (${runner}) returning id`;
  return r!.id;
}

export async function finishRun(sql: Sql, id: number, outcome: string, result: object): Promise<void> {
  await sql`
    update agentgate_maintenance_runs set finished_at = clock_timestamp(), outcome = ${outcome},
      result = ${sql.json(result as Parameters<typeof sql.json>[0])}
    where id = ${id}`;
  await sql`delete from agentgate_maintenance_runs where started_at < now() - interval '30 days'`;
}

/** BEGIN … COMMIT on `sql`, which must be one connection (a reserved one): see maintenance-pass.ts. */
async function inTransaction<T>(sql: Sql, fn: () => Promise<T>): Promise<T> {
  await sql`begin`;
  try {
    const out = await fn();
    await sql`commit`;
    return out;
  } catch (err) {
    await sql`rollback`.catch(() => {});
    throw err;
  }
}
