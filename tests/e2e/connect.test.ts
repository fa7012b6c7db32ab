// SPEC §3 (connecting, HTTP routes), §5.1/§5.3 (connection timestamps), §6 counters from start, and
// §1's promise that no secret reaches the logs. Black box: the real `agentgate serve` process.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { RPC_PATH } from '@agentgate/shared';
import { connectAgent } from '../helpers/agent-socket.ts';
import { addNewerBuild, createFixture } from '../helpers/db-fixtures.ts';
import { readAgent } from '../helpers/db-reads.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { debugSessions, type HttpAnswer, httpRequest } from '../helpers/http.ts';
import { authCounters, samples, scrape } from '../helpers/prometheus.ts';
import { RFC3339 } from '../helpers/time.ts';
import { eventually } from '../helpers/wait.ts';

const ADMIN_TOKEN = `admin-${randomBytes(12).toString('hex')}`;
const BAD_TOKEN = `zz-not-a-uuid-${randomBytes(6).toString('hex')}`;

function assertRefused(a: HttpAnswer, status: number, what: string): void {
  assert.equal(a.upgraded, false, `${what}: a socket was created`);
  assert.equal(a.status, status, `${what}: status ${a.status}, body ${a.body}`);
  assert.match(String(a.headers['content-type'] ?? ''), /json/, `${what}: content-type`);
  const body = a.json as { message?: unknown } | undefined;
  assert.equal(typeof body?.message, 'string', `${what}: body ${a.body} is not {"message": "..."}`);
  assert.ok((body!.message as string).length > 0, `${what}: empty message`);
}

