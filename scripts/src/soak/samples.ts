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

async function sample(gw: ServerProcess, t: number, workers: number): Promise<Sample> {
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
    t: Math.round(t * 10) / 10,
    rssKiB: rss,
    ...(workers > 1 ? { workerRssKiB: workerRss } : {}),
    lagP99Ms: ms(metricValue(text, 'agentgate_nodejs_eventloop_lag_p99_seconds')),
    lagMaxMs: ms(metricValue(text, 'agentgate_nodejs_eventloop_lag_max_seconds')),
    sessions: metricValue(text, 'agentgate_sessions'),
  };
}

/** Samples one gateway, on demand and every `everyMs`, with times relative to the load's start. */
export class Sampler {
  readonly samples: Sample[] = [];
  private loadStart = performance.now();
  private loadEnd: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly gw: ServerProcess,
    private readonly workers: number,
  ) {}

  async take(): Promise<void> {
    this.samples.push(await sample(this.gw, (performance.now() - this.loadStart) / 1000, this.workers));
  }

  /** Takes a sample every `everyMs` (skipping a beat while the previous one is still out). */
  every(everyMs: number): void {
    let sampling = false;
    this.timer = setInterval(() => {
      if (sampling) return;
      sampling = true;
      void this.take().finally(() => {
        sampling = false;
      });
    }, everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The load starts now: the samples taken so far (while connecting) get negative times. */
  loadStarted(): void {
    const shift = (performance.now() - this.loadStart) / 1000;
    for (const s of this.samples) s.t = Math.round((s.t - shift) * 10) / 10;
    this.loadStart = performance.now();
  }

  loadEnded(): void {
    this.loadEnd = performance.now();
  }

  /** The samples of the load itself (from its start to half a second past its end). */
  during(): Sample[] {
    const end = this.loadEnd === undefined ? undefined : (this.loadEnd - this.loadStart) / 1000 + 0.5;
    return this.samples.filter((s) => s.t >= 0 && (end === undefined || s.t <= end));
  }
}
