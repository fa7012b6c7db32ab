// SPEC §7 Signals and §8 Workers, the parts that need no process: the shutdown-signal rules on the
// fake clock (a repeat within 1 s is the same request, a later one skips the drain), the restart
// backoff of a dying worker, the merge of the workers' /metrics parts in the primary, and how the
// primary answers a worker's /metrics (pulled piece by piece; one gather shared by the scrapes of
// a second), with fake workers on the fake clock.
import assert from 'node:assert/strict';
import type { Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import pino from 'pino';
import { ANSWER_BYTES, PART_BYTES, type ToWorker } from '../../gateway/src/cluster/ipc.ts';
import { RestartBackoff } from '../../gateway/src/cluster/restart-backoff.ts';
import { TreeMetrics } from '../../gateway/src/cluster/tree-metrics.ts';
import { TreeQuestions } from '../../gateway/src/cluster/tree-questions.ts';
import { AgentMetrics } from '../../gateway/src/ops/agent-metrics.ts';
import { cutAtLines } from '../../gateway/src/ops/exposition.ts';
import { GatewayMetrics } from '../../gateway/src/ops/metrics.ts';
import { ShutdownSignals } from '../../gateway/src/instance/signals.ts';
import { FakeClock, settle } from '../helpers/fake-clock.ts';

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
async function merge(
  parts: { metrics: GatewayMetrics; agents: AgentMetrics }[],
  now: number,
  partBytes = 2,
): Promise<string> {
  const tree = new TreeMetrics();
  for (const p of parts) {
    tree.addRegistry(await p.metrics.registry.getMetricsAsJSON());
    for (const part of p.agents.sampleParts(now, partBytes)) tree.addAgents(part, p);
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

  for (const partBytes of [2, PART_BYTES]) {
    test(`an agent's series appear once, with the most recent report, grouped per family (parts of ${partBytes} bytes)`, async () => {
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
      // And one more on both after the others (its lines end the blocks): a's report is the later one.
      const two = { ...labels, agentName: 'two' };
      a.agents.update('agent-2', two, cpu(20), 1500);
      b.agents.update('agent-2', two, cpu(21), 1200);
      const text = await merge([a, b], 3000, partBytes);
      assert.deepEqual(line(text, `agentgate_agent_cpu{${ID}}`), [`agentgate_agent_cpu{${ID}} 2`]);
      assert.deepEqual(line(text, `agentgate_agent_mem{${ID}}`), [`agentgate_agent_mem{${ID}} 9`]);
      assert.deepEqual(line(text, 'agentgate_agent_cpu{agent_name="two"'), [
        'agentgate_agent_cpu{agent_name="two",username="alice",workspace_name="dev",template_name="docker"} 20',
      ]);
      assert.equal(line(text, 'agentgate_agent_cpu{').length, 12);
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
  }

  test('a body is cut in chunks of bounded size at line ends, each line whole', async () => {
    const w = { metrics: new GatewayMetrics(), agents: new AgentMetrics(60_000, () => {}) };
    // 1000 bytes of UTF-8 (under the 1024 cap), 500 characters.
    const long = [{ name: 'pad', value: 'é'.repeat(500) }];
    for (let a = 0; a < 300; a++) {
      const series = Array.from({ length: 20 }, (_, i) => ({
        name: `m${i}`,
        type: 'GAUGE' as const,
        value: i,
        labels: long,
      }));
      w.agents.update(`agent-${a}`, { ...labels, agentName: `a${a}` }, series, 0);
    }
    const tree = new TreeMetrics();
    for (const part of w.agents.sampleParts(0, PART_BYTES)) tree.addAgents(part, w);
    const chunks: string[] = [];
    for await (const c of tree.chunks(64 * 1024)) chunks.push(c);
    assert.ok(chunks.length > 50, `${chunks.length} chunks`);
    for (const c of chunks) {
      assert.ok(c.length < 64 * 1024 + 1200, `${c.length}`);
      assert.ok(c.endsWith('\n'), 'a chunk ends at a line end');
    }
    assert.equal(line(chunks.join(''), 'agentgate_agent_m7{').length, 300);
    for (const piece of cutAtLines(chunks.join(''), 10_000)) {
      assert.ok(piece.endsWith('\n') && piece.length < 10_000 + 1200, `a piece of ${piece.length}`);
    }
    assert.equal([...cutAtLines(chunks.join(''), 10_000)].join(''), chunks.join(''));
  });
});

/**
 * A worker as the primary sees it: what the primary sends it is recorded; on `gather` it sends its
 * part (its gateway registry and its agents' series) at once, as a real worker would.
 */
class FakeWorker {
  readonly sent: ToWorker[] = [];
  readonly agents = new AgentMetrics(60_000, () => {});
  readonly metrics = new GatewayMetrics();
  questions: TreeQuestions | undefined;
  constructor(readonly process: { pid: number }) {}
  isConnected(): boolean {
    return true;
  }
  send(m: ToWorker, cb?: (err: Error | null) => void): boolean {
    this.sent.push(m);
    cb?.(null);
    if (m.agentgate === 'gather') void this.part(m.id);
    return true;
  }
  private async part(id: number): Promise<void> {
    const w = this as unknown as Worker;
    this.questions!.onPart(w, { agentgate: 'part', id, registry: await this.metrics.registry.getMetricsAsJSON() });
    for (const agents of this.agents.sampleParts(0, PART_BYTES))
      this.questions!.onPart(w, { agentgate: 'part', id, agents });
    this.questions!.onPart(w, { agentgate: 'part', id, done: true });
  }
  answers(id: number) {
    return this.sent.flatMap((m) => (m.agentgate === 'answer' && m.id === id ? [m] : []));
  }
  get gathers(): number {
    return this.sent.filter((m) => m.agentgate === 'gather').length;
  }
}

/** Two workers whose agents report about `bytes` of series in all, and the primary's TreeQuestions. */
function tree(bytes: number) {
  const clock = new FakeClock(0);
  const { log, lines } = captured();
  const workers = [new FakeWorker({ pid: 101 }), new FakeWorker({ pid: 102 })];
  const questions = new TreeQuestions(log, () => workers as unknown as Worker[], clock);
  // Lines of about 1 KB: 8 series per agent.
  const series = Array.from({ length: 8 }, (_, i) => ({
    name: `m${i}`,
    type: 'GAUGE' as const,
    value: i,
    labels: [{ name: 'pad', value: 'p'.repeat(900) }],
  }));
  const agents = Math.ceil(bytes / 8000);
  for (let a = 0; a < agents; a++) {
    workers[a % 2]!.agents.update(`agent-${a}`, { ...labels, agentName: `a${a}` }, series, 0);
  }
  for (const w of workers) w.questions = questions;
  const asker = (i: number) => workers[i]! as unknown as Worker;
  return { clock, lines, workers, questions, asker, agents };
}

/** Lets the event loop turn until `cond` holds (the gather runs on promises and prom-client's collection). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await settle(1);
  assert.ok(cond(), 'the condition never held');
}

const bodyOf = (w: FakeWorker, id: number) => w.answers(id).flatMap((m) => (m.chunk === undefined ? [] : [m.chunk]));

describe('TreeQuestions: /metrics answers', () => {
  test('pulled: the next piece only after the asking worker took the last one; the whole body in the end', async () => {
    const { workers, questions, asker, agents } = tree(4.5 * ANSWER_BYTES);
    const done = questions.answer(asker(0), 7, 'metrics');
    await until(() => workers[0]!.answers(7).length > 0);
    assert.equal(workers[0]!.answers(7).length, 1, 'one piece, then the primary waits');
    await settle(50);
    assert.equal(workers[0]!.answers(7).length, 1, 'still one: nothing is pushed without a pull');
    for (let i = 0; i < 100 && !workers[0]!.answers(7).at(-1)!.done; i++) {
      const before = workers[0]!.answers(7).length;
      questions.onMore(asker(0), { agentgate: 'more', id: 7 });
      await settle();
      assert.equal(workers[0]!.answers(7).length, before + 1, 'one piece per pull');
    }
    await done;
    assert.equal(workers[0]!.answers(7).at(-1)!.done, true);
    const body = bodyOf(workers[0]!, 7);
    assert.ok(body.length >= 4, `${body.length} pieces for 4.5 pieces' worth of series`);
    for (const piece of body) assert.ok(piece.length < ANSWER_BYTES + 2000, `a piece of ${piece.length}`);
    const text = body.join('');
    assert.equal(line(text, 'agentgate_agent_m0{').length, agents, 'every agent once');
    assert.equal(line(text, '# TYPE agentgate_agent_m0 ').length, 1);
  });

  test('a stop, the asking worker exiting, or no pull for 60 s ends the answer: nothing more is sent', async () => {
    const { clock, workers, questions, asker, lines } = tree(4.5 * ANSWER_BYTES);
    const stopped = questions.answer(asker(0), 1, 'metrics');
    const exited = questions.answer(asker(1), 2, 'metrics');
    await until(() => workers[0]!.answers(1).length > 0 && workers[1]!.answers(2).length > 0);
    questions.onMore(asker(0), { agentgate: 'more', id: 1 });
    await settle();
    questions.onMore(asker(0), { agentgate: 'more', id: 1, stop: true });
    questions.forget(asker(1));
    await Promise.all([stopped, exited]);
    assert.equal(workers[0]!.answers(1).length, 2);
    assert.equal(workers[1]!.answers(2).length, 1);
    assert.ok(!workers[0]!.answers(1).some((m) => m.done), 'a stopped answer is not finished');

    const idle = questions.answer(asker(0), 3, 'metrics');
    await until(() => workers[0]!.answers(3).length > 0);
    await clock.advance(59_999);
    assert.equal(workers[0]!.answers(3).length, 1);
    await clock.advance(1);
    await idle;
    assert.equal(workers[0]!.answers(3).length, 1, 'not pulled for 60 s: given up');
    assert.equal(lines.filter((l) => /stopped pulling/.test(l.msg)).length, 3);
  });

  test('concurrent scrapes share one gather, and so do the scrapes of the next second; then a new one', async () => {
    const { clock, workers, questions, asker } = tree(100_000);
    const pullAll = async (w: number, id: number) => {
      const answering = questions.answer(asker(w), id, 'metrics');
      for (let taken = 0; !workers[w]!.answers(id).at(-1)?.done; taken++) {
        await until(() => workers[w]!.answers(id).length > taken);
        if (!workers[w]!.answers(id).at(-1)!.done) questions.onMore(asker(w), { agentgate: 'more', id });
      }
      await answering;
      return bodyOf(workers[w]!, id).join('');
    };
    const [a, b] = await Promise.all([pullAll(0, 1), pullAll(1, 1)]);
    assert.equal(a, b, 'one body for both');
    assert.deepEqual(
      workers.map((w) => w.gathers),
      [1, 1],
      'one gather for the two scrapes',
    );
    await clock.advance(999);
    assert.equal(await pullAll(0, 2), a);
    assert.deepEqual(
      workers.map((w) => w.gathers),
      [1, 1],
      'reused within the second',
    );
    await clock.advance(1);
    await pullAll(1, 2);
    assert.deepEqual(
      workers.map((w) => w.gathers),
      [2, 2],
      'gathered anew after it',
    );
  });
});
