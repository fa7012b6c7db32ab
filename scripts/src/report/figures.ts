// Every figure of a JSON report as HTML tables, each findable by its path in the JSON: scalars in
// one table (a row per path, `data-path`), arrays of flat objects (samples, statements) as tables
// of rows (`data-path` of the array, `data-key` per column; row i is element i), and the columns of
// a `series` as one table (row i is second i). Nothing is left out, so the page holds the report.
import { display, esc } from './markup.js';

type Scalar = string | number | boolean | null;
type Json = Scalar | Json[] | { [key: string]: Json };

const isObject = (v: Json | undefined): v is { [key: string]: Json } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: Json | undefined): v is Scalar => v === null || typeof v !== 'object';

/** A row of a table of rows: its scalars and its objects of scalars (one column per key). */
function flatRow(v: Json): Map<string, Scalar> | undefined {
  if (!isObject(v)) return undefined;
  const out = new Map<string, Scalar>();
  for (const [k, x] of Object.entries(v)) {
    if (isScalar(x)) out.set(k, x);
    else if (isObject(x) && Object.values(x).every(isScalar)) {
      for (const [k2, y] of Object.entries(x)) out.set(`${k}.${k2}`, y as Scalar);
    } else return undefined;
  }
  return out;
}

/** The columns of a series: arrays, and objects of arrays (errors by code). */
function seriesColumns(v: Json): Map<string, Json[]> | undefined {
  if (!isObject(v) || !Array.isArray(v['t'])) return undefined;
  const out = new Map<string, Json[]>();
  for (const [k, x] of Object.entries(v)) {
    if (Array.isArray(x)) out.set(k, x);
    else if (isObject(x) && Object.values(x).every(Array.isArray)) {
      for (const [k2, y] of Object.entries(x)) out.set(`${k}.${k2}`, y as Json[]);
    } else return undefined;
  }
  return out;
}

/** A cell; text (a statement, a mode) is aligned left, numbers right. */
function cell(v: Scalar | undefined): string {
  if (v === undefined) return '<td data-absent></td>';
  return `<td${typeof v === 'string' ? ' class="s"' : ''}>${esc(display(v))}</td>`;
}

function tableHtml(path: string, kind: 'rows' | 'columns', keys: string[], rows: (Scalar | undefined)[][]): string {
  const head = keys.map((k) => `<th data-key="${esc(k)}">${esc(k)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n');
  return (
    `<details${rows.length <= 20 ? ' open' : ''}><summary>${esc(path)} (${rows.length} rows)</summary>\n` +
    `<table data-path="${esc(path)}" data-kind="${kind}"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></details>`
  );
}

interface Collected {
  scalars: [string, Json][];
  tables: string[];
}

function walk(v: Json, path: string, key: string, out: Collected): void {
  const columns = key === 'series' ? seriesColumns(v) : undefined;
  if (columns) {
    const keys = [...columns.keys()];
    const n = Math.max(0, ...[...columns.values()].map((c) => c.length));
    const rows = Array.from({ length: n }, (_, i) => keys.map((k) => columns.get(k)![i] as Scalar | undefined));
    out.tables.push(tableHtml(path, 'columns', keys, rows));
    return;
  }
  if (Array.isArray(v) && v.length > 0) {
    const flat = v.map(flatRow);
    if (flat.every((r) => r !== undefined)) {
      const keys = [...new Set(flat.flatMap((r) => [...r!.keys()]))];
      out.tables.push(
        tableHtml(
          path,
          'rows',
          keys,
          flat.map((r) => keys.map((k) => r!.get(k))),
        ),
      );
      return;
    }
  }
  const entries: [string, Json][] = Array.isArray(v)
    ? v.map((x, i) => [String(i), x])
    : isObject(v)
      ? Object.entries(v)
      : [];
  if (isScalar(v) || entries.length === 0) {
    out.scalars.push([path, v]);
    return;
  }
  for (const [k, x] of entries) walk(x, path ? `${path}.${k}` : k, k, out);
}

/** The tables of every figure of `report` (a parsed JSON value). */
export function figuresHtml(report: unknown): string {
  const out: Collected = { scalars: [], tables: [] };
  walk(report as Json, '', '', out);
  const rows = out.scalars.map(([p, v]) => `<tr data-path="${esc(p)}"><th>${esc(p)}</th>${cell(v as Scalar)}</tr>`);
  return (
    `<h2>Figures</h2>\n<table class="kv" data-kind="kv"><tbody>\n${rows.join('\n')}\n</tbody></table>\n` +
    `${out.tables.length ? `<h2>Tables</h2>\n${out.tables.join('\n')}\n` : ''}`
  );
}
