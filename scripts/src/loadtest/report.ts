// What a person sees: a live progress line (redrawn on a terminal, one line per ~5 s otherwise)
// and the summary table at the end; plus the JSON report of SPEC §9.
import { isConnectErrorKey } from './error-keys.js';
import type { LoadProgress, LoadReport } from './run-load.js';

export function formatErrors(errors: Record<string, number>): string {
  const entries = Object.entries(errors).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([k, v]) => `${k}:${v}`).join(' ') : 'none';
}

const si = (x: number): string => (x >= 10_000 ? `${(x / 1000).toFixed(1)}k` : String(Math.round(x)));

function progressLine(label: string, p: LoadProgress): string {
  const t = (p.elapsedMs / 1000).toFixed(0).padStart(3);
  const head = `[${label} ${p.phase} ${t}s]`;
  if (p.phase === 'connecting') {
    return `${head} connected ${p.live}/${p.agents}  errors ${formatErrors(p.errors)}`;
  }
  return (
    `${head} live ${p.live}/${p.agents}  sent ${si(p.sent)}  acked ${si(p.acked)}  ` +
    `${si(p.framesPerSec)} fr/s  p99 ${p.recentP99Ms.toFixed(2)}ms  errors ${formatErrors(p.errors)}` +
    (p.reconnects ? `  reconnects ${p.reconnects}` : '')
  );
}

/**
 * Prints progress to a stream: on a terminal one line redrawn every second, else one line per
 * `intervalMs` (pass it to runLoad as `progressEveryMs`, so that each line covers its interval).
 */
export class ProgressPrinter {
  private drawn = false;
  readonly intervalMs: number;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly label: string,
    plainEveryMs = 5000,
  ) {
    this.intervalMs = out.isTTY ? 1000 : plainEveryMs;
  }

  update(p: LoadProgress): void {
    const line = progressLine(this.label, p);
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line.slice(0, (this.out.columns || 200) - 1)}`);
      this.drawn = true;
    } else {
      this.out.write(`${line}\n`);
    }
  }

  /** Ends a redrawn line so that the next output starts on its own line. */
  done(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}

/** Why no agent connected, in one line that says what to check. */
export function noConnectionLine(r: Pick<LoadReport, 'errors'>, url: string): string {
  if (r.errors['ECONNREFUSED']) {
    return `no agent could connect: ECONNREFUSED (nothing listens at ${url}): is the gateway running at that URL?`;
  }
  const connectErrors = Object.fromEntries(Object.entries(r.errors).filter(([k]) => isConnectErrorKey(k)));
  return `no agent could connect to ${url} (${formatErrors(connectErrors)})`;
}

const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0);

export function formatSummary(r: LoadReport): string {
  const frameErrors: Record<string, number> = {};
  const connectErrors: Record<string, number> = {};
  for (const [k, v] of Object.entries(r.errors)) (isConnectErrorKey(k) ? connectErrors : frameErrors)[k] = v;
  const rows: [string, string][] = [
    ['mode', `${r.mode}, ${r.procs || 'in-process'} proc(s)`],
    ['agents', String(r.agents)],
    ['connected', String(r.connected)],
    ['duration', `${r.durationS.toFixed(1)} s`],
    ['frames sent', String(r.sent)],
    ['frames acked', String(r.acked)],
    ['frames errored', `${sum(frameErrors)} (${formatErrors(frameErrors)})`],
    ['connect errors', `${sum(connectErrors)} (${formatErrors(connectErrors)})`],
    ['acked frames/s', r.framesPerSec.toFixed(1)],
    [
      'ack latency ms',
      `p50 ${r.latencyMs.p50}  p95 ${r.latencyMs.p95}  p99 ${r.latencyMs.p99}  max ${r.latencyMs.max}`,
    ],
    ['reconnects', `${r.reconnects} (disconnects ${r.disconnects})`],
  ];
  if (r.skipped.disconnected || r.skipped.inflightCap) {
    rows.push([
      'not sent',
      `${r.skipped.disconnected} while disconnected, ${r.skipped.inflightCap} at the in-flight cap`,
    ]);
  }
  if (r.maxScheduleLagMs > 50) rows.push(['generator lag', `max ${r.maxScheduleLagMs.toFixed(1)} ms behind schedule`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
