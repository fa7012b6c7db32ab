// SPEC §8 push invalidation, the session side (IdentityInvalidation, wired by hub/wiring.ts): a
// NOTIFY payload → the sessions it names → one batched refresh read, within the batcher's window;
// revocations close at once (with the cache off too); a resync feeds the batcher in chunks of its
// largest statement, spread over a few seconds. On the fake clock and the fake store.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseIdentityPayload } from '../../gateway/src/session/invalidation.ts';
import type { Session } from '../../gateway/src/session/session.ts';
import { Harness, MINUTE, metricValue, REFRESH_WINDOW_MS, REVOCATIONS } from './harness.ts';

type Pairs = { agentId: string; workspaceId: string }[];

const notify = (h: Harness, payload: unknown) =>
  h.core.invalidation.notified(typeof payload === 'string' ? payload : JSON.stringify(payload));

/** The agent ids of every refreshIdentities call, one array per statement. */
function refreshedAgents(h: Harness): string[][] {
  return (h.store.argsOf('refreshIdentities') as [Pairs][]).map(([pairs]) => pairs.map((p) => p.agentId));
}

async function notifications(h: Harness, kind: string): Promise<number> {
  return metricValue(h.metrics, 'agentgate_identity_notifications_total', { kind });
}

async function pushed(h: Harness, trigger: 'notify' | 'resync'): Promise<number> {
  return metricValue(h.metrics, 'agentgate_identity_push_refreshes_total', { trigger });
}

describe('parseIdentityPayload', () => {
  const id = randomUUID();
  test('each id key, several at once, and {"all": true}', () => {
    for (const key of ['workspace_id', 'owner_id', 'template_id', 'agent_id'] as const) {
      assert.deepEqual(parseIdentityPayload(JSON.stringify({ [key]: id })), { all: false, ids: [{ key, id }] });
    }
    assert.deepEqual(parseIdentityPayload(`{"owner_id": "${id.toUpperCase()}", "extra": 1, "agent_id": "${id}"}`), {
      all: false,
      ids: [
        { key: 'owner_id', id },
        { key: 'agent_id', id },
      ],
    });
    assert.deepEqual(parseIdentityPayload('{"all": true}'), { all: true });
  });

  test('malformed: not JSON, not an object, no known key, a value that is not a UUID, all not true', () => {
    for (const raw of [
      '',
      'hello',
      '{"workspace_id":',
      '[]',
      'null',
      '42',
      `"${id}"`,
      '{}',
      `{"workspace": "${id}"}`,
      '{"workspace_id": "not-a-uuid"}',
      '{"workspace_id": 7}',
      `{"workspace_id": "${id}", "owner_id": null}`,
      '{"all": "true"}',
      '{"all": false}',
    ]) {
      assert.equal(parseIdentityPayload(raw), undefined, raw);
    }
  });
});

