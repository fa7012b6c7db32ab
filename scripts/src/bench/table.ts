// The bench's printed tables.
import { formatErrors } from '../loadtest/report.js';
import type { RunResult } from './measure.js';

interface IdleSide {
  connected: number;
  rssBeforeKiB: number;
  rssConnectedKiB: number;
  rssKiBPerSession: number;
}

export interface IdleResult {
  sessions: number;
  echo: IdleSide;
  gateway: IdleSide;
  differenceKiBPerSession: number;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function formatBenchTable(runs: RunResult[], rate: number): string {
  const header = [
    'run',
    'frames/s',
    'p50 ms',
    'p99 ms',
    ...(rate > 0 ? [`p50 @${rate}/s`, `p99 @${rate}/s`] : []),
    'ws reads/frame',
    'stmts/frame',
    'cpu ms/kframe',
    'pg cpu ms/kframe',
    'RSS KiB/session',
    'errors',
  ];
  const rows = runs.map((r) => {
    if (r.error) return [r.name, `failed: ${r.error}`];
    const f = r.fixedRate;
    return [
      r.name,
      r.framesPerSec.toFixed(0),
      r.latencyMs.p50.toFixed(2),
      r.latencyMs.p99.toFixed(2),
      ...(rate > 0 ? [f ? f.latencyMs.p50.toFixed(2) : '-', f ? f.latencyMs.p99.toFixed(2) : '-'] : []),
      r.workspaceReadsPerFrame.toFixed(3),
      r.dbStatementsPerFrame.toFixed(3),
      r.cpuMsPerKFrame.toFixed(1),
      r.pgCpuMsPerKFrame.toFixed(1),
      r.rssKiBPerSession.toFixed(1),
      formatErrors({ ...r.errors, ...prefixed(f?.errors ?? {}) }),
    ];
  });
  return table(header, rows);
}

function prefixed(errors: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(errors).map(([k, v]) => [`@rate ${k}`, v]));
}

export function formatIdleTable(idle: IdleResult): string {
  const row = (name: string, s: IdleSide) => [
    name,
    String(s.connected),
    String(s.rssBeforeKiB),
    String(s.rssConnectedKiB),
    s.rssKiBPerSession.toFixed(1),
  ];
  return (
    table(
      ['idle sessions', 'connected', 'RSS before KiB', 'RSS connected KiB', 'KiB/session'],
      [row('echo', idle.echo), row('gateway (cached)', idle.gateway)],
    ) + `\ngateway - echo: ${idle.differenceKiBPerSession.toFixed(1)} KiB per idle session`
  );
}
