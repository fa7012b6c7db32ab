// SPEC §5 (connect, close) and §6 (fast path, slow path, counters) on a fake clock and a
// query-counting store: each test asserts exactly which store calls a frame caused.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PREBUILDS_OWNER_ID, RpcError } from '@agentgate/shared';
import type { Outcome } from '../../gateway/src/handlers/outcome.ts';
import type { Session } from '../../gateway/src/session/session.ts';
import { Harness, NIL_UUID, REVOCATIONS, statsOk } from './harness.ts';

const IDENTITY_KEYS = [
  'autostartSchedule',
  'id',
  'name',
  'organizationId',
  'ownerId',
  'ownerUsername',
  'templateId',
  'templateName',
];

const someStats = { stats: { connectionCount: 0, rxBytes: 10 } };
const someMetadata = { metadata: [{ key: 'cpu', result: { value: '42%' } }] };

function errorCode(o: Outcome): number | undefined {
  return o.error?.code;
}

/** Stats, metadata, stats: each frame one workspaceByAgentId, a miss and a fallback lookup; never cached. */
async function assertEveryFrameLooksUp(h: Harness, s: Session): Promise<void> {
  assert.equal(s.identity.cached, false);
  assert.deepEqual(await h.stats(s, someStats), statsOk);
  assert.deepEqual(await h.metadata(s, someMetadata), { result: {} });
  assert.deepEqual(await h.stats(s, someStats), statsOk);
  assert.equal(h.store.count('workspaceByAgentId'), 3);
  assert.deepEqual(await h.cache(), { hit: 0, miss: 3 });
  assert.equal(await h.lookups('fallback'), 3);
  assert.equal(s.identity.cached, false);
}

