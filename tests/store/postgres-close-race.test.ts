// patches/postgres-close-race.mjs, checked against the real postgres.js and PostgreSQL: queries
// handed to a connection between its socket's 'error' and 'close' events (a reset) must fail, never
// resolve with an empty result (an INSERT acknowledged without its row) or with another query's
// rows, and never hang. Unpatched 3.4.9 hangs here (a stale query waits for an answer that went to
// another) or resolves queries with no result; the array-types query of a reconnect rejected with
// nobody listening, and so did a cancel request that could not reach the server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { withTimeout } from '../helpers/wait.ts';

const ROUNDS = 20;
const QUERIES_PER_ROUND = 30;

describe('postgres.js: queries around a connection reset (patches/postgres-close-race.mjs)', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  before(async () => {
    db = await freshDatabase();
    proxy = await startTcpProxy(db.url);
    // Made by the database's owner role, which the test's connections use (db.sql is the superuser).
    const owner = postgres(db.url, { max: 1, onnotice: () => {} });
    await owner`create table race (id int primary key)`;
    await owner.end();
    process.on('unhandledRejection', onUnhandled);
  });
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await proxy?.close();
    await db?.drop();
  });

  test('every query fails or returns its own result, and every acknowledged INSERT is stored', async () => {
    // One connection, so that the queries of the next turns all meet the reset one.
    const sql = postgres(proxy.rewrite(db.url), { max: 1, onnotice: () => {} });
    const acked: number[] = [];
    let bogus = 0;
    let failed = 0;
    let next = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        await sql`select 1`;
        proxy.resetAll();
        // Queries on the following turns of the event loop: the ones between the socket's 'error'
        // (next tick) and 'close' (after libuv closed the handle) meet the race.
        const settled: Promise<void>[] = [];
        await new Promise<void>((resolve) => {
          let n = 0;
          const turn = () => {
            const id = next++;
            const insert = sql`insert into race values (${id}) returning id`;
            settled.push(
              insert.then(
                (rows) => {
                  if (rows.length === 1 && rows[0]!['id'] === id && rows.command === 'INSERT') acked.push(id);
                  else bogus++;
                },
                () => {
                  failed++;
                },
              ),
            );
            if (++n < QUERIES_PER_ROUND) setImmediate(turn);
            else resolve();
          };
          setImmediate(turn);
        });
        await withTimeout(Promise.all(settled), 10_000, `the queries of round ${round} to settle`);
      }
      const stored = new Set((await db.sql<{ id: number }[]>`select id from race`).map((r) => r.id));
      const missing = acked.filter((id) => !stored.has(id));
      assert.equal(bogus, 0, 'queries resolved with a result that is not theirs');
      assert.deepEqual(missing, [], 'acknowledged inserts that are not stored');
      assert.ok(failed > 0, 'no query met a reset: the test did not test anything');
      assert.ok(acked.length > ROUNDS, `only ${acked.length} inserts succeeded`);
      assert.deepEqual(unhandled, [], 'postgres.js rejected a promise nobody awaited');
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test('cancel() returns the promise of its cancel request, which a dead server rejects', async () => {
    const sql = postgres(proxy.rewrite(db.url), { max: 1, onnotice: () => {} });
    try {
      await sql`select 1`;
      const slow = sql`select pg_sleep(30)`;
      const failed = slow.then(
        () => 'resolved',
        () => 'rejected',
      );
      await new Promise((r) => setTimeout(r, 200));
      await proxy.cut(); // the cancel request's own connection is refused
      const sent = slow.cancel() as unknown;
      assert.ok(sent instanceof Promise, 'cancel() returned no promise: its rejection would be unhandled');
      await assert.rejects(sent as Promise<unknown>);
      assert.equal(await failed, 'rejected');
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(unhandled, []);
    } finally {
      await proxy.restore();
      await sql.end({ timeout: 1 });
    }
  });
});
