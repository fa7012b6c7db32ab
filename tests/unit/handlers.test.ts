// SPEC §4 handlers on a fake store: BatchUpdateMetadata limits (value/error truncation, key budget,
// declared keys, server time) and UpdateStats params (ints as strings, unsafe ints, no stats).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RpcError } from '@agentgate/shared';
import { nextAutostart } from '../../gateway/src/handlers/autostart.ts';
import { limitMetadata, truncateUtf8 } from '../../gateway/src/handlers/metadata.ts';
import { Harness, statsOk } from './harness.ts';

const item = (key: string, value: string, error?: string) => ({
  key,
  result: error === undefined ? { value } : { value, error },
});

function metadataSetup(keys: string[]) {
  const h = new Harness();
  const fx = h.store.fixture({ metadataKeys: keys });
  const s = h.connect(fx);
  const stored = (key: string) => h.store.metadata.get(fx.agent.id)!.get(key)!;
  return { h, fx, s, stored };
}

describe('truncateUtf8', () => {
  test('short strings are returned as they are', () => {
    assert.equal(truncateUtf8('héllo', 2048), 'héllo');
    assert.equal(truncateUtf8('a'.repeat(2048), 2048), 'a'.repeat(2048));
  });

  test('cuts at a character boundary, never splitting a UTF-8 sequence', () => {
    for (const ch of ['é', '€', '😀']) {
      for (const prefix of ['', 'a', 'ab', 'abc']) {
        const s = prefix + ch.repeat(2000);
        const out = truncateUtf8(s, 2048);
        const bytes = Buffer.byteLength(out, 'utf8');
        assert.ok(bytes <= 2048, `${bytes} bytes`);
        assert.ok(bytes > 2048 - Buffer.byteLength(ch), `cut too early: ${bytes} bytes`);
        assert.ok(s.startsWith(out), 'a prefix of the input');
        assert.ok(!out.includes('\uFFFD'), 'no replacement character');
      }
    }
  });

  test('exact figures: "a" + emoji (4 bytes) cut at 2048 keeps 2045 bytes', () => {
    const out = truncateUtf8(`a${'😀'.repeat(600)}`, 2048);
    assert.equal(Buffer.byteLength(out), 1 + 4 * 511);
  });
});

