// Writes that follow a committed stats row with connectionCount > 0 (SPEC §4 step 3), coalesced per
// workspace: the deadline bump and the stats_update NOTIFY within about a second (one statement per
// flush), and `last_used_at` once per usage flush interval.
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { KeyedFlusher } from './keyed-flusher.js';
import type { Store } from './store.js';

export interface Activity {
  ownerId: string;
  autostartSchedule: string | null;
  prebuild: boolean;
}

export interface ActivityWriterOptions {
  store: Store;
  clock: Clock;
  log: Logger;
  nextAutostart: (schedule: string | null, now: Date) => Date | null;
  /** Delay between the first activity and its bump/notify flush. */
  bumpDelayMs: number;
  onSuccess(): void;
  onFailure(err: unknown): void;
}

export class ActivityWriter {
  private readonly bumps: KeyedFlusher<Activity>;
  private readonly used: KeyedFlusher<true>;

  constructor(opts: ActivityWriterOptions) {
    const { store, clock, log } = opts;
    this.bumps = new KeyedFlusher<Activity>({
      name: 'activity',
      delayMs: opts.bumpDelayMs,
      // Each statement NOTIFYs once per workspace; small statements keep the NOTIFY lock short.
      maxBatch: 250,
      clock,
      log,
      merge: (_older, newer) => newer,
      onSuccess: opts.onSuccess,
      onFailure: opts.onFailure,
      write: (entries) => {
        const now = new Date(clock.now());
        return store.bumpAndNotifyActivity(
          entries.map(([workspaceId, a]) => ({
            workspaceId,
            ownerId: a.ownerId,
            nextAutostart: a.prebuild ? null : (opts.nextAutostart(a.autostartSchedule, now)?.toISOString() ?? null),
            bump: !a.prebuild,
          })),
        );
      },
    });
    this.used = new KeyedFlusher<true>({
      name: 'last_used_at',
      // Flushed by the usage timer (flushUsage), never by a change.
      delayMs: null,
      clock,
      log,
      merge: () => true,
      onSuccess: opts.onSuccess,
      onFailure: opts.onFailure,
      write: (entries) =>
        store.markWorkspacesUsed(
          entries.map(([id]) => id),
          new Date(clock.now()).toISOString(),
        ),
    });
  }

  /** Records activity of a workspace whose stats row has committed. */
  record(workspaceId: string, activity: Activity): void {
    this.bumps.set(workspaceId, activity);
    this.used.set(workspaceId, true);
  }

  /** Called every usage flush interval and at shutdown. */
  flushUsage(): Promise<void> {
    return this.used.flush();
  }

  async flushAll(): Promise<void> {
    this.bumps.stop();
    await this.bumps.flush();
    await this.flushUsage();
  }
}
