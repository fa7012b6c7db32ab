// Migration 5 (SPEC §2) on an install that already has stats rows: the unpartitioned table of
// migrations 1-4 becomes day partitions, and every row is kept, each in the partition of its UTC day.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { connect, type Sql } from '../../gateway/src/store/db.ts';
import { migrate } from '../../gateway/src/store/migrate.ts';
import { serverUrl } from '../helpers/db.ts';
import {
  dbDay,
  insertRaw,
  partitionOf,
  partitions,
  randomIds,
  type RawStats,
  rowsOn,
  seeded,
} from '../helpers/stats-rows.ts';

describe('migration 5 of a populated workspace_agent_stats', () => {
  const name = `m_${randomBytes(6).toString('hex')}`;
  let sql: Sql;

  before(async () => {
    const admin = connect(serverUrl(), { max: 1 });
    await admin.unsafe(`create database ${name}`);
    await admin.end();
    sql = connect(serverUrl().replace(/\/postgres$/, `/${name}`), { max: 1 });
  });
  after(async () => {
    await sql?.end({ timeout: 5 });
    const admin = connect(serverUrl(), { max: 1 });
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });

  /** Every column of every row, in one text. */
  const fingerprint = async () => {
    const [r] = await sql<{ n: number; md5: string }[]>`
      select count(*)::int as n, md5(string_agg(row_to_json(s)::text, ',' order by id)) as md5
      from workspace_agent_stats s`;
    return r!;
  };

  test('keeps every row, each in the partition of its UTC day', async () => {
    assert.deepEqual((await migrate(sql, { upTo: 4 })).current, 4);
    const [pk] = await sql<{ def: string }[]>`
      select pg_get_indexdef(indexrelid) as def from pg_index
      where indrelid = 'workspace_agent_stats'::regclass and indisprimary`;
    assert.match(pk!.def, /\(id\)$/, 'the old table, keyed by id alone');

    const rnd = seeded(5);
    const rows: RawStats[] = [];
    for (let d = -12; d <= 0; d++) {
      const day = await dbDay(sql, d);
      for (let a = 0; a < 3; a++) rows.push(...rowsOn(day, randomIds(), 100, rnd));
    }
    // Far from today, as a wrong clock writes them.
    rows.push(...rowsOn('2001-01-01', randomIds(), 2, rnd), ...rowsOn(await dbDay(sql, 400), randomIds(), 2, rnd));
    await insertRaw(sql, rows);
    const before = await fingerprint();
    assert.equal(before.n, rows.length);

    const r = await migrate(sql);
    assert.deepEqual(r.applied, ['5_stats_partitions_and_rollup']);
    assert.deepEqual(await fingerprint(), before, 'the same rows, column for column');
    const misplaced = await sql<{ id: string; t: string }[]>`
      select id::text, tableoid::regclass::text as t from workspace_agent_stats
      where tableoid::regclass::text <> 'workspace_agent_stats_p' || to_char(created_at at time zone 'UTC', 'YYYYMMDD')`;
    assert.deepEqual([...misplaced], [], 'every row in the partition of its day');
    const have = await partitions(sql);
    for (let d = -1; d <= 3; d++)
      assert.ok(have.includes(partitionOf(await dbDay(sql, d))), `day ${d} has a partition`);
    assert.ok(have.includes('workspace_agent_stats_default'));
    const [newPk] = await sql<{ def: string }[]>`
      select pg_get_indexdef(indexrelid) as def from pg_index
      where indrelid = 'workspace_agent_stats'::regclass and indisprimary`;
    assert.match(newPk!.def, /\(id, created_at\)$/);
    assert.deepEqual((await migrate(sql)).applied, [], 'migrate stays idempotent');
  });
});
