// SPEC §5 heartbeat: each socket is pinged once per interval, at its own phase (pinging every socket
// in one tick stalls the event loop with thousands of sessions), and a peer silent for two intervals
// is terminated. Ticks run ten times per interval, so silence is caught between 2 and 2.1 intervals.
import type { Clock, TimerHandle } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { AgentConnection } from '../rpc/connection.js';

export class Heartbeat {
  private timer: TimerHandle | undefined;

  constructor(
    private readonly connections: () => Iterable<AgentConnection>,
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  /** Gives a new connection a random phase, so that sockets that connected together are not pinged together. */
  add(conn: AgentConnection): void {
    conn.nextPingAt = this.clock.now() + this.intervalMs * this.random();
  }

  start(): void {
    const tick = () => {
      this.tick();
      this.timer = this.clock.setTimeout(tick, this.intervalMs / 10, 'heartbeat');
      this.timer.unref?.();
    };
    this.timer = this.clock.setTimeout(tick, this.intervalMs / 10, 'heartbeat');
    this.timer.unref?.();
  }

  stop(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = this.clock.now();
    const hb = this.intervalMs;
    for (const conn of this.connections()) {
      if (now - conn.lastSeen >= 2 * hb) {
        this.log.info({ agentId: conn.session.subject.agentId }, 'heartbeat timeout; terminating');
        conn.ws.terminate();
      } else if (now >= conn.nextPingAt) {
        conn.nextPingAt = now + hb;
        conn.ws.ping();
      }
    }
  }
}
