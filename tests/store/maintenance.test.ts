// SPEC §2, §10 on a real PostgreSQL: the maintenance pass as the gateway's role runs it. Partitions
// ahead of time, a row outside them kept (DEFAULT partition, then its own day), the rollup equal to
// the raw rows and idempotent, and retention that drops only rolled-up days.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { connect, type Sql } from '../../gateway/src/store/db.ts';
import { createStatsPartition, rollUpDay } from '../../gateway/src/store/maintenance.ts';
import { type PassOptions, runMaintenancePass } from '../../gateway/src/store/maintenance-pass.ts';
import type { StatsRow } from '../../gateway/src/store/store.ts';
import { insertStatsBatch } from '../../gateway/src/store/writes.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import {
  dbDay,
  expectedDaily,
  insertRaw,
  partitionOf,
  partitions,
  randomIds,
  readDaily,
  rowsOn,
  seeded,
} from '../helpers/stats-rows.ts';

const DAY = 86_400_000;
const KEEP: PassOptions = { statsRetentionMs: 0, rollupRetentionMs: 0, runner: 'test' };

const opened: { db: TestDatabase; gw: Sql }[] = [];
after(async () => {
  for (const { db, gw } of opened) {
    await gw.end({ timeout: 5 });
    await db.drop();
  }
});

/** A database of its own, and the gateway role's connection to it (the role that owns the tables). */
async function database(): Promise<{ db: TestDatabase; gw: Sql }> {
  const db = await freshDatabase();
  const gw = connect(db.url, { max: 1, prepare: false });
  opened.push({ db, gw });
  return { db, gw };
}

/** The mean latency is a float sum: compare it to 1e-9. */
const rounded = <T extends { connection_median_latency_ms: number }>(rows: T[]) =>
  rows.map((r) => ({ ...r, connection_median_latency_ms: Math.round(r.connection_median_latency_ms * 1e9) / 1e9 }));

async function pass(gw: Sql, o: Partial<PassOptions> = {}) {
  const r = await runMaintenancePass(gw, { ...KEEP, ...o });
  assert.ok(r, 'no other pass holds the lock');
  return r;
}

