// SPEC §7 group commit: batches, at most one in flight, a lone frame without a timer, answers only
// after commit, a bounded buffer, retries on connection errors with an answer deadline, and
// isolation of the one bad frame of a rejected batch.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { BatchWriter, Rejected, WriteBuffer } from '../../gateway/src/store/batch-writer.ts';
import { insertStatsBatch, type StatsRow } from '../../gateway/src/store/stats.ts';
import { FakeClock, settle } from '../helpers/fake-clock.ts';
import { connectionClosed, connectionRefused, FakeStore, invalidText } from '../helpers/fake-store.ts';

function row(rxBytes = 0): StatsRow {
  return {
    id: randomUUID(),
    createdAt: '2025-01-06T12:00:00.000Z',
    userId: randomUUID(),
    agentId: randomUUID(),
    workspaceId: randomUUID(),
    templateId: randomUUID(),
    connectionsByProto: '{}',
    connectionCount: 0,
    rxPackets: 0,
    rxBytes,
    txPackets: 0,
    txBytes: 0,
    connectionMedianLatencyMs: -1,
    sessionCountVscode: 0,
    sessionCountJetbrains: 0,
    sessionCountReconnectingPty: 0,
    sessionCountSsh: 0,
  };
}

interface Answer {
  outcome: 'ok' | 'unavailable' | 'rejected';
  err: unknown;
  /** Fake time of the answer. */
  at: number;
}

function setup(opts: { capacity?: number; maxBatch?: number; answerDeadlineMs?: number } = {}) {
  const clock = new FakeClock();
  const store = new FakeStore(clock);
  const db = store.db();
  const buffer = new WriteBuffer(opts.capacity ?? 1000);
  const events = { success: 0, failure: 0, batches: [] as number[] };
  const writer = new BatchWriter<StatsRow>({
    name: 'workspace_agent_stats',
    maxBatch: opts.maxBatch ?? 1000,
    write: (items) => db.bulk(insertStatsBatch, items),
    buffer,
    clock,
    hooks: {
      onSuccess: () => events.success++,
      onFailure: () => events.failure++,
      onBatch: (n) => events.batches.push(n),
    },
    answerDeadlineMs: opts.answerDeadlineMs,
  });
  const answers = new Map<StatsRow, Answer>();
  const submit = (r: StatsRow = row()) => {
    void writer.write(r).then((written) => {
      assert.equal(answers.has(r), false, 'answered twice');
      const rejected = written instanceof Rejected;
      answers.set(r, {
        outcome: rejected ? 'rejected' : written,
        err: rejected ? written.err : undefined,
        at: clock.now(),
      });
    });
    return r;
  };
  return { clock, store, buffer, writer, events, answers, submit };
}

