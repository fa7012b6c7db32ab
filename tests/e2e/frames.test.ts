// SPEC §4 framing (JSON-RPC 2.0 envelopes, batches, error codes, close codes) and §7 rate limit and
// bad input, against the real gateway process.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CloseCode, RpcError } from '@agentgate/shared';
import { RawSocket, rpc } from '../helpers/agent-socket.ts';
import { createFixture, type DbFixture } from '../helpers/db-fixtures.ts';
import { countStats, readStats } from '../helpers/db-reads.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { httpRequest } from '../helpers/http.ts';
import { authCounters, metricSum, scrape } from '../helpers/prometheus.ts';
import { eventually, sleep } from '../helpers/wait.ts';

const MAX_FRAME = 4096;

type Resp = {
  jsonrpc?: unknown;
  id?: unknown;
  result?: unknown;
  error?: { code: number; message: unknown; data?: unknown };
};

function assertError(r: unknown, code: number, id: unknown, what: string): Resp {
  const m = r as Resp;
  assert.equal(m.jsonrpc, '2.0', `${what}: ${JSON.stringify(r)}`);
  assert.deepEqual(m.id, id, `${what}: id of ${JSON.stringify(r)}`);
  assert.equal(m.error?.code, code, `${what}: ${JSON.stringify(r)}`);
  assert.equal(typeof m.error?.message, 'string', `${what}: error.message`);
  assert.equal('result' in m, false, `${what}: both result and error`);
  return m;
}

function assertParamErrors(r: Resp, what: string): { path: string; message: string }[] {
  const errors = (r.error?.data as { errors?: unknown } | undefined)?.errors;
  assert.ok(Array.isArray(errors) && errors.length > 0, `${what}: data.errors missing in ${JSON.stringify(r)}`);
  for (const e of errors as { path: unknown; message: unknown }[]) {
    assert.equal(typeof e.path, 'string', `${what}: path of ${JSON.stringify(e)}`);
    assert.equal(typeof e.message, 'string', `${what}: message of ${JSON.stringify(e)}`);
  }
  return errors as { path: string; message: string }[];
}

