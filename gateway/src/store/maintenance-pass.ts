// One maintenance pass (SPEC §10), in one process of the whole fleet at a time: a session-level
// advisory lock on a reserved connection (a broken connection ends the lock with it; the pass's
// next statement then fails). In order: partitions from yesterday to 3 days ahead, and one for
// each day of the rows waiting in the DEFAULT partition; the rollup of every ended day not yet
// rolled up; the drop of rolled-up partitions past AGENTGATE_STATS_RETENTION; the delete of rollup
// rows past AGENTGATE_STATS_ROLLUP_RETENTION. Every step is idempotent: a pass cut short is
// finished by the next one. Each pass is one row of agentgate_maintenance_runs.
import type { Logger } from '../ops/log.js';
import type { Sql } from './db.js';
import {
  addDays,
  createStatsPartition,
  DAY_MS,
  databaseClock,
  defaultPartitionDays,
  deleteLateRows,
  deleteRollupsThrough,
  dropPartition,
  emptyPartition,
  finishRun,
  partitionName,
  type RolledUpDay,
  releaseMaintenanceLock,
  rolledUpDays,
  rollUpDay,
  startRun,
  statsPartitions,
  tryMaintenanceLock,
  waitMaintenanceLock,
} from './maintenance.js';

/** SPEC §1: the maintain command's JSON line. */
export interface PassResult {
  partitionsCreated: string[];
  daysRolledUp: string[];
  partitionsDropped: string[];
  rollupRowsDeleted: number;
}

export interface RetentionSettings {
  /** 0 keeps the raw rows forever. */
  statsRetentionMs: number;
  /** 0 keeps the rollup rows forever. */
  rollupRetentionMs: number;
}

export interface PassOptions extends RetentionSettings {
  /** Who runs the pass (host:pid), as agentgate_maintenance_runs records it. */
  runner: string;
  /** Wait for another process's pass to end, then run one (`agentgate maintain`); else skip. */
  wait?: boolean;
  log?: Pick<Logger, 'info' | 'warn'>;
}

/** SPEC §2: partitions exist from yesterday to this many days ahead. */
const DAYS_AHEAD = 3;
/** A day is rolled up this long after its end: a frame commits within 30 s of its created_at (SPEC §7). */
const ROLLUP_GRACE_MS = 60_000;
/**
 * How long a DDL statement may wait for its lock before it gives up (and is retried). Inserts that
 * arrive while a DROP waits for the parent's lock queue behind it: this bounds their stall well
 * under SPEC §10's 100 ms. ATTACH locks only the DEFAULT partition, TRUNCATE only its partition.
 */
const PARENT_LOCK_TIMEOUT_MS = 50;
const PARTITION_LOCK_TIMEOUT_MS = 1000;
const LOCK_ATTEMPTS = 20;
/** Days of DEFAULT-partition rows given a partition per pass (the next pass does the rest). */
const DEFAULT_DAYS_PER_PASS = 31;

/** Runs one pass; undefined when another process holds the lock and `wait` is not set. */
export async function runMaintenancePass(sql: Sql, o: PassOptions): Promise<PassResult | undefined> {
  const conn = (await sql.reserve()) as unknown as Sql & { release(): void };
  try {
    if (!(await tryMaintenanceLock(conn))) {
      if (!o.wait) return undefined;
      await waitMaintenanceLock(conn);
    }
    try {
      const id = await startRun(conn, o.runner);
      try {
        const result = await pass(conn, o);
        await finishRun(conn, id, 'ok', result);
        return result;
      } catch (err) {
        const { message, result } = err as Error & { result?: PassResult };
        await finishRun(conn, id, 'error', { error: message, ...result }).catch(() => {});
        throw err;
      }
    } finally {
      await releaseMaintenanceLock(conn).catch(() => {});
    }
  } finally {
    conn.release();
  }
}

