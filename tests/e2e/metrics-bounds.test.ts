// SPEC §3 "`/metrics` is bounded" and §4 UpdateStats step 2 caps, on the real gateway (one process,
// then `--workers 2`) with real sockets: names and own label names over 128 bytes are dropped and
// counted without failing the frame; an agent's exported text stays within 64 KiB; at most 4
// scrapes at once (the 5th: 503 Retry-After: 1); a scrape whose client reads nothing for 10 s is
// closed; with workers, the primary streams a stalled scrape only as far as the worker pulls it.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { stalledScrape } from '../../scripts/src/lab/http.ts';
import { seed } from '../../scripts/src/seed.ts';
import { RawSocket, rpc } from '../helpers/agent-socket.ts';
import { createFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { httpRequest } from '../helpers/http.ts';
import { metricSum, scrape } from '../helpers/prometheus.ts';
import { eventually } from '../helpers/wait.ts';

/**
 * Agents whose series fill their 64 KiB: 160 × ~58 KB is a body of about 9 MB, more than twice
 * what the kernel's socket buffers take from a client that stops reading (about 4 MB on loopback).
 */
const AGENTS = 160;
/** Lines of about 8.3 KB (16 labels of 500 bytes): 7 fit in 64 KiB, the 8th is dropped. */
const bigSeries = (i: number) => ({
  name: `big_${i}`,
  type: 'GAUGE',
  value: i,
  labels: Array.from({ length: 16 }, (_, k) => ({ name: `l${k}`, value: `${k}`.padEnd(500, 'v') })),
});
const STALL_MS = 10_000;

async function stats(socket: RawSocket, id: number, params: Record<string, unknown>): Promise<void> {
  const answer = await socket.request(rpc(id, 'UpdateStats', params));
  assert.ok('result' in answer, JSON.stringify(answer));
}

/** Every agent opens a socket and reports its 8 big series (in two frames: under the frame limit). */
async function connectAll(url: string, tokens: string[]): Promise<RawSocket[]> {
  const sockets: RawSocket[] = [];
  for (let i = 0; i < tokens.length; i += 20) {
    const batch = await Promise.all(tokens.slice(i, i + 20).map((t) => RawSocket.open(url, t)));
    sockets.push(...batch);
    await Promise.all(
      batch.map(async (s) => {
        await stats(s, 1, { stats: { metrics: [0, 1, 2, 3].map(bigSeries) } });
        await stats(s, 2, { stats: { metrics: [4, 5, 6, 7].map(bigSeries) } });
      }),
    );
  }
  return sockets;
}

/** Reads what `socket` still holds until the server's close; resolves with the bytes read. */
function drainToClose(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    socket.on('data', (d: Buffer) => got.push(d));
    socket.once('close', () => resolve(Buffer.concat(got)));
    socket.resume();
  });
}

const logged = (gw: GatewayProcess, msg: RegExp) =>
  gw.lines.flatMap((l) => {
    try {
      const e = JSON.parse(l) as Record<string, unknown>;
      return typeof e['msg'] === 'string' && msg.test(e['msg']) ? [e] : [];
    } catch {
      return [];
    }
  });

