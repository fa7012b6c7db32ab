// SPEC §7 rate limit: the bucket starts full, holds 2 s worth and refills at the rate.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenBucket } from '../../gateway/src/rpc/router.ts';

/** Takes until refused (at most `max`); returns how many were granted. */
function drain(b: TokenBucket, now: number, max = 100_000): number {
  let n = 0;
  while (n < max && b.take(now)) n++;
  return n;
}

describe('TokenBucket', () => {
  test('starts full with 2 s worth of tokens', () => {
    assert.equal(drain(new TokenBucket(100, 0), 0), 200);
    assert.equal(drain(new TokenBucket(10, 5_000), 5_000), 20);
    assert.equal(drain(new TokenBucket(1, 0), 0), 2);
  });

  test('refills at the rate: one token per 1/rate seconds', () => {
    const b = new TokenBucket(10, 0);
    assert.equal(drain(b, 0), 20);
    assert.equal(b.take(99), false, 'not yet a whole token after 99 ms at 10/s');
    assert.equal(b.take(100), true);
    assert.equal(b.take(100), false);
    assert.equal(drain(b, 600), 5, '500 ms more → 5 tokens');
  });

  test('refill is capped at the capacity (2 s worth), however long the pause', () => {
    const b = new TokenBucket(10, 0);
    drain(b, 0);
    assert.equal(drain(b, 3_600_000), 20);
  });

  test('a steady stream at the rate is never refused; a faster one is, after the burst', () => {
    const b = new TokenBucket(100, 0);
    for (let t = 0; t < 10_000; t += 10) assert.equal(b.take(t), true, `refused at ${t} ms`);

    const fast = new TokenBucket(100, 0);
    let granted = 0;
    // 200/s for 10 s: the burst (200) plus the refill (100/s × 10 s ≈ 1000).
    for (let t = 0; t < 10_000; t += 5) if (fast.take(t)) granted++;
    assert.ok(granted >= 1195 && granted <= 1201, `granted ${granted}`);
  });

  test('tokens taken below capacity refill while the bucket is not empty', () => {
    const b = new TokenBucket(10, 0);
    for (let i = 0; i < 10; i++) assert.equal(b.take(0), true);
    // 1 s later: 10 left + 10 refilled = 20 (capacity).
    assert.equal(drain(b, 1000), 20);
  });
});
