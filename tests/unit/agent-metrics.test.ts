// SPEC §4 UpdateStats step 2: agent metrics on /metrics as `agentgate_agent_<name>` with the four
// identity labels plus the metric's own; invalid names dropped and counted; reserved or invalid own
// labels dropped (series kept); the caps (names, labels, series, 64 KiB per agent) drop and count;
// series expire after two report intervals; forget() on identity change; chunks of bounded bytes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Metric } from '@agentgate/shared';
import { type AgentLabels, AgentMetrics } from '../../gateway/src/ops/agent-metrics.ts';
import { CHUNK_BYTES } from '../../gateway/src/ops/exposition.ts';
import { GatewayMetrics } from '../../gateway/src/ops/metrics.ts';

const INTERVAL = 30_000;
const AGENT = '7e6d5c4b-3a29-4817-8615-243342516071';
const labels: AgentLabels = { agentName: 'main', username: 'alice', workspaceName: 'dev', templateName: 'docker' };
const ID_LABELS = 'agent_name="main",username="alice",workspace_name="dev",template_name="docker"';

function setup() {
  let dropped = 0;
  const m = new AgentMetrics(2 * INTERVAL, (n) => {
    dropped += n;
  });
  return { m, dropped: () => dropped };
}

/** Sample lines (no comments) of a rendering. */
const samples = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

