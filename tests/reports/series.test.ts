// The per-second series of a load (SPEC §9 "series"): what one load process records per second,
// how the parent adds up the seconds of several processes (latency histograms merged, late answers
// folded into the last second), the soak's gateway samples on the same seconds, and a real
// `loadtest --procs 2` whose series adds up to its totals.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, mock, test } from 'node:test';
import { startEchoProcess } from '../../scripts/src/bench/echo-server.ts';
import { encodeHistogram, latencyMs, newLatencyHistogram } from '../../scripts/src/loadtest/histogram.ts';
import { type SecondWire, SecondRecorder, SecondsMerger } from '../../scripts/src/loadtest/seconds.ts';
import { errorsPerSecond, type LoadSeries, withSamples } from '../../scripts/src/report/series.ts';
import { AGENTGATE_BIN } from '../helpers/cli.ts';

let now = 0;
/** Runs `fn` at performance.now() = `at` ms. */
const at = <T>(ms: number, fn: () => T): T => {
  now = ms;
  return fn();
};

describe('SecondRecorder (one load process)', () => {
  before(() => {
    mock.method(performance, 'now', () => now);
  });
  after(() => mock.restoreAll());

  test('records acks, latency, errors and sockets per second from the window start', () => {
    const r = new SecondRecorder();
    at(500, () => r.ack(1000)); // before the window: not recorded
    at(1000, () => r.begin(3));
    at(1100, () => r.ack(2000));
    at(1200, () => r.ack(4000));
    at(1900, () => r.error('-32002'));
    at(2500, () => r.sessions(2));
    const first = at(2600, () => r.take());
    assert.deepEqual(
      first.map((s) => ({ ...s, latency: s.latency !== '' })),
      [{ i: 0, acked: 2, errors: { '-32002': 1 }, sessions: 3, latency: true }],
      'only the ended second is sent',
    );
    // Second 1 had the close; seconds 2 and 3 had nothing: they keep its 2 sockets.
    at(4100, () => r.error('timeout', 2));
    at(4200, () => r.close());
    at(4300, () => r.ack(1)); // after the books closed: not recorded
    const rest = at(4400, () => r.take(true));
    assert.deepEqual(
      rest.map((s) => [s.i, s.acked, s.sessions, s.errors]),
      [
        [1, 0, 2, {}],
        [2, 0, 2, {}],
        [3, 0, 2, { timeout: 2 }],
      ],
    );
    assert.deepEqual(
      at(6000, () => r.take()),
      [4].map((i) => ({ i, acked: 0, errors: {}, sessions: 2, latency: '' })),
    );
  });

  test('sends nothing before the window opened', () => {
    const r = new SecondRecorder();
    at(100, () => r.sessions(5));
    assert.deepEqual(
      at(5000, () => r.take(true)),
      [],
    );
  });
});

/** A second of one process with these latencies (µs). */
function wire(i: number, latenciesUs: number[], sessions: number, errors: Record<string, number> = {}): SecondWire {
  const h = newLatencyHistogram();
  for (const us of latenciesUs) h.recordValue(us);
  return { i, acked: latenciesUs.length, errors, sessions, latency: latenciesUs.length ? encodeHistogram(h) : '' };
}

