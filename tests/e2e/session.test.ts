// SPEC §5 (the session: cached identity, refresh, close) and §6 (fast path, slow path, counters),
// observed from outside: /debug/sessions, /metrics counters and labels, stats rows, close codes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  type AgentClient,
  CallAbortedError,
  CloseCode,
  PREBUILDS_OWNER_ID,
  RpcCallError,
  RPC_PATH,
  RpcError,
} from '@agentgate/shared';
import { closeCode, connectAgent } from '../helpers/agent-socket.ts';
import {
  claimPrebuild,
  createFixture,
  deleteAgent,
  deleteWorkspace,
  type DbFixture,
  makeDormant,
  renameWorkspace,
  rotateToken,
  uniq,
} from '../helpers/db-fixtures.ts';
import { countStats, readStats } from '../helpers/db-reads.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { debugSessionOf, debugSessions, httpRequest } from '../helpers/http.ts';
import { authCounters, samples, scrape } from '../helpers/prometheus.ts';
import { RFC3339 } from '../helpers/time.ts';
import { eventually, sleep } from '../helpers/wait.ts';

const ADMIN = `adm-${randomBytes(8).toString('hex')}`;
const REFRESH_MS = 1000;

interface GatewaySuite {
  db: TestDatabase;
  gw: GatewayProcess;
  /** Every client `open` connected; after() closes them. */
  clients: AgentClient[];
  open(fx: DbFixture): Promise<AgentClient>;
}

/** For the enclosing describe: a fresh database and a gateway started with `args` and the admin token. */
function gatewaySuite(args: string[]): GatewaySuite {
  const t = { clients: [] as AgentClient[] } as GatewaySuite;
  t.open = async (fx) => {
    const c = await connectAgent(t.gw.url, fx.token);
    t.clients.push(c);
    return c;
  };
  before(async () => {
    t.db = await freshDatabase();
    t.gw = await startGateway({ databaseUrl: t.db.url, args: [...args, '--admin-token', ADMIN] });
  });
  after(async () => {
    await Promise.all(t.clients.map((c) => c.close()));
    await t.gw?.stop();
    await t.db?.drop();
  });
  return t;
}

