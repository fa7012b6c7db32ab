// SPEC §7 Signals and §8 Workers, the parts that need no process: the shutdown-signal rules on the
// fake clock (a repeat within 1 s is the same request, a later one skips the drain), the restart
// backoff of a dying worker, and the merge of the workers' /metrics parts in the primary.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import pino from 'pino';
import { RestartBackoff } from '../../gateway/src/cluster/restart-backoff.ts';
import { TreeMetrics } from '../../gateway/src/cluster/tree-metrics.ts';
import { AgentMetrics } from '../../gateway/src/ops/agent-metrics.ts';
import { GatewayMetrics } from '../../gateway/src/ops/metrics.ts';
import { ShutdownSignals } from '../../gateway/src/serve/signals.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

function captured() {
  const lines: { level: number; msg: string; signal?: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

const settled = <T>(p: Promise<T>) => {
  let done = false;
  void p.then(() => {
    done = true;
  });
  return () => done;
};

describe('ShutdownSignals', () => {
  test('a repeat within 1 s is the same request; a later signal forces; "shutting down" once', async () => {
    const clock = new FakeClock();
    const proc = new EventEmitter();
    const { log, lines } = captured();
    const signals = new ShutdownSignals(log, clock, proc).install();
    const requested = settled(signals.requested);
    const forced = settled(signals.forced);

    proc.emit('SIGINT', 'SIGINT');
    await clock.advance(50);
    proc.emit('SIGINT', 'SIGINT');
    await clock.advance(900);
    proc.emit('SIGTERM', 'SIGTERM');
    await new Promise((r) => setImmediate(r));
    assert.equal(requested(), true);
    assert.equal(await signals.requested, 'SIGINT');
    assert.equal(forced(), false, 'a repeat within 1 s must not skip the drain');
    assert.equal(signals.isForced, false);
    assert.equal(lines.filter((l) => l.msg === 'shutting down').length, 1);
    // The repeat reads as npm's relay of one Ctrl-C, not as a second key press.
    assert.equal(
      lines.filter((l) => l.msg === 'the same signal again within 1 s (npm relays Ctrl-C); one shutdown goes on')
        .length,
      2,
    );

    await clock.advance(500); // 1.45 s after the first
    proc.emit('SIGINT', 'SIGINT');
    await new Promise((r) => setImmediate(r));
    assert.equal(forced(), true);
    assert.equal(signals.isForced, true);
    assert.equal(lines.filter((l) => l.msg === 'shutting down').length, 1);
    assert.ok(lines.some((l) => l.level === 40 && /skipping the rest of the drain/.test(l.msg)));
  });

  test('the handlers stay installed: every later signal is handled, none reaches the default action', () => {
    const proc = new EventEmitter();
    const { log } = captured();
    new ShutdownSignals(log, new FakeClock(), proc).install();
    for (let i = 0; i < 3; i++) {
      proc.emit('SIGINT', 'SIGINT');
      proc.emit('SIGTERM', 'SIGTERM');
      assert.equal(proc.listenerCount('SIGINT'), 1);
      assert.equal(proc.listenerCount('SIGTERM'), 1);
    }
  });
});

describe('RestartBackoff', () => {
  test('1 s doubling to 30 s while workers die young; reset after a worker lived 60 s', () => {
    const b = new RestartBackoff();
    const young = Array.from({ length: 8 }, () => b.after(500));
    assert.deepEqual(young, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(b.after(59_999), 30_000, 'under 60 s is still young');
    assert.equal(b.after(60_000), 1000, 'a worker that lived 60 s resets the backoff');
    assert.equal(b.after(10), 2000);
  });
});

const ID = 'agent_name="main",username="alice",workspace_name="dev",template_name="docker"';
const labels = { agentName: 'main', username: 'alice', workspaceName: 'dev', templateName: 'docker' };

/** The merged text of `parts` (one GatewayMetrics and one AgentMetrics per worker). */
async function merge(parts: { metrics: GatewayMetrics; agents: AgentMetrics }[], now: number): Promise<string> {
  const tree = new TreeMetrics();
  for (const p of parts) {
    tree.addRegistry(await p.metrics.registry.getMetricsAsJSON());
    for (const part of p.agents.sampleParts(now, 2)) tree.addAgents(part);
  }
  let text = '';
  for await (const chunk of tree.chunks()) text += chunk;
  return text;
}

const line = (text: string, prefix: string) => text.split('\n').filter((l) => l.startsWith(prefix));

describe('TreeMetrics', () => {
  test("the gateway's counters, gauges and histograms are summed over workers", async () => {
    const a = { metrics: new GatewayMetrics(), agents: new AgentMetrics(60_000, () => {}) };
    const b = { metrics: new GatewayMetrics(), agents: new AgentMetrics(60_000, () => {}) };
    a.metrics.sessions.set(3);
    b.metrics.sessions.set(4);
    a.metrics.frame('UpdateStats', 'ok');
    for (let i = 0; i < 5; i++) b.metrics.frame('UpdateStats', 'ok');
    b.metrics.lookup('connect');
    a.metrics.cacheHit.inc(7);
    a.metrics.ack('UpdateStats', 0.003);
    b.metrics.ack('UpdateStats', 0.003);
    b.metrics.ack('UpdateStats', 2);
    const text = await merge([a, b], 0);
    assert.deepEqual(line(text, 'agentgate_sessions '), ['agentgate_sessions 7']);
    assert.deepEqual(line(text, 'agentgate_frames_total{method="UpdateStats",outcome="ok"}'), [
      'agentgate_frames_total{method="UpdateStats",outcome="ok"} 6',
    ]);
    assert.deepEqual(line(text, 'agentgate_workspace_lookups_total{reason="connect"}'), [
      'agentgate_workspace_lookups_total{reason="connect"} 1',
    ]);
    assert.deepEqual(line(text, 'agentgate_identity_cache_total{result="hit"}'), [
      'agentgate_identity_cache_total{result="hit"} 7',
    ]);
    assert.deepEqual(line(text, 'agentgate_ack_latency_seconds_count{method="UpdateStats"}'), [
      'agentgate_ack_latency_seconds_count{method="UpdateStats"} 3',
    ]);
    assert.deepEqual(line(text, 'agentgate_ack_latency_seconds_bucket{le="0.005",method="UpdateStats"}'), [
      'agentgate_ack_latency_seconds_bucket{le="0.005",method="UpdateStats"} 2',
    ]);
    assert.equal(line(text, '# TYPE agentgate_sessions ').length, 1);
  });

  test("an agent's series appear once, with the most recent report, grouped per family", async () => {
    const a = { metrics: new GatewayMetrics(), agents: new AgentMetrics(60_000, () => {}) };
    const b = { metrics: new GatewayMetrics(), agents: new AgentMetrics(60_000, () => {}) };
    const cpu = (value: number) => [{ name: 'cpu', type: 'GAUGE' as const, value }];
    // The same agent on both workers: its socket on b reported last.
    a.agents.update('agent-1', labels, cpu(1), 1000);
    b.agents.update('agent-1', labels, cpu(2), 2000);
    // And the other way round for another series.
    a.agents.update('agent-1', labels, [{ name: 'mem', type: 'GAUGE', value: 9 }], 3000);
    b.agents.update('agent-1', labels, [{ name: 'mem', type: 'GAUGE', value: 8 }], 2500);
    // Other agents of the same family on each worker (more lines than a part holds).
    for (let i = 0; i < 5; i++) {
      a.agents.update(`a-${i}`, { ...labels, agentName: `a${i}` }, cpu(i), 1000);
      b.agents.update(`b-${i}`, { ...labels, agentName: `b${i}` }, cpu(i), 1000);
    }
    const text = await merge([a, b], 3000);
    assert.deepEqual(line(text, `agentgate_agent_cpu{${ID}}`), [`agentgate_agent_cpu{${ID}} 2`]);
    assert.deepEqual(line(text, `agentgate_agent_mem{${ID}}`), [`agentgate_agent_mem{${ID}} 9`]);
    assert.equal(line(text, 'agentgate_agent_cpu{').length, 11);
    assert.equal(line(text, '# TYPE agentgate_agent_cpu ').length, 1);
    // Every sample of a family follows its one header.
    const rows = text.split('\n');
    const header = rows.indexOf('# TYPE agentgate_agent_cpu gauge');
    const cpuRows = rows.flatMap((r, i) => (r.startsWith('agentgate_agent_cpu{') ? [i] : []));
    assert.deepEqual(
      cpuRows,
      cpuRows.map((_, k) => header + 1 + k),
    );
  });
});
