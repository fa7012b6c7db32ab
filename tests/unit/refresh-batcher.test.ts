// SPEC §5: "Refreshes of many sessions may be batched into one query". The RefreshBatcher collects
// the reads of sessions whose timers fire within its window into one refreshIdentities call.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RefreshBatcher } from '../../gateway/src/session/refresh-batcher.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { connectionRefused, FakeStore } from '../helpers/fake-store.ts';
import { Harness } from './harness.ts';

describe('RefreshBatcher with sessions', () => {
  test('many sessions due at the same time → one refreshIdentities call for all of them', async () => {
    const h = new Harness({ random: () => 0.5 });
    const fixtures = Array.from({ length: 50 }, () => h.store.fixture());
    const sessions = fixtures.map((fx) => h.connect(fx));
    h.store.updateWorkspace(fixtures[7]!.workspace.id, { name: 'renamed' });
    await h.clock.advance(h.firstTickDelay() + h.timerWindowMs);

    assert.deepEqual(h.calls(), { refreshIdentities: 1 });
    const [pairs] = h.store.argsOf('refreshIdentities')[0] as [{ agentId: string; workspaceId: string }[]];
    assert.equal(pairs.length, 50);
    assert.deepEqual(new Set(pairs.map((p) => p.agentId)), new Set(fixtures.map((fx) => fx.agent.id)));
    assert.equal(await h.lookups('refresh'), 1, 'one lookup counted per query, not per session');
    for (const [i, s] of sessions.entries()) {
      assert.equal(s.lastRefreshOutcome, i === 7 ? 'changed' : 'unchanged');
    }
    assert.equal(sessions[7]!.identity.get()!.name, 'renamed');
  });

  test('sessions whose ticks fall within the window share a query; later ones get their own', async () => {
    const h = new Harness({ random: () => 0 });
    const interval = h.refreshIntervalMs;
    const a = h.store.fixture();
    const b = h.store.fixture();
    const c = h.store.fixture();
    h.connect(a);
    await h.clock.advance(h.timerWindowMs / 2);
    h.connect(b);
    await h.clock.advance(10 * h.timerWindowMs);
    h.connect(c);
    await h.clock.advance(interval / 2 + h.timerWindowMs);

    const calls = h.store.argsOf('refreshIdentities') as [{ agentId: string }[]][];
    assert.equal(calls.length, 2);
    assert.deepEqual(
      calls[0]![0].map((p) => p.agentId),
      [a.agent.id, b.agent.id],
    );
    assert.deepEqual(
      calls[1]![0].map((p) => p.agentId),
      [c.agent.id],
    );
  });

  test('a store error fails every session of the batch (each clears its identity)', async () => {
    const h = new Harness();
    const sessions = [h.store.fixture(), h.store.fixture(), h.store.fixture()].map((fx) => h.connect(fx));
    h.store.fail('refreshIdentities', connectionRefused(), { times: 1 });
    await h.clock.advance(h.firstTickDelay() + h.timerWindowMs);
    assert.equal(h.store.count('refreshIdentities'), 1);
    for (const s of sessions) {
      assert.equal(s.lastRefreshOutcome, 'error');
      assert.equal(s.identity.cached, false);
    }
    // All three retry 1 s later, again in one query.
    await h.clock.advance(1000 + h.timerWindowMs);
    assert.equal(h.store.count('refreshIdentities'), 2);
    for (const s of sessions) assert.equal(s.identity.cached, true);
  });
});

describe('RefreshBatcher alone', () => {
  test('a lone load waits for the window, then runs one query', async () => {
    const clock = new FakeClock();
    const store = new FakeStore(clock);
    const fx = store.fixture();
    let queries = 0;
    const batcher = new RefreshBatcher(store.db(), clock, () => queries++, 20);
    const p = batcher.load(fx.agent.id, fx.workspace.id);
    await clock.advance(19);
    assert.equal(store.count(), 0);
    await clock.advance(1);
    const row = await p;
    assert.equal(store.count('refreshIdentities'), 1);
    assert.equal(queries, 1);
    assert.equal(row?.workspace?.id, fx.workspace.id);
    assert.deepEqual(row?.agent, { deleted: false, authToken: fx.agent.token });
  });

  test('a full batch runs at once, without waiting for the window', async () => {
    const clock = new FakeClock();
    const store = new FakeStore(clock);
    const batcher = new RefreshBatcher(store.db(), clock, () => {}, 20, 3);
    const fxs = [store.fixture(), store.fixture(), store.fixture()];
    const rows = Promise.all(fxs.map((fx) => batcher.load(fx.agent.id, fx.workspace.id)));
    await clock.advance(0);
    assert.equal(store.count('refreshIdentities'), 1);
    assert.equal((await rows).length, 3);
    await clock.advance(100);
    assert.equal(store.count('refreshIdentities'), 1, 'the window timer finds nothing left to read');
  });

  test('a pair the store does not answer resolves undefined', async () => {
    const clock = new FakeClock();
    const store = new FakeStore(clock);
    const batcher = new RefreshBatcher(store.db(), clock, () => {});
    const original = store.refreshIdentities.bind(store);
    store.refreshIdentities = async (pairs) => (await original(pairs)).slice(1);
    const a = store.fixture();
    const b = store.fixture();
    const both = Promise.all([batcher.load(a.agent.id, a.workspace.id), batcher.load(b.agent.id, b.workspace.id)]);
    await clock.advance(20);
    const [ra, rb] = await both;
    assert.equal(ra, undefined);
    assert.equal(rb?.agentId, b.agent.id);
  });
});