describe('§5/§6 sessions with the identity cache', () => {
  const t = gatewaySuite(['--workspace-refresh-interval', `${REFRESH_MS}ms`]);

  test('a cached session authorizes every frame from the cache: hits, no fallback lookups', async () => {
    const fx = await createFixture(t.db.sql, { metadataKeys: ['k'] });
    const c = await t.open(fx);
    const c0 = await authCounters(t.gw.httpUrl);
    await c.updateStats({ rxBytes: 1 });
    await c.updateStats({ connectionCount: 1 });
    await c.updateStats({});
    await c.batchUpdateMetadata([{ key: 'k', result: { value: 'v' } }]);
    const c1 = await authCounters(t.gw.httpUrl);
    assert.equal(c1.hit - c0.hit, 4, 'hits');
    assert.equal(c1.miss - c0.miss, 0, 'misses');
    assert.equal(c1.fallback - c0.fallback, 0, 'fallback lookups');
    assert.equal(c1.connect - c0.connect, 0, 'connect lookups');
    // UpdateStats without stats is neither authorized nor counted.
    await c.updateStats();
    await c.updateStats();
    const c2 = await authCounters(t.gw.httpUrl);
    assert.equal(c2.hit + c2.miss, c1.hit + c1.miss);
  });

  test('the first refresh comes between half and one interval after connect; unchanged keeps the identity', async () => {
    const fxs = await Promise.all([1, 2, 3].map(() => createFixture(t.db.sql)));
    await Promise.all(fxs.map(t.open));
    for (const fx of fxs) {
      const s = await eventually('the first refresh', async () => {
        const x = await debugSessionOf(t.gw.httpUrl, ADMIN, fx.agentId);
        return x?.lastRefreshAt !== null && x;
      });
      assert.ok(s);
      assert.match(s.lastRefreshAt!, RFC3339);
      const delay = Date.parse(s.lastRefreshAt!) - Date.parse(s.connectedAt);
      assert.ok(
        delay >= 0.5 * REFRESH_MS - 60 && delay <= REFRESH_MS + 500,
        `first refresh ${delay} ms after connect (interval ${REFRESH_MS} ms)`,
      );
      assert.equal(s.lastRefreshOutcome, 'unchanged');
      assert.equal(s.identityCached, true);
    }
  });

  test('a rename reaches the identity (outcome "changed"); metric labels follow, old series removed', async () => {
    const fx = await createFixture(t.db.sql);
    const c = await t.open(fx);
    const metrics = [{ name: 'test_rename', type: 'GAUGE' as const, value: 1 }];
    await c.updateStats({ metrics });
    assert.equal(
      samples(await scrape(t.gw.httpUrl), 'agentgate_agent_test_rename', { workspace_name: fx.workspaceName }).length,
      1,
    );
    const newName = uniq('renamed');
    await renameWorkspace(t.db.sql, fx.workspaceId, newName);
    await eventually(
      'lastRefreshOutcome "changed"',
      async () => (await debugSessionOf(t.gw.httpUrl, ADMIN, fx.agentId))?.lastRefreshOutcome === 'changed',
      { timeoutMs: 3 * REFRESH_MS, intervalMs: 50 },
    );
    assert.equal((await debugSessionOf(t.gw.httpUrl, ADMIN, fx.agentId))?.identityCached, true);
    await c.updateStats({ metrics: [{ ...metrics[0]!, value: 2 }] });
    const all = await scrape(t.gw.httpUrl);
    const mine = samples(all, 'agentgate_agent_test_rename', { agent_name: fx.agentName });
    assert.equal(mine.length, 1, `series: ${JSON.stringify(mine)}`);
    assert.equal(mine[0]!.labels['workspace_name'], newName);
    assert.equal(mine[0]!.value, 2);
    const rows = await readStats(t.db.sql, fx.agentId);
    assert.ok(rows.every((r) => r.workspace_id === fx.workspaceId && r.user_id === fx.userId));
  });

  test('a prebuild is never cached: frames take the slow path, refresh outcome "prebuild"', async () => {
    const fx = await createFixture(t.db.sql, { prebuild: true });
    const c = await t.open(fx);
    assert.equal((await debugSessionOf(t.gw.httpUrl, ADMIN, fx.agentId))?.identityCached, false);
    const c0 = await authCounters(t.gw.httpUrl);
    await c.updateStats({ connectionCount: 1 });
    await c.updateStats({ rxBytes: 5 });
    const c1 = await authCounters(t.gw.httpUrl);
    assert.equal(c1.fallback - c0.fallback, 2, 'fallback lookups');
    assert.equal(c1.miss - c0.miss, 2, 'misses');
    assert.equal(c1.hit - c0.hit, 0, 'hits');
    const rows = await readStats(t.db.sql, fx.agentId);
    assert.equal(rows.length, 2);
    assert.ok(rows.every((r) => r.user_id === PREBUILDS_OWNER_ID));
    const s = await eventually(
      'a refresh of the prebuild',
      async () => {
        const x = await debugSessionOf(t.gw.httpUrl, ADMIN, fx.agentId);
        return x?.lastRefreshAt !== null && x;
      },
      { timeoutMs: 3 * REFRESH_MS },
    );
    assert.ok(s);
    assert.equal(s.lastRefreshOutcome, 'prebuild');
    assert.equal(s.identityCached, false);
  });

  test('a claimed prebuild: the next frame carries the new owner, then frames take the fast path', async () => {
    const fx = await createFixture(t.db.sql, { prebuild: true });
    const c = await t.open(fx);
    await c.updateStats({ rxBytes: 1 });
    const owner = await claimPrebuild(t.db.sql, fx.workspaceId);
    await c.updateStats({ rxBytes: 2 });
    const rows = await readStats(t.db.sql, fx.agentId);
    assert.equal(rows.find((r) => r.rx_bytes === 1)?.user_id, PREBUILDS_OWNER_ID);
    assert.equal(rows.find((r) => r.rx_bytes === 2)?.user_id, owner, 'the first frame after the claim');
    assert.equal(
      (await debugSessionOf(t.gw.httpUrl, ADMIN, fx.agentId))?.identityCached,
      true,
      'not cached after the claim',
    );
    const c0 = await authCounters(t.gw.httpUrl);
    await c.updateStats({ rxBytes: 3 });
    await c.updateStats({ rxBytes: 4 });
    const c1 = await authCounters(t.gw.httpUrl);
    assert.equal(c1.hit - c0.hit, 2, 'hits after the claim');
    assert.equal(c1.fallback - c0.fallback, 0, 'fallback lookups after the claim');
    const later = await readStats(t.db.sql, fx.agentId);
    assert.ok(later.filter((r) => r.rx_bytes >= 3).every((r) => r.user_id === owner));
  });

  test('agent deleted, workspace deleted or dormant, token rotated: the session closes with 4501', async () => {
    const cases: [string, (fx: DbFixture) => Promise<unknown>][] = [
      ['agent deleted', (fx) => deleteAgent(t.db.sql, fx.agentId)],
      ['workspace deleted', (fx) => deleteWorkspace(t.db.sql, fx.workspaceId)],
      ['workspace dormant', (fx) => makeDormant(t.db.sql, fx.workspaceId)],
      ['token rotated', (fx) => rotateToken(t.db.sql, fx.agentId)],
    ];
    const fxs = await Promise.all(cases.map(() => createFixture(t.db.sql)));
    const cs = await Promise.all(fxs.map(t.open));
    const closes = cs.map((c) => closeCode(c, 3 * REFRESH_MS + 2000));
    await Promise.all(cases.map(([, change], i) => change(fxs[i]!)));
    const codes = await Promise.all(closes);
    for (let i = 0; i < cases.length; i++) {
      assert.equal(codes[i], CloseCode.NotAuthorized, `${cases[i]![0]}: closed with ${codes[i]}`);
    }
    // The old token is refused from now on.
    for (const fx of fxs) {
      const r = await httpRequest(`${t.gw.httpUrl}${RPC_PATH}`, {
        headers: { 'Coder-Session-Token': fx.token },
        upgrade: true,
      });
      assert.equal(r.status, 401);
    }
  });

  test('two sockets of one agent are two sessions; closing one leaves the other working', async () => {
    const fx = await createFixture(t.db.sql);
    const a = await t.open(fx);
    const b = await t.open(fx);
    const list = (await debugSessions(t.gw.httpUrl, ADMIN)).filter((s) => s.agentId === fx.agentId);
    assert.equal(list.length, 2);
    await a.close();
    await eventually(
      'one session left',
      async () => (await debugSessions(t.gw.httpUrl, ADMIN)).filter((s) => s.agentId === fx.agentId).length === 1,
    );
    await b.updateStats({ rxBytes: 9 });
    assert.equal(await countStats(t.db.sql, fx.agentId), 1);
  });

  test('a closed session never queries the database again', async () => {
    await Promise.all(t.clients.map((c) => c.close()));
    await eventually('no sessions left', async () => (await debugSessions(t.gw.httpUrl, ADMIN)).length === 0);
    const c0 = await authCounters(t.gw.httpUrl);
    await sleep(2.5 * REFRESH_MS);
    const c1 = await authCounters(t.gw.httpUrl);
    assert.deepEqual(c1, c0, 'lookups went on after every session closed');
  });
});

