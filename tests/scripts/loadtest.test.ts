// `agentgate loadtest` end to end against the bench's echo server (its own process), plus the
// pieces that need no server: histogram merging across processes and the usage errors.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEchoProcess } from '../../scripts/src/bench/echo-server.ts';
import { encodeHistogram, latencyMs, mergeEncoded, newLatencyHistogram } from '../../scripts/src/loadtest/histogram.ts';
import { splitSizes } from '../../scripts/src/loadtest/run-load.ts';
import { AGENTGATE_BIN } from '../helpers/cli.ts';

interface Report {
  agents: number;
  durationS: number;
  sent: number;
  acked: number;
  errors: Record<string, number>;
  framesPerSec: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  connected: number;
  reconnects: number;
}

let dir: string;
let tokensFile: string;
const AGENTS = 5;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'agentgate-loadtest-test-'));
  tokensFile = path.join(dir, 'tokens.json');
  const tokens = Array.from({ length: AGENTS }, () => ({
    agentId: randomUUID(),
    workspaceId: randomUUID(),
    token: randomUUID(),
  }));
  writeFileSync(tokensFile, JSON.stringify(tokens));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `agentgate loadtest ARGS --json FILE`; resolves with the exit code, stderr and the report (if written). */
async function loadtest(args: string[]): Promise<{ code: number | null; stderr: string; report: Report | undefined }> {
  const jsonFile = path.join(dir, `report-${randomUUID()}.json`);
  const child = spawn(process.execPath, [AGENTGATE_BIN, 'loadtest', ...args, '--json', jsonFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  child.stdout.resume();
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(killer);
  let report: Report | undefined;
  try {
    report = JSON.parse(readFileSync(jsonFile, 'utf8')) as Report;
  } catch {
    report = undefined;
  }
  return { code, stderr, report };
}

/** `agentgate loadtest --url ECHO --tokens FILE ARGS` against an echo server started with `echoFlags` (stopped after). */
async function loadtestEcho(echoFlags: string[], args: string[]): ReturnType<typeof loadtest> {
  const echo = await startEchoProcess(echoFlags);
  try {
    return await loadtest(['--url', echo.url, '--tokens', tokensFile, ...args]);
  } finally {
    await echo.stop();
  }
}

const sumValues = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);

describe('loadtest against the echo server', () => {
  test('drives stats and metadata and writes the SPEC §9 report', async () => {
    const { code, stderr, report } = await loadtestEcho(
      [],
      ['--duration', '2s', '--stats-interval', '200ms', '--metadata-interval', '200ms'],
    );
    assert.equal(code, 0, stderr);
    assert.ok(report);
    for (const key of ['agents', 'durationS', 'sent', 'acked', 'errors', 'framesPerSec', 'latencyMs']) {
      assert.ok(key in report, `report has ${key}`);
    }
    assert.deepEqual(Object.keys(report.latencyMs).sort(), ['max', 'p50', 'p95', 'p99']);
    assert.equal(report.agents, AGENTS);
    assert.equal(report.connected, AGENTS);
    assert.ok(report.durationS > 0);
    assert.ok(report.acked > 0, 'frames were acknowledged');
    assert.equal(report.sent, report.acked);
    assert.deepEqual(report.errors, {});
    assert.ok(report.framesPerSec > 0);
    const l = report.latencyMs;
    assert.ok(l.p50 > 0 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max, JSON.stringify(l));
  });

  test('counts error answers by their JSON-RPC code', async () => {
    const { code, stderr, report } = await loadtestEcho(['--error-code', '-32003'], ['--duration', '1s']);
    assert.equal(code, 0, stderr);
    assert.ok(report);
    assert.equal(report.acked, 0);
    assert.ok((report.errors['-32003'] ?? 0) > 0, JSON.stringify(report.errors));
    // Every frame sent is accounted for: acknowledged or errored.
    assert.equal(report.sent, report.acked + sumValues(report.errors));
  });

  test('errors on every second frame leave the other half acknowledged', async () => {
    const { code, report } = await loadtestEcho(['--error-code', '-32002', '--error-every', '2'], ['--duration', '1s']);
    assert.equal(code, 0);
    assert.ok(report);
    assert.ok(report.acked > 0);
    assert.ok((report.errors['-32002'] ?? 0) > 0);
    assert.equal(report.sent, report.acked + sumValues(report.errors));
  });

  test('counts refused connections by HTTP status and exits non-zero when nothing connects', async () => {
    const { code, stderr, report } = await loadtestEcho(['--refuse', '401'], ['--duration', '1s']);
    assert.equal(code, 1);
    assert.match(stderr, /no agent could connect to ws:\S+ \(401:5\)/);
    assert.ok(report);
    assert.equal(report.connected, 0);
    assert.equal(report.sent, 0);
    assert.equal(report.errors['401'], AGENTS);
  });

  test('a server that never answers: the run still ends, and the frames count as unanswered', async () => {
    const started = Date.now();
    const { code, report } = await loadtestEcho(['--silent', 'on'], ['--duration', '1s']);
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 30_000);
    assert.ok(report);
    assert.equal(report.acked, 0);
    assert.ok(report.sent > 0);
    assert.equal(report.errors['unanswered'], report.sent);
  });

  test('--rate offers a fixed total rate; --inflight keeps a window per agent', async () => {
    const rate = await loadtestEcho([], ['--duration', '2s', '--rate', '50']);
    assert.equal(rate.code, 0, rate.stderr);
    assert.ok(rate.report);
    // 50/s for 2 s is about 100 frames; the bound only catches a runaway scheduler.
    assert.ok(rate.report.sent > 0 && rate.report.sent <= 200, `sent ${rate.report.sent}`);
    assert.equal(rate.report.sent, rate.report.acked);

    const closed = await loadtestEcho([], ['--duration', '1s', '--inflight', '2']);
    assert.equal(closed.code, 0, closed.stderr);
    assert.ok(closed.report);
    assert.ok(closed.report.acked > 0);
    assert.deepEqual(closed.report.errors, {});
  });

  test('agents spread over several worker processes are merged into one report', async () => {
    const { code, stderr, report } = await loadtestEcho([], ['--duration', '1s', '--procs', '2', '--inflight', '1']);
    assert.equal(code, 0, stderr);
    assert.ok(report);
    assert.equal(report.connected, AGENTS);
    assert.ok(report.acked > 0);
    assert.ok(report.latencyMs.max > 0);
  });
});

