// The figures an HTML report shows (scripts/src/report/figures.ts), read back from the page — from
// its text here, or from the DOM in a browser (FIGURES_IN_DOM) — and compared with the JSON report:
// every scalar of the JSON must be shown under its path, with the same text.

interface PageTable {
  path: string;
  /** rows: row i is element i of the array; columns: row i is point i of a series. */
  kind: string;
  keys: string[];
  /** A cell's text; null where the cell is marked absent. */
  rows: (string | null)[][];
}

export interface PageFigures {
  kv: Record<string, string>;
  tables: PageTable[];
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };
const unentity = (s: string) => s.replace(/&(amp|lt|gt|quot|#39);/g, (e) => ENTITIES[e]!);

/** The figures of a page, from its HTML text (the markup figures.ts writes). */
export function figuresFromHtml(html: string): PageFigures {
  const kv: Record<string, string> = {};
  for (const m of html.matchAll(/<tr data-path="([^"]*)"><th>[^<]*<\/th><td(?: class="s")?>([^<]*)<\/td><\/tr>/g)) {
    kv[unentity(m[1]!)] = unentity(m[2]!);
  }
  const tables: PageTable[] = [];
  const tableRe =
    /<table data-path="([^"]*)" data-kind="(\w+)"><thead><tr>(.*?)<\/tr><\/thead><tbody>(.*?)<\/tbody><\/table>/gs;
  for (const m of html.matchAll(tableRe)) {
    const keys = [...m[3]!.matchAll(/<th data-key="([^"]*)">/g)].map((k) => unentity(k[1]!));
    const rows = [...m[4]!.matchAll(/<tr>(.*?)<\/tr>/gs)].map((r) =>
      [...r[1]!.matchAll(/<td( data-absent)?(?: class="s")?>([^<]*)<\/td>/g)].map((c) =>
        c[1] ? null : unentity(c[2]!),
      ),
    );
    tables.push({ path: unentity(m[1]!), kind: m[2]!, keys, rows });
  }
  return { kv, tables };
}

/**
 * For page.evaluate: the same figures from the DOM, as the browser renders them (every details
 * opened, innerText). A string: the tests are type-checked without the DOM's types.
 */
export const FIGURES_IN_DOM = `(() => {
  for (const d of document.querySelectorAll('details')) d.open = true;
  const kv = {};
  for (const tr of document.querySelectorAll('table[data-kind="kv"] tr[data-path]')) {
    kv[tr.dataset.path] = tr.querySelector('td').innerText;
  }
  const tables = [...document.querySelectorAll('table[data-kind="rows"], table[data-kind="columns"]')].map((t) => ({
    path: t.dataset.path,
    kind: t.dataset.kind,
    keys: [...t.querySelectorAll('thead th')].map((th) => th.dataset.key),
    rows: [...t.querySelectorAll('tbody tr')].map((tr) =>
      [...tr.children].map((td) => (td.hasAttribute('data-absent') ? null : td.innerText)),
    ),
  }));
  return { kv, tables };
})()`;

/** Every scalar of a JSON value, by its path (`a.b.0.c`). */
function jsonScalars(v: unknown, path = ''): [string, unknown][] {
  if (v === null || typeof v !== 'object') return [[path, v]];
  const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
  return entries.flatMap(([k, x]) => jsonScalars(x, path ? `${path}.${k}` : k));
}

/** How a page shows a scalar: a string as it is, null as a dash, else its JSON. */
const shown = (v: unknown) => (typeof v === 'string' ? v : v === null ? '–' : JSON.stringify(v));

function cellOf(page: PageFigures, path: string): string | null | undefined {
  if (path in page.kv) return page.kv[path];
  for (const t of page.tables) {
    if (!path.startsWith(`${t.path}.`)) continue;
    const rest = path.slice(t.path.length + 1);
    const cut = t.kind === 'rows' ? rest.indexOf('.') : rest.lastIndexOf('.');
    if (cut < 0) continue;
    const [i, key] =
      t.kind === 'rows' ? [rest.slice(0, cut), rest.slice(cut + 1)] : [rest.slice(cut + 1), rest.slice(0, cut)];
    const col = t.keys.indexOf(key);
    const row = t.rows[Number(i)];
    if (col >= 0 && row) return row[col];
  }
  return undefined;
}

/** The scalars of `json` that the page does not show, or shows otherwise: one line each. */
export function figureMismatches(json: unknown, page: PageFigures): string[] {
  const out: string[] = [];
  for (const [path, v] of jsonScalars(json)) {
    const cell = cellOf(page, path);
    if (cell === undefined) out.push(`${path}: not on the page`);
    else if (cell !== shown(v)) out.push(`${path}: page shows ${JSON.stringify(cell)}, JSON has ${JSON.stringify(v)}`);
  }
  return out;
}
