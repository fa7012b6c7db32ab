// Group commit (SPEC §7): frames from all sessions are written in batches, at most one batch in
// flight per writer; a frame waits only for the batch that holds it and is answered after commit.
// A lone frame is flushed on the next turn of the event loop, not after a timer. When the database
// fails, the batch is retried (ids make retries idempotent) and waiting frames are answered -32002
// before their answer deadline. A batch the database rejects for its data is split up so that only
// the offending frame fails.
import type { Clock, TimerHandle } from '../ops/clock.js';
import { isRetryable } from './errors.js';
import type { WriteBuffer } from './write-buffer.js';

/**
 * An attempt that has not answered in this long is cancelled on the server and retried. It is
 * longer than the pool's statement_timeout, so a merely slow database has already aborted the
 * statement itself; the cancel covers a server that stopped answering.
 */
const ATTEMPT_TIMEOUT_MS = 10_000;
/** After a cancel, how long to wait for the statement's fate before giving up on the connection. */
const CANCEL_GRACE_MS = 2_000;
/**
 * A frame still waiting this long is answered -32002 instead of joining another attempt: with an
 * attempt bounded by ATTEMPT_TIMEOUT_MS + CANCEL_GRACE_MS, every frame is answered within 30 s.
 */
const DEFAULT_ANSWER_DEADLINE_MS = 17_000;

/** ok: committed; unavailable: not written, retry later; rejected: the database refused this frame's data. */
export type WriteOutcome = 'ok' | 'unavailable' | 'rejected';
/** Called once per frame; `err` is the database's reason with 'rejected'. */
export type WriteDone = (outcome: WriteOutcome, err?: unknown) => void;

interface Entry<T> {
  item: T;
  done: WriteDone;
  at: number;
}

export interface BatchWriterHooks {
  /** The database answered a statement. */
  onSuccess(): void;
  /** The database failed in a retryable way. */
  onFailure(err: unknown): void;
  /** Observes the size of each committed batch. */
  onBatch?(size: number): void;
}

export interface BatchWriterOptions<T> {
  name: string;
  maxBatch: number;
  /** Writes one batch; should stop (and roll back) when `signal` aborts. */
  write: (items: T[], signal: AbortSignal) => Promise<void>;
  buffer: WriteBuffer;
  clock: Clock;
  hooks: BatchWriterHooks;
  /** A frame still queued after this long is answered -32002 (SPEC §7: answered within 30 s). */
  answerDeadlineMs?: number;
}

export class BatchWriter<T> {
  private queue: Entry<T>[] = [];
  private inFlight = false;
  private scheduled = false;
  private retryTimer: TimerHandle | undefined;
  private failures = 0;
  private idleWaiters: (() => void)[] = [];
  private sweeper: TimerHandle | undefined;
  private readonly deadlineMs: number;

  constructor(private readonly opts: BatchWriterOptions<T>) {
    this.deadlineMs = opts.answerDeadlineMs ?? DEFAULT_ANSWER_DEADLINE_MS;
  }

  /** Queues `item`; `done` is called once, after commit or with the reason it was not written. */
  submit(item: T, done: WriteDone): void {
    if (!this.opts.buffer.tryTake()) {
      done('unavailable');
      return;
    }
    this.queue.push({ item, done, at: this.opts.clock.now() });
    this.kick();
    if (this.inFlight || this.failures > 0) this.armSweeper();
  }

  /** While frames wait behind a slow or failing database, answer the ones past their deadline. */
  private armSweeper(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = this.opts.clock.setTimeout(() => {
      this.sweeper = undefined;
      this.expireOld();
      if (this.queue.length > 0 && (this.inFlight || this.failures > 0)) this.armSweeper();
    }, 1000);
    this.sweeper.unref?.();
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && !this.inFlight) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private kick(): void {
    if (this.inFlight || this.scheduled || this.retryTimer !== undefined) return;
    this.scheduled = true;
    // Frames that arrive in the same turn of the event loop share the batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.inFlight || this.queue.length === 0) {
      this.notifyIdle();
      return;
    }
    this.expireOld();
    if (this.queue.length === 0) {
      this.notifyIdle();
      return;
    }
    const batch = this.queue.splice(0, this.opts.maxBatch);
    this.inFlight = true;
    if (this.queue.length > 0) this.armSweeper();
    try {
      await this.attempt(batch.map((e) => e.item));
      this.failures = 0;
      this.opts.hooks.onSuccess();
      this.opts.hooks.onBatch?.(batch.length);
      this.settle(batch, 'ok');
    } catch (err) {
      if (isRetryable(err)) {
        this.opts.hooks.onFailure(err);
        this.queue.unshift(...batch);
        this.failures++;
        this.inFlight = false;
        this.expireOld();
        this.scheduleRetry();
        return;
      }
      this.opts.hooks.onSuccess();
      await this.isolate(batch, err);
    }
    this.inFlight = false;
    if (this.queue.length > 0) void this.flush();
    else this.notifyIdle();
  }

  /** One write, cancelled when it outlives ATTEMPT_TIMEOUT_MS. */
  private attempt(items: T[]): Promise<void> {
    const { clock } = this.opts;
    const ac = new AbortController();
    return new Promise<void>((resolve, reject) => {
      let grace: TimerHandle | undefined;
      const timer = clock.setTimeout(() => {
        ac.abort();
        // The cancel normally makes the statement fail at once; a server that cannot be reached
        // may never answer, and then the attempt is abandoned (its outcome unknown).
        grace = clock.setTimeout(() => {
          reject(Object.assign(new Error(`write did not answer in ${ATTEMPT_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' }));
        }, CANCEL_GRACE_MS);
      }, ATTEMPT_TIMEOUT_MS);
      this.opts.write(items, ac.signal).then(
        () => {
          clock.clearTimeout(timer);
          clock.clearTimeout(grace);
          resolve();
        },
        (err) => {
          clock.clearTimeout(timer);
          clock.clearTimeout(grace);
          reject(err);
        },
      );
    });
  }

  /** A batch the database rejected for its content: write the frames one by one. */
  private async isolate(batch: Entry<T>[], firstErr: unknown): Promise<void> {
    if (batch.length === 1) {
      this.settle(batch, 'rejected', firstErr);
      return;
    }
    for (const entry of batch) {
      try {
        await this.attempt([entry.item]);
        this.settle([entry], 'ok');
      } catch (err) {
        if (isRetryable(err)) {
          // The database went away mid-isolation: answer unavailable; nothing of this frame was written.
          this.opts.hooks.onFailure(err);
          this.settle([entry], 'unavailable');
        } else {
          this.settle([entry], 'rejected', err);
        }
      }
    }
  }

  private settle(entries: Entry<T>[], outcome: WriteOutcome, err?: unknown): void {
    this.opts.buffer.release(entries.length);
    for (const e of entries) e.done(outcome, err);
  }

  private scheduleRetry(): void {
    const delay = Math.min(2000, 50 * 2 ** Math.min(this.failures, 6));
    this.retryTimer = this.opts.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.expireOld();
      void this.flush();
    }, delay);
  }

  /** Answers -32002 to frames that waited too long; they were never part of a committed batch. */
  private expireOld(): void {
    const limit = this.opts.clock.now() - this.deadlineMs;
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.at < limit) n++;
    if (n > 0) this.settle(this.queue.splice(0, n), 'unavailable');
  }

  private notifyIdle(): void {
    if (this.queue.length > 0 || this.inFlight) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}
