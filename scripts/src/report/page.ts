// The HTML page of a report: one file with nothing to load (styles inline, plots as inline SVG,
// a Content-Security-Policy that forbids every fetch), the plots first and then every figure of the
// JSON report in tables (figures.ts).
import { figuresHtml } from './figures.js';
import { esc } from './markup.js';
import { type Chart, CHART_WIDTH, chartSvg } from './svg.js';

export interface PageSpec {
  /** The command: loadtest, soak or bench. */
  kind: string;
  /** Lines under the title: what ran and its main figures. */
  headline: string[];
  charts: readonly Chart[];
  /** Charts per row (the bench's loads side by side); 0 lets the page fill the width. */
  columns: number;
  /** The JSON report, parsed. */
  report: unknown;
}

const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

function style(columns: number): string {
  const grid = columns > 0 ? `repeat(${columns}, minmax(0, ${CHART_WIDTH}px))` : `repeat(auto-fill, ${CHART_WIDTH}px)`;
  return [
    'body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}',
    'h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.5em 0 .5em}',
    '.headline{margin:0;color:#444}',
    `.charts{display:grid;grid-template-columns:${grid};gap:8px;margin-top:1em}`,
    '.charts svg{max-width:100%;height:auto;border:1px solid #eee}',
    'table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:.3em 0 1em}',
    'th,td{border:1px solid #ddd;padding:2px 6px;text-align:right;vertical-align:top}',
    'th{background:#f6f6f6;font-weight:600}',
    'table.kv th{text-align:left;font-weight:normal;font-family:ui-monospace,monospace}',
    'td{max-width:40em;overflow-wrap:anywhere;white-space:pre-wrap}td.s{text-align:left}',
    'summary{cursor:pointer;font-family:ui-monospace,monospace}',
  ].join('\n');
}

export function htmlPage(p: PageSpec): string {
  const title = `agentgate ${p.kind} report`;
  const charts = p.charts.map((c) => chartSvg(c)).join('\n');
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${esc(CSP)}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>\n${style(p.columns)}\n</style></head><body>`,
    `<h1>${esc(title)}</h1>`,
    ...p.headline.map((l) => `<p class="headline">${esc(l)}</p>`),
    `<div class="charts">\n${charts}\n</div>`,
    figuresHtml(p.report),
    '<p class="headline">One point per second of the measured window. Every figure of the JSON report',
    '(<code>--json</code>) is in the tables above, under its path in the JSON.</p>',
    '</body></html>',
    '',
  ].join('\n');
}
