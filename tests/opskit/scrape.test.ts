// SPEC §11: every metric name that a dashboard or alert expression selects is exported by a real
// gateway that has served a short load (stats with connections and metrics, metadata, refusals,
// closes), in one process and with --workers 2 (where /metrics is merged over the workers).
// `up` is Prometheus's own. Histograms are compared by their sample names (_bucket, _sum, _count).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import type { DbFixture } from '../helpers/db-fixtures.ts';
import { startGateway } from '../helpers/gateway-process.ts';
import { kitMetricNames } from '../helpers/ops-kit.ts';
import { scrape } from '../helpers/prometheus.ts';
import { loadFixtures, startLoad } from '../helpers/short-load.ts';
import { eventually } from '../helpers/wait.ts';

const PROMETHEUS_OWN = new Set(['up']);

/** The kit's metric names that the gateway's /metrics does not have, with where each is used. */
async function missingAfterLoad(db: TestDatabase, fixtures: DbFixture[], args: string[]): Promise<string[]> {
  const gw = await startGateway({ databaseUrl: db.url, args });
  try {
    const load = await startLoad(gw.url, gw.httpUrl, fixtures, { rounds: 3 });
    await load.done;
    await load.stop();
    const wanted = [...kitMetricNames()].filter(([name]) => !PROMETHEUS_OWN.has(name));
    let missing: string[] = [];
    // The closes and the batch histograms are counted just after the answers: poll briefly.
    await eventually(
      'every metric of the kit in /metrics',
      async () => {
        const names = new Set((await scrape(gw.httpUrl)).map((s) => s.name));
        missing = wanted.filter(([name]) => !names.has(name)).map(([name, where]) => `${name} (${where.join('; ')})`);
        return missing.length === 0;
      },
      { timeoutMs: 5000, intervalMs: 200 },
    ).catch(() => undefined);
    return missing;
  } finally {
    await gw.stop();
  }
}

describe('§11 every metric the kit uses is exported', () => {
  let db: TestDatabase;
  let fixtures: DbFixture[];

  before(async () => {
    db = await freshDatabase();
    fixtures = await loadFixtures(db.sql, 4);
  });
  after(async () => {
    await db?.drop();
  });

  test('the kit uses the gateway series it should', () => {
    const names = [...kitMetricNames().keys()];
    for (const n of [
      'agentgate_sessions',
      'agentgate_frames_total',
      'agentgate_ack_latency_seconds_bucket',
      'agentgate_write_buffer_frames',
      'agentgate_write_buffer_capacity_frames',
      'agentgate_write_batch_size_bucket',
      'agentgate_identity_cache_total',
      'agentgate_workspace_lookups_total',
      'agentgate_identity_refresh_total',
      'agentgate_identity_notifications_total',
      'agentgate_identity_listening',
      'agentgate_connections_refused_total',
      'agentgate_sessions_closed_total',
      'agentgate_database_up',
      'agentgate_nodejs_eventloop_lag_p99_seconds',
      'agentgate_process_resident_memory_bytes',
      'agentgate_process_cpu_seconds_total',
      'agentgate_maintenance_runs_total',
      'agentgate_stats_oldest_row_timestamp_seconds',
      'up',
    ]) {
      assert.ok(names.includes(n), `the kit does not use ${n}`);
    }
  });

  test('one process', async () => {
    assert.deepEqual(await missingAfterLoad(db, fixtures, []), []);
  });

  test('--workers 2', async () => {
    assert.deepEqual(await missingAfterLoad(db, fixtures, ['--workers', '2']), []);
  });
});
