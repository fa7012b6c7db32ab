// SPEC §8 Workers: `serve --workers 2` on a real PostgreSQL. One `listening` line once every worker
// listens; sessions on both workers are counted by /metrics and listed by /debug/sessions whichever
// worker answers; an agent with sockets on both workers has its series once; /readyz is 200; a
// worker killed with SIGKILL is replaced and its agents reconnect; SIGTERM drains both (1001, exit 0).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AgentClient, CloseCode } from '@agentgate/shared';
import { RawSocket, rpc } from '../helpers/agent-socket.ts';
import { createFixture, type DbFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { debugSessions, httpRequest } from '../helpers/http.ts';
import { metricSum, type Sample, samples, scrape } from '../helpers/prometheus.ts';
import { eventually, withTimeout } from '../helpers/wait.ts';

const ADMIN = 'workers-admin-token';
/** Scrapes per check: each is a new connection, and the primary hands connections round-robin. */
const ANSWERERS = 4;

function logEntries(gw: GatewayProcess, msg: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of gw.lines) {
    try {
      const e = JSON.parse(l) as Record<string, unknown>;
      if (e['msg'] === msg) out.push(e);
    } catch {
      /* not JSON */
    }
  }
  return out;
}

/** The pids of the workers that listen now (from the primary's log). */
function listeningWorkers(gw: GatewayProcess): Set<number> {
  const exited = new Set(logEntries(gw, 'worker exited; restarting it').map((e) => Number(e['workerPid'])));
  return new Set(
    logEntries(gw, 'worker listening')
      .map((e) => Number(e['workerPid']))
      .filter((p) => !exited.has(p)),
  );
}

async function stats(socket: RawSocket, id: number, params: Record<string, unknown>): Promise<void> {
  const answer = await socket.request(rpc(id, 'UpdateStats', params));
  assert.ok('result' in answer, JSON.stringify(answer));
}

