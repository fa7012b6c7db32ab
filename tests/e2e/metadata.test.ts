// SPEC §4 BatchUpdateMetadata: declared keys only, server time, value/error limits, the 6144-byte key
// budget (-32004), repeats, validation, the NOTIFY after commit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type AgentClient,
  type MetadataItem,
  type MetadataNotification,
  metadataChannel,
  RpcCallError,
  RpcError,
} from '@agentgate/shared';
import { connectAgent, RawSocket, rpc } from '../helpers/agent-socket.ts';
import { createFixture, type DbFixture } from '../helpers/db-fixtures.ts';
import { readMetadata } from '../helpers/db-reads.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { listen } from '../helpers/listen.ts';
import { RFC3339 } from '../helpers/time.ts';
import { eventually } from '../helpers/wait.ts';

const KEYS = ['cpu', 'mem', 'disk', 'uptime', 'trunc1', 'trunc2', 'exact', 'err1', 'err2'];
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** The longest prefix of `s` (whole code points) of at most `limit` UTF-8 bytes. */
function utf8Prefix(s: string, limit: number): string {
  let out = '';
  let n = 0;
  for (const ch of s) {
    const b = bytes(ch);
    if (n + b > limit) break;
    out += ch;
    n += b;
  }
  return out;
}

async function expectRpcError(p: Promise<unknown>, code: number, what: string): Promise<RpcCallError> {
  try {
    const r = await p;
    assert.fail(`${what}: expected error ${code}, got result ${JSON.stringify(r)}`);
  } catch (e) {
    if (!(e instanceof RpcCallError)) throw e;
    assert.equal(e.code, code, `${what}: ${e.message} ${JSON.stringify(e.data)}`);
    return e;
  }
}

