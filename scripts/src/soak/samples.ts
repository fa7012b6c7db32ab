// The soak's samples of the gateway, every few seconds: its RSS (/proc; with workers the primary and
// every worker) and its event-loop delay and sessions (/metrics: prom-client's
// `agentgate_nodejs_eventloop_lag_*` is reset at each scrape, so each sample is one window).
import { metricValue } from '../lab/http.js';
import type { ServerProcess } from '../lab/process.js';
import { childPids, rssKiB } from '../lab/proc-stats.js';

export interface Sample {
  /** Seconds since the load started (negative while connecting). */
  t: number;
  /** The gateway's RSS: the process, or with workers the primary and every worker. */
  rssKiB: number;
  /** With workers: each worker's RSS, by PID. */
  workerRssKiB?: Record<number, number>;
  /** p99 / max of the event-loop delay over the window since the previous sample, ms (null: no answer). */
  lagP99Ms: number | null;
  lagMaxMs: number | null;
  sessions: number | null;
}

/** One sample; its `t` is set by the caller. */
async function sample(gw: ServerProcess, workers: number): Promise<Sample> {
  const workerPids = workers > 1 ? childPids(gw.pid) : [];
  const workerRss = Object.fromEntries(workerPids.map((pid) => [pid, rssKiB(pid)]));
  const rss = rssKiB(gw.pid) + Object.values(workerRss).reduce((a, b) => a + b, 0);
  let text = '';
  try {
    const r = await fetch(`${gw.httpUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
    text = await r.text();
  } catch {
    /* a sample without metrics */
  }
  const ms = (s: number | null) => (s === null ? null : Math.round(s * 1e6) / 1e3);
  return {
    t: 0,
    rssKiB: rss,
    ...(workers > 1 ? { workerRssKiB: workerRss } : {}),
    lagP99Ms: ms(metricValue(text, 'agentgate_nodejs_eventloop_lag_p99_seconds')),
    lagMaxMs: ms(metricValue(text, 'agentgate_nodejs_eventloop_lag_max_seconds')),
    sessions: metricValue(text, 'agentgate_sessions'),
  };
}

/** How long before the end of each second of the load its sample is taken (so none races the load's end). */
const EARLY_MS = 50;

/** Samples one gateway, on demand and every `everyMs`, with times relative to the load's start. */
export class Sampler {
  readonly samples: Sample[] = [];
  /** The samples taken while the load ran (from its start to its end). */
  private readonly inLoad: Sample[] = [];
  private loadStart = performance.now();
  private ended = false;
  private timer: NodeJS.Timeout | undefined;
  private everyMs = 0;

  constructor(
    private readonly gw: ServerProcess,
    private readonly workers: number,
  ) {}

  async take(): Promise<void> {
    const at = performance.now();
    const within = !this.ended;
    const s = await sample(this.gw, this.workers);
    // Relative to the load's start as it is now: loadStarted() may have moved it meanwhile.
    s.t = Math.round(((at - this.loadStart) / 1000) * 10) / 10;
    this.samples.push(s);
    if (within && at >= this.loadStart) this.inLoad.push(s);
  }

  /**
   * Takes a sample every `everyMs` from the load's start, each EARLY_MS before its due time, on a
   * schedule that does not drift (skipping a beat while the previous one is still out).
   */
  every(everyMs: number): void {
    clearTimeout(this.timer);
    this.everyMs = everyMs;
    const t0 = this.loadStart;
    let k = 1;
    let sampling = false;
    const next = () => {
      k = Math.max(k, Math.floor((performance.now() - t0 + EARLY_MS) / everyMs) + 1);
      const due = t0 + k * everyMs - EARLY_MS;
      this.timer = setTimeout(() => {
        k++;
        if (!sampling) {
          sampling = true;
          void this.take().finally(() => {
            sampling = false;
          });
        }
        next();
      }, due - performance.now());
    };
    next();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /**
   * The load starts now: the samples taken so far (while connecting) get negative times, and the
   * next ones fall at the end of each of the load's seconds (the series' points, report/series.ts).
   */
  loadStarted(): void {
    const shift = (performance.now() - this.loadStart) / 1000;
    for (const s of this.samples) s.t = Math.round((s.t - shift) * 10) / 10;
    this.loadStart = performance.now();
    if (this.timer) this.every(this.everyMs);
  }

  /** The load's window ended: no more samples on the timer (one would catch the sockets closing). */
  loadEnded(): void {
    this.stop();
    this.ended = true;
  }

  /** The samples of the load itself, in the order they were taken. */
  during(): Sample[] {
    return [...this.inLoad];
  }
}
