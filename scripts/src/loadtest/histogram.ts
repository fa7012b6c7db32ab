// Ack latency is recorded in microseconds in HDR histograms; workers ship theirs to the parent as
// compressed base64 (the HdrHistogram wire format) and the parent merges them.
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

export type { Histogram };

/** 1 µs to 2 min at 3 significant digits; larger values still fit (autoResize). */
export function newLatencyHistogram(): Histogram {
  return build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  });
}

export function encodeHistogram(h: Histogram): string {
  return encodeIntoCompressedBase64(h);
}

/** Adds an encoded histogram into `into` (an empty string adds nothing). */
export function mergeEncoded(into: Histogram, encoded: string): void {
  if (!encoded) return;
  into.add(decodeFromCompressedBase64(encoded));
}

export interface LatencyMs {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

const ms = (us: number): number => Math.round(us) / 1000;

/** Percentiles of a microsecond histogram, in milliseconds (0 when nothing was recorded). */
export function latencyMs(h: Histogram): LatencyMs {
  if (h.totalCount === 0) return { p50: 0, p95: 0, p99: 0, max: 0 };
  return {
    p50: ms(h.getValueAtPercentile(50)),
    p95: ms(h.getValueAtPercentile(95)),
    p99: ms(h.getValueAtPercentile(99)),
    max: ms(h.maxValue),
  };
}
