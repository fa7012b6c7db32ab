// The test helpers themselves: the FakeClock fires timers in order (also those armed by fired
// callbacks) with promises settled in between; the FakeStore counts, fails and holds on demand.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../helpers/fake-clock.ts';
import { connectionRefused, FakeStore } from '../helpers/fake-store.ts';

describe('FakeClock', () => {
  test('fires due timers in order of due time, then of arming, with now() at each due time', async () => {
    const clock = new FakeClock(1000);
    const fired: [string, number][] = [];
    clock.setTimeout(() => fired.push(['c', clock.now()]), 30, 't');
    clock.setTimeout(() => fired.push(['a', clock.now()]), 10, 't');
    clock.setTimeout(() => fired.push(['b1', clock.now()]), 20, 't');
    clock.setTimeout(() => fired.push(['b2', clock.now()]), 20, 't');
    clock.setTimeout(() => fired.push(['late', clock.now()]), 31, 't');
    await clock.advance(30);
    assert.deepEqual(fired, [
      ['a', 1010],
      ['b1', 1020],
      ['b2', 1020],
      ['c', 1030],
    ]);
    assert.equal(clock.now(), 1030);
    assert.deepEqual(
      clock.pending().map((p) => p.at),
      [1031],
    );
  });

  test('timers armed by fired callbacks fire within the same advance when due', async () => {
    const clock = new FakeClock(0);
    const fired: number[] = [];
    const tick = () => {
      fired.push(clock.now());
      clock.setTimeout(tick, 100, 't');
    };
    clock.setTimeout(tick, 100, 't');
    await clock.advance(450);
    assert.deepEqual(fired, [100, 200, 300, 400]);
  });

  test('awaited promises and setImmediate callbacks settle between firings', async () => {
    const clock = new FakeClock(0);
    const seen: string[] = [];
    clock.setTimeout(
      () => {
        void Promise.resolve()
          .then(() => new Promise<void>((r) => setImmediate(r)))
          .then(() => {
            seen.push(`settled@${clock.now()}`);
            clock.setTimeout(() => seen.push(`second@${clock.now()}`), 5, 't');
          });
      },
      10,
      't',
    );
    clock.setTimeout(() => seen.push(`other@${clock.now()}`), 12, 't');
    await clock.advance(20);
    assert.deepEqual(seen, ['settled@10', 'other@12', 'second@15']);
  });

  test('clearTimeout removes a timer; advance never goes back', async () => {
    const clock = new FakeClock(0);
    let fired = false;
    const t = clock.setTimeout(
      () => {
        fired = true;
      },
      5,
      't',
    );
    clock.clearTimeout(t);
    clock.clearTimeout(undefined);
    await clock.advance(10);
    assert.equal(fired, false);
    await assert.rejects(clock.advance(-1));
  });
});

describe('FakeStore', () => {
  test('records calls by method with their fake time', async () => {
    const clock = new FakeClock(0);
    const store = new FakeStore(clock);
    const fx = store.fixture();
    await store.workspaceByAgentId(fx.agent.id);
    await clock.advance(7);
    await store.refreshIdentities([{ agentId: fx.agent.id, workspaceId: fx.workspace.id }]);
    assert.deepEqual(store.counts(), { workspaceByAgentId: 1, refreshIdentities: 1 });
    assert.equal(store.workspaceReads(), 2);
    assert.deepEqual(store.timesOf('refreshIdentities'), [7]);
    store.resetCalls();
    assert.equal(store.count(), 0);
  });

  test('fails on demand (n times, or matching calls only) and heals', async () => {
    const store = new FakeStore();
    const fx = store.fixture();
    store.fail('workspaceByAgentId', connectionRefused(), { times: 1 });
    await assert.rejects(store.workspaceByAgentId(fx.agent.id), { code: 'ECONNREFUSED' });
    assert.equal((await store.workspaceByAgentId(fx.agent.id))?.agentId, fx.agent.id);
    store.fail('ping', connectionRefused());
    await assert.rejects(store.ping());
    await assert.rejects(store.ping());
    store.heal();
    await store.ping();
    assert.equal(store.count('ping'), 3);
  });

  test('holds calls until released', async () => {
    const store = new FakeStore();
    store.hold('ping');
    let done = false;
    const p = store.ping().then(() => {
      done = true;
    });
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(done, false);
    assert.equal(store.waiting('ping'), 1);
    store.release('ping');
    await p;
    assert.equal(done, true);
  });

  test('reflects changes made by the test (claim, delete, token)', async () => {
    const store = new FakeStore();
    const fx = store.fixture({ prebuild: true });
    store.updateWorkspace(fx.workspace.id, { ownerId: 'b0b0b0b0-1111-4222-8333-444444444444', deleted: true });
    store.updateAgent(fx.agent.id, { token: 'new-token' });
    const row = await store.workspaceByAgentId(fx.agent.id);
    assert.equal(row?.workspace.ownerId, 'b0b0b0b0-1111-4222-8333-444444444444');
    assert.equal(row?.workspace.deleted, true);
    assert.equal(row?.authToken, 'new-token');
    assert.equal(await store.agentByToken(fx.agent.token), undefined);
    store.agents.delete(fx.agent.id);
    assert.equal(await store.workspaceByAgentId(fx.agent.id), undefined);
  });
});
