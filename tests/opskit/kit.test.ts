// SPEC §11: the dashboard and the alert rules as files. Every expression is valid PromQL for
// Prometheus's own parser (after Grafana's variables are substituted), every dashboard selector is
// filtered by the job and instance variables, the dashboard imports with a DS_PROMETHEUS
// datasource, every alert has a severity, a summary, a description and a runbook_url that lands
// on a heading of docs/runbook.md, and alerts.test.yml fires and spares each alert at least once.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ALERTS_FILE,
  allPanels,
  alertQueries,
  alertRules,
  alertTestCases,
  dashboardQueries,
  markdownAnchors,
  parseKitQuery,
  parsePromQL,
  RUNBOOK_FILE,
  readDashboard,
  readRepoFile,
  selectors,
  substitute,
  variableQuery,
} from '../helpers/ops-kit.ts';

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not JavaScript's.
const DS = '${DS_PROMETHEUS}';

describe('§11 the PromQL of the kit', () => {
  test('the parser finds the errors it should (the check can fail)', () => {
    for (const bad of [
      'rate(agentgate_frames_total[5m]',
      'sum by (le (x)',
      'x{job=~"a"',
      'a >',
      'x[$__rate_interval]',
    ]) {
      assert.ok(parsePromQL(bad).errors.length > 0, `${bad} must not parse`);
    }
    assert.deepEqual(parsePromQL('sum(rate(a_total{job="x"}[5m])) / on (job) b + time() - c').metricNames, [
      'a_total',
      'b',
      'c',
    ]);
    assert.throws(() => substitute('x{job=~"$jobs"}', { job: 'a', instance: 'b', rateInterval: '1m' }), /\$jobs/);
  });

  test('every dashboard and alert expression parses with no error node', () => {
    const queries = [...dashboardQueries(), ...alertQueries()];
    assert.ok(queries.length >= 40, `only ${queries.length} expressions found`);
    const bad = queries.flatMap((q) => {
      const p = parseKitQuery(q);
      return p.errors.length > 0 ? [`${q.where}: error at ${p.errors[0]} in ${p.text}`] : [];
    });
    assert.deepEqual(bad, []);
    for (const q of queries) assert.ok(parseKitQuery(q).metricNames.length > 0, `${q.where} selects no metric`);
  });
});