describe('§4 BatchUpdateMetadata', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  let fx: DbFixture;
  let c: AgentClient;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url });
    fx = await createFixture(db.sql, { metadataKeys: KEYS });
    c = await connectAgent(gw.url, fx.token);
  });
  after(async () => {
    await c?.close();
    await gw?.stop();
    await db?.drop();
  });

  test('only declared keys are updated; collected_at is the server time', async () => {
    const t0 = Date.now();
    const r = await c.batchUpdateMetadata([
      { key: 'cpu', result: { collectedAt: '2000-01-01T00:00:00Z', age: 3, value: '42%' } },
      { key: 'undeclared', result: { value: 'x' } },
      { key: 'mem', result: { collectedAt: '2099-01-01T00:00:00Z', value: '', error: 'boom' } },
    ]);
    assert.deepEqual(r, {});
    const t1 = Date.now();
    const m = await readMetadata(db.sql, fx.agentId);
    assert.equal(m.size, KEYS.length, 'an undeclared key was inserted');
    assert.equal(m.has('undeclared'), false);
    assert.equal(m.get('cpu')!.value, '42%');
    assert.equal(m.get('cpu')!.error, '');
    assert.equal(m.get('mem')!.value, '');
    assert.equal(m.get('mem')!.error, 'boom');
    for (const k of ['cpu', 'mem']) {
      const at = m.get(k)!.collectedAtMs;
      assert.ok(at !== null && at >= t0 - 2000 && at <= t1 + 2000, `${k}: collected_at ${at} is not server time`);
    }
    assert.equal(m.get('disk')!.collectedAtMs, null, 'an untouched key changed');
    // Declared columns other than value/error/collected_at are left alone.
    const [row] = await db.sql<{ script: string; display_name: string }[]>`
      select script, display_name from workspace_agent_metadata where workspace_agent_id = ${fx.agentId} and key = 'cpu'`;
    assert.deepEqual({ ...row }, { script: 'echo hi', display_name: 'cpu' });
  });

  test('the response is sent only after the update is committed', async () => {
    for (let i = 0; i < 8; i++) {
      await c.batchUpdateMetadata([{ key: 'uptime', result: { value: `up ${i}` } }]);
      assert.equal((await readMetadata(db.sql, fx.agentId)).get('uptime')!.value, `up ${i}`);
    }
  });

  test('a value over 2048 bytes is truncated at a character boundary and flagged', async () => {
    const euro = `x${'€'.repeat(700)}`; // 2101 bytes; byte 2048 falls inside a '€'
    const emoji = `ab${'😀'.repeat(600)}`; // 2402 bytes; surrogate pairs
    const exact = 'a'.repeat(2048);
    await c.batchUpdateMetadata([
      { key: 'trunc1', result: { value: euro, error: 'ignored?' } },
      { key: 'trunc2', result: { value: emoji } },
      { key: 'exact', result: { value: exact, error: 'fine' } },
    ]);
    const m = await readMetadata(db.sql, fx.agentId);
    for (const [key, sent] of [
      ['trunc1', euro],
      ['trunc2', emoji],
    ] as const) {
      const got = m.get(key)!;
      assert.ok(bytes(got.value) <= 2048, `${key}: ${bytes(got.value)} bytes stored`);
      assert.ok(sent.startsWith(got.value), `${key}: the stored value is not a prefix of the sent one`);
      assert.ok(!got.value.includes('\uFFFD'), `${key}: a UTF-8 sequence was split`);
      assert.equal(got.value, utf8Prefix(sent, 2048), `${key}: not truncated at the last whole character`);
      assert.equal(got.error, `value of ${bytes(sent)} bytes exceeded 2048 bytes`);
    }
    assert.equal(m.get('exact')!.value, exact);
    assert.equal(m.get('exact')!.error, 'fine');
  });

  test('an error over 2048 bytes is replaced', async () => {
    const ascii = 'e'.repeat(3000);
    const multi = 'é'.repeat(1100); // 2200 bytes, 1100 characters
    const ok = 'é'.repeat(1024); // 2048 bytes exactly
    await c.batchUpdateMetadata([
      { key: 'err1', result: { value: 'v1', error: ascii } },
      { key: 'err2', result: { value: 'v2', error: multi } },
      { key: 'disk', result: { value: 'v3', error: ok } },
    ]);
    const m = await readMetadata(db.sql, fx.agentId);
    assert.equal(m.get('err1')!.error, 'error of 3000 bytes exceeded 2048 bytes');
    assert.equal(m.get('err1')!.value, 'v1');
    assert.equal(m.get('err2')!.error, 'error of 2200 bytes exceeded 2048 bytes');
    assert.equal(m.get('disk')!.error, ok);
  });

  test('a repeated key: the latest value wins', async () => {
    await c.batchUpdateMetadata([
      { key: 'cpu', result: { value: '1' } },
      { key: 'mem', result: { value: 'm' } },
      { key: 'cpu', result: { value: '2', error: 'e2' } },
      { key: 'cpu', result: { value: '3' } },
    ]);
    const m = await readMetadata(db.sql, fx.agentId);
    assert.equal(m.get('cpu')!.value, '3');
    assert.equal(m.get('cpu')!.error, '');
    assert.equal(m.get('mem')!.value, 'm');
  });

  test('keys over 6144 bytes: -32004 with data.droppedKeys, the earlier keys written, NOTIFY lists them', async () => {
    // 60 keys of 120 bytes: the 52nd crosses 6144 (52 * 120 = 6240).
    const long = Array.from({ length: 60 }, (_, i) => `k${String(i).padStart(3, '0')}${'_'.repeat(116)}`);
    const big = await createFixture(db.sql, { metadataKeys: long });
    const bc = await connectAgent(gw.url, big.token);
    const l = await listen(db.sql, metadataChannel(big.agentId));
    try {
      const items: MetadataItem[] = long.map((key, i) => ({ key, result: { value: `v${i}` } }));
      const e = await expectRpcError(bc.batchUpdateMetadata(items), RpcError.MetadataKeysTooLong, 'key overflow');
      assert.deepEqual((e.data as { droppedKeys?: unknown })?.droppedKeys, long.slice(51));
      const m = await readMetadata(db.sql, big.agentId);
      for (let i = 0; i < 60; i++) {
        const row = m.get(long[i]!)!;
        if (i < 51) assert.equal(row.value, `v${i}`, `key ${i} should have been written`);
        else assert.equal(row.value, '', `key ${i} should have been dropped`);
      }
      // The keys written may be spread over several notifications, each under 8000 bytes.
      const union = () => new Set((l.payloads as MetadataNotification[]).flatMap((p) => p.keys));
      await eventually('the metadata notifications', () => union().size >= 51, { timeoutMs: 2500 });
      assert.deepEqual([...union()].sort(), long.slice(0, 51));
      for (const r of l.raw) assert.ok(Buffer.byteLength(r) < 8000, `a notification of ${Buffer.byteLength(r)} bytes`);
      l.payloads.length = 0;

      // Repeats count against the budget as sent: the same 120-byte key 60 times.
      const same = long[0]!;
      const rep: MetadataItem[] = Array.from({ length: 60 }, (_, i) => ({ key: same, result: { value: `r${i}` } }));
      await expectRpcError(bc.batchUpdateMetadata(rep), RpcError.MetadataKeysTooLong, 'repeated key overflow');
      assert.equal((await readMetadata(db.sql, big.agentId)).get(same)!.value, 'r50');
    } finally {
      await l.unlisten();
      await bc.close();
    }
  });

  test('-32602 for collectedAt that is not a string or age that is not an int; nothing written', async () => {
    await c.batchUpdateMetadata([{ key: 'cpu', result: { value: 'before' } }]);
    const s = await RawSocket.open(gw.url, fx.token);
    try {
      const bad: Record<string, unknown>[] = [
        { collectedAt: 123, value: 'x' },
        { collectedAt: {}, value: 'x' },
        { collectedAt: null, value: 'x' },
        { age: 'abc', value: 'x' },
        { age: -1, value: 'x' },
        { age: 1.5, value: 'x' },
        { age: true, value: 'x' },
        { value: 5 },
        { value: 'x', error: 7 },
      ];
      for (const result of bad) {
        const params = {
          metadata: [
            { key: 'cpu', result: { value: 'written?' } },
            { key: 'mem', result },
          ],
        };
        const r = (await s.request(rpc(7, 'BatchUpdateMetadata', params))) as {
          id: unknown;
          error?: { code: number; data?: { errors?: { path: unknown; message: unknown }[] } };
        };
        assert.equal(r.id, 7);
        assert.equal(r.error?.code, RpcError.InvalidParams, `result ${JSON.stringify(result)}: ${JSON.stringify(r)}`);
        const errs = r.error?.data?.errors;
        assert.ok(Array.isArray(errs) && errs.length > 0, `no data.errors for ${JSON.stringify(result)}`);
        for (const x of errs) {
          assert.equal(typeof x.path, 'string');
          assert.equal(typeof x.message, 'string');
        }
      }
      assert.equal((await readMetadata(db.sql, fx.agentId)).get('cpu')!.value, 'before', 'a rejected call wrote');
      // A decimal-string age and any collectedAt string are accepted and ignored.
      const ok = await s.request(
        rpc(8, 'BatchUpdateMetadata', {
          metadata: [{ key: 'cpu', result: { collectedAt: 'yesterday', age: '12', value: 'after' } }],
        }),
      );
      assert.deepEqual(ok, { jsonrpc: '2.0', id: 8, result: {} });
      assert.equal((await readMetadata(db.sql, fx.agentId)).get('cpu')!.value, 'after');
    } finally {
      await s.close();
    }
  });

  test('NOTIFY workspace_agent_metadata:<agent> with {"collected_at","keys"} listing the keys written', async () => {
    const l = await listen(db.sql, metadataChannel(fx.agentId));
    try {
      const t0 = Date.now();
      await c.batchUpdateMetadata([
        { key: 'cpu', result: { value: 'n1' } },
        { key: 'not-declared', result: { value: 'n2' } },
        { key: 'mem', result: { value: 'n3' } },
      ]);
      await eventually('the metadata notification', () => l.payloads.length > 0, { timeoutMs: 2500 });
      const p = l.payloads[0] as Record<string, unknown>;
      assert.deepEqual(Object.keys(p).sort(), ['collected_at', 'keys']);
      assert.match(String(p['collected_at']), RFC3339);
      const at = Date.parse(String(p['collected_at']));
      assert.ok(at >= t0 - 2000 && at <= Date.now() + 2000, `collected_at ${p['collected_at']}`);
      assert.deepEqual([...(p['keys'] as string[])].sort(), ['cpu', 'mem']);
      const m = await readMetadata(db.sql, fx.agentId);
      assert.ok(Math.abs(m.get('cpu')!.collectedAtMs! - at) < 1000, 'collected_at differs from the row');
    } finally {
      await l.unlisten();
    }
  });
});
