// Drives fuzz frames through one agent's socket in lockstep: each frame is followed by a probe (an
// UpdateStats without params, answered at once), and the messages up to the probe's answer — plus
// the frame's own answer when it waits for a commit — are that frame's answers. A frame that must
// close the socket is followed by a reconnect. Every frame is checked against the oracle; what the
// oracle says it stores is kept in a Ledger, to compare with the database afterwards.
import { isDeepStrictEqual } from 'node:util';
import { RawSocket } from '../lab/raw-socket.js';
import { answerProblem, batchProblem, clip, describeExpected, isRecord } from './answers.js';
import { type Expected, expectFrame, type FuzzTarget } from './oracle.js';
import type { Ledger } from './stored.js';
import { preview, type WireFrame } from './wire.js';

export interface Mismatch {
  /** Position of the frame in the run (0-based). */
  index: number;
  label: string;
  frame: string;
  expected: string;
  got: string;
}

export interface DriveResult {
  frames: number;
  mismatches: Mismatch[];
  /** Frames sent per generator label. */
  byLabel: Record<string, number>;
  /** Time spent per generator label (send to last answer, reconnects included), ms. */
  msByLabel: Record<string, number>;
  /** Close codes seen after frames that were to close the socket. */
  closes: Record<string, number>;
  reconnects: number;
  elapsedMs: number;
}

export interface DriveOptions {
  url: string;
  token: string;
  target: FuzzTarget;
  /** Kept up to date with what the oracle says each frame stores. */
  ledger: Ledger;
  /** How long an answer (after a commit) may take. */
  answerTimeoutMs?: number;
  /**
   * The gateway's `--session-rate`: frames are paced to stay inside a bucket of this rate (SPEC §7),
   * so that no answer is -32003. Leave it out for a gateway whose rate the run cannot reach.
   */
  sessionRate?: number;
  onProgress?: (done: number, mismatches: number) => void;
  /** Stop after this many mismatches (the rest of the run says little more). */
  maxMismatches?: number;
  /** Stops the run after the frame in flight. */
  signal?: AbortSignal;
}

/** A client-side token bucket a little slower than the gateway's, so that the gateway's never runs dry. */
class Pacer {
  private tokens: number;
  private last = performance.now();
  private readonly capacity: number;
  private readonly rate: number;

  constructor(sessionRate: number) {
    this.rate = sessionRate * 0.9;
    this.capacity = sessionRate * 2 * 0.9;
    this.tokens = this.capacity;
  }

  async take(n: number): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      if (this.tokens >= n) {
        this.tokens -= n;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((n - this.tokens) / this.rate) * 1000)));
    }
  }
}

export class FuzzDriver {
  private socket: RawSocket | undefined;
  private probes = 0;
  private reconnects = 0;
  private readonly pacer: Pacer | undefined;
  private readonly answerTimeoutMs: number;

  constructor(private readonly opts: DriveOptions) {
    this.pacer = opts.sessionRate === undefined ? undefined : new Pacer(opts.sessionRate);
    this.answerTimeoutMs = opts.answerTimeoutMs ?? 10_000;
  }

  private async connected(): Promise<RawSocket> {
    if (this.socket?.isOpen) return this.socket;
    if (this.socket) this.reconnects++;
    this.socket = await RawSocket.open(this.opts.url, this.opts.token);
    return this.socket;
  }

  /**
   * Sends every frame in order and checks its answers; never throws for what the gateway answers.
   * Ends with a last probe and a normal close (the next run opens a new socket).
   */
  async run(frames: readonly WireFrame[], startIndex = 0): Promise<DriveResult> {
    const t0 = performance.now();
    const reconnects0 = this.reconnects;
    const mismatches: Mismatch[] = [];
    const byLabel: Record<string, number> = {};
    const msByLabel: Record<string, number> = {};
    const closes: Record<string, number> = {};
    const max = this.opts.maxMismatches ?? 50;
    let i = 0;
    for (; i < frames.length && mismatches.length < max && !this.opts.signal?.aborted; i++) {
      const frame = frames[i]!;
      byLabel[frame.label] = (byLabel[frame.label] ?? 0) + 1;
      const exp = expectFrame(frame, this.opts.target);
      this.opts.ledger.apply(exp.effects);
      const f0 = performance.now();
      const problem = await this.one(frame, exp, closes);
      msByLabel[frame.label] = (msByLabel[frame.label] ?? 0) + performance.now() - f0;
      if (problem !== undefined) {
        mismatches.push({
          index: startIndex + i,
          label: frame.label,
          frame: preview(frame),
          expected: describeExpected(exp),
          got: problem,
        });
      }
      if ((i + 1) % 500 === 0) this.opts.onProgress?.(i + 1, mismatches.length);
    }
    const stray = await this.finish();
    if (stray !== undefined) {
      mismatches.push({ index: startIndex + i, label: 'end', frame: '(none)', expected: 'nothing more', got: stray });
    }
    return {
      frames: i,
      mismatches,
      byLabel,
      msByLabel: Object.fromEntries(Object.entries(msByLabel).map(([k, v]) => [k, Math.round(v)])),
      closes,
      reconnects: this.reconnects - reconnects0,
      elapsedMs: Math.round(performance.now() - t0),
    };
  }