describe('AgentMetrics', () => {
  test('exported as agentgate_agent_<name> with the identity labels, value as last reported', () => {
    const { m } = setup();
    m.update(AGENT, labels, [{ name: 'cpu_seconds', type: 'COUNTER', value: 1 }], 0);
    m.update(AGENT, labels, [{ name: 'cpu_seconds', type: 'COUNTER', value: 7.5 }], 1000);
    const text = m.render(1000);
    assert.deepEqual(samples(text), [`agentgate_agent_cpu_seconds{${ID_LABELS}} 7.5`]);
    assert.match(text, /^# TYPE agentgate_agent_cpu_seconds counter$/m);
  });

  test('metric types map to counter, gauge and untyped', () => {
    const { m } = setup();
    m.update(
      AGENT,
      labels,
      [
        { name: 'a', type: 'COUNTER', value: 1 },
        { name: 'b', type: 'GAUGE', value: 2 },
        { name: 'c', type: 'TYPE_UNSPECIFIED', value: 3 },
      ],
      0,
    );
    const text = m.render(0);
    assert.match(text, /^# TYPE agentgate_agent_a counter$/m);
    assert.match(text, /^# TYPE agentgate_agent_b gauge$/m);
    assert.match(text, /^# TYPE agentgate_agent_c untyped$/m);
  });

  test('invalid metric names are dropped and counted, the rest of the report is kept', () => {
    const { m, dropped } = setup();
    const metrics: Metric[] = [
      { name: '1starts_with_digit', type: 'GAUGE', value: 1 },
      { name: 'has-dash', type: 'GAUGE', value: 1 },
      { name: 'has space', type: 'GAUGE', value: 1 },
      { name: '', type: 'GAUGE', value: 1 },
      { name: 'ünicode', type: 'GAUGE', value: 1 },
      { name: 'ok_name:sub', type: 'GAUGE', value: 2 },
      { name: '_leading_underscore', type: 'GAUGE', value: 3 },
    ];
    assert.equal(m.update(AGENT, labels, metrics, 0), 5);
    assert.equal(dropped(), 5);
    assert.deepEqual(samples(m.render(0)).sort(), [
      `agentgate_agent__leading_underscore{${ID_LABELS}} 3`,
      `agentgate_agent_ok_name:sub{${ID_LABELS}} 2`,
    ]);
  });

  test('dropped metrics reach agentgate_agent_metrics_dropped_total', async () => {
    const gm = new GatewayMetrics();
    const m = new AgentMetrics(2 * INTERVAL, (n) => gm.agentMetricsDropped.inc(n));
    m.update(
      AGENT,
      labels,
      [
        { name: 'bad-1', type: 'GAUGE', value: 1 },
        { name: 'bad-2', type: 'GAUGE', value: 1 },
      ],
      0,
    );
    const { values } = await gm.registry.getSingleMetric('agentgate_agent_metrics_dropped_total')!.get();
    assert.equal(values[0]?.value, 2);
  });

  test('own labels with a reserved or invalid name are dropped; the series is kept', () => {
    const { m } = setup();
    m.update(
      AGENT,
      labels,
      [
        {
          name: 'requests',
          type: 'COUNTER',
          value: 4,
          labels: [
            { name: 'agent_name', value: 'spoofed' },
            { name: 'username', value: 'spoofed' },
            { name: 'workspace_name', value: 'spoofed' },
            { name: 'template_name', value: 'spoofed' },
            { name: 'bad-label', value: 'x' },
            { name: '9lives', value: 'x' },
            { name: '__reserved', value: 'x' },
            { name: 'method', value: 'GET' },
            { name: 'code', value: '200' },
          ],
        },
      ],
      0,
    );
    const lines = samples(m.render(0));
    assert.equal(lines.length, 1);
    assert.equal(lines[0], `agentgate_agent_requests{${ID_LABELS},code="200",method="GET"} 4`);
    assert.doesNotMatch(lines[0]!, /spoofed/);
  });

  test('label values are escaped', () => {
    const { m } = setup();
    m.update(
      AGENT,
      { ...labels, workspaceName: 'a"b\\c\nd' },
      [{ name: 'x', type: 'GAUGE', value: 1, labels: [{ name: 'l', value: 'q"' }] }],
      0,
    );
    assert.match(m.render(0), /workspace_name="a\\"b\\\\c\\nd"/);
    assert.match(m.render(0), /l="q\\""/);
  });

  test('repeated own label names do not produce an invalid series', () => {
    const { m } = setup();
    m.update(
      AGENT,
      labels,
      [
        {
          name: 'dup',
          type: 'GAUGE',
          value: 1,
          labels: [
            { name: 'zone', value: 'a' },
            { name: 'zone', value: 'b' },
          ],
        },
      ],
      0,
    );
    // Prometheus rejects the whole scrape when one series repeats a label name, which would hide
    // every other session's metrics ("bad input never disturbs other sessions", SPEC §7).
    for (const line of samples(m.render(0))) {
      const names = [...line.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)].map((x) => x[1]);
      assert.equal(new Set(names).size, names.length, `duplicate label name in ${line}`);
    }
  });

  test("an agent metric cannot collide with the gateway's own family on /metrics", async () => {
    // /metrics is the gateway registry followed by the agent series (Gateway.renderMetrics).
    const gm = new GatewayMetrics();
    const m = new AgentMetrics(2 * INTERVAL, (n) => gm.agentMetricsDropped.inc(n));
    m.update(AGENT, labels, [{ name: 'metrics_dropped_total', type: 'COUNTER', value: 1e9 }], 0);
    const text = (await gm.registry.metrics()) + m.render(0);
    const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1]);
    const repeated = families.filter((f, i) => families.indexOf(f) !== i);
    assert.deepEqual(repeated, [], 'a family declared twice makes the whole scrape invalid');
  });

  test('a series not reported for 2 report intervals disappears; a reported one stays', () => {
    const { m } = setup();
    m.update(AGENT, labels, [{ name: 'old', type: 'GAUGE', value: 1 }], 0);
    m.update(AGENT, labels, [{ name: 'fresh', type: 'GAUGE', value: 1 }], 0);
    m.update(AGENT, labels, [{ name: 'fresh', type: 'GAUGE', value: 2 }], 2 * INTERVAL);
    assert.equal(samples(m.render(2 * INTERVAL)).length, 2, 'still there at exactly 2 intervals');
    const later = samples(m.render(2 * INTERVAL + 1));
    assert.deepEqual(later, [`agentgate_agent_fresh{${ID_LABELS}} 2`]);
    assert.deepEqual(samples(m.render(4 * INTERVAL + 1)), []);
  });

  test('forget drops the agent’s series; the next report uses the new labels', () => {
    const { m } = setup();
    const other = 'aaaaaaaa-3a29-4817-8615-243342516071';
    m.update(AGENT, labels, [{ name: 'x', type: 'GAUGE', value: 1 }], 0);
    m.update(other, { ...labels, agentName: 'other' }, [{ name: 'x', type: 'GAUGE', value: 9 }], 0);
    m.forget(AGENT);
    const after = samples(m.render(0));
    assert.equal(after.length, 1, 'only the other agent’s series');
    assert.match(after[0]!, /agent_name="other"/);
    m.update(AGENT, { ...labels, workspaceName: 'renamed' }, [{ name: 'x', type: 'GAUGE', value: 2 }], 1);
    const text = m.render(1);
    assert.match(text, /workspace_name="renamed"[^}]*\} 2/);
    assert.doesNotMatch(text, /workspace_name="dev",template_name="docker"\} 1/);
  });

  test('a report under new identity labels replaces the series under the old ones', () => {
    const { m } = setup();
    m.update(AGENT, labels, [{ name: 'x', type: 'GAUGE', value: 1 }], 0);
    m.update(AGENT, { ...labels, username: 'bob' }, [{ name: 'x', type: 'GAUGE', value: 2 }], 1);
    const lines = samples(m.render(1));
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /username="bob"/);
  });

  test('special values render as Prometheus text (NaN, +Inf, -Inf)', () => {
    const { m } = setup();
    m.update(
      AGENT,
      labels,
      [
        { name: 'n', type: 'GAUGE', value: Number.NaN },
        { name: 'p', type: 'GAUGE', value: Number.POSITIVE_INFINITY },
        { name: 'm', type: 'GAUGE', value: Number.NEGATIVE_INFINITY },
      ],
      0,
    );
    const text = m.render(0);
    assert.match(text, /agentgate_agent_n\{[^}]*\} NaN/);
    assert.match(text, /agentgate_agent_p\{[^}]*\} \+Inf/);
    assert.match(text, /agentgate_agent_m\{[^}]*\} -Inf/);
  });

  test('SPEC §4 caps: at most 200 series per agent; new series beyond are dropped and counted', () => {
    const { m, dropped } = setup();
    const batch = (from: number, n: number): Metric[] =>
      Array.from({ length: n }, (_, i) => ({ name: `m${from + i}`, type: 'GAUGE', value: 1 }));
    // The repro of the review: 150 frames of 1,200 distinct names from one agent.
    for (let f = 0; f < 150; f++) m.update(AGENT, labels, batch(f * 1200, 1200), f);
    assert.equal(m.size, 200, 'the agent holds 200 series, not 180,000');
    assert.equal(dropped(), 150 * 1200 - 200);
    // An existing series still updates; another agent has its own 200.
    m.update(AGENT, labels, [{ name: 'm0', type: 'GAUGE', value: 42 }], 200);
    assert.match(m.render(200), /^agentgate_agent_m0\{[^}]*\} 42$/m);
    m.update('other-agent', labels, batch(0, 10), 200);
    assert.equal(m.size, 210);
  });

  test('SPEC §4 caps: a metric with more than 16 own labels or a label value over 1024 bytes is dropped', () => {
    const { m, dropped } = setup();
    const many = Array.from({ length: 17 }, (_, i) => ({ name: `l${i}`, value: 'v' }));
    const sixteen = many.slice(0, 16);
    m.update(
      AGENT,
      labels,
      [
        { name: 'too_many', type: 'GAUGE', value: 1, labels: many },
        { name: 'sixteen', type: 'GAUGE', value: 1, labels: sixteen },
        { name: 'long_ascii', type: 'GAUGE', value: 1, labels: [{ name: 'l', value: 'a'.repeat(1025) }] },
        { name: 'ok_ascii', type: 'GAUGE', value: 1, labels: [{ name: 'l', value: 'a'.repeat(1024) }] },
        // '€' is 3 bytes in UTF-8: 342 of them are 1026 bytes, 341 are 1023.
        { name: 'long_utf8', type: 'GAUGE', value: 1, labels: [{ name: 'l', value: '€'.repeat(342) }] },
        { name: 'ok_utf8', type: 'GAUGE', value: 1, labels: [{ name: 'l', value: '€'.repeat(341) }] },
      ],
      0,
    );
    const names = samples(m.render(0)).map((l) => l.slice(0, l.indexOf('{')));
    assert.deepEqual(names.sort(), ['agentgate_agent_ok_ascii', 'agentgate_agent_ok_utf8', 'agentgate_agent_sixteen']);
    assert.equal(dropped(), 3);
  });

  test('SPEC §4 caps: a name or an own label name over 128 bytes drops the metric, counted; 128 are kept', () => {
    const { m, dropped } = setup();
    const name = (n: number) => `n${'x'.repeat(n - 1)}`;
    const label = (n: number) => [{ name: `l${'y'.repeat(n - 1)}`, value: 'v' }];
    const metrics: Metric[] = [
      { name: name(128), type: 'GAUGE', value: 1 },
      { name: name(129), type: 'GAUGE', value: 1 },
      // The repro of issue 12: a 60 KB name.
      { name: name(60_000), type: 'GAUGE', value: 1 },
      { name: 'label_128', type: 'GAUGE', value: 1, labels: label(128) },
      { name: 'label_129', type: 'GAUGE', value: 1, labels: label(129) },
      // 16 labels with 2,900-byte names were accepted before.
      {
        name: 'labels_2900',
        type: 'GAUGE',
        value: 1,
        labels: Array.from({ length: 16 }, (_, i) => ({ name: `l${i}_${'z'.repeat(2900)}`, value: 'v' })),
      },
      // Not a valid label name either way, but 43 '€' are 129 bytes: still over the bound.
      { name: 'label_utf8', type: 'GAUGE', value: 1, labels: [{ name: '€'.repeat(43), value: 'v' }] },
    ];
    assert.equal(m.update(AGENT, labels, metrics, 0), 5);
    assert.equal(dropped(), 5);
    const names = samples(m.render(0)).map((l) => l.slice(0, l.indexOf('{')));
    assert.deepEqual(names.sort(), ['agentgate_agent_label_128', `agentgate_agent_${name(128)}`]);
  });

  test('SPEC §4 caps: every new series that would take the agent over 64 KiB of text is dropped and counted', () => {
    const { m, dropped } = setup();
    // Lines of about 8 KB: 16 labels of 500 bytes.
    const big = (i: number): Metric => ({
      name: `big_${i}`,
      type: 'GAUGE',
      value: -0.0000012345678901234567, // the longest value text
      labels: Array.from({ length: 16 }, (_, k) => ({ name: `l${k}`, value: 'v'.repeat(500) })),
    });
    m.update(
      AGENT,
      labels,
      Array.from({ length: 12 }, (_, i) => big(i)),
      0,
    );
    const agentText = () => samples(m.render(0)).join('\n').length + samples(m.render(0)).length;
    assert.ok(agentText() <= 64 * 1024, `the agent's text is ${agentText()} bytes`);
    assert.ok(agentText() > 64 * 1024 - 8500, 'filled up to the last line that fits');
    const kept = samples(m.render(0)).length;
    assert.equal(dropped(), 12 - kept);
    // Known series still update; a new one that fits is kept; another agent has its own 64 KiB.
    assert.equal(m.update(AGENT, labels, [big(0), big(13), { name: 'small', type: 'GAUGE', value: 1 }], 1), 1);
    assert.equal(samples(m.render(1)).length, kept + 1);
    m.update('other-agent', { ...labels, agentName: 'other' }, [big(0)], 1);
    assert.equal(samples(m.render(1)).length, kept + 2);
    // Expired series give their bytes back.
    m.sweep(2 * INTERVAL + 2);
    m.update(AGENT, labels, [big(20)], 2 * INTERVAL + 2);
    assert.match(m.render(2 * INTERVAL + 2), /^agentgate_agent_big_20\{/m);
  });

  test('a rendering is cut in chunks of bounded bytes, however long the lines', () => {
    const { m } = setup();
    for (let a = 0; a < 40; a++) {
      const series = Array.from(
        { length: 8 },
        (_, i): Metric => ({
          name: `m${i}`,
          type: 'GAUGE',
          value: i,
          labels: Array.from({ length: 8 }, (_, k) => ({ name: `l${k}`, value: '€'.repeat(300) })),
        }),
      );
      m.update(`agent-${a}`, { ...labels, agentName: `a${a}` }, series, 0);
    }
    const chunks = [...m.chunks(0)];
    assert.ok(chunks.length > 10, `${chunks.length} chunks`);
    const longestLine = Math.max(
      ...m
        .render(0)
        .split('\n')
        .map((l) => Buffer.byteLength(`${l}\n`)),
    );
    for (const c of chunks)
      assert.ok(Buffer.byteLength(c) < CHUNK_BYTES + longestLine + 200, `${Buffer.byteLength(c)}`);
    assert.equal(chunks.join(''), m.render(0));
  });

  test('expired series are swept on a timer, with no scrape', async () => {
    const { FakeClock } = await import('../helpers/fake-clock.ts');
    const clock = new FakeClock(0);
    const { m } = setup();
    m.startSweeping(clock);
    m.update(AGENT, labels, [{ name: 'x', type: 'GAUGE', value: 1 }], 0);
    await clock.advance(2 * INTERVAL);
    assert.equal(m.size, 1, 'kept for two report intervals');
    await clock.advance(INTERVAL);
    assert.equal(m.size, 0, 'swept without any render');
    m.stopSweeping();
    assert.deepEqual(clock.pending(), [], 'stopSweeping leaves no timer');
  });

  test('a rendering in chunks has each family header once, before its first sample', () => {
    const { m } = setup();
    for (let a = 0; a < 300; a++) {
      m.update(
        `agent-${a}`,
        { ...labels, agentName: `a${a}` },
        [
          { name: 'cpu', type: 'GAUGE', value: a },
          { name: 'mem', type: 'GAUGE', value: a },
        ],
        0,
      );
    }
    const chunks = [...m.chunks(0)];
    const text = chunks.join('');
    assert.equal(text, m.render(0));
    assert.equal(samples(text).length, 600);
    for (const fam of ['cpu', 'mem']) {
      assert.equal(text.split(`# TYPE agentgate_agent_${fam} gauge`).length - 1, 1);
      const header = text.indexOf(`# TYPE agentgate_agent_${fam} `);
      const first = text.indexOf(`agentgate_agent_${fam}{`);
      assert.ok(header < first);
    }
  });
});
