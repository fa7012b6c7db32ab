// SPEC §10: every gateway process (a worker, a replica) runs a maintenance pass at start and then
// every AGENTGATE_MAINTENANCE_INTERVAL after the previous one ended; the pass's advisory lock lets
// one process of the fleet run it and the others skip. Its own connection (no statement_timeout: a
// rollup of a big day takes seconds), never the frames' pools.
import { hostname } from 'node:os';
import type { Clock, TimerHandle } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { GatewayMetrics } from '../ops/metrics.js';
import { connect, type Sql } from '../store/db.js';
import { oldestStatsRow } from '../store/maintenance.js';
import { type RetentionSettings, runMaintenancePass } from '../store/maintenance-pass.js';

export interface MaintenanceTimerOptions extends RetentionSettings {
  /** A direct connection: the lock is a session's (not through a transaction pooler). */
  databaseUrl: string;
  intervalMs: number;
  metrics: GatewayMetrics;
  log: Logger;
  clock: Clock;
}

export class MaintenanceTimer {
  private readonly sql: Sql;
  private timer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly o: MaintenanceTimerOptions) {
    this.sql = connect(o.databaseUrl, { max: 1, applicationName: 'agentgate-maintenance', prepare: false });
  }

  start(): void {
    this.tick();
  }

  private tick(): void {
    this.timer = undefined;
    if (this.stopped) return;
    this.running = this.runOnce().finally(() => {
      this.running = undefined;
      if (this.stopped) return;
      this.timer = this.o.clock.setTimeout(() => this.tick(), this.o.intervalMs, 'maintenance');
      this.timer.unref?.();
    });
  }

  private async runOnce(): Promise<void> {
    const { metrics, log, clock } = this.o;
    const started = clock.now();
    try {
      const result = await runMaintenancePass(this.sql, { ...this.o, runner: `${hostname()}:${process.pid}`, log });
      if (result === undefined) metrics.maintenance('skipped');
      else {
        metrics.maintenance('ok', (clock.now() - started) / 1000);
        const did = result.partitionsCreated.length + result.daysRolledUp.length + result.partitionsDropped.length;
        if (did > 0 || result.rollupRowsDeleted > 0) log.info(result, 'maintenance pass');
      }
      metrics.statsOldestRow.set((await oldestStatsRow(this.sql)) ?? clock.now() / 1000);
    } catch (err) {
      if (this.stopped) return;
      metrics.maintenance('error', (clock.now() - started) / 1000);
      log.warn({ err: (err as Error).message }, 'maintenance pass failed; the next one tries again');
    }
  }

  /** Stops the timer; a pass in flight gets `timeoutS` to end before its connection is closed (it rolls back). */
  async stop(timeoutS: number): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    await this.sql.end({ timeout: timeoutS });
    // A pass still waiting for its connection when the pool ended may never settle: the shutdown
    // does not wait for it beyond the same bound (the process exits; nothing of it committed).
    let bound: TimerHandle | undefined;
    await Promise.race([
      this.running,
      new Promise<void>((resolve) => {
        bound = this.o.clock.setTimeout(resolve, timeoutS * 1000, 'maintenance_stop');
      }),
    ]);
    this.o.clock.clearTimeout(bound);
  }
}