describe('§11 the dashboard', () => {
  const d = readDashboard();

  test('imports with a DS_PROMETHEUS datasource and has job and instance variables', () => {
    assert.ok(d.schemaVersion >= 36, `schemaVersion ${d.schemaVersion}`);
    assert.deepEqual(
      d.__inputs?.map((i) => [i.name, i.type, i.pluginId]),
      [['DS_PROMETHEUS', 'datasource', 'prometheus']],
    );
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get('DS_PROMETHEUS')?.type, 'datasource');
    assert.equal(vars.get('job')?.type, 'query');
    assert.equal(vars.get('instance')?.type, 'query');
    assert.match(variableQuery(vars.get('job')!), /^label_values\(.+, job\)$/);
    assert.match(variableQuery(vars.get('instance')!), /^label_values\(.+\{job=~"\$job"\}, instance\)$/);
    for (const v of ['job', 'instance']) assert.equal(vars.get(v)?.datasource?.uid, DS, v);
  });

  test('every panel queries the DS_PROMETHEUS datasource', () => {
    for (const p of allPanels(d)) {
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, DS, `panel ${p.title}`);
      assert.ok((p.targets ?? []).length > 0, `panel ${p.title} has no query`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, DS, `panel ${p.title} ${t.refId}`);
    }
    const ids = allPanels(d).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  });

  test('every selector of every panel is filtered by $job and $instance', () => {
    const bad: string[] = [];
    for (const q of dashboardQueries(d)) {
      if (q.where.startsWith('variable')) continue;
      // Only the interval is replaced: "$job" and "$instance" stay, as strings, where the matchers are.
      const text = q.expr.replaceAll('$__rate_interval', '5m');
      const p = parsePromQL(text);
      for (const s of selectors(p.tree, text)) {
        const has = (name: string) =>
          s.matchers.some((m) => m.name === name && m.op === '=~' && m.value === `$${name}`);
        if (!has('job') || !has('instance')) bad.push(`${q.where}: ${s.name} in ${q.expr}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  test('has the panels of the issue', () => {
    const titles = allPanels(d).map((p) => p.title ?? '');
    for (const want of [
      /^Sessions per instance$/,
      /^Frames\/s by method and outcome$/,
      /^Ack latency p50 and p99$/,
      /^Write-buffer fill$/,
      /^Batch sizes$/,
      /^Identity cache hits against lookups$/,
      /^Identity refreshes by outcome$/,
      /^Push notifications$/,
      /^LISTEN state$/,
      /^Refusals by reason$/,
      /^Session closes by code$/,
      /^Database up$/,
      /^Event-loop lag$/,
      /^Resident memory$/,
      /^CPU$/,
      /^Maintenance/,
    ]) {
      assert.ok(
        titles.some((t) => want.test(t)),
        `no panel titled ${want}`,
      );
    }
    const ack = allPanels(d).find((p) => p.title === 'Ack latency p50 and p99')!;
    assert.deepEqual(
      ack.targets?.map(
        (t) => /^histogram_quantile\((0\.\d+), .*agentgate_ack_latency_seconds_bucket/.exec(t.expr!)?.[1],
      ),
      ['0.5', '0.99'],
    );
  });
});

describe('§11 the alert rules', () => {
  const rules = alertRules();
  const anchors = new Set(markdownAnchors(readRepoFile(RUNBOOK_FILE)));

  test('every alert has a severity, a summary, a description and a runbook_url into a runbook heading', () => {
    assert.ok(rules.length >= 10, `${ALERTS_FILE} has ${rules.length} alerts`);
    assert.equal(new Set(rules.map((r) => r.alert)).size, rules.length, 'alert names are unique');
    for (const r of rules) {
      assert.match(r.labels?.['severity'] ?? '', /^(critical|warning)$/, r.alert);
      assert.ok(r.annotations?.['summary'], `${r.alert} summary`);
      assert.ok(r.annotations?.['description'], `${r.alert} description`);
      const url = r.annotations?.['runbook_url'] ?? '';
      const m = /^docs\/runbook\.md#(.+)$/.exec(url);
      assert.ok(m, `${r.alert} runbook_url ${url}`);
      assert.ok(anchors.has(m[1]!), `${r.alert}: no heading of ${RUNBOOK_FILE} has the anchor #${m[1]}`);
      assert.equal(m[1], r.alert.toLowerCase(), `${r.alert} points at its own section`);
    }
  });

  test('the runbook has a section per alert and no other alert section, and its own links land', () => {
    const runbook = readRepoFile(RUNBOOK_FILE);
    const alertSections = [...runbook.matchAll(/^## (Agentgate\w+)$/gm)].map((m) => m[1]);
    assert.deepEqual(alertSections.sort(), rules.map((r) => r.alert).sort());
    const links = [...runbook.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    assert.ok(links.length > 0);
    for (const l of links) assert.ok(anchors.has(l), `the runbook links to #${l}, which is no heading`);
  });

  test('the anchors follow GitHub: lower case, punctuation out, spaces to hyphens, duplicates numbered', () => {
    assert.deepEqual(markdownAnchors('# A `b`: c/d\n```\n# not a heading\n```\n## A b c/d\n### Über-Straße_1'), [
      'a-b-cd',
      'a-b-cd-1',
      'über-straße_1',
    ]);
  });

  test('alerts.test.yml fires every alert at least once and spares it at least once', () => {
    const fired = new Map<string, number>();
    const spared = new Map<string, number>();
    for (const c of alertTestCases()) {
      for (const a of c.alert_rule_test ?? []) {
        const m = (a.exp_alerts ?? []).length > 0 ? fired : spared;
        m.set(a.alertname, (m.get(a.alertname) ?? 0) + 1);
      }
    }
    for (const r of rules) {
      assert.ok(fired.get(r.alert), `no test fires ${r.alert}`);
      assert.ok(spared.get(r.alert), `no test where ${r.alert} stays quiet`);
    }
    const unknown = [...fired.keys(), ...spared.keys()].filter((n) => !rules.some((r) => r.alert === n));
    assert.deepEqual(unknown, []);
  });
});
