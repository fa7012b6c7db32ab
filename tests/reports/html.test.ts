// SPEC §9 `--html`, in a real browser: a short `loadtest` against a real gateway, a short `soak` and
// a short `bench` write their reports; Debian's Chromium opens each page and finds no console
// error, no request but the page's own file, every figure of the JSON shown under its path, a
// point per second on the plots; a PNG of each goes to the test's temp dir (AGENTGATE_TEST_KEEP=1
// keeps it). Without /usr/bin/chromium this prints one line and skips.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { renderHtml } from '../../scripts/src/report/render.ts';
import type { LoadSeries } from '../../scripts/src/report/series.ts';
import { type Browser, CHROMIUM_SKIPPED, HAVE_CHROMIUM, launchChromium } from '../helpers/chromium.ts';
import { AGENTGATE_BIN, cliEnv } from '../helpers/cli.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { loadReport, syntheticSeries } from '../helpers/report-fixtures.ts';
import { FIGURES_IN_DOM, figureMismatches, type PageFigures } from '../helpers/report-page.ts';

if (!HAVE_CHROMIUM) console.log(CHROMIUM_SKIPPED);

type Kind = 'loadtest' | 'soak' | 'bench';
interface Written {
  json: Record<string, unknown>;
  html: string;
}

/** Runs `agentgate KIND ARGS --json --html` to its end (bounded); the files it wrote. */
function writeReport(dir: string, kind: Kind, args: string[]): Promise<Written> {
  const json = path.join(dir, `${kind}.json`);
  const html = path.join(dir, `${kind}.html`);
  return new Promise((resolve, reject) => {
    const argv = [AGENTGATE_BIN, kind, ...args, '--json', json, '--html', html];
    execFile(process.execPath, argv, { env: cliEnv(), timeout: 110_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`agentgate ${kind} failed (${err.code ?? err.signal}):\n${stdout}\n${stderr}`));
      resolve({ json: JSON.parse(readFileSync(json, 'utf8')) as Record<string, unknown>, html });
    });
  });
}

/** Points drawn per chart and line: `title → label → points`. */
const POINTS_IN_DOM = `Object.fromEntries([...document.querySelectorAll('.charts svg')].map((svg) => [
  svg.querySelector('title').textContent,
  Object.fromEntries([...svg.querySelectorAll('g[data-line]')].map((g) => [
    g.dataset.line,
    [...g.querySelectorAll('polyline')].reduce((n, p) => n + p.getAttribute('points').split(' ').length, 0) +
      g.querySelectorAll('circle').length,
  ])),
]))`;

const present = (xs: readonly (number | null)[]) => xs.filter((x) => x !== null).length;

/** The points each chart must draw, from the JSON: `title → label → points`. */
function expectedPoints(kind: Kind, json: Record<string, unknown>): Record<string, Record<string, number>> {
  if (kind === 'bench') {
    const runs = json['runs'] as { name: string; series: LoadSeries }[];
    return {
      'saturation: acked frames/s': Object.fromEntries(runs.map((r) => [r.name, r.series.t.length])),
      'saturation: ack latency p99 (ms)': Object.fromEntries(runs.map((r) => [r.name, present(r.series.p99Ms)])),
    };
  }
  const s = json['series'] as LoadSeries & { rssKiB?: (number | null)[] };
  const out: Record<string, Record<string, number>> = {
    'Acked frames/s': { acked: s.t.length },
    'Ack latency (ms)': { p50: present(s.p50Ms), p99: present(s.p99Ms) },
    'Connected sessions': { sessions: s.t.length },
  };
  if (kind === 'soak') out['Gateway RSS (MiB)'] = { RSS: present(s.rssKiB ?? []) };
  return out;
}

