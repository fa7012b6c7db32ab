// SPEC §7 shutdown through a real process and real sockets: while the gateway drains, agents that
// keep sending get their frames answered until their close frame comes (each frame read before
// it is answered before it), the close handshake ends as soon as the agent replies, and a drain of
// N sessions takes the spread window plus about a second, not the 5 s handshake timeout more.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type AgentClient, CallAbortedError, CloseCode } from '@agentgate/shared';
import { connectAgent } from '../helpers/agent-socket.ts';
import { createFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { sleep, withTimeout } from '../helpers/wait.ts';

const AGENTS = 12;
/** min(5 s, 6 s / 3) = 2 s of spread. */
const SHUTDOWN = '6s';
const SPREAD_MS = 2000;

describe('§7 drain: frames answered until the close frame, and no handshake timeout', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  const clients: AgentClient[] = [];

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url, args: ['--shutdown-timeout', SHUTDOWN] });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gw?.stop();
    await db?.drop();
  });

  test('agents sending during the drain are answered; the drain ends within the spread plus a second', async () => {
    const fxs = await Promise.all(Array.from({ length: AGENTS }, () => createFixture(db.sql)));
    for (const fx of fxs) clients.push(await connectAgent(gw.url, fx.token));
    let signalledAt = 0;
    const answeredAfter = clients.map(() => 0);
    const failures: string[] = [];
    const closes: number[] = clients.map(() => 0);
    const closedAt: number[] = clients.map(() => 0);
    for (const [i, c] of clients.entries()) {
      c.once('close', (code) => {
        closes[i] = code;
        closedAt[i] = Date.now();
      });
    }
    const senders = clients.map(async (c, i) => {
      for (let seq = 1; c.connected; seq++) {
        try {
          await c.updateStats({ rxBytes: seq, connectionCount: 1 });
          if (signalledAt > 0) answeredAfter[i]!++;
        } catch (e) {
          // The one frame in flight when the close frame came may fail with "closed"; nothing else may.
          if (!(e instanceof CallAbortedError && e.reason === 'closed')) failures.push(`${i}: ${(e as Error).message}`);
          return;
        }
        await sleep(15);
      }
    });
    await sleep(300);
    signalledAt = Date.now();
    gw.signal('SIGTERM');
    const exit = await withTimeout(gw.exited, 10_000, 'the gateway to exit');
    const exitedMs = Date.now() - signalledAt;
    await Promise.all(senders);

    assert.deepEqual(exit, { code: 0, signal: null }, gw.lines.slice(-20).join('\n'));
    assert.deepEqual(failures, []);
    assert.deepEqual(
      closes,
      clients.map(() => CloseCode.GoingAway),
    );
    // Spread over 2 s: the later an agent's turn, the more of its frames were answered meanwhile.
    assert.ok(
      answeredAfter.filter((n) => n > 0).length >= AGENTS - 2,
      `frames answered after SIGTERM per agent: ${answeredAfter.join(', ')}`,
    );
    assert.ok(Math.max(...answeredAfter) >= 10, `agents were not served during the drain: ${answeredAfter.join(', ')}`);
    const lastClose = Math.max(...closedAt) - signalledAt;
    assert.ok(lastClose <= SPREAD_MS + 1500, `the last agent was closed ${lastClose} ms after SIGTERM`);
    assert.ok(exitedMs <= SPREAD_MS + 2500, `the drain took ${exitedMs} ms (spread ${SPREAD_MS} ms)`);
  });
});
