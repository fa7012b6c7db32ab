// Reads of the test database. Timestamps come back as epoch milliseconds computed in SQL, and the
// zero time as null, so that year 0001 is never handed to JavaScript's Date parser.
import type { Sql } from '../../gateway/src/store/db.ts';
import { ZERO_TIME } from './db-fixtures.ts';

const ms = (col: string) => `case when ${col} is null or ${col} = '${ZERO_TIME}' then null
  else (extract(epoch from ${col}) * 1000)::float8 end`;

export interface BuildRow {
  deadlineMs: number | null;
  maxDeadlineMs: number | null;
  /** deadline as PostgreSQL text, e.g. '0001-01-01 00:00:00+00'. */
  deadlineText: string;
}

export async function readBuild(sql: Sql, buildId: string): Promise<BuildRow> {
  const [r] = await sql.unsafe<{ deadline_ms: number | null; max_deadline_ms: number | null; deadline_text: string }[]>(
    `select ${ms('deadline')} as deadline_ms, ${ms('max_deadline')} as max_deadline_ms,
            to_char(deadline at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as deadline_text
     from workspace_builds where id = $1`,
    [buildId],
  );
  if (!r) throw new Error(`no build ${buildId}`);
  return { deadlineMs: r.deadline_ms, maxDeadlineMs: r.max_deadline_ms, deadlineText: r.deadline_text };
}

export interface AgentRow {
  firstConnectedAtMs: number | null;
  lastConnectedAtMs: number | null;
  disconnectedAtMs: number | null;
}

export async function readAgent(sql: Sql, agentId: string): Promise<AgentRow> {
  const [r] = await sql.unsafe<{ f: number | null; l: number | null; d: number | null }[]>(
    `select ${ms('first_connected_at')} as f, ${ms('last_connected_at')} as l, ${ms('disconnected_at')} as d
     from workspace_agents where id = $1`,
    [agentId],
  );
  if (!r) throw new Error(`no agent ${agentId}`);
  return { firstConnectedAtMs: r.f, lastConnectedAtMs: r.l, disconnectedAtMs: r.d };
}

/** workspaces.last_used_at in epoch ms, or null while it is the zero time. */
export async function readLastUsedAt(sql: Sql, workspaceId: string): Promise<number | null> {
  const [r] = await sql.unsafe<{ v: number | null }[]>(
    `select ${ms('last_used_at')} as v from workspaces where id = $1`,
    [workspaceId],
  );
  if (!r) throw new Error(`no workspace ${workspaceId}`);
  return r.v;
}

export interface MetadataRow {
  key: string;
  value: string;
  error: string;
  collectedAtMs: number | null;
}

/** The agent's metadata rows, keyed by key. */
export async function readMetadata(sql: Sql, agentId: string): Promise<Map<string, MetadataRow>> {
  const rows = await sql.unsafe<{ key: string; value: string; error: string; c: number | null }[]>(
    `select key, value, error, ${ms('collected_at')} as c from workspace_agent_metadata where workspace_agent_id = $1`,
    [agentId],
  );
  return new Map(rows.map((r) => [r.key, { key: r.key, value: r.value, error: r.error, collectedAtMs: r.c }]));
}

export interface StatsRow {
  id: string;
  createdAtMs: number;
  user_id: string;
  agent_id: string;
  workspace_id: string;
  template_id: string;
  connections_by_proto: Record<string, unknown>;
  /** jsonb_typeof of every value in connections_by_proto. */
  proto_types: Record<string, string>;
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

/** Every stats row of the agent, oldest first. */
export async function readStats(sql: Sql, agentId: string): Promise<StatsRow[]> {
  return sql.unsafe<StatsRow[]>(
    `select s.id, (extract(epoch from s.created_at) * 1000)::float8 as "createdAtMs", s.user_id, s.agent_id,
            s.workspace_id, s.template_id, s.connections_by_proto,
            coalesce((select jsonb_object_agg(k, jsonb_typeof(v)) from jsonb_each(s.connections_by_proto) as e(k, v)),
                     '{}'::jsonb) as proto_types,
            s.connection_count, s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes, s.connection_median_latency_ms,
            s.session_count_vscode, s.session_count_jetbrains, s.session_count_reconnecting_pty,
            s.session_count_ssh, s.usage
     from workspace_agent_stats s where s.agent_id = $1 order by s.created_at, s.id`,
    [agentId],
  );
}

export async function countStats(sql: Sql, agentId: string): Promise<number> {
  const [r] = await sql<
    { n: number }[]
  >`select count(*)::int as n from workspace_agent_stats where agent_id = ${agentId}`;
  return r!.n;
}
