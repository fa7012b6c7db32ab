// SPEC §3: the checks before an agent's upgrade, in the order of the SPEC table, with one query that
// loads the agent, its workspace (expanded) and the latest build. Answers the row or a refusal.
// Unauthenticated traffic is bounded: at most 64 token checks at once (beyond: 503 at once, with no
// query); a check that takes too long is cancelled on the server and answered 503 — a slow check is
// not by itself a database failure (only the health probe or a failed query marks the database down).
import type { IncomingMessage } from 'node:http';
import type { AgentWorkspaceRow } from '../domain.js';
import type { DbHealth } from '../ops/db-health.js';
import type { GatewayMetrics } from '../ops/metrics.js';
import { TimeoutError, withTimeout } from '../ops/timeout.js';
import { isRetryable } from '../store/errors.js';
import type { Db } from '../store/db.js';
import { agentByToken } from '../store/lookups.js';
import type { Refusal } from './responses.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** How long the token check may wait for the database before answering 503 (SPEC §3: within 3 s). */
const AUTH_TIMEOUT_MS = 2500;
/** Token checks running at once per process (SPEC §3). */
const MAX_TOKEN_CHECKS = 64;

/** An authenticated agent: the row of the token check and the token it used. */
export interface Accepted {
  row: AgentWorkspaceRow;
  token: string;
}

export interface AgentAuthDeps {
  db: Db;
  health: DbHealth;
  metrics: GatewayMetrics;
  /** True once the gateway drains (SPEC §7): new upgrades answer 503. */
  draining(): boolean;
}

const draining: Refusal = { status: 503, reason: 'draining', message: 'the gateway is shutting down', retryAfterS: 5 };
const databaseDown: Refusal = {
  status: 503,
  reason: 'database_down',
  message: 'the database is unreachable',
  retryAfterS: 5,
};
const busy: Refusal = {
  status: 503,
  reason: 'token_checks_full',
  message: 'too many token checks at once',
  retryAfterS: 1,
};
const slow: Refusal = {
  status: 503,
  reason: 'token_check_timeout',
  message: 'the token check took too long',
  retryAfterS: 1,
};

/** The agent token of a request: `Coder-Session-Token: <token>` or `Authorization: Bearer <token>`. */
function tokenOf(req: IncomingMessage): string | undefined {
  const direct = req.headers['coder-session-token'];
  if (typeof direct === 'string' && direct.trim() !== '') return direct.trim();
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return m ? m[1]!.trim() : undefined;
}

export class AgentAuth {
  private checking = 0;

  constructor(private readonly deps: AgentAuthDeps) {}

  async check(req: IncomingMessage): Promise<Accepted | Refusal> {
    const { deps } = this;
    if (deps.draining()) return draining;
    if (!deps.health.up) return databaseDown;
    const sent = tokenOf(req);
    if (!sent)
      return {
        status: 401,
        reason: 'unauthorized',
        message: 'missing agent token (Coder-Session-Token or Authorization: Bearer)',
      };
    if (!UUID_RE.test(sent)) return { status: 401, reason: 'unauthorized', message: 'agent token is not a valid UUID' };
    // Tokens are UUIDs, compared case-insensitively (SPEC §3): the session keeps the canonical form.
    const token = sent.toLowerCase();
    if (this.checking >= MAX_TOKEN_CHECKS) return busy;
    this.checking++;
    deps.metrics.lookup('connect');
    const ac = new AbortController();
    let row: AgentWorkspaceRow | undefined;
    try {
      row = await withTimeout(deps.db.query(agentByToken, token, ac.signal), AUTH_TIMEOUT_MS);
    } catch (err) {
      if (err instanceof TimeoutError) {
        ac.abort(); // cancelled on the server: it does not hold a pool connection that sessions need
        return slow;
      }
      if (isRetryable(err)) deps.health.failed(err);
      return databaseDown;
    } finally {
      this.checking--;
    }
    if (!row) return { status: 401, reason: 'unauthorized', message: 'unknown agent token' };
    if (row.agentDeleted) return { status: 401, reason: 'unauthorized', message: 'the agent has been deleted' };
    if (row.workspace.deleted)
      return { status: 401, reason: 'unauthorized', message: 'the workspace has been deleted' };
    if (row.workspace.dormant) return { status: 401, reason: 'unauthorized', message: 'the workspace is dormant' };
    if (row.buildNumber !== row.latestBuildNumber) {
      return { status: 403, reason: 'forbidden', message: "the agent does not belong to the workspace's latest build" };
    }
    if (deps.draining()) return draining;
    return { row, token };
  }
}
