// `GET /debug/sessions` (SPEC §3): what an operator sees of each session — never its token; of its
// cached identity only the names, null when nothing is cached.
import type { DebugSession } from '@agentgate/shared';
import type { Session } from '../session/session.js';

export function describeSession(s: Session): DebugSession {
  const id = s.identity.get();
  return {
    agentId: s.subject.agentId,
    workspaceId: s.subject.workspaceId,
    connectedAt: new Date(s.connectedAt).toISOString(),
    identityCached: id !== undefined,
    lastRefreshAt: s.lastRefreshAt === undefined ? null : new Date(s.lastRefreshAt).toISOString(),
    lastRefreshOutcome: s.lastRefreshOutcome,
    identity:
      id === undefined
        ? null
        : { workspaceName: id.name, ownerUsername: id.ownerUsername, templateName: id.templateName },
  };
}