describe('push invalidation: payload → sessions → one batched read', () => {
  test('workspace_id refreshes only that workspace’s sessions, within the batcher window', async () => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    const fxs = Array.from({ length: 5 }, () => h.store.fixture());
    const sessions = fxs.map((fx) => h.connect(fx));
    h.store.updateWorkspace(fxs[2]!.workspace.id, { name: 'renamed' });
    notify(h, { workspace_id: fxs[2]!.workspace.id });
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.deepEqual(refreshedAgents(h), [[fxs[2]!.agent.id]]);
    assert.equal(sessions[2]!.lastRefreshOutcome, 'changed');
    assert.equal(sessions[2]!.identity.get()!.name, 'renamed');
    assert.equal(sessions[2]!.lastRefreshAt, h.clock.now());
    for (const i of [0, 1, 3, 4]) assert.equal(sessions[i]!.lastRefreshOutcome, 'none');
    assert.equal(await notifications(h, 'workspace_id'), 1);
    assert.equal(await pushed(h, 'notify'), 1);
    assert.equal(await h.lookups('refresh'), 1);
  });

  test('owner_id, template_id and agent_id reach exactly the sessions indexed under them', async () => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    const owner = randomUUID();
    const template = randomUUID();
    const a = h.store.fixture({ ownerId: owner });
    const b = h.store.fixture({ ownerId: owner, templateId: template });
    const c = h.store.fixture({ templateId: template });
    const d = h.store.fixture();
    for (const fx of [a, b, c, d]) h.connect(fx);
    const cases: [unknown, string[]][] = [
      [{ owner_id: owner }, [a.agent.id, b.agent.id]],
      [{ template_id: template }, [b.agent.id, c.agent.id]],
      [{ agent_id: d.agent.id }, [d.agent.id]],
      [{ agent_id: randomUUID() }, []],
    ];
    for (const [payload, want] of cases) {
      const before = h.store.count('refreshIdentities');
      notify(h, payload);
      await h.clock.advance(REFRESH_WINDOW_MS);
      const calls = refreshedAgents(h).slice(before);
      assert.deepEqual(
        calls.map((x) => x.sort()),
        want.length ? [want.sort()] : [],
        JSON.stringify(payload),
      );
    }
  });

  test('a burst of notifications for one workspace (two sockets of its agent) costs one read of one pair', async () => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    const fx = h.store.fixture();
    const s1 = h.connect(fx);
    const s2 = h.connect(fx);
    h.store.updateWorkspace(fx.workspace.id, { name: 'x' });
    for (let i = 0; i < 50; i++) {
      notify(h, { workspace_id: fx.workspace.id });
      if (i % 10 === 0) await h.clock.advance(1);
    }
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.deepEqual(h.calls(), { refreshIdentities: 1 });
    assert.deepEqual(refreshedAgents(h), [[fx.agent.id]]);
    assert.equal(s1.identity.get()!.name, 'x');
    assert.equal(s2.identity.get()!.name, 'x');
  });

  test('a NOTIFY during a refresh in flight reads again (the read in flight may predate the commit)', async () => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    const fx = h.store.fixture();
    const s = h.connect(fx);
    notify(h, { workspace_id: fx.workspace.id });
    h.store.hold('refreshIdentities');
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.equal(h.store.count('refreshIdentities'), 1);
    h.store.updateWorkspace(fx.workspace.id, { name: 'later' });
    notify(h, { workspace_id: fx.workspace.id });
    h.store.release('refreshIdentities');
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.equal(h.store.count('refreshIdentities'), 2);
    assert.equal(s.identity.get()!.name, 'later');
  });

  test('a NOTIFY that joins a resync’s read is applied once: outcome "changed", counted once', async () => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    const fx = h.store.fixture();
    const s = h.connect(fx);
    h.core.invalidation.listening(false);
    await h.clock.advance(5);
    h.store.updateWorkspace(fx.workspace.id, { name: 'renamed' });
    notify(h, { workspace_id: fx.workspace.id });
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.deepEqual(h.calls(), { refreshIdentities: 1 });
    assert.equal(s.lastRefreshOutcome, 'changed');
    assert.equal(await metricValue(h.metrics, 'agentgate_identity_refresh_total', { outcome: 'changed' }), 1);
    assert.equal(await metricValue(h.metrics, 'agentgate_identity_refresh_total', { outcome: 'unchanged' }), 0);
  });

  for (const r of REVOCATIONS) {
    for (const cacheEnabled of [true, false]) {
      test(`${r.name} + NOTIFY → revoked (${r.reason}) within the window, cache ${cacheEnabled ? 'on' : 'off'}`, async () => {
        const h = new Harness({ refreshIntervalMs: 60 * MINUTE, cacheEnabled });
        const fx = h.store.fixture();
        const other = h.store.fixture();
        const s = h.connect(fx);
        const o = h.connect(other);
        r.change(h.store, fx);
        const key = r.reason.startsWith('agent') || r.reason === 'token_changed' ? 'agent_id' : 'workspace_id';
        notify(h, { [key]: key === 'agent_id' ? fx.agent.id : fx.workspace.id });
        await h.clock.advance(REFRESH_WINDOW_MS);
        assert.deepEqual(h.revokesOf(s), [r.reason]);
        assert.deepEqual(h.revokesOf(o), []);
        assert.deepEqual(h.calls(), { refreshIdentities: 1 });
        if (!cacheEnabled) assert.equal(s.refreshArmed, false, 'no refresh timer with the cache off');
      });
    }
  }

  test('cache off: a push refresh runs once from a one-shot timer, and none after close', async () => {
    const h = new Harness({ cacheEnabled: false });
    const fx = h.store.fixture();
    const s = h.connect(fx);
    assert.deepEqual(h.clock.pending('refresh'), [], 'no timer with the cache off');
    h.store.updateWorkspace(fx.workspace.id, { name: 'renamed' });
    notify(h, { workspace_id: fx.workspace.id });
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.equal(s.lastRefreshOutcome, 'changed');
    assert.equal(s.loaded.name, 'renamed', 'the labels follow the rename');
    assert.equal(s.identity.cached, false, 'nothing is cached with the cache off');
    await h.clock.advance(60 * MINUTE);
    assert.equal(h.store.count('refreshIdentities'), 1, 'one refresh, no timer left behind');
    notify(h, { workspace_id: fx.workspace.id });
    s.close();
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.equal(h.store.count('refreshIdentities'), 1, 'a closed session never queries again');
  });

  test('a change notified while a session was connecting (before it registered) still reaches it', async () => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    const fx = h.store.fixture();
    const stale = h.store.fixture();
    // The token check read the row, then the workspace was renamed and notified, then the session registered.
    const row = fx.row;
    h.store.updateWorkspace(fx.workspace.id, { name: 'renamed' });
    notify(h, { workspace_id: fx.workspace.id });
    await h.clock.advance(500);
    const s = h.connect(fx, { row });
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.equal(s.identity.get()!.name, 'renamed');
    // Remembered for 2 s only: a session connecting later is not refreshed for an old notification.
    notify(h, { workspace_id: stale.workspace.id });
    await h.clock.advance(2001);
    const before = h.store.count('refreshIdentities');
    h.connect(stale);
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.equal(h.store.count('refreshIdentities'), before);
  });

  test('a malformed payload is ignored, counted, and logged at warn without the whole payload', async () => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    h.connect(h.store.fixture());
    const huge = `{"workspace_id": "${'x'.repeat(7000)}"}`;
    notify(h, huge);
    notify(h, 'nonsense');
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.equal(h.callCount(), 0);
    assert.equal(await notifications(h, 'malformed'), 2);
    const warns = h.loudLines().filter((l) => l.msg === 'malformed identity notification ignored');
    assert.equal(warns.length, 1, 'at most one warning per 10 s');
    assert.equal(warns[0]!.level, 40);
    assert.equal(warns[0]!['bytes'], Buffer.byteLength(huge));
    assert.ok(String(warns[0]!['payload']).length <= 121, 'the payload is quoted, truncated');
    await h.clock.advance(10_000);
    notify(h, '[1]');
    const later = h.loudLines().filter((l) => l.msg === 'malformed identity notification ignored');
    assert.equal(later.length, 2);
    assert.equal(later[1]!['suppressedSinceLast'], 1);
  });
});

