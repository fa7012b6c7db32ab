// An in-memory database for unit tests: agents and workspaces a test can mutate (rename, claim,
// delete, rotate a token), every statement recorded by its name, failures and stalls on demand.
// `db()` is the gateway's Db on it: each statement the gateway runs is answered by the method of
// the same name. Tests assert exactly which queries ran (STYLE: Coder's agentapi tests), not only
// what came back.
import { randomUUID } from 'node:crypto';
import { PREBUILDS_OWNER_ID } from '@agentgate/shared';
import type { AgentWorkspaceRow, RefreshRow, WorkspaceRow } from '../../gateway/src/domain.ts';
import type { Db, Statement } from '../../gateway/src/store/db.ts';
import type { MetadataWrite } from '../../gateway/src/store/metadata.ts';
import type { StatsRow } from '../../gateway/src/store/stats.ts';
import type { ActivityRow, AgentConnectionRow } from '../../gateway/src/store/activity.ts';

const STATEMENTS = [
  'agentByToken',
  'workspaceByAgentId',
  'refreshIdentities',
  'insertStatsBatch',
  'updateMetadataBatch',
  'bumpAndNotifyActivity',
  'markWorkspacesUsed',
  'updateAgentConnections',
  'ping',
] as const;
/** The statements the fake answers, by the name of the gateway's statement function. */
export type StoreMethod = (typeof STATEMENTS)[number];

/** Methods that read a workspace: none of them may run on the fast path. */
const WORKSPACE_READS: readonly StoreMethod[] = ['agentByToken', 'workspaceByAgentId', 'refreshIdentities'];

export interface FakeAgent {
  id: string;
  name: string;
  token: string;
  deleted: boolean;
  workspaceId: string;
}

export interface StoreCall {
  method: StoreMethod;
  args: unknown[];
  /** The (fake) clock's time when the call was made; NaN without a clock. */
  at: number;
}

interface Failure {
  err: unknown;
  /** Remaining failures; Infinity = until heal(). */
  times: number;
  when?: (args: unknown[]) => boolean;
}

export interface FakeFixtureOptions {
  prebuild?: boolean;
  ownerId?: string;
  organizationId?: string;
  templateId?: string;
  name?: string;
  ownerUsername?: string;
  templateName?: string;
  agentName?: string;
  autostartSchedule?: string | null;
  metadataKeys?: string[];
}

export interface FakeFixture {
  /** The agent as created (a copy). */
  agent: FakeAgent;
  /** The workspace as created (a copy). */
  workspace: WorkspaceRow;
  /** The row the token check would load (SPEC §3), without a recorded call. */
  row: AgentWorkspaceRow;
}

/** `{code}` errors as postgres.js raises them. */
export const connectionRefused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
/** The connection broke while a statement ran (postgres.js): its outcome is unknown. */
export const connectionClosed = () =>
  Object.assign(new Error('write CONNECTION_CLOSED 127.0.0.1:5432'), { code: 'CONNECTION_CLOSED' });
export const invalidText = () => Object.assign(new Error('invalid input syntax for type uuid'), { code: '22P02' });

export class FakeStore {
  readonly agents = new Map<string, FakeAgent>();
  readonly workspaces = new Map<string, WorkspaceRow>();
  readonly calls: StoreCall[] = [];
  readonly statsRows: StatsRow[] = [];
  /** agentId → key → stored value (declared keys only). */
  readonly metadata = new Map<string, Map<string, { value: string; error: string; collectedAt: string }>>();
  readonly activity: ActivityRow[] = [];
  readonly used: { workspaceIds: string[]; at: string }[] = [];
  readonly connections: AgentConnectionRow[] = [];
  private readonly failures = new Map<StoreMethod, Failure>();
  private readonly lostAnswers = new Map<StoreMethod, number>();
  private readonly held = new Map<StoreMethod, (() => void)[]>();
  private readonly inFlightNow = new Map<StoreMethod, number>();
  private readonly inFlightMax = new Map<StoreMethod, number>();

  /** `clock` stamps each recorded call with its time (pass the test's FakeClock). */
  constructor(private readonly clock?: { now(): number }) {}

  // ---- test setup ------------------------------------------------------------------------------

  /** Adds a workspace with one agent; the workspace is a prebuild when `prebuild` is set. */
  fixture(opts: FakeFixtureOptions = {}): FakeFixture {
    const workspace: WorkspaceRow = {
      id: randomUUID(),
      ownerId: opts.prebuild ? PREBUILDS_OWNER_ID : (opts.ownerId ?? randomUUID()),
      organizationId: opts.organizationId ?? randomUUID(),
      templateId: opts.templateId ?? randomUUID(),
      name: opts.name ?? 'dev',
      ownerUsername: opts.prebuild ? 'prebuilds' : (opts.ownerUsername ?? 'alice'),
      templateName: opts.templateName ?? 'docker',
      autostartSchedule: opts.autostartSchedule ?? null,
      deleted: false,
      dormant: false,
    };
    const agent: FakeAgent = {
      id: randomUUID(),
      name: opts.agentName ?? 'main',
      token: randomUUID(),
      deleted: false,
      workspaceId: workspace.id,
    };
    this.workspaces.set(workspace.id, workspace);
    this.agents.set(agent.id, agent);
    if (opts.metadataKeys) this.declareMetadata(agent.id, opts.metadataKeys);
    // Snapshots: later changes go through updateWorkspace/updateAgent and show in the store only.
    return { agent: { ...agent }, workspace: { ...workspace }, row: this.rowOf(agent)! };
  }

