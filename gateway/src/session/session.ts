// One session per socket (SPEC §5): the subject, the cached workspace identity, its refresh timer,
// and authorization of frames against them (SPEC §6). The session knows nothing of sockets or JSON:
// the connection (rpc/connection.ts) owns the socket and is told to close through onRevoke.
import type { RefreshOutcome } from '@agentgate/shared';
import { mayUpdate, objectFromIdentity } from '../authz/authorize.js';
import {
  type AgentWorkspaceRow,
  identityOf,
  isPrebuildOwner,
  type RefreshRow,
  type RevokeReason,
  revocationOf,
  type Subject,
  type WorkspaceIdentity,
  type WorkspaceRow,
} from '../domain.js';
import type { AgentMetrics } from '../ops/agent-metrics.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { GatewayMetrics } from '../ops/metrics.js';
import type { Db } from '../store/db.js';
import { workspaceByAgentId } from '../store/lookups.js';
import { IdentityCache } from './identity-cache.js';
import type { RefreshBatcher } from './refresh-batcher.js';
import { RefreshScheduler } from './refresh-scheduler.js';
import type { SessionRegistry } from './registry.js';

export interface AgentConnectionEvent {
  connectedAt: string | null;
  disconnectedAt: string | null;
}

export interface SessionDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  metrics: GatewayMetrics;
  agentMetrics: AgentMetrics;
  refreshBatcher: RefreshBatcher;
  registry: SessionRegistry<Session>;
  /** Group-committed connection timestamps (first/last_connected_at, disconnected_at). */
  recordConnection(agentId: string, event: AgentConnectionEvent): void;
  cacheEnabled: boolean;
  refreshIntervalMs: number;
  random?: () => number;
  /** Told of every session once it is registered (SPEC §8: a change notified during its connect). */
  onStart?: (session: Session) => void;
}

let nextSessionId = 1;

export class Session {
  readonly id = nextSessionId++;
  readonly connectedAt: number;
  subject: Subject;
  readonly identity = new IdentityCache();
  /**
   * The identity last loaded, whether cached or not (a prebuild's, or with the cache off): the names
   * the agent's metric series carry, compared on each load to tell a rename.
   */
  loaded: WorkspaceIdentity;
  lastRefreshAt: number | undefined;
  lastRefreshOutcome: RefreshOutcome = 'none';
  closed = false;
  revoked: RevokeReason | undefined;
  /** Set by the connection: closes the socket with 4501. */
  onRevoke: ((reason: RevokeReason) => void) | undefined;
  private readonly scheduler: RefreshScheduler;
  private slowPath: Promise<WorkspaceIdentity | null> | undefined;
  /** The row the last refresh applied. */
  private lastRow: RefreshRow | undefined;
  /** Lower case: tokens are UUIDs, compared case-insensitively (SPEC §3). */
  private readonly token: string;

  constructor(
    private readonly deps: SessionDeps,
    row: AgentWorkspaceRow,
    /** The token this session authenticated with; a changed token revokes the session. */
    token: string,
  ) {
    this.token = token.toLowerCase();
    this.scheduler = new RefreshScheduler(
      deps.clock,
      {
        intervalMs: deps.refreshIntervalMs,
        periodic: deps.cacheEnabled,
        ...(deps.random ? { random: deps.random } : {}),
      },
      (urgent) => this.refresh(urgent),
    );
    this.connectedAt = deps.clock.now();
    const ws = row.workspace;
    this.subject = {
      agentId: row.agentId,
      agentName: row.agentName,
      workspaceId: ws.id,
      ownerId: ws.ownerId,
      organizationId: ws.organizationId,
      templateId: ws.templateId,
    };
    this.loaded = identityOf(ws);
    // Connect: the identity comes from the row of the token check, with no second query.
    if (deps.cacheEnabled && !isPrebuildOwner(ws.ownerId)) this.identity.update(this.loaded);
  }

  get prebuild(): boolean {
    return isPrebuildOwner(this.subject.ownerId);
  }

  /** Registers the session, records the connection, and arms the refresh timer. */
  start(): void {
    const { deps } = this;
    deps.registry.add(this);
    deps.recordConnection(this.subject.agentId, {
      connectedAt: new Date(this.connectedAt).toISOString(),
      disconnectedAt: null,
    });
    this.scheduler.start();
    deps.onStart?.(this);
  }

  /**
   * SPEC §6. Fast path: the cached identity passes the rule with no database read. Otherwise the
   * slow path loads the workspace by agent id. Resolves to the identity the frame is labelled with,
   * or null when denied (then `revoked` says if terminal).
   */
  async authorize(): Promise<WorkspaceIdentity | null> {
    const { deps } = this;
    // Revoked (its socket is closing with 4501) or closed: nothing more is authorized.
    if (this.revoked !== undefined || this.closed) return null;
    if (deps.cacheEnabled) {
      const id = this.identity.get();
      if (id !== undefined && mayUpdate(this.subject, objectFromIdentity(id))) {
        deps.metrics.cacheHit.inc();
        return id;
      }
    }
    deps.metrics.cacheMiss.inc();
    // Concurrent misses of one session share a lookup, except with the cache off, where every
    // frame takes the slow path by definition.
    if (deps.cacheEnabled && this.slowPath) return this.slowPath;
    const p = this.loadSlowPath();
    if (deps.cacheEnabled) {
      this.slowPath = p;
      const clear = () => {
        if (this.slowPath === p) this.slowPath = undefined;
      };
      p.then(clear, clear);
    }
    return p;
  }

