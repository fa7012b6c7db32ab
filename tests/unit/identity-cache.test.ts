// SPEC §5 cached workspace identity (Coder's cached_workspace_test.go) and SPEC §6 rule/fast-path
// object (authz/authorize.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mayUpdate, objectFromIdentity } from '../../gateway/src/authz/authorize.ts';
import type { Subject, WorkspaceIdentity } from '../../gateway/src/domain.ts';
import { IdentityCache, sameIdentity } from '../../gateway/src/session/identity-cache.ts';
import { NIL_UUID } from './harness.ts';

const workspace = (): WorkspaceIdentity => ({
  id: '5c1f4a0e-8d2b-4f5e-9a37-1b2c3d4e5f60',
  ownerId: '0f8e7d6c-5b4a-4392-8170-6a5b4c3d2e1f',
  organizationId: '1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d',
  templateId: '9f8e7d6c-5b4a-4c2d-8e1f-0a9b8c7d6e5f',
  name: 'dev',
  ownerUsername: 'alice',
  templateName: 'docker',
  autostartSchedule: 'CRON_TZ=Europe/Berlin 0 9 * * 1-5',
});

const subjectOf = (ws: WorkspaceIdentity): Subject => ({
  agentId: '7e6d5c4b-3a29-4817-8615-243342516071',
  agentName: 'main',
  workspaceId: ws.id,
  ownerId: ws.ownerId,
  organizationId: ws.organizationId,
  templateId: ws.templateId,
});

describe('IdentityCache', () => {
  test('a new cache is empty: not cached, no identity', () => {
    const c = new IdentityCache();
    assert.equal(c.cached, false);
    assert.equal(c.get(), undefined);
  });

  test('clear → not cached', () => {
    const c = new IdentityCache();
    c.update(workspace());
    assert.equal(c.cached, true);
    c.clear();
    assert.equal(c.cached, false);
    assert.equal(c.get(), undefined);
  });

  test('two caches filled from one workspace are equal', () => {
    const ws = workspace();
    const a = new IdentityCache();
    const b = new IdentityCache();
    a.update(ws);
    b.update(ws);
    assert.deepEqual(a.get(), b.get());
    assert.deepEqual(a.get(), ws);
    assert.ok(sameIdentity(a.get()!, b.get()!));
  });

  test('update returns true when filling, false when nothing changed', () => {
    const c = new IdentityCache();
    assert.equal(c.update(workspace()), true);
    assert.equal(c.update(workspace()), false);
    assert.deepEqual(c.get(), workspace());
  });

  test('update returns true for a change of any one of the eight fields, and applies it', () => {
    const changes: Partial<WorkspaceIdentity>[] = [
      { id: '00000000-1111-4222-8333-444444444444' },
      { ownerId: '00000000-1111-4222-8333-555555555555' },
      { organizationId: '00000000-1111-4222-8333-666666666666' },
      { templateId: '00000000-1111-4222-8333-777777777777' },
      { name: 'renamed' },
      { ownerUsername: 'bob' },
      { templateName: 'k8s' },
      { autostartSchedule: 'CRON_TZ=UTC 0 8 * * *' },
      { autostartSchedule: null },
    ];
    for (const change of changes) {
      const c = new IdentityCache();
      c.update(workspace());
      const next = { ...workspace(), ...change };
      assert.equal(c.update(next), true, `change ${JSON.stringify(change)} not detected`);
      assert.deepEqual(c.get(), next);
      assert.equal(c.update(next), false);
    }
  });

  test('the cache keeps its own copy of the identity', () => {
    const ws = workspace();
    const c = new IdentityCache();
    c.update(ws);
    ws.name = 'mutated-after-update';
    assert.equal(c.get()!.name, 'dev');
  });
});

describe('authorization rule and fast-path object', () => {
  test('own live workspace → may update', () => {
    const ws = workspace();
    assert.equal(mayUpdate(subjectOf(ws), objectFromIdentity(ws)), true);
    assert.deepEqual(objectFromIdentity(ws), {
      type: 'workspace',
      id: ws.id,
      ownerId: ws.ownerId,
      orgId: ws.organizationId,
    });
  });

  test('dormant type, other workspace, other owner or other org → denied', () => {
    const ws = workspace();
    const s = subjectOf(ws);
    const obj = objectFromIdentity(ws);
    assert.equal(mayUpdate(s, { ...obj, type: 'workspace_dormant' }), false);
    assert.equal(mayUpdate(s, { ...obj, id: 'ffffffff-1111-4222-8333-444444444444' }), false);
    assert.equal(mayUpdate(s, { ...obj, ownerId: 'ffffffff-1111-4222-8333-555555555555' }), false);
    assert.equal(mayUpdate(s, { ...obj, orgId: 'ffffffff-1111-4222-8333-666666666666' }), false);
  });

  test('a nil or empty owner/org is unusable even when the subject carries the same value', () => {
    for (const bad of [NIL_UUID, '']) {
      const owner = { ...workspace(), ownerId: bad };
      assert.equal(mayUpdate(subjectOf(owner), objectFromIdentity(owner)), false, `owner ${JSON.stringify(bad)}`);
      const org = { ...workspace(), organizationId: bad };
      assert.equal(mayUpdate(subjectOf(org), objectFromIdentity(org)), false, `org ${JSON.stringify(bad)}`);
    }
  });
});
