// SPEC §5 refresh of a session (Session.refresh via the RefreshBatcher), Coder-style: trap the
// refresh timer, advance the fake clock to it, then assert the store calls and the outcome.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PREBUILDS_OWNER_ID, RpcError } from '@agentgate/shared';
import type { Metric } from '@agentgate/shared';
import type { Session } from '../../gateway/src/session/session.ts';
import { connectionRefused } from '../helpers/fake-store.ts';
import { Harness, MINUTE, metricValue, REFRESH_WINDOW_MS, REVOCATIONS, statsOk } from './harness.ts';

const someStats = { stats: { connectionCount: 0, rxBytes: 1 } };
const cpu: Metric = { name: 'cpu_seconds', type: 'COUNTER', value: 5 };

/** Advances to the session's first refresh tick and through the batcher's window: one refresh done. */
async function firstRefresh(h: Harness): Promise<void> {
  await h.clock.advance(h.firstTickDelay() + h.timerWindowMs);
}

async function refreshOutcome(h: Harness, outcome: string): Promise<number> {
  return metricValue(h.metrics, 'agentgate_identity_refresh_total', { outcome });
}

describe('session refresh timing', () => {
  test('the refresh timer is trapped at connect: one timer, due at the jittered first tick', () => {
    for (const r of [0, 0.5, 0.999]) {
      const h = new Harness({ random: () => r });
      h.connect(h.store.fixture());
      const pending = h.clock.pending('refresh');
      assert.equal(pending.length, 1);
      const want = Math.round(h.refreshIntervalMs * (0.5 + 0.5 * r));
      assert.equal(pending[0]!.delay, want);
      assert.ok(want >= h.refreshIntervalMs / 2 && want <= h.refreshIntervalMs);
    }
  });

  test('the first refresh reads at the jittered tick (one refreshIdentities), then once every interval', async () => {
    const h = new Harness({ random: () => 0 });
    const fx = h.store.fixture();
    h.connect(fx);
    const t0 = h.clock.now();
    const first = h.refreshIntervalMs / 2;
    await h.clock.advance(first + h.timerWindowMs - 1);
    assert.equal(h.store.count('refreshIdentities'), 0);
    await h.clock.advance(1);
    assert.deepEqual(h.calls(), { refreshIdentities: 1 });
    assert.deepEqual(h.store.argsOf('refreshIdentities')[0], [
      [{ agentId: fx.agent.id, workspaceId: fx.workspace.id }],
    ]);
    assert.equal(await h.lookups('refresh'), 1);

    await h.clock.advance(4 * (h.refreshIntervalMs + h.timerWindowMs));
    const times = h.store.timesOf('refreshIdentities').map((t) => t - t0);
    assert.equal(times.length, 5);
    for (let i = 1; i < times.length; i++) {
      const gap = times[i]! - times[i - 1]!;
      // The batcher's collection window may add its few milliseconds to an interval.
      assert.ok(gap >= h.refreshIntervalMs && gap <= h.refreshIntervalMs + h.timerWindowMs, `gap ${gap}`);
    }
    assert.equal(await h.lookups('refresh'), 5);
    assert.equal(h.callCount(), 5, 'refreshes of an unchanged workspace read and never write');
  });
});

describe('pushed refreshes (SPEC §8) never postpone one due sooner', () => {
  test('cache on: a push later than the timer tick leaves the tick where it was', async () => {
    const h = new Harness({ random: () => 0 });
    const s = h.connect(h.store.fixture());
    const t0 = h.clock.now();
    const tick = h.refreshIntervalMs / 2;
    await h.clock.advance(tick - 500);
    s.refreshIn(3000);
    await h.clock.advance(500 + h.timerWindowMs);
    // The tick's read carries the push, so it waits the pushed refresh's short window.
    assert.deepEqual(
      h.store.timesOf('refreshIdentities').map((t) => t - t0),
      [tick + REFRESH_WINDOW_MS],
    );
  });

  test('cache off: a second push asked for later leaves the first where it was', async () => {
    const h = new Harness({ cacheEnabled: false });
    const s = h.connect(h.store.fixture());
    const t0 = h.clock.now();
    s.refreshIn(1000);
    for (let i = 1; i <= 5; i++) {
      await h.clock.advance(150);
      s.refreshIn(1000);
    }
    await h.clock.advance(1000);
    // One read at 1 s: it goes out after every push, so it serves them all.
    assert.deepEqual(
      h.store.timesOf('refreshIdentities').map((t) => t - t0),
      [1000 + REFRESH_WINDOW_MS],
    );
  });
});

