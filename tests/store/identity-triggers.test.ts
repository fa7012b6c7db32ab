// SPEC §8 triggers (migration 4, statement-level) on a real PostgreSQL: a commit that really
// changes an identity column notifies agentgate_identity once per distinct id, after commit; a
// statement that changes more than 1000 rows sends one {"all": true} instead; nothing else
// notifies. Notifications reach a listener in commit order, so each case ends with a marker
// change and reads everything that arrived before the marker.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createFixture, type DbFixture, uniq } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type Listener, listen } from '../helpers/listen.ts';
import { eventually } from '../helpers/wait.ts';

const CHANNEL = 'agentgate_identity';

describe('§8 identity triggers', () => {
  let db: TestDatabase;
  let listener: Listener;
  let marker: DbFixture;

  before(async () => {
    db = await freshDatabase();
    listener = await listen(db.sql, CHANNEL);
    marker = await createFixture(db.sql);
  });
  after(async () => {
    await listener?.unlisten();
    await db?.drop();
  });

  /** Runs `change`, then renames the marker workspace, and returns the payloads that came before the marker's. */
  async function payloadsOf(change: () => Promise<unknown>): Promise<unknown[]> {
    const start = listener.payloads.length;
    await change();
    await db.sql`update workspaces set name = ${uniq('marker')} where id = ${marker.workspaceId}`;
    const want = { workspace_id: marker.workspaceId };
    const end = await eventually('the marker notification', () => {
      const i = listener.payloads.findIndex((p, j) => j >= start && JSON.stringify(p) === JSON.stringify(want));
      return i >= 0 ? i : undefined;
    });
    return listener.payloads.slice(start, end);
  }

  test('each identity column of workspaces notifies {"workspace_id"}, once, as JSON text', async () => {
    const fx = await createFixture(db.sql);
    const otherUser = randomUUID();
    await db.sql`insert into users (id, username) values (${otherUser}, ${uniq('u')})`;
    const other = await createFixture(db.sql);
    const changes: Record<string, () => Promise<unknown>> = {
      owner_id: () => db.sql`update workspaces set owner_id = ${otherUser} where id = ${fx.workspaceId}`,
      organization_id: () =>
        db.sql`update workspaces set organization_id = ${other.orgId} where id = ${fx.workspaceId}`,
      template_id: () => db.sql`update workspaces set template_id = ${other.templateId} where id = ${fx.workspaceId}`,
      name: () => db.sql`update workspaces set name = 'renamed' where id = ${fx.workspaceId}`,
      autostart_schedule: () =>
        db.sql`update workspaces set autostart_schedule = 'CRON_TZ=UTC 0 9 * * 1-5' where id = ${fx.workspaceId}`,
      'autostart_schedule to null': () =>
        db.sql`update workspaces set autostart_schedule = null where id = ${fx.workspaceId}`,
      dormant_at: () => db.sql`update workspaces set dormant_at = now() where id = ${fx.workspaceId}`,
      deleted: () => db.sql`update workspaces set deleted = true where id = ${fx.workspaceId}`,
    };
    for (const [name, change] of Object.entries(changes)) {
      assert.deepEqual(await payloadsOf(change), [{ workspace_id: fx.workspaceId }], name);
    }
    const raw = listener.raw.find((r) => r.includes(fx.workspaceId))!;
    assert.deepEqual(JSON.parse(raw), { workspace_id: fx.workspaceId });
  });

  test('deleting a workspace or an agent row notifies its id', async () => {
    const fx = await createFixture(db.sql);
    assert.deepEqual(await payloadsOf(() => db.sql`delete from workspace_agents where id = ${fx.agentId}`), [
      { agent_id: fx.agentId },
    ]);
    assert.deepEqual(
      await payloadsOf(async () => {
        await db.sql`delete from workspace_builds where workspace_id = ${fx.workspaceId}`;
        await db.sql`delete from workspaces where id = ${fx.workspaceId}`;
      }),
      [{ workspace_id: fx.workspaceId }],
    );
  });

  test('users.username, templates.name, workspace_agents.auth_token and deleted notify their ids', async () => {
    const fx = await createFixture(db.sql);
    assert.deepEqual(
      await payloadsOf(() => db.sql`update users set username = ${uniq('renamed')} where id = ${fx.userId}`),
      [{ owner_id: fx.userId }],
    );
    assert.deepEqual(
      await payloadsOf(() => db.sql`update templates set name = 'renamed' where id = ${fx.templateId}`),
      [{ template_id: fx.templateId }],
    );
    assert.deepEqual(
      await payloadsOf(() => db.sql`update workspace_agents set auth_token = ${randomUUID()} where id = ${fx.agentId}`),
      [{ agent_id: fx.agentId }],
    );
    assert.deepEqual(
      await payloadsOf(() => db.sql`update workspace_agents set deleted = true where id = ${fx.agentId}`),
      [{ agent_id: fx.agentId }],
    );
  });

  test('no notification for an unchanged value, or for any column the gateway writes', async () => {
    const fx = await createFixture(db.sql, { metadataKeys: ['k'] });
    const payloads = await payloadsOf(async () => {
      // Same values (IS DISTINCT FROM): nothing really changed.
      await db.sql`update workspaces set name = name, owner_id = owner_id, deleted = deleted, dormant_at = dormant_at,
                   autostart_schedule = autostart_schedule, template_id = template_id where id = ${fx.workspaceId}`;
      await db.sql`update users set username = username where id = ${fx.userId}`;
      await db.sql`update templates set name = name where id = ${fx.templateId}`;
      await db.sql`update workspace_agents set auth_token = auth_token, deleted = deleted where id = ${fx.agentId}`;
      // What the gateway writes (SPEC §2), and other columns that are not identity.
      await db.sql`update workspaces set last_used_at = now(), updated_at = now(), ttl = 5, group_acl = '{"a":1}'
                   where id = ${fx.workspaceId}`;
      await db.sql`update workspace_builds set deadline = now() + interval '1 hour', updated_at = now()
                   where workspace_id = ${fx.workspaceId}`;
      await db.sql`update workspace_agents set first_connected_at = now(), last_connected_at = now(),
                   disconnected_at = now(), updated_at = now() where id = ${fx.agentId}`;
      await db.sql`update workspace_agent_metadata set value = 'v', collected_at = now() where workspace_agent_id = ${fx.agentId}`;
      await db.sql`insert into workspace_agent_stats (id, created_at, user_id, agent_id, workspace_id, template_id)
                   values (${randomUUID()}, now(), ${fx.userId}, ${fx.agentId}, ${fx.workspaceId}, ${fx.templateId})`;
      await db.sql`update templates set activity_bump = 1, default_ttl = 2, deleted = true where id = ${fx.templateId}`;
      await db.sql`update users set deleted = true where id = ${fx.userId}`;
    });
    assert.deepEqual(payloads, []);
  });

  test('sent at commit only: nothing before it, nothing after a rollback; one per distinct id in a bulk update', async () => {
    const fxs = await Promise.all([1, 2, 3].map(() => createFixture(db.sql)));
    const rolledBack = await payloadsOf(async () => {
      await db.sql
        .begin(async (tx) => {
          await tx`update workspaces set name = 'never' where id = ${fxs[0]!.workspaceId}`;
          throw new Error('roll back');
        })
        .catch(() => {});
    });
    assert.deepEqual(rolledBack, []);

    let seenBeforeCommit = -1;
    const bulk = await payloadsOf(() =>
      db.sql.begin(async (tx) => {
        const ids = fxs.map((f) => f.workspaceId);
        await tx`update workspaces set name = name || '-a' where id = any(${ids}::uuid[])`;
        // The same rows changed again in the same transaction: PostgreSQL folds the duplicates.
        await tx`update workspaces set name = name || '-b' where id = any(${ids}::uuid[])`;
        await new Promise((r) => setTimeout(r, 200));
        seenBeforeCommit = listener.payloads.filter((p) =>
          ids.includes((p as { workspace_id?: string }).workspace_id ?? ''),
        ).length;
      }),
    );
    assert.equal(seenBeforeCommit, 0, 'nothing is delivered before the commit');
    assert.deepEqual(
      bulk.map((p) => (p as { workspace_id: string }).workspace_id).sort(),
      fxs.map((f) => f.workspaceId).sort(),
    );
  });

  /** `n` rows in each table that notifies, sharing one fixture's org, user, template and resource. */
  async function bulkRows(n: number): Promise<Record<'workspaces' | 'users' | 'templates' | 'agents', string[]>> {
    const base = await createFixture(db.sql);
    const tag = uniq('bulk');
    const ids = (rows: { id: string }[]) => rows.map((r) => r.id);
    return {
      users: ids(
        await db.sql<{ id: string }[]>`
        insert into users (id, username) select gen_random_uuid(), ${tag} || '-' || g from generate_series(1, ${n}) g
        returning id`,
      ),
      templates: ids(
        await db.sql<{ id: string }[]>`
        insert into templates (id, organization_id, name)
        select gen_random_uuid(), ${base.orgId}, ${tag} from generate_series(1, ${n}) g returning id`,
      ),
      workspaces: ids(
        await db.sql<{ id: string }[]>`
        insert into workspaces (id, owner_id, organization_id, template_id, name)
        select gen_random_uuid(), ${base.userId}, ${base.orgId}, ${base.templateId}, ${tag} from generate_series(1, ${n}) g
        returning id`,
      ),
      agents: ids(
        await db.sql<{ id: string }[]>`
        insert into workspace_agents (id, resource_id, name, auth_token)
        select gen_random_uuid(), ${base.resourceId}, ${tag} || '-' || g, gen_random_uuid() from generate_series(1, ${n}) g
        returning id`,
      ),
    };
  }

  test('a statement changing up to 1000 rows notifies each id; more than 1000, one {"all": true}', async () => {
    const rows = await bulkRows(1001);
    const cases = [
      {
        key: 'workspace_id',
        ids: rows.workspaces,
        change: (ids: string[]) => db.sql`update workspaces set name = name || '-x' where id = any(${ids}::uuid[])`,
      },
      {
        key: 'owner_id',
        ids: rows.users,
        change: (ids: string[]) => db.sql`update users set username = username || '-x' where id = any(${ids}::uuid[])`,
      },
      {
        key: 'template_id',
        ids: rows.templates,
        change: (ids: string[]) => db.sql`update templates set name = name || '-x' where id = any(${ids}::uuid[])`,
      },
      {
        key: 'agent_id',
        ids: rows.agents,
        change: (ids: string[]) =>
          db.sql`update workspace_agents set auth_token = gen_random_uuid() where id = any(${ids}::uuid[])`,
      },
    ];
    for (const { key, ids, change } of cases) {
      const some = ids.slice(0, 1000);
      const each = await payloadsOf(() => change(some));
      assert.deepEqual(
        each.map((p) => JSON.stringify(p)).sort(),
        some.map((id) => JSON.stringify({ [key]: id })).sort(),
        `${key}: 1000 rows`,
      );
      assert.deepEqual(await payloadsOf(() => change(ids)), [{ all: true }], `${key}: 1001 rows`);
    }
  });

  test('only rows whose identity really changed count: the gateway’s own bulk writes stay silent', async () => {
    const { workspaces, agents } = await bulkRows(1500);
    const three = workspaces.slice(0, 3);
    assert.deepEqual(
      await payloadsOf(async () => {
        await db.sql`update workspaces set last_used_at = now(), updated_at = now() where id = any(${workspaces}::uuid[])`;
        await db.sql`update workspaces set name = name, deleted = deleted where id = any(${workspaces}::uuid[])`;
        await db.sql`update workspace_agents set last_connected_at = now(), disconnected_at = null
                     where id = any(${agents}::uuid[])`;
      }),
      [],
    );
    const mixed = await payloadsOf(
      () => db.sql`update workspaces set last_used_at = now(),
                   name = case when id = any(${three}::uuid[]) then name || '-y' else name end
                   where id = any(${workspaces}::uuid[])`,
    );
    assert.deepEqual(
      mixed.map((p) => (p as { workspace_id: string }).workspace_id).sort(),
      [...three].sort(),
      '1500 rows updated, 3 renamed: three notifications',
    );
  });

  test('deletes: each id up to 1000 rows, one {"all": true} above', async () => {
    const { workspaces, agents } = await bulkRows(1003);
    const two = workspaces.slice(0, 2);
    const each = await payloadsOf(() => db.sql`delete from workspaces where id = any(${two}::uuid[])`);
    assert.deepEqual(each.map((p) => (p as { workspace_id: string }).workspace_id).sort(), [...two].sort());
    assert.deepEqual(await payloadsOf(() => db.sql`delete from workspace_agents where id = any(${agents}::uuid[])`), [
      { all: true },
    ]);
    assert.deepEqual(
      await payloadsOf(() => db.sql`delete from workspaces where id = any(${workspaces.slice(2)}::uuid[])`),
      [{ all: true }],
    );
  });
});
