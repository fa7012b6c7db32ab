// A Clock that only moves when a test says so (Coder's quartz mock clock): timers fire in order of
// their due time during advance(), including timers armed by fired callbacks, and promises and
// setImmediate callbacks (group commit, revoke) are let run between firings. No real sleeping.
import type { Clock, TimerHandle } from '../../gateway/src/ops/clock.ts';

export interface PendingTimer {
  readonly id: number;
  /** What the timer is for (the Clock's timers are named: `refresh`, `heartbeat`, ...). */
  readonly name: string;
  /** Absolute due time. */
  readonly at: number;
  /** The delay it was armed with. */
  readonly delay: number;
}

class FakeTimer implements TimerHandle {
  constructor(
    readonly id: number,
    readonly name: string,
    readonly at: number,
    readonly delay: number,
    readonly fn: () => void,
  ) {}
  unref(): void {}
}

/** Lets pending promise callbacks and setImmediate callbacks run, `rounds` turns of the event loop. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, FakeTimer>();
  /** Every setTimeout call so far, in call order. */
  readonly armed: { name: string; delay: number }[] = [];

  constructor(start = Date.UTC(2025, 0, 6, 12, 0, 0)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number, name: string): TimerHandle {
    const delay = Math.max(0, Number.isFinite(ms) ? ms : 0);
    const timer = new FakeTimer(++this.seq, name, this.t + delay, delay, fn);
    this.timers.set(timer.id, timer);
    this.armed.push({ name, delay });
    return timer;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle instanceof FakeTimer) this.timers.delete(handle.id);
  }

  /** Timers not yet fired nor cleared (those named `name`, when given), earliest first. */
  pending(name?: string): PendingTimer[] {
    return [...this.timers.values()]
      .filter((t) => name === undefined || t.name === name)
      .sort((a, b) => a.at - b.at || a.id - b.id)
      .map(({ id, name, at, delay }) => ({ id, name, at, delay }));
  }

  /** Calls of setTimeout so far for timers named `name`. */
  armedNamed(name: string): number[] {
    return this.armed.filter((a) => a.name === name).map((a) => a.delay);
  }

  /** Due time of the earliest pending timer, or undefined. */
  nextAt(): number | undefined {
    return this.pending()[0]?.at;
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way in order (time is set to each
   * timer's due time while it runs) and settling promises after each one.
   */
  async advance(ms: number): Promise<void> {
    if (ms < 0) throw new Error('FakeClock cannot go back in time');
    await this.advanceTo(this.t + ms);
  }

  async advanceTo(target: number): Promise<void> {
    await settle();
    for (;;) {
      const next = this.earliestDue(target);
      if (!next) break;
      this.timers.delete(next.id);
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = Math.max(this.t, target);
    await settle();
  }

  /** Advances to the earliest pending timer and fires it (and whatever falls due at that time). */
  async runNext(): Promise<void> {
    const at = this.nextAt();
    if (at === undefined) throw new Error('FakeClock: no pending timer');
    await this.advanceTo(at);
  }

  private earliestDue(target: number): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const timer of this.timers.values()) {
      if (timer.at > target) continue;
      if (!best || timer.at < best.at || (timer.at === best.at && timer.id < best.id)) best = timer;
    }
    return best;
  }
}
