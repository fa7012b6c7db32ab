// SPEC §11, end to end: a real Prometheus (Debian's `prometheus`) scrapes a real gateway on
// loopback every second while agents report, with the alert rules loaded. Every dashboard query
// (Grafana's variables filled in as Grafana would) returns at least one number, and every alert
// rule evaluates without error against the real series. Without the binary this prints one line
// and skips.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';
import { ALERTS_FILE, alertRules, dashboardQueries, REPO, substitute } from '../helpers/ops-kit.ts';
import { type PrometheusServer, startPrometheus } from '../helpers/prometheus-server.ts';
import { loadFixtures, type RunningLoad, startLoad } from '../helpers/short-load.ts';
import { findTool } from '../helpers/system-tool.ts';
import { eventually } from '../helpers/wait.ts';

const PROMETHEUS = findTool('prometheus');
if (!PROMETHEUS) console.log('skipped: prometheus is not installed (apt-get install prometheus)');

const JOB = 'agentgate';

describe('§11 a real Prometheus scrapes a gateway under load', { skip: !PROMETHEUS }, () => {
  let db: TestDatabase;
  let gw: GatewayProcess;
  let prom: PrometheusServer;
  let load: RunningLoad;
  let target: string;

  before(async () => {
    db = await freshDatabase();
    const fixtures = await loadFixtures(db.sql, 4);
    // A maintenance pass every second, so that its series move within the test (SPEC §10).
    gw = await startGateway({ databaseUrl: db.url, env: { AGENTGATE_MAINTENANCE_INTERVAL: '1s' } });
    target = new URL(gw.httpUrl).host;
    prom = await startPrometheus(PROMETHEUS!, { job: JOB, targets: [target], ruleFiles: [`${REPO}/${ALERTS_FILE}`] });
    load = await startLoad(gw.url, gw.httpUrl, fixtures, { gapMs: 100 });
  });
  after(async () => {
    await load?.stop();
    await prom?.stop();
    await gw?.stop();
    await db?.drop();
  });

  test('every dashboard query returns data', async () => {
    // $__rate_interval is at least 4 scrape intervals in Grafana; Prometheus here scrapes every 1 s.
    const vars = { job: JOB, instance: target, rateInterval: '5s' };
    const queries = dashboardQueries().map((q) => ({ ...q, promql: substitute(q.expr, vars) }));
    let empty: string[] = [];
    await eventually(
      'every dashboard query to return a number',
      async () => {
        empty = [];
        for (const q of queries) {
          const result = await prom.query(q.promql);
          if (!result.some((s) => Number.isFinite(s.value))) {
            empty.push(`${q.where}: ${q.promql} → ${JSON.stringify(result)}`);
          }
        }
        return empty.length === 0;
      },
      { timeoutMs: 25_000, intervalMs: 1000 },
    ).catch(() => undefined);
    assert.deepEqual(empty, []);
    assert.ok(load.rounds > 0);
  });

  test('every alert rule evaluates against the real series without error', async () => {
    interface Rule {
      name: string;
      health: string;
      lastError?: string;
      lastEvaluation: string;
    }
    const names = alertRules().map((r) => r.alert);
    const rules = await eventually(
      'every rule evaluated once',
      async () => {
        const data = await prom.api<{ groups: { rules: Rule[] }[] }>('rules');
        const all = data.groups.flatMap((g) => g.rules);
        return all.length === names.length && all.every((r) => !r.lastEvaluation.startsWith('0001')) && all;
      },
      { timeoutMs: 15_000, intervalMs: 500 },
    );
    assert.deepEqual(rules.map((r) => r.name).sort(), [...names].sort());
    assert.deepEqual(
      rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`),
      [],
    );
  });
});
