// Runs one load over P worker processes (or in this process when procs is 0) and returns the
// merged report. Phases: connect (ramped, bounded) → onConnected → warm-up (load, not measured) →
// onMeasureStart → measured window of `durationMs` → onMeasureEnd → cool-down (load, not measured)
// → drain (bounded) → close. Every wait is bounded, so a hung server cannot hold the run.
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { EngineConfig, EngineSnapshot, LoadMode } from './engine.js';
import { type Histogram, type LatencyMs, latencyMs, mergeEncoded, newLatencyHistogram } from './histogram.js';
import { type FromWorker, serveWorker, type ToWorker } from './worker-loop.js';

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
}

interface WorkerHandle {
  pid: number | undefined;
  send(msg: ToWorker): void;
  onMessage(handler: (msg: FromWorker) => void): void;
  exited: Promise<void>;
  kill(): void;
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
const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
/** Child processes of every load that is running, so that a caller's cleanup can kill them by PID. */
export const liveWorkerPids = new Set<number>();

function forkWorker(): WorkerHandle {
  const entry = here.replace(/run-load\.(ts|js)$/, fromSource ? 'worker.ts' : 'worker.js');
  const child: ChildProcess = fork(entry, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: fromSource ? ['--import', 'tsx'] : [],
  });
  const pid = child.pid;
  if (pid !== undefined) liveWorkerPids.add(pid);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      if (pid !== undefined) liveWorkerPids.delete(pid);
      resolve();
    }),
  );
  return {
    pid,
    send: (msg) => {
      if (child.connected) child.send(msg);
    },
    onMessage: (handler) => child.on('message', (m) => handler(m as FromWorker)),
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

function inProcessWorker(): WorkerHandle {
  const toWorker = new EventEmitter();
  const toParent = new EventEmitter();
  const exited = serveWorker({
    send: async (msg) => {
      setImmediate(() => toParent.emit('message', msg));
    },
    onMessage: (handler) => toWorker.on('message', handler),
  });
  return {
    pid: undefined,
    send: (msg) => setImmediate(() => toWorker.emit('message', msg)),
    onMessage: (handler) => toParent.on('message', handler),
    exited,
    kill: () => {},
  };
}

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
  const n = opts.tokens.length;
  const procs = Math.max(0, Math.min(opts.procs, Math.max(1, n)));
  const sizes = splitSizes(n, Math.max(1, procs));
  const drainMs = opts.drainMs ?? 5000;
  const progressEveryMs = opts.progressEveryMs ?? 1000;
  const connectPhaseMs = Math.ceil((n / Math.max(1, opts.rampPerSec)) * 1000) + 15_000;

  const workers: WorkerState[] = [];
  let offset = 0;
  for (const [index, size] of sizes.entries()) {
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
      connectPhaseMs,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      drainMs,
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
    workers.push(w);
    void handle.exited.then(() => {
      w.exited = true;
    });
    handle.send({ type: 'init', config, progressEveryMs: WORKER_PROGRESS_MS });
  }

  // Progress: the latest snapshot of each worker, plus the latency windows since the last report.
  let phase: LoadPhase = 'connecting';
  let phaseStart = performance.now();
  let recent = newLatencyHistogram();
  let lastAcked = 0;
  let lastReportAt = performance.now();
  const changed = new EventEmitter();
  for (const w of workers) {
    w.handle.onMessage((msg) => {
      if (msg.type === 'stopped') return;
      w.snapshot = msg.snapshot;
      if (msg.type === 'progress' || msg.type === 'done') {
        mergeEncoded(recent, msg.window);
        mergeEncoded(w.runWindows, msg.window);
      }
      if (msg.type === 'connected') w.connected = true;
      if (msg.type === 'done') {
        w.done = true;
        w.total = msg.total;
      }
      changed.emit('change');
    });
    void w.handle.exited.then(() => changed.emit('change'));
  }

  const aggregate = (): LoadProgress => {
    const p: LoadProgress = {
      phase,
      elapsedMs: performance.now() - phaseStart,
      agents: n,
      live: 0,
      connected: 0,
      sent: 0,
      acked: 0,
      errors: {},
      reconnects: 0,
      framesPerSec: 0,
      recentP99Ms: 0,
    };
    for (const w of workers) {
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
  };
  const reportProgress = (): void => {
    const p = aggregate();
    const now = performance.now();
    p.framesPerSec = ((p.acked - lastAcked) * 1000) / Math.max(1, now - lastReportAt);
    p.recentP99Ms = latencyMs(recent).p99;
    lastAcked = p.acked;
    lastReportAt = now;
    recent = newLatencyHistogram();
    opts.onProgress?.(p);
  };
  const progressTimer = setInterval(reportProgress, progressEveryMs);

  const aborted = new Promise<void>((resolve) => {
    if (opts.signal?.aborted) resolve();
    opts.signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  /** Resolves when `pred` holds for every worker (or it exited), on abort, or after `ms`. */
  const waitAll = (pred: (w: WorkerState) => boolean, ms: number): Promise<void> =>
    new Promise((resolve) => {
      const check = () => {
        if (workers.every((w) => w.exited || pred(w))) finish();
      };
      const timer = setTimeout(() => finish(), ms);
      const finish = () => {
        clearTimeout(timer);
        changed.off('change', check);
        resolve();
      };
      changed.on('change', check);
      void aborted.then(finish);
      check();
    });

  const pause = (ms: number): Promise<void> => Promise.race([sleep(ms), aborted]);
  const broadcast = (msg: ToWorker): void => {
    for (const w of workers) w.handle.send(msg);
  };

  let windowMs = 0;
  try {
    await waitAll((w) => w.connected, connectPhaseMs + 10_000);
    const connected = aggregate().connected;
    if (!opts.signal?.aborted) await opts.onConnected?.(aggregate());
    if (connected > 0 && !opts.signal?.aborted) {
      const warmupMs = opts.warmupMs ?? 0;
      const enter = (p: LoadPhase) => {
        phase = p;
        phaseStart = performance.now();
      };
      if (warmupMs > 0) {
        enter('warmup');
        broadcast({ type: 'load', measure: false });
        await pause(warmupMs);
        if (!opts.signal?.aborted) await opts.onMeasureStart?.();
        broadcast({ type: 'measure' });
      } else {
        await opts.onMeasureStart?.();
        broadcast({ type: 'load', measure: true });
      }
      enter('running');
      const windowStart = performance.now();
      await pause(opts.durationMs);
      broadcast({ type: 'unmeasure' });
      windowMs = performance.now() - windowStart;
      enter('cooldown');
      if (!opts.signal?.aborted) await opts.onMeasureEnd?.();
      if (opts.cooldownMs) await pause(opts.cooldownMs);
      broadcast({ type: 'finish' });
      await waitAll((w) => w.done, drainMs + 15_000);
    }
  } finally {
    phase = 'closing';
    phaseStart = performance.now();
    clearInterval(progressTimer);
    for (const w of workers) w.handle.send({ type: 'stop' });
    await Promise.race([Promise.all(workers.map((w) => w.handle.exited)), sleep(15_000)]);
    for (const w of workers) w.handle.kill();
  }

  const final = aggregate();
  const total = newLatencyHistogram();
  let disconnects = 0;
  let maxLag = 0;
  const skipped = { disconnected: 0, inflightCap: 0 };
  const ackedByMethod = { stats: 0, metadata: 0 };
  const allFrames = { acked: { stats: 0, metadata: 0 }, unknown: 0 };
  for (const w of workers) {
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
  const durationS = Math.round(windowMs) / 1000;
  return {
    agents: n,
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
    mode: describeMode(opts.mode),
    procs,
    maxScheduleLagMs: maxLag,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
