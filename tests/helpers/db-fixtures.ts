// Rows inserted into the test database with only the columns of SPEC §2: one workspace with its
// build, resource and agent (createFixture), and the changes a test makes to them afterwards
// (newer build, rename, claim, delete, dormant, token rotation).
import { randomBytes, randomUUID } from 'node:crypto';
import { PREBUILDS_OWNER_ID } from '@agentgate/shared';
import type { Sql } from '../../gateway/src/store/db.ts';
import { HOUR_NS, MINUTE_MS } from './time.ts';

/** Go's zero time: what the schema stores for an unset timestamp. */
export const ZERO_TIME = '0001-01-01 00:00:00+00';

/** A short unique suffix for names that must be unique (org name, username). */
export function uniq(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface DbFixtureOptions {
  /** Reuse an organization instead of creating one. */
  orgId?: string;
  /** Owner of the workspace: an existing user id. Default: a new user. */
  ownerId?: string;
  /** Owner = the prebuilds system user (an unclaimed prebuild). */
  prebuild?: boolean;
  /** Reuse a template instead of creating one (the template options are then ignored). */
  templateId?: string;
  username?: string;
  templateName?: string;
  workspaceName?: string;
  agentName?: string;
  autostartSchedule?: string | null;
  /** workspaces.ttl in nanoseconds (null = unset). */
  ttlNs?: number | null;
  /** templates.activity_bump in nanoseconds (default 1 h). */
  activityBumpNs?: number;
  /** templates.default_ttl in nanoseconds (default 0). */
  defaultTtlNs?: number;
  allowUserAutostop?: boolean;
  transition?: 'start' | 'stop' | 'delete';
  /** provisioner_jobs.completed_at; null = not completed. Default: one minute ago. */
  jobCompletedAt?: Date | null;
  /** workspace_builds.deadline; null = the zero time (unset). Default: unset. */
  deadline?: Date | null;
  /** workspace_builds.max_deadline; null = the zero time (unset). Default: unset. */
  maxDeadline?: Date | null;
  /** The agent token (a UUID). Default: random. */
  token?: string;
  /** Declared metadata keys of the agent. */
  metadataKeys?: string[];
  agentDeleted?: boolean;
  workspaceDeleted?: boolean;
  /** workspaces.dormant_at (null = not dormant). */
  dormantAt?: Date | null;
}

export interface DbFixture {
  orgId: string;
  userId: string;
  username: string;
  templateId: string;
  templateName: string;
  workspaceId: string;
  workspaceName: string;
  jobId: string;
  buildId: string;
  resourceId: string;
  agentId: string;
  agentName: string;
  token: string;
  metadataKeys: string[];
}

/** Inserts one org/user/template/workspace/job/build/resource/agent (+ metadata keys). */
export async function createFixture(sql: Sql, o: DbFixtureOptions = {}): Promise<DbFixture> {
  const orgId = o.orgId ?? randomUUID();
  if (!o.orgId) await sql`insert into organizations (id, name) values (${orgId}, ${uniq('org')})`;

  let userId: string;
  let username: string;
  if (o.prebuild) {
    userId = PREBUILDS_OWNER_ID;
    username = 'prebuilds';
  } else if (o.ownerId) {
    userId = o.ownerId;
    const [u] = await sql<{ username: string }[]>`select username from users where id = ${userId}`;
    username = u!.username;
  } else {
    userId = randomUUID();
    username = o.username ?? uniq('user');
    await sql`insert into users (id, username) values (${userId}, ${username})`;
  }

  let templateId: string;
  let templateName: string;
  if (o.templateId) {
    templateId = o.templateId;
    const [t] = await sql<{ name: string }[]>`select name from templates where id = ${templateId}`;
    templateName = t!.name;
  } else {
    templateId = randomUUID();
    templateName = o.templateName ?? uniq('tpl');
    await sql`
      insert into templates (id, organization_id, name, activity_bump, default_ttl, allow_user_autostop)
      values (${templateId}, ${orgId}, ${templateName}, ${o.activityBumpNs ?? HOUR_NS}::bigint,
              ${o.defaultTtlNs ?? 0}::bigint, ${o.allowUserAutostop ?? true})`;
  }

  const workspaceId = randomUUID();
  const workspaceName = o.workspaceName ?? uniq('ws');
  await sql`
    insert into workspaces (id, owner_id, organization_id, template_id, name, deleted, autostart_schedule, ttl, dormant_at)
    values (${workspaceId}, ${userId}, ${orgId}, ${templateId}, ${workspaceName}, ${o.workspaceDeleted ?? false},
            ${o.autostartSchedule ?? null}, ${o.ttlNs ?? null}::bigint, ${o.dormantAt ?? null}::timestamptz)`;

  const jobId = randomUUID();
  const completedAt = o.jobCompletedAt === undefined ? new Date(Date.now() - MINUTE_MS) : o.jobCompletedAt;
  await sql`insert into provisioner_jobs (id, completed_at) values (${jobId}, ${completedAt}::timestamptz)`;

  const buildId = randomUUID();
  await sql`
    insert into workspace_builds (id, workspace_id, build_number, transition, job_id, deadline, max_deadline)
    values (${buildId}, ${workspaceId}, 1, ${o.transition ?? 'start'}, ${jobId},
            ${timeOrZero(o.deadline)}::text::timestamptz, ${timeOrZero(o.maxDeadline)}::text::timestamptz)`;

  const resourceId = randomUUID();
  await sql`insert into workspace_resources (id, job_id, name, type) values (${resourceId}, ${jobId}, 'dev', 'docker_container')`;

  const agentId = randomUUID();
  const agentName = o.agentName ?? uniq('agent');
  const token = o.token ?? randomUUID();
  await sql`
    insert into workspace_agents (id, resource_id, name, auth_token, deleted)
    values (${agentId}, ${resourceId}, ${agentName}, ${token}, ${o.agentDeleted ?? false})`;

  const metadataKeys = o.metadataKeys ?? [];
  for (const key of metadataKeys) {
    await sql`
      insert into workspace_agent_metadata (workspace_agent_id, key, display_name, script, "interval", timeout)
      values (${agentId}, ${key}, ${key}, 'echo hi', 10, 5)`;
  }

  return {
    orgId,
    userId,
    username,
    templateId,
    templateName,
    workspaceId,
    workspaceName,
    jobId,
    buildId,
    resourceId,
    agentId,
    agentName,
    token,
    metadataKeys,
  };
}

// Passed as text: a timestamptz parameter would go through JS Date, which reads year 0001 as 2001.
function timeOrZero(t: Date | null | undefined): string {
  return t ? t.toISOString() : ZERO_TIME;
}

/** Creates a user and returns its id. */
async function createUser(sql: Sql, username = uniq('user')): Promise<string> {
  const id = randomUUID();
  await sql`insert into users (id, username) values (${id}, ${username})`;
  return id;
}

/**
 * Adds build number (latest + 1) to the fixture's workspace, with its own job and, optionally, a
 * resource and agent; after this the fixture's agent no longer belongs to the latest build.
 */
export async function addNewerBuild(
  sql: Sql,
  fx: DbFixture,
  o: { transition?: 'start' | 'stop' | 'delete'; withAgent?: boolean } = {},
): Promise<{ buildId: string; jobId: string; agentId?: string; token?: string }> {
  const jobId = randomUUID();
  await sql`insert into provisioner_jobs (id, completed_at) values (${jobId}, now())`;
  const buildId = randomUUID();
  await sql`
    insert into workspace_builds (id, workspace_id, build_number, transition, job_id)
    select ${buildId}, ${fx.workspaceId}, coalesce(max(build_number), 0) + 1, ${o.transition ?? 'start'}, ${jobId}
    from workspace_builds where workspace_id = ${fx.workspaceId}`;
  if (!o.withAgent) return { buildId, jobId };
  const resourceId = randomUUID();
  await sql`insert into workspace_resources (id, job_id, name, type) values (${resourceId}, ${jobId}, 'dev', 'docker_container')`;
  const agentId = randomUUID();
  const token = randomUUID();
  await sql`insert into workspace_agents (id, resource_id, name, auth_token) values (${agentId}, ${resourceId}, ${uniq('agent')}, ${token})`;
  return { buildId, jobId, agentId, token };
}

export async function renameWorkspace(sql: Sql, workspaceId: string, name: string): Promise<void> {
  await sql`update workspaces set name = ${name}, updated_at = now() where id = ${workspaceId}`;
}

/** Claims a prebuild: sets the owner to a real user (created when not given); returns the owner id. */
export async function claimPrebuild(sql: Sql, workspaceId: string, ownerId?: string): Promise<string> {
  const owner = ownerId ?? (await createUser(sql));
  await sql`update workspaces set owner_id = ${owner}, updated_at = now() where id = ${workspaceId}`;
  return owner;
}

export async function deleteWorkspace(sql: Sql, workspaceId: string): Promise<void> {
  await sql`update workspaces set deleted = true, updated_at = now() where id = ${workspaceId}`;
}

export async function makeDormant(sql: Sql, workspaceId: string): Promise<void> {
  await sql`update workspaces set dormant_at = now(), updated_at = now() where id = ${workspaceId}`;
}

export async function deleteAgent(sql: Sql, agentId: string): Promise<void> {
  await sql`update workspace_agents set deleted = true, updated_at = now() where id = ${agentId}`;
}

/** Gives the agent a new token and returns it. */
export async function rotateToken(sql: Sql, agentId: string): Promise<string> {
  const token = randomUUID();
  await sql`update workspace_agents set auth_token = ${token}, updated_at = now() where id = ${agentId}`;
  return token;
}
