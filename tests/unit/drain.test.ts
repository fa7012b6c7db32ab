// SPEC §7 shutdown drain (hub/drain.ts) on the fake clock: sockets are answered, then closed with
// 1001 spread over min(5 s, a third of the budget); writers and the last usage flush run; and the
// drain never outlasts its budget, whatever the database or the peers do.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CloseCode } from '@agentgate/shared';
import { drain } from '../../gateway/src/hub/drain.ts';
import type { AgentConnection } from '../../gateway/src/rpc/connection.ts';
import type { FakeSocket } from '../helpers/fake-socket.ts';
import { Harness } from './harness.ts';

const stats = (id: number, connectionCount = 0) =>
  Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method: 'UpdateStats', params: { stats: { connectionCount } } }));

function drainOf(h: Harness, conns: AgentConnection[], timeoutMs: number): Promise<void> {
  const { core } = h;
  return drain(
    conns,
    {
      clock: h.clock,
      log: h.log,
      writersIdle: () => Promise.all(core.methods.map((m) => m.idle())),
      finalFlushes: [() => core.activity.flushAll(), () => core.connectionTimes.flush()],
    },
    timeoutMs,
  );
}

/** Records the fake time at which each socket got its close frame. */
function closeTimes(h: Harness, sockets: FakeSocket[]): number[] {
  const at: number[] = [];
  for (const [i, s] of sockets.entries()) {
    const close = s.close.bind(s);
    s.close = (code, reason) => {
      at[i] = h.clock.now();
      close(code, reason);
    };
  }
  return at;
}

describe('drain', () => {
  test('closes every socket with 1001, spread over a third of a short budget', async () => {
    const h = new Harness();
    const opened = Array.from({ length: 3 }, () => h.open(h.store.fixture()));
    const at = closeTimes(
      h,
      opened.map((o) => o.socket),
    );
    const t0 = h.clock.now();
    let done = false;
    void drainOf(
      h,
      opened.map((o) => o.conn),
      3000,
    ).then(() => {
      done = true;
    });
    await h.clock.advance(3000);
    assert.equal(done, true);
    for (const o of opened) assert.equal(o.socket.closeFrame?.code, CloseCode.GoingAway);
    // spread = min(5 s, 3 s / 3) = 1 s over 3 sockets: at 0, 1/3 and 2/3 of it.
    assert.deepEqual(
      at.map((t) => Math.round(t - t0)),
      [0, 333, 667],
    );
  });

  test('ends once every peer replied to its close: the spread window, not the handshake timeout', async () => {
    const h = new Harness();
    const opened = Array.from({ length: 3 }, () => h.open(h.store.fixture()));
    for (const [i, o] of opened.entries()) o.conn.onMessage(stats(i + 1), false);
    const t0 = h.clock.now();
    let doneAt: number | undefined;
    void drainOf(
      h,
      opened.map((o) => o.conn),
      30_000,
    ).then(() => {
      doneAt = h.clock.now();
    });
    for (let t = 0; t < 30_000 && doneAt === undefined; t += 100) await h.clock.advance(100);
    // spread = 5 s over 3 sockets: the last close at 3.33 s, answered by the peer at once.
    assert.ok(
      doneAt !== undefined && doneAt - t0 <= 3500,
      `the drain took ${doneAt === undefined ? '>30000' : doneAt - t0} ms`,
    );
    for (const o of opened) {
      assert.equal(o.socket.sent.length, 1, 'the frame read before the drain is answered');
      assert.equal(o.socket.terminated, false, 'cut off instead of closed');
    }
  });

  test('a frame in flight is answered before its socket gets 1001', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    h.store.hold('insertStatsBatch');
    conn.onMessage(stats(1), false);
    const draining = drainOf(h, [conn], 30_000);
    await h.clock.advance(500);
    assert.equal(socket.closeFrame, undefined, 'not closed while its frame waits for the commit');
    h.store.release('insertStatsBatch');
    await h.clock.advance(10);
    assert.deepEqual(socket.sent, [{ jsonrpc: '2.0', id: 1, result: { reportInterval: '30s' } }]);
    assert.equal((socket as FakeSocket).closeFrame?.code, CloseCode.GoingAway);
    await h.clock.advance(30_000);
    await draining;
  });

  test('runs the last activity, usage and connection-time flushes', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const { conn } = h.open(fx);
    conn.onMessage(stats(1, 2), false);
    await h.clock.advance(10);
    assert.equal(h.store.count('markWorkspacesUsed'), 0, 'last_used_at waits for the usage flush');
    const draining = drainOf(h, [conn], 30_000);
    await h.clock.advance(30_000);
    await draining;
    assert.equal(h.store.count('bumpAndNotifyActivity'), 1);
    assert.deepEqual(h.store.argsOf('markWorkspacesUsed')[0]?.[0], [fx.workspace.id]);
    const last = h.store.argsOf('updateAgentConnections').at(-1)?.[0] as { disconnectedAt: string | null }[];
    assert.ok(last?.[0]?.disconnectedAt, 'disconnected_at of the closed session is written');
  });

  test('never outlasts its budget: a database that does not answer and a peer that ignores the close', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    socket.peerAnswersClose = false;
    h.store.hold('insertStatsBatch');
    conn.onMessage(stats(1), false);
    const t0 = h.clock.now();
    let doneAt: number | undefined;
    void drainOf(h, [conn], 10_000).then(() => {
      doneAt = h.clock.now();
    });
    await h.clock.advance(10_000);
    assert.ok(
      doneAt !== undefined && doneAt - t0 <= 10_000,
      `drain took ${doneAt === undefined ? '>10000' : doneAt - t0} ms`,
    );
    assert.equal(socket.terminated, true, 'the silent peer was cut off');
  });
});
