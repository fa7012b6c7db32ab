// The gateway's /metrics in Prometheus text format: parse, scrape, select and sum samples, and the
// SPEC §6 lookup and cache counters in one read.
import { httpRequest } from './http.ts';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/g;

function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = SAMPLE_RE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(LABEL_RE)) {
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    const v = m[3]!;
    out.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

export async function scrape(httpUrl: string): Promise<Sample[]> {
  const r = await httpRequest(`${httpUrl}/metrics`);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parseMetrics(r.body);
}

/** Samples named `name` whose labels include every pair of `labels`. */
export function samples(all: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The sum of the matching samples (0 when none match). */
export function metricSum(all: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples(all, name, labels).reduce((a, s) => a + s.value, 0);
}

/** The §6 counters, read in one scrape. */
export async function authCounters(
  httpUrl: string,
): Promise<{ connect: number; refresh: number; fallback: number; hit: number; miss: number }> {
  const all = await scrape(httpUrl);
  return {
    connect: metricSum(all, 'agentgate_workspace_lookups_total', { reason: 'connect' }),
    refresh: metricSum(all, 'agentgate_workspace_lookups_total', { reason: 'refresh' }),
    fallback: metricSum(all, 'agentgate_workspace_lookups_total', { reason: 'fallback' }),
    hit: metricSum(all, 'agentgate_identity_cache_total', { result: 'hit' }),
    miss: metricSum(all, 'agentgate_identity_cache_total', { result: 'miss' }),
  };
}
