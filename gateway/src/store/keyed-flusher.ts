// Coalescing writer for state where only the latest value per key matters (connection timestamps,
// activity per workspace, last_used_at): one pending map, at most one flush in flight, failed
// flushes merged back and retried. Nobody waits on these writes, so they never hold a frame.
import type { Clock, TimerHandle } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { isRetryable } from './errors.js';

export interface KeyedFlusherOptions<V> {
  name: string;
  /** Delay between the first change and its flush (0 = next turn of the event loop; null = only flush()). */
  delayMs: number | null;
  write: (entries: [string, V][]) => Promise<void>;
  /** Combines an older pending value with a newer one for the same key. */
  merge: (older: V, newer: V) => V;
  clock: Clock;
  log: Logger;
  onSuccess?: () => void;
  onFailure?: (err: unknown) => void;
  maxBatch?: number;
}

export class KeyedFlusher<V> {
  private pending = new Map<string, V>();
  private inFlight: Promise<void> | undefined;
  private timer: TimerHandle | undefined;
  private failures = 0;

  constructor(private readonly opts: KeyedFlusherOptions<V>) {}

  set(key: string, value: V): void {
    const cur = this.pending.get(key);
    this.pending.set(key, cur === undefined ? value : this.opts.merge(cur, value));
    this.schedule(this.opts.delayMs);
  }

  get size(): number {
    return this.pending.size;
  }

  private schedule(ms: number | null): void {
    if (ms === null || this.timer !== undefined || this.inFlight) return;
    if (ms === 0) {
      this.timer = setImmediate(() => {
        this.timer = undefined;
        void this.flush();
      });
      return;
    }
    this.timer = this.opts.clock.setTimeout(
      () => {
        this.timer = undefined;
        void this.flush();
      },
      ms,
      `flush_${this.opts.name}`,
    );
  }

  /**
   * Writes everything pending now, in statements of at most `maxBatch` entries (short transactions:
   * a NOTIFY holds a database-wide lock until its commit); resolves when written or failed
   * (failures stay pending).
   */
  async flush(): Promise<void> {
    if (this.inFlight) await this.inFlight;
    if (this.pending.size === 0) return;
    const entries = [...this.pending];
    this.pending = new Map();
    const max = this.opts.maxBatch ?? 5000;
    this.inFlight = (async () => {
      for (let i = 0; i < entries.length; i += max) await this.run(entries.slice(i, i + max));
    })();
    await this.inFlight;
    this.inFlight = undefined;
    if (this.pending.size > 0 && this.opts.delayMs !== null) {
      this.schedule(this.failures > 0 ? Math.min(5000, 100 * 2 ** this.failures) : this.opts.delayMs);
    }
  }

  private async run(entries: [string, V][]): Promise<void> {
    try {
      await this.opts.write(entries);
      this.failures = 0;
      this.opts.onSuccess?.();
    } catch (err) {
      if (isRetryable(err)) {
        this.failures++;
        this.opts.onFailure?.(err);
        for (const [k, v] of entries) {
          const newer = this.pending.get(k);
          this.pending.set(k, newer === undefined ? v : this.opts.merge(v, newer));
        }
      } else {
        this.opts.log.error({ err, flusher: this.opts.name }, 'database rejected a flush; dropped it');
      }
    }
  }

  /** Stops the timer (pending entries stay for a final flush()). */
  stop(): void {
    if (this.timer !== undefined) {
      if (this.opts.delayMs === 0) clearImmediate(this.timer as NodeJS.Immediate);
      else this.opts.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}
