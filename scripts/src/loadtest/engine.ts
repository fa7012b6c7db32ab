// The load of one process: a set of agent sockets, opened at a bounded rate, driven in one of four
// modes. Frames sent inside the measurement window are counted (sent, acked, errors by code) and
// their ack latency recorded (µs, HDR histogram), from the moment a frame is handed to the socket
// until its answer is read; frames sent outside it (warm-up, cool-down) load the server only.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AgentClient,
  ConnectRefusedError,
  MAX_UNANSWERED_PER_SESSION,
  RpcCallError,
  shouldReconnect,
} from '@agentgate/shared';
import { callErrorKey, connectErrorKey } from './error-keys.js';
import { type AgentTraffic, makeMetadata, makeStats, metadataKeyNames, newTraffic } from './frames.js';
import { encodeHistogram, type Histogram, newLatencyHistogram } from './histogram.js';
import { type FrameMethod as Method, startOpenLoop } from './schedule.js';
import { SecondRecorder, type SecondWire } from './seconds.js';
import type { EngineConfig, EngineSnapshot } from './engine-api.js';

/**
 * Handshakes in progress per load process at most: under the gateway's 64 token checks at once
 * (SPEC §3, beyond them 503), so that one load process connects without being refused.
 */
const MAX_PENDING_HANDSHAKES = 48;
/** Failed attempts after which an agent no longer holds up the end of the connect phase. */
const SETTLE_AFTER_FAILURES = 3;
const RETRY_MAX_MS = 5000;
/** 401/403/404 mean the token (or the URL) is no good: retrying cannot help. */
const TERMINAL_STATUSES = new Set([401, 403, 404]);

interface LoadAgent {
  client: AgentClient;
  traffic: AgentTraffic;
  inflight: number;
  live: boolean;
  everOpened: boolean;
  connecting: boolean;
  terminal: boolean;
  failures: number;
  retryTimer: NodeJS.Timeout | undefined;
  pumpTimer: NodeJS.Timeout | undefined;
  nextIsStats: boolean;
}

export class LoadEngine {
  private readonly agents: LoadAgent[];
  private readonly keys: string[];
  private readonly total: Histogram = newLatencyHistogram();
  private window: Histogram = newLatencyHistogram();
  private readonly seconds = new SecondRecorder();
  private sent = 0;
  private acked = 0;
  private readonly ackedByMethod: Record<Method, number> = { stats: 0, metadata: 0 };
  private readonly allAcked: Record<Method, number> = { stats: 0, metadata: 0 };
  private allUnknown = 0;
  private readonly errors: Record<string, number> = {};
  private live = 0;
  private connected = 0;
  private reconnects = 0;
  private disconnects = 0;
  private readonly skipped = { disconnected: 0, inflightCap: 0 };
  private maxLagMs = 0;
  private windowStart = 0;
  private windowMs = 0;
  private measuring = false;
  /** Measured frames that are still unanswered. */
  private measuredInflight = 0;
  /** Every frame still unanswered, measured or not. */
  private inflight = 0;
  private pendingHandshakes = 0;
  /** Frames are being sent. */
  private running = false;
  private stopScheduler: (() => void) | undefined;
  /** Results after this are ignored (the drain ended; leftovers were counted as unanswered). */
  private booksClosed = false;
  private stopping = false;
  private readonly inflightCap: number;

  constructor(private readonly cfg: EngineConfig) {
    this.keys = metadataKeyNames(cfg.metadataKeys);
    this.inflightCap =
      cfg.mode.kind === 'inflight'
        ? Math.min(cfg.mode.perAgent, MAX_UNANSWERED_PER_SESSION)
        : MAX_UNANSWERED_PER_SESSION;
    this.agents = cfg.tokens.map((token) => this.makeAgent(token));
  }

  private makeAgent(token: string): LoadAgent {
    const client = new AgentClient({
      url: this.cfg.url,
      token,
      reconnect: false, // the engine reconnects itself, to count every failed attempt
      requestTimeoutMs: this.cfg.requestTimeoutMs,
      connectTimeoutMs: 10_000,
      ...(this.cfg.localAddress ? { localAddress: this.cfg.localAddress } : {}),
    });
    const a: LoadAgent = {
      client,
      traffic: newTraffic(),
      inflight: 0,
      live: false,
      everOpened: false,
      connecting: false,
      terminal: false,
      failures: 0,
      retryTimer: undefined,
      pumpTimer: undefined,
      nextIsStats: Math.random() < 0.5,
    };
    client.on('open', () => {
      a.live = true;
      this.seconds.sessions(++this.live);
      if (a.everOpened) this.reconnects++;
      a.everOpened = true;
      a.failures = 0;
      if (this.running) this.pump(a);
    });
    client.on('close', (code) => {
      if (!a.live) return; // a handshake that failed: connect() rejected and is handled there
      a.live = false;
      this.seconds.sessions(--this.live);
      if (this.stopping) return;
      this.disconnects++;
      if (shouldReconnect(code)) this.scheduleRetry(a);
      else a.terminal = true;
    });
    client.on('error', () => {
      /* socket errors surface as close; failed calls are counted where they settle */
    });
    return a;
  }