describe('§8 serve --workers 2', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  const sockets: RawSocket[] = [];

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url, args: ['--workers', '2', '--admin-token', ADMIN] });
  });
  after(async () => {
    for (const s of sockets) await s.close();
    await gw?.stop('SIGKILL');
    await db?.drop();
  });

  test('one `listening` line, after both workers listen on the one port; /readyz 200 from either', async () => {
    assert.equal(logEntries(gw, 'listening').length, 1);
    const workers = logEntries(gw, 'worker listening');
    assert.equal(workers.length, 2);
    const port = Number(new URL(gw.httpUrl).port);
    for (const w of workers) assert.equal(w['port'], port);
    assert.equal(listeningWorkers(gw).size, 2);
    for (let i = 0; i < ANSWERERS; i++) assert.equal((await httpRequest(`${gw.httpUrl}/readyz`)).status, 200);
  });

  test('sessions on both workers are counted by /metrics and listed by /debug/sessions, whoever answers', async () => {
    const fixtures: DbFixture[] = [];
    for (let i = 0; i < 8; i++) {
      const fx = await createFixture(db.sql);
      fixtures.push(fx);
      const s = await RawSocket.open(gw.url, fx.token);
      sockets.push(s);
      await stats(s, 1, { stats: { rxBytes: 1 } });
    }
    const workers = listeningWorkers(gw);
    for (let i = 0; i < ANSWERERS; i++) {
      const list = await debugSessions(gw.httpUrl, ADMIN);
      assert.deepEqual(list.map((s) => s.agentId).sort(), fixtures.map((f) => f.agentId).sort());
      const pids = new Set(list.map((s) => s.pid));
      assert.deepEqual([...pids].sort(), [...workers].sort(), 'the sessions are not spread over both workers');

      const all = await scrape(gw.httpUrl);
      assert.equal(metricSum(all, 'agentgate_sessions'), 8);
      assert.equal(metricSum(all, 'agentgate_frames_total', { method: 'UpdateStats', outcome: 'ok' }), 8);
      assert.equal(metricSum(all, 'agentgate_workspace_lookups_total', { reason: 'connect' }), 8);
      assert.equal(metricSum(all, 'agentgate_ack_latency_seconds_count', { method: 'UpdateStats' }), 8);
      assert.equal(samples(all, 'agentgate_sessions').length, 1);
    }
  });

  test('an agent with a socket on each worker has its series once, with the latest report', async () => {
    const fx = await createFixture(db.sql);
    // Consecutive connections go to alternate workers (no other connection in between).
    const mine: RawSocket[] = [];
    for (let i = 0; i < 4; i++) mine.push(await RawSocket.open(gw.url, fx.token));
    sockets.push(...mine);
    const bySocket = (await debugSessions(gw.httpUrl, ADMIN)).filter((d) => d.agentId === fx.agentId);
    assert.equal(bySocket.length, 4);
    assert.equal(new Set(bySocket.map((d) => d.pid)).size, 2, 'the agent has no socket on the second worker');
    let value = 0;
    for (const s of mine) {
      value++;
      await stats(s, 10 + value, {
        stats: { metrics: [{ name: 'test_spread', type: 'GAUGE', value, labels: [{ name: 'k', value: 'v' }] }] },
      });
    }
    const mineOnly = (all: Sample[]) => samples(all, 'agentgate_agent_test_spread', { agent_name: fx.agentName });
    // A gather serves the scrapes of the next second too (README, Workers): the reports show once it is over.
    await eventually('the reports on /metrics', async () => mineOnly(await scrape(gw.httpUrl)).at(0)?.value === value);
    for (let i = 0; i < ANSWERERS; i++) {
      const r = await httpRequest(`${gw.httpUrl}/metrics`);
      assert.equal(r.status, 200);
      const series = mineOnly(await scrape(gw.httpUrl));
      assert.equal(series.length, 1, `the agent's series appears ${series.length} times`);
      assert.equal(series[0]!.value, value, 'not the latest report');
      assert.equal(r.body.split('\n').filter((l) => l.startsWith('# TYPE agentgate_agent_test_spread ')).length, 1);
    }
  });

  test('a worker killed with SIGKILL is replaced (logged) and its agents reconnect', async () => {
    const before = listeningWorkers(gw);
    const fixtures: DbFixture[] = [];
    const clients: AgentClient[] = [];
    for (let i = 0; i < 4; i++) {
      const fx = await createFixture(db.sql);
      fixtures.push(fx);
      const c = new AgentClient({ url: gw.url, token: fx.token, backoffInitialMs: 100, backoffMaxMs: 500 });
      await c.connect();
      clients.push(c);
    }
    try {
      const sessions = await debugSessions(gw.httpUrl, ADMIN);
      const victim = sessions.find((s) => s.agentId === fixtures[0]!.agentId)!.pid!;
      assert.ok(before.has(victim));
      const onVictim = sessions.filter((s) => s.pid === victim && fixtures.some((f) => f.agentId === s.agentId));
      process.kill(victim, 'SIGKILL');

      const exited = await gw.waitForLog(
        (e) => e['msg'] === 'worker exited; restarting it' && e['workerPid'] === victim,
        5000,
      );
      assert.equal(exited['signal'], 'SIGKILL');
      assert.equal(exited['restartInMs'], 1000);
      const replaced = await gw.waitForLog(
        (e) => e['msg'] === 'worker listening' && !before.has(Number(e['workerPid'])),
        15_000,
      );
      assert.equal(listeningWorkers(gw).size, 2);
      assert.ok(!listeningWorkers(gw).has(victim));
      assert.equal(logEntries(gw, 'listening').length, 1, 'the `listening` line is logged once');

      // Every agent of the killed worker is connected again and its frames are answered.
      for (const [i, c] of clients.entries()) {
        const wasThere = onVictim.some((s) => s.agentId === fixtures[i]!.agentId);
        await eventually(`agent ${i} connected`, () => c.connected, { timeoutMs: 10_000 });
        assert.deepEqual(await c.updateStats({ rxBytes: 5 }), { reportInterval: '30s' });
        if (wasThere) assert.ok(c.reconnects >= 1, `agent ${i} was on the killed worker but did not reconnect`);
      }
      const after = await debugSessions(gw.httpUrl, ADMIN);
      for (const f of fixtures) assert.ok(after.some((s) => s.agentId === f.agentId));
      assert.ok(after.every((s) => s.pid !== victim));
      assert.ok(Number(replaced['workerPid']) > 0);
    } finally {
      for (const c of clients) await c.close();
    }
  });

  test('SIGTERM drains both workers: every agent gets 1001, exit 0', async () => {
    // The replacement worker gets some too: consecutive connections alternate.
    for (let i = 0; i < 4; i++) sockets.push(await RawSocket.open(gw.url, (await createFixture(db.sql)).token));
    const open = sockets.filter((s) => s.isOpen);
    const pids = new Set((await debugSessions(gw.httpUrl, ADMIN)).map((s) => s.pid));
    assert.deepEqual([...pids].sort(), [...listeningWorkers(gw)].sort(), 'the sockets are not on both workers');
    const code = await withTimeout(gw.stop('SIGTERM'), 30_000, 'exit after SIGTERM');
    assert.equal(code, 0, gw.lines.slice(-30).join('\n'));
    for (const s of open) assert.equal((await s.waitClosed()).code, CloseCode.GoingAway);
    assert.equal(logEntries(gw, 'worker drained').length, 2);
    assert.equal(logEntries(gw, 'stopped').length, 1);
  });
});
