// Line charts in plain SVG, written out here (no library, nothing loaded): a title, a legend, a
// y axis from 0 with round ticks, an x axis in seconds, and one polyline per series (broken where a
// value is missing). The same chart goes into the HTML page and into a standalone .svg file.
import { coord, esc } from './markup.js';

interface ChartLine {
  label: string;
  values: readonly (number | null)[];
}

export interface Chart {
  title: string;
  /** Seconds of each point. */
  t: readonly number[];
  lines: readonly ChartLine[];
  /** Shown in the plot area when there is nothing to draw (e.g. "no errors"). */
  empty?: string;
}

export const CHART_WIDTH = 480;
const CHART_HEIGHT = 220;
const M = { left: 54, right: 14, top: 44, bottom: 30 };
const PW = CHART_WIDTH - M.left - M.right;
const PH = CHART_HEIGHT - M.top - M.bottom;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf'];

/** A round step (1, 2 or 5 × 10^k) that cuts [0, span] into at most about `count` parts. */
export function niceStep(span: number, count: number): number {
  if (!(span > 0)) return 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const f = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
  return f * mag;
}

/** A tick's label: 12k, 1.5M, 0.25. */
export function tickLabel(v: number, step: number): string {
  if (Math.abs(v) >= 1e6 && step >= 1e5) return `${Number((v / 1e6).toFixed(step >= 1e6 ? 0 : 1))}M`;
  if (Math.abs(v) >= 1e4 && step >= 1e3) return `${Number((v / 1e3).toFixed(step >= 1e3 ? 0 : 1))}k`;
  const decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
  return v.toFixed(decimals);
}

function finiteValues(lines: readonly ChartLine[]): number[] {
  return lines.flatMap((l) => l.values.filter((v): v is number => v !== null && Number.isFinite(v)));
}

interface Scale {
  x: (t: number) => number;
  y: (v: number) => number;
  t0: number;
  t1: number;
  yMax: number;
  yStep: number;
}

function scale(c: Chart): Scale {
  const t0 = c.t.length ? Math.min(...c.t) : 0;
  const t1 = Math.max(t0 + 1, ...c.t);
  const max = Math.max(0, ...finiteValues(c.lines));
  const yStep = max > 0 ? niceStep(max, 4) : 1;
  const yMax = Math.max(yStep, Math.ceil(max / yStep - 1e-9) * yStep);
  return {
    x: (t) => M.left + ((t - t0) / (t1 - t0)) * PW,
    y: (v) => M.top + PH - (Math.max(0, v) / yMax) * PH,
    t0,
    t1,
    yMax,
    yStep,
  };
}

function axes(s: Scale): string {
  const out: string[] = [];
  for (let i = 0; i * s.yStep <= s.yMax + 1e-9; i++) {
    const v = i * s.yStep;
    const y = coord(s.y(v));
    out.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + PW}" y2="${y}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${M.left - 6}" y="${y}" dy="4" text-anchor="end">${esc(tickLabel(v, s.yStep))}</text>`);
  }
  // The points are whole seconds: no tick between two of them.
  const xStep = Math.max(1, niceStep(s.t1 - s.t0, 6));
  const first = Math.ceil(s.t0 / xStep - 1e-9);
  for (let i = first, v = first * xStep; v <= s.t1 + 1e-9; i++, v = i * xStep) {
    const x = coord(s.x(v));
    out.push(`<line x1="${x}" y1="${M.top + PH}" x2="${x}" y2="${M.top + PH + 4}" stroke="#888"/>`);
    out.push(`<text x="${x}" y="${M.top + PH + 16}" text-anchor="middle">${esc(tickLabel(v, xStep))}s</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="none" stroke="#888"/>`);
  return out.join('');
}

/** One series: polylines between missing values, a dot where a point stands alone. */
function path(line: ChartLine, t: readonly number[], s: Scale, color: string): string {
  const parts: string[] = [];
  let run: string[] = [];
  const flush = () => {
    if (run.length === 1) {
      const [x, y] = run[0]!.split(',');
      parts.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${color}"/>`);
    } else if (run.length > 1) {
      parts.push(`<polyline points="${run.join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    }
    run = [];
  };
  line.values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v) || t[i] === undefined) flush();
    else run.push(`${coord(s.x(t[i]!))},${coord(s.y(v))}`);
  });
  flush();
  return `<g data-line="${esc(line.label)}">${parts.join('')}</g>`;
}

function legend(lines: readonly ChartLine[]): string {
  let x = M.left;
  return lines
    .map((l, i) => {
      const item =
        `<rect x="${x}" y="27" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>` +
        `<text x="${x + 14}" y="36">${esc(l.label)}</text>`;
      x += 14 + Math.ceil(l.label.length * 6.2) + 14;
      return item;
    })
    .join('');
}

/** One chart as an `<svg>` element (at x, y inside another SVG when given). */
export function chartSvg(c: Chart, at?: { x: number; y: number }): string {
  const s = scale(c);
  const pos = at ? ` x="${at.x}" y="${at.y}"` : '';
  const drawn = c.lines.filter((l) => l.values.some((v) => v !== null));
  const body =
    drawn.length === 0 && c.empty
      ? `<text x="${M.left + PW / 2}" y="${M.top + PH / 2}" text-anchor="middle" fill="#666">${esc(c.empty)}</text>`
      : c.lines.map((l, i) => path(l, c.t, s, COLORS[i % COLORS.length]!)).join('');
  return (
    `<svg${pos} width="${CHART_WIDTH}" height="${CHART_HEIGHT}" viewBox="0 0 ${CHART_WIDTH} ${CHART_HEIGHT}" ` +
    `role="img" font-family="sans-serif" font-size="11" fill="#222"><title>${esc(c.title)}</title>` +
    `<text x="${M.left}" y="16" font-size="13" font-weight="bold">${esc(c.title)}</text>` +
    `${legend(c.lines)}${axes(s)}${body}</svg>`
  );
}

/** Charts in a grid of `columns`, under a title and a few lines of text, as one standalone SVG document. */
export function standaloneSvg(
  title: string,
  lines: readonly string[],
  charts: readonly Chart[],
  columns: number,
): string {
  const rows = Math.ceil(charts.length / columns);
  const top = 30 + lines.length * 18;
  const width = columns * CHART_WIDTH;
  const height = top + rows * CHART_HEIGHT;
  const head = lines.map((l, i) => `<text x="10" y="${42 + i * 18}" font-size="13">${esc(l)}</text>`);
  const cells = charts.map((c, i) =>
    chartSvg(c, { x: (i % columns) * CHART_WIDTH, y: top + Math.floor(i / columns) * CHART_HEIGHT }),
  );
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n` +
    `<title>${esc([title, ...lines].join(': '))}</title>\n` +
    `<rect width="${width}" height="${height}" fill="#fff"/>\n<g font-family="sans-serif" fill="#222">\n` +
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>\n${head.join('\n')}\n</g>\n` +
    `${cells.join('\n')}\n</svg>\n`
  );
}
