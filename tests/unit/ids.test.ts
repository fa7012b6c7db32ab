// Gateway row ids: valid UUIDv7, ordered by time, unique.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uuidv7 } from '../../gateway/src/store/stats.ts';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('uuidv7 is a version-7, variant-10 UUID carrying the millisecond time', () => {
  const now = Date.UTC(2026, 10, 27, 12, 0, 0, 123);
  const id = uuidv7(now);
  assert.match(id, V7);
  assert.equal(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16), now);
});

test('ids of later milliseconds sort after earlier ones, and ids do not repeat', () => {
  const seen = new Set<string>();
  let prev = '';
  for (let t = 1_700_000_000_000; t < 1_700_000_000_000 + 5000; t++) {
    const id = uuidv7(t);
    assert.ok(id > prev, `${id} does not sort after ${prev}`);
    prev = id;
    seen.add(id);
    seen.add(uuidv7(t));
  }
  assert.equal(seen.size, 10_000);
});
