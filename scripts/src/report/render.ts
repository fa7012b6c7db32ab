// What each command's report shows: `loadtest` its load per second, `soak` that and the gateway's
// RSS and event-loop delay, `bench` its runs side by side (the saturation load, and the fixed-rate
// load beside it). The same charts make the HTML page and the standalone SVG; both are rendered
// from the JSON report itself, so the page holds what the JSON holds.
import { writeFileSync } from 'node:fs';
import { htmlPage } from './page.js';
import { emptySeries, errorsPerSecond, type LoadSeries } from './series.js';
import { type Chart, standaloneSvg } from './svg.js';

export const REPORT_KINDS = ['loadtest', 'soak', 'bench'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const nums = (v: unknown): (number | null)[] =>
  Array.isArray(v) ? v.map((x) => (typeof x === 'number' ? x : null)) : [];
const text = (v: unknown): string => (typeof v === 'number' || typeof v === 'string' ? String(v) : 'n/a');

/** A series from a report, whatever it holds (a malformed one is empty, not an exception). */
function seriesOf(v: unknown): LoadSeries {
  const o = obj(v);
  if (!Array.isArray(o['t'])) return emptySeries();
  const errors: Record<string, number[]> = {};
  for (const [k, x] of Object.entries(obj(o['errors']))) errors[k] = nums(x).map((n) => n ?? 0);
  return {
    t: nums(o['t']).map((n) => n ?? 0),
    ackedPerSec: nums(o['ackedPerSec']).map((n) => n ?? 0),
    p50Ms: nums(o['p50Ms']),
    p99Ms: nums(o['p99Ms']),
    errors,
    sessions: nums(o['sessions']).map((n) => n ?? 0),
  };
}

/** Which command wrote `report`, from its shape. */
export function detectKind(report: unknown): ReportKind | undefined {
  const o = obj(report);
  if (Array.isArray(o['runs'])) return 'bench';
  if (Array.isArray(o['samples']) && 'frames' in o) return 'soak';
  if ('latencyMs' in o && 'framesPerSec' in o) return 'loadtest';
  return undefined;
}

function loadCharts(s: LoadSeries): Chart[] {
  return [
    { title: 'Acked frames/s', t: s.t, lines: [{ label: 'acked', values: s.ackedPerSec }] },
    {
      title: 'Ack latency (ms)',
      t: s.t,
      lines: [
        { label: 'p50', values: s.p50Ms },
        { label: 'p99', values: s.p99Ms },
      ],
    },
    {
      title: 'Errors per second, by code',
      t: s.t,
      lines: Object.entries(s.errors).map(([code, values]) => ({ label: code, values })),
      empty: 'no errors',
    },
    { title: 'Connected sessions', t: s.t, lines: [{ label: 'sessions', values: s.sessions }] },
  ];
}

function soakCharts(report: Obj): Chart[] {
  const raw = obj(report['series']);
  const s = seriesOf(raw);
  const mib = nums(raw['rssKiB']).map((k) => (k === null ? null : Math.round((k / 1024) * 10) / 10));
  return [
    ...loadCharts(s),
    { title: 'Gateway RSS (MiB)', t: s.t, lines: [{ label: 'RSS', values: mib }] },
    {
      title: 'Gateway event-loop delay (ms)',
      t: s.t,
      lines: [
        { label: 'p99', values: nums(raw['eventLoopDelayP99Ms']) },
        { label: 'max', values: nums(raw['eventLoopDelayMaxMs']) },
      ],
    },
  ];
}

const BENCH_METRICS: readonly [string, (s: LoadSeries) => readonly (number | null)[]][] = [
  ['acked frames/s', (s) => s.ackedPerSec],
  ['ack latency p50 (ms)', (s) => s.p50Ms],
  ['ack latency p99 (ms)', (s) => s.p99Ms],
  ['errors per second', errorsPerSecond],
  ['connected sessions', (s) => s.sessions],
];

/** A chart per metric and load, a line per run: saturation on the left, the fixed rate on the right. */
function benchCharts(report: Obj): { charts: Chart[]; columns: number } {
  const runs = (report['runs'] as unknown[]).map(obj);
  const loads: { title: string; runs: { name: string; s: LoadSeries }[] }[] = [
    { title: 'saturation', runs: runs.map((r) => ({ name: text(r['name']), s: seriesOf(r['series']) })) },
  ];
  const fixed = runs.filter((r) => obj(r['fixedRate'])['series'] !== undefined);
  if (fixed.length) {
    const rate = text(obj(fixed[0]!['fixedRate'])['offeredPerSec']);
    const fixedRuns = fixed.map((r) => ({ name: text(r['name']), s: seriesOf(obj(r['fixedRate'])['series']) }));
    loads.push({ title: `${rate} frames/s`, runs: fixedRuns });
  }
  const charts: Chart[] = [];
  for (const [metric, pick] of BENCH_METRICS) {
    for (const load of loads) {
      const longest = load.runs.reduce((a, r) => (r.s.t.length > a.length ? r.s.t : a), [] as number[]);
      charts.push({
        title: `${load.title}: ${metric}`,
        t: longest,
        lines: load.runs.map((r) => ({ label: r.name, values: pick(r.s) })),
      });
    }
  }
  return { charts, columns: loads.length };
}

function headline(kind: ReportKind, r: Obj): string[] {
  if (kind === 'bench') {
    const runs = (r['runs'] as unknown[]).map(obj);
    const c = obj(r['config']);
    return [
      `${text(c['agents'])} agents, ${text(c['durationS'])} s per load after ${text(c['warmupS'])} s of warm-up`,
      runs
        .map(
          (x) => `${text(x['name'])}: ${text(x['framesPerSec'])} frames/s, p99 ${text(obj(x['latencyMs'])['p99'])} ms`,
        )
        .join('; '),
    ];
  }
  const frames = kind === 'soak' ? obj(r['frames']) : r;
  const l = obj(frames['latencyMs']);
  const errors = Object.entries(obj(frames['errors'])).map(([k, v]) => `${k}: ${text(v)}`);
  return [
    `${text(r['agents'])} agents, ${text(r['durationS'])} s measured` +
      (kind === 'loadtest' ? `, ${text(r['mode'])}` : ''),
    `${text(frames['acked'])} frames acknowledged of ${text(frames['sent'])} sent; ack latency p50 ${text(l['p50'])} ms, ` +
      `p99 ${text(l['p99'])} ms; errors: ${errors.length ? errors.join(', ') : 'none'}`,
  ];
}

function charts(kind: ReportKind, r: Obj): { charts: Chart[]; columns: number } {
  if (kind === 'bench') return benchCharts(r);
  return { charts: kind === 'soak' ? soakCharts(r) : loadCharts(seriesOf(r['series'])), columns: 0 };
}

/** The self-contained HTML page of a report (a parsed JSON value). */
export function renderHtml(kind: ReportKind, report: unknown): string {
  const r = obj(report);
  return htmlPage({ kind, headline: headline(kind, r), ...charts(kind, r), report });
}

/** The report's charts as one standalone SVG document. */
export function renderSvg(kind: ReportKind, report: unknown): string {
  const r = obj(report);
  const c = charts(kind, r);
  return standaloneSvg(`agentgate ${kind}`, headline(kind, r), c.charts, c.columns || 2);
}

/**
 * Writes a command's report: the JSON (`--json`) and the HTML page (`--html`), the page rendered
 * from the very JSON text written.
 */
export function writeReports(
  kind: ReportKind,
  report: object,
  files: { json?: string | undefined; html?: string | undefined },
): void {
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (files.json) writeFileSync(files.json, json);
  if (files.html) writeFileSync(files.html, renderHtml(kind, JSON.parse(json)));
}
