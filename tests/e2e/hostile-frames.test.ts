// Hardening (SPEC §3, §4 revision 3): frames and tokens from a broken or hostile agent. Batches over
// 64 elements, lone UTF-16 surrogates, `__proto__` keys, and tokens sent in upper case — each of
// these hurt the gateway or its agents before, and each is driven here through the real process.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RpcError } from '@agentgate/shared';
import { connectAgent, RawSocket, rpc } from '../helpers/agent-socket.ts';
import { createFixture } from '../helpers/db-fixtures.ts';
import { countStats, readMetadata, readStats } from '../helpers/db-reads.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { sleep } from '../helpers/wait.ts';

const REPLACEMENT = '\ufffd';

describe('hostile frames', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  const sockets: RawSocket[] = [];
  const open = async (token: string) => {
    const s = await RawSocket.open(gw.url, token);
    sockets.push(s);
    return s;
  };

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url, args: ['--workspace-refresh-interval', '500ms'] });
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await gw?.stop();
    await db?.drop();
  });

  test('a batch of more than 64 elements gets one -32600 (id null) and nothing in it is processed', async () => {
    const fx = await createFixture(db.sql);
    const s = await open(fx.token);
    const batch = Array.from({ length: 65 }, (_, i) => rpc(i + 1, 'UpdateStats', { stats: { rxBytes: i } }));
    const answer = await s.request(batch);
    assert.equal(Array.isArray(answer), false, 'a single answer, not an array');
    assert.deepEqual(answer['id'], null);
    assert.equal((answer['error'] as { code: number }).code, RpcError.InvalidRequest);
    await sleep(200);
    assert.equal(await countStats(db.sql, fx.agentId), 0, 'no element was processed');
    // A batch of 64 is still a batch.
    const ok = await s.request(batch.slice(0, 64));
    assert.ok(Array.isArray(ok) && ok.length === 64);
    assert.equal(await countStats(db.sql, fx.agentId), 64);
  });

  test('the review repro: a 64 KB frame of [1,1,…] gets a small answer and the socket stays open', async () => {
    const fx = await createFixture(db.sql);
    const s = await open(fx.token);
    const frame = `[${'1,'.repeat(32_000)}1]`;
    assert.ok(Buffer.byteLength(frame) < 65_536);
    s.send(frame);
    const answer = (await s.next()) as Record<string, unknown>;
    assert.equal((answer['error'] as { code: number }).code, RpcError.InvalidRequest);
    assert.ok(JSON.stringify(answer).length < 200, 'not one error per element');
    await sleep(100);
    assert.equal(s.isOpen, true, 'no 4008: the client reads its answers');
  });

  test('an over-long batch costs one token', async () => {
    const fx = await createFixture(db.sql);
    const slow = await startGateway({ databaseUrl: db.url, args: ['--session-rate', '1'] });
    try {
      const s = await RawSocket.open(slow.url, fx.token);
      const batch = Array.from({ length: 100 }, (_, i) => rpc(i, 'UpdateStats', {}));
      assert.equal(((await s.request(batch))['error'] as { code: number }).code, RpcError.InvalidRequest);
      // Burst = 2 tokens: the batch took one, so one request passes and the next is rate limited.
      assert.ok('result' in (await s.request(rpc(1, 'UpdateStats', {}))));
      assert.equal(
        ((await s.request(rpc(2, 'UpdateStats', {})))['error'] as { code: number }).code,
        RpcError.RateLimited,
      );
      await s.close();
    } finally {
      await slow.stop();
    }
  });

  test('lone surrogates are stored as U+FFFD and never fail the frame (or the batch it shares)', async () => {
    const fx = await createFixture(db.sql, { metadataKeys: ['cpu', `k${REPLACEMENT}`] });
    const other = await createFixture(db.sql, { metadataKeys: ['cpu'] });
    const s = await open(fx.token);
    const o = await open(other.token);
    // The JSON escapes \ud800 and \udc00 are lone surrogates once parsed.
    const surrogates =
      '{"jsonrpc":"2.0","id":1,"method":"BatchUpdateMetadata","params":{"metadata":[' +
      '{"key":"cpu","result":{"value":"x\\ud800y","error":"e\\udc00"}},' +
      '{"key":"k\\udfff","result":{"value":"v"}}]}}';
    const stats =
      '{"jsonrpc":"2.0","id":2,"method":"UpdateStats","params":{"stats":{"connectionsByProto":{"\\udc00":1,"ok":2}}}}';
    // The other agent's frames are sent in the same turn, so they likely share the batches.
    s.send(surrogates);
    o.send(rpc(1, 'BatchUpdateMetadata', { metadata: [{ key: 'cpu', result: { value: '5%' } }] }));
    s.send(stats);
    o.send(rpc(2, 'UpdateStats', { stats: { rxBytes: 1 } }));
    const mine = [await s.next(), await s.next()] as Record<string, unknown>[];
    const theirs = [await o.next(), await o.next()] as Record<string, unknown>[];
    for (const a of [...mine, ...theirs]) assert.ok('result' in a, `acknowledged: ${JSON.stringify(a)}`);
    const md = await readMetadata(db.sql, fx.agentId);
    assert.equal(md.get('cpu')?.value, `x${REPLACEMENT}y`);
    assert.equal(md.get('cpu')?.error, `e${REPLACEMENT}`);
    assert.equal(md.get(`k${REPLACEMENT}`)?.value, 'v', 'a key with a lone surrogate matches its well-formed form');
    const [row] = await readStats(db.sql, fx.agentId);
    assert.deepEqual(row?.connections_by_proto, { [REPLACEMENT]: 1, ok: 2 });
    assert.equal((await readMetadata(db.sql, other.agentId)).get('cpu')?.value, '5%');
  });

  test('a `__proto__` key in connectionsByProto is kept like any other', async () => {
    const fx = await createFixture(db.sql);
    const s = await open(fx.token);
    const answer = await s.request(
      '{"jsonrpc":"2.0","id":1,"method":"UpdateStats","params":{"stats":{"connectionsByProto":{"__proto__":3,"ssh":1}}}}',
    );
    assert.ok('result' in answer, JSON.stringify(answer));
    const [row] = await readStats(db.sql, fx.agentId);
    assert.deepEqual(Object.entries(row!.connections_by_proto).sort(), [
      ['__proto__', 3],
      ['ssh', 1],
    ]);
  });

  test('a token sent in upper case is the same token: the session survives its refreshes', async () => {
    const fx = await createFixture(db.sql);
    const c = await connectAgent(gw.url, fx.token.toUpperCase(), { tokenHeader: 'bearer' });
    try {
      await sleep(1600); // three refreshes at 500 ms (the first within [250, 500] ms)
      assert.equal(c.connected, true, `closed with ${c.lastCloseCode}`);
      assert.deepEqual(await c.updateStats({ rxBytes: 1 }), { reportInterval: '30s' });
    } finally {
      await c.close();
    }
  });
});
