// Group commit (SPEC §7): frames from all sessions are written in batches, at most one batch in
// flight per writer; a frame waits only for the batch that holds it and is answered after commit.
// A lone frame is flushed on the next turn of the event loop, not after a timer. When the database
// fails, the batch is retried (ids make retries idempotent) and waiting frames are answered -32002
// before their answer deadline — except frames of an attempt whose outcome is unknown (in doubt):
// those are retried until a retry commits, because -32002 promises "not in the database". A batch
// the database rejects for its data is split in halves, so that only the offending frame fails.
import type { Clock, TimerHandle } from '../ops/clock.js';
import { cancel } from './db.js';
import { isRetryable, outcomeUnknown } from './errors.js';

/**
 * The bound of SPEC §7: frames that may wait for the database, shared by every writer and counting
 * frames in a batch in flight too. When it is full, new frames are answered -32002 at once.
 */
export class WriteBuffer {
  private used = 0;
  constructor(readonly capacity: number) {}

  tryTake(): boolean {
    if (this.used >= this.capacity) return false;
    this.used++;
    return true;
  }

  release(n = 1): void {
    this.used -= n;
  }

  get size(): number {
    return this.used;
  }
}

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
const UNAVAILABLE: Promise<Written> = Promise.resolve('unavailable');

/** The database refused this frame's data (its reason in `err`). */
export class Rejected {
  constructor(readonly err: unknown) {}
}

/** ok: committed; unavailable: not written, retry later; Rejected: the database refused this frame's data. */
export type Written = 'ok' | 'unavailable' | Rejected;

/** One write of the statement: a postgres.js query (a promise the writer may cancel on the server). */
export type PendingWrite = PromiseLike<unknown> & { cancel?(): unknown };

interface Entry<T> {
  item: T;
  done: (written: Written) => void;
  at: number;
  /** An attempt holding this frame may have committed: it is never answered -32002. */
  inDoubt?: true;
  settled?: true;
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
  /** Writes one batch: one statement, cancelled on the server when it does not answer in time. */
  write: (items: T[]) => PendingWrite;
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

  /** Queues `item`; resolves once, after commit or with the reason it was not written. */
  write(item: T): Promise<Written> {
    if (!this.opts.buffer.tryTake()) return UNAVAILABLE;
    return new Promise((done) => {
      this.queue.push({ item, done, at: this.opts.clock.now() });
      this.kick();
      if (this.inFlight || this.failures > 0) this.armSweeper();
    });
  }

  /** While frames wait behind a slow or failing database, answer the ones past their deadline. */
  private armSweeper(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = this.opts.clock.setTimeout(
      () => {
        this.sweeper = undefined;
        this.expireOld();
        if (this.queue.length > 0 && (this.inFlight || this.failures > 0)) this.armSweeper();
      },
      1000,
      'writer_sweep',
    );
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
    const unwritten = await this.writeBatch(batch);
    this.inFlight = false;
    if (unwritten.length > 0) {
      this.queue.unshift(...unwritten);
      this.failures++;
      this.expireOld();
      this.scheduleRetry();
      return;
    }
    this.failures = 0;
    if (this.queue.length > 0) void this.flush();
    else this.notifyIdle();
  }

  /**
   * Writes `batch` in one statement; a batch the database refuses for its data is split in halves
   * (a few statements find the bad frame, SPEC §7). Returns the frames left unwritten because the
   * database failed: they go back to the queue.
   */
  private async writeBatch(batch: Entry<T>[]): Promise<Entry<T>[]> {
    try {
      await this.attempt(batch.map((e) => e.item));
    } catch (err) {
      if (isRetryable(err)) {
        this.opts.hooks.onFailure(err);
        if (outcomeUnknown(err)) for (const e of batch) e.inDoubt = true;
        return batch;
      }
      this.opts.hooks.onSuccess();
      if (batch.length === 1) {
        this.settle(batch, new Rejected(err));
        return [];
      }
      const half = Math.ceil(batch.length / 2);
      const left = await this.writeBatch(batch.slice(0, half));
      if (left.length > 0) return [...left, ...batch.slice(half)];
      return this.writeBatch(batch.slice(half));
    }
    this.opts.hooks.onSuccess();
    this.opts.hooks.onBatch?.(batch.length);
    this.settle(batch, 'ok');
    return [];
  }

  /** One write, cancelled on the server when it outlives ATTEMPT_TIMEOUT_MS. */
  private attempt(items: T[]): Promise<void> {
    const { clock } = this.opts;
    return new Promise<void>((resolve, reject) => {
      let grace: TimerHandle | undefined;
      const query = this.opts.write(items);
      const timer = clock.setTimeout(
        () => {
          cancel(query);
          // The cancel normally makes the statement fail at once; a server that cannot be reached
          // may never answer, and then the attempt is abandoned (its outcome unknown).
          grace = clock.setTimeout(
            () => {
              reject(
                Object.assign(new Error(`write did not answer in ${ATTEMPT_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' }),
              );
            },
            CANCEL_GRACE_MS,
            'writer_cancel_grace',
          );
        },
        ATTEMPT_TIMEOUT_MS,
        'writer_attempt',
      );
      query.then(
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

  private settle(entries: Entry<T>[], written: Written): void {
    for (const e of entries) {
      if (e.settled) continue;
      e.settled = true;
      this.opts.buffer.release(1);
      e.done(written);
    }
  }

  private scheduleRetry(): void {
    const delay = Math.min(2000, 50 * 2 ** Math.min(this.failures, 6));
    this.retryTimer = this.opts.clock.setTimeout(
      () => {
        this.retryTimer = undefined;
        this.expireOld();
        void this.flush();
      },
      delay,
      'writer_retry',
    );
  }

  /**
   * Answers -32002 to frames that waited too long and were never part of an attempt that may have
   * committed. Frames in doubt stay queued: they are retried until a retry commits (the gateway's
   * row ids make a retry idempotent), then acknowledged.
   */
  private expireOld(): void {
    const limit = this.opts.clock.now() - this.deadlineMs;
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.at < limit) n++;
    if (n === 0) return;
    const old = this.queue.splice(0, n);
    const doubtful = old.filter((e) => e.inDoubt);
    this.settle(
      old.filter((e) => !e.inDoubt),
      'unavailable',
    );
    this.queue.unshift(...doubtful);
  }

  private notifyIdle(): void {
    if (this.queue.length > 0 || this.inFlight) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}
