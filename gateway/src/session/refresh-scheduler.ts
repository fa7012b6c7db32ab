// SPEC §5 refresh timing: the first tick at a uniformly random point between half and one whole
// interval after connect (sessions do not refresh in step), then every interval; after a failed
// refresh, retry sooner with backoff up to 30 s. Tied to the session: stop() ends it for good.
// A pushed refresh (SPEC §8) may bring the next refresh forward, never push it back, and it is
// urgent: its read waits the short window of the batched read, not a timer's. With the cache off
// nothing is periodic: only pushes arm the timer (a revocation still closes the socket in time).
// One timer, named `refresh`.
import type { Clock, TimerHandle } from '../ops/clock.js';

export const MAX_RETRY_BACKOFF_MS = 30_000;

export interface RefreshTiming {
  intervalMs: number;
  /** Ticks every interval (the cache is on); otherwise only pushes arm the timer. */
  periodic: boolean;
  random?: () => number;
}

export class RefreshScheduler {
  private timer: TimerHandle | undefined;
  /** When the pending timer is due (meaningful while `timer` is set). */
  private dueAt = Number.POSITIVE_INFINITY;
  /** Whether the pending run was pushed (SPEC §8). */
  private urgent = false;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly clock: Clock,
    private readonly timing: RefreshTiming,
    /** Runs one refresh; resolves true on success, false on a database error. */
    private readonly run: (urgent: boolean) => Promise<boolean>,
  ) {}

  start(): void {
    if (!this.timing.periodic) return;
    const random = this.timing.random ?? Math.random;
    this.arm(this.timing.intervalMs * (0.5 + 0.5 * random()));
  }

  /**
   * Refresh `delayMs` from now instead of at the next tick (SPEC §8 push: a NOTIFY named this
   * session, or a resync after a lost LISTEN); the interval restarts after that refresh. A tick
   * due sooner is kept (and made urgent): a flood of pushes cannot starve the timer backstop.
   */
  push(delayMs: number): void {
    if (this.stopped) return;
    const keep = this.timer !== undefined && this.dueAt <= this.clock.now() + Math.round(delayMs);
    if (!keep) this.arm(delayMs);
    this.urgent = true;
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A refresh is due (a timer is pending). */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** One pending timer at most: a push while a refresh runs replaces the timer, never adds one. */
  private arm(ms: number): void {
    if (this.stopped) return;
    this.clock.clearTimeout(this.timer);
    this.dueAt = this.clock.now() + Math.round(ms);
    this.urgent = false;
    this.timer = this.clock.setTimeout(() => void this.tick(), Math.round(ms), 'refresh');
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    if (this.stopped) return;
    const urgent = this.urgent;
    this.urgent = false;
    const ok = await this.run(urgent);
    if (this.stopped) return;
    this.failures = ok ? 0 : this.failures + 1;
    // Pushed while this refresh ran (its read may predate the change): that refresh still comes.
    if (this.timer !== undefined || !this.timing.periodic) return;
    if (ok) this.arm(this.timing.intervalMs);
    else this.arm(Math.min(1000 * 2 ** (this.failures - 1), MAX_RETRY_BACKOFF_MS, this.timing.intervalMs));
  }
}