describe('the HTML reports in Chromium', { skip: !HAVE_CHROMIUM }, () => {
  let dir: string;
  let db: TestDatabase | undefined;
  let gw: GatewayProcess | undefined;
  let browser: Browser | undefined;
  const written = {} as Record<Kind, Written>;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'agentgate-html-test-'));
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url });
    const tokens = path.join(dir, 'tokens.json');
    await new Promise<void>((resolve, reject) =>
      execFile(
        process.execPath,
        [AGENTGATE_BIN, 'seed', '--database-url', db!.url, '--agents', '10', '--out', tokens],
        { env: cliEnv(), timeout: 60_000 },
        (err, _o, stderr) => (err ? reject(new Error(stderr)) : resolve()),
      ),
    );
    // Side by side: the three are mostly waiting. The bench measures two servers, not three, to keep
    // the file near a minute (three runs side by side are drawn in tests/reports/render.test.ts).
    const every = '250ms';
    const [loadtest, soak, bench] = await Promise.all([
      writeReport(dir, 'loadtest', [
        '--url',
        gw.url,
        '--tokens',
        tokens,
        '--duration',
        '4s',
        ...['--stats-interval', every, '--metadata-interval', every],
      ]),
      writeReport(dir, 'soak', ['--agents', '10', '--duration', '4s']),
      writeReport(dir, 'bench', [
        '--agents',
        '10',
        '--duration',
        '3s',
        '--warmup',
        '0s',
        '--rate',
        '50',
        '--runs',
        'echo,cached',
      ]),
    ]);
    Object.assign(written, { loadtest, soak, bench });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    await db?.drop();
    if (process.env['AGENTGATE_TEST_KEEP']) console.log(`reports and screenshots kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ['loadtest', 'soak', 'bench'] as const) {
    test(`${kind} --html: no error, no request, the JSON's figures and a point per second`, async () => {
      const { json, html } = written[kind];
      const shot = path.join(dir, `${kind}.png`);
      const p = await browser!.open(html, shot);
      try {
        assert.deepEqual(p.errors, []);
        assert.deepEqual(p.requests, [pathToFileURL(html).href], 'the page loads nothing but itself');
        const figures = (await p.page.evaluate(FIGURES_IN_DOM)) as PageFigures;
        assert.deepEqual(figureMismatches(json, figures), []);
        const points = (await p.page.evaluate(POINTS_IN_DOM)) as Record<string, Record<string, number>>;
        for (const [title, lines] of Object.entries(expectedPoints(kind, json))) {
          assert.deepEqual(points[title], lines, title);
        }
      } finally {
        await p.close();
      }
      const png = readFileSync(shot);
      assert.equal(png.subarray(1, 4).toString(), 'PNG');
      // Several seconds of points, each run's too.
      const series =
        kind === 'bench'
          ? (json['runs'] as { series: LoadSeries }[]).map((r) => r.series)
          : [json['series'] as LoadSeries];
      for (const s of series) assert.ok(s.t.length >= 3 && s.ackedPerSec.every((n) => n > 0), JSON.stringify(s));
    });
  }

  test('a hostile label is shown as text: no element, no script run', async () => {
    const series = syntheticSeries(3, 100, 2);
    const hostile = ['<img src=x onerror=alert(1)>', '<script>alert(2)</script>', '"><svg onload=alert(3)>'];
    series.errors = Object.fromEntries(hostile.map((h) => [h, [1, 2, 3]]));
    const json = JSON.parse(JSON.stringify(loadReport(series, { mode: '</title><script>alert(4)</script>' })));
    const file = path.join(dir, 'hostile.html');
    writeFileSync(file, renderHtml('loadtest', json));
    const p = await browser!.open(file);
    try {
      assert.deepEqual(p.errors, []);
      assert.deepEqual(p.requests, [pathToFileURL(file).href]);
      assert.equal(
        await p.page.evaluate(`document.querySelectorAll('script, img, iframe, .charts svg svg').length`),
        0,
      );
      const text = (await p.page.evaluate('document.body.innerText')) as string;
      for (const h of hostile) assert.ok(text.includes(h), `${h} is shown as it is`);
      assert.deepEqual(figureMismatches(json, (await p.page.evaluate(FIGURES_IN_DOM)) as PageFigures), []);
    } finally {
      await p.close();
    }
  });
});