describe('maintenance pass (SPEC §10)', () => {
  test('partitions exist from yesterday to 3 days ahead: a pass creates the missing ones', async () => {
    const { db, gw } = await database();
    const days = await Promise.all([-1, 0, 1, 2, 3].map((n) => dbDay(db.sql, n)));
    for (const d of [days[0]!, days[3]!, days[4]!]) await db.sql`drop table if exists ${db.sql(partitionOf(d))}`;
    const r = await pass(gw);
    assert.deepEqual(r.partitionsCreated, [days[0]!, days[3]!, days[4]!].map(partitionOf));
    const have = await partitions(db.sql);
    for (const d of days) assert.ok(have.includes(partitionOf(d)), `${partitionOf(d)} exists`);
    assert.ok(have.includes('workspace_agent_stats_default'));
    // A created partition is a whole one: its primary key (id, created_at) and its rows routed to it.
    const [pk] = await db.sql<{ def: string }[]>`
      select pg_get_indexdef(indexrelid) as def from pg_index
      where indrelid = ${partitionOf(days[4]!)}::regclass and indisprimary`;
    assert.match(pk!.def, /\(id, created_at\)/);
    const [row] = rowsOn(days[4]!, randomIds(), 1, seeded(1));
    await insertRaw(db.sql, [row!]);
    const [where] = await db.sql<{ t: string }[]>`
      select tableoid::regclass::text as t from workspace_agent_stats where id = ${row!.id}`;
    assert.equal(where!.t, partitionOf(days[4]!));
    assert.deepEqual((await pass(gw)).partitionsCreated, [], 'nothing left to create');
  });

  test('a row outside every partition is stored (DEFAULT partition), then moved into its own day', async () => {
    const { db, gw } = await database();
    const [past, future] = [await dbDay(db.sql, -10), await dbDay(db.sql, 10)];
    const ids = randomIds();
    const batch: StatsRow[] = [past, future].map((day, i) => ({
      id: crypto.randomUUID(),
      createdAt: `${day}T12:00:0${i}.000Z`,
      userId: ids.user_id,
      agentId: ids.agent_id,
      workspaceId: ids.workspace_id,
      templateId: ids.template_id,
      connectionsByProto: '{}',
      connectionCount: 1,
      rxPackets: 1,
      rxBytes: 100 + i,
      txPackets: 1,
      txBytes: 1,
      connectionMedianLatencyMs: -1,
      sessionCountVscode: 0,
      sessionCountJetbrains: 0,
      sessionCountReconnectingPty: 0,
      sessionCountSsh: 0,
    }));
    const where = async () => [
      ...(await db.sql<{ t: string; rx_bytes: number }[]>`
        select tableoid::regclass::text as t, rx_bytes from workspace_agent_stats
        where agent_id = ${ids.agent_id} order by created_at`),
    ];
    // The gateway's own insert, and its retry (idempotent on (id, created_at)).
    await insertStatsBatch(gw, batch);
    await insertStatsBatch(gw, batch);
    assert.deepEqual(await where(), [
      { t: 'workspace_agent_stats_default', rx_bytes: 100 },
      { t: 'workspace_agent_stats_default', rx_bytes: 101 },
    ]);
    const r = await pass(gw);
    assert.ok(r.partitionsCreated.includes(partitionOf(past)) && r.partitionsCreated.includes(partitionOf(future)));
    assert.ok(r.daysRolledUp.includes(past), 'the past day is rolled up');
    assert.deepEqual(await where(), [
      { t: partitionOf(past), rx_bytes: 100 },
      { t: partitionOf(future), rx_bytes: 101 },
    ]);
    await insertStatsBatch(gw, batch);
    assert.equal((await where()).length, 2, 'a retry after the move is still idempotent');
    const [d] = await db.sql<{ n: number }[]>`select count(*)::int as n from workspace_agent_stats_default`;
    assert.equal(d!.n, 0);
  });

  test('the rollup of a day equals its raw rows (latest ids, sums, maxima, mean latency) and is idempotent', async () => {
    const { db, gw } = await database();
    const day = await dbDay(db.sql, -3);
    const rnd = seeded(42);
    const moving = randomIds();
    const rows = [
      ...rowsOn(day, randomIds(), 300, rnd),
      ...rowsOn(day, randomIds(), 1, rnd),
      // The same agent moves to another workspace, template and owner during the day: the latest row's win.
      ...rowsOn(day, moving, 50, rnd).map((r, i) => (i < 25 ? r : { ...r, ...randomIds(), agent_id: moving.agent_id })),
      // No latency measured all day: -1.
      ...rowsOn(day, randomIds(), 20, rnd).map((r) => ({ ...r, connection_median_latency_ms: -1 })),
    ];
    await insertRaw(db.sql, rows);
    const first = await pass(gw);
    assert.ok(first.daysRolledUp.includes(day));
    const want = rounded(expectedDaily(day, rows));
    assert.deepEqual(rounded(await readDaily(db.sql, day)), want);
    await rollUpDay(gw, day);
    await rollUpDay(gw, day);
    assert.deepEqual(rounded(await readDaily(db.sql, day)), want, 'rolled up again: the same rows');
    const again = await pass(gw);
    assert.deepEqual(again.daysRolledUp, [], 'a rolled-up day is not rolled up again');
    assert.deepEqual(rounded(await readDaily(db.sql, day)), want);
    const [ledger] = await db.sql<{ raw_rows: number }[]>`
      select raw_rows from agentgate_stats_rollups where day = ${day}::date`;
    assert.equal(ledger!.raw_rows, rows.length);
  });

  test('retention drops a partition only once its day is rolled up, rows that came late included', async () => {
    const { db, gw } = await database();
    const [a, b, c] = [await dbDay(db.sql, -6), await dbDay(db.sql, -5), await dbDay(db.sql, -2)];
    for (const d of [a, b, c]) await createStatsPartition(gw, d, 1000);
    const rnd = seeded(7);
    const rows = new Map(
      [a, b, c].map((d) => [d, [...rowsOn(d, randomIds(), 40, rnd), ...rowsOn(d, randomIds(), 5, rnd)]]),
    );
    for (const r of rows.values()) await insertRaw(db.sql, r);
    // Day a cannot be rolled up (its partition unreadable): it must survive the retention.
    await db.sql`revoke select on ${db.sql(partitionOf(a))} from ${db.sql(new URL(db.url).username)}`;
    await assert.rejects(runMaintenancePass(gw, { ...KEEP, statsRetentionMs: 2 * DAY }), (e: Error) =>
      e.message.includes(`rollup ${a}`),
    );
    let have = await partitions(db.sql);
    assert.ok(have.includes(partitionOf(a)), 'a day not rolled up is kept');
    assert.ok(!have.includes(partitionOf(b)), 'a rolled-up day past the retention is dropped');
    assert.ok(have.includes(partitionOf(c)), 'a day within the retention is kept');
    assert.deepEqual(rounded(await readDaily(db.sql, b)), rounded(expectedDaily(b, rows.get(b)!)));
    assert.deepEqual(await readDaily(db.sql, a), []);
    const [runs] = await db.sql<
      { outcome: string }[]
    >`select outcome from agentgate_maintenance_runs order by id desc limit 1`;
    assert.equal(runs!.outcome, 'error');

    await db.sql`grant select on ${db.sql(partitionOf(a))} to ${db.sql(new URL(db.url).username)}`;
    // Rows of day c arrive after its rollup (a clock behind): dropped with c, they are rolled up first.
    const late = rowsOn(c, randomIds(), 3, rnd);
    await insertRaw(db.sql, late);
    const r = await pass(gw, { statsRetentionMs: DAY });
    assert.deepEqual(r.daysRolledUp, [a, c]);
    assert.deepEqual(r.partitionsDropped, [partitionOf(a), partitionOf(c)]);
    have = await partitions(db.sql);
    for (const d of [a, b, c]) assert.ok(!have.includes(partitionOf(d)), `${partitionOf(d)} dropped`);
    assert.deepEqual(rounded(await readDaily(db.sql, a)), rounded(expectedDaily(a, rows.get(a)!)));
    assert.deepEqual(rounded(await readDaily(db.sql, c)), rounded(expectedDaily(c, [...rows.get(c)!, ...late])));

    // The rollup retention: rows of days that ended more than 5 days ago go, the others stay.
    const kept = await pass(gw, { statsRetentionMs: DAY, rollupRetentionMs: 5 * DAY });
    assert.equal(kept.rollupRowsDeleted, 2, "day a's two agents");
    assert.deepEqual(await readDaily(db.sql, a), []);
    assert.equal((await readDaily(db.sql, b)).length, 2);
  });
});
