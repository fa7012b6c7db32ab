// `GET /debug/sessions` (SPEC §3): what an operator sees of each session — never its token or identity.
import type { DebugSession } from '@agentgate/shared';
import type { Session } from '../session/session.js';

export function describeSession(s: Session): DebugSession {
  return {
    agentId: s.subject.agentId,
    workspaceId: s.subject.workspaceId,
    connectedAt: new Date(s.connectedAt).toISOString(),
    identityCached: s.identity.cached,
    lastRefreshAt: s.lastRefreshAt === undefined ? null : new Date(s.lastRefreshAt).toISOString(),
    lastRefreshOutcome: s.lastRefreshOutcome,
  };
}
