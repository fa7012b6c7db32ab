// SPEC §10 with real `serve` processes: each runs a maintenance pass at start and every
// --maintenance-interval, and the advisory lock lets only one of them run at a time. Proven from
// the database: every pass is a row of agentgate_maintenance_runs with its start and end (the
// server's clock_timestamp(), taken while the lock is held), and no two of them overlap.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { samples, scrape } from '../helpers/prometheus.ts';
import { eventually } from '../helpers/wait.ts';

interface Run {
  runner: string;
  started: string;
  finished: string | null;
  outcome: string | null;
  overlaps: boolean;
}

describe('maintenance passes of two gateways on one database (SPEC §10)', () => {
  let db: TestDatabase;
  const gateways: GatewayProcess[] = [];

  before(async () => {
    db = await freshDatabase();
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await db?.drop();
  });

  test('both run passes, never two at once', async () => {
    for (let i = 0; i < 2; i++) {
      gateways.push(await startGateway({ databaseUrl: db.url, args: ['--maintenance-interval', '20ms'] }));
    }
    const pids = gateways.map((g) => g.child.pid!);
    const perRunner = () => db.sql<{ runner: string; n: number }[]>`
      select runner, count(*)::int as n from agentgate_maintenance_runs where finished_at is not null group by runner`;
    await eventually(
      'ten finished passes of each gateway',
      async () => {
        const rows = await perRunner();
        return pids.every((pid) => rows.some((r) => r.runner.endsWith(`:${pid}`) && r.n >= 10));
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const metrics = await scrape(gateways[0]!.httpUrl);
    await Promise.all(gateways.map((g) => g.stop()));

    // Each pass against the one that started before it, in the order the server stamped them.
    const runs = await db.sql<Run[]>`
      select runner, started_at::text as started, finished_at::text as finished, outcome,
             coalesce(started_at < lag(finished_at) over (order by started_at, id), false) as overlaps
      from agentgate_maintenance_runs order by started_at, id`;
    assert.ok(runs.length >= 20, `${runs.length} passes`);
    for (const pid of pids)
      assert.ok(
        runs.some((r) => r.runner.endsWith(`:${pid}`)),
        `gateway ${pid} ran passes`,
      );
    for (const r of runs) {
      assert.equal(r.outcome, 'ok', `a pass of ${r.runner} at ${r.started}: ${r.outcome}`);
      assert.equal(r.overlaps, false, `a pass of ${r.runner} started at ${r.started}, before the previous one ended`);
    }

    // SPEC §10 metrics, every outcome exported from the start.
    for (const outcome of ['ok', 'skipped', 'error']) {
      assert.equal(samples(metrics, 'agentgate_maintenance_runs_total', { outcome }).length, 1, outcome);
    }
    assert.ok(samples(metrics, 'agentgate_maintenance_runs_total', { outcome: 'ok' })[0]!.value >= 1);
    assert.equal(samples(metrics, 'agentgate_maintenance_runs_total', { outcome: 'error' })[0]!.value, 0);
    assert.ok(samples(metrics, 'agentgate_maintenance_duration_seconds_count')[0]!.value >= 1);
    // No stats row yet: the oldest row's timestamp is the current time.
    const oldest = samples(metrics, 'agentgate_stats_oldest_row_timestamp_seconds')[0]!.value;
    assert.ok(Math.abs(oldest - Date.now() / 1000) < 600, `oldest row timestamp ${oldest}`);
  });
});
