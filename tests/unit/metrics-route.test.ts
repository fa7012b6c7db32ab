// SPEC §3 "`/metrics` is bounded", the HTTP side, on real loopback sockets with a body that never
// ends: at most 4 scrapes at once (the 5th: 503 with Retry-After: 1), a scrape whose client stops
// reading is closed after the stall timeout (shortened here; the e2e waits the real 10 s) and its
// generator is released, and so is the generator of a client that goes away.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { AdminAuth } from '../../gateway/src/http/admin-auth.ts';
import type { AgentAuth } from '../../gateway/src/http/agent-auth.ts';
import { createHttpServer, type Routes } from '../../gateway/src/http/server.ts';
import { stalledScrape } from '../../scripts/src/lab/http.ts';
import { httpRequest } from '../helpers/http.ts';
import { eventually } from '../helpers/wait.ts';

/** Long enough for the 5th scrape to come while the 4 are stalled, however loaded the machine. */
const STALL_MS = 2000;
const CHUNK = `${'x'.repeat(64 * 1024 - 1)}\n`;

/** A Routes whose /metrics never ends; counts the generators started and released. */
function endlessMetrics() {
  const counts = { started: 0, released: 0 };
  const api: Routes = {
    agentAuth: {} as AgentAuth,
    adminAuth: { configured: false } as AdminAuth,
    readiness: () => 'ready',
    async *metricsText() {
      counts.started++;
      try {
        for (;;) {
          yield CHUNK;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      } finally {
        counts.released++;
      }
    },
    debugSessions: () => ({ sessions: [] }),
    accept: () => {},
    refused: () => {},
  };
  return { api, counts };
}

/** Resolves when the server has closed `socket` (its buffered data is read and dropped). */
function closedByServer(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    socket.once('close', () => resolve());
    socket.on('data', () => {});
    socket.resume();
  });
}

describe('/metrics scrapes', () => {
  const lines: { msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const { api, counts } = endlessMetrics();
  let server: Server;
  let port: number;

  before(async () => {
    server = createHttpServer(api, log, { routes: 'all', maxConnections: 100, scrapeStallMs: STALL_MS });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('4 stalled scrapes at once; the 5th is 503 Retry-After 1; each stalled one is closed and released', async () => {
    const stalled = await Promise.all(Array.from({ length: 4 }, () => stalledScrape(`http://127.0.0.1:${port}`)));
    for (const s of stalled) assert.match(s.head, /^HTTP\/1\.1 200 /);
    assert.equal(counts.started, 4);

    const fifth = await httpRequest(`http://127.0.0.1:${port}/metrics`);
    assert.equal(fifth.status, 503);
    assert.equal(fifth.headers['retry-after'], '1');
    assert.equal(counts.started, 4, 'the refused scrape started no generator');

    // Each generator is released once its client read nothing for the stall timeout (reading now would unstall it)...
    await eventually('the generators released', () => counts.released === 4, { timeoutMs: 10_000 });
    assert.equal(lines.filter((l) => /stopped reading/.test(l.msg)).length, 4);
    // ...and its socket closed by the server.
    await Promise.all(stalled.map((s) => closedByServer(s.socket)));
    const again = await stalledScrape(`http://127.0.0.1:${port}`);
    assert.match(again.head, /^HTTP\/1\.1 200 /);
    again.socket.destroy();
    await eventually('the generator of a client that went away released', () => counts.released === 5);
  });
});