  private async loadSlowPath(): Promise<WorkspaceIdentity | null> {
    const { deps } = this;
    deps.metrics.lookup('fallback');
    const row = await deps.db.query(workspaceByAgentId, this.subject.agentId);
    if (this.closed) return null;
    const reason = revocationOf(
      this.token,
      row && { deleted: row.agentDeleted, authToken: row.authToken },
      row?.workspace,
    );
    if (reason) {
      this.revoke(reason);
      return null;
    }
    const ws = row!.workspace;
    this.apply(ws);
    const identity = identityOf(ws);
    return mayUpdate(this.subject, objectFromIdentity(identity)) ? identity : null;
  }

  /**
   * One refresh (SPEC §5): `urgent` when pushed (SPEC §8), so that its batched read does not wait a
   * timer refresh's longer window. Resolves false on a database error so the scheduler backs off.
   */
  async refresh(urgent = false): Promise<boolean> {
    const { deps } = this;
    if (this.closed) return true;
    let row: Awaited<ReturnType<RefreshBatcher['load']>>;
    try {
      row = await deps.refreshBatcher.load(this.subject.agentId, this.subject.workspaceId, () => !this.closed, urgent);
    } catch (err) {
      if (this.closed) return true;
      this.identity.clear();
      this.lastRefreshAt = deps.clock.now();
      this.lastRefreshOutcome = 'error';
      deps.metrics.refreshOutcomes.labels('error').inc();
      deps.log.warn(
        { agentId: this.subject.agentId, workspaceId: this.subject.workspaceId, err: (err as Error).message },
        'workspace refresh failed; identity cleared',
      );
      return false;
    }
    if (this.closed) return true;
    // Two refreshes of this session that joined one batched read (a NOTIFY during a resync) share
    // its row: it is applied once, so the outcome says what that read changed.
    if (row !== undefined && row === this.lastRow) return true;
    this.lastRow = row;
    this.lastRefreshAt = deps.clock.now();
    const reason = revocationOf(this.token, row?.agent, row?.workspace);
    if (reason) {
      deps.metrics.refreshOutcomes.labels('revoked').inc();
      this.revoke(reason);
      return true;
    }
    const outcome = this.apply(row!.workspace!);
    this.lastRefreshOutcome = outcome;
    deps.metrics.refreshOutcomes.labels(outcome).inc();
    return true;
  }

  /** Applies a loaded workspace to the subject and (unless a prebuild or the cache is off) the identity. */
  private apply(ws: WorkspaceRow): 'changed' | 'unchanged' | 'prebuild' {
    const { deps } = this;
    const next = identityOf(ws);
    const s = this.subject;
    const subjectChanged =
      s.workspaceId !== ws.id ||
      s.ownerId !== ws.ownerId ||
      s.organizationId !== ws.organizationId ||
      s.templateId !== ws.templateId;
    const labelsChanged =
      this.loaded.name !== next.name ||
      this.loaded.ownerUsername !== next.ownerUsername ||
      this.loaded.templateName !== next.templateName;
    this.loaded = next;
    if (subjectChanged) {
      this.subject = {
        ...s,
        workspaceId: ws.id,
        ownerId: ws.ownerId,
        organizationId: ws.organizationId,
        templateId: ws.templateId,
      };
      deps.registry.reindex(this);
    }
    if (labelsChanged || subjectChanged) deps.agentMetrics.forget(s.agentId);
    if (isPrebuildOwner(ws.ownerId)) {
      this.identity.clear();
      return 'prebuild';
    }
    if (!deps.cacheEnabled) return subjectChanged || labelsChanged ? 'changed' : 'unchanged';
    const changed = this.identity.update(next);
    if (changed) {
      deps.log.debug({ agentId: s.agentId, workspaceId: ws.id }, 'workspace identity changed');
      return 'changed';
    }
    return 'unchanged';
  }

  private revoke(reason: RevokeReason): void {
    if (this.revoked) return;
    this.revoked = reason;
    this.identity.clear();
    this.scheduler.stop();
    this.deps.log.info({ agentId: this.subject.agentId, reason }, 'session no longer authorized');
    this.onRevoke?.(reason);
  }

  /** SPEC §5 close: stop the timer, clear the identity, record disconnected_at, leave every index. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.scheduler.stop();
    this.identity.clear();
    const { deps } = this;
    deps.registry.delete(this);
    deps.recordConnection(this.subject.agentId, {
      connectedAt: null,
      disconnectedAt: new Date(deps.clock.now()).toISOString(),
    });
  }

  /**
   * Refresh `delayMs` from now, or sooner if a refresh is already due sooner (SPEC §8: a NOTIFY
   * named this session, or a resync), through the batched read; with the cache off too, so that a
   * revocation closes the socket within 1 s.
   */
  refreshIn(delayMs: number): void {
    if (this.closed || this.revoked !== undefined) return;
    this.scheduler.push(delayMs);
  }

  /** A refresh is due (its timer is pending). */
  get refreshArmed(): boolean {
    return this.scheduler.armed;
  }
}
