// The group-commit statements of SPEC §4 and §7: one statement per batch, with the batch passed as
// one JSON text or as arrays to `unnest`, and NOTIFYs sent from the same statement. Timestamps
// travel as RFC 3339 text cast in SQL (`::text::timestamptz`): a parameter that PostgreSQL types as
// timestamptz goes through JS Date in postgres.js, which reads year 0001 as 2001.
import { cancellable, type Sql } from './db.js';
import type { ActivityRow, AgentConnectionRow, MetadataRow, StatsRow } from './store.js';

/** NOTIFY payloads must stay under 8000 bytes; split an agent's keys into chunks below this. */
const NOTIFY_KEYS_CHUNK_BYTES = 6000;

/**
 * SPEC §4/§7: one statement per batch; ids and created_at are the gateway's, set once per frame, so
 * a retried batch carries the same (id, created_at) keys (SPEC §2) and is idempotent.
 */
export async function insertStatsBatch(sql: Sql, rows: StatsRow[], signal?: AbortSignal): Promise<void> {
  // The batch travels as one JSON text (JSON.stringify is native; per-element array escaping in
  // postgres.js cost more). `::text::json` keeps postgres.js from encoding the string again.
  await cancellable(
    signal,
    sql`
    insert into workspace_agent_stats (
      id, created_at, user_id, agent_id, workspace_id, template_id, connections_by_proto, connection_count,
      rx_packets, rx_bytes, tx_packets, tx_bytes, connection_median_latency_ms,
      session_count_vscode, session_count_jetbrains, session_count_reconnecting_pty, session_count_ssh)
    select id, "createdAt", "userId", "agentId", "workspaceId", "templateId", "connectionsByProto"::jsonb,
           "connectionCount", "rxPackets", "rxBytes", "txPackets", "txBytes", "connectionMedianLatencyMs",
           "sessionCountVscode", "sessionCountJetbrains", "sessionCountReconnectingPty", "sessionCountSsh"
    from json_to_recordset(${JSON.stringify(rows)}::text::json) as r(
      id uuid, "createdAt" timestamptz, "userId" uuid, "agentId" uuid, "workspaceId" uuid, "templateId" uuid,
      "connectionsByProto" text, "connectionCount" bigint, "rxPackets" bigint, "rxBytes" bigint,
      "txPackets" bigint, "txBytes" bigint, "connectionMedianLatencyMs" float8, "sessionCountVscode" bigint,
      "sessionCountJetbrains" bigint, "sessionCountReconnectingPty" bigint, "sessionCountSsh" bigint)
    on conflict (id, created_at) do nothing`,
  );
}

/**
 * SPEC §4 BatchUpdateMetadata, for a whole batch in one statement: only declared keys are updated
 * (the join), then one NOTIFY per agent (per chunk of keys) lists the keys written. Payloads are
 * compact JSON, as Coder's publishers write them.
 */
export async function updateMetadataBatch(
  sql: Sql,
  rows: MetadataRow[],
  collectedAt: string,
  signal?: AbortSignal,
): Promise<number> {
  // Assign each row to a notification chunk so that no payload reaches the 8000-byte limit.
  const input: (MetadataRow & { chunk: number })[] = [];
  const budget = new Map<string, { chunk: number; bytes: number }>();
  for (const r of rows) {
    let b = budget.get(r.agentId);
    if (!b) {
      b = { chunk: 0, bytes: 0 };
      budget.set(r.agentId, b);
    }
    const size = Buffer.byteLength(JSON.stringify(r.key)) + 1;
    if (b.bytes + size > NOTIFY_KEYS_CHUNK_BYTES) {
      b.chunk++;
      b.bytes = 0;
    }
    b.bytes += size;
    input.push({ agentId: r.agentId, key: r.key, value: r.value, error: r.error, chunk: b.chunk });
  }
  const [result] = await cancellable(
    signal,
    sql<{ written: number }[]>`
    with input as (
      select * from json_to_recordset(${JSON.stringify(input)}::text::json)
        as i("agentId" uuid, key text, value text, error text, chunk int)
    ), updated as (
      update workspace_agent_metadata m
      set value = i.value, error = i.error, collected_at = ${collectedAt}::text::timestamptz
      from input i
      where m.workspace_agent_id = i."agentId" and m.key = i.key
      returning m.workspace_agent_id as agent_id, m.key::text as key, i.chunk
    ), notified as (
      select pg_notify('workspace_agent_metadata:' || agent_id,
                       '{"collected_at":' || to_json(${collectedAt}::text)::text
                       || ',"keys":[' || string_agg(to_json(key)::text, ',') || ']}')
      from updated group by agent_id, chunk
    )
    select (select count(*) from updated)::int as written, (select count(*) from notified)::int as notified`,
  );
  return result?.written ?? 0;
}

