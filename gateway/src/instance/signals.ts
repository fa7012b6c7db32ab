// SPEC §7 Signals. The handlers are installed once, before anything slow, and never removed: a
// second SIGINT (Ctrl-C on `npm start` delivers one from the terminal and one from npm) can never
// land in a gap where the default action kills the process without a drain. A repeat within 1 s of
// the first signal is the same request; a later one means "now": skip the rest of the drain.
import type { EventEmitter } from 'node:events';
import { type Clock, systemClock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
/** A repeat of the signal within this long of the first is the same shutdown request. */
const REPEAT_WINDOW_MS = 1000;

export class ShutdownSignals {
  private firstAt: number | undefined;
  private forcedNow = false;
  private resolveRequested!: (signal: NodeJS.Signals) => void;
  private resolveForced!: () => void;
  /** Settles on the first SIGTERM/SIGINT, with that signal. */
  readonly requested = new Promise<NodeJS.Signals>((resolve) => {
    this.resolveRequested = resolve;
  });
  /** Settles on a signal more than 1 s after the first: skip the rest of the drain. */
  readonly forced = new Promise<void>((resolve) => {
    this.resolveForced = resolve;
  });
  private readonly handler = (signal: NodeJS.Signals) => this.onSignal(signal);

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
    private readonly target: EventEmitter = process,
  ) {}

  /** Takes over SIGTERM and SIGINT for the life of the process. */
  install(): this {
    for (const s of SIGNALS) this.target.on(s, this.handler);
    return this;
  }

  get isRequested(): boolean {
    return this.firstAt !== undefined;
  }

  get isForced(): boolean {
    return this.forcedNow;
  }

  private onSignal(signal: NodeJS.Signals): void {
    const now = this.clock.now();
    if (this.firstAt === undefined) {
      this.firstAt = now;
      this.log.info({ signal }, 'shutting down');
      this.resolveRequested(signal);
      return;
    }
    if (now - this.firstAt <= REPEAT_WINDOW_MS) {
      // Ctrl-C on `npm start` reaches the process twice (the terminal's and npm's relay): one key press.
      this.log.info({ signal }, 'the same signal again within 1 s (npm relays Ctrl-C); one shutdown goes on');
      return;
    }
    if (this.forcedNow) return;
    this.forcedNow = true;
    this.log.warn({ signal }, 'second signal; skipping the rest of the drain');
    this.resolveForced();
  }
}

/**
 * In a cluster worker: the terminal's Ctrl-C reaches the whole process group, but only the primary
 * decides when to drain (it tells the workers over IPC). A listener replaces the default action.
 */
export function ignoreShutdownSignals(log: Logger): void {
  for (const s of SIGNALS) {
    process.on(s, (signal: NodeJS.Signals) => log.debug({ signal }, 'signal ignored; the primary drains the workers'));
  }
}
