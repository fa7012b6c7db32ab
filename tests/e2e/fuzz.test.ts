// SPEC §4 and §7 under fuzzing: 10 000 generated frames (fast-check, fixed seed) through a real
// socket to the real `agentgate serve` on a real PostgreSQL — malformed JSON, deep nesting, huge
// numbers, wrong types in every field, lone surrogates, `__proto__` keys, batches empty / full /
// over 64, notifications, unknown methods, binary frames, invalid UTF-8, frames around the size
// limit, and valid frames that are stored. An oracle written from the SPEC alone
// (scripts/src/fuzz/oracle.ts) says what each frame must get; meanwhile a second agent's valid
// frames must all be acknowledged. Afterwards the process is alive, the database holds exactly
// what the valid frames wrote, and the gateway's RSS has not grown past its warmed-up baseline.
// A failure names the frames; `npx agentgate fuzz --frames 10000 --seed 20250611` replays them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { rssKiB, settledRss as settled } from '../../scripts/src/lab/proc-stats.ts';
import { type DriveResult, FuzzDriver, formatMismatch, mergeResults } from '../../scripts/src/fuzz/driver.ts';
import { FUZZ_METADATA_KEYS, frameArbitrary } from '../../scripts/src/fuzz/generate.ts';
import type { FuzzTarget } from '../../scripts/src/fuzz/oracle.ts';
import { type SteadyResult, startSteadyAgent } from '../../scripts/src/fuzz/steady.ts';
import { checkStored, Ledger, type StoredCheck, storedRxBytes } from '../../scripts/src/fuzz/stored.ts';
import { createFixture, type DbFixture } from '../helpers/db-fixtures.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { httpRequest } from '../helpers/http.ts';
import { sleep } from '../helpers/wait.ts';

const SEED = 20_250_611;
const FRAMES = 10_000;
/**
 * Frames sent before the RSS baseline: by then the process has seen every kind of frame. Measured
 * here: ~75 MB at start, ~95-100 MB after 1000 frames, ~115 MB from 2000 frames on and flat to
 * 10 000 (heap used back to ~15 MB: the allocator keeps its high-water mark). A leak of 6 KB a
 * frame over the other 9000 would cross the margin.
 */
const WARMUP_FRAMES = 1000;
const MAX_FRAME_BYTES = 65_536;
/** RSS allowed above the warmed-up baseline after the other 9000 frames and a pause (KiB): 50 MB. */
const RSS_MARGIN_KIB = 50 * 1024;

const target: FuzzTarget = { maxFrameBytes: MAX_FRAME_BYTES, reportInterval: '30s', declaredKeys: FUZZ_METADATA_KEYS };
const replay = `seed ${SEED}; replay with: npx agentgate fuzz --frames ${FRAMES} --seed ${SEED}`;

/** Median of five samples 300 ms apart: one sample can land just before a GC. */
const settledRss = (pid: number) => settled(pid, { everyMs: 300 });

describe('fuzz: bad input never crashes the gateway or disturbs other sessions (SPEC §4, §7)', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  let fuzzer: DbFixture;
  let neighbour: DbFixture;
  const ledger = new Ledger(FUZZ_METADATA_KEYS);
  let drive: DriveResult | undefined;
  let steady: SteadyResult | undefined;
  let rss: { start: number; baseline: number; after: number } | undefined;

  before(async () => {
    db = await freshDatabase();
    fuzzer = await createFixture(db.sql, { metadataKeys: [...FUZZ_METADATA_KEYS] });
    neighbour = await createFixture(db.sql);
    gw = await startGateway({
      databaseUrl: db.url,
      // A rate the run cannot exhaust (200 000 tokens a session, refilled at 100 000/s): no -32003.
      args: ['--session-rate', '100000', '--max-frame-bytes', String(MAX_FRAME_BYTES)],
      env: { AGENTGATE_LOG_LEVEL: 'info' },
    });
  });
  after(async () => {
    await gw?.stop();
    await db?.drop();
  });

  test(`${FRAMES} generated frames each get exactly the answer the SPEC gives them`, async () => {
    const frames = fc.sample(frameArbitrary(target), { seed: SEED, numRuns: FRAMES });
    assert.equal(frames.length, FRAMES);
    const pid = gw.child.pid!;
    const start = rssKiB(pid);
    const agent = await startSteadyAgent(gw.url, neighbour.token);
    const driver = new FuzzDriver({ url: gw.url, token: fuzzer.token, target, ledger });
    let warm: DriveResult | undefined;
    try {
      warm = await driver.run(frames.slice(0, WARMUP_FRAMES));
      const baseline = await settledRss(pid);
      drive = mergeResults(warm, await driver.run(frames.slice(WARMUP_FRAMES), WARMUP_FRAMES));
      rss = { start, baseline, after: 0 };
    } finally {
      steady = await agent.stop();
    }
    await sleep(1000);
    rss.after = await settledRss(pid);
    process.stderr.write(
      `fuzz: ${drive.frames} frames in ${drive.elapsedMs} ms, ${drive.reconnects} reconnects; ` +
        `frames ${JSON.stringify(drive.byLabel)}; closes ${JSON.stringify(drive.closes)}; ` +
        `neighbour acked ${steady.acked}; RSS ${rss.start} / ${rss.baseline} / ${rss.after} KiB (start / warmed / after)\n`,
    );
    assert.equal(
      drive.mismatches.length,
      0,
      `${drive.mismatches.length} frame(s) answered against the SPEC (${replay}):\n` +
        drive.mismatches.slice(0, 15).map(formatMismatch).join('\n'),
    );
  });

  test('the other agent was never disturbed: every frame acknowledged, each stored once', async () => {
    assert.ok(steady, 'the fuzz run did not finish');
    assert.deepEqual(steady.errors, [], 'frames of the well-behaved agent failed');
    assert.ok(steady.acked > 0, 'the well-behaved agent sent nothing');
    assert.deepEqual(await storedRxBytes(db.sql, neighbour.agentId), steady.ackedRxBytes);
  });

  test('nothing invalid is stored: every stats row and metadata value comes from a valid frame, once', async () => {
    assert.ok(drive, 'the fuzz run did not finish');
    const stored: StoredCheck = await checkStored(db.sql, fuzzer.agentId, ledger);
    process.stderr.write(
      `fuzz: stored ${stored.statsRows} stats rows (valid frames: ${ledger.statsRows}), ` +
        `${ledger.metadataWrites} metadata writes to ${stored.metadataRows} declared keys\n`,
    );
    assert.ok(ledger.statsRows > 1000 && ledger.metadataWrites > 1000, 'too few valid frames to say much');
    assert.deepEqual(stored.problems, [], `the database holds something the SPEC does not allow (${replay})`);
    assert.equal(stored.statsRows, ledger.statsRows);
  });

  test(`the process lives, answers /healthz, and its RSS stays within ${RSS_MARGIN_KIB / 1024} MB of its warmed-up baseline`, async () => {
    assert.ok(rss, 'the fuzz run did not finish');
    assert.equal(gw.child.exitCode, null, 'the gateway exited');
    assert.equal(gw.child.signalCode, null, 'the gateway was killed');
    assert.equal((await httpRequest(`${gw.httpUrl}/healthz`)).status, 200);
    assert.equal((await httpRequest(`${gw.httpUrl}/readyz`)).status, 200);
    assert.ok(
      rss.after < rss.baseline + RSS_MARGIN_KIB,
      `RSS ${rss.after} KiB after the run, baseline ${rss.baseline} KiB (+${RSS_MARGIN_KIB} KiB allowed)`,
    );
  });
});