  declareMetadata(agentId: string, keys: string[]): void {
    const m = this.metadata.get(agentId) ?? new Map();
    for (const k of keys) m.set(k, { value: '', error: '', collectedAt: '' });
    this.metadata.set(agentId, m);
  }

  /** Changes a workspace in place (rename, claim, delete, dormant, schedule). */
  updateWorkspace(id: string, patch: Partial<WorkspaceRow>): void {
    const ws = this.workspaces.get(id);
    if (!ws) throw new Error(`no workspace ${id}`);
    Object.assign(ws, patch);
  }

  updateAgent(id: string, patch: Partial<FakeAgent>): void {
    const a = this.agents.get(id);
    if (!a) throw new Error(`no agent ${id}`);
    Object.assign(a, patch);
  }

  /** The agent's row as the gateway would load it, without recording a call. */
  rowOf(agent: FakeAgent): AgentWorkspaceRow | undefined {
    const ws = this.workspaces.get(agent.workspaceId);
    if (!ws) return undefined;
    return {
      agentId: agent.id,
      agentName: agent.name,
      agentDeleted: agent.deleted,
      authToken: agent.token,
      workspace: { ...ws },
      buildNumber: 1,
      latestBuildNumber: 1,
    };
  }

  // ---- call accounting -------------------------------------------------------------------------

  /** Calls of `method` (or of every method) so far. */
  count(method?: StoreMethod): number {
    return method === undefined ? this.calls.length : this.calls.filter((c) => c.method === method).length;
  }

  /** `{method: n}` for every method called at least once. */
  counts(): Partial<Record<StoreMethod, number>> {
    const out: Partial<Record<StoreMethod, number>> = {};
    for (const c of this.calls) out[c.method] = (out[c.method] ?? 0) + 1;
    return out;
  }

  /** Calls that read a workspace (agentByToken, workspaceByAgentId, refreshIdentities). */
  workspaceReads(): number {
    return this.calls.filter((c) => WORKSPACE_READS.includes(c.method)).length;
  }

