// SPEC §7 Signals, with real signals on the real process: Ctrl-C on `npm start` delivers SIGINT
// twice (terminal and npm); a repeat within 1 s is the same request and still drains (1001, exit
// 0); a later second signal skips the rest of the drain; a signal during startup stops what was
// started (the embedded PostgreSQL too); the process never dies of a signal without `shutting down`.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CloseCode } from '@agentgate/shared';
import { removeEmbeddedCluster, runningPostmaster } from '../../gateway/src/embedded/postgres.ts';
import { RawSocket, rpc } from '../helpers/agent-socket.ts';
import { createFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { sleep, withTimeout } from '../helpers/wait.ts';

const said = (gw: GatewayProcess, msg: string) =>
  gw.lines.filter((l) => {
    try {
      return (JSON.parse(l) as { msg?: string }).msg === msg;
    } catch {
      return false;
    }
  }).length;

async function openAgents(db: TestDatabase, url: string, n: number): Promise<RawSocket[]> {
  const out: RawSocket[] = [];
  for (let i = 0; i < n; i++) {
    const fx = await createFixture(db.sql);
    const s = await RawSocket.open(url, fx.token);
    const answer = await s.request(rpc(1, 'UpdateStats', { stats: { rxBytes: 1 } }));
    assert.ok('result' in answer, JSON.stringify(answer));
    out.push(s);
  }
  return out;
}

describe('§7 signals', () => {
  let db: TestDatabase;
  const started: GatewayProcess[] = [];
  const start = async (o: Parameters<typeof startGateway>[0]) => {
    const gw = await startGateway(o);
    started.push(gw);
    return gw;
  };

  before(async () => {
    db = await freshDatabase();
  });
  after(async () => {
    for (const gw of started) await gw.stop('SIGKILL');
    await db?.drop();
  });

  test('SIGINT twice 50 ms apart (Ctrl-C on npm start): one drain, the agent gets 1001, exit 0', async () => {
    const gw = await start({ databaseUrl: db.url });
    const [agent] = await openAgents(db, gw.url, 1);
    gw.signal('SIGINT');
    await sleep(50);
    gw.signal('SIGINT');
    const exit = await withTimeout(gw.exited, 15_000, 'exit after SIGINT');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.lines.slice(-20).join('\n'));
    assert.equal((await agent!.waitClosed()).code, CloseCode.GoingAway);
    assert.equal(said(gw, 'shutting down'), 1);
    assert.equal(said(gw, 'stopped'), 1);
    // A clean shutdown warns of nothing (the pools it ends are not a database outage).
    const warnings = gw.lines.filter((l) => {
      try {
        return (JSON.parse(l) as { level: number }).level >= 40;
      } catch {
        return false;
      }
    });
    assert.deepEqual(warnings, []);
  });

  test('a second SIGINT 1.5 s later, during a slow drain, skips the rest of it (exit non-zero, logged)', async () => {
    // Four sessions are closed over 5 s (the spread of a 30 s budget): the drain is still going at 1.5 s.
    const gw = await start({ databaseUrl: db.url, args: ['--shutdown-timeout', '30s'] });
    const agents = await openAgents(db, gw.url, 4);
    const t0 = Date.now();
    gw.signal('SIGINT');
    await sleep(1500);
    gw.signal('SIGINT');
    const exit = await withTimeout(gw.exited, 10_000, 'exit after the second SIGINT');
    const tookMs = Date.now() - t0;
    assert.notEqual(exit.code, 0, 'skipping the drain is not a clean exit');
    assert.equal(exit.signal, null, 'the process died of the signal');
    assert.ok(tookMs < 3500, `the drain was not cut short: exit after ${tookMs} ms`);
    const codes = (await Promise.all(agents.map((a) => a.waitClosed()))).map((c) => c.code);
    assert.equal(codes[0], CloseCode.GoingAway, 'the first session is closed at once by the drain');
    assert.notEqual(codes[3], CloseCode.GoingAway, `the last session was not cut off: ${codes}`);
    assert.equal(said(gw, 'shutting down'), 1);
    assert.equal(said(gw, 'second signal; skipping the rest of the drain'), 1);
    assert.equal(said(gw, 'stopped without finishing the drain'), 1);
  });

  test('a signal during startup is handled: "shutting down", exit 0, never killed by it', async () => {
    const gw = await start({ databaseUrl: db.url, untilListening: false });
    await gw.waitForLog((e) => e['msg'] === 'using DATABASE_URL');
    gw.signal('SIGTERM');
    const exit = await withTimeout(gw.exited, 15_000, 'exit after SIGTERM during startup');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.lines.join('\n'));
    assert.equal(said(gw, 'shutting down'), 1);
  });

  test('--workers 2: Ctrl-C reaches the whole process group twice; the workers drain, agents get 1001, exit 0', async () => {
    const gw = await start({ databaseUrl: db.url, args: ['--workers', '2'], detached: true });
    const agents = await openAgents(db, gw.url, 4);
    gw.signal('SIGINT', { group: true });
    await sleep(50);
    gw.signal('SIGINT', { group: true });
    const exit = await withTimeout(gw.exited, 20_000, 'exit after Ctrl-C');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.lines.slice(-30).join('\n'));
    for (const a of agents) assert.equal((await a.waitClosed()).code, CloseCode.GoingAway);
    assert.equal(said(gw, 'shutting down'), 1, 'only the primary decides');
    assert.equal(said(gw, 'worker drained'), 2);
    assert.equal(said(gw, 'worker exited; restarting it'), 0, 'a worker died of the Ctrl-C');
  });
  test("--workers 2: a second SIGINT 1.5 s later skips the rest of every worker's drain", async () => {
    const gw = await start({ databaseUrl: db.url, args: ['--workers', '2', '--shutdown-timeout', '30s'] });
    // Two sessions per worker, closed 2.5 s apart by each worker's drain.
    const agents = await openAgents(db, gw.url, 4);
    const t0 = Date.now();
    gw.signal('SIGINT');
    await sleep(1500);
    gw.signal('SIGINT');
    const exit = await withTimeout(gw.exited, 10_000, 'exit after the second SIGINT');
    const tookMs = Date.now() - t0;
    assert.notEqual(exit.code, 0);
    assert.equal(exit.signal, null);
    assert.ok(tookMs < 4000, `the drain was not cut short: exit after ${tookMs} ms`);
    const codes = (await Promise.all(agents.map((a) => a.waitClosed()))).map((c) => c.code);
    assert.equal(codes.filter((c) => c === CloseCode.GoingAway).length, 2, `close codes ${codes}`);
    assert.equal(said(gw, 'second signal; skipping the rest of the drain'), 1);
    assert.equal(said(gw, 'stopped without finishing the drain'), 1);
  });
});

describe('§7 signals: the embedded PostgreSQL', () => {
  let work: string;
  let gw: GatewayProcess | undefined;

  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'agentgate-signals-'));
    chmodSync(work, 0o755); // as root, PostgreSQL runs as the postgres user and must reach the data dir
  });
  after(async () => {
    await gw?.stop('SIGKILL');
    const pgdata = path.join(work, 'state', 'pgdata');
    const pid = runningPostmaster(pgdata);
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
    removeEmbeddedCluster(pgdata); // as root the cluster lives outside `work`
    rmSync(work, { recursive: true, force: true });
  });

  test('SIGINT while the embedded PostgreSQL starts: it is stopped again, exit 0', async () => {
    gw = await startGateway({ args: ['--data-dir', path.join(work, 'state')], untilListening: false });
    await gw.waitForLog((e) => e['msg'] === 'starting embedded PostgreSQL');
    gw.signal('SIGINT');
    const exit = await withTimeout(gw.exited, 60_000, 'exit after SIGINT during the database start');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.lines.join('\n'));
    assert.equal(said(gw, 'shutting down'), 1);
    assert.equal(runningPostmaster(path.join(work, 'state', 'pgdata')), undefined, 'PostgreSQL was left running');
  });
});
