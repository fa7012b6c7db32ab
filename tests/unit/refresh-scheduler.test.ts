// SPEC §5 refresh timing (RefreshScheduler alone): the first tick jittered within [interval/2,
// interval], then every interval, backoff 1 s, 2 s, 4 s … capped at 30 s and at the interval after
// a failure, and nothing ever again after stop(). SPEC §8 pushes: urgent, never postponing a tick
// due sooner; with the cache off only pushes arm the timer. The one timer is named `refresh`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_RETRY_BACKOFF_MS, RefreshScheduler } from '../../gateway/src/session/refresh-scheduler.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { MINUTE } from './harness.ts';

/** A scheduler whose run() records the time of every tick and answers from `results` (default ok). */
function scheduler(intervalMs: number, random: () => number, results: boolean[] = [], periodic = true) {
  const clock = new FakeClock();
  const t0 = clock.now();
  const ticks: number[] = [];
  const urgent: boolean[] = [];
  const s = new RefreshScheduler(clock, { intervalMs, periodic, random }, async (u) => {
    ticks.push(clock.now() - t0);
    urgent.push(u);
    return results.shift() ?? true;
  });
  return { clock, s, ticks, urgent };
}

const gaps = (ticks: number[]) => ticks.slice(1).map((t, i) => t - ticks[i]!);

