// `npx agentgate scrape`: how `/metrics` holds up with many agent series (SPEC §4, §8): one scrape
// of 10,000 agents × 20 series answers within 1 s and does not stall the sockets, with one process
// or `--workers N`. A program, not a test: it prints numbers.
//
// It starts an embedded PostgreSQL, seeds the agents, runs `agentgate serve --workers N`, connects
// every agent (and a second socket for `--dual` of them: consecutive connections go to alternate
// workers, so those agents report the same series on two workers), sends one UpdateStats with
// `--series` metrics per socket, then scrapes. Per scrape: the time to the whole body, the series
// in it, the workers' event-loop delay (perf_hooks.monitorEventLoopDelay through prom-client's
// `nodejs_eventloop_lag_max_seconds`, max over the workers, read by the next scrape), and the
// worst answer time of a probe agent that sends a frame every 10 ms meanwhile.
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { type OptionTable, type Options, parse } from '@agentgate/gateway/options';
import { type LabDatabase, openDatabase } from './lab/database.js';
import { metricValue, stalledScrape, timedGet } from './lab/http.js';
import { onInterrupt } from './lab/interrupt.js';
import { type ServerProcess, startGateway } from './lab/process.js';
import { childPids, rssKiB, treeCpu, treeCpuDelta } from './lab/proc-stats.js';
import { RawSocket } from './lab/raw-socket.js';
import { type SeededAgent, seed } from './seed.js';

export const SCRAPE_OPTIONS = {
  agents: { flag: '--agents', kind: 'int', min: 1, max: 18_000, default: '10000', help: 'agents, one socket each' },
  series: { flag: '--series', kind: 'int', min: 1, max: 200, default: '20', help: 'metric series each agent reports' },
  workers: { flag: '--workers', kind: 'int', min: 1, max: 16, default: '2', help: 'gateway worker processes' },
  dual: {
    flag: '--dual',
    kind: 'int',
    min: 0,
    default: '1000',
    help: 'agents that also open a second socket (on the other worker): their series must appear once',
  },
  scrapes: { flag: '--scrapes', kind: 'int', min: 1, max: 100, default: '5', help: 'scrapes measured' },
  labelBytes: {
    flag: '--label-bytes',
    kind: 'int',
    min: 0,
    max: 1024,
    default: '0',
    help: 'bytes of an extra own label (`pad`) on every series (a larger body for the same series)',
  },
  nameBytes: {
    flag: '--name-bytes',
    kind: 'int',
    min: 0,
    max: 100_000,
    default: '0',
    help: 'pad every metric name to this many bytes, one metric per frame (over 128 they must be dropped)',
  },
  stalled: {
    flag: '--stalled',
    kind: 'int',
    min: 0,
    max: 1000,
    default: '0',
    help: 'then scrapes that read one packet and stop: the RSS of every gateway process before, with them, and after',
  },
  json: { flag: '--json', kind: 'out-file', help: 'also write the summary as JSON to this file' },
} as const satisfies OptionTable;

type ScrapeOptions = Options<typeof SCRAPE_OPTIONS>;

/** RSS in MiB of `root` and of each of its children (the workers), by PID. */
function treeRss(root: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of [root, ...childPids(root)]) out[pid === root ? `${pid} (root)` : String(pid)] = rssKiB(pid) >> 10;
  return out;
}

/**
 * `n` scrapes that read one packet and stop: RSS of the tree before, at its peak over the next 8 s
 * (sampled every 250 ms), and 3 s after the clients closed; and the status each got.
 */
async function stalledScrapes(root: number, httpUrl: string, n: number) {
  const before = treeRss(root);
  const clients = await Promise.all(Array.from({ length: n }, () => stalledScrape(httpUrl)));
  const statuses: Record<string, number> = {};
  for (const c of clients) statuses[c.status] = (statuses[c.status] ?? 0) + 1;
  const peak: Record<string, number> = {};
  for (let t = 0; t < 8000; t += 250) {
    for (const [pid, mib] of Object.entries(treeRss(root))) peak[pid] = Math.max(peak[pid] ?? 0, mib);
    await sleep(250);
  }
  for (const c of clients) c.socket.destroy();
  await sleep(3000);
  const after = treeRss(root);
  process.stdout.write(
    `${n} stalled scrapes (${JSON.stringify(statuses)}): RSS MiB before ${JSON.stringify(before)}, ` +
      `peak ${JSON.stringify(peak)}, 3 s after they closed ${JSON.stringify(after)}\n`,
  );
  return { n, statuses, rssMiB: { before, peak, after } };
}

