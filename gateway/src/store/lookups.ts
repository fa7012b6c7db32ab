// The reads of SPEC §3, §5 and §6: the token check, the slow path and the batched refresh, and the
// health probe. Each is one statement; a Db runs it on its pool (db.ts).
import type { AgentWorkspaceRow, RefreshRow, WorkspaceRow } from '../domain.js';
import { cancellable, type Sql } from './db.js';

interface AgentWorkspaceRecord {
  agent_id: string;
  agent_name: string;
  agent_deleted: boolean;
  auth_token: string;
  build_number: number;
  latest_build_number: number;
  id: string;
  owner_id: string;
  organization_id: string;
  template_id: string;
  name: string;
  owner_username: string;
  template_name: string;
  autostart_schedule: string | null;
  deleted: boolean;
  dormant: boolean;
}

type WorkspaceRecord = Omit<
  AgentWorkspaceRecord,
  'agent_id' | 'agent_name' | 'agent_deleted' | 'auth_token' | 'build_number' | 'latest_build_number'
>;

function workspaceFrom(r: WorkspaceRecord): WorkspaceRow {
  return {
    id: r.id,
    ownerId: r.owner_id,
    organizationId: r.organization_id,
    templateId: r.template_id,
    name: r.name,
    ownerUsername: r.owner_username,
    templateName: r.template_name,
    autostartSchedule: r.autostart_schedule,
    deleted: r.deleted,
    dormant: r.dormant,
  };
}

/**
 * Agent → resource → build → workspace (expanded): the one query of the token check (SPEC §3, by
 * token, with the workspace's latest build number) and of the slow path (SPEC §6, by agent id,
 * which needs no latest build: `latest` is then the agent's own build number).
 */
async function agentWorkspace(
  sql: Sql,
  where: ReturnType<Sql>,
  latest: ReturnType<Sql>,
  signal?: AbortSignal,
): Promise<AgentWorkspaceRow | undefined> {
  const [r] = await cancellable(
    signal,
    sql<AgentWorkspaceRecord[]>`
    select a.id as agent_id, a.name as agent_name, a.deleted as agent_deleted, a.auth_token,
           b.build_number,
           ${latest} as latest_build_number,
           w.id, w.owner_id, w.organization_id, w.template_id, w.name, w.owner_username, w.template_name,
           w.autostart_schedule, w.deleted, w.dormant_at is not null as dormant
    from workspace_agents a
    join workspace_resources r on r.id = a.resource_id
    join workspace_builds b on b.job_id = r.job_id
    join workspaces_expanded w on w.id = b.workspace_id
    where ${where}
    order by b.build_number desc
    limit 1`,
  );
  if (!r) return undefined;
  return {
    agentId: r.agent_id,
    agentName: r.agent_name,
    agentDeleted: r.agent_deleted,
    authToken: r.auth_token,
    buildNumber: r.build_number,
    latestBuildNumber: r.latest_build_number,
    workspace: workspaceFrom(r),
  };
}

/**
 * SPEC §3: the agent of a token, its expanded workspace, its build and the latest build number.
 * `signal` cancels the query on the server (a token check that gives up must not hold a connection).
 */
export function agentByToken(sql: Sql, token: string, signal?: AbortSignal): Promise<AgentWorkspaceRow | undefined> {
  return agentWorkspace(
    sql,
    sql`a.auth_token = ${token}::uuid`,
    sql`(select max(lb.build_number) from workspace_builds lb where lb.workspace_id = w.id)`,
    signal,
  );
}

/** SPEC §6 slow path: the same row by agent id. */
export function workspaceByAgentId(sql: Sql, agentId: string): Promise<AgentWorkspaceRow | undefined> {
  return agentWorkspace(sql, sql`a.id = ${agentId}::uuid`, sql`b.build_number`);
}

/** SPEC §5 refresh, batched: `where id = any(...)` for many sessions at once. */
export async function refreshIdentities(
  sql: Sql,
  pairs: { agentId: string; workspaceId: string }[],
): Promise<RefreshRow[]> {
  const rows = await sql<
    (WorkspaceRecord & {
      agent_id: string;
      workspace_id: string;
      agent_found: boolean;
      agent_deleted: boolean | null;
      auth_token: string | null;
      workspace_found: boolean;
    })[]
  >`
    select p.agent_id, p.workspace_id,
           a.id is not null as agent_found, a.deleted as agent_deleted, a.auth_token,
           w.id is not null as workspace_found,
           w.id, w.owner_id, w.organization_id, w.template_id, w.name, w.owner_username, w.template_name,
           w.autostart_schedule, w.deleted, w.dormant_at is not null as dormant
    from unnest(${pairs.map((p) => p.agentId)}::uuid[], ${pairs.map((p) => p.workspaceId)}::uuid[])
           as p(agent_id, workspace_id)
    left join workspace_agents a on a.id = p.agent_id
    left join workspaces_expanded w on w.id = p.workspace_id`;
  return rows.map((r) => ({
    agentId: r.agent_id,
    workspaceId: r.workspace_id,
    agent: r.agent_found ? { deleted: r.agent_deleted === true, authToken: r.auth_token ?? '' } : undefined,
    workspace: r.workspace_found ? workspaceFrom(r) : undefined,
  }));
}

/** The health probe (SPEC §3, §7). */
export async function ping(sql: Sql): Promise<void> {
  await sql`select 1`;
}
