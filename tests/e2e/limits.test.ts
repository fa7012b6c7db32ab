// Hardening (SPEC §3 revision 3): unauthenticated traffic and sockets are bounded. At most 64 token
// checks at once; a slow check is cancelled on the server and is not a database failure; refused
// connections are released within 2 s; headers must arrive within 10 s; --max-connections answers
// 503; a fifth socket of one agent replaces its oldest (4009); the SDK stops after a 401.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { AgentClient, CloseCode, ConnectRefusedError, RPC_PATH } from '@agentgate/shared';
import { connectAgent } from '../helpers/agent-socket.ts';
import { createFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { httpRequest } from '../helpers/http.ts';
import { authCounters } from '../helpers/prometheus.ts';
import { eventually, sleep, withTimeout } from '../helpers/wait.ts';

/** Open file descriptors of a process (sockets included). */
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

function upgradeRequest(port: number, token: string): string {
  return (
    `GET ${RPC_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
    `Coder-Session-Token: ${token}\r\n\r\n`
  );
}

/** A raw TCP client that never closes its end; resolves with what the server sent first. */
function halfOpenClient(port: number, request: string): Promise<{ socket: net.Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    socket.once('connect', () => socket.write(request));
    socket.once('data', (d) => resolve({ socket, head: d.toString('latin1') }));
    setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref();
  });
}

const portOf = (gw: GatewayProcess) => Number(new URL(gw.httpUrl).port);

describe('limits on unauthenticated traffic and sockets', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url });
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
  });

  test('at most 64 token checks at once: beyond, 503 Retry-After 1 at once, with no query', async () => {
    // Hold every token query behind a lock on workspace_agents.
    const lock = await db.sql.reserve();
    await lock`begin`;
    await lock`lock table workspace_agents in access exclusive mode`;
    try {
      const before = (await authCounters(gw.httpUrl)).connect;
      const started = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 80 }, () =>
          httpRequest(`${gw.httpUrl}${RPC_PATH}`, {
            upgrade: true,
            headers: { 'Coder-Session-Token': randomUUID() },
            timeoutMs: 8000,
          }).then((a) => ({ ...a, ms: Date.now() - started })),
        ),
      );
      const busy = answers.filter((a) => a.status === 503 && a.headers['retry-after'] === '1' && a.ms < 1500);
      assert.equal(
        busy.length,
        16,
        `16 of 80 answered at once: ${answers.map((a) => `${a.status}@${a.ms}`).join(' ')}`,
      );
      for (const a of answers) assert.equal(a.status, 503, 'the checks that waited gave up with 503');
      assert.equal((await authCounters(gw.httpUrl)).connect - before, 64, 'no query for the refused 16');
      // A slow check is not a database failure: the gateway stays ready...
      assert.equal((await httpRequest(`${gw.httpUrl}/readyz`)).status, 200);
      // ...and what gave up was cancelled on the server: nothing of the gateway still waits on the lock.
      await eventually(
        'no gateway query waiting on the lock',
        async () => {
          const [r] = await db.sql<{ n: number }[]>`
            select count(*)::int as n from pg_stat_activity
            where application_name = 'agentgate' and wait_event_type = 'Lock'`;
          return r!.n === 0;
        },
        { timeoutMs: 3000 },
      );
    } finally {
      await lock`rollback`;
      lock.release();
    }
    const fx = await createFixture(db.sql);
    const c = await connectAgent(gw.url, fx.token);
    await c.close();
  });

  test('a refused upgrade is released within 2 s although the client never closes its end', async () => {
    const pid = gw.child.pid!;
    const base = fds(pid);
    const clients = await Promise.all(
      Array.from({ length: 20 }, () => halfOpenClient(portOf(gw), upgradeRequest(portOf(gw), randomUUID()))),
    );
    for (const c of clients) assert.match(c.head, /^HTTP\/1\.1 401 /);
    assert.ok(fds(pid) >= base + 15, 'the refused sockets are open at first');
    await eventually('the refused sockets released', () => fds(pid) <= base + 2, { timeoutMs: 3000 });
    for (const c of clients) c.socket.destroy();
  });

  test('a refused plain request on the agent endpoint is answered with Connection: close and released', async () => {
    const pid = gw.child.pid!;
    const base = fds(pid);
    const c = await halfOpenClient(
      portOf(gw),
      `GET ${RPC_PATH} HTTP/1.1\r\nHost: x\r\nCoder-Session-Token: ${randomUUID()}\r\n\r\n`,
    );
    assert.match(c.head, /^HTTP\/1\.1 401 /);
    assert.match(c.head, /connection: close/i);
    await eventually('the socket released', () => fds(pid) <= base, { timeoutMs: 3000 });
    c.socket.destroy();
  });

  test('request headers must arrive within 10 s', async () => {
    const socket = net.connect({ port: portOf(gw), host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    let answer = '';
    socket.on('data', (d) => {
      answer += d.toString('latin1');
    });
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // never the blank line
    const t0 = Date.now();
    await withTimeout(new Promise((r) => socket.once('end', r)), 13_000, 'the server to close a header-less socket');
    const took = Date.now() - t0;
    assert.ok(took >= 9_000, `closed after ${took} ms, before the 10 s allowance`);
    assert.match(answer, /^HTTP\/1\.1 408 /);
    socket.destroy();
  });

  test('a fifth socket of one agent closes its oldest with 4009; the other four work', async () => {
    const fx = await createFixture(db.sql);
    const clients: AgentClient[] = [];
    for (let i = 0; i < 4; i++) {
      clients.push(await connectAgent(gw.url, fx.token));
      await sleep(5);
    }
    const oldest = clients[0]!;
    const closed = new Promise<number>((r) => oldest.once('close', (code) => r(code)));
    clients.push(await connectAgent(gw.url, fx.token));
    assert.equal(await withTimeout(closed, 2000, 'the oldest to close'), CloseCode.Replaced);
    for (const c of clients.slice(1)) {
      assert.equal(c.connected, true);
      assert.deepEqual(await c.updateStats({ rxBytes: 1 }), { reportInterval: '30s' });
    }
    await Promise.all(clients.map((c) => c.close()));
  });

  test('the SDK does not reconnect after a 401', async () => {
    const before = (await authCounters(gw.httpUrl)).connect;
    const c = new AgentClient({ url: gw.url, token: randomUUID(), backoffInitialMs: 50 });
    let reconnecting = 0;
    c.on('reconnecting', () => reconnecting++);
    await assert.rejects(c.connect(), (e) => e instanceof ConnectRefusedError && e.status === 401);
    await sleep(1500);
    assert.equal(reconnecting, 0);
    assert.equal((await authCounters(gw.httpUrl)).connect - before, 1, 'one token check, no retries');
    await c.close();
  });
});

describe('--max-connections', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url, args: ['--max-connections', '5'] });
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
  });

  test('beyond the limit new connections get 503; under it again, they are served', async () => {
    const held: net.Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const s = net.connect({ port: portOf(gw), host: '127.0.0.1' });
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      held.push(s);
    }
    await sleep(100);
    const over = await httpRequest(`${gw.httpUrl}/healthz`);
    assert.equal(over.status, 503);
    assert.equal(over.headers['retry-after'], '1');
    const fx = await createFixture(db.sql);
    await assert.rejects(connectAgent(gw.url, fx.token), (e) => e instanceof ConnectRefusedError && e.status === 503);
    for (const s of held) s.destroy();
    await eventually('served again', async () => (await httpRequest(`${gw.httpUrl}/healthz`)).status === 200);
  });
});

describe('--metrics-listen', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  let opsUrl: string;
  let metricsUrl: string;
  const ADMIN = `adm-${randomBytes(6).toString('hex')}`;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({
      databaseUrl: db.url,
      args: ['--metrics-listen', '127.0.0.1:0', '--admin-token', ADMIN],
    });
    const line = await gw.waitForLog((e) => e['msg'] === 'listening');
    // The line names the /metrics URL of the second listener (README: Configuration).
    metricsUrl = String(line['metricsUrl']);
    opsUrl = new URL(metricsUrl).origin;
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
  });

  test('/metrics and /debug/* move to the second listener; the agents keep theirs', async () => {
    assert.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.notEqual(opsUrl, gw.httpUrl);
    const auth = { Authorization: `Bearer ${ADMIN}` };
    // The agents' listener: no usernames, no session list.
    assert.equal((await httpRequest(`${gw.httpUrl}/metrics`)).status, 404);
    assert.equal((await httpRequest(`${gw.httpUrl}/debug/sessions`, { headers: auth })).status, 404);
    assert.equal((await httpRequest(`${gw.httpUrl}/healthz`)).status, 200);
    // The operators' listener: metrics and debug, but no agent endpoint.
    const m = await httpRequest(`${opsUrl}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.body, /^agentgate_sessions /m);
    assert.equal((await httpRequest(`${opsUrl}/debug/sessions`, { headers: auth })).status, 200);
    assert.equal((await httpRequest(`${opsUrl}${RPC_PATH}`, { upgrade: true })).status, 404);
    const fx = await createFixture(db.sql);
    const c = await connectAgent(gw.url, fx.token);
    await eventually('the session on the metrics listener', async () =>
      /^agentgate_sessions 1$/m.test((await httpRequest(`${opsUrl}/metrics`)).body),
    );
    await c.close();
  });
});