describe('session with the cache on: connect and fast path', () => {
  test('the identity is filled from the connect row: cached, exactly the eight fields, no query', () => {
    const h = new Harness();
    const fx = h.store.fixture({ autostartSchedule: 'CRON_TZ=UTC 0 9 * * *' });
    const s = h.connect(fx);
    assert.equal(s.identity.cached, true);
    assert.deepEqual(Object.keys(s.identity.get()!).sort(), IDENTITY_KEYS);
    assert.deepEqual(s.identity.get(), {
      id: fx.workspace.id,
      ownerId: fx.workspace.ownerId,
      organizationId: fx.workspace.organizationId,
      templateId: fx.workspace.templateId,
      name: 'dev',
      ownerUsername: 'alice',
      templateName: 'docker',
      autostartSchedule: 'CRON_TZ=UTC 0 9 * * *',
    });
    assert.deepEqual(s.subject, {
      agentId: fx.agent.id,
      agentName: 'main',
      workspaceId: fx.workspace.id,
      ownerId: fx.workspace.ownerId,
      organizationId: fx.workspace.organizationId,
      templateId: fx.workspace.templateId,
    });
    assert.equal(h.callCount(), 0, 'connect must not run a second query');
    assert.equal(s.lastRefreshOutcome, 'none');
    assert.equal(s.lastRefreshAt, undefined);
  });

  test('connect records the connection (connectedAt, disconnected_at cleared) and registers the session', () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const s = h.connect(fx);
    assert.deepEqual(h.connectionEvents, [
      { agentId: fx.agent.id, event: { connectedAt: new Date(h.clock.now()).toISOString(), disconnectedAt: null } },
    ]);
    assert.ok(h.registry.has(s));
    assert.ok(h.registry.byAgent.get(fx.agent.id)?.has(s));
    assert.ok(h.registry.byWorkspace.get(fx.workspace.id)?.has(s));
    assert.ok(h.registry.byOwner.get(fx.workspace.ownerId)?.has(s));
    assert.ok(h.registry.byTemplate.get(fx.workspace.templateId)?.has(s));
  });

  test('authorize on the fast path answers with the identity and no store call', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    const got = await s.authorize();
    assert.deepEqual(got, s.identity.get());
    assert.equal(h.callCount(), 0);
    assert.deepEqual(await h.cache(), { hit: 1, miss: 0 });
  });

  test('stats and metadata frames make zero workspace reads and count cache hits', async () => {
    const h = new Harness();
    const fx = h.store.fixture({ metadataKeys: ['cpu'] });
    const s = h.connect(fx);
    assert.deepEqual(await h.stats(s, someStats), statsOk);
    assert.deepEqual(await h.metadata(s, someMetadata), { result: {} });
    assert.deepEqual(await h.stats(s, someStats), statsOk);

    assert.equal(h.store.count('workspaceByAgentId'), 0);
    assert.equal(h.store.count('refreshIdentities'), 0);
    assert.equal(h.store.workspaceReads(), 0);
    assert.deepEqual(h.calls(), { insertStatsBatch: 2, updateMetadataBatch: 1 });
    assert.deepEqual(await h.cache(), { hit: 3, miss: 0 });
    assert.equal(await h.lookups('fallback'), 0);
    assert.equal(await h.lookups('refresh'), 0);

    const row = h.store.statsRows[0]!;
    assert.equal(row.userId, fx.workspace.ownerId);
    assert.equal(row.workspaceId, fx.workspace.id);
    assert.equal(row.templateId, fx.workspace.templateId);
    assert.equal(row.agentId, fx.agent.id);
    assert.equal(h.store.metadata.get(fx.agent.id)!.get('cpu')!.value, '42%');
  });

  test('identity with nil owner/org → slow path lookup, then success and the fast path from then on', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const row = { ...fx.row, workspace: { ...fx.row.workspace, ownerId: NIL_UUID, organizationId: NIL_UUID } };
    const s = h.connect(fx, { row });
    assert.equal(s.identity.cached, true, 'a nil owner/org is still a non-empty identity');

    // A denied fast path falls back to the slow path.
    assert.deepEqual(await h.stats(s, someStats), statsOk);
    assert.equal(h.store.count('workspaceByAgentId'), 1);
    assert.deepEqual(await h.cache(), { hit: 0, miss: 1 });
    assert.equal(await h.lookups('fallback'), 1);
    assert.equal(h.store.statsRows[0]!.userId, fx.workspace.ownerId, 'the row carries the loaded owner');
    assert.equal(s.identity.get()!.ownerId, fx.workspace.ownerId);
    assert.equal(s.identity.get()!.organizationId, fx.workspace.organizationId);

    assert.deepEqual(await h.stats(s, someStats), statsOk);
    assert.equal(h.store.count('workspaceByAgentId'), 1, 'the second frame takes the fast path');
    assert.deepEqual(await h.cache(), { hit: 1, miss: 1 });
    assert.deepEqual(h.revokesOf(s), []);
  });
});

