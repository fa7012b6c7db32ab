// The per-second series of a load (SPEC §9 `--html`, `"series"` in the JSON): one point per second
// of the measured window, as columns (compact, and what a plot reads). `loadtest/seconds.ts` builds
// them from what the load processes record; `soak` adds the gateway's samples.

/** One point per second of the measured window; index i covers [i, i+1) s after it opened. */
export interface LoadSeries {
  /** Seconds since the measured window opened (the start of each second). */
  t: number[];
  /** Frames acknowledged in that second (the last second also holds the answers of the drain). */
  ackedPerSec: number[];
  /** Ack latency of the frames acknowledged in that second, ms (null: none was). */
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
  /** Errors counted in that second, by code (failed calls and failed connection attempts). */
  errors: Record<string, number[]>;
  /** Agent sockets open at the end of that second (every load process). */
  sessions: number[];
}

/** `soak`'s series: the load's, and the gateway's sample taken at the end of each second. */
export interface SoakSeries extends LoadSeries {
  rssKiB: (number | null)[];
  eventLoopDelayP99Ms: (number | null)[];
  eventLoopDelayMaxMs: (number | null)[];
}

/** What `soak` samples (soak/samples.ts): `t` in seconds since the load started. */
export interface GatewaySample {
  t: number;
  rssKiB: number;
  lagP99Ms: number | null;
  lagMaxMs: number | null;
}

export function emptySeries(): LoadSeries {
  return { t: [], ackedPerSec: [], p50Ms: [], p99Ms: [], errors: {}, sessions: [] };
}

/**
 * Adds the gateway's samples to a load's series: the sample taken closest to the end of second i
 * (t ≈ i + 1; the soak samples on the second) is point i; a second without one is null.
 */
export function withSamples(series: LoadSeries, samples: readonly GatewaySample[]): SoakSeries {
  const n = series.t.length;
  const at: (GatewaySample | undefined)[] = new Array(n).fill(undefined);
  for (const s of samples) {
    const i = Math.round(s.t) - 1;
    if (i >= 0 && i < n) at[i] = s;
  }
  return {
    ...series,
    rssKiB: at.map((s) => s?.rssKiB ?? null),
    eventLoopDelayP99Ms: at.map((s) => s?.lagP99Ms ?? null),
    eventLoopDelayMaxMs: at.map((s) => s?.lagMaxMs ?? null),
  };
}

/** Every error code's count per second, summed (0 where none). */
export function errorsPerSecond(series: LoadSeries): number[] {
  const out: number[] = series.t.map(() => 0);
  for (const counts of Object.values(series.errors)) {
    for (let i = 0; i < out.length; i++) out[i]! += counts[i] ?? 0;
  }
  return out;
}
