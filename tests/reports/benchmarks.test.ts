// BENCHMARKS.md shows plots made from committed JSON: each benchmarks/*.json has its .svg beside it,
// equal to what `agentgate report --from X.json --svg X.svg` draws from it now, and BENCHMARKS.md
// shows that SVG; the current bench table there is the table the newest bench JSON prints.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatBenchTable } from '../../scripts/src/bench/table.ts';
import type { RunResult } from '../../scripts/src/bench/measure.ts';
import { detectKind, renderSvg } from '../../scripts/src/report/render.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const DIR = path.join(REPO, 'benchmarks');
const BENCHMARKS_MD = readFileSync(path.join(REPO, 'BENCHMARKS.md'), 'utf8');
const reports = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

test('benchmarks/ holds at least one bench report', () => {
  assert.ok(
    reports.some((f) => f.startsWith('bench-')),
    reports.join(', '),
  );
});

for (const file of reports) {
  test(`benchmarks/${file}: its SVG is what the generator draws from it, and BENCHMARKS.md shows it`, () => {
    const json = JSON.parse(readFileSync(path.join(DIR, file), 'utf8')) as unknown;
    const kind = detectKind(json);
    assert.ok(kind, `${file} is a report of loadtest, soak or bench`);
    const svgName = file.replace(/\.json$/, '.svg');
    const svg = path.join(DIR, svgName);
    assert.ok(existsSync(svg), `benchmarks/${svgName} (npx agentgate report --from ${file} --svg ${svgName})`);
    assert.equal(readFileSync(svg, 'utf8'), renderSvg(kind, json), `regenerate benchmarks/${svgName}`);
    assert.ok(BENCHMARKS_MD.includes(`](benchmarks/${svgName})`), `BENCHMARKS.md shows benchmarks/${svgName}`);
  });
}

test('the current bench table of BENCHMARKS.md is the one the newest bench JSON prints', () => {
  const newest = reports.filter((f) => f.startsWith('bench-')).at(-1)!;
  const json = JSON.parse(readFileSync(path.join(DIR, newest), 'utf8')) as {
    runs: RunResult[];
    config: { fixedRate: number };
  };
  const current = BENCHMARKS_MD.slice(
    BENCHMARKS_MD.indexOf('### Current figures'),
    BENCHMARKS_MD.indexOf('### Changelog'),
  );
  assert.ok(current.includes(`[\`benchmarks/${newest}\`](benchmarks/${newest})`), `it names ${newest}`);
  assert.match(current, /Measured at commit `[0-9a-f]{7,}`/);
  assert.ok(current.includes(formatBenchTable(json.runs, json.config.fixedRate)), 'the table of the JSON');
});
