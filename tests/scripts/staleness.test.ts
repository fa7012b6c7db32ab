// `agentgate staleness` end to end with small numbers: two real replicas on a fresh test database,
// every kind of change measured and reflected (none timed out), the summary printed and the JSON
// written; and its usage errors.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';

interface Summary {
  count: number;
  timedOut: number;
  p50: number;
  p99: number;
  max: number;
}

interface Report {
  config: { replicas: number; workers: number; agentsPerReplica: number; changes: number; kinds: string[] };
  stalenessMs: { overall: Summary; byKind: Record<string, Summary> };
  changes: { kind: string; agentId: string; replica: number; stalenessMs: number | null; commitMs: number }[];
}

describe('agentgate staleness', () => {
  let db: TestDatabase;
  let dir: string;
  before(async () => {
    db = await freshDatabase();
    dir = mkdtempSync(path.join(tmpdir(), 'agentgate-staleness-test-'));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  test('2 replicas x 6 agents, 9 changes of every kind: each reflected, summary and JSON', async () => {
    const json = path.join(dir, 'staleness.json');
    const r = await runCli([
      'staleness',
      '--database-url',
      db.url,
      '--replicas',
      '2',
      '--workers',
      '1',
      '--agents',
      '6',
      '--changes',
      '9',
      '--timeout',
      '10s',
      '--json',
      json,
    ]);
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr}\n${r.stdout}`);
    assert.match(r.stdout, /^rename\s+3\s+\d+\s+\d+\s+\d+$/m);
    assert.match(r.stdout, /^claim\s+3\s/m);
    assert.match(r.stdout, /^token\s+3\s/m);
    assert.match(r.stdout, /^all\s+9\s/m);
    assert.match(r.stderr, /9\/9 changes/);
    const report = JSON.parse(readFileSync(json, 'utf8')) as Report;
    assert.equal(report.config.replicas, 2);
    assert.equal(report.changes.length, 9);
    assert.deepEqual(new Set(report.changes.map((c) => c.replica)), new Set([0, 1]), 'changes on both replicas');
    assert.equal(new Set(report.changes.map((c) => c.agentId)).size, 9, 'one agent per change');
    for (const c of report.changes) {
      assert.ok(c.stalenessMs !== null && c.stalenessMs >= 0 && c.stalenessMs < 10_000, JSON.stringify(c));
    }
    assert.equal(report.stalenessMs.overall.timedOut, 0);
    const o = report.stalenessMs.overall;
    assert.ok(o.p50 <= o.p99 && o.p99 <= o.max);
    // The changes really happened in the database: tokens rotated, prebuilds claimed, names changed.
    const [claimed] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from workspaces w join users u on u.id = w.owner_id where u.username like 'claimer-%'`;
    assert.equal(claimed!.n, 3);
    const [renamed] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from workspaces where name like 'renamed-%'`;
    assert.equal(renamed!.n, 3);
  });

  test('usage errors: more changes than agents, an unknown kind', async () => {
    const r = await runCli([
      'staleness',
      '--database-url',
      db.url,
      '--agents',
      '2',
      '--replicas',
      '1',
      '--changes',
      '3',
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--changes \(3\) exceeds the agents \(2\)/);
    const k = await runCli(['staleness', '--kinds', 'rename,teleport']);
    assert.equal(k.code, 2);
    assert.match(k.stderr, /--kinds/);
  });
});