describe('BatchWriter', () => {
  test('a lone item is flushed on the next turn of the event loop, with no timer', async () => {
    const { clock, store, answers, submit } = setup();
    const r = submit();
    assert.equal(store.count(), 0, 'not written synchronously');
    assert.deepEqual(clock.armed, [], 'no timer armed to flush it');
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(store.count('insertStatsBatch'), 1);
    await settle();
    assert.equal(answers.get(r)?.outcome, 'ok');
    assert.equal(store.statsRows.length, 1);
    assert.deepEqual(clock.pending('writer_attempt'), [], 'the statement watchdog is cleared after the answer');
  });

  test('items submitted in one turn share one batch (one statement)', async () => {
    const { store, answers, submit, events } = setup();
    const rows = Array.from({ length: 100 }, () => submit());
    await settle();
    assert.equal(store.count('insertStatsBatch'), 1);
    assert.deepEqual(events.batches, [100]);
    assert.ok(rows.every((r) => answers.get(r)?.outcome === 'ok'));
  });

  test('many concurrent submits → few batches, at most one in flight', async () => {
    const { store, answers, submit, events } = setup();
    store.hold('insertStatsBatch');
    const rows = [submit()];
    await settle();
    assert.equal(store.count('insertStatsBatch'), 1);
    // 50 more frames over several turns while the first batch is in flight.
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 10; j++) rows.push(submit());
      await settle(1);
    }
    assert.equal(store.count('insertStatsBatch'), 1, 'no second batch while one is in flight');
    store.release('insertStatsBatch');
    await settle();
    assert.equal(store.count('insertStatsBatch'), 2);
    assert.deepEqual(events.batches, [1, 50]);
    assert.equal(store.maxInFlight('insertStatsBatch'), 1);
    assert.ok(rows.every((r) => answers.get(r)?.outcome === 'ok'));
    assert.equal(store.statsRows.length, 51);
  });

  test('maxBatch splits a burst into consecutive batches, one at a time', async () => {
    const { store, submit, events } = setup({ maxBatch: 10 });
    for (let i = 0; i < 35; i++) submit();
    await settle();
    assert.deepEqual(events.batches, [10, 10, 10, 5]);
    assert.equal(store.maxInFlight('insertStatsBatch'), 1);
  });

  test('done fires only after the write resolved', async () => {
    const { store, answers, submit } = setup();
    store.hold('insertStatsBatch');
    const r = submit();
    await settle();
    assert.equal(store.waiting('insertStatsBatch'), 1);
    assert.equal(answers.has(r), false, 'answered before commit');
    store.release('insertStatsBatch');
    await settle();
    assert.equal(answers.get(r)?.outcome, 'ok');
    assert.equal(store.statsRows.length, 1);
  });

  test('a full WriteBuffer answers unavailable at once (frames in flight count)', async () => {
    const { store, buffer, answers, submit } = setup({ capacity: 2 });
    store.hold('insertStatsBatch');
    const a = submit();
    const b = submit();
    await settle();
    assert.equal(buffer.size, 2, 'the batch in flight holds its two frames');
    const c = submit();
    await Promise.resolve();
    assert.equal(answers.get(c)?.outcome, 'unavailable', 'answered at once, not queued');
    assert.equal(answers.has(a), false);
    store.release('insertStatsBatch');
    await settle();
    assert.equal(answers.get(a)?.outcome, 'ok');
    assert.equal(answers.get(b)?.outcome, 'ok');
    assert.equal(buffer.size, 0);
    assert.equal(store.statsRows.length, 2, 'the rejected frame is never written');
    assert.equal(store.count('insertStatsBatch'), 1);
    const d = submit();
    await settle();
    assert.equal(answers.get(d)?.outcome, 'ok', 'room again once the batch committed');
  });

  test('a retryable error → retried after a backoff; the row is written once and answered ok', async () => {
    const { clock, store, answers, submit, events, buffer } = setup();
    store.fail('insertStatsBatch', connectionRefused(), { times: 2 });
    const r = submit();
    await settle();
    assert.equal(store.count('insertStatsBatch'), 1);
    assert.equal(answers.has(r), false);
    assert.equal(events.failure, 1);
    assert.equal(clock.pending('writer_retry').length, 1, 'a retry timer is armed');
    await clock.runNext();
    assert.equal(store.count('insertStatsBatch'), 2);
    assert.equal(answers.has(r), false);
    await clock.runNext();
    assert.equal(store.count('insertStatsBatch'), 3);
    assert.equal(answers.get(r)?.outcome, 'ok');
    assert.equal(store.statsRows.length, 1);
    assert.equal(events.failure, 2);
    assert.equal(buffer.size, 0);
  });

  test('frames submitted during a retry wait join the retried batch', async () => {
    const { clock, store, answers, submit, events } = setup();
    store.fail('insertStatsBatch', connectionRefused(), { times: 1 });
    const a = submit();
    await settle();
    const b = submit();
    await settle();
    assert.equal(store.count('insertStatsBatch'), 1, 'no flush while a retry is pending');
    await clock.runNext();
    assert.equal(store.count('insertStatsBatch'), 2);
    assert.deepEqual(events.batches, [2]);
    assert.equal(answers.get(a)?.outcome, 'ok');
    assert.equal(answers.get(b)?.outcome, 'ok');
  });

  test('database down: items older than the deadline are answered unavailable, never written', async () => {
    const deadline = 25_000;
    const { clock, store, answers, submit, buffer } = setup({ answerDeadlineMs: deadline });
    const t0 = clock.now();
    store.fail('insertStatsBatch', connectionRefused());
    const a = submit();
    await clock.advance(10_000);
    const b = submit();
    await clock.advance(deadline - 10_000 - 1);
    assert.equal(answers.has(a), false, 'answered before its deadline');
    await clock.advance(3000);
    assert.equal(answers.get(a)?.outcome, 'unavailable');
    assert.ok(answers.get(a)!.at - t0 >= deadline);
    assert.ok(answers.get(a)!.at - t0 <= deadline + 2000, 'answered within a retry period of the deadline');
    assert.equal(answers.has(b), false, 'a younger frame keeps waiting');
    assert.equal(buffer.size, 1);

    // The database returns: the younger frame commits, the expired one was never written.
    store.heal();
    await clock.advance(2000);
    assert.equal(answers.get(b)?.outcome, 'ok');
    assert.deepEqual(
      store.statsRows.map((r) => r.id),
      [b.id],
    );
    assert.equal(buffer.size, 0);
  });

  test('a database that hangs: every frame is still answered within 30 s (SPEC §7)', async () => {
    const { clock, store, answers, submit } = setup();
    const t0 = clock.now();
    // The statement never answers (a lost connection without a reset).
    store.hold('insertStatsBatch');
    const submitted = new Map<ReturnType<typeof submit>, number>();
    submitted.set(submit(), clock.now());
    await clock.advance(5300);
    submitted.set(submit(), clock.now());
    for (let t = 0; t < 60_000; t += 100) await clock.advance(100);
    const late: string[] = [];
    for (const [r, at] of submitted) {
      const a = answers.get(r);
      if (!a) late.push(`submitted at +${at - t0} ms: never answered`);
      else if (a.at - at > 30_000)
        late.push(`submitted at +${at - t0} ms: answered ${a.outcome} after ${a.at - at} ms`);
    }
    assert.deepEqual(late, [], 'SPEC §7: a frame is answered within 30 s either way');
  });

  test('a frame answered unavailable is never persisted, even when its stalled statement commits late', async () => {
    const { clock, store, answers, submit } = setup();
    // The statement stalls (a slow database), the writer gives up on it and answers the frame...
    store.hold('insertStatsBatch');
    const r = submit();
    for (let t = 0; t < 60_000 && !answers.has(r); t += 100) await clock.advance(100);
    assert.equal(answers.get(r)?.outcome, 'unavailable');
    // ...then the database catches up and the stalled statements complete.
    store.release('insertStatsBatch');
    await settle();
    assert.deepEqual(
      store.statsRows.filter((x) => x.id === r.id),
      [],
      'SPEC §4: a frame that is rejected is never persisted',
    );
  });

  test('a non-retryable error in a batch of 3 with one bad item → the two good ok, the bad one rejected', async () => {
    const { store, answers, submit, events } = setup();
    const bad = row(666);
    store.fail('insertStatsBatch', invalidText(), {
      when: (args) => (args[0] as StatsRow[]).some((r) => r.id === bad.id),
    });
    const a = submit();
    submit(bad);
    const c = submit();
    await settle();
    assert.equal(answers.get(a)?.outcome, 'ok');
    assert.equal(answers.get(c)?.outcome, 'ok');
    const b = answers.get(bad);
    assert.equal(b?.outcome, 'rejected');
    assert.equal((b?.err as { code?: string })?.code, '22P02', "the database's reason comes with the outcome");
    assert.deepEqual(store.statsRows.map((r) => r.id).sort(), [a.id, c.id].sort());
    // [a, bad, c] → [a, bad] → [a] ok, [bad] rejected → [c] ok.
    assert.equal(store.count('insertStatsBatch'), 5, 'the batch, then halves of it');
    assert.equal(events.failure, 0, 'a data error is not a database failure');
  });

  test('one bad frame in a batch of 2000 costs a few statements, not one per frame (halves)', async () => {
    const { store, answers, submit } = setup({ maxBatch: 2000, capacity: 4000 });
    const bad = row(4242);
    store.fail('insertStatsBatch', invalidText(), {
      when: (args) => (args[0] as StatsRow[]).some((r) => r.id === bad.id),
    });
    const rows: StatsRow[] = [];
    for (let i = 0; i < 1999; i++) rows.push(submit());
    submit(bad);
    await settle(60);
    assert.equal(answers.get(bad)?.outcome, 'rejected');
    assert.ok(rows.every((r) => answers.get(r)?.outcome === 'ok'));
    assert.equal(store.statsRows.length, 1999);
    // One failing attempt per level (2000, 1000, ..., 1) plus one good half per level.
    assert.ok(
      store.count('insertStatsBatch') <= 1 + 2 * Math.ceil(Math.log2(2000)),
      `${store.count('insertStatsBatch')} statements`,
    );
  });

  test('in doubt: an attempt that committed but lost its answer is never answered -32002; its retry acks it, stored once', async () => {
    const { clock, store, answers, submit } = setup();
    store.loseAnswer('insertStatsBatch'); // commits, then the connection breaks
    const r = submit();
    await settle();
    assert.equal(store.statsRows.length, 1, 'the first attempt committed');
    // The database then stays unreachable well past the answer deadline.
    store.fail('insertStatsBatch', connectionRefused());
    await clock.advance(40_000);
    assert.equal(answers.get(r)?.outcome, undefined, 'not -32002: it may be (and is) in the database');
    store.heal();
    await clock.advance(3000);
    assert.equal(answers.get(r)?.outcome, 'ok', 'the retry committed (on conflict do nothing), so it is acknowledged');
    assert.equal(store.statsRows.filter((x) => x.id === r.id).length, 1, 'stored exactly once');
  });

  test('in doubt but not committed: retried, acknowledged once the retry commits', async () => {
    const { clock, store, answers, submit } = setup();
    store.fail('insertStatsBatch', connectionClosed(), { times: 1 }); // broke before the commit
    const r = submit();
    const plain = row(7);
    await settle();
    store.fail('insertStatsBatch', connectionRefused());
    submit(plain); // never part of an attempt with an unknown outcome
    await clock.advance(20_000);
    assert.equal(answers.get(plain)?.outcome, 'unavailable', 'a frame never in doubt gets -32002 at its deadline');
    assert.equal(answers.has(r), false);
    store.heal();
    await clock.advance(3000);
    assert.equal(answers.get(r)?.outcome, 'ok');
    assert.deepEqual(
      store.statsRows.map((x) => x.id),
      [r.id],
    );
  });

  test('a non-retryable error for a lone item → rejected, not retried', async () => {
    const { clock, store, answers, submit } = setup();
    store.fail('insertStatsBatch', invalidText());
    const r = submit();
    await settle();
    assert.equal(answers.get(r)?.outcome, 'rejected');
    await clock.advance(60_000);
    assert.equal(store.count('insertStatsBatch'), 1);
  });

  test('idle() resolves once nothing is queued or in flight', async () => {
    const { store, writer, submit } = setup();
    let idle = false;
    await writer.idle();
    store.hold('insertStatsBatch');
    submit();
    void writer.idle().then(() => {
      idle = true;
    });
    await settle();
    assert.equal(idle, false);
    store.release('insertStatsBatch');
    await settle();
    assert.equal(idle, true);
  });
});
