// `agentgate maintain` and `agentgate usage` (SPEC §1, §10) as a user runs them: maintain prints one
// JSON line of what its pass did (and honours the retention env vars); usage reports the rollup as a
// table or as JSON, per template or per workspace.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../gateway/src/store/db.ts';
import { createStatsPartition } from '../../gateway/src/store/maintenance.ts';
import { migrate } from '../../gateway/src/store/migrate.ts';
import { runCli } from '../helpers/cli.ts';
import { createFixture, type DbFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, serverUrl, type TestDatabase } from '../helpers/db.ts';
import { dbDay, insertRaw, partitionOf, type RawStats, randomIds, rowsOn, seeded } from '../helpers/stats-rows.ts';

const KEYS = ['partitionsCreated', 'daysRolledUp', 'partitionsDropped', 'rollupRowsDeleted'];

describe('agentgate maintain and agentgate usage', () => {
  let db: TestDatabase;
  let fx: DbFixture[];
  let day: string;
  let old: string;
  let rows: RawStats[];

  before(async () => {
    db = await freshDatabase();
    const first = await createFixture(db.sql, { templateName: 'python', workspaceName: 'alpha', username: 'ann' });
    fx = [
      first,
      await createFixture(db.sql, { templateId: first.templateId, workspaceName: 'beta', username: 'bob' }),
      await createFixture(db.sql, { templateName: 'go', workspaceName: 'gamma', username: 'cy' }),
    ];
    [day, old] = [await dbDay(db.sql, -3), await dbDay(db.sql, -12)];
    const rnd = seeded(3);
    const ids = (f: DbFixture) => ({
      agent_id: f.agentId,
      workspace_id: f.workspaceId,
      template_id: f.templateId,
      user_id: f.userId,
    });
    rows = [
      ...rowsOn(day, ids(fx[0]!), 30, rnd),
      ...rowsOn(day, ids(fx[1]!), 20, rnd).map((r) => ({ ...r, usage: false, connection_count: 0 })),
      ...rowsOn(day, ids(fx[2]!), 10, rnd),
      ...rowsOn(old, ids(fx[2]!), 5, rnd),
    ];
    // No session and no usage all day for the second workspace: no day with usage.
    for (const r of rows.filter((x) => x.agent_id === fx[1]!.agentId)) {
      Object.assign(r, { session_count_vscode: 0, session_count_jetbrains: 0 });
      Object.assign(r, { session_count_reconnecting_pty: 0, session_count_ssh: 0 });
    }
    await insertRaw(db.sql, rows);
  });
  after(async () => {
    await db?.drop();
  });

  const maintain = async (args: string[], env: Record<string, string> = {}) => {
    const r = await runCli(['maintain', '--database-url', db.url, ...args], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${r.stdout}`);
    const out = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), KEYS);
    return out as {
      partitionsCreated: string[];
      daysRolledUp: string[];
      partitionsDropped: string[];
      rollupRowsDeleted: number;
    };
  };

  test('maintain prints one JSON line of what its pass did; a second pass has nothing to do', async () => {
    const first = await maintain(['--stats-retention', '0']);
    for (const d of [old, day]) {
      assert.ok(first.partitionsCreated.includes(partitionOf(d)), `${d}: its rows got a partition`);
      assert.ok(first.daysRolledUp.includes(d), `${d} rolled up`);
    }
    assert.deepEqual(first.partitionsDropped, []);
    assert.equal(first.rollupRowsDeleted, 0);
    assert.deepEqual(await maintain(['--stats-retention', '0']), {
      partitionsCreated: [],
      daysRolledUp: [],
      partitionsDropped: [],
      rollupRowsDeleted: 0,
    });
  });

  test('maintain takes the retention from the environment as serve does', async () => {
    const r = await maintain([], { AGENTGATE_STATS_RETENTION: '2d', AGENTGATE_STATS_ROLLUP_RETENTION: '10d' });
    assert.ok(r.partitionsDropped.includes(partitionOf(old)) && r.partitionsDropped.includes(partitionOf(day)));
    assert.equal(r.rollupRowsDeleted, 1, 'the old day: one agent');
  });

  test('usage --json: per template and per workspace, from the rollup', async () => {
    const r = await runCli(['usage', '--database-url', db.url, '--json', '--days', '7']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { days: number; by: string; from: string; to: string; rows: unknown[] };
    assert.equal(report.days, 7);
    assert.equal(report.by, 'template');
    assert.equal(report.to, await dbDay(db.sql, -1));
    assert.equal(report.from, await dbDay(db.sql, -7));
    const sum = (f: DbFixture[], k: 'rx_bytes' | 'tx_bytes') =>
      rows
        .filter((x) => x.created_at.startsWith(day) && f.some((y) => y.agentId === x.agent_id))
        .reduce((a, x) => a + x[k], 0);
    const count = (f: DbFixture[]) =>
      rows.filter((x) => x.created_at.startsWith(day) && f.some((y) => y.agentId === x.agent_id)).length;
    const python = [fx[0]!, fx[1]!];
    const go = [fx[2]!];
    assert.deepEqual(report.rows, [
      {
        id: fx[0]!.templateId,
        name: 'python',
        workspaces: 2,
        reports: 50,
        rxBytes: sum(python, 'rx_bytes'),
        txBytes: sum(python, 'tx_bytes'),
        daysWithUsage: 1,
      },
      {
        id: fx[2]!.templateId,
        name: 'go',
        workspaces: 1,
        reports: count(go),
        rxBytes: sum(go, 'rx_bytes'),
        txBytes: sum(go, 'tx_bytes'),
        daysWithUsage: 1,
      },
    ]);

    const w = await runCli(['usage', '--database-url', db.url, '--by', 'workspace', '--json']);
    assert.equal(w.code, 0, w.stderr);
    const byWorkspace = (JSON.parse(w.stdout) as { rows: { name: string; reports: number; daysWithUsage: number }[] })
      .rows;
    assert.deepEqual(
      byWorkspace.map((x) => [x.name, x.reports, x.daysWithUsage]),
      [
        [`${fx[0]!.username}/alpha`, 30, 1],
        [`${fx[1]!.username}/beta`, 20, 0],
        [`${fx[2]!.username}/gamma`, 10, 1],
      ],
    );
  });

  test('usage prints a table for people', async () => {
    const r = await runCli(['usage', '--database-url', db.url]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^usage by template, \d{4}-\d{2}-\d{2} to \d{4}-\d{2}-\d{2}/);
    assert.match(lines[2]!, /^TEMPLATE\s+WORKSPACES\s+REPORTS\s+BYTES IN\s+BYTES OUT\s+DAYS WITH USAGE$/);
    assert.match(lines[3]!, /^python\s+2\s+50\s+\d+\.\d (KiB|MiB|GiB)\s+\d+\.\d (KiB|MiB|GiB)\s+1$/);
    assert.match(lines[4]!, /^go\s+1\s+10\s/);
  });

  test('maintain: a day that fails is named in one line, exit 1, after the JSON of what was done', async () => {
    const broken = await dbDay(db.sql, -20);
    const gw = connect(db.url, { max: 1, prepare: false });
    try {
      await createStatsPartition(gw, broken, 1000);
    } finally {
      await gw.end({ timeout: 5 });
    }
    await insertRaw(db.sql, rowsOn(broken, randomIds(), 3, seeded(9)));
    await db.sql`revoke select on ${db.sql(partitionOf(broken))} from ${db.sql(new URL(db.url).username)}`;
    const r = await runCli(['maintain', '--database-url', db.url, '--stats-retention', '0']);
    assert.equal(r.code, 1, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), KEYS);
    assert.deepEqual(out['daysRolledUp'], []);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^agentgate maintain: the pass failed .*rollup ${broken}: permission denied`));
    await db.sql`grant select on ${db.sql(partitionOf(broken))} to ${db.sql(new URL(db.url).username)}`;
  });

  test('maintain and usage on a schema older than theirs: one line, exit 1', async () => {
    const name = `m_${randomBytes(6).toString('hex')}`;
    const admin = connect(serverUrl(), { max: 1 });
    await admin.unsafe(`create database ${name}`);
    const url = serverUrl().replace(/\/postgres$/, `/${name}`);
    const sql = connect(url, { max: 1 });
    try {
      await migrate(sql, { upTo: 4 });
      for (const command of ['maintain', 'usage']) {
        const r = await runCli([command, '--database-url', url]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`^agentgate ${command}: .*schema is at version 4.*agentgate migrate`));
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      }
    } finally {
      await sql.end({ timeout: 5 });
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });
});