describe('§4 frames', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  let fx: DbFixture;
  let s: RawSocket;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url, args: ['--max-frame-bytes', String(MAX_FRAME)] });
    fx = await createFixture(db.sql, { metadataKeys: ['k'] });
    s = await RawSocket.open(gw.url, fx.token);
  });
  after(async () => {
    await s?.close();
    await gw?.stop();
    await db?.drop();
  });

  test('UpdateStats without stats answers the report interval and touches nothing', async () => {
    const c0 = await authCounters(gw.httpUrl);
    assert.deepEqual(await s.request(rpc(1, 'UpdateStats', {})), {
      jsonrpc: '2.0',
      id: 1,
      result: { reportInterval: '30s' },
    });
    // params may be omitted where every field is optional.
    assert.deepEqual(await s.request(rpc(2, 'UpdateStats')), {
      jsonrpc: '2.0',
      id: 2,
      result: { reportInterval: '30s' },
    });
    assert.equal(await countStats(db.sql, fx.agentId), 0);
    const c1 = await authCounters(gw.httpUrl);
    assert.equal(c1.hit + c1.miss, c0.hit + c0.miss, 'an UpdateStats without stats was counted as authorized');
  });

  test('the id is echoed as sent (string, number, zero)', async () => {
    for (const id of ['abc-1', 0, 987654321, '']) {
      const r = (await s.request(rpc(id, 'UpdateStats', {}))) as Resp;
      assert.deepEqual(r.id, id);
      assert.deepEqual(r.result, { reportInterval: '30s' });
    }
  });

  test('a notification gets no answer and is still processed', async () => {
    s.send({ jsonrpc: '2.0', method: 'UpdateStats', params: { stats: { rxBytes: 7007 } } });
    s.send({ jsonrpc: '2.0', method: 'NoSuchMethod' });
    s.send({ jsonrpc: '2.0', method: 'UpdateStats', params: [] });
    const r = (await s.request(rpc('after', 'UpdateStats', {}))) as Resp;
    assert.equal(r.id, 'after', `a notification was answered: ${JSON.stringify(r)}`);
    await eventually('the notified stats row', async () =>
      (await readStats(db.sql, fx.agentId)).some((x) => x.rx_bytes === 7007),
    );
    await sleep(100);
    assert.equal(s.messages.length, 0, `unexpected messages: ${JSON.stringify(s.messages)}`);
  });

  test('a batch is answered with an array of its requests answers', async () => {
    const r = await s.request([
      rpc(1, 'UpdateStats', {}),
      { jsonrpc: '2.0', method: 'UpdateStats', params: {} },
      rpc('b', 'UpdateStats', { stats: { txBytes: 55 } }),
      rpc(3, 'NoSuchMethod', {}),
    ]);
    assert.ok(Array.isArray(r), `not an array: ${JSON.stringify(r)}`);
    const list = r as unknown as Resp[];
    assert.equal(list.length, 3, JSON.stringify(r));
    const byId = new Map(list.map((x) => [x.id, x]));
    assert.deepEqual(byId.get(1)?.result, { reportInterval: '30s' });
    assert.deepEqual(byId.get('b')?.result, { reportInterval: '30s' });
    assertError(byId.get(3), RpcError.MethodNotFound, 3, 'unknown method in a batch');
    // The acknowledged stats of a batch are persisted once the batch answer is out.
    assert.ok((await readStats(db.sql, fx.agentId)).some((x) => x.tx_bytes === 55));
  });

  test('an invalid member of a batch gets -32600 with id null; the others are answered', async () => {
    const r = await s.request([5, rpc(9, 'UpdateStats', {})]);
    assert.ok(Array.isArray(r), `not an array: ${JSON.stringify(r)}`);
    const list = r as unknown as Resp[];
    assert.equal(list.length, 2);
    const bad = list.find((x) => x.id === null);
    assertError(bad, RpcError.InvalidRequest, null, 'batch member 5');
    assert.deepEqual(list.find((x) => x.id === 9)?.result, { reportInterval: '30s' });
  });

  test('an empty batch gets one -32600 (not an array) with id null', async () => {
    const r = await s.request('[]');
    assert.ok(!Array.isArray(r), `an array: ${JSON.stringify(r)}`);
    assertError(r, RpcError.InvalidRequest, null, 'empty batch');
  });

  test('-32700 with id null for text that is not JSON', async () => {
    for (const text of ['{not json', '{"jsonrpc":"2.0","id":1,"method":"UpdateStats"', 'nul', '']) {
      assertError(await s.request(text), RpcError.ParseError, null, `text ${JSON.stringify(text)}`);
    }
  });

  test('-32600 for what is not a JSON-RPC 2.0 request; the id when readable, else null', async () => {
    const cases: [unknown, unknown][] = [
      [{ jsonrpc: '1.0', id: 5, method: 'UpdateStats' }, 5],
      [{ id: 6, method: 'UpdateStats' }, 6],
      [{ jsonrpc: '2.0', id: 7 }, 7],
      [{ jsonrpc: '2.0', id: 8, method: 42 }, 8],
      [{ jsonrpc: '2.0', id: { a: 1 }, method: 'UpdateStats' }, null],
      [{ jsonrpc: '2.0', id: [1], method: 'UpdateStats' }, null],
      ['"hello"', null],
      ['42', null],
      ['null', null],
      ['true', null],
    ];
    for (const [frame, id] of cases) {
      assertError(await s.request(frame), RpcError.InvalidRequest, id, `frame ${JSON.stringify(frame)}`);
    }
    assert.ok(s.isOpen, 'the socket closed after invalid requests');
  });

  test('-32601 for an unknown method', async () => {
    assertError(await s.request(rpc(11, 'NoSuchMethod', {})), RpcError.MethodNotFound, 11, 'NoSuchMethod');
    assertError(await s.request(rpc('x', 'updatestats', {})), RpcError.MethodNotFound, 'x', 'wrong case');
  });

  test('-32602 when params are not an object, with data.errors [{path, message}]', async () => {
    for (const method of ['UpdateStats', 'BatchUpdateMetadata']) {
      for (const params of [[], 'x', 5, null, true]) {
        const r = assertError(
          await s.request(rpc(21, method, params)),
          RpcError.InvalidParams,
          21,
          `${method} params ${JSON.stringify(params)}`,
        );
        assertParamErrors(r, `${method} params ${JSON.stringify(params)}`);
      }
    }
  });

  test('-32602 for fields of the wrong type, naming them; a rejected frame is not persisted', async () => {
    const n0 = await countStats(db.sql, fx.agentId);
    const cases: [string, unknown, string | undefined][] = [
      ['UpdateStats', { stats: 5 }, 'stats'],
      ['UpdateStats', { stats: { connectionCount: 'abc' } }, 'connectionCount'],
      ['UpdateStats', { stats: { rxBytes: -1 } }, 'rxBytes'],
      ['UpdateStats', { stats: { rxBytes: 1.5 } }, 'rxBytes'],
      ['UpdateStats', { stats: { txPackets: '99999999999999999' } }, 'txPackets'],
      ['UpdateStats', { stats: { txPackets: '-3' } }, 'txPackets'],
      ['UpdateStats', { stats: { connectionsByProto: { ssh: -1 } } }, 'connectionsByProto'],
      ['UpdateStats', { stats: { connectionsByProto: [1] } }, 'connectionsByProto'],
      ['UpdateStats', { stats: { connectionMedianLatencyMs: 'fast' } }, 'connectionMedianLatencyMs'],
      ['UpdateStats', { stats: { metrics: [{ name: 'x', type: 'BOGUS', value: 1 }] } }, 'metrics'],
      ['UpdateStats', { stats: { metrics: [{ name: 'x', type: 'GAUGE', value: '1' }] } }, 'metrics'],
      [
        'UpdateStats',
        { stats: { metrics: [{ name: 'x', type: 'GAUGE', value: 1, labels: [{ name: 'a' }] }] } },
        'metrics',
      ],
      ['BatchUpdateMetadata', {}, undefined],
      ['BatchUpdateMetadata', { metadata: {} }, 'metadata'],
      ['BatchUpdateMetadata', { metadata: [{ key: 1, result: { value: 'x' } }] }, 'key'],
      ['BatchUpdateMetadata', { metadata: [{ key: 'k' }] }, 'result'],
      ['BatchUpdateMetadata', { metadata: [{ key: 'k', result: { value: 5 } }] }, 'value'],
    ];
    for (const [method, params, field] of cases) {
      const what = `${method} ${JSON.stringify(params)}`;
      const r = assertError(await s.request(rpc(31, method, params)), RpcError.InvalidParams, 31, what);
      const errors = assertParamErrors(r, what);
      if (field) {
        assert.ok(
          errors.some((e) => e.path.includes(field)),
          `${what}: no error path names ${field}: ${JSON.stringify(errors)}`,
        );
      }
    }
    // The stats-bearing case that is valid otherwise must not have been written.
    const bad = { stats: { rxBytes: 1234, connectionCount: 'abc' } };
    assertError(await s.request(rpc(32, 'UpdateStats', bad)), RpcError.InvalidParams, 32, 'half-valid stats');
    assert.equal(await countStats(db.sql, fx.agentId), n0, 'a rejected frame was persisted');
  });

  test('a binary frame closes the socket with 1003; other sessions carry on', async () => {
    const other = await RawSocket.open(gw.url, fx.token);
    const b = await RawSocket.open(gw.url, fx.token);
    b.sendBytes(Buffer.from(JSON.stringify(rpc(1, 'UpdateStats', {}))), true);
    assert.equal((await b.waitClosed()).code, CloseCode.UnsupportedData);
    assert.equal(((await other.request(rpc(1, 'UpdateStats', {}))) as Resp).id, 1);
    await other.close();
  });

  test('text that is not UTF-8 closes the socket with 1007', async () => {
    const b = await RawSocket.open(gw.url, fx.token);
    b.sendBytes(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), false);
    assert.equal((await b.waitClosed()).code, CloseCode.InvalidPayload);
  });

  test('a frame over --max-frame-bytes closes with 1009; one under it is processed', async () => {
    const ok = await RawSocket.open(gw.url, fx.token);
    const padded = (n: number) => {
      const base = rpc(41, 'BatchUpdateMetadata', { metadata: [{ key: 'undeclared', result: { value: '' } }] });
      const empty = JSON.stringify(base).length;
      return JSON.stringify(
        rpc(41, 'BatchUpdateMetadata', { metadata: [{ key: 'undeclared', result: { value: 'x'.repeat(n - empty) } }] }),
      );
    };
    const under = padded(MAX_FRAME - 100);
    assert.ok(Buffer.byteLength(under) <= MAX_FRAME);
    assert.deepEqual(((await ok.request(under)) as Resp).result, {});
    const over = padded(MAX_FRAME + 200);
    assert.ok(Buffer.byteLength(over) > MAX_FRAME);
    ok.send(over);
    assert.equal((await ok.waitClosed()).code, CloseCode.MessageTooBig);
  });

  test('§7 bad input never crashes the process or disturbs other sessions', async () => {
    const good = await RawSocket.open(gw.url, fx.token);
    const garbage: (string | Buffer)[] = [
      '['.repeat(1500) + ']'.repeat(1500),
      '{"a":'.repeat(600) + '1' + '}'.repeat(600),
      '{"jsonrpc":"2.0","id":1,"method":"UpdateStats","params":{"stats":{"rxBytes":1e400}}}',
      '{"jsonrpc":"2.0","id":1,"method":"UpdateStats","params":{"__proto__":{"stats":{"rxBytes":1}}}}',
      '{"jsonrpc":"2.0","id":1,"method":"constructor","params":{}}',
      '{"jsonrpc":"2.0","id":1,"method":"__proto__","params":{}}',
      '{"jsonrpc":"2.0","id":1,"method":"toString"}',
      JSON.stringify(rpc(1, 'BatchUpdateMetadata', { metadata: Array.from({ length: 300 }, () => ({ key: 'k' })) })),
      '\u0000\u0001',
      '{"jsonrpc":"2.0","id":1,"method":"UpdateStats","params":{"stats":{"connectionsByProto":{"__proto__":1}}}}',
    ];
    let answered = 0;
    for (let round = 0; round < 3; round++) {
      const bad = await RawSocket.open(gw.url, fx.token);
      for (const g of garbage) {
        bad.send(g);
        const r = (await good.request(rpc(round, 'UpdateStats', { stats: { connectionCount: 0 } }))) as Resp;
        assert.deepEqual(r.result, { reportInterval: '30s' }, `good session disturbed: ${JSON.stringify(r)}`);
        answered++;
      }
      bad.sendBytes(Buffer.from([1, 2, 3]), true);
      await bad.waitClosed();
    }
    assert.equal(answered, garbage.length * 3);
    assert.equal(gw.child.exitCode, null, 'the gateway exited');
    assert.equal((await httpRequest(`${gw.httpUrl}/healthz`)).status, 200);
    await good.close();
  });
});

