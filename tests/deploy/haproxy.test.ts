// deploy/haproxy/haproxy.cfg (SPEC §11). Its numbers against the gateway's defaults (read by the
// gateway's own config loader), on any machine; and, where Debian's haproxy is installed, a real
// HAProxy in front of two real gateways on one test database, on loopback (the config's addresses
// moved there, its logic as committed). That shows: agents spread over both replicas; when one
// drains (SIGTERM), /readyz takes it out of HAProxy (marked down by the health check's 503 while it
// still runs) and its agents move to the other without a refused frame: every frame is
// acknowledged, some after the agent reconnected, no frame is answered -32002, -32603 or any other
// error, and no upgrade is refused (HAProxy retries the draining replica's 503 on the other).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AgentClient, CallAbortedError, CloseCode, RPC_PATH, RpcCallError } from '@agentgate/shared';
import { loadConfig } from '../../gateway/src/config.ts';
import { createFixture, type DbFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { type HaproxyProcess, startHaproxy } from '../helpers/haproxy.ts';
import { debugSessions } from '../helpers/http.ts';
import { findTool } from '../helpers/system-tool.ts';
import { eventually, sleep, withTimeout } from '../helpers/wait.ts';

const CONFIG = readFileSync(fileURLToPath(new URL('../../deploy/haproxy/haproxy.cfg', import.meta.url)), 'utf8');
const HAPROXY = findTool('haproxy');
const BACKEND = 'agentgate';
const AGENTS = 16;
const ADMIN = 'haproxy-test-admin-token';

/** The lines of `section` (e.g. `backend agentgate`), comments and blank lines left out. */
function sectionLines(config: string, section: string): string[] {
  const out: string[] = [];
  let inside = false;
  for (const raw of config.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    if (!/^\s/.test(raw)) inside = line === section;
    else if (inside) out.push(line);
  }
  return out;
}

/** An HAProxy time (`500ms`, `1s`, `1h`, a bare number of milliseconds) in milliseconds. */
function haproxyMs(t: string): number {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(t);
  assert.ok(m, `not an HAProxy time: ${t}`);
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']!;
  return Number(m[1]) * unit;
}

describe('deploy/haproxy/haproxy.cfg agrees with the gateway', () => {
  const defaults = loadConfig([], {});
  const backend = sectionLines(CONFIG, `backend ${BACKEND}`);
  const setting = (lines: string[], key: string) => lines.find((l) => l.startsWith(`${key} `))?.slice(key.length + 1);
  /** A keyword's value on the `default-server` line. */
  const serverOption = (key: string) => {
    const words = setting(backend, 'default-server')?.split(/\s+/) ?? [];
    const i = words.indexOf(key);
    return i === -1 ? undefined : words[i + 1];
  };

  test('health checks ask /readyz and want 200', () => {
    assert.equal(setting(backend, 'option httpchk'), 'GET /readyz');
    assert.equal(setting(backend, 'http-check expect'), 'status 200');
    assert.ok(setting(backend, 'default-server')?.split(/\s+/).includes('check'), 'every server is checked');
    assert.ok(!backend.some((l) => l.includes('on-marked-down')), 'a replica marked down drains its own sessions');
  });

  test('a draining replica is out before most of its sessions are closed', () => {
    // The drain closes sessions over min(5 s, a third of the shutdown timeout) (SPEC §7); the check
    // must see the 503 and take the replica out (fall checks, each up to `inter` apart) well within it.
    const spreadMs = Math.min(5000, defaults.shutdownTimeoutMs / 3);
    const outMs = (Number(serverOption('fall')) + 1) * haproxyMs(serverOption('inter') ?? '2s');
    assert.ok(outMs <= spreadMs / 1.5, `out after ${outMs} ms at worst; sessions close over ${spreadMs} ms`);
    // Until then, upgrades the draining replica answers 503 are sent to another one.
    assert.ok(setting(backend, 'retry-on')?.split(/\s+/).includes('503'), 'retry-on 503');
    assert.equal(setting(backend, 'option redispatch'), '1', 'each retry may pick another replica');
  });

  test('WebSockets outlive two heartbeats, and a replica gets no more than its --max-connections', () => {
    const tunnel = haproxyMs(setting(sectionLines(CONFIG, 'defaults'), 'timeout tunnel') ?? '0');
    assert.ok(tunnel > 2 * defaults.heartbeatIntervalMs, `timeout tunnel ${tunnel} ms`);
    assert.ok(Number(serverOption('maxconn')) <= defaults.maxConnections, 'server maxconn <= --max-connections');
  });
});

describe('two gateways behind HAProxy (deploy/haproxy/haproxy.cfg)', {
  skip: HAPROXY ? false : 'skipped: haproxy is not installed (apt-get install haproxy)',
}, () => {
  let db: TestDatabase;
  let fixtures: DbFixture[];
  const gws: Record<'gw1' | 'gw2', GatewayProcess | undefined> = { gw1: undefined, gw2: undefined };
  let hp: HaproxyProcess;
  const clients: AgentClient[] = [];

  const agentsOn = async (gw: GatewayProcess) =>
    new Set((await debugSessions(gw.httpUrl, ADMIN)).map((s) => s.agentId));

  before(async () => {
    db = await freshDatabase();
    fixtures = await Promise.all(Array.from({ length: AGENTS }, () => createFixture(db.sql)));
    // The default --shutdown-timeout (30 s): closes spread over 5 s, as in production.
    [gws.gw1, gws.gw2] = await Promise.all(
      [1, 2].map(() => startGateway({ databaseUrl: db.url, args: ['--admin-token', ADMIN] })),
    );
    hp = await startHaproxy(HAPROXY!, CONFIG, {
      gw1: new URL(gws.gw1!.httpUrl).host,
      gw2: new URL(gws.gw2!.httpUrl).host,
    });
    for (const name of ['gw1', 'gw2']) {
      await eventually(`${name} to be UP in HAProxy`, async () => (await hp.server(BACKEND, name))['status'] === 'UP');
    }
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await hp?.stop();
    await Promise.all(Object.values(gws).map((g) => g?.stop()));
    await db?.drop();
  });

  test('agents spread over both replicas', async () => {
    for (const fx of fixtures) {
      const c = new AgentClient({ url: `${hp.origin}${RPC_PATH}`, token: fx.token, backoffInitialMs: 200 });
      await c.connect();
      clients.push(c);
    }
    const [on1, on2] = [await agentsOn(gws.gw1!), await agentsOn(gws.gw2!)];
    assert.equal(on1.size + on2.size, AGENTS, `every agent on one replica: ${on1.size} + ${on2.size}`);
    // leastconn: each new socket goes to the replica that holds fewer.
    assert.ok(Math.abs(on1.size - on2.size) <= 2, `spread ${on1.size} / ${on2.size}`);
  });

  test('a drained replica is taken out by /readyz and its agents move to the other, every frame acknowledged', async (t) => {
    const gw1 = gws.gw1!;
    const gw2 = gws.gw2!;
    const movers = await agentsOn(gw1);
    assert.ok(movers.size > 0);
    const acked = clients.map(() => 0);
    /** Frames whose socket closed before the answer and that were sent again after the reconnect. */
    let resent = 0;
    const errors: string[] = [];
    const refusals: number[] = [];
    const closes: number[] = [];
    for (const c of clients) {
      c.on('refused', (e) => refusals.push(e.status));
      c.on('close', (code) => closes.push(code));
    }
    let sending = true;

    /** Sends one frame until it is acknowledged, across reconnects; an error answer is recorded. */
    const sendAcked = async (c: AgentClient, i: number, seq: number) => {
      for (;;) {
        try {
          await c.updateStats({ rxBytes: seq, connectionCount: 1 });
          acked[i]!++;
          return;
        } catch (e) {
          if (e instanceof RpcCallError) {
            errors.push(`agent ${i} frame ${seq}: ${e.code} ${e.message}`);
            return;
          }
          if (!(e instanceof CallAbortedError && e.reason === 'closed')) throw e;
          if (c.lastCloseCode !== 0 && !movers.has(fixtures[i]!.agentId)) {
            errors.push(`agent ${i} on the replica that stays was closed with ${c.lastCloseCode}`);
          }
          resent++;
          await withTimeout(
            new Promise<void>((resolve) => (c.connected ? resolve() : c.once('open', () => resolve()))),
            20_000,
            `agent ${i} to reconnect`,
          );
        }
      }
    };
    const senders = clients.map(async (c, i) => {
      for (let seq = 1; sending; seq++) {
        await sendAcked(c, i, seq);
        await sleep(50); // pacing: about 20 frames/s per agent
      }
    });
    const ackedBy = async (n: number[], what: string) =>
      eventually(what, () => acked.every((a, i) => a >= n[i]!), { timeoutMs: 20_000 });
    await ackedBy(
      clients.map(() => 3),
      'every agent to have frames acknowledged',
    );

    gw1.signal('SIGTERM');
    // HAProxy's health check gets 503 from /readyz and marks gw1 down while it still drains.
    const down = await eventually(
      'HAProxy to mark gw1 down',
      async () => {
        const row = await hp.server(BACKEND, 'gw1');
        return row['status'] === 'DOWN' ? { row, gw1Running: gw1.child.exitCode === null } : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    assert.equal(down.gw1Running, true, 'gw1 was taken out while it still ran, not because it exited');
    assert.equal(down.row['check_status'], 'L7STS', 'taken out by an HTTP status');
    assert.equal(down.row['check_code'], '503', 'the 503 of /readyz');
    assert.ok(
      hp.lines.some((l) => /Server agentgate\/gw1 is DOWN, reason: Layer7 wrong status, code: 503/.test(l.text)),
      hp.lines.map((l) => l.text).join('\n'),
    );
    assert.equal((await hp.server(BACKEND, 'gw2'))['status'], 'UP');

    const exit = await withTimeout(gw1.exited, 40_000, 'gw1 to finish its drain');
    assert.deepEqual(exit, { code: 0, signal: null }, gw1.lines.slice(-20).join('\n'));
    await eventually('every agent to be on gw2', async () => (await agentsOn(gw2)).size === AGENTS, {
      timeoutMs: 20_000,
    });
    const before = [...acked];
    await ackedBy(
      before.map((n) => n + 3),
      'every agent to have frames acknowledged on gw2',
    );
    sending = false;
    await Promise.all(senders);

    assert.deepEqual(errors, [], 'no frame was refused');
    assert.deepEqual(refusals, [], 'no upgrade was refused: HAProxy retried them on gw2');
    // Only gw1's agents were closed, each once with 1001, and each came back.
    assert.deepEqual(
      closes.sort(),
      [...movers].map(() => CloseCode.GoingAway),
    );
    assert.ok(resent <= movers.size, `${resent} frames sent again for ${movers.size} moved agents`);
    const total = acked.reduce((a, b) => a + b, 0);
    const [counted] = await db.sql<{ rows: number }[]>`select count(*)::int as rows from workspace_agent_stats`;
    const rows = counted!.rows;
    // Acknowledged means stored; a frame sent again may have been stored the first time too.
    assert.ok(rows >= total && rows <= total + resent, `${rows} rows for ${total} acknowledged frames`);
    t.diagnostic(`${movers.size} agents moved; ${total} frames acknowledged, ${resent} sent again after a reconnect`);
  });
});