describe('RefreshScheduler', () => {
  test('the first tick is at interval * (0.5 + 0.5 * random()) after start', async () => {
    const interval = 5 * MINUTE;
    for (const r of [0, 0.25, 0.5, 0.75, 0.999999]) {
      const { clock, s, ticks } = scheduler(interval, () => r);
      s.start();
      const want = Math.round(interval * (0.5 + 0.5 * r));
      assert.deepEqual(
        clock.pending('refresh').map((p) => p.delay),
        [want],
      );
      await clock.advance(want - 1);
      assert.deepEqual(ticks, [], `r=${r}: ticked before ${want} ms`);
      await clock.advance(1);
      assert.deepEqual(ticks, [want], `r=${r}`);
      assert.ok(want >= interval / 2 && want <= interval);
    }
  });

  test('first ticks of many sessions spread over [interval/2, interval]', async () => {
    const interval = 60_000;
    let seed = 42;
    // A small LCG: deterministic, uniform enough to cover the range.
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const clock = new FakeClock();
    const t0 = clock.now();
    const ticks: number[] = [];
    for (let i = 0; i < 200; i++) {
      new RefreshScheduler(clock, { intervalMs: interval, periodic: true, random }, async () => {
        ticks.push(clock.now() - t0);
        return true;
      }).start();
    }
    await clock.advance(interval);
    const first = ticks.slice(0, 200);
    assert.equal(first.length, 200);
    assert.ok(Math.min(...first) >= interval / 2);
    assert.ok(Math.max(...first) <= interval);
    // Not in step: the ticks land on many distinct times across both halves of the range.
    assert.ok(new Set(first).size > 150);
    assert.ok(first.some((t) => t < 0.6 * interval));
    assert.ok(first.some((t) => t > 0.9 * interval));
  });

  test('after the first tick it ticks every interval', async () => {
    const interval = 5 * MINUTE;
    const { clock, s, ticks } = scheduler(interval, () => 0);
    s.start();
    await clock.advance(interval / 2 + 4 * interval);
    assert.deepEqual(ticks, [interval / 2, 1.5 * interval, 2.5 * interval, 3.5 * interval, 4.5 * interval]);
  });

  test('failures back off 1 s, 2 s, 4 s … capped at 30 s; a success resets to the interval', async () => {
    const interval = 5 * MINUTE;
    const results = [false, false, false, false, false, false, false, false, true, false];
    const { clock, s, ticks } = scheduler(interval, () => 0, results);
    s.start();
    await clock.advance(interval / 2 + 1000 + 2000 + 4000 + 8000 + 16000 + 30000 + 30000 + 30000 + interval);
    assert.equal(MAX_RETRY_BACKOFF_MS, 30_000);
    assert.deepEqual(gaps(ticks), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, interval]);
    // The failure after the success starts the backoff over at 1 s.
    await clock.advance(1000);
    assert.deepEqual(gaps(ticks).at(-1), 1000);
  });

  test('the backoff is capped at the interval when the interval is shorter', async () => {
    const interval = 3000;
    const { clock, s, ticks } = scheduler(interval, () => 0, [false, false, false, false]);
    s.start();
    await clock.advance(interval / 2 + 1000 + 2000 + 3000 + 3000);
    assert.deepEqual(gaps(ticks), [1000, 2000, 3000, 3000]);
  });

  test('stop() before the first tick: nothing ever runs', async () => {
    const { clock, s, ticks } = scheduler(MINUTE, () => 0.3);
    s.start();
    s.stop();
    assert.equal(s.armed, false);
    assert.deepEqual(clock.pending(), []);
    await clock.advance(100 * MINUTE);
    assert.deepEqual(ticks, []);
  });

  test('stop() during a run: no tick is re-armed after it', async () => {
    const clock = new FakeClock();
    let release: (ok: boolean) => void = () => {};
    let runs = 0;
    const s = new RefreshScheduler(clock, { intervalMs: MINUTE, periodic: true, random: () => 0 }, () => {
      runs++;
      return new Promise<boolean>((resolve) => {
        release = resolve;
      });
    });
    s.start();
    await clock.advance(MINUTE / 2);
    assert.equal(runs, 1);
    s.stop();
    release(false);
    await clock.advance(0);
    assert.deepEqual(clock.pending(), []);
    await clock.advance(100 * MINUTE);
    assert.equal(runs, 1);
  });

  test('push(d) replaces the pending tick with an urgent one d from now; ignored after stop', async () => {
    const { clock, s, ticks, urgent } = scheduler(MINUTE, () => 0);
    s.start();
    await clock.advance(1000);
    s.push(500);
    assert.equal(clock.pending('refresh').length, 1, 'the tick was replaced, not added to');
    await clock.advance(499);
    assert.deepEqual(ticks, []);
    await clock.advance(1);
    assert.deepEqual(ticks, [1500]);
    assert.deepEqual(urgent, [true], 'a pushed refresh is urgent');
    assert.deepEqual(
      clock.pending('refresh').map((p) => p.delay),
      [MINUTE],
      'after the early refresh the next tick is an interval away',
    );
    await clock.advance(MINUTE);
    assert.deepEqual(urgent, [true, false], 'a timer tick is not');
    s.stop();
    s.push(0);
    assert.deepEqual(clock.pending(), []);
  });

  test('with the cache off (not periodic) only pushes arm the timer, and nothing is re-armed after', async () => {
    const { clock, s, ticks, urgent } = scheduler(MINUTE, () => 0, [], false);
    s.start();
    assert.deepEqual(clock.pending('refresh'), [], 'no periodic tick');
    s.push(200);
    await clock.advance(200);
    assert.deepEqual(ticks, [200]);
    assert.deepEqual(urgent, [true]);
    assert.deepEqual(clock.pending('refresh'), [], 'no tick after a pushed refresh');
    await clock.advance(10 * MINUTE);
    assert.deepEqual(ticks, [200]);
  });

  test('push never postpones a tick due sooner (SPEC §8): repeated later pushes cannot starve it', async () => {
    const { clock, s, ticks, urgent } = scheduler(MINUTE, () => 0);
    s.start();
    await clock.advance(29_000);
    const armed = clock.armedNamed('refresh').length;
    // Pushes every 100 ms, each asking for a refresh 5 s on: the tick due at 30 s stays.
    for (let i = 0; i < 10; i++) {
      s.push(5000);
      await clock.advance(100);
    }
    assert.deepEqual(ticks, [MINUTE / 2]);
    assert.deepEqual(urgent, [true], 'the kept tick ran as urgent: it was pushed too');
    assert.equal(clock.armedNamed('refresh').length - armed, 1, 'only the interval after the tick was armed');
    // A push due sooner than the next tick still brings it forward.
    s.push(5000);
    await clock.advance(5000);
    assert.deepEqual(ticks, [MINUTE / 2, MINUTE / 2 + 5000]);
  });

  test('push while a refresh runs: that refresh still comes after it, and one timer chain remains', async () => {
    const clock = new FakeClock();
    const starts: number[] = [];
    const releases: ((ok: boolean) => void)[] = [];
    const t0 = clock.now();
    const s = new RefreshScheduler(clock, { intervalMs: MINUTE, periodic: true, random: () => 0 }, () => {
      starts.push(clock.now() - t0);
      return new Promise<boolean>((resolve) => releases.push(resolve));
    });
    s.start();
    await clock.advance(MINUTE / 2);
    assert.deepEqual(starts, [MINUTE / 2]);
    // A NOTIFY arrives while the timer's read is in flight (it may have read before the commit).
    s.push(0);
    await clock.advance(0);
    assert.deepEqual(starts, [MINUTE / 2, MINUTE / 2], 'the pushed refresh runs beside the one in flight');
    releases[0]!(true);
    await clock.advance(0);
    releases[1]!(true);
    await clock.advance(0);
    assert.equal(clock.pending().length, 1, 'one timer chain, not two');
    await clock.advance(MINUTE);
    assert.equal(starts.length, 3);
    assert.equal(clock.pending().length, 0, 'the third refresh is in flight; nothing else is armed');
  });
});
