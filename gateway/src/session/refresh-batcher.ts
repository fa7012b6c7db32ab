// Batches the refresh reads of sessions whose timers fire close together into one query
// (`where id = any(...)`, SPEC §5), so a burst of refreshes costs one statement, not one each.
// A pair asked for twice within a window (two sockets of one agent, a burst of NOTIFYs for one
// workspace, SPEC §8) is read once. A pushed refresh waits at most `windowMs`; a timer refresh may
// wait `timerWindowMs` (up to a second), so the jittered timers of many sessions share statements.
import type { Clock, TimerHandle } from '../ops/clock.js';
import type { RefreshRow } from '../domain.js';
import type { Db } from '../store/db.js';
import { refreshIdentities } from '../store/lookups.js';

interface Waiter {
  /** False once the session closed: a closed session never queries the database again. */
  live: () => boolean;
  resolve: (row: RefreshRow | undefined) => void;
  reject: (err: unknown) => void;
}

interface Pair {
  agentId: string;
  workspaceId: string;
  waiters: Waiter[];
}

export class RefreshBatcher {
  private waiting = new Map<string, Pair>();
  private timer: TimerHandle | undefined;
  private flushAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly onQuery: () => void,
    private readonly windowMs = 20,
    /** Pairs per statement at most. */
    readonly maxBatch = 1000,
    /** How long a timer refresh (not a pushed one) may wait for others to share its statement. */
    private readonly timerWindowMs = windowMs,
  ) {}

  /** Reads the pair in the next batch; `urgent` (a push) waits `windowMs`, a timer refresh `timerWindowMs`. */
  load(
    agentId: string,
    workspaceId: string,
    live: () => boolean = () => true,
    urgent = true,
  ): Promise<RefreshRow | undefined> {
    return new Promise((resolve, reject) => {
      const key = `${agentId}/${workspaceId}`;
      const pair = this.waiting.get(key);
      if (pair) pair.waiters.push({ live, resolve, reject });
      else this.waiting.set(key, { agentId, workspaceId, waiters: [{ live, resolve, reject }] });
      if (this.waiting.size >= this.maxBatch) {
        void this.flush();
        return;
      }
      const wait = urgent ? this.windowMs : this.timerWindowMs;
      const at = this.clock.now() + wait;
      if (at < this.flushAt) {
        this.clock.clearTimeout(this.timer);
        this.flushAt = at;
        this.timer = this.clock.setTimeout(() => void this.flush(), wait, 'refresh_batch');
      }
    });
  }

  private async flush(): Promise<void> {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.flushAt = Number.POSITIVE_INFINITY;
    const batch: Pair[] = [];
    for (const pair of this.waiting.values()) {
      const live = pair.waiters.filter((w) => w.live());
      for (const w of pair.waiters) if (!live.includes(w)) w.resolve(undefined);
      if (live.length > 0) batch.push({ ...pair, waiters: live });
    }
    this.waiting = new Map();
    if (batch.length === 0) return;
    this.onQuery();
    try {
      const rows = await this.db.bulk(
        refreshIdentities,
        batch.map((p) => ({ agentId: p.agentId, workspaceId: p.workspaceId })),
      );
      const byKey = new Map(rows.map((r) => [`${r.agentId}/${r.workspaceId}`, r]));
      for (const p of batch) {
        const row = byKey.get(`${p.agentId}/${p.workspaceId}`);
        for (const w of p.waiters) w.resolve(row);
      }
    } catch (err) {
      for (const p of batch) for (const w of p.waiters) w.reject(err);
    }
  }
}
