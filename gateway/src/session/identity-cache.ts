// The cached workspace identity of SPEC §5 (Coder's CachedWorkspaceFields): exactly eight fields,
// never the ACLs, never a dormant flag. Empty means "not cached"; a prebuild is never cached.
import type { WorkspaceIdentity } from '../domain.js';

export class IdentityCache {
  private value: WorkspaceIdentity | undefined;

  /** The identity, or undefined when empty. */
  get(): WorkspaceIdentity | undefined {
    return this.value;
  }

  get cached(): boolean {
    return this.value !== undefined;
  }

  /** Replaces the identity; returns whether any field changed. */
  update(next: WorkspaceIdentity): boolean {
    const cur = this.value;
    if (cur && sameIdentity(cur, next)) return false;
    this.value = { ...next };
    return true;
  }

  clear(): void {
    this.value = undefined;
  }
}

export function sameIdentity(a: WorkspaceIdentity, b: WorkspaceIdentity): boolean {
  return (
    a.id === b.id &&
    a.ownerId === b.ownerId &&
    a.organizationId === b.organizationId &&
    a.templateId === b.templateId &&
    a.name === b.name &&
    a.ownerUsername === b.ownerUsername &&
    a.templateName === b.templateName &&
    a.autostartSchedule === b.autostartSchedule
  );
}
