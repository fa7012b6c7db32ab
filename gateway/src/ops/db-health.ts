// Whether the database answers (SPEC §3, §7): a probe at least every second on its own connection,
// and every failed or successful statement of the writers. `/readyz` and new upgrades read `up`.
import type { Clock, TimerHandle } from './clock.js';
import type { Logger } from './log.js';

export class DbHealth {
  private isUp = true;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly intervalMs = 1000,
    private readonly timeoutMs = 1500,
  ) {}

  get up(): boolean {
    return this.isUp;
  }

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
  }

  succeeded(): void {
    if (!this.isUp) this.log.info('database is reachable again');
    this.isUp = true;
  }

  failed(err: unknown): void {
    // A pool ended by the shutdown fails its last statements: that is not an outage to report.
    if (this.stopped) return;
    if (this.isUp) this.log.warn({ err: (err as Error)?.message ?? String(err) }, 'database is unreachable');
    this.isUp = false;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => void this.probe(), ms, 'health_probe');
    this.timer.unref?.();
  }

  private async probe(): Promise<void> {
    const started = this.clock.now();
    let timeout: TimerHandle | undefined;
    try {
      await Promise.race([
        this.ping(),
        new Promise((_, reject) => {
          timeout = this.clock.setTimeout(
            () => reject(new Error('health probe timed out')),
            this.timeoutMs,
            'health_timeout',
          );
        }),
      ]);
      this.succeeded();
    } catch (err) {
      this.failed(err);
    } finally {
      this.clock.clearTimeout(timeout);
    }
    this.schedule(Math.max(0, this.intervalMs - (this.clock.now() - started)));
  }
}