describe('BatchUpdateMetadata', () => {
  test('a value over 2048 bytes is truncated at a UTF-8 boundary; error "value of N bytes exceeded 2048 bytes"', async () => {
    const { h, s, stored } = metadataSetup(['ascii', 'euro']);
    const euro = '€'.repeat(700); // 2100 bytes
    const out = await h.metadata(s, {
      metadata: [item('ascii', 'x'.repeat(3000)), item('euro', euro, 'agent error')],
    });
    assert.deepEqual(out, { result: {} });
    assert.equal(stored('ascii').value, 'x'.repeat(2048));
    assert.equal(stored('ascii').error, 'value of 3000 bytes exceeded 2048 bytes');
    assert.equal(stored('euro').value, '€'.repeat(682));
    assert.equal(Buffer.byteLength(stored('euro').value), 2046);
    assert.equal(stored('euro').error, 'value of 2100 bytes exceeded 2048 bytes');
  });

  test('a value of exactly 2048 bytes is kept with its error', async () => {
    const { h, s, stored } = metadataSetup(['k']);
    await h.metadata(s, { metadata: [item('k', 'v'.repeat(2048), 'e')] });
    assert.equal(stored('k').value, 'v'.repeat(2048));
    assert.equal(stored('k').error, 'e');
  });

  test('an error over 2048 bytes is replaced by "error of N bytes exceeded 2048 bytes"', async () => {
    const { h, s, stored } = metadataSetup(['k']);
    const out = await h.metadata(s, { metadata: [item('k', 'fine', 'ö'.repeat(1500))] });
    assert.deepEqual(out, { result: {} });
    assert.equal(stored('k').value, 'fine');
    assert.equal(stored('k').error, 'error of 3000 bytes exceeded 2048 bytes');
  });

  test('keys over 6144 bytes → -32004 with droppedKeys: the crossing item and every later one', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((c) => c.repeat(1000));
    const { h, s, stored } = metadataSetup([...keys, 'z']);
    const out = await h.metadata(s, {
      metadata: [...keys.map((k) => item(k, `v-${k[0]}`)), item('z', 'small but after the overflow')],
    });
    assert.equal(out.error?.code, RpcError.MetadataKeysTooLong);
    assert.deepEqual(out.error?.data, { droppedKeys: [keys[6], 'z'] });
    for (const k of keys.slice(0, 6)) assert.equal(stored(k).value, `v-${k[0]}`, 'the rest are written');
    assert.equal(stored(keys[6]!).value, '');
    assert.equal(stored('z').value, '');
    assert.equal(h.store.count('updateMetadataBatch'), 1);
  });

  test('the key budget counts repeats as sent; the latest value of a repeated key wins', async () => {
    const k = 'k'.repeat(2000);
    const { h, s, stored } = metadataSetup([k, 'short']);
    const out = await h.metadata(s, {
      metadata: [item(k, '1'), item('short', 'x'), item(k, '2'), item(k, '3'), item('short', 'y')],
    });
    // 2000 + 5 + 2000 = 4005; + 2000 = 6005; + 5 = 6010 ≤ 6144 → all accepted.
    assert.deepEqual(out, { result: {} });
    assert.equal(stored(k).value, '3');
    assert.equal(stored('short').value, 'y');

    const over = await h.metadata(s, {
      metadata: [item(k, '4'), item(k, '5'), item(k, '6'), item(k, '7')],
    });
    assert.equal(over.error?.code, RpcError.MetadataKeysTooLong);
    assert.deepEqual(over.error?.data, { droppedKeys: [k] });
    assert.equal(stored(k).value, '6');
  });

  test('a byte budget, not a character budget', () => {
    const key = 'é'.repeat(1000); // 2000 bytes, 1000 characters
    const { droppedKeys, updates } = limitMetadata([
      item(key, '1'),
      item(`${key}2`, '2'),
      item(`${key}3`, '3'),
      item(`${key}4`, '4'),
    ]);
    assert.equal(updates.length, 3);
    assert.deepEqual(droppedKeys, [`${key}4`]);
  });

  test('undeclared keys are ignored; collected_at is the server time, not the agent’s', async () => {
    const { h, s, stored, fx } = metadataSetup(['declared']);
    await h.clock.advance(12_345);
    const out = await h.metadata(s, {
      metadata: [
        { key: 'declared', result: { value: 'v', collectedAt: '1999-01-01T00:00:00Z', age: '5' } },
        item('undeclared', 'w'),
      ],
    });
    assert.deepEqual(out, { result: {} });
    assert.equal(stored('declared').collectedAt, new Date(h.clock.now()).toISOString());
    assert.equal(h.store.metadata.get(fx.agent.id)!.has('undeclared'), false);
  });

  test('wrong types → -32602 with data.errors; nothing authorized or written', async () => {
    const { h, s } = metadataSetup(['k']);
    for (const params of [
      {},
      { metadata: 'x' },
      { metadata: [{ key: 'k', result: { value: 1 } }] },
      { metadata: [{ key: 'k', result: { value: 'v', collectedAt: 5 } }] },
      { metadata: [{ key: 'k', result: { value: 'v', age: -1 } }] },
      // Found by the fuzz test: an age over 2^53-1 was accepted and the value written.
      { metadata: [{ key: 'k', result: { value: 'v', age: '9007199254740992' } }] },
      { metadata: [{ key: 'k', result: { value: 'v', age: 9007199254740992 } }] },
    ]) {
      const out = await h.metadata(s, params);
      assert.equal(out.error?.code, RpcError.InvalidParams, JSON.stringify(params));
      const data = out.error?.data as { errors: { path: string; message: string }[] };
      assert.ok(data.errors.length > 0);
    }
    assert.equal(h.callCount(), 0);
    assert.deepEqual(await h.cache(), { hit: 0, miss: 0 });
  });

  test('is answered only after the update committed', async () => {
    const { h, s, stored } = metadataSetup(['k']);
    h.store.hold('updateMetadataBatch');
    let answered = false;
    const p = h.metadata(s, { metadata: [item('k', 'v')] }).then((o) => {
      answered = true;
      return o;
    });
    await h.clock.advance(0);
    assert.equal(answered, false);
    h.store.release('updateMetadataBatch');
    assert.deepEqual(await p, { result: {} });
    assert.equal(stored('k').value, 'v');
  });
});

