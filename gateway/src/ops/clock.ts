// Time is a dependency (STYLE: Coder's quartz.Clock): sessions, refresh, writers and flushers take
// a Clock so that unit tests drive time instead of sleeping. Every timer has a name (`refresh`,
// `heartbeat`, `writer_retry`, ...), as quartz's tickers do, so that a test finds it by name.

export interface TimerHandle {
  /** Lets the process exit while the timer is pending. */
  unref?(): void;
}

export interface Clock {
  now(): number;
  /** `name` says what the timer is for; a fake clock lists pending timers by it. */
  setTimeout(fn: () => void, ms: number, name: string): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => {
    if (h) clearTimeout(h as NodeJS.Timeout);
  },
};