  /** Sends one frame and returns what was wrong with its answers, or undefined. */
  private async one(frame: WireFrame, exp: Expected, closes: Record<string, number>): Promise<string | undefined> {
    const s = await this.connected();
    if (exp.kind === 'close') {
      // The probe after it is never read by a gateway that closes; one that does not answers it at once.
      s.sendBytes(frame.data, frame.binary);
      s.send(`{"jsonrpc":"2.0","id":"fuzz-probe-${++this.probes}","method":"UpdateStats"}`);
      const x = await s.nextEvent(5000);
      if ('closed' in x) {
        closes[x.closed] = (closes[x.closed] ?? 0) + 1;
        return x.closed === exp.code ? undefined : `close ${x.closed}`;
      }
      // An answer where the socket should have closed: that is the mismatch; start again on a new socket.
      await s.close();
      return 'timeout' in x ? 'no close within 5 s' : `an answer instead of the close: ${clip(JSON.stringify(x.msg))}`;
    }
    await this.pacer?.take(exp.tokens + 1);
    const probeId = `fuzz-probe-${++this.probes}`;
    s.sendBytes(frame.data, frame.binary);
    s.send(`{"jsonrpc":"2.0","id":${JSON.stringify(probeId)},"method":"UpdateStats"}`);
    let probed = false;
    let answered = exp.kind === 'none';
    let problem: string | undefined;
    while (!probed || !answered) {
      const x = await s.nextEvent(this.answerTimeoutMs);
      if ('timeout' in x || 'closed' in x) {
        const what =
          'timeout' in x ? `nothing within ${this.answerTimeoutMs} ms` : `the socket closed with ${x.closed}`;
        await s.close();
        return (
          problem ?? `${what} (${answered ? 'answer' : 'no answer'} seen, ${probed ? 'probe' : 'no probe'} answer seen)`
        );
      }
      const msg = x.msg;
      if (!probed && isRecord(msg) && msg['id'] === probeId) {
        probed = true;
        if (!isDeepStrictEqual(msg['result'], { reportInterval: this.opts.target.reportInterval })) {
          problem ??= `the probe got ${clip(JSON.stringify(msg))}`;
        }
        continue;
      }
      if (answered) {
        problem ??= `an answer no one expected: ${clip(JSON.stringify(msg))}`;
        continue;
      }
      answered = true;
      if (exp.kind === 'one') {
        const p = answerProblem(exp.answer, msg);
        if (p !== undefined) problem ??= `${p}: ${clip(JSON.stringify(msg))}`;
      } else if (exp.kind === 'batch') {
        problem ??= batchProblem(exp.answers, msg, frame);
      }
    }
    return problem;
  }

  /** A last probe, a moment for late answers, and a normal close; returns what came that should not have. */
  private async finish(): Promise<string | undefined> {
    const s = this.socket;
    if (!s?.isOpen) return undefined;
    const probeId = 'fuzz-probe-last';
    s.send(`{"jsonrpc":"2.0","id":${JSON.stringify(probeId)},"method":"UpdateStats"}`);
    const stray: string[] = [];
    let probed = false;
    // Until the probe's answer, then 300 ms of quiet: an answer that comes late still shows.
    for (;;) {
      const x = await s.nextEvent(probed ? 300 : this.answerTimeoutMs);
      if ('timeout' in x) break;
      if ('closed' in x) return `the socket closed with ${x.closed} at the end`;
      if (isRecord(x.msg) && x.msg['id'] === probeId) probed = true;
      else stray.push(JSON.stringify(x.msg));
    }
    await s.close();
    if (!probed) return 'the last probe was not answered';
    return stray.length > 0 ? `late answers: ${clip(stray.join(' '))}` : undefined;
  }
}

/** The results of two runs of one driver, as one. */
export function mergeResults(a: DriveResult, b: DriveResult): DriveResult {
  const add = (x: Record<string, number>, y: Record<string, number>) => {
    const out = { ...x };
    for (const [k, v] of Object.entries(y)) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  return {
    frames: a.frames + b.frames,
    mismatches: [...a.mismatches, ...b.mismatches],
    byLabel: add(a.byLabel, b.byLabel),
    msByLabel: add(a.msByLabel, b.msByLabel),
    closes: add(a.closes, b.closes),
    reconnects: a.reconnects + b.reconnects,
    elapsedMs: a.elapsedMs + b.elapsedMs,
  };
}

/** A mismatch as a few readable lines. */
export function formatMismatch(m: Mismatch): string {
  return `#${m.index} (${m.label}) ${m.frame}\n    expected ${m.expected}\n    got ${m.got}`;
}