  private open(a: LoadAgent): void {
    if (this.stopping || a.connecting || a.live) return;
    a.connecting = true;
    this.pendingHandshakes++;
    a.client.connect().then(
      () => {
        a.connecting = false;
        this.pendingHandshakes--;
      },
      (err: unknown) => {
        a.connecting = false;
        this.pendingHandshakes--;
        if (this.stopping) return;
        this.count(connectErrorKey(err));
        a.failures++;
        if (err instanceof ConnectRefusedError && TERMINAL_STATUSES.has(err.status)) a.terminal = true;
        else this.scheduleRetry(a);
      },
    );
  }

  private scheduleRetry(a: LoadAgent): void {
    if (this.stopping || a.terminal || a.retryTimer) return;
    const ceiling = Math.min(RETRY_MAX_MS, 250 * 2 ** Math.min(a.failures, 8));
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    a.retryTimer = setTimeout(() => {
      a.retryTimer = undefined;
      this.open(a);
    }, delay);
  }

  private count(key: string, n = 1): void {
    this.errors[key] = (this.errors[key] ?? 0) + n;
    this.seconds.error(key, n);
  }

  /** Opens every socket at the configured rate; resolves when each is open, refused, or has failed a few times. */
  connectAll(): Promise<void> {
    const n = this.agents.length;
    const t0 = performance.now();
    let started = 0;
    let ticks = 0;
    return new Promise((resolve) => {
      const timer = setInterval(() => {
        const elapsed = performance.now() - t0;
        const allowed = Math.min(n, Math.floor((elapsed / 1000) * this.cfg.rampPerSec) + 1);
        while (started < allowed && this.pendingHandshakes < MAX_PENDING_HANDSHAKES && !this.stopping) {
          this.open(this.agents[started++]!);
        }
        // Checking every agent is O(n): do it every 10th tick only.
        const settled =
          started === n &&
          ticks++ % 10 === 0 &&
          this.agents.every((a) => a.live || a.terminal || (a.failures >= SETTLE_AFTER_FAILURES && !a.connecting));
        if (settled || elapsed >= this.cfg.connectPhaseMs || this.stopping) {
          clearInterval(timer);
          this.connected = this.live;
          resolve();
        }
      }, 5);
    });
  }

  /** Starts sending (optionally measuring from the first frame). */
  startLoad(measure: boolean): void {
    if (this.running || this.stopping) return;
    if (measure) this.beginMeasure();
    this.running = true;
    this.stopScheduler = this.startScheduler(performance.now());
  }

  beginMeasure(): void {
    if (this.measuring) return;
    this.measuring = true;
    this.windowStart = performance.now();
    this.seconds.begin(this.live);
  }

  endMeasure(): void {
    if (!this.measuring) return;
    this.measuring = false;
    this.windowMs = performance.now() - this.windowStart;
  }

  /** Stops sending and waits (bounded) for the frames still unanswered. */
  async finishLoad(): Promise<void> {
    this.endMeasure();
    this.running = false;
    this.stopScheduler?.();
    this.stopScheduler = undefined;
    for (const a of this.agents) {
      if (a.pumpTimer) clearTimeout(a.pumpTimer);
      a.pumpTimer = undefined;
    }
    const drainUntil = performance.now() + this.cfg.drainMs;
    // Every frame, not only the measured ones: the run's totals (allFrames) are read right after.
    while (this.inflight > 0 && performance.now() < drainUntil) await sleep(10);
    if (this.measuredInflight > 0) this.count('unanswered', this.measuredInflight);
    this.booksClosed = true;
    this.seconds.close();
  }

