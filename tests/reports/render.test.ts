// The HTML and SVG of the reports (SPEC §9 `--html`): plots drawn here in SVG, every figure of the
// JSON on the page under its path, nothing a value or a label holds read as markup, no URL at all
// (the page loads nothing), a 10-minute soak's page under 500 KB, and `agentgate report`.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { esc } from '../../scripts/src/report/markup.ts';
import { detectKind, renderHtml, renderSvg } from '../../scripts/src/report/render.ts';
import { chartSvg, niceStep, tickLabel } from '../../scripts/src/report/svg.ts';
import { runCli } from '../helpers/cli.ts';
import { benchJson, loadReport, soakJson, syntheticSeries } from '../helpers/report-fixtures.ts';
import { figureMismatches, figuresFromHtml } from '../helpers/report-page.ts';

const NO_URL = /https?:|\/\//i;
const loadtestJson = () => JSON.parse(JSON.stringify(loadReport(syntheticSeries(30, 2000, 100)))) as unknown;

describe('SVG charts', () => {
  test('round ticks', () => {
    assert.deepEqual([niceStep(10_000, 4), niceStep(7, 4), niceStep(0.9, 4), niceStep(0, 4)], [5000, 2, 0.5, 1]);
    assert.deepEqual(
      [tickLabel(15_000, 5000), tickLabel(2_500_000, 500_000), tickLabel(0.25, 0.05), tickLabel(40, 10)],
      ['15k', '2.5M', '0.25', '40'],
    );
  });

  test('a line breaks where a value is missing; a lone point is a dot', () => {
    const svg = chartSvg({
      title: 'p99',
      t: [0, 1, 2, 3, 4, 5],
      lines: [{ label: 'p99', values: [1, 2, null, 3, null, 4] }],
    });
    assert.equal(svg.match(/<polyline /g)?.length, 1);
    assert.equal(svg.match(/<circle /g)?.length, 2);
    assert.match(svg, /<polyline points="[\d.]+,[\d.]+ [\d.]+,[\d.]+"/);
  });

  test('nothing to draw: the note instead', () => {
    const svg = chartSvg({ title: 'errors', t: [0, 1], lines: [], empty: 'no errors' });
    assert.match(svg, />no errors</);
    assert.doesNotMatch(svg, /<polyline/);
  });
});

describe('the HTML page', () => {
  const kinds = { loadtest: loadtestJson, soak: () => soakJson(20), bench: benchJson };
  for (const [kind, make] of Object.entries(kinds)) {
    test(`${kind}: every figure of the JSON is on the page, with plots and no URL`, () => {
      const json = make();
      assert.equal(detectKind(json), kind);
      const page = renderHtml(kind as keyof typeof kinds, json);
      assert.deepEqual(figureMismatches(json, figuresFromHtml(page)), []);
      assert.doesNotMatch(page, NO_URL);
      assert.doesNotMatch(page, /<script|<link|<img|<iframe|src=|href=|@import|url\(/i, 'nothing to load');
      assert.ok((page.match(/<svg /g)?.length ?? 0) >= 4, 'plots');
      assert.match(page, /<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;/);
    });
  }

  test('a value or a label cannot inject markup', () => {
    const hostile = [
      '<script>alert(1)</script>',
      '"><img src=x onerror=alert(1)>',
      "' onmouseover='alert(1)",
      '&lt;b&gt;',
    ];
    const series = syntheticSeries(5, 100, 3);
    series.errors = Object.fromEntries(hostile.map((h) => [h, [1, 0, 2, 0, 1]]));
    const json = JSON.parse(
      JSON.stringify(loadReport(series, { mode: '</title><svg onload=alert(1)>', agents: 3 })),
    ) as unknown;
    const page = renderHtml('loadtest', json);
    for (const h of [...hostile, '</title><svg onload=alert(1)>']) {
      assert.ok(!page.includes(h), `${h} is not on the page as it is`);
      assert.ok(page.includes(esc(h)), `${h} is on the page escaped`);
    }
    assert.doesNotMatch(page, /<script|<img|<svg onload/i);
    assert.deepEqual(figureMismatches(json, figuresFromHtml(page)), [], 'and still shown as it is');
    // Only the page's own elements: the tags it writes, whatever the labels.
    const tags = new Set([...page.matchAll(/<([a-z]+)[\s>]/g)].map((m) => m[1]));
    const own =
      'html head meta title style body h1 h2 p div svg text rect line g polyline circle table thead tbody tr th td details summary code';
    assert.deepEqual(
      [...tags].filter((t) => !own.split(' ').includes(t!)),
      [],
    );
  });

  test('a 10-minute soak (600 points, 600 samples) makes a page under 500 KB', () => {
    const page = renderHtml('soak', soakJson(600));
    const bytes = Buffer.byteLength(page);
    console.log(`a 600-second soak report: ${(bytes / 1024).toFixed(1)} KiB of HTML`);
    assert.ok(bytes < 500 * 1000, `${bytes} bytes`);
  });
});

describe('agentgate report', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'agentgate-report-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('renders a saved JSON report as its page and as a standalone SVG', async () => {
    const json = benchJson();
    const from = path.join(dir, 'bench.json');
    writeFileSync(from, JSON.stringify(json));
    const html = path.join(dir, 'bench.html');
    const svg = path.join(dir, 'bench.svg');
    const r = await runCli(['report', '--from', from, '--html', html, '--svg', svg]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(html, 'utf8'), renderHtml('bench', json));
    const text = readFileSync(svg, 'utf8');
    assert.equal(text, renderSvg('bench', json));
    assert.ok(text.startsWith('<svg xmlns="http://www.w3.org/2000/svg" '), 'an SVG file of its own');
    assert.equal(text.match(/<svg x=/g)?.length, 10, 'two loads side by side, five metrics');
  });

  test('a file that is no report, or no output: one line, exit 2', async () => {
    const from = path.join(dir, 'other.json');
    writeFileSync(from, '{"hello": 1}');
    const r = await runCli(['report', '--from', from, '--html', path.join(dir, 'x.html')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^agentgate report: .* is not a report of loadtest, soak or bench/);
    const none = await runCli(['report', '--from', from]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give --html FILE or --svg FILE/);
  });
});