describe('§7 rate limit (--session-rate 5: bucket of 10)', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url, args: ['--session-rate', '5'] });
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
  });

  test('a burst beyond the bucket gets -32003 and is not processed; the bucket refills', async () => {
    const fx = await createFixture(db.sql);
    const s = await RawSocket.open(gw.url, fx.token);
    try {
      for (let i = 1; i <= 15; i++) s.send(rpc(i, 'UpdateStats', { stats: { rxBytes: i } }));
      const answers: Resp[] = [];
      for (let i = 0; i < 15; i++) answers.push((await s.next()) as Resp);
      const ok = answers.filter((a) => a.result !== undefined);
      const limited = answers.filter((a) => a.error?.code === RpcError.RateLimited);
      assert.equal(ok.length + limited.length, 15, JSON.stringify(answers));
      assert.ok(ok.length >= 10 && ok.length <= 11, `${ok.length} of 15 got through a bucket of 10`);
      for (const a of limited) assert.equal(typeof a.id, 'number');
      const rows = await readStats(db.sql, fx.agentId);
      assert.equal(rows.length, ok.length, 'rate-limited frames were processed');
      assert.deepEqual(
        rows.map((r) => r.rx_bytes).sort((x, y) => x - y),
        ok.map((a) => a.id as number).sort((x, y) => x - y),
      );
      // 5 tokens a second: after 600 ms there is room again.
      await sleep(600);
      assert.deepEqual(((await s.request(rpc(99, 'UpdateStats', {}))) as Resp).result, { reportInterval: '30s' });
    } finally {
      await s.close();
    }
  });

  test('a rate-limited notification is dropped and counted in agentgate_frames_total{outcome="rate_limited"}', async () => {
    const fx = await createFixture(db.sql);
    const s = await RawSocket.open(gw.url, fx.token);
    try {
      const limited0 = metricSum(await scrape(gw.httpUrl), 'agentgate_frames_total', { outcome: 'rate_limited' });
      for (let i = 0; i < 10; i++) s.send({ jsonrpc: '2.0', method: 'UpdateStats', params: {} });
      for (let i = 0; i < 10; i++)
        s.send({ jsonrpc: '2.0', method: 'UpdateStats', params: { stats: { rxBytes: 42 } } });
      const r = (await s.request(rpc(1, 'UpdateStats', {}))) as Resp;
      assertError(r, RpcError.RateLimited, 1, 'request after an emptied bucket');
      const afterN = await eventually('the rate_limited counter', async () => {
        const n = metricSum(await scrape(gw.httpUrl), 'agentgate_frames_total', { outcome: 'rate_limited' });
        return n - limited0 >= 9 && n;
      });
      assert.ok(afterN - limited0 >= 9);
      assert.ok((await countStats(db.sql, fx.agentId)) <= 1, 'dropped notifications were processed');
    } finally {
      await s.close();
    }
  });

  test('frames that are not JSON cost a token too; limits are per session', async () => {
    const fx = await createFixture(db.sql);
    const a = await RawSocket.open(gw.url, fx.token);
    const b = await RawSocket.open(gw.url, fx.token);
    try {
      for (let i = 0; i < 10; i++) a.send('{nope');
      for (let i = 0; i < 10; i++) assertError(await a.next(), RpcError.ParseError, null, `garbage ${i}`);
      assertError(await a.request(rpc(1, 'UpdateStats', {})), RpcError.RateLimited, 1, 'exhausted session');
      assert.deepEqual(((await b.request(rpc(1, 'UpdateStats', {}))) as Resp).result, { reportInterval: '30s' });
    } finally {
      await a.close();
      await b.close();
    }
  });
});
