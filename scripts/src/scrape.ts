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
import http from 'node:http';
import WebSocket from 'ws';
import { type OptionTable, parse } from '@agentgate/gateway/options';
import { startBenchDatabase } from './bench/bench-db.js';
import net from 'node:net';
import { childPids, rssKiB, treeCpu, treeCpuDelta } from './bench/proc-stats.js';
import { type startServer, startGatewayServer } from './bench/server-process.js';
import { seed } from './seed.js';

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

function get(url: string): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            ms: performance.now() - t0,
          }),
        );
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A `GET /metrics` that reads one packet and stops reading; resolves with the status line. */
function stalledScrape(httpUrl: string): Promise<{ socket: net.Socket; status: string }> {
  const { hostname, port } = new URL(httpUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    socket.on('error', () => {});
    socket.once('connect', () => socket.write(`GET /metrics HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`));
    socket.once('data', (d: Buffer) => {
      socket.pause();
      resolve({ socket, status: d.toString('latin1', 0, d.indexOf('\r\n')) });
    });
    socket.once('close', () => reject(new Error('a stalled scrape was closed before its first packet')));
  });
}

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

/** One agent socket that answers `request()` with the time to its answer. */
class Socket {
  private next = 1;
  private readonly waiting = new Map<number, () => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { id?: number; error?: unknown };
      if (m.error) throw new Error(`frame refused: ${JSON.stringify(m.error)}`);
      this.waiting.get(m.id!)?.();
      this.waiting.delete(m.id!);
    });
  }

  static open(url: string, token: string): Promise<Socket> {
    const ws = new WebSocket(url, { headers: { 'Coder-Session-Token': token }, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Socket(ws)));
      ws.on('error', reject);
    });
  }

  request(method: string, params: unknown): Promise<number> {
    const id = this.next++;
    const t0 = performance.now();
    return new Promise((resolve) => {
      this.waiting.set(id, () => resolve(performance.now() - t0));
      this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const opt = parse(SCRAPE_OPTIONS, argv, env);
  const AGENTS = opt.agents;
  const SERIES = opt.series;
  const WORKERS = opt.workers;
  const DUAL = Math.min(AGENTS, opt.dual);
  const SCRAPES = opt.scrapes;
  const pad = opt.labelBytes > 0 ? [{ name: 'pad', value: 'x'.repeat(opt.labelBytes) }] : undefined;
  const name = (i: number) => (opt.nameBytes > 0 ? `bench_m${i}_`.padEnd(opt.nameBytes, 'x') : `bench_m${i}`);
  const metrics = (value: number) =>
    Array.from({ length: SERIES }, (_, i) => ({ name: name(i), type: 'GAUGE', value: value + i, labels: pad }));
  /** One UpdateStats with every series, or with long names one per series (under the frame limit). */
  const report = async (s: Socket, value: number) => {
    const all = metrics(value);
    const per = opt.nameBytes > 0 ? 1 : all.length;
    for (let k = 0; k < all.length; k += per)
      await s.request('UpdateStats', { stats: { metrics: all.slice(k, k + per) } });
  };
  const db = await startBenchDatabase();
  let gw: Awaited<ReturnType<typeof startServer>> | undefined;
  const sockets: Socket[] = [];
  try {
    process.stdout.write(`seeding ${AGENTS} agents\n`);
    const agents = await seed(db.admin, { agents: AGENTS + 1 });
    gw = await startGatewayServer(
      'gateway',
      db.gatewayUrl,
      [
        '--workers',
        String(WORKERS),
        '--session-rate',
        '100000',
        '--max-connections',
        '19000',
        // Series expire after two report intervals: none may expire while the bench runs.
        '--stats-report-interval',
        '10m',
      ],
      { timeoutMs: 60_000 },
    );
    const httpUrl = gw.url.replace(/^ws:/, 'http:').replace(/\/api\/.*$/, '');
    const probeAgent = agents.pop()!;

    process.stdout.write(`connecting ${AGENTS} agents (${DUAL} of them twice) and reporting ${SERIES} series each\n`);
    const t0 = performance.now();
    // Under the gateway's 64 concurrent token checks per process.
    for (let i = 0; i < AGENTS; i += 50) {
      const batch = agents.slice(i, i + 50);
      await Promise.all(
        batch.map(async (a, j) => {
          const first = await Socket.open(gw!.url, a.token);
          sockets.push(first);
          await report(first, i + j);
          if (i + j < DUAL) {
            const second = await Socket.open(gw!.url, a.token);
            sockets.push(second);
            // Reported later: this value is the one /metrics must show.
            await report(second, i + j + 1);
          }
        }),
      );
    }
    process.stdout.write(`  ${sockets.length} sockets in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

    const probe = await Socket.open(gw.url, probeAgent.token);
    let worstProbeMs = 0;
    let probing = true;
    const probeLoop = (async () => {
      while (probing) {
        worstProbeMs = Math.max(worstProbeMs, await probe.request('UpdateStats', { stats: { rxBytes: 1 } }));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    const expected = AGENTS * SERIES;
    const lagOf = (body: string) => {
      const m = /^agentgate_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(body);
      return m ? Number(m[1]) * 1000 : Number.NaN;
    };
    // A first scrape warms up; then the probe's worst answer time without scrapes.
    await get(`${httpUrl}/metrics`);
    await new Promise((r) => setTimeout(r, 2000));
    worstProbeMs = 0;
    await new Promise((r) => setTimeout(r, 3000));
    const idleProbeMs = worstProbeMs;

    const rows: { ms: number; bytes: number; series: number; lagMs: number; probeMs: number }[] = [];
    for (let k = 0; k < SCRAPES; k++) {
      worstProbeMs = 0;
      const r = await get(`${httpUrl}/metrics`);
      const probeMs = worstProbeMs; // before this process spends time on the body
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      const series = r.body.split('\n').filter((l) => l.startsWith('agentgate_agent_bench_m')).length;
      await new Promise((res) => setTimeout(res, 1000));
      // The next scrape's maximum covers this one (prom-client resets it at each collection).
      const lagMs = lagOf((await get(`${httpUrl}/metrics`)).body);
      rows.push({ ms: r.ms, bytes: r.body.length, series, lagMs, probeMs });
      process.stdout.write(
        `scrape ${k + 1}: ${r.ms.toFixed(0)} ms, ${(r.body.length / 1e6).toFixed(1)} MB, ${series} agent series` +
          ` (expected ${expected}), worker event-loop delay max ${lagMs.toFixed(0)} ms, probe frame max ${probeMs.toFixed(1)} ms\n`,
      );
      await new Promise((res) => setTimeout(res, 1000));
    }
    probing = false;
    await probeLoop;
    // The CPU of one scrape in every process of the tree, with nothing else to do (past the 1 s a
    // gather is shared, so each scrape gathers anew).
    const cpuMs: number[] = [];
    for (let k = 0; k < SCRAPES; k++) {
      await sleep(1100);
      const before = treeCpu(gw.pid);
      await get(`${httpUrl}/metrics`);
      await sleep(100); // a worker's part may still be finishing its last piece
      cpuMs.push(treeCpuDelta(before, treeCpu(gw.pid)));
    }
    process.stdout.write(`CPU per scrape, whole process tree: ${cpuMs.join(', ')} ms\n`);
    // And of 4 scrapes at once (the most a process serves; with workers they share one gather).
    const cpu4Ms: number[] = [];
    for (let k = 0; k < SCRAPES; k++) {
      await sleep(1100);
      const before = treeCpu(gw.pid);
      await Promise.all(Array.from({ length: 4 }, () => get(`${httpUrl}/metrics`)));
      await sleep(100);
      cpu4Ms.push(treeCpuDelta(before, treeCpu(gw.pid)));
    }
    process.stdout.write(`CPU per 4 concurrent scrapes, whole process tree: ${cpu4Ms.join(', ')} ms\n`);
    const stalled = opt.stalled > 0 ? await stalledScrapes(gw.pid, httpUrl, opt.stalled) : undefined;
    const sorted = rows.map((r) => r.ms).sort((a, b) => a - b);
    const summary = {
      agents: AGENTS,
      seriesPerAgent: SERIES,
      workers: WORKERS,
      dualAgents: DUAL,
      sockets: sockets.length,
      scrapeMs: { p50: sorted[Math.floor(sorted.length / 2)], max: sorted.at(-1) },
      seriesInScrape: rows[0]?.series,
      expectedSeries: expected,
      workerEventLoopDelayMaxMs: Math.max(...rows.map((r) => r.lagMs)),
      probeFrameMaxMs: { idle: idleProbeMs, duringScrape: Math.max(...rows.map((r) => r.probeMs)) },
      bodyBytes: rows[0]?.bytes,
      cpuMsPerScrape: cpuMs.sort((a, b) => a - b)[Math.floor(cpuMs.length / 2)],
      cpuMsPer4ConcurrentScrapes: cpu4Ms.sort((a, b) => a - b)[Math.floor(cpu4Ms.length / 2)],
      ...(stalled ? { stalled } : {}),
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    if (opt.json) writeFileSync(opt.json, JSON.stringify(summary, null, 2));
    probe.close();
    return 0;
  } finally {
    for (const s of sockets) s.close();
    await gw?.stop();
    await db.close();
  }
}
