// SPEC §7 startup through the real CLI: a database that cannot be reached, refuses the credentials,
// lacks the database, or does not speak PostgreSQL's protocol gets one line naming the cause (the
// password masked) and a hint, and a non-zero exit within 15 s — never a stack trace, never a busy
// loop; a signal during the database check stops the process at once; an address in use is
// reported before an embedded cluster is made.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CliResult, runCli } from '../helpers/cli.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { startGateway } from '../helpers/gateway-process.ts';
import { withTimeout } from '../helpers/wait.ts';

const SECRET = 'hunter2-not-for-logs';

/** A loopback server that does something other than PostgreSQL with each connection; counts them. */
async function fakeServer(
  behave: (s: net.Socket) => void,
): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    open.add(s);
    s.on('error', () => {});
    s.on('close', () => open.delete(s));
    behave(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    async close() {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Exactly one line on stderr, nothing that looks like a stack, the password never shown. */
function oneLine(r: CliResult): string {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr + r.stdout, /^\s+at /m, 'a stack trace');
  assert.ok(!(r.stderr + r.stdout).includes(SECRET), 'the password was printed');
  return lines[0]!;
}

async function timed(args: string[]): Promise<CliResult & { ms: number }> {
  const t0 = Date.now();
  const r = await runCli(args);
  return { ...r, ms: Date.now() - t0 };
}

describe('§7 startup: a database that cannot be used is one line and a non-zero exit', () => {
  let db: TestDatabase;
  before(async () => {
    db = await freshDatabase();
  });
  after(async () => {
    await db?.drop();
  });

  const serve = (url: string) =>
    timed(['serve', '--database-url', url, '--listen', '127.0.0.1:0', '--log-level', 'warn']);

  test('a server that answers HTTP and closes: "does not speak PostgreSQL\'s protocol", no busy loop', async () => {
    const http = await fakeServer((s) => s.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'));
    try {
      const r = await serve(`postgres://u:${SECRET}@127.0.0.1:${http.port}/db`);
      assert.equal(r.code, 1);
      assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
      const line = oneLine(r);
      assert.match(line, /does not speak PostgreSQL's protocol/);
      assert.match(line, /HTTP\/1\.1 400 Bad Request/);
      assert.match(line, /postgres:\/\/u:\*\*\*@127\.0\.0\.1/);
      assert.ok(http.connections() <= 3, `${http.connections()} connections: a reconnect loop`);
    } finally {
      await http.close();
    }
  });

  test('a server that accepts and resets: one line naming ECONNRESET', async () => {
    const reset = await fakeServer((s) => s.resetAndDestroy());
    try {
      const r = await serve(`postgres://u:${SECRET}@127.0.0.1:${reset.port}/db`);
      assert.equal(r.code, 1);
      assert.match(oneLine(r), /reset the connection \(ECONNRESET\)/);
    } finally {
      await reset.close();
    }
  });

  test('nothing listening: one line naming ECONNREFUSED', async () => {
    const gone = await fakeServer(() => {});
    const port = gone.port;
    await gone.close();
    const r = await serve(`postgres://u:${SECRET}@127.0.0.1:${port}/db`);
    assert.equal(r.code, 1);
    assert.match(oneLine(r), /nothing listens at 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });

  test("a wrong password (serve and migrate): the server's words, the URL masked, a hint", async () => {
    const u = new URL(db.url);
    u.password = SECRET;
    for (const args of [
      ['serve', '--database-url', u.toString(), '--listen', '127.0.0.1:0'],
      ['migrate', '--database-url', u.toString()],
    ]) {
      const r = await timed(args);
      assert.equal(r.code, 1, r.stderr);
      const line = oneLine(r);
      assert.match(line, /password authentication failed/);
      assert.match(line, /check the user and password/);
    }
  });

  test('a database that does not exist: one line with a hint', async () => {
    const u = new URL(db.url);
    u.pathname = '/nosuchdb_agentgate';
    const r = await serve(u.toString());
    assert.equal(r.code, 1);
    const line = oneLine(r);
    assert.match(line, /database "nosuchdb_agentgate" does not exist/);
    assert.match(line, /createdb/);
  });

  test('SIGINT while the database does not answer: "shutting down" and exit 0 at once', async () => {
    const silent = await fakeServer((s) => s.resume());
    try {
      const gw = await startGateway({
        databaseUrl: `postgres://u:${SECRET}@127.0.0.1:${silent.port}/db`,
        untilListening: false,
      });
      await gw.waitForLog((e) => e['msg'] === 'using DATABASE_URL');
      const t0 = Date.now();
      gw.signal('SIGINT');
      const exit = await withTimeout(gw.exited, 3000, 'the exit after SIGINT');
      assert.deepEqual(exit, { code: 0, signal: null }, gw.lines.join('\n'));
      assert.ok(Date.now() - t0 < 3000);
      assert.ok(gw.lines.some((l) => l.includes('"msg":"shutting down"')));
    } finally {
      await silent.close();
    }
  });
});

describe('§7 startup: an address in use is reported before an embedded cluster is made', () => {
  test('no data directory is created when the port is taken', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    const work = mkdtempSync(path.join(tmpdir(), 'agentgate-inuse-'));
    try {
      const dataDir = path.join(work, 'state');
      const r = await timed(['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`]);
      assert.equal(r.code, 2);
      assert.match(oneLine(r), /address in use/);
      assert.equal(existsSync(dataDir), false, 'a state directory was made for a gateway that cannot listen');
    } finally {
      await new Promise((r) => taken.close(r));
      rmSync(work, { recursive: true, force: true });
    }
  });
});
