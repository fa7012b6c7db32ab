// The per-socket state machine (rpc/connection.ts) on a fake clock, a fake store and a FakeSocket:
// answers after commit, the 64-unanswered backpressure, binary frames, the slow-consumer close, the
// revoke close, the close-handshake cutoff and the drain's close (SPEC §4, §7).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CloseCode, MAX_UNANSWERED_PER_SESSION, RpcError, SLOW_CONSUMER_BYTES } from '@agentgate/shared';
import { settle } from '../helpers/fake-clock.ts';
import { AgentConnection } from '../../gateway/src/rpc/connection.ts';
import type { Router } from '../../gateway/src/rpc/router.ts';
import { FakeSocket } from '../helpers/fake-socket.ts';
import { Harness } from './harness.ts';

const stats = (id: number) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'UpdateStats', params: { stats: { rxBytes: id } } });
const frame = (text: string) => Buffer.from(text);

describe('AgentConnection', () => {
  test('a request is answered only after its row committed', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    h.store.hold('insertStatsBatch');
    conn.onMessage(frame(stats(1)), false);
    await settle();
    assert.deepEqual(socket.sent, [], 'no answer while the commit waits');
    h.store.release('insertStatsBatch');
    await settle();
    assert.deepEqual(socket.sent, [{ jsonrpc: '2.0', id: 1, result: { reportInterval: '30s' } }]);
    assert.equal(h.store.statsRows.length, 1);
  });

  test('at 64 unanswered requests the socket is paused; later frames wait and are processed after answers', async () => {
    const h = new Harness({ sessionRate: 1000 });
    const { conn, socket } = h.open(h.store.fixture());
    h.store.hold('insertStatsBatch');
    for (let i = 1; i <= MAX_UNANSWERED_PER_SESSION; i++) conn.onMessage(frame(stats(i)), false);
    await settle();
    assert.equal(socket.isPaused, true, 'not read beyond 64 unanswered');
    // A frame already in ws's buffer still arrives: it waits in the backlog, unprocessed.
    conn.onMessage(frame(stats(65)), false);
    await settle();
    assert.equal(h.store.waiting('insertStatsBatch') + h.store.statsRows.length <= 64, true);
    h.store.release('insertStatsBatch');
    await settle(30);
    assert.equal(socket.isPaused, false, 'reading resumes once answers went out');
    assert.equal(socket.sent.length, 65, 'every frame answered, the backlog too');
    assert.deepEqual(
      (socket.sent as { id: number }[]).map((a) => a.id).sort((a, b) => a - b),
      Array.from({ length: 65 }, (_, i) => i + 1),
    );
  });

  test('a binary frame closes the socket with 1003 and is not processed', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    conn.onMessage(frame(stats(1)), true);
    await settle();
    assert.equal(socket.closeFrame?.code, CloseCode.UnsupportedData);
    assert.equal(h.store.count('insertStatsBatch'), 0);
  });

  test('frames that arrive after our close frame are neither processed nor persisted', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    socket.peerAnswersClose = false;
    conn.close(CloseCode.GoingAway);
    conn.onMessage(frame(stats(1)), false);
    await h.clock.advance(1000);
    assert.deepEqual(socket.sent, []);
    assert.equal(h.store.count('insertStatsBatch'), 0);
  });

  test('a peer that never answers our close frame is cut off after 5 s', async () => {
    const h = new Harness();
    const { conn, socket, session } = h.open(h.store.fixture());
    socket.peerAnswersClose = false;
    conn.close(CloseCode.GoingAway);
    await h.clock.advance(4900);
    assert.equal(socket.terminated, false);
    await h.clock.advance(200);
    assert.equal(socket.terminated, true);
    assert.equal(session.closed, true, 'the session closes with the socket');
  });

  test('a client with over 1 MiB of unread answers is closed with 4008', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    socket.bufferedAmount = SLOW_CONSUMER_BYTES + 1;
    conn.onMessage(frame(stats(1)), false);
    await settle();
    assert.equal(socket.closeFrame?.code, CloseCode.SlowConsumer);
  });

  test('a revoked session answers -32001 first, then closes with 4501', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const { conn, socket, session } = h.open(fx);
    session.identity.clear(); // the next frame takes the slow path
    h.store.updateAgent(fx.agent.id, { deleted: true });
    conn.onMessage(frame(stats(1)), false);
    await settle();
    assert.deepEqual((socket.sent[0] as { error: { code: number } }).error.code, RpcError.NotAuthorized);
    assert.equal(socket.closeFrame?.code, CloseCode.NotAuthorized);
    assert.equal(h.store.statsRows.length, 0);
  });

  test('the rate limit costs one token per frame, refilled on the clock', async () => {
    const h = new Harness({ sessionRate: 1 });
    const { conn, socket } = h.open(h.store.fixture());
    for (let i = 1; i <= 3; i++) conn.onMessage(frame(stats(i)), false);
    await settle();
    const codes = (socket.sent as { id: number; error?: { code: number } }[])
      .sort((a, b) => a.id - b.id)
      .map((a) => a.error?.code ?? 'ok');
    assert.deepEqual(codes, ['ok', 'ok', RpcError.RateLimited], 'burst = 2 s worth');
    await h.clock.advance(1000);
    conn.onMessage(frame(stats(4)), false);
    await settle();
    assert.equal((socket.sent.at(-1) as { error?: unknown }).error, undefined, 'a token refilled after 1 s');
  });

  test('drain close: frames keep being read and answered; the close frame follows the last answer', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    h.store.hold('insertStatsBatch');
    conn.onMessage(frame(stats(1)), false);
    let closed = false;
    void conn.closeWhenAnswered(CloseCode.GoingAway, 'server shutting down', 10_000).then(() => {
      closed = true;
    });
    await h.clock.advance(500);
    assert.equal(socket.isPaused, false, 'still read while its turn waits for answers');
    conn.onMessage(frame(stats(2)), false);
    await settle();
    assert.equal(socket.closeFrame, undefined, 'no close frame while requests wait for the commit');
    h.store.release('insertStatsBatch');
    await settle();
    assert.deepEqual(
      (socket.sent as { id: number }[]).map((a) => a.id).sort(),
      [1, 2],
      'both frames read before the close frame are answered',
    );
    assert.equal((socket as FakeSocket).closeFrame?.code, CloseCode.GoingAway);
    assert.equal(closed, true, 'the close handshake ended as soon as the peer replied');
  });

  test('drain close: a peer that stays busy is not read after a second; its answers still go first', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    h.store.hold('insertStatsBatch');
    conn.onMessage(frame(stats(1)), false);
    void conn.closeWhenAnswered(CloseCode.GoingAway, 'server shutting down', 10_000);
    await h.clock.advance(1000);
    assert.equal(socket.isPaused, true, 'no longer read after a second of waiting');
    h.store.release('insertStatsBatch');
    await settle();
    assert.equal(socket.sent.length, 1);
    assert.equal(socket.closeFrame?.code, CloseCode.GoingAway);
    assert.equal(socket.isPaused, false, "read again for the peer's close reply");
    assert.equal(socket.readyState, 3, 'the handshake ended');
  });

  test('drain close gives up waiting after its budget when the database does not answer', async () => {
    const h = new Harness();
    const { conn, socket } = h.open(h.store.fixture());
    h.store.hold('insertStatsBatch');
    conn.onMessage(frame(stats(1)), false);
    let closed = false;
    void conn.closeWhenAnswered(CloseCode.GoingAway, 'server shutting down', 2000).then(() => {
      closed = true;
    });
    await h.clock.advance(1999);
    assert.equal(socket.closeFrame, undefined);
    await h.clock.advance(1);
    assert.equal((socket as FakeSocket).closeFrame?.code, CloseCode.GoingAway);
    await settle();
    assert.equal(closed, true);
  });

  test('an answer promise that rejects (a bug) is logged, never left unhandled; reading goes on', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const { session } = h.open(fx);
    const socket = new FakeSocket();
    const router = {
      frame: () => ({ answer: Promise.reject(new Error('a bug in the router')), requests: 1 }),
    } as unknown as Router;
    const conn = new AgentConnection(socket, session, { router, clock: h.clock, log: h.log, sessionRate: 100 });
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown) => unhandled.push(r);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let i = 0; i < MAX_UNANSWERED_PER_SESSION + 5; i++) conn.onMessage(frame(stats(i)), false);
      await settle(20);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled, []);
    assert.equal(socket.isPaused, false, 'the failed answers are no longer counted as unanswered');
    assert.ok(h.lines.some((l) => l.msg === 'a frame could not be answered'));
  });
});
