// SPEC §3 503 row (database unreachable, draining), §5 heartbeat, §7 database outage and shutdown:
// the real process against a database that goes away, a silent peer, and SIGTERM.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CloseCode, RPC_PATH } from '@agentgate/shared';
import { connect } from '../../gateway/src/store/db.ts';
import { connectAgent, RawSocket, rpc } from '../helpers/agent-socket.ts';
import { createFixture } from '../helpers/db-fixtures.ts';
import { readAgent, readLastUsedAt, readStats } from '../helpers/db-reads.ts';
import { freshDatabase, serverUrl, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { debugSessions, type HttpAnswer, httpRequest } from '../helpers/http.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { eventually, sleep } from '../helpers/wait.ts';

function assert503(a: HttpAnswer, what: string): void {
  assert.equal(a.upgraded, false, `${what}: a socket was created`);
  assert.equal(a.status, 503, `${what}: ${a.status} ${a.body}`);
  assert.ok(a.headers['retry-after'] !== undefined, `${what}: no Retry-After header`);
  assert.equal(typeof (a.json as { message?: unknown } | undefined)?.message, 'string', `${what}: body ${a.body}`);
}

describe('§7 database outage', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  let proxy: TcpProxy;

  before(async () => {
    db = await freshDatabase();
    // The gateway reaches PostgreSQL through a proxy that the test can cut; the test itself does not.
    proxy = await startTcpProxy(db.url);
    gw = await startGateway({ databaseUrl: proxy.rewrite(db.url) });
  });
  after(async () => {
    await proxy?.restore().catch(() => {});
    await gw?.stop();
    await proxy?.close();
    await db?.drop();
  });

  test('503 with Retry-After within 3 s; sessions stay; the buffered frame is committed on return', async () => {
    const live = await createFixture(db.sql);
    const later = await createFixture(db.sql);
    const c = await connectAgent(gw.url, live.token, { requestTimeoutMs: 40_000 });
    try {
      await c.updateStats({ rxBytes: 1 });
      assert.equal((await httpRequest(`${gw.httpUrl}/readyz`)).status, 200);

      await proxy.cut();
      const tCut = Date.now();
      try {
        await eventually(
          '/readyz 503',
          async () => (await httpRequest(`${gw.httpUrl}/readyz`, { timeoutMs: 3500 })).status === 503,
          { timeoutMs: 3500, intervalMs: 100 },
        );
        assert.ok(Date.now() - tCut <= 3500, `/readyz took ${Date.now() - tCut} ms to notice`);
        const t1 = Date.now();
        const up = await httpRequest(`${gw.httpUrl}${RPC_PATH}`, {
          headers: { 'Coder-Session-Token': later.token },
          upgrade: true,
          timeoutMs: 3500,
        });
        assert503(up, 'upgrade while the database is down');
        assert.ok(Date.now() - t1 <= 3000, 'the refusal took more than 3 s');
        // 503 is checked before the token.
        assert503(await httpRequest(`${gw.httpUrl}${RPC_PATH}`, { upgrade: true, timeoutMs: 3500 }), 'no token');
        assert.equal((await httpRequest(`${gw.httpUrl}/healthz`)).status, 200, '/healthz must stay 200');

        // The live session stays connected and its frame waits in the buffer.
        assert.equal(c.connected, true, 'the session was dropped with the database');
        const pending = c.updateStats({ rxBytes: 2 });
        let settled: string | undefined;
        pending.then(
          (v) => {
            settled = `result ${JSON.stringify(v)}`;
          },
          (e: Error) => {
            settled = `${e.name} ${e.message} ${JSON.stringify((e as { data?: unknown }).data)}`;
          },
        );
        await sleep(700);
        assert.equal(settled, undefined, 'a frame was answered while the database was down');
        assert.equal(c.connected, true);

        await proxy.restore();
        assert.deepEqual(await pending, { reportInterval: '30s' });
      } finally {
        await proxy.restore().catch(() => {});
      }
      const rows = await readStats(db.sql, live.agentId);
      assert.deepEqual(rows.map((r) => r.rx_bytes).sort(), [1, 2], 'the buffered frame was not committed exactly once');
      await eventually('/readyz 200 again', async () => (await httpRequest(`${gw.httpUrl}/readyz`)).status === 200, {
        timeoutMs: 5000,
      });
      const c2 = await connectAgent(gw.url, later.token);
      await c2.updateStats({ rxBytes: 3 });
      await c2.close();
    } finally {
      await c.close();
    }
  });

  test('a database that refuses connections (as during a restart) is an outage too: frames wait, then commit', async () => {
    const live = await createFixture(db.sql);
    const c = await connectAgent(gw.url, live.token, { requestTimeoutMs: 40_000 });
    const dbName = new URL(db.url).pathname.slice(1);
    const admin = connect(serverUrl(), { max: 1 });
    try {
      await c.updateStats({ rxBytes: 10 });
      // Every backend of the database is terminated (57P01) and new ones are refused with a FATAL.
      await admin.unsafe(`alter database ${dbName} allow_connections false`);
      await admin.unsafe('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [dbName]);
      await eventually(
        '/readyz 503',
        async () => (await httpRequest(`${gw.httpUrl}/readyz`, { timeoutMs: 3500 })).status === 503,
        { timeoutMs: 3500, intervalMs: 100 },
      );
      const pending = c.updateStats({ rxBytes: 20 });
      let settled: string | undefined;
      pending.then(
        (v) => {
          settled = `result ${JSON.stringify(v)}`;
        },
        (e: Error) => {
          settled = `${e.name} ${e.message}`;
        },
      );
      await sleep(700);
      assert.equal(settled, undefined, 'a frame was answered while the database refused connections');
      assert.equal(c.connected, true);
      await admin.unsafe(`alter database ${dbName} allow_connections true`);
      assert.deepEqual(await pending, { reportInterval: '30s' });
      const rows = await readStats(db.sql, live.agentId);
      assert.deepEqual(
        rows.map((r) => r.rx_bytes).sort((a, b) => a - b),
        [10, 20],
      );
    } finally {
      await admin.unsafe(`alter database ${dbName} allow_connections true`).catch(() => {});
      await admin.end();
      await c.close();
    }
  });

  test('§5 a refresh that fails clears the identity and warns; the identity returns with the database', async () => {
    const admin = `adm-${randomBytes(6).toString('hex')}`;
    const g = await startGateway({
      databaseUrl: proxy.rewrite(db.url),
      args: ['--workspace-refresh-interval', '1s', '--admin-token', admin],
    });
    const fx = await createFixture(db.sql);
    const c = await connectAgent(g.url, fx.token, { requestTimeoutMs: 40_000 });
    const session = async () => (await debugSessions(g.httpUrl, admin)).find((s) => s.agentId === fx.agentId);
    try {
      await eventually('a first refresh', async () => (await session())?.lastRefreshOutcome === 'unchanged', {
        timeoutMs: 3000,
      });
      const linesBefore = g.lines.length;
      await proxy.cut();
      try {
        const failed = await eventually(
          'a failed refresh',
          async () => {
            const s = await session();
            return s?.lastRefreshOutcome === 'error' && s;
          },
          { timeoutMs: 4000 },
        );
        assert.equal(failed.identityCached, false, 'the identity was kept after a failed refresh');
        const warned = g.lines.slice(linesBefore).some((l) => {
          try {
            return (JSON.parse(l) as { level?: number }).level === 40;
          } catch {
            return false;
          }
        });
        assert.ok(warned, 'no warning logged for the failed refresh');
        assert.equal(c.connected, true, 'the session was closed by a failed refresh');
      } finally {
        await proxy.restore();
      }
      const back = await eventually(
        'the identity back after the database returned',
        async () => {
          const s = await session();
          return s?.identityCached === true && s.lastRefreshOutcome !== 'error' && s;
        },
        { timeoutMs: 6000 },
      );
      // Refilling a cleared identity may count as a change.
      assert.ok(['unchanged', 'changed'].includes(back.lastRefreshOutcome), back.lastRefreshOutcome);
      assert.deepEqual(await c.updateStats({ rxBytes: 1 }), { reportInterval: '30s' });
    } finally {
      await c.close();
      await g.stop();
    }
  });
});

describe('§5 heartbeat and §7 shutdown', () => {
  const HEARTBEAT_MS = 500;
  let db: TestDatabase;
  let gw: GatewayProcess;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({
      databaseUrl: db.url,
      args: ['--heartbeat-interval', `${HEARTBEAT_MS}ms`, '--shutdown-timeout', '3s'],
    });
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
  });

  test('heartbeat: pings every interval; a silent peer is dropped after 1.5 to 2 intervals, a live one stays', async () => {
    const silentFx = await createFixture(db.sql);
    const liveFx = await createFixture(db.sql);
    const live = await connectAgent(gw.url, liveFx.token);

    // A peer that completes the handshake and then never sends a byte (no pong).
    const port = Number(new URL(gw.httpUrl).port);
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    let received = Buffer.alloc(0);
    let pings = 0;
    let handshakeDone = false;
    const closed = new Promise<number>((resolve) => sock.on('close', () => resolve(Date.now())));
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      if (!handshakeDone) {
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) return;
        assert.match(received.subarray(0, end).toString(), /^HTTP\/1\.1 101/);
        handshakeDone = true;
        received = received.subarray(end + 4);
      }
      // Server frames are unmasked; count pings (0x89) among complete small frames.
      while (received.length >= 2) {
        const len = received[1]! & 0x7f;
        if (len > 125 || received.length < 2 + len) break;
        if (received[0] === 0x89) pings++;
        received = received.subarray(2 + len);
      }
    });
    const key = randomBytes(16).toString('base64');
    sock.write(
      `GET ${RPC_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nCoder-Session-Token: ${silentFx.token}\r\n\r\n`,
    );
    const lastSent = Date.now();
    const closedAt = await Promise.race([closed, sleep(6 * HEARTBEAT_MS).then(() => 0)]);
    sock.destroy();
    assert.ok(handshakeDone, 'the silent peer was never upgraded');
    assert.ok(closedAt > 0, `a silent peer was still connected after ${6 * HEARTBEAT_MS} ms`);
    const silence = closedAt - lastSent;
    assert.ok(silence >= 1.5 * HEARTBEAT_MS - 20, `dropped after only ${silence} ms of silence`);
    assert.ok(silence <= 3 * HEARTBEAT_MS + 300, `dropped only after ${silence} ms of silence`);
    assert.ok(pings >= 1, 'no ping was sent to the silent peer');

    // The client that answers pings is still there after 4 intervals.
    await sleep(Math.max(0, 4 * HEARTBEAT_MS - (Date.now() - lastSent)));
    assert.equal(live.connected, true, 'a peer that answers pings was dropped');
    assert.deepEqual(await live.updateStats(), { reportInterval: '30s' });
    await live.close();
  });

  test('SIGTERM: 503 at once, sockets closed with 1001 spread out, last usage flush, exit 0', async () => {
    const fxs = await Promise.all(Array.from({ length: 8 }, () => createFixture(db.sql)));
    const newcomer = await createFixture(db.sql);
    const socks = await Promise.all(fxs.map((fx) => RawSocket.open(gw.url, fx.token)));
    // Activity just before the signal: only the last usage flush can write it (default 60 s period).
    const ack = await socks[0]!.request(rpc(1, 'UpdateStats', { stats: { connectionCount: 1 } }));
    assert.deepEqual(ack['result'], { reportInterval: '30s' });

    const t0 = Date.now();
    const exited = gw.stop('SIGTERM');
    const r = await eventually(
      '/readyz 503 during the drain',
      async () => {
        const a = await httpRequest(`${gw.httpUrl}/readyz`);
        return a.status === 503 && a;
      },
      { timeoutMs: 1000, intervalMs: 20 },
    );
    assert.equal(r.status, 503);
    assert503(
      await httpRequest(`${gw.httpUrl}${RPC_PATH}`, {
        headers: { 'Coder-Session-Token': newcomer.token },
        upgrade: true,
      }),
      'upgrade during the drain',
    );
    assert503(await httpRequest(`${gw.httpUrl}${RPC_PATH}`, { upgrade: true }), 'no token during the drain');

    // When each close frame arrives (the socket leaves OPEN), not when the TCP connection ends.
    const closingAt: number[] = socks.map(() => 0);
    await eventually(
      'every socket to get its close frame',
      () => {
        socks.forEach((s, i) => {
          if (closingAt[i] === 0 && !s.isOpen) closingAt[i] = Date.now();
        });
        return closingAt.every((x) => x > 0);
      },
      { timeoutMs: 5000, intervalMs: 5 },
    );
    const closes = await Promise.all(socks.map((s) => s.waitClosed(5000)));
    for (const c of closes) assert.equal(c.code, CloseCode.GoingAway);
    const times = closingAt.map((at) => at - t0);
    // min(5 s, 3 s / 3) = 1 s of spread.
    assert.ok(Math.max(...times) <= 1000 + 1500, `last close ${Math.max(...times)} ms after SIGTERM`);
    assert.ok(
      Math.max(...times) - Math.min(...times) >= 150,
      `the closes were not spread out: ${times.join(', ')} ms after SIGTERM`,
    );

    const code = await exited;
    assert.equal(code, 0, `exit code ${code}`);
    assert.ok(Date.now() - t0 <= 3000 + 2000, `exit took ${Date.now() - t0} ms (timeout 3 s)`);

    const agents = await Promise.all(fxs.map((fx) => readAgent(db.sql, fx.agentId)));
    const lastUsed = await readLastUsedAt(db.sql, fxs[0]!.workspaceId);
    const problems: string[] = [];
    const missing = agents.filter((a) => a.disconnectedAtMs === null).length;
    if (missing) problems.push(`disconnected_at is null for ${missing} of ${agents.length} agents after exit`);
    if (lastUsed === null) problems.push('last_used_at of the active workspace was not flushed at exit');
    assert.deepEqual(problems, []);
  });
});
