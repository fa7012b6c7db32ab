// SPEC §8 push invalidation, the database side: one dedicated connection that `LISTEN`s on
// agentgate_identity (the triggers of migration 3 notify there). It reconnects with backoff when
// the connection is lost, and tells its sink each time it listens again: changes committed while
// it was deaf were missed, so the sink resyncs. A ping on the same connection finds a connection
// that died silently (no FIN, no RST) within seconds instead of TCP keepalive's minutes.
import postgres from 'postgres';
import type { Clock, TimerHandle } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';

const IDENTITY_CHANNEL = 'agentgate_identity';

export interface IdentitySink {
  /** One NOTIFY payload on the channel, as sent (not parsed here). */
  notified(payload: string): void;
  /** LISTEN is active: `first` is false after a lost connection (notifications may have been missed). */
  listening(first: boolean): void;
  /** The LISTEN connection was lost: deaf until the next `listening`. */
  deaf(): void;
}

export interface IdentityListenerOptions {
  clock: Clock;
  log: Logger;
  /** Shown in pg_stat_activity, so an operator (or a test) can tell this connection apart. */
  applicationName?: string;
  /** First reconnect delay; doubled per failed attempt up to maxBackoffMs, with jitter. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A `select 1` on the LISTEN connection this often; no answer within pingTimeoutMs = lost. */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  random?: () => number;
}

export class IdentityListener {
  private sink: IdentitySink | undefined;
  private current: postgres.Sql | undefined;
  private timer: TimerHandle | undefined;
  private pingTimer: TimerHandle | undefined;
  private failures = 0;
  private everListened = false;
  private active = false;
  private stopped = false;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly pingIntervalMs: number;
  private readonly pingTimeoutMs: number;
  private readonly random: () => number;

  constructor(
    private readonly url: string,
    private readonly opts: IdentityListenerOptions,
  ) {
    this.initialBackoffMs = opts.initialBackoffMs ?? 200;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 10_000;
    this.pingTimeoutMs = opts.pingTimeoutMs ?? 5_000;
    this.random = opts.random ?? Math.random;
  }

  /** True while the LISTEN is active on a live connection. */
  get listening(): boolean {
    return this.active;
  }

  start(sink: IdentitySink): void {
    this.sink = sink;
    void this.attempt();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.active = false;
    this.opts.clock.clearTimeout(this.timer);
    this.opts.clock.clearTimeout(this.pingTimer);
    const sql = this.current;
    this.current = undefined;
    await sql?.end({ timeout: 1 }).catch(() => {});
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    // `onnotify` is postgres.js's hook for every NotificationResponse (its typings omit it); with it
    // this instance is the one LISTEN connection, reconnected by this class rather than by sql.listen.
    const options: postgres.Options<Record<string, never>> & { onnotify(channel: string, payload: string): void } = {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: 3,
      fetch_types: false,
      prepare: false,
      onnotice: () => {},
      onnotify: (channel, payload) => {
        if (channel === IDENTITY_CHANNEL && this.current === sql && !this.stopped) this.sink?.notified(payload);
      },
      onclose: () => {
        if (this.current === sql) this.lost('connection closed');
      },
      connection: { application_name: this.opts.applicationName ?? 'agentgate-listen' },
    };
    const sql = postgres(this.url, options);
    this.current = sql;
    try {
      await sql.unsafe(`listen ${IDENTITY_CHANNEL}`);
    } catch (err) {
      if (this.current === sql) this.lost((err as Error).message);
      return;
    }
    if (this.current !== sql || this.stopped) return;
    this.failures = 0;
    this.active = true;
    const first = !this.everListened;
    this.everListened = true;
    this.opts.log.info({ channel: IDENTITY_CHANNEL }, first ? 'listening for identity changes' : 'listening again');
    this.armPing(sql);
    this.sink?.listening(first);
  }

  /** The connection (or an attempt) is gone: drop it, and try again after a backoff. */
  private lost(why: string): void {
    const sql = this.current;
    this.current = undefined;
    this.opts.clock.clearTimeout(this.pingTimer);
    void sql?.end({ timeout: 0 }).catch(() => {});
    if (this.stopped) return;
    this.failures++;
    const delay = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** (this.failures - 1));
    const jittered = Math.round(delay * (0.5 + 0.5 * this.random()));
    if (this.active) {
      this.opts.log.warn({ err: why, retryInMs: jittered }, 'identity LISTEN connection lost');
      this.sink?.deaf();
    } else
      this.opts.log.warn(
        { err: why, retryInMs: jittered, attempt: this.failures },
        'cannot LISTEN for identity changes',
      );
    this.active = false;
    this.opts.clock.clearTimeout(this.timer);
    this.timer = this.opts.clock.setTimeout(() => void this.attempt(), jittered, 'listen_retry');
    this.timer.unref?.();
  }

  private armPing(sql: postgres.Sql): void {
    this.pingTimer = this.opts.clock.setTimeout(() => void this.ping(sql), this.pingIntervalMs, 'listen_ping');
    this.pingTimer.unref?.();
  }

  private async ping(sql: postgres.Sql): Promise<void> {
    if (this.current !== sql) return;
    let timeout: TimerHandle | undefined;
    try {
      await Promise.race([
        sql.unsafe('select 1'),
        new Promise((_, reject) => {
          timeout = this.opts.clock.setTimeout(
            () => reject(new Error('ping timed out')),
            this.pingTimeoutMs,
            'listen_ping_timeout',
          );
        }),
      ]);
    } catch (err) {
      if (this.current === sql) this.lost((err as Error).message);
      return;
    } finally {
      this.opts.clock.clearTimeout(timeout);
    }
    if (this.current === sql) this.armPing(sql);
  }
}