let requestId = 0;

/** Sends one request on `s` and returns the time to its answer (ms); a refused frame is an error. */
async function timedRequest(s: RawSocket, method: string, params: unknown): Promise<number> {
  const t0 = performance.now();
  const answer = await s.request({ jsonrpc: '2.0', id: ++requestId, method, params }, 60_000);
  if (answer['error']) throw new Error(`frame refused: ${JSON.stringify(answer['error'])}`);
  return performance.now() - t0;
}

/** One UpdateStats with every series, or with long names one per series (under the frame limit). */
function reporter(opt: ScrapeOptions): (s: RawSocket, value: number) => Promise<void> {
  const pad = opt.labelBytes > 0 ? [{ name: 'pad', value: 'x'.repeat(opt.labelBytes) }] : undefined;
  const name = (i: number) => (opt.nameBytes > 0 ? `bench_m${i}_`.padEnd(opt.nameBytes, 'x') : `bench_m${i}`);
  const metrics = (value: number) =>
    Array.from({ length: opt.series }, (_, i) => ({ name: name(i), type: 'GAUGE', value: value + i, labels: pad }));
  return async (s, value) => {
    const all = metrics(value);
    const per = opt.nameBytes > 0 ? 1 : all.length;
    for (let k = 0; k < all.length; k += per)
      await timedRequest(s, 'UpdateStats', { stats: { metrics: all.slice(k, k + per) } });
  };
}