describe('session refresh outcomes', () => {
  test('unchanged → no write, no log above debug, outcome unchanged, lastRefreshAt set', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    const before = s.identity.get();
    await firstRefresh(h);
    assert.equal(s.lastRefreshOutcome, 'unchanged');
    assert.equal(s.lastRefreshAt, h.clock.now());
    assert.deepEqual(h.calls(), { refreshIdentities: 1 });
    assert.deepEqual(h.loudLines(), []);
    assert.equal(
      h.lines.filter((l) => l.msg === 'workspace identity changed').length,
      0,
      'no change line for an unchanged identity',
    );
    assert.deepEqual(s.identity.get(), before);
    assert.equal(await refreshOutcome(h, 'unchanged'), 1);
  });

  test('store error → identity cleared, outcome error, warning; the next frame takes the slow path', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const s = h.connect(fx);
    h.store.fail('refreshIdentities', connectionRefused());
    await firstRefresh(h);
    assert.equal(h.store.count('refreshIdentities'), 1);
    assert.equal(s.identity.cached, false);
    assert.equal(s.lastRefreshOutcome, 'error');
    assert.equal(s.lastRefreshAt, h.clock.now());
    assert.equal(await refreshOutcome(h, 'error'), 1);
    assert.equal(h.loudLines().filter((l) => l.level === 40).length, 1, 'one warning');
    assert.deepEqual(h.revokesOf(s), [], 'a database error does not revoke');

    assert.deepEqual(await h.stats(s, someStats), statsOk);
    assert.equal(h.store.count('workspaceByAgentId'), 1);
    assert.deepEqual(await h.cache(), { hit: 0, miss: 1 });
  });

  test('store error → the retry comes after 1 s, then 2 s, 4 s … (not a whole interval)', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    h.store.fail('refreshIdentities', connectionRefused());
    await firstRefresh(h);
    await h.clock.advance(1000 + 2000 + 4000 + 8000 + 16000 + 30000 + 30000 + 7 * h.timerWindowMs);
    const times = h.store.timesOf('refreshIdentities');
    const gaps = times.slice(1).map((t, i) => t - times[i]! - h.timerWindowMs);
    assert.deepEqual(gaps, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);

    // The database is back: the next retry succeeds and the identity is cached again.
    h.store.heal();
    await h.clock.advance(30000 + h.timerWindowMs);
    assert.equal(s.identity.cached, true);
    assert.notEqual(s.lastRefreshOutcome, 'error');
    const n = h.store.count('refreshIdentities');
    await h.clock.advance(h.refreshIntervalMs - 1);
    assert.equal(h.store.count('refreshIdentities'), n, 'after a success the next refresh is an interval away');
    await h.clock.advance(h.timerWindowMs + 1);
    assert.equal(h.store.count('refreshIdentities'), n + 1);
  });

  test('store error with a short interval → the retry backoff is capped at the interval', async () => {
    const h = new Harness({ refreshIntervalMs: 3000, random: () => 0 });
    h.connect(h.store.fixture());
    h.store.fail('refreshIdentities', connectionRefused());
    await h.clock.advance(1500 + h.timerWindowMs + 1000 + 2000 + 3000 + 3000 + 4 * h.timerWindowMs);
    const times = h.store.timesOf('refreshIdentities');
    const gaps = times.slice(1).map((t, i) => t - times[i]! - h.timerWindowMs);
    assert.deepEqual(gaps, [1000, 2000, 3000, 3000]);
  });

  test('prebuild → the identity stays empty, outcome prebuild', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture({ prebuild: true }));
    await firstRefresh(h);
    assert.equal(h.store.count('refreshIdentities'), 1);
    assert.equal(s.identity.cached, false);
    assert.equal(s.lastRefreshOutcome, 'prebuild');
    assert.equal(await refreshOutcome(h, 'prebuild'), 1);
    assert.deepEqual(h.revokesOf(s), []);
  });

  test('a claimed prebuild is picked up by the refresh: changed, cached, the new owner', async () => {
    const h = new Harness();
    const fx = h.store.fixture({ prebuild: true });
    const s = h.connect(fx);
    const owner = 'b0b0b0b0-1111-4222-8333-444444444444';
    h.store.updateWorkspace(fx.workspace.id, { ownerId: owner, ownerUsername: 'bob' });
    await firstRefresh(h);
    assert.equal(s.lastRefreshOutcome, 'changed');
    assert.equal(s.identity.cached, true);
    assert.equal(s.subject.ownerId, owner);
    assert.ok(h.registry.byOwner.get(owner)?.has(s));
    assert.equal(h.registry.byOwner.has(PREBUILDS_OWNER_ID), false);

    assert.deepEqual(await h.stats(s, someStats), statsOk);
    assert.equal(h.store.count('workspaceByAgentId'), 0, 'fast path after the claim');
    assert.equal(h.store.statsRows[0]!.userId, owner);
  });

  test('changed (rename, new autostart schedule) → identity updated, one debug line, used by the next frame', async () => {
    // Agent series expire after two report intervals; keep them alive so only the rename removes them.
    const h = new Harness({ statsReportIntervalMs: 10 * MINUTE });
    const fx = h.store.fixture({ name: 'dev', metadataKeys: ['cpu'] });
    const s = h.connect(fx);
    // A report under the old name.
    await h.stats(s, { stats: { metrics: [cpu] } });
    assert.match(h.agentMetrics.render(h.clock.now()), /workspace_name="dev"/);

    const schedule = 'CRON_TZ=UTC 0 9 * * *';
    h.store.updateWorkspace(fx.workspace.id, { name: 'renamed', autostartSchedule: schedule });
    await firstRefresh(h);
    assert.equal(s.lastRefreshOutcome, 'changed');
    assert.equal(s.identity.get()!.name, 'renamed');
    assert.equal(s.identity.get()!.autostartSchedule, schedule);
    assert.equal(await refreshOutcome(h, 'changed'), 1);
    const changeLines = h.lines.filter((l) => l.msg === 'workspace identity changed');
    assert.equal(changeLines.length, 1);
    assert.equal(changeLines[0]!.level, 20, 'logged at debug');
    assert.deepEqual(h.loudLines(), []);
    assert.deepEqual(h.calls(), { insertStatsBatch: 1, refreshIdentities: 1 }, 'a refresh writes nothing');

    // The old series is gone at once; the next report is labelled with the new name.
    assert.doesNotMatch(h.agentMetrics.render(h.clock.now()), /workspace_name="dev"/);
    await h.stats(s, { stats: { connectionCount: 2, metrics: [cpu] } });
    const text = h.agentMetrics.render(h.clock.now());
    assert.match(text, /agentgate_agent_cpu_seconds\{[^}]*workspace_name="renamed"[^}]*\} 5/);
    assert.doesNotMatch(text, /workspace_name="dev"/);
    assert.equal(h.store.count('workspaceByAgentId'), 0);

    // The activity of that frame computes the next autostart from the new schedule.
    await h.clock.advance(1000);
    assert.equal(h.store.activity.length, 1);
    const next = new Date(h.clock.now());
    next.setUTCHours(9, 0, 0, 0);
    if (next.getTime() <= h.clock.now()) next.setUTCDate(next.getUTCDate() + 1);
    assert.equal(h.store.activity[0]!.nextAutostart, next.toISOString());
    assert.equal(h.store.activity[0]!.workspaceId, fx.workspace.id);
    assert.equal(h.store.activity[0]!.bump, true);
  });

  test('the frame before the refresh still uses the old schedule (no autostart)', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    await h.stats(s, { stats: { connectionCount: 1 } });
    await h.clock.advance(1000);
    assert.equal(h.store.activity.length, 1);
    assert.equal(h.store.activity[0]!.nextAutostart, null);
  });

  for (const c of REVOCATIONS) {
    test(`${c.name} → the refresh revokes ('${c.reason}')`, async () => {
      const h = new Harness();
      const fx = h.store.fixture();
      const s = h.connect(fx);
      c.change(h.store, fx);
      await firstRefresh(h);
      assert.deepEqual(h.revokesOf(s), [c.reason]);
      assert.equal(s.revoked, c.reason);
      assert.equal(await refreshOutcome(h, 'revoked'), 1);
      assert.deepEqual(h.calls(), { refreshIdentities: 1 });
    });
  }

  test('after a refresh revoked the session, a frame is denied and not written', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const s = h.connect(fx);
    h.store.updateWorkspace(fx.workspace.id, { deleted: true });
    await firstRefresh(h);
    assert.deepEqual(h.revokesOf(s), ['workspace_deleted']);
    // The socket closes asynchronously (close handshake); a frame that arrives meanwhile must not be
    // authorized from the identity of a workspace the gateway knows is deleted (SPEC §6).
    const out = await h.stats(s, someStats);
    assert.equal(out.error?.code, RpcError.NotAuthorized, 'a frame for a deleted workspace was acknowledged');
    assert.equal(h.store.count('insertStatsBatch'), 0);
  });
});

