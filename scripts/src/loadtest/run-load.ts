// Runs one load over P worker processes (or in this process when procs is 0) and returns the
// merged report. Phases: connect (ramped, bounded) → onConnected → warm-up (load, not measured) →
// onMeasureStart → measured window of `durationMs` → onMeasureEnd → cool-down (load, not measured)
// → drain (bounded) → close. Every wait is bounded, so a hung server cannot hold the run.
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EngineConfig, EngineSnapshot } from './engine-api.js';
import { type Histogram, type LatencyMs, latencyMs, mergeEncoded, newLatencyHistogram } from './histogram.js';
import { forkWorker, inProcessWorker, type WorkerHandle } from './worker-handle.js';
import type { LoadMode } from './schedule.js';
import type { ToWorker } from './worker-loop.js';
import { SecondsMerger } from './seconds.js';
import type { LoadSeries } from '../report/series.js';

export type { LoadMode };

export interface LoadOptions {
  url: string;
  tokens: string[];
  /** For `rate`, the total over all agents. */
  mode: LoadMode;
  /** Length of the measured window. */
  durationMs: number;
  /** Load before the window (default 0: measure from the first frame). */
  warmupMs?: number;
  /** Load after the window, so that its end is steady too (default 0). */
  cooldownMs?: number;
  metadataKeys: number;
  /** Worker processes; 0 runs the load in this process. */
  procs: number;
  /** Total new connections per second. */
  rampPerSec: number;
  requestTimeoutMs?: number;
  drainMs?: number;
  /** How often onProgress is called (default 1 s); workers report every second regardless. */
  progressEveryMs?: number;
  onProgress?: (p: LoadProgress) => void;
  /** After the connect phase, before the first frame (e.g. to snapshot server counters). */
  onConnected?: (p: LoadProgress) => Promise<void> | void;
  /** Right before the measured window opens (e.g. to snapshot server counters). */
  onMeasureStart?: () => Promise<void> | void;
  /** Right after the measured window closed, while the load still runs. */
  onMeasureEnd?: () => Promise<void> | void;
  signal?: AbortSignal;
}

type LoadPhase = 'connecting' | 'warmup' | 'running' | 'cooldown' | 'closing';

export interface LoadProgress {
  phase: LoadPhase;
  /** Since the phase began. */
  elapsedMs: number;
  agents: number;
  live: number;
  connected: number;
  sent: number;
  acked: number;
  errors: Record<string, number>;
  reconnects: number;
  /** Acked frames per second since the previous progress report. */
  framesPerSec: number;
  /** p99 ack latency (ms) since the previous progress report. */
  recentP99Ms: number;
}

export interface LoadReport {
  agents: number;
  durationS: number;
  sent: number;
  acked: number;
  /** Of `acked`: UpdateStats and BatchUpdateMetadata frames. */
  ackedByMethod: { stats: number; metadata: number };
  /** Every frame of the run, measured or not (warm-up, cool-down): to compare with what was stored. */
  allFrames: { acked: { stats: number; metadata: number }; unknown: number };
  errors: Record<string, number>;
  framesPerSec: number;
  latencyMs: LatencyMs;
  /** Sockets open when the load started. */
  connected: number;
  reconnects: number;
  disconnects: number;
  skipped: { disconnected: number; inflightCap: number };
  mode: string;
  procs: number;
  maxScheduleLagMs: number;
  /** One point per second of the measured window (every process's seconds added up). */
  series: LoadSeries;
}

interface WorkerState {
  handle: WorkerHandle;
  snapshot: EngineSnapshot | undefined;
  connected: boolean;
  done: boolean;
  exited: boolean;
  total: string;
  /** Progress windows received so far: the fallback when no final histogram arrives. */
  runWindows: Histogram;
}

const WORKER_PROGRESS_MS = 1000;

/**
 * The source address of load process `index` when the target is on loopback: one (source, target)
 * pair has only the ephemeral port range (about 28,000 ports), and a connect() that must search a
 * nearly full range stalls the process in the kernel. Each process connects from its own loopback
 * address (127.0.<index+1>.1, all of 127.0.0.0/8 is the loopback interface), so N processes hold N
 * times as many sockets. Elsewhere the system picks the address.
 */
function sourceAddress(url: string, index: number, procs: number): string | undefined {
  if (procs < 1 || index > 250) return undefined;
  const host = new URL(url).hostname;
  return /^127\.\d+\.\d+\.\d+$/.test(host) ? `127.0.${index + 1}.1` : undefined;
}

/** Splits `n` items into `parts` contiguous chunk sizes that differ by at most one. */
export function splitSizes(n: number, parts: number): number[] {
  const base = Math.floor(n / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < n % parts ? 1 : 0));
}