describe('session with the cache on: prebuilds', () => {
  test('a prebuild is never cached: every frame takes the slow path', async () => {
    const h = new Harness();
    const fx = h.store.fixture({ prebuild: true, metadataKeys: ['cpu'] });
    const s = h.connect(fx);
    assert.equal(s.prebuild, true);
    await assertEveryFrameLooksUp(h, s);
    assert.equal(h.store.statsRows[1]!.userId, PREBUILDS_OWNER_ID);
  });

  test('claim of a prebuild → the next frame has the new owner and the identity becomes cached', async () => {
    const h = new Harness();
    const fx = h.store.fixture({ prebuild: true });
    const s = h.connect(fx);
    await h.stats(s, someStats);
    assert.equal(h.store.statsRows[0]!.userId, PREBUILDS_OWNER_ID);

    const newOwner = 'b0b0b0b0-1111-4222-8333-444444444444';
    h.store.updateWorkspace(fx.workspace.id, { ownerId: newOwner, ownerUsername: 'bob' });
    assert.deepEqual(await h.stats(s, { stats: { connectionCount: 1 } }), statsOk);
    assert.equal(h.store.count('workspaceByAgentId'), 2);
    assert.equal(h.store.statsRows[1]!.userId, newOwner);
    assert.equal(s.subject.ownerId, newOwner);
    assert.equal(s.identity.cached, true);
    assert.equal(s.identity.get()!.ownerUsername, 'bob');
    assert.equal(s.prebuild, false);
    assert.ok(h.registry.byOwner.get(newOwner)?.has(s), 'the session is indexed under the new owner');
    assert.equal(h.registry.byOwner.get(PREBUILDS_OWNER_ID)?.has(s) ?? false, false);

    // From then on: the fast path.
    assert.deepEqual(await h.stats(s, someStats), statsOk);
    assert.deepEqual(await h.stats(s, someStats), statsOk);
    assert.equal(h.store.count('workspaceByAgentId'), 2);
    assert.deepEqual(await h.cache(), { hit: 2, miss: 2 });
    assert.equal(h.store.statsRows[3]!.userId, newOwner);

    // The activity of the claiming frame is bumped like any workspace's (no longer a prebuild).
    await h.clock.advance(1000);
    assert.equal(h.store.activity.length, 1);
    assert.equal(h.store.activity[0]!.bump, true);
    assert.equal(h.store.activity[0]!.ownerId, newOwner);
  });

  test('concurrent frames of one session share one slow-path lookup', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture({ prebuild: true }));
    const outs = await Promise.all([h.stats(s, someStats), h.stats(s, someStats), h.stats(s, someStats)]);
    assert.deepEqual(outs, [statsOk, statsOk, statsOk]);
    assert.equal(h.store.count('workspaceByAgentId'), 1);
    assert.deepEqual(await h.cache(), { hit: 0, miss: 3 });
    assert.equal(h.store.statsRows.length, 3);
  });
});

describe('session: the slow path revokes', () => {
  // workspaceByAgentId loads no row without the workspace, so the slow path sees 'agent_gone' for both.
  const cases = REVOCATIONS.filter((c) => c.reason !== 'workspace_gone');

  for (const c of cases) {
    test(`${c.name} → -32001, nothing written, onRevoke('${c.reason}')`, async () => {
      const h = new Harness();
      const fx = h.store.fixture({ prebuild: true, metadataKeys: ['cpu'] });
      const s = h.connect(fx);
      c.change(h.store, fx);

      const out = await h.stats(s, someStats);
      assert.equal(errorCode(out), RpcError.NotAuthorized);
      assert.equal(h.store.count('workspaceByAgentId'), 1);
      assert.equal(h.store.count('insertStatsBatch'), 0);
      assert.deepEqual(h.revokesOf(s), [c.reason]);
      assert.equal(s.revoked, c.reason);

      const meta = await h.metadata(s, someMetadata);
      assert.equal(errorCode(meta), RpcError.NotAuthorized);
      assert.equal(h.store.count('updateMetadataBatch'), 0);
      assert.deepEqual(h.revokesOf(s), [c.reason], 'onRevoke is called once');
    });
  }

  test('the same cases with the cache off revoke too', async () => {
    const h = new Harness({ cacheEnabled: false });
    const fx = h.store.fixture();
    const s = h.connect(fx);
    h.store.updateWorkspace(fx.workspace.id, { dormant: true });
    assert.equal(errorCode(await h.stats(s, someStats)), RpcError.NotAuthorized);
    assert.deepEqual(h.revokesOf(s), ['workspace_dormant']);
    assert.equal(h.store.count('insertStatsBatch'), 0);
  });
});

