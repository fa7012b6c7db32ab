// Raw stats rows for the data-lifecycle tests (SPEC §2, §10): generated with every column, inserted
// as a provisioning system or an old gateway would, and the partitions and rollup read back.
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../gateway/src/store/db.ts';

export interface RawStats {
  id: string;
  created_at: string;
  user_id: string;
  agent_id: string;
  workspace_id: string;
  template_id: string;
  connection_count: number;
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  connection_median_latency_ms: number;
  session_count_vscode: number;
  session_count_jetbrains: number;
  session_count_reconnecting_pty: number;
  session_count_ssh: number;
  usage: boolean;
}

/** A deterministic pseudo-random source (mulberry32), so that a failure can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Ids {
  agent_id: string;
  workspace_id: string;
  template_id: string;
  user_id: string;
}

export function randomIds(): Ids {
  return { agent_id: randomUUID(), workspace_id: randomUUID(), template_id: randomUUID(), user_id: randomUUID() };
}

/** `n` rows of one agent on UTC `day`, at increasing times, with values from `rnd`. */
export function rowsOn(day: string, ids: Ids, n: number, rnd: () => number): RawStats[] {
  const int = (max: number) => Math.floor(rnd() * max);
  return Array.from({ length: n }, (_, i) => ({
    id: randomUUID(),
    // Spread over the day, never past 23:59:59.
    created_at: new Date(Date.parse(`${day}T00:00:00Z`) + Math.floor(((i + rnd()) / n) * 86_399_000)).toISOString(),
    ...ids,
    connection_count: int(5),
    rx_packets: int(10_000),
    rx_bytes: int(1e9),
    tx_packets: int(10_000),
    tx_bytes: int(1e9),
    connection_median_latency_ms: rnd() < 0.3 ? -1 : Math.round(rnd() * 100_000) / 1000,
    session_count_vscode: int(3),
    session_count_jetbrains: int(2),
    session_count_reconnecting_pty: int(2),
    session_count_ssh: int(4),
    usage: rnd() < 0.5,
  }));
}

export async function insertRaw(sql: Sql, rows: RawStats[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 1000) {
    await sql`insert into workspace_agent_stats ${sql(rows.slice(i, i + 1000) as never)}`;
  }
}

/** The database's UTC day, `offset` days away. */
export async function dbDay(sql: Sql, offset = 0): Promise<string> {
  const [r] = await sql<{ day: string }[]>`select (((now() at time zone 'UTC')::date + ${offset}::int))::text as day`;
  return r!.day;
}

export const partitionOf = (day: string) => `workspace_agent_stats_p${day.replaceAll('-', '')}`;

export async function partitions(sql: Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select c.relname::text as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'workspace_agent_stats'::regclass order by 1`;
  return rows.map((r) => r.name);
}

export interface DailyRow extends Ids {
  day: string;
  reports: number;
  usage_reports: number;
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  connection_count_max: number;
  connection_median_latency_ms: number;
  session_count_vscode_max: number;
  session_count_jetbrains_max: number;
  session_count_reconnecting_pty_max: number;
  session_count_ssh_max: number;
}

export async function readDaily(sql: Sql, day: string): Promise<DailyRow[]> {
  const rows = await sql<DailyRow[]>`
    select day::text, agent_id::text, workspace_id::text, template_id::text, user_id::text, reports, usage_reports,
           rx_packets, rx_bytes, tx_packets, tx_bytes, connection_count_max, connection_median_latency_ms,
           session_count_vscode_max, session_count_jetbrains_max, session_count_reconnecting_pty_max,
           session_count_ssh_max
    from workspace_agent_stats_daily where day = ${day}::date order by agent_id`;
  return [...rows];
}

/** SPEC §2's rollup of `rows` (one agent-day each), computed here, independently of the SQL. */
export function expectedDaily(day: string, rows: RawStats[]): DailyRow[] {
  const byAgent = new Map<string, RawStats[]>();
  for (const r of rows) byAgent.set(r.agent_id, [...(byAgent.get(r.agent_id) ?? []), r]);
  const sum = (rs: RawStats[], k: keyof RawStats) => rs.reduce((a, r) => a + (r[k] as number), 0);
  const max = (rs: RawStats[], k: keyof RawStats) => Math.max(...rs.map((r) => r[k] as number));
  return [...byAgent.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([agent, rs]) => {
      const latest = [...rs].sort((a, b) => (a.created_at < b.created_at ? 1 : -1))[0]!;
      const lat = rs.map((r) => r.connection_median_latency_ms).filter((v) => v >= 0);
      return {
        day,
        agent_id: agent,
        workspace_id: latest.workspace_id,
        template_id: latest.template_id,
        user_id: latest.user_id,
        reports: rs.length,
        usage_reports: rs.filter((r) => r.usage).length,
        rx_packets: sum(rs, 'rx_packets'),
        rx_bytes: sum(rs, 'rx_bytes'),
        tx_packets: sum(rs, 'tx_packets'),
        tx_bytes: sum(rs, 'tx_bytes'),
        connection_count_max: max(rs, 'connection_count'),
        connection_median_latency_ms: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : -1,
        session_count_vscode_max: max(rs, 'session_count_vscode'),
        session_count_jetbrains_max: max(rs, 'session_count_jetbrains'),
        session_count_reconnecting_pty_max: max(rs, 'session_count_reconnecting_pty'),
        session_count_ssh_max: max(rs, 'session_count_ssh'),
      };
    });
}
