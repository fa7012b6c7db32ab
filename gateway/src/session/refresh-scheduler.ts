// SPEC §5 refresh timing: the first tick at a uniformly random point between half and one whole
// interval after connect (sessions do not refresh in step), then every interval; after a failed
// refresh, retry sooner with backoff up to 30 s. Tied to the session: stop() ends it for good.
// A pushed refresh (SPEC §8) may bring the next refresh forward, never push it back.
import type { Clock, TimerHandle } from '../ops/clock.js';

export const MAX_RETRY_BACKOFF_MS = 30_000;

export class RefreshScheduler {
  private timer: TimerHandle | undefined;
  /** When the pending timer is due (meaningful while `timer` is set). */
  private dueAt = Number.POSITIVE_INFINITY;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    /** Runs one refresh; resolves true on success, false on a database error. */
    private readonly run: () => Promise<boolean>,
    private readonly random: () => number = Math.random,
  ) {}

  start(): void {
    this.arm(this.intervalMs * (0.5 + 0.5 * this.random()));
  }

  /**
   * Refresh `delayMs` from now instead of at the next tick (SPEC §8 push: a NOTIFY named this
   * session, or a resync after a lost LISTEN); the interval restarts after that refresh. A tick
   * due sooner is kept: a flood of pushes cannot starve the timer backstop.
   */
  rearm(delayMs: number): void {
    if (this.timer !== undefined && this.dueAt <= this.clock.now() + Math.round(delayMs)) return;
    this.arm(delayMs);
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  get active(): boolean {
    return !this.stopped;
  }

  /** One pending timer at most: a rearm while a refresh runs replaces the timer, never adds one. */
  private arm(ms: number): void {
    if (this.stopped) return;
    this.clock.clearTimeout(this.timer);
    this.dueAt = this.clock.now() + Math.round(ms);
    this.timer = this.clock.setTimeout(() => void this.tick(), Math.round(ms));
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    if (this.stopped) return;
    const ok = await this.run();
    if (this.stopped) return;
    this.failures = ok ? 0 : this.failures + 1;
    // Rearmed while this refresh ran (its read may predate the change): that refresh still comes.
    if (this.timer !== undefined) return;
    if (ok) this.arm(this.intervalMs);
    else this.arm(Math.min(1000 * 2 ** (this.failures - 1), MAX_RETRY_BACKOFF_MS, this.intervalMs));
  }
}