describe('session with the cache off', () => {
  test('every frame does one workspaceByAgentId and counts a miss; nothing is cached', async () => {
    const h = new Harness({ cacheEnabled: false });
    const fx = h.store.fixture({ metadataKeys: ['cpu'] });
    const s = h.connect(fx);
    await assertEveryFrameLooksUp(h, s);
    assert.equal(h.store.statsRows[0]!.userId, fx.workspace.ownerId);
  });

  test('concurrent frames each take their own lookup', async () => {
    const h = new Harness({ cacheEnabled: false });
    const s = h.connect(h.store.fixture());
    await Promise.all([h.stats(s, someStats), h.stats(s, someStats), h.stats(s, someStats)]);
    assert.equal(h.store.count('workspaceByAgentId'), 3);
  });

  test('no refresh timer runs', async () => {
    const h = new Harness({ cacheEnabled: false });
    const s = h.connect(h.store.fixture());
    assert.equal(s.refreshArmed, false);
    assert.deepEqual(h.clock.pending('refresh'), []);
    await h.clock.advance(10 * h.refreshIntervalMs);
    assert.equal(h.store.count('refreshIdentities'), 0);
    assert.equal(h.callCount(), 0);
    assert.equal(s.lastRefreshOutcome, 'none');
  });
});

describe('session close', () => {
  test('close stops the timer, clears the identity, records disconnected_at and leaves every index', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const s = h.connect(fx);
    assert.equal(s.refreshArmed, true);
    assert.equal(h.clock.pending('refresh').length, 1, 'the refresh timer is armed at connect');

    await h.clock.advance(1234);
    s.close();
    assert.equal(s.closed, true);
    assert.equal(s.refreshArmed, false);
    assert.deepEqual(h.clock.pending('refresh'), [], 'the refresh timer is cleared');
    assert.equal(s.identity.cached, false);
    assert.equal(h.registry.has(s), false);
    assert.equal(h.registry.byAgent.has(fx.agent.id), false);
    assert.equal(h.registry.byWorkspace.has(fx.workspace.id), false);
    assert.equal(h.registry.byOwner.has(fx.workspace.ownerId), false);
    assert.equal(h.registry.byTemplate.has(fx.workspace.templateId), false);
    assert.deepEqual(h.connectionEvents.at(-1), {
      agentId: fx.agent.id,
      event: { connectedAt: null, disconnectedAt: new Date(h.clock.now()).toISOString() },
    });
    s.close();
    assert.equal(h.connectionEvents.length, 2, 'a second close records nothing');
  });

  test('after close no store call happens, even over many refresh intervals', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    s.close();
    await h.clock.advance(20 * h.refreshIntervalMs);
    assert.equal(h.callCount(), 0);
    assert.equal(s.lastRefreshOutcome, 'none');
  });

  test('a frame after close is denied without a store call', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    s.close();
    assert.equal(errorCode(await h.stats(s, someStats)), RpcError.NotAuthorized);
    assert.equal(h.callCount(), 0);
  });

  test('close while a refresh is collected for a batch: the closed session is not queried', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    // The refresh tick fires; the read waits in the RefreshBatcher's window.
    await h.clock.advance(h.firstTickDelay());
    assert.equal(h.store.count('refreshIdentities'), 0);
    s.close();
    await h.clock.advance(h.refreshIntervalMs);
    // SPEC §5: "A closed session never queries the database again."
    assert.equal(h.store.count('refreshIdentities'), 0, 'the closed session was still refreshed');
    assert.equal(await h.lookups('refresh'), 0);
  });

  test('a slow-path lookup in flight at close answers -32001 and changes nothing', async () => {
    const h = new Harness();
    const fx = h.store.fixture({ prebuild: true });
    const s = h.connect(fx);
    h.store.hold('workspaceByAgentId');
    const p = h.stats(s, someStats);
    await h.clock.advance(0);
    assert.equal(h.store.waiting('workspaceByAgentId'), 1);
    s.close();
    h.store.updateWorkspace(fx.workspace.id, { ownerId: 'b0b0b0b0-1111-4222-8333-444444444444' });
    h.store.release('workspaceByAgentId');
    assert.equal(errorCode(await p), RpcError.NotAuthorized);
    assert.equal(h.store.count('insertStatsBatch'), 0);
    assert.equal(s.identity.cached, false);
    assert.equal(s.subject.ownerId, PREBUILDS_OWNER_ID);
  });
});