async function pass(sql: Sql, o: PassOptions): Promise<PassResult> {
  const result: PassResult = { partitionsCreated: [], daysRolledUp: [], partitionsDropped: [], rollupRowsDeleted: 0 };
  // A day that fails does not hold up the others; the pass then ends as an error naming it.
  const failures: string[] = [];
  const eachDay = async (days: string[], what: string, fn: (day: string) => Promise<void>) => {
    for (const day of days) {
      await fn(day).catch((err: Error) => {
        failures.push(`${what} ${day}: ${err.message}`);
        o.log?.warn({ day, err: err.message }, `maintenance: ${what} failed`);
      });
    }
  };
  const { today, nowMs } = await databaseClock(sql);
  const rolled = await rolledUpDays(sql);
  const partitions = new Set((await statsPartitions(sql)).keys());
  await createPartitions(sql, today, partitions, rolled, result, o);
  const ended = [...partitions].filter((d) => Date.parse(`${d}T00:00:00Z`) + DAY_MS + ROLLUP_GRACE_MS <= nowMs);
  await eachDay(ended.filter((d) => !rolled.has(d)).sort(), 'rollup', async (day) => {
    rolled.set(day, { rawRows: await rollUpDay(sql, day), rawDropped: false });
    result.daysRolledUp.push(day);
  });
  if (o.statsRetentionMs > 0) {
    const last = lastExpiredDay(nowMs, o.statsRetentionMs);
    await eachDay([...partitions].filter((d) => d <= last).sort(), 'drop', async (day) => {
      if (await dropRolledUp(sql, day, rolled.get(day), result, o)) result.partitionsDropped.push(partitionName(day));
    });
    const late = await deleteLateRows(sql, addDays(last, 1));
    if (late > 0) o.log?.info({ rows: late }, 'deleted late stats rows of days already rolled up and dropped');
  }
  if (o.rollupRetentionMs > 0) {
    result.rollupRowsDeleted = await deleteRollupsThrough(sql, lastExpiredDay(nowMs, o.rollupRetentionMs));
  }
  if (failures.length > 0) throw Object.assign(new Error(failures.join('; ')), { result });
  return result;
}

/** The last UTC day that ended more than `retentionMs` ago. */
function lastExpiredDay(nowMs: number, retentionMs: number): string {
  return new Date(nowMs - retentionMs - DAY_MS).toISOString().slice(0, 10);
}

/**
 * Partitions from yesterday to DAYS_AHEAD days ahead, and for the days of rows in the DEFAULT
 * partition (moved into them), except days already rolled up and dropped: their late rows stay
 * in the DEFAULT partition until retention deletes them.
 */
async function createPartitions(
  sql: Sql,
  today: string,
  partitions: Set<string>,
  rolled: Map<string, RolledUpDay>,
  result: PassResult,
  o: PassOptions,
): Promise<void> {
  const wanted = new Set<string>();
  for (let n = -1; n <= DAYS_AHEAD; n++) wanted.add(addDays(today, n));
  for (const day of await defaultPartitionDays(sql, DEFAULT_DAYS_PER_PASS)) {
    if (!rolled.get(day)?.rawDropped) wanted.add(day);
  }
  for (const day of [...wanted].sort()) {
    if (partitions.has(day)) continue;
    let moved = 0;
    const made = await withLockRetries(o, `create ${partitionName(day)}`, async () => {
      moved = await createStatsPartition(sql, day, PARENT_LOCK_TIMEOUT_MS);
    });
    if (!made) continue;
    partitions.add(day);
    result.partitionsCreated.push(partitionName(day));
    if (moved > 0) o.log?.info({ day, rows: moved }, 'moved stats rows from the default partition into their day');
  }
}

/** Empties then drops the partition of `day` once it is rolled up; rows that came later are rolled up first. */
async function dropRolledUp(
  sql: Sql,
  day: string,
  done: RolledUpDay | undefined,
  result: PassResult,
  o: PassOptions,
): Promise<boolean> {
  if (!done) return false; // not rolled up: kept until it is
  if (!done.rawDropped) {
    let rawRows = done.rawRows;
    let emptied = false;
    for (let round = 0; round < 2 && !emptied; round++) {
      const ok = await withLockRetries(o, `truncate ${partitionName(day)}`, async () => {
        emptied = await emptyPartition(sql, day, rawRows, PARTITION_LOCK_TIMEOUT_MS);
      });
      if (!ok) return false;
      if (!emptied) {
        rawRows = await rollUpDay(sql, day);
        if (!result.daysRolledUp.includes(day)) result.daysRolledUp.push(day);
      }
    }
    if (!emptied) return false;
  }
  return withLockRetries(o, `drop ${partitionName(day)}`, () => dropPartition(sql, day, PARENT_LOCK_TIMEOUT_MS));
}

/** Retries `fn` when its lock wait timed out (55P03); false when every attempt did (the next pass tries again). */
async function withLockRetries(o: PassOptions, what: string, fn: () => Promise<void>): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fn();
      return true;
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03') throw err;
      if (attempt >= LOCK_ATTEMPTS) {
        o.log?.warn({ what, attempts: attempt }, 'maintenance: lock busy; left for the next pass');
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
    }
  }
}
