// SPEC §6: the rule an agent's frame must pass, and the object built from a cached identity (the
// fast path). Coder's dbauthz.WithWorkspaceRBAC: never with ACLs, never the dormant type, and an
// empty or nil owner/org makes the object unusable (so the caller falls back to the slow path).
import type { Subject, WorkspaceIdentity } from '../domain.js';

export interface WorkspaceObject {
  type: 'workspace' | 'workspace_dormant';
  id: string;
  ownerId: string;
  orgId: string;
}

const NIL_UUID = '00000000-0000-0000-0000-000000000000';
const usable = (id: string) => id !== '' && id !== NIL_UUID;

/** The agent may update the object iff it is its own, live workspace. */
export function mayUpdate(subject: Subject, obj: WorkspaceObject): boolean {
  return (
    obj.type === 'workspace' &&
    obj.id === subject.workspaceId &&
    obj.ownerId === subject.ownerId &&
    obj.orgId === subject.organizationId &&
    usable(obj.ownerId) &&
    usable(obj.orgId)
  );
}

/** The fast-path object: built from the cached identity, so it is never dormant and carries no ACL. */
export function objectFromIdentity(identity: WorkspaceIdentity): WorkspaceObject {
  return { type: 'workspace', id: identity.id, ownerId: identity.ownerId, orgId: identity.organizationId };
}
