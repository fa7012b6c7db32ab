// SPEC §7 bounds: the shared write buffer (-32002 at once when full), at most 64 unanswered
// requests per session (the socket is not read beyond that), and a client that does not read its
// answers is closed with 4008. The database is taken away through a loopback TCP proxy.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_UNANSWERED_PER_SESSION, RpcError } from '@agentgate/shared';
import { RawSocket, rpc } from '../helpers/agent-socket.ts';
import { createFixture } from '../helpers/db-fixtures.ts';
import { countStats } from '../helpers/db-reads.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { scrape, metricSum } from '../helpers/prometheus.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { eventually } from '../helpers/wait.ts';

const stats = (n: number) => ({ stats: { rxBytes: n } });

describe('§7 write buffer and backpressure while the database is away', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let gw: GatewayProcess;

  before(async () => {
    db = await freshDatabase();
    proxy = await startTcpProxy(db.url);
    gw = await startGateway({
      databaseUrl: proxy.rewrite(db.url),
      args: ['--write-buffer', '100', '--session-rate', '10000'],
    });
  });
  after(async () => {
    await gw?.stop();
    await proxy?.close();
    await db?.drop();
  });

  test('a full buffer answers -32002 at once; the rest commit when the database returns', async () => {
    const a = await createFixture(db.sql);
    const b = await createFixture(db.sql);
    const sa = await RawSocket.open(gw.url, a.token);
    const sb = await RawSocket.open(gw.url, b.token);
    try {
      // Warm up: both sessions work.
      assert.deepEqual((await sa.request(rpc(0, 'UpdateStats', stats(0))))['error'], undefined);
      assert.deepEqual((await sb.request(rpc(0, 'UpdateStats', stats(0))))['error'], undefined);
      await proxy.cut();
      // 60 + 60 frames against a buffer of 100: 20 must be refused at once, and none lost.
      for (let i = 1; i <= 60; i++) sa.send(rpc(i, 'UpdateStats', stats(i)));
      for (let i = 1; i <= 60; i++) sb.send(rpc(i, 'UpdateStats', stats(i)));
      const t0 = Date.now();
      const all = () => [...sa.messages, ...sb.messages] as { error?: { code: number } }[];
      await eventually('20 frames answered -32002', async () => all().length >= 20, {
        timeoutMs: 5000,
        intervalMs: 20,
      });
      assert.ok(Date.now() - t0 < 3000, `the refusals took ${Date.now() - t0} ms`);
      assert.equal(all().length, 20, 'only the frames beyond the buffer are answered while the database is away');
      for (const r of all()) assert.equal(r.error?.code, RpcError.Unavailable);
      assert.equal(metricSum(await scrape(gw.httpUrl), 'agentgate_write_buffer_frames'), 100);

      await proxy.restore();
      await eventually('every frame answered', async () => sa.messages.length + sb.messages.length === 120, {
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      const ok = all().filter((r) => r.error === undefined).length;
      assert.equal(ok, 100);
      // The acknowledged frames were written exactly once; the refused ones never.
      assert.equal((await countStats(db.sql, a.agentId)) + (await countStats(db.sql, b.agentId)), 2 + 100);
    } finally {
      await proxy.restore();
      await sa.close();
      await sb.close();
    }
  });

  test('at most 64 unanswered requests per session: the socket is not read beyond that', async () => {
    const a = await createFixture(db.sql);
    const s = await RawSocket.open(gw.url, a.token);
    try {
      assert.deepEqual((await s.request(rpc(0, 'UpdateStats', stats(0))))['error'], undefined);
      await proxy.cut();
      for (let i = 1; i <= 90; i++) s.send(rpc(i, 'UpdateStats', stats(i)));
      // Give the gateway time to read everything it is willing to read.
      await new Promise((r) => setTimeout(r, 1500));
      const waiting = metricSum(await scrape(gw.httpUrl), 'agentgate_write_buffer_frames');
      assert.ok(waiting <= MAX_UNANSWERED_PER_SESSION, `${waiting} frames of one session reached the writer`);
      assert.ok(waiting > 0);
      assert.equal(s.messages.length, 0, 'nothing is answered while the database is away and the buffer has room');
      await proxy.restore();
      await eventually('all 90 answered', async () => s.messages.length === 90, { timeoutMs: 30_000, intervalMs: 100 });
      for (const m of s.messages as { error?: unknown }[]) assert.equal(m.error, undefined);
      assert.equal(await countStats(db.sql, a.agentId), 91);
    } finally {
      await proxy.restore();
      await s.close();
    }
  });

  test('a client that does not read its answers is closed with 4008', async () => {
    const a = await createFixture(db.sql);
    const s = await RawSocket.open(gw.url, a.token);
    const raw = (s.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause(); // stop reading: answers pile up in the kernel, then in the gateway
    // Unknown methods are answered at once, without the database: each answer is ~100 bytes.
    const frame = JSON.stringify({ jsonrpc: '2.0', id: 'x'.repeat(200), method: 'NoSuchMethod' });
    let sent = 0;
    const pump = async () => {
      while (sent < 200_000 && s.isOpen) {
        for (let i = 0; i < 1000; i++) s.send(frame);
        sent += 1000;
        await new Promise((r) => setImmediate(r));
      }
    };
    await Promise.race([pump(), gw.waitForLog((e) => String(e['msg']).includes('4008'), 30_000)]);
    await gw.waitForLog((e) => String(e['msg']).includes('4008'), 30_000);
    raw.resume();
    const closed = await s.waitClosed(20_000);
    assert.equal(closed.code, 4008);
  });
});