/**
 * SPEC §4 activity: the autostart-aware deadline bump of each workspace's latest start build
 * (never decreasing, capped by a set max_deadline), and one stats_update NOTIFY per workspace.
 */
export async function bumpAndNotifyActivity(sql: Sql, rows: ActivityRow[]): Promise<void> {
  const bump = rows.filter((r) => r.bump);
  await sql`
    with input as (
      select * from unnest(${bump.map((r) => r.workspaceId)}::uuid[], ${bump.map((r) => r.nextAutostart)}::text[]::timestamptz[])
        as i(workspace_id, next_autostart)
    ), latest as (
      select distinct on (b.workspace_id) b.id, b.workspace_id, b.transition, b.deadline, b.max_deadline, b.job_id
      from workspace_builds b
      where b.workspace_id in (select workspace_id from input)
      order by b.workspace_id, b.build_number desc
    ), calc as (
      select l.id, l.deadline, l.max_deadline,
             case when i.next_autostart > now()
                       and i.next_autostart < now() + make_interval(secs => t.activity_bump / 1e9)
                  then (i.next_autostart - now())
                       + make_interval(secs => (case when t.allow_user_autostop then coalesce(w.ttl, 0)
                                                    else t.default_ttl end) / 1e9)
                  else make_interval(secs => t.activity_bump / 1e9) end as bump
      from latest l
      join input i on i.workspace_id = l.workspace_id
      join provisioner_jobs j on j.id = l.job_id
      join workspaces w on w.id = l.workspace_id
      join templates t on t.id = w.template_id
      where l.transition = 'start' and j.completed_at is not null and l.deadline <> '0001-01-01 00:00:00+00'::timestamptz
    ), target as (
      select id, deadline,
             case when max_deadline <> '0001-01-01 00:00:00+00'::timestamptz then least(now() + bump, max_deadline)
                  else now() + bump end as new_deadline
      from calc
      where bump > interval '0' and deadline - bump * 0.95 < now()
    ), bumped as (
      update workspace_builds b set deadline = t.new_deadline, updated_at = now()
      from target t
      where b.id = t.id and t.new_deadline > t.deadline
      returning b.id
    ), notified as (
      select pg_notify('workspace_owner:' || owner_id,
                       '{"kind":"stats_update","workspace_id":"' || workspace_id || '"}')
      from unnest(${rows.map((r) => r.workspaceId)}::uuid[], ${rows.map((r) => r.ownerId)}::uuid[])
        as o(workspace_id, owner_id)
    )
    select (select count(*) from bumped) as bumped, (select count(*) from notified) as notified`;
}

export async function markWorkspacesUsed(sql: Sql, workspaceIds: string[], at: string): Promise<void> {
  await sql`
    update workspaces set last_used_at = ${at}::text::timestamptz
    where id = any(${workspaceIds}::uuid[]) and last_used_at < ${at}::text::timestamptz`;
}

export async function updateAgentConnections(sql: Sql, rows: AgentConnectionRow[]): Promise<void> {
  await sql`
    update workspace_agents a set
      first_connected_at = coalesce(a.first_connected_at, u.connected_at),
      last_connected_at = coalesce(u.connected_at, a.last_connected_at),
      disconnected_at = case when u.disconnected_at is not null then u.disconnected_at
                             when u.connected_at is not null then null
                             else a.disconnected_at end,
      updated_at = now()
    from unnest(${rows.map((r) => r.agentId)}::uuid[], ${rows.map((r) => r.connectedAt)}::text[]::timestamptz[],
                ${rows.map((r) => r.disconnectedAt)}::text[]::timestamptz[]) as u(id, connected_at, disconnected_at)
    where a.id = u.id`;
}