describe('§3 connecting', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  let rpcUrl: string;
  /** Every token handed to the gateway, for the log check at the end. */
  const secrets: string[] = [ADMIN_TOKEN, BAD_TOKEN];

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({
      databaseUrl: db.url,
      args: ['--admin-token', ADMIN_TOKEN, '--usage-flush-interval', '500ms'],
    });
    rpcUrl = `${gw.httpUrl}${RPC_PATH}`;
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
  });

  const fixture = async (o: Parameters<typeof createFixture>[1] = {}) => {
    const fx = await createFixture(db.sql, o);
    secrets.push(fx.token);
    return fx;
  };

  test('/metrics exports the §6 counters at 0 from start; /healthz and /readyz are 200', async () => {
    const all = await scrape(gw.httpUrl);
    for (const reason of ['connect', 'refresh', 'fallback']) {
      const s = samples(all, 'agentgate_workspace_lookups_total', { reason });
      assert.equal(s.length, 1, `agentgate_workspace_lookups_total{reason="${reason}"} not exported`);
      assert.equal(s[0]!.value, 0);
    }
    for (const result of ['hit', 'miss']) {
      const s = samples(all, 'agentgate_identity_cache_total', { result });
      assert.equal(s.length, 1, `agentgate_identity_cache_total{result="${result}"} not exported`);
      assert.equal(s[0]!.value, 0);
    }
    const m = await httpRequest(`${gw.httpUrl}/metrics`);
    assert.match(String(m.headers['content-type']), /text\/plain/);
    assert.equal((await httpRequest(`${gw.httpUrl}/healthz`)).status, 200);
    assert.equal((await httpRequest(`${gw.httpUrl}/readyz`)).status, 200);
  });

  test('other paths are 404 with a JSON message, before any token check', async () => {
    const fx = await fixture();
    const paths = ['/', '/api/v2/workspaceagents/me', `${RPC_PATH}x`, '/api/v2/workspaceagents/other/rpc', '/nope'];
    for (const p of paths) {
      for (const headers of [{ 'Coder-Session-Token': fx.token }, {} as Record<string, string>]) {
        assertRefused(await httpRequest(`${gw.httpUrl}${p}`, { headers, upgrade: true }), 404, `upgrade ${p}`);
        assertRefused(await httpRequest(`${gw.httpUrl}${p}`, { headers }), 404, `GET ${p}`);
      }
    }
  });

  test('401 for no token, not a UUID, unknown, deleted agent, deleted or dormant workspace', async () => {
    const deletedAgent = await fixture({ agentDeleted: true });
    const deletedWs = await fixture({ workspaceDeleted: true });
    const dormant = await fixture({ dormantAt: new Date(Date.now() - 60_000) });
    const unknown = randomUUID();
    secrets.push(unknown);
    const cases: [string, Record<string, string>][] = [
      ['no token', {}],
      ['empty Coder-Session-Token', { 'Coder-Session-Token': '' }],
      ['empty bearer', { Authorization: 'Bearer ' }],
      ['not a UUID (coder header)', { 'Coder-Session-Token': BAD_TOKEN }],
      ['not a UUID (bearer)', { Authorization: `Bearer ${BAD_TOKEN}` }],
      ['unknown token', { 'Coder-Session-Token': unknown }],
      ['unknown token (bearer)', { Authorization: `Bearer ${unknown}` }],
      ['deleted agent', { 'Coder-Session-Token': deletedAgent.token }],
      ['deleted workspace', { 'Coder-Session-Token': deletedWs.token }],
      ['dormant workspace', { Authorization: `Bearer ${dormant.token}` }],
    ];
    for (const [what, headers] of cases) {
      assertRefused(await httpRequest(rpcUrl, { headers, upgrade: true }), 401, `upgrade, ${what}`);
      // The token is checked before the upgrade: 401 comes before 426.
      assertRefused(await httpRequest(rpcUrl, { headers }), 401, `plain GET, ${what}`);
    }
  });

  test('403 when the agent build is not the latest build of its workspace', async () => {
    const fx = await fixture();
    await addNewerBuild(db.sql, fx);
    assertRefused(
      await httpRequest(rpcUrl, { headers: { 'Coder-Session-Token': fx.token }, upgrade: true }),
      403,
      'upgrade',
    );
    assertRefused(await httpRequest(rpcUrl, { headers: { Authorization: `Bearer ${fx.token}` } }), 403, 'plain GET');
  });

  test('426 for an authenticated GET that is not a WebSocket upgrade, with either header form', async () => {
    const fx = await fixture();
    assertRefused(await httpRequest(rpcUrl, { headers: { 'Coder-Session-Token': fx.token } }), 426, 'coder header');
    assertRefused(await httpRequest(rpcUrl, { headers: { Authorization: `Bearer ${fx.token}` } }), 426, 'bearer');
  });

  test('refused upgrades create no session', async () => {
    const listBefore = await debugSessions(gw.httpUrl, ADMIN_TOKEN);
    const fx = await fixture({ agentDeleted: true });
    const stale = await fixture();
    await addNewerBuild(db.sql, stale);
    for (const headers of [{ 'Coder-Session-Token': fx.token }, { 'Coder-Session-Token': stale.token }, {}] as Record<
      string,
      string
    >[]) {
      const a = await httpRequest(rpcUrl, { headers, upgrade: true });
      assert.equal(a.upgraded, false);
    }
    const afterList = await debugSessions(gw.httpUrl, ADMIN_TOKEN);
    assert.equal(afterList.length, listBefore.length);
  });

  test('both header forms open a working socket', async () => {
    const fx = await fixture();
    for (const tokenHeader of ['coder', 'bearer'] as const) {
      const c = await connectAgent(gw.url, fx.token, { tokenHeader });
      try {
        assert.deepEqual(await c.updateStats(), { reportInterval: '30s' });
        await c.updateStats({ connectionCount: 0 });
      } finally {
        await c.close();
      }
    }
  });

  test('a connect loads the workspace with exactly one query (no second lookup)', async () => {
    const fx = await fixture();
    const c0 = await authCounters(gw.httpUrl);
    const c = await connectAgent(gw.url, fx.token);
    try {
      const s = await eventually('the session in /debug/sessions', async () =>
        (await debugSessions(gw.httpUrl, ADMIN_TOKEN)).find((x) => x.agentId === fx.agentId),
      );
      assert.equal(s.identityCached, true);
      const afterC = await authCounters(gw.httpUrl);
      assert.equal(afterC.connect - c0.connect, 1, 'connect lookups');
      assert.equal(afterC.refresh - c0.refresh, 0, 'refresh lookups');
      assert.equal(afterC.fallback - c0.fallback, 0, 'fallback lookups');
    } finally {
      await c.close();
    }
  });

  test('connect sets first/last_connected_at and clears disconnected_at; close sets disconnected_at', async () => {
    const fx = await fixture();
    await db.sql`update workspace_agents set disconnected_at = now() - interval '1 hour' where id = ${fx.agentId}`;
    const kept = await fixture();
    await db.sql`update workspace_agents set first_connected_at = '2020-01-01T00:00:00Z' where id = ${kept.agentId}`;

    const t0 = Date.now();
    const c = await connectAgent(gw.url, fx.token);
    const c2 = await connectAgent(gw.url, kept.token);
    const connected = await eventually('connection timestamps', async () => {
      const a = await readAgent(db.sql, fx.agentId);
      return a.firstConnectedAtMs !== null && a.lastConnectedAtMs !== null && a.disconnectedAtMs === null && a;
    });
    assert.ok(connected.firstConnectedAtMs! >= t0 - 2000 && connected.firstConnectedAtMs! <= Date.now() + 1000);
    assert.ok(connected.lastConnectedAtMs! >= t0 - 2000 && connected.lastConnectedAtMs! <= Date.now() + 1000);

    const k = await eventually('last_connected_at of the second agent', async () => {
      const a = await readAgent(db.sql, kept.agentId);
      return a.lastConnectedAtMs !== null && a;
    });
    assert.equal(k.firstConnectedAtMs, Date.parse('2020-01-01T00:00:00Z'), 'first_connected_at was overwritten');

    // A live agent's last_connected_at advances at least once per usage flush interval (500 ms).
    await eventually(
      'last_connected_at to advance while connected',
      async () => (await readAgent(db.sql, fx.agentId)).lastConnectedAtMs! > connected.lastConnectedAtMs!,
      { timeoutMs: 4000 },
    );

    const tClose = Date.now();
    await c.close();
    const closed = await eventually('disconnected_at after close', async () => {
      const a = await readAgent(db.sql, fx.agentId);
      return a.disconnectedAtMs !== null && a;
    });
    assert.ok(closed.disconnectedAtMs! >= tClose - 2000, 'disconnected_at is older than the close');
    await c2.close();
  });

  test('/debug/sessions: 401 without or with a wrong admin token; the session shape', async () => {
    assert.equal((await httpRequest(`${gw.httpUrl}/debug/sessions`)).status, 401);
    const wrong = await httpRequest(`${gw.httpUrl}/debug/sessions`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}x` },
    });
    assert.equal(wrong.status, 401);

    const fx = await fixture();
    const t0 = Date.now();
    const c = await connectAgent(gw.url, fx.token);
    try {
      const r = await httpRequest(`${gw.httpUrl}/debug/sessions`, {
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(r.status, 200);
      const body = r.json as { sessions: Record<string, unknown>[] };
      assert.ok(Array.isArray(body.sessions), `body ${r.body}`);
      const mine = body.sessions.filter((s) => s['agentId'] === fx.agentId);
      assert.equal(mine.length, 1);
      const s = mine[0]!;
      assert.deepEqual(Object.keys(s).sort(), [
        'agentId',
        'connectedAt',
        'identity',
        'identityCached',
        'lastRefreshAt',
        'lastRefreshOutcome',
        'workspaceId',
      ]);
      assert.equal(s['workspaceId'], fx.workspaceId);
      assert.match(String(s['connectedAt']), RFC3339);
      const at = Date.parse(String(s['connectedAt']));
      assert.ok(at >= t0 - 2000 && at <= Date.now() + 1000, `connectedAt ${s['connectedAt']}`);
      assert.equal(s['identityCached'], true);
      assert.deepEqual(s['identity'], {
        workspaceName: fx.workspaceName,
        ownerUsername: fx.username,
        templateName: fx.templateName,
      });
      assert.equal(s['lastRefreshAt'], null);
      assert.equal(s['lastRefreshOutcome'], 'none');
    } finally {
      await c.close();
    }
    await eventually(
      'the closed session to leave /debug/sessions',
      async () => !(await debugSessions(gw.httpUrl, ADMIN_TOKEN)).some((s) => s.agentId === fx.agentId),
    );
  });

  test('a prebuild session is not cached', async () => {
    const fx = await fixture({ prebuild: true });
    const c = await connectAgent(gw.url, fx.token);
    try {
      const s = (await debugSessions(gw.httpUrl, ADMIN_TOKEN)).find((x) => x.agentId === fx.agentId);
      assert.ok(s, 'no session for the prebuild agent');
      assert.equal(s.identityCached, false);
      assert.equal(s.identity, null);
      assert.equal(s.workspaceId, fx.workspaceId);
    } finally {
      await c.close();
    }
  });

  test('one agent may hold two sockets: two sessions, both work', async () => {
    const fx = await fixture();
    const a = await connectAgent(gw.url, fx.token);
    const b = await connectAgent(gw.url, fx.token, { tokenHeader: 'bearer' });
    try {
      const mine = (await debugSessions(gw.httpUrl, ADMIN_TOKEN)).filter((s) => s.agentId === fx.agentId);
      assert.equal(mine.length, 2);
      await Promise.all([a.updateStats({ rxBytes: 1 }), b.updateStats({ rxBytes: 2 })]);
      await a.close();
      assert.deepEqual(await b.updateStats({ rxBytes: 3 }), { reportInterval: '30s' });
      await eventually('one session left', async () => {
        const left = (await debugSessions(gw.httpUrl, ADMIN_TOKEN)).filter((s) => s.agentId === fx.agentId);
        return left.length === 1;
      });
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('/debug/* is 404 when no admin token is configured', async () => {
    const plain = await startGateway({ databaseUrl: db.url });
    try {
      for (const headers of [{}, { Authorization: `Bearer ${ADMIN_TOKEN}` }, { Authorization: 'Bearer x' }] as Record<
        string,
        string
      >[]) {
        assert.equal((await httpRequest(`${plain.httpUrl}/debug/sessions`, { headers })).status, 404);
      }
      assert.equal((await httpRequest(`${plain.httpUrl}/healthz`)).status, 200);
    } finally {
      assert.equal(await plain.stop(), 0);
    }
  });

  test('§1: no token (valid or not) and not the admin token ever reaches the logs', async () => {
    assert.ok(gw.lines.length > 0);
    const text = gw.lines.join('\n');
    for (const s of secrets) assert.ok(!text.includes(s), `secret ${s} appears in the gateway output`);
  });
});