describe('SecondsMerger (the parent)', () => {
  test('adds up the processes by second: acks, errors, sockets, and percentiles over the merged histograms', () => {
    const m = new SecondsMerger();
    const a = [1000, 2000, 3000];
    const b = [10_000, 20_000];
    m.add([wire(0, a, 4, { '-32002': 1 })]);
    m.add([wire(0, b, 5), wire(1, [], 5, { '-32002': 2, timeout: 1 })]);
    m.add([wire(1, [5000], 4)]);
    // Answers after the window (the drain): folded into its last second.
    m.add([wire(2, [7000], 4), wire(3, [], 4, { unanswered: 3 })]);
    const s = m.series(2004);
    const both = newLatencyHistogram();
    for (const us of [...a, ...b]) both.recordValue(us);
    const last = newLatencyHistogram();
    for (const us of [5000, 7000]) last.recordValue(us);
    assert.deepEqual(s, {
      t: [0, 1],
      ackedPerSec: [5, 2],
      p50Ms: [latencyMs(both).p50, latencyMs(last).p50],
      p99Ms: [latencyMs(both).p99, latencyMs(last).p99],
      errors: { '-32002': [1, 2], timeout: [0, 1], unanswered: [0, 3] },
      sessions: [9, 9],
    } satisfies LoadSeries);
    // HDR's 3 significant digits: 20 ms; one process alone would say 3 ms.
    assert.ok(Math.abs(latencyMs(both).p99 - 20) < 0.05, String(latencyMs(both).p99));
  });

  test('a second nobody reported keeps the sockets of the one before, with no latency', () => {
    const m = new SecondsMerger();
    m.add([wire(0, [1000], 7)]);
    const s = m.series(3000);
    assert.deepEqual(s.sessions, [7, 7, 7]);
    assert.deepEqual(s.ackedPerSec, [1, 0, 0]);
    assert.deepEqual(s.p99Ms, [1, null, null]);
  });

  test('no window, no seconds: an empty series', () => {
    assert.deepEqual(new SecondsMerger().series(0).t, []);
  });
});

describe('soak: the gateway samples on the load seconds', () => {
  test('the sample at the end of second i is point i; a second without one is null', () => {
    const load: LoadSeries = {
      t: [0, 1, 2],
      ackedPerSec: [1, 2, 3],
      p50Ms: [1, 1, 1],
      p99Ms: [2, 2, 2],
      errors: { '-32002': [0, 1, 0] },
      sessions: [3, 3, 3],
    };
    const sample = (t: number, rssKiB: number) => ({ t, rssKiB, lagP99Ms: t, lagMaxMs: null });
    const s = withSamples(load, [sample(-1.5, 1), sample(0, 2), sample(1.1, 3), sample(2.9, 4), sample(3.6, 5)]);
    assert.deepEqual(s.rssKiB, [3, null, 4]);
    assert.deepEqual(s.eventLoopDelayP99Ms, [1.1, null, 2.9]);
    assert.deepEqual(s.eventLoopDelayMaxMs, [null, null, null]);
    assert.deepEqual(s.ackedPerSec, load.ackedPerSec);
    assert.deepEqual(errorsPerSecond(load), [0, 1, 0]);
  });
});

describe('loadtest --procs 2 against the echo server', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'agentgate-series-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the series has a point per second and adds up to the totals of every process', async () => {
    const tokens = path.join(dir, 'tokens.json');
    writeFileSync(tokens, JSON.stringify(Array.from({ length: 6 }, (_, i) => ({ token: `token-${i}` }))));
    const json = path.join(dir, 'report.json');
    const echo = await startEchoProcess(['--error-code', '-32002', '--error-every', '5']);
    let code: number | null;
    let stderr = '';
    try {
      const args = ['loadtest', '--url', echo.url, '--tokens', tokens, '--duration', '3s', '--procs', '2'];
      const child = spawn(process.execPath, [AGENTGATE_BIN, ...args, '--stats-interval', '100ms', '--json', json], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      code = await new Promise((resolve) => child.on('exit', resolve));
    } finally {
      await echo.stop();
    }
    assert.equal(code, 0, stderr);
    const r = JSON.parse(readFileSync(json, 'utf8')) as {
      acked: number;
      errors: Record<string, number>;
      connected: number;
      durationS: number;
      series: LoadSeries;
    };
    const s = r.series;
    assert.deepEqual(s.t, [0, 1, 2]);
    const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
    assert.equal(sum(s.ackedPerSec), r.acked, 'every acknowledged frame is in one second');
    assert.deepEqual(Object.fromEntries(Object.entries(s.errors).map(([k, v]) => [k, sum(v)])), r.errors);
    assert.ok((r.errors['-32002'] ?? 0) > 0);
    assert.deepEqual(s.sessions, [6, 6, 6], 'the sockets of both processes');
    for (let i = 0; i < 3; i++) {
      assert.ok(s.ackedPerSec[i]! > 0);
      assert.ok(s.p50Ms[i]! > 0 && s.p50Ms[i]! <= s.p99Ms[i]!, JSON.stringify(s));
    }
  });
});
