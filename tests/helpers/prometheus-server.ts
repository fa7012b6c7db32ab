// A real Prometheus (Debian's `prometheus` binary) for a test: on loopback at a port it picks
// itself, with a temporary config and data directory, scraping the given targets every second and
// evaluating the given rule files. Stopped by PID; its directory is removed.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { eventually, withTimeout } from './wait.ts';

export interface PrometheusServer {
  /** http://127.0.0.1:PORT */
  url: string;
  child: ChildProcess;
  /** Its log lines so far. */
  lines: string[];
  /** An instant query at the current time: the result's series, each with its labels and value. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  /** GET /api/v1/<path> → `data`. */
  api<T>(apiPath: string): Promise<T>;
  stop(): Promise<void>;
}

interface ApiAnswer<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
}

/** Starts `binary` (the path of Debian's `prometheus`). */
export async function startPrometheus(
  binary: string,
  o: {
    job: string;
    targets: string[];
    ruleFiles?: string[];
  },
): Promise<PrometheusServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentgate-prometheus-'));
  const config = path.join(dir, 'prometheus.yml');
  // JSON is YAML: no YAML writer needed.
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: o.ruleFiles ?? [],
      scrape_configs: [{ job_name: o.job, static_configs: [{ targets: o.targets }] }],
    }),
  );
  const child = spawn(
    binary,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      '--web.listen-address=127.0.0.1:0',
      '--log.level=info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let resolveAddress: (a: string) => void = () => {};
  const address = new Promise<string>((resolve) => {
    resolveAddress = resolve;
  });
  const onLine = (line: string) => {
    lines.push(line);
    // The listener's real address, once it is bound (exporter-toolkit's line).
    const m = /msg="Listening on" address=(127\.0\.0\.1:\d+)/.exec(line);
    if (m) resolveAddress(m[1]!);
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const url = `http://${await withTimeout(
      Promise.race([
        address,
        exited.then(() => {
          throw new Error(`prometheus exited:\n${lines.join('\n')}`);
        }),
      ]),
      20_000,
      `prometheus to listen; its log:\n${lines.join('\n')}`,
    )}`;
    await eventually('prometheus to be ready', async () => (await fetch(`${url}/-/ready`)).ok, {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const api = async <T>(apiPath: string): Promise<T> => {
      const r = (await (await fetch(`${url}/api/v1/${apiPath}`)).json()) as ApiAnswer<T>;
      if (r.status !== 'success') throw new Error(`prometheus ${apiPath}: ${r.error}`);
      return r.data;
    };
    return {
      url,
      child,
      lines,
      api,
      async query(promql) {
        const data = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
          `query?query=${encodeURIComponent(promql)}`,
        );
        const num = (v: string) => (v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v));
        return data.result.map((s) => ({ metric: s.metric, value: num(s.value[1]) }));
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
