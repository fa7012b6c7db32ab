// `agentgate fuzz --url ... --database-url ...` against the real gateway: it seeds its agents,
// sends the frames of a seed, checks answers and rows, and exits 0 — and it exits 1, naming the
// frames, when the gateway does not answer what the oracle was told to expect (here: the oracle is
// told a smaller frame limit than the gateway's, so frames the gateway answers should have closed).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';

interface Summary {
  seed: number;
  frames: number;
  mismatches: number;
  byLabel: Record<string, number>;
  stored: { statsRows: number; expectedStatsRows: number; problems: string[] };
  neighbour: { acked: number; stored: number; errors: string[] };
  healthz: number | null;
  rssKiB: unknown;
}

describe('agentgate fuzz against a running gateway', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'agentgate-fuzz-test-'));
    db = await freshDatabase();
    gw = await startGateway({
      databaseUrl: db.url,
      args: ['--session-rate', '100000'],
      env: { AGENTGATE_LOG_LEVEL: 'info' },
    });
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const fuzz = (extra: string[]) =>
    runCli(['fuzz', '--url', gw.url, '--database-url', db.url, '--session-rate', '100000', ...extra]);

  test('300 frames of a seed: every answer and row as the SPEC says, exit 0, and the JSON summary', async () => {
    const json = path.join(dir, 'ok.json');
    const r = await fuzz(['--frames', '300', '--seed', '20250611', '--json', json]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const s = JSON.parse(readFileSync(json, 'utf8')) as Summary;
    assert.equal(s.seed, 20_250_611);
    assert.equal(s.frames, 300);
    assert.equal(s.mismatches, 0);
    assert.ok(s.byLabel['single']! > 0 && s.byLabel['malformed']! > 0, JSON.stringify(s.byLabel));
    assert.deepEqual(s.stored.problems, []);
    assert.ok(s.stored.expectedStatsRows > 0);
    assert.equal(s.stored.statsRows, s.stored.expectedStatsRows);
    assert.deepEqual(s.neighbour.errors, []);
    assert.equal(s.neighbour.stored, s.neighbour.acked);
    assert.equal(s.healthz, 200);
    assert.equal(s.rssKiB, null, 'the RSS of a gateway that is not a child is not known');
    assert.match(r.stdout, /^ {2}checked against the SPEC: 300 frames, 0 mismatches$/m);
  });

  test('a gateway that answers otherwise than expected: exit 1 and the frames named', async () => {
    const json = path.join(dir, 'bad.json');
    const r = await fuzz(['--frames', '300', '--seed', '20250611', '--max-frame-bytes', '1000', '--json', json]);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    const s = JSON.parse(readFileSync(json, 'utf8')) as Summary;
    assert.ok(s.mismatches > 0);
    assert.match(r.stdout, /expected close 1009/);
    assert.match(r.stdout, /^frames the gateway answered otherwise than the SPEC says \(first \d+\):$/m);
    assert.match(
      r.stdout,
      new RegExp(`^ {2}checked against the SPEC: 300 frames, ${s.mismatches} mismatch(es)?$`, 'm'),
    );
  });

  test('--url without --database-url is a usage error', async () => {
    const r = await runCli(['fuzz', '--url', gw.url]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^agentgate fuzz: give --url and --database-url together/);
  });
});
