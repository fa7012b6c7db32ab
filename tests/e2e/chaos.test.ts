// SPEC §7 "no unobserved rejection ends the process": a TCP proxy between the gateway and
// PostgreSQL resets every connection (pools, LISTEN, health probe, cancel requests) every 200–500 ms
// for 20 s while 50 agents send frames. Afterwards the process is alive, every acknowledged frame is
// stored, a new frame is acknowledged within 5 s, and agentgate_unhandled_rejections_total is 0 (the
// last-resort handler was never needed).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type AgentClient, RpcCallError } from '@agentgate/shared';
import { connectAgent } from '../helpers/agent-socket.ts';
import { createFixture, type DbFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { httpRequest } from '../helpers/http.ts';
import { metricSum, samples, scrape } from '../helpers/prometheus.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { sleep } from '../helpers/wait.ts';

const AGENTS = 50;
const CHAOS_MS = 20_000;

describe('§7 chaos: a proxy that resets every database connection every 200–500 ms for 20 s', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let gw: GatewayProcess;
  const clients: AgentClient[] = [];

  before(async () => {
    db = await freshDatabase();
    proxy = await startTcpProxy(db.url);
    gw = await startGateway({
      databaseUrl: proxy.rewrite(db.url),
      // Refreshes every second: the refresh and slow-path reads meet the resets too.
      args: ['--workspace-refresh-interval', '1s', '--usage-flush-interval', '500ms', '--log-level', 'info'],
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gw?.stop();
    await proxy?.close();
    await db?.drop();
  });

  test('the process lives, every acknowledged frame is stored, and it acknowledges again within 5 s', async (t) => {
    const fxs: DbFixture[] = [];
    for (let i = 0; i < AGENTS; i++) fxs.push(await createFixture(db.sql, { metadataKeys: ['cpu'] }));
    for (const fx of fxs) clients.push(await connectAgent(gw.url, fx.token, { requestTimeoutMs: 40_000 }));

    // Each agent sends stats with a sequence number in rx_bytes, and metadata, as fast as it is answered.
    const acked = fxs.map(() => new Set<number>());
    const errors = new Map<string, number>();
    let stop = false;
    const senders = clients.map(async (c, i) => {
      for (let seq = 1; !stop; seq++) {
        try {
          if (seq % 3 === 0) await c.batchUpdateMetadata([{ key: 'cpu', result: { value: String(seq) } }]);
          else {
            await c.updateStats({ rxBytes: seq, connectionCount: 1 });
            acked[i]!.add(seq);
          }
        } catch (e) {
          const key = e instanceof RpcCallError ? String(e.code) : (e as Error).name;
          errors.set(key, (errors.get(key) ?? 0) + 1);
          if (!c.connected) return;
          await sleep(50);
        }
        await sleep(20);
      }
    });

    let resets = 0;
    let rounds = 0;
    const until = Date.now() + CHAOS_MS;
    while (Date.now() < until) {
      await sleep(200 + Math.random() * 300);
      resets += proxy.resetAll();
      rounds++;
    }
    stop = true;
    await Promise.all(senders);

    assert.equal(gw.child.exitCode, null, `the gateway exited:\n${gw.lines.slice(-40).join('\n')}`);
    assert.equal((await httpRequest(`${gw.httpUrl}/healthz`)).status, 200);
    assert.ok(rounds >= 30 && resets >= rounds, `only ${rounds} rounds and ${resets} resets`);
    for (const c of clients) assert.equal(c.connected, true, 'an agent lost its socket to a database blip');

    // A new frame is acknowledged within 5 s of the last reset.
    const t0 = Date.now();
    await clients[0]!.updateStats({ rxBytes: 1_000_000, connectionCount: 1 });
    assert.ok(Date.now() - t0 <= 5000, `the first frame after the chaos took ${Date.now() - t0} ms`);

    // Every acknowledged stats frame is stored, exactly once.
    const rows = await db.sql<{ agent_id: string; rx_bytes: number; n: number }[]>`
      select agent_id, rx_bytes, count(*)::int as n from workspace_agent_stats
      where agent_id = any(${fxs.map((f) => f.agentId)}::uuid[]) group by agent_id, rx_bytes`;
    const stored = new Map<string, Map<number, number>>();
    for (const r of rows) {
      const m = stored.get(r.agent_id) ?? new Map<number, number>();
      stored.set(r.agent_id, m);
      m.set(Number(r.rx_bytes), r.n);
    }
    let ackedTotal = 0;
    const lost: string[] = [];
    const twice: string[] = [];
    fxs.forEach((fx, i) => {
      for (const seq of acked[i]!) {
        ackedTotal++;
        const n = stored.get(fx.agentId)?.get(seq) ?? 0;
        if (n === 0) lost.push(`${fx.agentId}#${seq}`);
        if (n > 1) twice.push(`${fx.agentId}#${seq}`);
      }
    });
    for (const r of rows) if (r.n > 1) twice.push(`${r.agent_id}#${r.rx_bytes}`);
    assert.ok(ackedTotal > AGENTS, `only ${ackedTotal} frames were acknowledged during the chaos`);
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged frames are not stored`);
    assert.deepEqual([...new Set(twice)].slice(0, 10), [], 'frames stored twice');

    const metrics = await scrape(gw.httpUrl);
    assert.equal(samples(metrics, 'agentgate_unhandled_rejections_total').length, 1, 'the counter is exported');
    assert.equal(metricSum(metrics, 'agentgate_unhandled_rejections_total'), 0, 'the last-resort handler was needed');
    const logged = gw.lines.filter((l) => l.includes('unhandled rejection'));
    assert.deepEqual(logged, []);
    t.diagnostic(
      `chaos: ${rounds} rounds, ${resets} connections reset; ${ackedTotal} stats frames acked; errors ${JSON.stringify(Object.fromEntries(errors))}`,
    );
  });
});