describe('§6 with --workspace-cache off', () => {
  const t = gatewaySuite(['--workspace-cache', 'off', '--workspace-refresh-interval', `${REFRESH_MS}ms`]);

  test('every frame is a miss and a fallback lookup; nothing cached; no refresh timer', async () => {
    const fx = await createFixture(t.db.sql, { metadataKeys: ['k'] });
    const c = await t.open(fx);
    const c0 = await authCounters(t.gw.httpUrl);
    await c.updateStats({ rxBytes: 1 });
    await c.updateStats({ connectionCount: 1 });
    await c.batchUpdateMetadata([{ key: 'k', result: { value: 'v' } }]);
    await c.updateStats(); // not authorized, not counted
    const c1 = await authCounters(t.gw.httpUrl);
    assert.equal(c1.miss - c0.miss, 3, 'misses');
    assert.equal(c1.fallback - c0.fallback, 3, 'fallback lookups');
    assert.equal(c1.hit - c0.hit, 0, 'hits');
    assert.equal((await debugSessionOf(t.gw.httpUrl, ADMIN, fx.agentId))?.identityCached, false);
    await sleep(2.2 * REFRESH_MS);
    const c2 = await authCounters(t.gw.httpUrl);
    assert.equal(c2.refresh, 0, 'a refresh ran with the cache off');
    const s = await debugSessionOf(t.gw.httpUrl, ADMIN, fx.agentId);
    assert.equal(s?.lastRefreshAt, null);
    assert.equal(s?.lastRefreshOutcome, 'none');
  });

  test('slow path: a renamed workspace is used at the next frame', async () => {
    const fx = await createFixture(t.db.sql);
    const c = await t.open(fx);
    await c.updateStats({ metrics: [{ name: 'test_slow', type: 'GAUGE', value: 1 }] });
    const newName = uniq('slow');
    await renameWorkspace(t.db.sql, fx.workspaceId, newName);
    await c.updateStats({ metrics: [{ name: 'test_slow', type: 'GAUGE', value: 2 }] });
    const mine = samples(await scrape(t.gw.httpUrl), 'agentgate_agent_test_slow', { agent_name: fx.agentName });
    assert.equal(mine.length, 1, JSON.stringify(mine));
    assert.equal(mine[0]!.labels['workspace_name'], newName);
  });

  test('slow path: after a deletion, dormancy or token change the next frame gets -32001 and the socket 4501', async () => {
    const cases: [string, (fx: DbFixture) => Promise<unknown>][] = [
      ['agent deleted', (fx) => deleteAgent(t.db.sql, fx.agentId)],
      ['workspace deleted', (fx) => deleteWorkspace(t.db.sql, fx.workspaceId)],
      ['workspace dormant', (fx) => makeDormant(t.db.sql, fx.workspaceId)],
      ['token rotated', (fx) => rotateToken(t.db.sql, fx.agentId)],
    ];
    for (const [what, change] of cases) {
      const fx = await createFixture(t.db.sql);
      const c = await t.open(fx);
      await c.updateStats({ rxBytes: 1 });
      const closed = closeCode(c, 3000);
      await change(fx);
      let outcome: string;
      try {
        await c.updateStats({ rxBytes: 2 });
        outcome = 'acknowledged';
      } catch (e) {
        if (e instanceof RpcCallError) outcome = String(e.code);
        // A LISTEN/NOTIFY-driven close (§8) may beat the frame: then it is never answered.
        else if (e instanceof CallAbortedError && e.reason === 'closed') outcome = 'closed';
        else throw e;
      }
      assert.ok(
        outcome === String(RpcError.NotAuthorized) || outcome === 'closed',
        `${what}: the frame was ${outcome}`,
      );
      assert.equal(await closed, CloseCode.NotAuthorized, `${what}: close code`);
      const rows = await readStats(t.db.sql, fx.agentId);
      assert.deepEqual(
        rows.map((r) => r.rx_bytes),
        [1],
        `${what}: a rejected frame was persisted`,
      );
    }
  });
});