describe('SPEC §3, §4: agent metric bounds and /metrics bounds', () => {
  let db: TestDatabase;
  let tokens: string[];

  before(async () => {
    db = await freshDatabase();
    tokens = (await seed(db.sql, { agents: AGENTS })).map((a) => a.token);
  });
  after(async () => {
    await db?.drop();
  });

  describe('one process', () => {
    let gw: GatewayProcess;
    let sockets: RawSocket[] = [];

    before(async () => {
      gw = await startGateway({ databaseUrl: db.url });
      sockets = await connectAll(gw.url, tokens);
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      await gw?.stop();
    });

    test('a name or an own label name over 128 bytes is dropped and counted; the frame is answered', async () => {
      const fx = await createFixture(db.sql);
      const s = await RawSocket.open(gw.url, fx.token);
      try {
        const droppedBefore = metricSum(await scrape(gw.httpUrl), 'agentgate_agent_metrics_dropped_total');
        const name = (n: number) => `n${'x'.repeat(n - 1)}`;
        await stats(s, 1, {
          stats: {
            metrics: [
              { name: name(128), type: 'GAUGE', value: 1 },
              { name: name(129), type: 'GAUGE', value: 2 },
              { name: name(60_000), type: 'GAUGE', value: 3 },
              { name: 'label_128', type: 'GAUGE', value: 4, labels: [{ name: `l${'y'.repeat(127)}`, value: 'v' }] },
              { name: 'label_129', type: 'GAUGE', value: 5, labels: [{ name: `l${'y'.repeat(128)}`, value: 'v' }] },
            ],
          },
        });
        const all = await scrape(gw.httpUrl);
        assert.equal(metricSum(all, 'agentgate_agent_metrics_dropped_total') - droppedBefore, 3);
        const mine = all.filter((x) => x.labels['workspace_name'] === fx.workspaceName);
        assert.deepEqual(mine.map((x) => x.name).sort(), ['agentgate_agent_label_128', `agentgate_agent_${name(128)}`]);
      } finally {
        await s.close();
      }
    });

    test("each agent's exported text is at most 64 KiB: the series beyond are dropped and counted", async () => {
      const r = await httpRequest(`${gw.httpUrl}/metrics`, { timeoutMs: 30_000 });
      assert.equal(r.status, 200);
      const bytesByAgent = new Map<string, number>();
      let big = 0;
      for (const l of r.body.split('\n')) {
        if (!l.startsWith('agentgate_agent_big_')) continue;
        big++;
        const ws = /workspace_name="([^"]*)"/.exec(l)![1]!;
        bytesByAgent.set(ws, (bytesByAgent.get(ws) ?? 0) + Buffer.byteLength(l) + 1);
      }
      assert.equal(bytesByAgent.size, AGENTS);
      for (const [ws, bytes] of bytesByAgent) assert.ok(bytes <= 64 * 1024, `${ws}: ${bytes} bytes`);
      assert.equal(big, AGENTS * 7, 'of 8 series of about 8.3 KB, 7 fit');
      assert.ok(r.body.length > 8_000_000, `a body of ${r.body.length} bytes`);
      // 1 per agent here, and the 3 of the test before.
      assert.equal(metricSum(await scrape(gw.httpUrl), 'agentgate_agent_metrics_dropped_total'), AGENTS + 3);
    });

    test('at most 4 scrapes at once (the 5th: 503 Retry-After 1); one whose client reads nothing for 10 s is closed', async () => {
      const stalled = await Promise.all(Array.from({ length: 4 }, () => stalledScrape(gw.httpUrl)));
      for (const s of stalled) assert.equal(s.status, 'HTTP/1.1 200 OK');
      const fifth = await httpRequest(`${gw.httpUrl}/metrics`);
      assert.equal(fifth.status, 503);
      assert.equal(fifth.headers['retry-after'], '1');

      // Each stalled scrape is closed once its client read nothing for 10 s, not before.
      const first = Math.min(...stalled.map((s) => s.at));
      await eventually(
        'the 4 stalled scrapes closed',
        () => logged(gw, /a \/metrics client stopped reading/).length === 4,
        {
          timeoutMs: 40_000,
          intervalMs: 200,
        },
      );
      assert.ok(Date.now() - first >= STALL_MS - 100, `closed ${Date.now() - first} ms after the request`);
      // Their slots are free again.
      assert.equal((await httpRequest(`${gw.httpUrl}/metrics`, { timeoutMs: 30_000 })).status, 200);
      for (const s of stalled) {
        const rest = await drainToClose(s.socket);
        assert.ok(!rest.toString('latin1').endsWith('0\r\n\r\n'), 'the body was cut, not finished');
      }
    });
  });

  describe('serve --workers 2', () => {
    let gw: GatewayProcess;
    let sockets: RawSocket[] = [];

    before(async () => {
      gw = await startGateway({ databaseUrl: db.url, args: ['--workers', '2'] });
      sockets = await connectAll(gw.url, tokens);
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      await gw?.stop();
    });

    test('the whole tree in one scrape, each agent once, within its 64 KiB', async () => {
      const r = await httpRequest(`${gw.httpUrl}/metrics`, { timeoutMs: 30_000 });
      assert.equal(r.status, 200);
      const lines = r.body.split('\n').filter((l) => l.startsWith('agentgate_agent_big_'));
      assert.equal(lines.length, AGENTS * 7);
      assert.equal(new Set(lines.map((l) => l.slice(0, l.lastIndexOf(' ')))).size, AGENTS * 7);
      assert.equal(r.body.split('\n').filter((l) => l.startsWith('# TYPE agentgate_agent_big_0 ')).length, 1);
    });

    test('a stalled scrape: the primary sends only what the worker pulls, and stops when the worker closes it', async () => {
      const s = await stalledScrape(gw.httpUrl);
      assert.equal(s.status, 'HTTP/1.1 200 OK');
      const stopped = await gw.waitForLog((e) => e['msg'] === 'the asking worker stopped pulling its answer', 40_000);
      assert.ok(Date.now() - s.at >= STALL_MS - 100, `stopped ${Date.now() - s.at} ms after the request`);
      const sent = Number(stopped['piecesSent']);
      const pieces = Number(stopped['pieces']);
      // About 4 MB in the kernel's buffers, one piece waiting in the socket and one in the worker: not 9 MB.
      assert.ok(sent < pieces - 8, `the primary sent ${sent} of ${pieces} pieces to a client that read nothing`);
      await drainToClose(s.socket);
      // The tree still answers.
      assert.equal((await httpRequest(`${gw.httpUrl}/metrics`, { timeoutMs: 30_000 })).status, 200);
    });
  });
});