describe('session refresh and close', () => {
  test('close stops the refresh for good: no store call over many intervals', async () => {
    const h = new Harness();
    const s: Session = h.connect(h.store.fixture());
    await firstRefresh(h);
    assert.equal(h.store.count('refreshIdentities'), 1);
    h.store.resetCalls();
    s.close();
    assert.equal(s.identity.cached, false);
    await h.clock.advance(50 * MINUTE + 20 * h.refreshIntervalMs);
    assert.equal(h.callCount(), 0);
    assert.equal(h.clock.pending('refresh').length, 0);
  });

  test('close during a failing-refresh backoff: no retry after close', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    h.store.fail('refreshIdentities', connectionRefused());
    await firstRefresh(h);
    await h.clock.advance(500);
    h.store.resetCalls();
    s.close();
    await h.clock.advance(10 * h.refreshIntervalMs);
    assert.equal(h.callCount(), 0);
  });

  test('close while the refresh read is in flight: the answer is ignored', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const s = h.connect(fx);
    h.store.hold('refreshIdentities');
    await firstRefresh(h);
    assert.equal(h.store.waiting('refreshIdentities'), 1);
    s.close();
    h.store.updateWorkspace(fx.workspace.id, { name: 'renamed' });
    h.store.release('refreshIdentities');
    await h.clock.advance(10 * h.refreshIntervalMs);
    assert.equal(s.identity.cached, false);
    assert.equal(s.lastRefreshOutcome, 'none');
    assert.equal(h.store.count('refreshIdentities'), 1);
  });
});
