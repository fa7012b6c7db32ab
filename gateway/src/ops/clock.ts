// Time is a dependency (STYLE: Coder's quartz.Clock): sessions, refresh, writers and flushers take
// a Clock so that unit tests drive time instead of sleeping.

export interface TimerHandle {
  /** Lets the process exit while the timer is pending. */
  unref?(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => {
    if (h) clearTimeout(h as NodeJS.Timeout);
  },
};