describe('loadtest without a server', () => {
  test('latency histograms from several processes merge into one', () => {
    const a = newLatencyHistogram();
    const b = newLatencyHistogram();
    for (let i = 1; i <= 1000; i++) a.recordValue(i); // 1 µs .. 1 ms
    for (let i = 1; i <= 1000; i++) b.recordValue(100_000 + i); // ~100 ms
    const merged = newLatencyHistogram();
    mergeEncoded(merged, encodeHistogram(a));
    mergeEncoded(merged, encodeHistogram(b));
    mergeEncoded(merged, '');
    assert.equal(merged.totalCount, 2000);
    const l = latencyMs(merged);
    assert.ok(l.p50 >= 0.99 && l.p50 <= 1.01, `p50 ${l.p50}`);
    assert.ok(l.p99 >= 100 && l.p99 <= 101.1, `p99 ${l.p99}`);
    assert.ok(l.max >= 100.9 && l.max <= 101.1, `max ${l.max}`);
    assert.deepEqual(latencyMs(newLatencyHistogram()), { p50: 0, p95: 0, p99: 0, max: 0 });
  });

  test('agents are split over processes in chunks that differ by at most one', () => {
    assert.deepEqual(splitSizes(10, 3), [4, 3, 3]);
    assert.deepEqual(splitSizes(2, 4), [1, 1, 0, 0]);
    assert.equal(
      splitSizes(19_000, 2).reduce((x, y) => x + y, 0),
      19_000,
    );
  });

  test('a port where nothing listens: ECONNREFUSED named, and one line asks whether the gateway runs there', async () => {
    // A loopback port that was free a moment ago.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const url = `ws://127.0.0.1:${port}/api/v2/workspaceagents/me/rpc`;
    const { code, stderr, report } = await loadtest(['--url', url, '--tokens', tokensFile, '--duration', '1s']);
    assert.equal(code, 1);
    assert.ok(report);
    assert.equal(report.connected, 0);
    assert.deepEqual(Object.keys(report.errors), ['ECONNREFUSED']);
    assert.ok(report.errors['ECONNREFUSED']! >= AGENTS);
    const lines = stderr.split('\n').filter((l) => l.startsWith('loadtest: no agent'));
    assert.deepEqual(lines, [
      `loadtest: no agent could connect: ECONNREFUSED (nothing listens at ${url}): is the gateway running at that URL?`,
    ]);
  });

  test('usage errors are one line and exit 2', async () => {
    const missingUrl = await loadtest(['--tokens', tokensFile]);
    assert.equal(missingUrl.code, 2);
    assert.equal(missingUrl.stderr.trim().split('\n').length, 1);
    assert.match(missingUrl.stderr, /--url/);

    const both = await loadtest([
      '--url',
      'ws://127.0.0.1:1/x',
      '--tokens',
      tokensFile,
      '--rate',
      '5',
      '--inflight',
      '1',
    ]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--rate or --inflight/);

    const badDuration = await loadtest(['--url', 'ws://127.0.0.1:1/x', '--tokens', tokensFile, '--duration', 'soon']);
    assert.equal(badDuration.code, 2);
    assert.match(badDuration.stderr, /--duration/);

    const noTokens = await loadtest(['--url', 'ws://127.0.0.1:1/x', '--tokens', path.join(dir, 'missing.json')]);
    assert.equal(noTokens.code, 2);
    assert.match(noTokens.stderr, /cannot read --tokens/);
  });
});
