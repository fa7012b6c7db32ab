// SPEC §4 UpdateStats: the stats row (committed before the ack), agent metrics on /metrics, and the
// activity effects (NOTIFY, deadline bump incl. autostart-aware, last_used_at).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type AgentClient,
  PREBUILDS_OWNER_ID,
  type Stats,
  type StatsUpdateNotification,
  statsChannel,
} from '@agentgate/shared';
import { connectAgent } from '../helpers/agent-socket.ts';
import { createFixture, type DbFixture, type DbFixtureOptions } from '../helpers/db-fixtures.ts';
import { countStats, readBuild, readLastUsedAt, readStats } from '../helpers/db-reads.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { listen } from '../helpers/listen.ts';
import { metricSum, samples, scrape } from '../helpers/prometheus.ts';
import { HOUR_MS, HOUR_NS, MINUTE_MS, NS_PER_MS, nextLocalTime } from '../helpers/time.ts';
import { eventually, sleep } from '../helpers/wait.ts';

const REPORT_INTERVAL_MS = 2500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

describe('§4 UpdateStats', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  const clients: AgentClient[] = [];

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({
      databaseUrl: db.url,
      args: ['--stats-report-interval', `${REPORT_INTERVAL_MS}ms`, '--usage-flush-interval', '500ms'],
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gw?.stop();
    await db?.drop();
  });

  /** A fixture with a connected client. */
  async function agent(o: DbFixtureOptions = {}): Promise<{ fx: DbFixture; c: AgentClient }> {
    const fx = await createFixture(db.sql, o);
    const c = await connectAgent(gw.url, fx.token);
    clients.push(c);
    return { fx, c };
  }

  test('without stats: the configured interval as a protojson Duration, and no row', async () => {
    const { fx, c } = await agent();
    assert.deepEqual(await c.updateStats(), { reportInterval: '2.500s' });
    assert.deepEqual(await c.call('UpdateStats'), { reportInterval: '2.500s' });
    assert.equal(await countStats(db.sql, fx.agentId), 0);
    assert.equal(await readLastUsedAt(db.sql, fx.workspaceId), null);
  });

  test('the stats row is committed before the ack, with the session ids', async () => {
    const { fx, c } = await agent();
    const t0 = Date.now();
    for (let i = 1; i <= 10; i++) {
      assert.deepEqual(await c.updateStats({ rxBytes: i }), { reportInterval: '2.500s' });
      // Read right after the ack: the row must already be there.
      assert.equal(await countStats(db.sql, fx.agentId), i, `row ${i} was not committed before its ack`);
    }
    const rows = await readStats(db.sql, fx.agentId);
    assert.equal(new Set(rows.map((r) => r.id)).size, 10);
    for (const r of rows) {
      assert.match(r.id, UUID);
      assert.equal(r.user_id, fx.userId);
      assert.equal(r.workspace_id, fx.workspaceId);
      assert.equal(r.template_id, fx.templateId);
      assert.equal(r.agent_id, fx.agentId);
      assert.ok(r.createdAtMs >= t0 - 2000 && r.createdAtMs <= Date.now() + 2000, `created_at ${r.createdAtMs}`);
    }
    assert.deepEqual(
      rows.map((r) => r.rx_bytes).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
  });

  test('ints given as decimal strings are stored as numbers, also inside connections_by_proto', async () => {
    const { fx, c } = await agent();
    const stats: Stats = {
      connectionsByProto: { ssh: '3', vscode: 2, 'reconnecting-pty': '9007199254740991' },
      connectionCount: '0',
      connectionMedianLatencyMs: 12.5,
      rxPackets: '11',
      rxBytes: '9007199254740991',
      txPackets: 13,
      txBytes: '14',
      sessionCountVscode: '15',
      sessionCountJetbrains: 16,
      sessionCountReconnectingPty: '17',
      sessionCountSsh: '18',
    };
    await c.updateStats(stats);
    const [r] = await readStats(db.sql, fx.agentId);
    assert.ok(r);
    assert.deepEqual(r.connections_by_proto, { ssh: 3, vscode: 2, 'reconnecting-pty': 9007199254740991 });
    assert.deepEqual(r.proto_types, { ssh: 'number', vscode: 'number', 'reconnecting-pty': 'number' });
    assert.equal(r.connection_count, 0);
    assert.equal(r.connection_median_latency_ms, 12.5);
    assert.equal(r.rx_packets, 11);
    assert.equal(r.rx_bytes, 9007199254740991);
    assert.equal(r.tx_packets, 13);
    assert.equal(r.tx_bytes, 14);
    assert.equal(r.session_count_vscode, 15);
    assert.equal(r.session_count_jetbrains, 16);
    assert.equal(r.session_count_reconnecting_pty, 17);
    assert.equal(r.session_count_ssh, 18);
  });

  test('missing fields are 0 and the median latency -1', async () => {
    const { fx, c } = await agent();
    await c.updateStats({});
    const [r] = await readStats(db.sql, fx.agentId);
    assert.ok(r, 'stats {} wrote no row');
    assert.deepEqual(r.connections_by_proto, {});
    for (const k of [
      'connection_count',
      'rx_packets',
      'rx_bytes',
      'tx_packets',
      'tx_bytes',
      'session_count_vscode',
      'session_count_jetbrains',
      'session_count_reconnecting_pty',
      'session_count_ssh',
    ] as const) {
      assert.equal(r[k], 0, k);
    }
    assert.equal(r.connection_median_latency_ms, -1);
  });

  describe('agent metrics on /metrics', () => {
    test('exported as agentgate_agent_<name> with the 4 identity labels plus their own, value as last reported', async () => {
      const { fx, c } = await agent();
      const identity = {
        agent_name: fx.agentName,
        username: fx.username,
        workspace_name: fx.workspaceName,
        template_name: fx.templateName,
      };
      await c.updateStats({
        metrics: [
          { name: 'test_cpu', type: 'GAUGE', value: 0.25, labels: [{ name: 'core', value: '0' }] },
          { name: 'test_requests', type: 'COUNTER', value: 7 },
          { name: 'test_plain', type: 'TYPE_UNSPECIFIED', value: 3 },
        ],
      });
      let all = await scrape(gw.httpUrl);
      const cpu = samples(all, 'agentgate_agent_test_cpu', { agent_name: fx.agentName });
      assert.equal(cpu.length, 1, 'agentgate_agent_test_cpu not exported');
      assert.deepEqual(cpu[0]!.labels, { ...identity, core: '0' });
      assert.equal(cpu[0]!.value, 0.25);
      const req = samples(all, 'agentgate_agent_test_requests', { agent_name: fx.agentName });
      assert.equal(req.length, 1, 'a COUNTER must keep its name (no suffix)');
      assert.deepEqual(req[0]!.labels, identity);
      assert.equal(req[0]!.value, 7);
      assert.equal(samples(all, 'agentgate_agent_test_requests_total').length, 0, 'a suffix was added');
      assert.equal(samples(all, 'agentgate_agent_test_plain', identity)[0]?.value, 3);

      await c.updateStats({
        metrics: [
          { name: 'test_cpu', type: 'GAUGE', value: 0.75, labels: [{ name: 'core', value: '0' }] },
          { name: 'test_requests', type: 'COUNTER', value: 5 },
        ],
      });
      all = await scrape(gw.httpUrl);
      assert.equal(samples(all, 'agentgate_agent_test_cpu', identity)[0]?.value, 0.75);
      assert.equal(samples(all, 'agentgate_agent_test_requests', identity)[0]?.value, 5, 'not the last reported value');
    });

    test('bad metric names are dropped and counted; reserved or invalid label names dropped, series kept', async () => {
      const { fx, c } = await agent();
      const d0 = metricSum(await scrape(gw.httpUrl), 'agentgate_agent_metrics_dropped_total');
      const r = await c.updateStats({
        metrics: [
          { name: 'bad-name', type: 'GAUGE', value: 1 },
          { name: '9lives', type: 'GAUGE', value: 1 },
          { name: 'sp ace', type: 'GAUGE', value: 1 },
          {
            name: 'ok_metric:sub',
            type: 'GAUGE',
            value: 4,
            labels: [
              { name: 'username', value: 'evil' },
              { name: 'workspace_name', value: 'evil' },
              { name: 'agent_name', value: 'evil' },
              { name: 'template_name', value: 'evil' },
              { name: 'bad-label', value: 'x' },
              { name: '1st', value: 'x' },
              { name: 'good', value: 'y' },
            ],
          },
        ],
      });
      assert.deepEqual(r, { reportInterval: '2.500s' }, 'bad names must not fail the frame');
      const all = await scrape(gw.httpUrl);
      assert.equal(metricSum(all, 'agentgate_agent_metrics_dropped_total') - d0, 3);
      const ok = samples(all, 'agentgate_agent_ok_metric:sub', { agent_name: fx.agentName });
      assert.equal(ok.length, 1, 'the series with bad labels was not kept');
      assert.deepEqual(ok[0]!.labels, {
        agent_name: fx.agentName,
        username: fx.username,
        workspace_name: fx.workspaceName,
        template_name: fx.templateName,
        good: 'y',
      });
      assert.equal(ok[0]!.value, 4);
      assert.equal(
        all.filter((s) => s.labels['agent_name'] === fx.agentName).length,
        1,
        'a bad metric name was exported',
      );
      assert.equal(await countStats(db.sql, fx.agentId), 1);
    });

    test('a series not reported for 2 report intervals disappears', async () => {
      const { fx, c } = await agent();
      await c.updateStats({ metrics: [{ name: 'test_fading', type: 'GAUGE', value: 1 }] });
      const t0 = Date.now();
      assert.equal(
        samples(await scrape(gw.httpUrl), 'agentgate_agent_test_fading', { agent_name: fx.agentName }).length,
        1,
      );
      await eventually(
        'the series to disappear',
        async () =>
          samples(await scrape(gw.httpUrl), 'agentgate_agent_test_fading', { agent_name: fx.agentName }).length === 0,
        { timeoutMs: 4 * REPORT_INTERVAL_MS, intervalMs: 100 },
      );
      const gone = Date.now() - t0;
      assert.ok(gone >= 1.6 * REPORT_INTERVAL_MS, `the series disappeared after only ${gone} ms`);
    });
  });

  describe('activity (connectionCount > 0)', () => {
    test('NOTIFY workspace_owner:<owner> with {"kind":"stats_update","workspace_id"}', async () => {
      const { fx, c } = await agent();
      const l = await listen(db.sql, statsChannel(fx.userId));
      try {
        await c.updateStats({ connectionCount: 1 });
        await eventually('the stats_update notification', () => l.payloads.length > 0, { timeoutMs: 2500 });
        const want: StatsUpdateNotification = { kind: 'stats_update', workspace_id: fx.workspaceId };
        assert.deepEqual(l.payloads[0], want);
      } finally {
        await l.unlisten();
      }
    });

    test('last_used_at is set within one usage flush interval', async () => {
      const { fx, c } = await agent();
      assert.equal(await readLastUsedAt(db.sql, fx.workspaceId), null);
      const t0 = Date.now();
      await c.updateStats({ connectionCount: 2 });
      const at = await eventually('last_used_at', () => readLastUsedAt(db.sql, fx.workspaceId), { timeoutMs: 3000 });
      assert.ok(at >= t0 - 1000 && at <= Date.now() + 1000, `last_used_at ${at} not around ${t0}`);
    });

    test('a deadline near expiry is bumped to now + the template activity_bump', async () => {
      const { fx: a, c: ca } = await agent({ deadline: new Date(Date.now() + 10 * MINUTE_MS) });
      const { fx: b, c: cb } = await agent({
        deadline: new Date(Date.now() + 10 * MINUTE_MS),
        activityBumpNs: 90 * MINUTE_MS * NS_PER_MS,
      });
      const t0 = Date.now();
      await Promise.all([ca.updateStats({ connectionCount: 1 }), cb.updateStats({ connectionCount: 1 })]);
      for (const [fx, bump] of [
        [a, HOUR_MS],
        [b, 90 * MINUTE_MS],
      ] as const) {
        const d = await eventually(
          'the bump',
          async () => {
            const r = await readBuild(db.sql, fx.buildId);
            return r.deadlineMs! > t0 + 20 * MINUTE_MS && r.deadlineMs;
          },
          { timeoutMs: 3000 },
        );
        assert.ok(
          d! >= t0 + bump - 1000 && d! <= Date.now() + bump + 1000,
          `deadline ${new Date(d!).toISOString()} is not now + ${bump / MINUTE_MS} min`,
        );
      }
    });

    test('the bump is capped by a non-zero max_deadline', async () => {
      const maxDeadline = new Date(Date.now() + 30 * MINUTE_MS);
      const { fx, c } = await agent({ deadline: new Date(Date.now() + 10 * MINUTE_MS), maxDeadline });
      await c.updateStats({ connectionCount: 1 });
      await eventually(
        'deadline = max_deadline',
        async () => {
          const [r] = await db.sql<{ eq: boolean }[]>`
            select deadline = max_deadline as eq from workspace_builds where id = ${fx.buildId}`;
          return r!.eq;
        },
        { timeoutMs: 3000 },
      );
    });

    /** Sends activity for `cases` first and the control last; waits for the control's bump, then a grace period. */
    async function afterControlBump(send: () => Promise<unknown>): Promise<void> {
      const control = await agent({ deadline: new Date(Date.now() + 10 * MINUTE_MS) });
      const control0 = await readBuild(db.sql, control.fx.buildId);
      await send();
      await control.c.updateStats({ connectionCount: 1 });
      await eventually(
        'the control bump',
        async () => (await readBuild(db.sql, control.fx.buildId)).deadlineMs! > control0.deadlineMs! + MINUTE_MS,
        { timeoutMs: 3000 },
      );
      await sleep(1200);
    }

    test('a deadline never decreases and is left alone when not near expiry', async () => {
      const far = await agent({ deadline: new Date(Date.now() + 2 * HOUR_MS) });
      // max_deadline below the deadline: capping would lower it.
      const inverted = await agent({
        deadline: new Date(Date.now() + 10 * MINUTE_MS),
        maxDeadline: new Date(Date.now() + 5 * MINUTE_MS),
      });
      const b0 = await readBuild(db.sql, far.fx.buildId);
      const b1 = await readBuild(db.sql, inverted.fx.buildId);
      await afterControlBump(() =>
        Promise.all([far.c.updateStats({ connectionCount: 1 }), inverted.c.updateStats({ connectionCount: 1 })]),
      );
      assert.equal((await readBuild(db.sql, far.fx.buildId)).deadlineText, b0.deadlineText, 'far deadline changed');
      assert.ok((await readBuild(db.sql, inverted.fx.buildId)).deadlineMs! >= b1.deadlineMs!, 'the deadline decreased');
    });

    test('no bump for a stop build, an incomplete job, an unset deadline, a prebuild, or connectionCount 0', async () => {
      const near = () => new Date(Date.now() + 10 * MINUTE_MS);
      const stop = await agent({ transition: 'stop', deadline: near() });
      const incomplete = await agent({ jobCompletedAt: null, deadline: near() });
      const unset = await agent({ deadline: null });
      const prebuild = await agent({ prebuild: true, deadline: near() });
      const idle = await agent({ deadline: near() });
      const all = [stop, incomplete, unset, prebuild, idle];
      const builds0 = await Promise.all(all.map((x) => readBuild(db.sql, x.fx.buildId)));
      const idleNotes = await listen(db.sql, statsChannel(idle.fx.userId));
      try {
        await afterControlBump(() =>
          Promise.all([
            stop.c.updateStats({ connectionCount: 1 }),
            incomplete.c.updateStats({ connectionCount: 1 }),
            unset.c.updateStats({ connectionCount: 1 }),
            prebuild.c.updateStats({ connectionCount: 1 }),
            idle.c.updateStats({ connectionCount: 0, rxBytes: 100 }),
          ]),
        );
        const names = ['stop build', 'incomplete job', 'unset deadline', 'prebuild', 'connectionCount 0'];
        for (let i = 0; i < all.length; i++) {
          const now = await readBuild(db.sql, all[i]!.fx.buildId);
          assert.equal(now.deadlineText, builds0[i]!.deadlineText, `${names[i]}: the deadline moved`);
        }
        assert.equal((await readBuild(db.sql, unset.fx.buildId)).deadlineText, '0001-01-01 00:00:00.000000');
        // connectionCount 0 is no activity at all: no notification, no last_used_at.
        assert.deepEqual(idleNotes.payloads, []);
        assert.equal(await readLastUsedAt(db.sql, idle.fx.workspaceId), null);
        // The prebuild's row carries the prebuilds owner.
        const [pr] = await readStats(db.sql, prebuild.fx.agentId);
        assert.equal(pr?.user_id, PREBUILDS_OWNER_ID);
      } finally {
        await idleNotes.unlisten();
      }
    });

    test('autostart-aware bump: (next autostart - now) + ttl when the autostart falls inside the bump', async () => {
      // A 24 h activity_bump puts the next 08:00 Sydney always inside the window.
      const schedule = 'CRON_TZ=Australia/Sydney 0 8 * * *';
      const now = Date.now();
      const next = nextLocalTime(now, 'Australia/Sydney', 8);
      const plainBump = now + 24 * HOUR_MS;
      // Pick ttls whose expected deadlines are far (> 30 min) from the plain 24 h bump and each other.
      const ttls = [1, 3, 5, 7, 9]
        .map((h) => h * HOUR_MS)
        .filter((t) => Math.abs(next + t - plainBump) > 30 * MINUTE_MS);
      const [ttlUser, ttlTemplate] = ttls as [number, number];
      const base: DbFixtureOptions = {
        activityBumpNs: 24 * HOUR_NS,
        deadline: new Date(now + MINUTE_MS),
        autostartSchedule: schedule,
      };
      const user = await agent({ ...base, ttlNs: ttlUser * NS_PER_MS });
      const template = await agent({
        ...base,
        ttlNs: ttlUser * NS_PER_MS,
        allowUserAutostop: false,
        defaultTtlNs: ttlTemplate * NS_PER_MS,
      });
      const nullTtl = await agent({ ...base, ttlNs: null });
      const unparsable = await agent({
        ...base,
        autostartSchedule: 'CRON_TZ=Nowhere/Atlantis every day',
        ttlNs: ttlUser * NS_PER_MS,
      });
      const t0 = Date.now();
      await Promise.all([user, template, nullTtl, unparsable].map((x) => x.c.updateStats({ connectionCount: 1 })));
      const expectations: [string, DbFixture, number][] = [
        ['workspace ttl', user.fx, next + ttlUser],
        ['template default_ttl (allow_user_autostop false)', template.fx, next + ttlTemplate],
        ['null ttl counts as 0', nullTtl.fx, next],
        ['unparsable schedule: plain bump', unparsable.fx, t0 + 24 * HOUR_MS],
      ];
      for (const [what, fx, expected] of expectations) {
        const d = await eventually(
          `the bump (${what})`,
          async () => {
            const r = await readBuild(db.sql, fx.buildId);
            return r.deadlineMs !== base.deadline!.getTime() && r.deadlineMs;
          },
          { timeoutMs: 3000 },
        );
        assert.ok(
          Math.abs(d! - expected) <= 5000,
          `${what}: deadline ${new Date(d!).toISOString()}, expected ${new Date(expected).toISOString()}`,
        );
      }
    });
  });
});