describe('resync: {"all": true} and a restored LISTEN', () => {
  /** Connects `n` sessions, then forgets their connect-time timers' store calls (none happen before the hour). */
  function fleet(n: number): { h: Harness; sessions: Session[] } {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    const sessions = Array.from({ length: n }, () => h.connect(h.store.fixture()));
    return { h, sessions };
  }

  test('{"all": true} refreshes every session in statements of at most 1000 pairs, spread over 3 s', async () => {
    const { h, sessions } = fleet(2500);
    const t0 = h.clock.now();
    notify(h, { all: true });
    await h.clock.advance(5000);
    const sizes = refreshedAgents(h).map((a) => a.length);
    assert.deepEqual(sizes, [1000, 1000, 500]);
    const at = h.store.timesOf('refreshIdentities').map((t) => t - t0);
    // Full chunks go at once; the last, partial one after the batcher's collection window.
    assert.deepEqual(at, [0, 1000, 2000 + REFRESH_WINDOW_MS], 'one statement per second, not a storm');
    assert.ok(sessions.every((s) => s.lastRefreshOutcome === 'unchanged'));
    assert.equal(await notifications(h, 'all'), 1);
    assert.equal(await pushed(h, 'resync'), 2500);
  });

  test('a restored LISTEN (listening(first=false)) resyncs; the first listen does not', async () => {
    const { h, sessions } = fleet(30);
    h.core.invalidation.listening(true);
    await h.clock.advance(5000);
    assert.equal(h.store.count('refreshIdentities'), 0);
    h.store.updateWorkspace(sessions[3]!.subject.workspaceId, { name: 'changed-while-deaf' });
    h.core.invalidation.deaf();
    assert.equal(await metricValue(h.metrics, 'agentgate_identity_listening'), 0);
    h.core.invalidation.listening(false);
    assert.equal(await metricValue(h.metrics, 'agentgate_identity_listening'), 1);
    await h.clock.advance(REFRESH_WINDOW_MS);
    assert.deepEqual(h.calls(), { refreshIdentities: 1 });
    assert.equal(sessions[3]!.identity.get()!.name, 'changed-while-deaf');
    assert.equal(h.loudLines().filter((l) => l.msg === 'LISTEN restored; resyncing every session').length, 1);
  });

  test('the resync of 10 000 sessions costs 10 statements, the last one under 3 s after the LISTEN returned', async () => {
    const { h } = fleet(10_000);
    const t0 = h.clock.now();
    h.core.invalidation.listening(false);
    await h.clock.advance(3000 + REFRESH_WINDOW_MS);
    assert.equal(h.store.count('refreshIdentities'), 10);
    assert.ok(refreshedAgents(h).every((a) => a.length === 1000));
    const at = h.store.timesOf('refreshIdentities').map((t) => t - t0);
    assert.ok(at.at(-1)! < 3000, `last statement at ${at.at(-1)} ms`);
    assert.equal(await h.lookups('refresh'), 10);
  });

  test('an {"all": true} while a resync is pending is folded: one more resync after it, which sees later changes', async () => {
    const { h, sessions } = fleet(30);
    const t0 = h.clock.now();
    notify(h, { all: true });
    await h.clock.advance(500);
    // Changed after the resync's read: the folded request must still reach it.
    h.store.updateWorkspace(sessions[7]!.subject.workspaceId, { name: 'after-the-first-read' });
    for (const at of [500, 1000, 2999]) {
      await h.clock.advanceTo(t0 + at);
      notify(h, { all: true });
    }
    h.core.invalidation.listening(false);
    await h.clock.advance(10_000);
    assert.deepEqual(
      h.store.timesOf('refreshIdentities').map((t) => t - t0),
      [REFRESH_WINDOW_MS, 3000 + REFRESH_WINDOW_MS],
      'one resync, then one more for the five requests folded into it',
    );
    assert.equal(sessions[7]!.identity.get()!.name, 'after-the-first-read');
    assert.equal(await pushed(h, 'resync'), 60);
    assert.equal(await notifications(h, 'all'), 4);
  });

  test('a flood of {"all": true} cannot starve the timer backstop (2500 sessions, 2 s interval, all every 0.9 s)', async (t) => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const interval = 2000;
    const h = new Harness({ refreshIntervalMs: interval, random });
    const sessions = Array.from({ length: 2500 }, () => h.connect(h.store.fixture()));
    const t0 = h.clock.now();
    const armed0 = h.clock.armed.length;
    for (let at = 0; at < 10_000; at += 900) {
      await h.clock.advanceTo(t0 + at);
      notify(h, { all: true });
    }
    await h.clock.advanceTo(t0 + 10_000);
    t.diagnostic(`timer arms in 10 s: ${h.clock.armed.length - armed0}`);
    // Each session's reads: none may be further apart than an interval and a timer's batching window.
    const reads = new Map<string, number[]>();
    const times = h.store.timesOf('refreshIdentities');
    refreshedAgents(h).forEach((agents, i) => {
      for (const a of agents) reads.set(a, [...(reads.get(a) ?? []), times[i]! - t0]);
    });
    const late: string[] = [];
    for (const [i, s] of sessions.entries()) {
      const at = [0, ...(reads.get(s.subject.agentId) ?? []), 10_000];
      const gap = Math.max(...at.slice(1).map((x, j) => x - at[j]!));
      if (gap > interval + h.timerWindowMs) late.push(`session ${i}: ${gap} ms without a refresh`);
    }
    assert.deepEqual(late.slice(0, 5), [], `${late.length} of 2500 sessions starved`);
    // Requests at 0 s, then folded: resyncs start at 0, 3, 6 and 9 s.
    assert.equal(await pushed(h, 'resync'), 4 * 2500);
    assert.equal(await notifications(h, 'all'), 12);
  });

  test('20,000 {"all": true} in 10 s over 250 sessions: 5 resyncs, 2 info lines, a few thousand timer arms', async (t) => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    for (let i = 0; i < 250; i++) h.connect(h.store.fixture());
    const t0 = h.clock.now();
    const armed0 = h.clock.armed.length;
    const lines0 = h.loudLines().length;
    // 100 payloads every 50 ms.
    for (let step = 0; step < 200; step++) {
      await h.clock.advanceTo(t0 + step * 50);
      for (let i = 0; i < 100; i++) notify(h, { all: true });
    }
    await h.clock.advanceTo(t0 + 15_000);
    const arms = h.clock.armed.length - armed0;
    const lines = h.loudLines().slice(lines0);
    t.diagnostic(`20,000 payloads: ${lines.length} log lines above debug, ${arms} timer arms`);
    assert.equal(await notifications(h, 'all'), 20_000);
    // Resyncs start at 0, 3, 6 and 9 s, and one more at 12 s for the requests folded after 9 s.
    assert.equal(await pushed(h, 'resync'), 5 * 250);
    assert.equal(h.store.count('refreshIdentities'), 5);
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l['suppressed']]),
      [
        [30, 'resync of every session requested by NOTIFY', undefined],
        [30, 'suppressed 19999 more resync requests by NOTIFY', 19_999],
      ],
    );
    // Per resync: each session's push and the interval timer after its refresh; a few timers besides.
    assert.ok(arms <= 5 * 2 * 250 + 100, `${arms} timer arms`);
  });

  test('a single {"all": true} by hand, after a quiet while, is logged at info at once', async () => {
    const { h } = fleet(3);
    notify(h, { all: true });
    await h.clock.advance(60_000);
    notify(h, { all: true });
    const lines = h.loudLines().filter((l) => l.msg === 'resync of every session requested by NOTIFY');
    assert.deepEqual(
      lines.map((l) => [l.level, l['sessions']]),
      [
        [30, 3],
        [30, 3],
      ],
    );
  });

  test('a template rename over 2500 sessions: chunks of 1000, 50 ms apart, all within 1 s', async () => {
    const h = new Harness({ refreshIntervalMs: 60 * MINUTE });
    const template = randomUUID();
    const sessions = Array.from({ length: 2500 }, () => h.connect(h.store.fixture({ templateId: template })));
    for (const s of sessions) h.store.updateWorkspace(s.subject.workspaceId, { templateName: 'renamed' });
    const t0 = h.clock.now();
    notify(h, { template_id: template });
    await h.clock.advance(1000);
    assert.deepEqual(
      h.store.timesOf('refreshIdentities').map((t) => t - t0),
      [0, 50, 100 + REFRESH_WINDOW_MS],
    );
    assert.ok(sessions.every((s) => s.identity.get()!.templateName === 'renamed'));
  });
});