describe('UpdateStats', () => {
  test('decimal strings of any length are ints while their value is safe (leading zeros too)', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    const out = await h.stats(s, {
      stats: { rxBytes: '00000000000000001', connectionsByProto: { 'line\nbreak': '000000000000000000042' } },
    });
    assert.deepEqual(out, statsOk);
    const [row] = h.store.statsRows;
    assert.equal(row!.rxBytes, 1);
    assert.deepEqual(JSON.parse(row!.connectionsByProto), { 'line\nbreak': 42 });
  });

  test('ints as decimal strings are stored as numbers (also inside connectionsByProto)', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    const out = await h.stats(s, {
      stats: {
        connectionsByProto: { ssh: '2', vscode: 3 },
        connectionCount: '5',
        rxPackets: '9007199254740991',
        rxBytes: 10,
        txPackets: '0',
        txBytes: '77',
        sessionCountVscode: '1',
        sessionCountJetbrains: 2,
        sessionCountReconnectingPty: '3',
        sessionCountSsh: '4',
        connectionMedianLatencyMs: 1.5,
      },
    });
    assert.deepEqual(out, statsOk);
    const r = h.store.statsRows[0]!;
    assert.equal(r.connectionCount, 5);
    assert.equal(r.rxPackets, Number.MAX_SAFE_INTEGER);
    assert.equal(r.rxBytes, 10);
    assert.equal(r.txPackets, 0);
    assert.equal(r.txBytes, 77);
    assert.equal(r.sessionCountVscode, 1);
    assert.equal(r.sessionCountJetbrains, 2);
    assert.equal(r.sessionCountReconnectingPty, 3);
    assert.equal(r.sessionCountSsh, 4);
    assert.equal(r.connectionMedianLatencyMs, 1.5);
    assert.deepEqual(JSON.parse(r.connectionsByProto), { ssh: 2, vscode: 3 });
  });

  test('missing fields are 0 and the latency -1', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    assert.deepEqual(await h.stats(s, { stats: {} }), statsOk);
    const r = h.store.statsRows[0]!;
    assert.equal(r.connectionCount, 0);
    assert.equal(r.rxBytes, 0);
    assert.equal(r.sessionCountSsh, 0);
    assert.equal(r.connectionMedianLatencyMs, -1);
    assert.equal(r.connectionsByProto, '{}');
  });

  test('unsafe or malformed integers → -32602, nothing authorized or written', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    const bad: Record<string, unknown>[] = [
      { rxBytes: '9007199254740992' }, // 2^53: 16 digits, over the safe range
      { rxBytes: '99999999999999999' }, // 17 digits
      { txBytes: 9007199254740992 },
      { connectionCount: -1 },
      { connectionCount: '-1' },
      { rxPackets: 1.5 },
      { rxPackets: '1.5' },
      { rxPackets: '1e3' },
      { rxPackets: '' },
      { connectionsByProto: { ssh: '9007199254740993' } },
      { connectionsByProto: { ssh: -2 } },
      // Found by the fuzz test: typebox checks a record's values only under keys matching `^.*$`,
      // so a key with a line break let any value through (`true` stored as 1, 1e400 as null).
      { connectionsByProto: { 'a\nb': true } },
      { connectionsByProto: { 'a\rb': 1.5 } },
      { connectionsByProto: { 'a\u2028b': Number.POSITIVE_INFINITY } },
      { connectionsByProto: { 'a\u2029b': [[[]]] } },
      { connectionsByProto: { '\n': 1e16 } },
    ];
    for (const stats of bad) {
      const out = await h.stats(s, { stats });
      assert.equal(out.error?.code, RpcError.InvalidParams, JSON.stringify(stats));
      const data = out.error?.data as { errors: { path: string }[] };
      assert.ok(data.errors.length > 0);
    }
    const unsafe = await h.stats(s, { stats: { rxBytes: '9007199254740992' } });
    assert.deepEqual(
      (unsafe.error!.data as { errors: { path: string }[] }).errors.map((e) => e.path),
      ['/stats/rxBytes'],
    );
    assert.equal(h.callCount(), 0);
    assert.deepEqual(await h.cache(), { hit: 0, miss: 0 });
  });

  test('3,000 bad connectionsByProto values → at most 10 errors, an answer smaller than the request', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    // 17 digits: the schema's decimal-string pattern lets them through; the safe-integer check does not.
    const unsafe = '99999999999999999';
    const connectionsByProto: Record<string, string> = {};
    for (let i = 0; i < 3000; i++) connectionsByProto[`proto-${i}`] = unsafe;
    const params = { stats: { rxBytes: unsafe, connectionsByProto } };
    const out = await h.stats(s, params);
    assert.equal(out.error?.code, RpcError.InvalidParams);
    const errors = (out.error!.data as { errors: { path: string }[] }).errors;
    // The first ones found, in order: the top-level ints, then the map's keys.
    assert.deepEqual(
      errors.map((e) => e.path),
      ['/stats/rxBytes', ...Array.from({ length: 9 }, (_, i) => `/stats/connectionsByProto/proto-${i}`)],
    );
    // Before the cap the answer listed all 3,001 (6x the request).
    assert.ok(JSON.stringify(out.error).length < JSON.stringify(params).length / 10);
    assert.equal(h.callCount(), 0);
  });

  test('without stats: only the interval, no authorization, no store call', async () => {
    for (const cacheEnabled of [true, false]) {
      const h = new Harness({ cacheEnabled });
      // A prebuild session would take the slow path if the frame were authorized.
      const s = h.connect(h.store.fixture({ prebuild: true }));
      assert.deepEqual(await h.stats(s, {}), statsOk);
      assert.deepEqual(await h.stats(s, undefined), statsOk);
      assert.deepEqual(await h.cache(), { hit: 0, miss: 0 });
      assert.equal(await h.lookups('fallback'), 0);
      await h.clock.advance(5000);
      assert.equal(h.callCount(), 0, `cacheEnabled=${cacheEnabled}`);
    }
  });

  test('is answered only after the stats row committed', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture());
    h.store.hold('insertStatsBatch');
    let answered = false;
    const p = h.stats(s, { stats: { rxBytes: 1 } }).then((o) => {
      answered = true;
      return o;
    });
    await h.clock.advance(0);
    assert.equal(answered, false);
    assert.equal(h.store.statsRows.length, 0);
    h.store.release('insertStatsBatch');
    assert.deepEqual(await p, statsOk);
    assert.equal(h.store.statsRows.length, 1);
  });

  test('a full write buffer → -32002 at once, nothing written', async () => {
    const h = new Harness({ writeBuffer: 1 });
    const s = h.connect(h.store.fixture());
    h.store.hold('insertStatsBatch');
    const first = h.stats(s, { stats: { rxBytes: 1 } });
    await h.clock.advance(0);
    const second = await h.stats(s, { stats: { rxBytes: 2 } });
    assert.equal(second.error?.code, RpcError.Unavailable);
    h.store.release('insertStatsBatch');
    assert.deepEqual(await first, statsOk);
    assert.deepEqual(
      h.store.statsRows.map((r) => r.rxBytes),
      [1],
    );
  });

  test('activity only when connectionCount > 0, after commit, coalesced per workspace', async () => {
    const h = new Harness();
    const fx = h.store.fixture();
    const s = h.connect(fx);
    await h.stats(s, { stats: { connectionCount: 0 } });
    await h.clock.advance(2000);
    assert.equal(h.store.count('bumpAndNotifyActivity'), 0, 'no activity without connections');

    await h.stats(s, { stats: { connectionCount: 1 } });
    await h.stats(s, { stats: { connectionCount: '3' } });
    assert.equal(h.store.count('bumpAndNotifyActivity'), 0, 'not before the bump delay');
    await h.clock.advance(1000);
    assert.equal(h.store.count('bumpAndNotifyActivity'), 1);
    assert.deepEqual(h.store.activity, [
      { workspaceId: fx.workspace.id, ownerId: fx.workspace.ownerId, nextAutostart: null, bump: true },
    ]);
    // last_used_at waits for the usage flush.
    assert.equal(h.store.count('markWorkspacesUsed'), 0);
    await h.activity.flushUsage();
    assert.deepEqual(
      h.store.used.map((u) => u.workspaceIds),
      [[fx.workspace.id]],
    );
  });

  test('a prebuild’s activity is not bumped', async () => {
    const h = new Harness();
    const s = h.connect(h.store.fixture({ prebuild: true }));
    await h.stats(s, { stats: { connectionCount: 1 } });
    await h.clock.advance(1000);
    assert.equal(h.store.activity.length, 1);
    assert.equal(h.store.activity[0]!.bump, false);
    assert.equal(h.store.activity[0]!.nextAutostart, null);
  });
});

describe('nextAutostart (autostart-aware bump)', () => {
  test('CRON_TZ=Australia/Sydney 0 8 * * * at 07:30 local → 08:00 local the same day', () => {
    // 2025-01-06 07:30 in Sydney (AEDT, UTC+11) is 2025-01-05T20:30Z.
    const now = new Date('2025-01-05T20:30:00Z');
    const next = nextAutostart('CRON_TZ=Australia/Sydney 0 8 * * *', now);
    assert.equal(next?.toISOString(), '2025-01-05T21:00:00.000Z');
  });

  test('empty or unparsable schedules have no next autostart', () => {
    const now = new Date('2025-01-05T20:30:00Z');
    for (const s of [null, '', 'not a schedule', 'CRON_TZ=Nowhere/Land 0 8 * * *', '0 8 * *']) {
      assert.equal(nextAutostart(s, now), null, JSON.stringify(s));
    }
  });
});