  private startScheduler(t0: number): () => void {
    const mode = this.cfg.mode;
    const n = this.agents.length;
    if (mode.kind === 'idle' || n === 0) return () => {};
    if (mode.kind === 'inflight') {
      for (const a of this.agents) this.pump(a);
      return () => {};
    }
    return startOpenLoop({
      mode,
      agents: n,
      t0,
      send: (i, method) => this.send(this.agents[i]!, method),
      late: (ms) => {
        if (ms > this.maxLagMs) this.maxLagMs = ms;
      },
    });
  }

  /** Closed loop: refill the agent's window of unanswered requests. */
  private pump(a: LoadAgent): void {
    if (this.cfg.mode.kind !== 'inflight' || !this.running) return;
    while (a.live && a.inflight < this.inflightCap) this.send(a);
  }

  private send(a: LoadAgent, method?: Method): void {
    const measured = this.measuring;
    if (!a.live) {
      if (measured) this.skipped.disconnected++;
      return;
    }
    if (a.inflight >= this.inflightCap) {
      if (measured) this.skipped.inflightCap++;
      return;
    }
    let m = method;
    if (!m) {
      m = a.nextIsStats ? 'stats' : 'metadata';
      a.nextIsStats = !a.nextIsStats;
    }
    a.inflight++;
    this.inflight++;
    if (measured) {
      this.sent++;
      this.measuredInflight++;
    }
    const t = performance.now();
    const p =
      m === 'stats'
        ? a.client.updateStats(makeStats(a.traffic))
        : a.client.batchUpdateMetadata(makeMetadata(this.keys, a.traffic));
    p.then(
      () => this.onAck(a, m, t, measured),
      (err: unknown) => this.onFail(a, err, measured),
    );
  }

  private onAck(a: LoadAgent, method: Method, t: number, measured: boolean): void {
    a.inflight--;
    this.inflight--;
    this.allAcked[method]++;
    if (measured && !this.booksClosed) {
      this.measuredInflight--;
      this.acked++;
      this.ackedByMethod[method]++;
      const us = Math.max(1, Math.round((performance.now() - t) * 1000));
      this.total.recordValue(us);
      this.window.recordValue(us);
      this.seconds.ack(us);
    }
    if (this.running) this.pump(a);
  }

  private onFail(a: LoadAgent, err: unknown, measured: boolean): void {
    a.inflight--;
    this.inflight--;
    if (!(err instanceof RpcCallError)) this.allUnknown++;
    if (measured && !this.booksClosed) {
      this.measuredInflight--;
      this.count(callErrorKey(err));
    }
    // Closed loop: do not hammer a server that answers errors; try again a little later.
    if (this.running && this.cfg.mode.kind === 'inflight' && !a.pumpTimer) {
      a.pumpTimer = setTimeout(() => {
        a.pumpTimer = undefined;
        this.pump(a);
      }, 20);
    }
  }

  snapshot(): EngineSnapshot {
    return {
      live: this.live,
      connected: this.connected,
      sent: this.sent,
      acked: this.acked,
      ackedByMethod: { ...this.ackedByMethod },
      allFrames: { acked: { ...this.allAcked }, unknown: this.allUnknown },
      errors: { ...this.errors },
      reconnects: this.reconnects,
      disconnects: this.disconnects,
      skipped: { ...this.skipped },
      maxScheduleLagMs: Math.round(this.maxLagMs * 1000) / 1000,
      windowMs: Math.round(this.measuring ? performance.now() - this.windowStart : this.windowMs),
    };
  }

  /** The latency histogram since the previous call, encoded (empty when nothing was recorded). */
  takeWindow(): string {
    const h = this.window;
    if (h.totalCount === 0) return '';
    this.window = newLatencyHistogram();
    return encodeHistogram(h);
  }

  /** The seconds of the window that ended since the previous call (with `all`, every one left). */
  takeSeconds(all = false): SecondWire[] {
    return this.seconds.take(all);
  }

  totalHistogram(): string {
    return this.total.totalCount === 0 ? '' : encodeHistogram(this.total);
  }

  /** Stops everything and closes every socket (bounded: a socket that does not close is terminated). */
  async close(): Promise<void> {
    this.stopping = true;
    this.running = false;
    this.stopScheduler?.();
    this.booksClosed = true;
    this.seconds.close();
    for (const a of this.agents) {
      if (a.retryTimer) clearTimeout(a.retryTimer);
      if (a.pumpTimer) clearTimeout(a.pumpTimer);
      a.retryTimer = undefined;
      a.pumpTimer = undefined;
    }
    await Promise.race([Promise.all(this.agents.map((a) => a.client.close(1000, 'load test over'))), sleep(5000)]);
  }
}