  /** Times of the calls of `method`. */
  timesOf(method: StoreMethod): number[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.at);
  }

  argsOf(method: StoreMethod): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  resetCalls(): void {
    this.calls.length = 0;
    this.inFlightMax.clear();
  }

  /** Most calls of `method` that were running at the same time. */
  maxInFlight(method: StoreMethod): number {
    return this.inFlightMax.get(method) ?? 0;
  }

  // ---- faults ----------------------------------------------------------------------------------

  /** The next `times` calls of `method` (matching `when`, if given) reject with `err`. */
  fail(method: StoreMethod, err: unknown, opts: { times?: number; when?: (args: unknown[]) => boolean } = {}): void {
    this.failures.set(method, { err, times: opts.times ?? Number.POSITIVE_INFINITY, when: opts.when });
  }

  /**
   * The next `times` calls of `method` commit their effect and then reject with a connection error,
   * as when the connection breaks during the commit: the caller cannot know the outcome.
   */
  loseAnswer(method: StoreMethod, times = 1): void {
    this.lostAnswers.set(method, times);
  }

  heal(method?: StoreMethod): void {
    if (method) this.failures.delete(method);
    else this.failures.clear();
  }

  /** Calls of `method` from now on wait until release(method). */
  hold(method: StoreMethod): void {
    if (!this.held.has(method)) this.held.set(method, []);
  }

  /** Lets every waiting call of `method` proceed and stops holding new ones. */
  release(method: StoreMethod): void {
    const waiting = this.held.get(method) ?? [];
    this.held.delete(method);
    for (const go of waiting) go();
  }

  /** Calls of `method` waiting on hold(). */
  waiting(method: StoreMethod): number {
    return this.held.get(method)?.length ?? 0;
  }

  private async enter(method: StoreMethod, args: unknown[], signal?: AbortSignal): Promise<void> {
    this.calls.push({ method, args: structuredClone(args), at: this.clock ? this.clock.now() : Number.NaN });
    const n = (this.inFlightNow.get(method) ?? 0) + 1;
    this.inFlightNow.set(method, n);
    this.inFlightMax.set(method, Math.max(n, this.inFlightMax.get(method) ?? 0));
    try {
      const queue = this.held.get(method);
      if (queue) {
        // Like a statement cancelled on the server: an abort while held fails it without writing.
        await new Promise<void>((resolve, reject) => {
          queue.push(resolve);
          signal?.addEventListener(
            'abort',
            () => reject(Object.assign(new Error('canceling statement due to user request'), { code: '57014' })),
            { once: true },
          );
        });
      }
      const f = this.failures.get(method);
      if (f && f.times > 0 && (!f.when || f.when(args))) {
        f.times--;
        if (f.times <= 0) this.failures.delete(method);
        throw f.err;
      }
    } catch (err) {
      this.leave(method);
      throw err;
    }
  }

  private leave(method: StoreMethod): void {
    this.inFlightNow.set(method, (this.inFlightNow.get(method) ?? 1) - 1);
  }

  private async call<R>(method: StoreMethod, args: unknown[], body: () => R, signal?: AbortSignal): Promise<R> {
    await this.enter(method, args, signal);
    try {
      const r = body();
      const lost = this.lostAnswers.get(method) ?? 0;
      if (lost > 0) {
        this.lostAnswers.set(method, lost - 1);
        throw connectionClosed();
      }
      return r;
    } finally {
      this.leave(method);
    }
  }

  // ---- the Db ----------------------------------------------------------------------------------

  /**
   * The gateway's Db on this store: a statement runs as the method of its name, with its arguments
   * and an abort signal that the returned promise's `cancel()` fires (as postgres.js cancels a query).
   */
  db(): Db {
    const run = <A extends unknown[], R>(statement: Statement<A, R>, ...args: A): R => {
      const name = statement.name as StoreMethod;
      if (!STATEMENTS.includes(name)) throw new Error(`FakeStore: no statement ${statement.name}`);
      const ac = new AbortController();
      const method = this[name] as (...a: unknown[]) => Promise<unknown>;
      const p = method.call(this, ...args, ac.signal);
      return Object.assign(p, { cancel: () => ac.abort() }) as R;
    };
    return { query: run, bulk: run };
  }

  // ---- statements ------------------------------------------------------------------------------

  agentByToken(token: string): Promise<AgentWorkspaceRow | undefined> {
    return this.call('agentByToken', [token], () => {
      const agent = [...this.agents.values()].find((a) => a.token === token);
      return agent && this.rowOf(agent);
    });
  }

  workspaceByAgentId(agentId: string): Promise<AgentWorkspaceRow | undefined> {
    return this.call('workspaceByAgentId', [agentId], () => {
      const agent = this.agents.get(agentId);
      return agent && this.rowOf(agent);
    });
  }

  refreshIdentities(pairs: { agentId: string; workspaceId: string }[]): Promise<RefreshRow[]> {
    return this.call('refreshIdentities', [pairs], () =>
      pairs.map((p) => {
        const agent = this.agents.get(p.agentId);
        const ws = this.workspaces.get(p.workspaceId);
        return {
          agentId: p.agentId,
          workspaceId: p.workspaceId,
          agent: agent ? { deleted: agent.deleted, authToken: agent.token } : undefined,
          workspace: ws ? { ...ws } : undefined,
        };
      }),
    );
  }

  insertStatsBatch(rows: StatsRow[], signal?: AbortSignal): Promise<void> {
    return this.call(
      'insertStatsBatch',
      [rows],
      () => {
        // Rows carry gateway ids, so a retried batch is idempotent (on conflict do nothing).
        const seen = new Set(this.statsRows.map((r) => r.id));
        for (const r of rows) if (!seen.has(r.id)) this.statsRows.push({ ...r });
      },
      signal,
    );
  }

  updateMetadataBatch(items: MetadataWrite[], collectedAt: string, signal?: AbortSignal): Promise<number> {
    return this.call(
      'updateMetadataBatch',
      [items, collectedAt],
      () => {
        let written = 0;
        for (const w of items) {
          for (const u of w.updates) {
            const declared = this.metadata.get(w.agentId);
            if (!declared?.has(u.key)) continue;
            declared.set(u.key, { value: u.value, error: u.error, collectedAt });
            written++;
          }
        }
        return written;
      },
      signal,
    );
  }

  bumpAndNotifyActivity(rows: ActivityRow[]): Promise<void> {
    return this.call('bumpAndNotifyActivity', [rows], () => {
      this.activity.push(...rows.map((r) => ({ ...r })));
    });
  }

  markWorkspacesUsed(workspaceIds: string[], at: string): Promise<void> {
    return this.call('markWorkspacesUsed', [workspaceIds, at], () => {
      this.used.push({ workspaceIds: [...workspaceIds], at });
    });
  }

  updateAgentConnections(rows: AgentConnectionRow[]): Promise<void> {
    return this.call('updateAgentConnections', [rows], () => {
      this.connections.push(...rows.map((r) => ({ ...r })));
    });
  }

  ping(): Promise<void> {
    return this.call('ping', [], () => undefined);
  }
}