function describeMode(mode: LoadMode): string {
  switch (mode.kind) {
    case 'interval':
      return `interval(stats ${mode.statsIntervalMs}ms, metadata ${mode.metadataIntervalMs}ms)`;
    case 'rate':
      return `rate(${mode.framesPerSec}/s)`;
    case 'inflight':
      return `inflight(${mode.perAgent}/agent)`;
    default:
      return 'idle';
  }
}

export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const run = new LoadRun(opts);
  try {
    await run.phases();
  } finally {
    await run.close();
  }
  return run.report();
}

/** One load: its workers, its phase, and the progress merged from what they report. */
class LoadRun {
  private readonly n: number;
  private readonly procs: number;
  private readonly drainMs: number;
  private readonly connectPhaseMs: number;
  private readonly workers: WorkerState[] = [];
  private phase: LoadPhase = 'connecting';
  private phaseStart = performance.now();
  /** Latency windows since the last progress report. */
  private recent = newLatencyHistogram();
  private lastAcked = 0;
  private lastReportAt = performance.now();
  private readonly changed = new EventEmitter();
  private readonly progressTimer: NodeJS.Timeout;
  private readonly aborted: Promise<void>;
  private windowMs = 0;
  private readonly seconds = new SecondsMerger();

  constructor(private readonly opts: LoadOptions) {
    this.n = opts.tokens.length;
    this.procs = Math.max(0, Math.min(opts.procs, Math.max(1, this.n)));
    this.drainMs = opts.drainMs ?? 5000;
    this.connectPhaseMs = Math.ceil((this.n / Math.max(1, opts.rampPerSec)) * 1000) + 15_000;
    this.startWorkers();
    this.progressTimer = setInterval(() => this.reportProgress(), opts.progressEveryMs ?? 1000);
    this.aborted = new Promise<void>((resolve) => {
      if (opts.signal?.aborted) resolve();
      opts.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /** Starts one worker per share of the agents and sends each its part of the load. */
  private startWorkers(): void {
    const { opts, n, procs } = this;
    let offset = 0;
    for (const [index, size] of splitSizes(n, Math.max(1, procs)).entries()) {
      const localAddress = sourceAddress(opts.url, index, procs);
      const share = n === 0 ? 0 : size / n;
      const mode: LoadMode =
        opts.mode.kind === 'rate' ? { kind: 'rate', framesPerSec: opts.mode.framesPerSec * share } : opts.mode;
      const config: EngineConfig = {
        url: opts.url,
        tokens: opts.tokens.slice(offset, offset + size),
        mode,
        metadataKeys: opts.metadataKeys,
        rampPerSec: Math.max(1, opts.rampPerSec * share),
        connectPhaseMs: this.connectPhaseMs,
        requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
        drainMs: this.drainMs,
        ...(localAddress ? { localAddress } : {}),
      };
      offset += size;
      const handle = procs === 0 ? inProcessWorker() : forkWorker();
      const w: WorkerState = {
        handle,
        snapshot: undefined,
        connected: false,
        done: false,
        exited: false,
        total: '',
        runWindows: newLatencyHistogram(),
      };
      this.workers.push(w);
      void handle.exited.then(() => {
        w.exited = true;
      });
      handle.send({ type: 'init', config, progressEveryMs: WORKER_PROGRESS_MS });
      this.listen(w);
    }
  }

  /** Keeps the latest snapshot of `w`, plus its latency windows. */
  private listen(w: WorkerState): void {
    w.handle.onMessage((msg) => {
      if (msg.type === 'stopped') return;
      w.snapshot = msg.snapshot;
      if (msg.type === 'progress' || msg.type === 'done') {
        mergeEncoded(this.recent, msg.window);
        mergeEncoded(w.runWindows, msg.window);
        this.seconds.add(msg.seconds);
      }
      if (msg.type === 'connected') w.connected = true;
      if (msg.type === 'done') {
        w.done = true;
        w.total = msg.total;
      }
      this.changed.emit('change');
    });
    void w.handle.exited.then(() => this.changed.emit('change'));
  }

  private aggregate(): LoadProgress {
    const p: LoadProgress = {
      phase: this.phase,
      elapsedMs: performance.now() - this.phaseStart,
      agents: this.n,
      live: 0,
      connected: 0,
      sent: 0,
      acked: 0,
      errors: {},
      reconnects: 0,
      framesPerSec: 0,
      recentP99Ms: 0,
    };
    for (const w of this.workers) {
      const s = w.snapshot;
      if (!s) continue;
      p.live += w.exited ? 0 : s.live;
      p.connected += s.connected;
      p.sent += s.sent;
      p.acked += s.acked;
      p.reconnects += s.reconnects;
      for (const [k, v] of Object.entries(s.errors)) p.errors[k] = (p.errors[k] ?? 0) + v;
    }
    return p;
  }

  private reportProgress(): void {
    const p = this.aggregate();
    const now = performance.now();
    p.framesPerSec = ((p.acked - this.lastAcked) * 1000) / Math.max(1, now - this.lastReportAt);
    p.recentP99Ms = latencyMs(this.recent).p99;
    this.lastAcked = p.acked;
    this.lastReportAt = now;
    this.recent = newLatencyHistogram();
    this.opts.onProgress?.(p);
  }

  /** Resolves when `pred` holds for every worker (or it exited), on abort, or after `ms`. */
  private waitAll(pred: (w: WorkerState) => boolean, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.workers.every((w) => w.exited || pred(w))) finish();
      };
      const timer = setTimeout(() => finish(), ms);
      const finish = () => {
        clearTimeout(timer);
        this.changed.off('change', check);
        resolve();
      };
      this.changed.on('change', check);
      void this.aborted.then(finish);
      check();
    });
  }

  private pause(ms: number): Promise<void> {
    return Promise.race([sleep(ms, undefined, { ref: false }), this.aborted]);
  }

  private broadcast(msg: ToWorker): void {
    for (const w of this.workers) w.handle.send(msg);
  }

  private enter(phase: LoadPhase): void {
    this.phase = phase;
    this.phaseStart = performance.now();
  }

  /** Connect, warm-up, the measured window, cool-down, drain: every wait bounded or cut by abort. */
  async phases(): Promise<void> {
    const { opts } = this;
    const isAborted = () => opts.signal?.aborted === true;
    await this.waitAll((w) => w.connected, this.connectPhaseMs + 10_000);
    const connected = this.aggregate().connected;
    if (!isAborted()) await opts.onConnected?.(this.aggregate());
    if (connected === 0 || isAborted()) return;
    const warmupMs = opts.warmupMs ?? 0;
    if (warmupMs > 0) {
      this.enter('warmup');
      this.broadcast({ type: 'load', measure: false });
      await this.pause(warmupMs);
      if (!isAborted()) await opts.onMeasureStart?.();
      this.broadcast({ type: 'measure' });
    } else {
      await opts.onMeasureStart?.();
      this.broadcast({ type: 'load', measure: true });
    }
    this.enter('running');
    const windowStart = performance.now();
    await this.pause(opts.durationMs);
    this.broadcast({ type: 'unmeasure' });
    this.windowMs = performance.now() - windowStart;
    this.enter('cooldown');
    if (!isAborted()) await opts.onMeasureEnd?.();
    if (opts.cooldownMs) await this.pause(opts.cooldownMs);
    this.broadcast({ type: 'finish' });
    await this.waitAll((w) => w.done, this.drainMs + 15_000);
  }

  /** Tells every worker to stop, waits (bounded) for their exits, then kills what is left. */
  async close(): Promise<void> {
    this.enter('closing');
    clearInterval(this.progressTimer);
    for (const w of this.workers) w.handle.send({ type: 'stop' });
    await Promise.race([
      Promise.all(this.workers.map((w) => w.handle.exited)),
      sleep(15_000, undefined, { ref: false }),
    ]);
    for (const w of this.workers) w.handle.kill();
  }

  /** The merged report of every worker's final snapshot and histogram. */
  report(): LoadReport {
    const final = this.aggregate();
    const total = newLatencyHistogram();
    let disconnects = 0;
    let maxLag = 0;
    const skipped = { disconnected: 0, inflightCap: 0 };
    const ackedByMethod = { stats: 0, metadata: 0 };
    const allFrames = { acked: { stats: 0, metadata: 0 }, unknown: 0 };
    for (const w of this.workers) {
      if (w.total) mergeEncoded(total, w.total);
      else total.add(w.runWindows);
      const s = w.snapshot;
      if (!s) continue;
      ackedByMethod.stats += s.ackedByMethod.stats;
      ackedByMethod.metadata += s.ackedByMethod.metadata;
      allFrames.acked.stats += s.allFrames.acked.stats;
      allFrames.acked.metadata += s.allFrames.acked.metadata;
      allFrames.unknown += s.allFrames.unknown;
      disconnects += s.disconnects;
      maxLag = Math.max(maxLag, s.maxScheduleLagMs);
      skipped.disconnected += s.skipped.disconnected;
      skipped.inflightCap += s.skipped.inflightCap;
    }
    const durationS = Math.round(this.windowMs) / 1000;
    return {
      agents: this.n,
      durationS,
      sent: final.sent,
      acked: final.acked,
      ackedByMethod,
      allFrames,
      errors: final.errors,
      framesPerSec: durationS > 0 ? Math.round((final.acked / durationS) * 10) / 10 : 0,
      latencyMs: latencyMs(total),
      connected: final.connected,
      reconnects: final.reconnects,
      disconnects,
      skipped,
      mode: describeMode(this.opts.mode),
      procs: this.procs,
      maxScheduleLagMs: maxLag,
      series: this.seconds.series(this.windowMs),
    };
  }
}
