// Batches the refresh reads of sessions whose timers fire close together into one query
// (`where id = any(...)`, SPEC §5), so a burst of refreshes costs one statement, not one each.
import type { Clock } from '../ops/clock.js';
import type { RefreshRow } from '../domain.js';
import type { Store } from '../store/store.js';

interface Waiter {
  agentId: string;
  workspaceId: string;
  /** False once the session closed: a closed session never queries the database again. */
  live: () => boolean;
  resolve: (row: RefreshRow | undefined) => void;
  reject: (err: unknown) => void;
}

export class RefreshBatcher {
  private waiting: Waiter[] = [];
  private scheduled = false;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly onQuery: () => void,
    private readonly windowMs = 20,
    private readonly maxBatch = 1000,
  ) {}

  load(agentId: string, workspaceId: string, live: () => boolean = () => true): Promise<RefreshRow | undefined> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ agentId, workspaceId, live, resolve, reject });
      if (this.waiting.length >= this.maxBatch) void this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        this.clock.setTimeout(() => void this.flush(), this.windowMs);
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch: Waiter[] = [];
    for (const w of this.waiting) {
      if (w.live()) batch.push(w);
      else w.resolve(undefined);
    }
    this.waiting = [];
    if (batch.length === 0) return;
    this.onQuery();
    try {
      const rows = await this.store.refreshIdentities(
        batch.map((w) => ({ agentId: w.agentId, workspaceId: w.workspaceId })),
      );
      const byKey = new Map(rows.map((r) => [`${r.agentId}/${r.workspaceId}`, r]));
      for (const w of batch) w.resolve(byKey.get(`${w.agentId}/${w.workspaceId}`));
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
}
