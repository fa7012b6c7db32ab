// The gateway's domain vocabulary (the bottom layer, with ops/ and shared/): who an agent is, the
// workspace identity a session caches (SPEC §5), the rows the store loads, and the prebuild rule.
// Every layer above speaks these types; this module imports nothing of the gateway.
import { PREBUILDS_OWNER_ID } from '@agentgate/shared';

/** Who acts: the agent and the workspace it belongs to (SPEC §5 "subject"). */
export interface Subject {
  agentId: string;
  agentName: string;
  workspaceId: string;
  ownerId: string;
  organizationId: string;
  templateId: string;
}

/** The cached workspace identity of SPEC §5: exactly eight fields, never the ACLs, never dormancy. */
export interface WorkspaceIdentity {
  id: string;
  ownerId: string;
  organizationId: string;
  templateId: string;
  name: string;
  ownerUsername: string;
  templateName: string;
  autostartSchedule: string | null;
}

/** A workspace as loaded (expanded), with what decides whether an agent may still use it. */
export interface WorkspaceRow extends WorkspaceIdentity {
  deleted: boolean;
  dormant: boolean;
}

/** Agent + workspace + build, loaded at the token check and by the slow path (SPEC §3, §6). */
export interface AgentWorkspaceRow {
  agentId: string;
  agentName: string;
  agentDeleted: boolean;
  authToken: string;
  workspace: WorkspaceRow;
  buildNumber: number;
  latestBuildNumber: number;
}

/** One session's refresh read (SPEC §5): the workspace by id and the agent's state. */
export interface RefreshRow {
  agentId: string;
  workspaceId: string;
  /** undefined when the agent row is gone. */
  agent: { deleted: boolean; authToken: string } | undefined;
  /** undefined when the workspace row is gone. */
  workspace: WorkspaceRow | undefined;
}

/** Why a session lost its right to the workspace (close 4501). */
export type RevokeReason =
  | 'agent_gone'
  | 'agent_deleted'
  | 'token_changed'
  | 'workspace_gone'
  | 'workspace_deleted'
  | 'workspace_dormant';

/**
 * Whether a session that authenticated with `token` (lower case) lost its right to the workspace,
 * from the agent and workspace as just loaded (SPEC §5 refresh, §6 slow path): then close 4501.
 */
export function revocationOf(
  token: string,
  agent: { deleted: boolean; authToken: string } | undefined,
  ws: WorkspaceRow | undefined,
): RevokeReason | undefined {
  if (!agent) return 'agent_gone';
  if (agent.deleted) return 'agent_deleted';
  if (agent.authToken.toLowerCase() !== token) return 'token_changed';
  if (!ws) return 'workspace_gone';
  if (ws.deleted) return 'workspace_deleted';
  if (ws.dormant) return 'workspace_dormant';
  return undefined;
}

/** A workspace owned by the prebuilds system user is an unclaimed prebuild (SPEC §2). */
export const isPrebuildOwner = (ownerId: string): boolean => ownerId === PREBUILDS_OWNER_ID;

/** The eight identity fields of a loaded workspace. */
export function identityOf(ws: WorkspaceIdentity): WorkspaceIdentity {
  return {
    id: ws.id,
    ownerId: ws.ownerId,
    organizationId: ws.organizationId,
    templateId: ws.templateId,
    name: ws.name,
    ownerUsername: ws.ownerUsername,
    templateName: ws.templateName,
    autostartSchedule: ws.autostartSchedule,
  };
}