/** Connects every agent (a second socket for the first `dual`) and reports its series on each socket. */
async function connectAgents(
  opt: ScrapeOptions,
  url: string,
  agents: SeededAgent[],
  sockets: RawSocket[],
  signal: AbortSignal,
) {
  const dual = Math.min(opt.agents, opt.dual);
  const report = reporter(opt);
  process.stdout.write(
    `connecting ${opt.agents} agents (${dual} of them twice) and reporting ${opt.series} series each\n`,
  );
  const t0 = performance.now();
  // Under the gateway's 64 concurrent token checks per process.
  for (let i = 0; i < opt.agents && !signal.aborted; i += 50) {
    const batch = agents.slice(i, i + 50);
    await Promise.all(
      batch.map(async (a, j) => {
        const first = await RawSocket.open(url, a.token);
        sockets.push(first);
        await report(first, i + j);
        if (i + j < dual) {
          const second = await RawSocket.open(url, a.token);
          sockets.push(second);
          // Reported later: this value is the one /metrics must show.
          await report(second, i + j + 1);
        }
      }),
    );
  }
  process.stdout.write(`  ${sockets.length} sockets in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

/** An agent that sends a frame every 10 ms and keeps the worst answer time since the last reset. */
class Probe {
  worstMs = 0;
  private running = true;
  private readonly loop: Promise<void>;

  constructor(socket: RawSocket) {
    this.loop = (async () => {
      while (this.running) {
        this.worstMs = Math.max(this.worstMs, await timedRequest(socket, 'UpdateStats', { stats: { rxBytes: 1 } }));
        await sleep(10);
      }
    })();
  }

  stop(): Promise<void> {
    this.running = false;
    return this.loop;
  }
}

interface ScrapeRow {
  ms: number;
  bytes: number;
  series: number;
  lagMs: number;
  probeMs: number;
}

/** The probe's worst answer time without scrapes, then `scrapes` timed scrapes. */
async function measureScrapes(opt: ScrapeOptions, httpUrl: string, probe: Probe, signal: AbortSignal) {
  const expected = opt.agents * opt.series;
  // A first scrape warms up; then the probe's worst answer time without scrapes.
  await timedGet(`${httpUrl}/metrics`);
  await sleep(2000);
  probe.worstMs = 0;
  await sleep(3000);
  const idleProbeMs = probe.worstMs;
  const rows: ScrapeRow[] = [];
  for (let k = 0; k < opt.scrapes && !signal.aborted; k++) {
    probe.worstMs = 0;
    const r = await timedGet(`${httpUrl}/metrics`);
    const probeMs = probe.worstMs; // before this process spends time on the body
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    const series = r.body.split('\n').filter((l) => l.startsWith('agentgate_agent_bench_m')).length;
    await sleep(1000);
    // The next scrape's maximum covers this one (prom-client resets it at each collection).
    const lag = metricValue((await timedGet(`${httpUrl}/metrics`)).body, 'agentgate_nodejs_eventloop_lag_max_seconds');
    const lagMs = lag === null ? Number.NaN : lag * 1000;
    rows.push({ ms: r.ms, bytes: r.body.length, series, lagMs, probeMs });
    process.stdout.write(
      `scrape ${k + 1}: ${r.ms.toFixed(0)} ms, ${(r.body.length / 1e6).toFixed(1)} MB, ${series} agent series` +
        ` (expected ${expected}), worker event-loop delay max ${lagMs.toFixed(0)} ms, probe frame max ${probeMs.toFixed(1)} ms\n`,
    );
    await sleep(1000);
  }
  return { rows, idleProbeMs };
}

/**
 * The CPU of one scrape (`concurrent` at once) in every process of the tree, with nothing else to do
 * (past the 1 s a gather is shared, so each scrape gathers anew), `times` times.
 */
async function scrapeCpu(gw: ServerProcess, times: number, concurrent: number, signal: AbortSignal) {
  const cpuMs: number[] = [];
  for (let k = 0; k < times && !signal.aborted; k++) {
    await sleep(1100);
    const before = treeCpu(gw.pid);
    await Promise.all(Array.from({ length: concurrent }, () => timedGet(`${gw.httpUrl}/metrics`)));
    await sleep(100); // a worker's part may still be finishing its last piece
    cpuMs.push(treeCpuDelta(before, treeCpu(gw.pid)));
  }
  return cpuMs;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `agentgate scrape ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const opt = parse(SCRAPE_OPTIONS, argv, env);
  const abort = new AbortController();
  const stopInterrupts = onInterrupt(abort, { log: (line) => process.stderr.write(`scrape: ${line}\n`) });
  const { signal } = abort;
  let db: LabDatabase | undefined;
  let gw: ServerProcess | undefined;
  const sockets: RawSocket[] = [];
  let probeSocket: RawSocket | undefined;
  try {
    db = await openDatabase({ app: 'agentgate-scrape' });
    process.stdout.write(`seeding ${opt.agents} agents\n`);
    const agents = await seed(db.admin, { agents: opt.agents + 1 });
    gw = await startGateway({
      databaseUrl: db.gatewayUrl,
      args: [
        ...['--workers', String(opt.workers), '--session-rate', '100000', '--max-connections', '19000'],
        // Series expire after two report intervals: none may expire while the bench runs.
        ...['--stats-report-interval', '10m'],
      ],
      timeoutMs: 60_000,
    });
    const probeAgent = agents.pop()!;
    await connectAgents(opt, gw.url, agents, sockets, signal);
    if (signal.aborted) return 130;
    probeSocket = await RawSocket.open(gw.url, probeAgent.token);
    const probe = new Probe(probeSocket);
    const { rows, idleProbeMs } = await measureScrapes(opt, gw.httpUrl, probe, signal);
    await probe.stop();
    if (signal.aborted) return 130;
    const cpuMs = await scrapeCpu(gw, opt.scrapes, 1, signal);
    process.stdout.write(`CPU per scrape, whole process tree: ${cpuMs.join(', ')} ms\n`);
    // And of 4 scrapes at once (the most a process serves; with workers they share one gather).
    const cpu4Ms = await scrapeCpu(gw, opt.scrapes, 4, signal);
    if (signal.aborted) return 130;
    process.stdout.write(`CPU per 4 concurrent scrapes, whole process tree: ${cpu4Ms.join(', ')} ms\n`);
    const stalled = opt.stalled > 0 ? await stalledScrapes(gw.pid, gw.httpUrl, opt.stalled) : undefined;
    const summary = {
      agents: opt.agents,
      seriesPerAgent: opt.series,
      workers: opt.workers,
      dualAgents: Math.min(opt.agents, opt.dual),
      sockets: sockets.length,
      scrapeMs: { p50: median(rows.map((r) => r.ms)), max: Math.max(...rows.map((r) => r.ms)) },
      seriesInScrape: rows[0]?.series,
      expectedSeries: opt.agents * opt.series,
      workerEventLoopDelayMaxMs: Math.max(...rows.map((r) => r.lagMs)),
      probeFrameMaxMs: { idle: idleProbeMs, duringScrape: Math.max(...rows.map((r) => r.probeMs)) },
      bodyBytes: rows[0]?.bytes,
      cpuMsPerScrape: median(cpuMs),
      cpuMsPer4ConcurrentScrapes: median(cpu4Ms),
      ...(stalled ? { stalled } : {}),
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    if (opt.json) writeFileSync(opt.json, JSON.stringify(summary, null, 2));
    return 0;
  } finally {
    stopInterrupts();
    for (const s of [...sockets, ...(probeSocket ? [probeSocket] : [])]) s.ws.terminate();
    await gw?.stop();
    await db?.close();
  }
}
