// The identity changes of `agentgate staleness` and how each is seen to arrive: a workspace
// rename or a prebuild claim is reflected when the agent's session on its replica shows a refresh
// with outcome "changed" at or after the change was sent (`/debug/sessions`, SPEC §3; the
// gateway's own `lastRefreshAt` is the arrival time, so the poll rate does not add to it); a token
// rotation when the agent's socket closes with 4501 (seen by the client).
import { randomUUID } from 'node:crypto';
import type { Sql } from '@agentgate/gateway/store/db';
import { type AgentClient, CloseCode, type DebugSession } from '@agentgate/shared';

export const CHANGE_KINDS = ['rename', 'claim', 'token'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

/** One agent connected to one replica. */
export interface Target {
  agentId: string;
  workspaceId: string;
  replica: number;
  client: AgentClient;
  /** Set by the close listener: when (ms since epoch) and with which code the socket closed. */
  closedAt?: number;
  closeCode?: number;
}

export interface ChangeResult {
  kind: ChangeKind;
  agentId: string;
  replica: number;
  /** From the change sent (its commit is no earlier) until the session reflected it; null = timed out. */
  stalenessMs: number | null;
  /** How long the committing statement took (sent → acknowledged). */
  commitMs: number;
  error?: string;
}

/**
 * Polls `/debug/sessions` of each replica while a change waits there, at most every `intervalMs`,
 * and resolves the waiters whose session shows the change.
 */
export class SessionPoller {
  private readonly waiting = new Map<number, Map<string, { since: number; resolve: (at: number) => void }>>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly httpUrls: string[],
    private readonly adminToken: string,
    private readonly intervalMs = 50,
  ) {}

  /** Resolves with the gateway's lastRefreshAt (ms) of the first "changed" refresh at or after `since`. */
  waitChanged(replica: number, agentId: string, since: number): Promise<number> {
    return new Promise((resolve) => {
      let m = this.waiting.get(replica);
      if (!m) {
        m = new Map();
        this.waiting.set(replica, m);
      }
      m.set(agentId, { since, resolve });
      this.schedule(replica);
    });
  }

  forget(replica: number, agentId: string): void {
    this.waiting.get(replica)?.delete(agentId);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
  }

  private schedule(replica: number): void {
    if (this.stopped || this.timers.has(replica)) return;
    this.timers.set(
      replica,
      setTimeout(() => void this.poll(replica), this.intervalMs),
    );
  }

  private async poll(replica: number): Promise<void> {
    const m = this.waiting.get(replica);
    try {
      if (m && m.size > 0) {
        const res = await fetch(`${this.httpUrls[replica]}/debug/sessions`, {
          headers: { Authorization: `Bearer ${this.adminToken}` },
        });
        if (res.ok) {
          const { sessions } = (await res.json()) as { sessions: DebugSession[] };
          for (const s of sessions) {
            const w = m.get(s.agentId);
            if (!w || s.lastRefreshOutcome !== 'changed' || s.lastRefreshAt === null) continue;
            const at = Date.parse(s.lastRefreshAt);
            if (at < w.since) continue;
            m.delete(s.agentId);
            w.resolve(at);
          }
        }
      }
    } catch {
      /* the next poll tries again */
    } finally {
      this.timers.delete(replica);
      if (m && m.size > 0) this.schedule(replica);
    }
  }
}

export interface ChangeContext {
  admin: Sql;
  poller: SessionPoller;
  timeoutMs: number;
}

/** Makes one change of `kind` to `target` in its own committed statement and measures its arrival. */
export async function makeChange(ctx: ChangeContext, kind: ChangeKind, target: Target): Promise<ChangeResult> {
  const { admin } = ctx;
  let claimer: string | undefined;
  if (kind === 'claim') {
    // The claiming user exists first; the measured commit is the claim itself.
    claimer = randomUUID();
    await admin`insert into users (id, username) values (${claimer}, ${`claimer-${claimer.slice(0, 13)}`})`;
  }
  let closed: Promise<number> | undefined;
  if (kind === 'token') {
    closed = new Promise((resolve) => {
      if (target.closedAt !== undefined) resolve(target.closedAt);
      else target.client.once('close', () => resolve(target.closedAt ?? Date.now()));
    });
  }
  const sent = Date.now();
  const arrived = kind === 'token' ? closed! : ctx.poller.waitChanged(target.replica, target.agentId, sent);
  if (kind === 'rename') {
    await admin`update workspaces set name = ${`renamed-${randomUUID().slice(0, 13)}`}, updated_at = now()
                where id = ${target.workspaceId}`;
  } else if (kind === 'claim') {
    await admin`update workspaces set owner_id = ${claimer!}, updated_at = now() where id = ${target.workspaceId}`;
  } else {
    await admin`update workspace_agents set auth_token = ${randomUUID()}, updated_at = now() where id = ${target.agentId}`;
  }
  const commitMs = Date.now() - sent;
  let timer: NodeJS.Timeout | undefined;
  const at = await Promise.race([
    arrived,
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ctx.timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  const base = { kind, agentId: target.agentId, replica: target.replica, commitMs };
  if (at === null) {
    ctx.poller.forget(target.replica, target.agentId);
    return { ...base, stalenessMs: null, error: `not reflected within ${ctx.timeoutMs} ms` };
  }
  if (kind === 'token' && target.closeCode !== CloseCode.NotAuthorized) {
    return { ...base, stalenessMs: null, error: `socket closed with ${target.closeCode}, not 4501` };
  }
  return { ...base, stalenessMs: Math.max(0, at - sent) };
}

export interface Summary {
  count: number;
  timedOut: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles of the reflected changes, in ms. */
export function summarize(results: ChangeResult[]): Summary {
  const ms = results.flatMap((r) => (r.stalenessMs === null ? [] : [r.stalenessMs])).sort((a, b) => a - b);
  const rank = (p: number) => (ms.length === 0 ? 0 : ms[Math.max(0, Math.ceil((p / 100) * ms.length) - 1)]!);
  return {
    count: results.length,
    timedOut: results.length - ms.length,
    p50: rank(50),
    p99: rank(99),
    max: ms.length ? ms[ms.length - 1]! : 0,
  };
}
