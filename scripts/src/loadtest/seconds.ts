// Per-second figures of a load (SPEC §9 `"series"`): each load process records, per second of its
// measured window, acknowledged frames, their latency (an HDR histogram per second), errors by
// code and its open sockets, and ships the seconds it has closed to the parent with its progress;
// the parent adds them up by second (latency histograms merged), so p50/p99 are over every process.
import { type LoadSeries, emptySeries } from '../report/series.js';
import { encodeHistogram, type Histogram, latencyMs, mergeEncoded, newLatencyHistogram } from './histogram.js';

/** One second of one load process, as sent to the parent. */
export interface SecondWire {
  /** Seconds since this process's measured window opened. */
  i: number;
  acked: number;
  errors: Record<string, number>;
  /** Sockets open at the end of the second. */
  sessions: number;
  /** Latency of the frames acknowledged in the second, encoded (empty: none). */
  latency: string;
}

interface Bucket {
  acked: number;
  errors: Record<string, number>;
  sessions: number;
  latency: Histogram | undefined;
}

/** The load process's side: its seconds from the window's start until its books close. */
export class SecondRecorder {
  private start = 0;
  private began = false;
  private recording = false;
  /** Seconds before this one were sent. */
  private shipped = 0;
  private readonly buckets = new Map<number, Bucket>();
  private live = 0;
  /** Sockets open at the end of the last second sent. */
  private shippedSessions = 0;

  begin(live: number): void {
    if (this.began) return;
    this.began = true;
    this.start = performance.now();
    this.live = live;
    this.shippedSessions = live;
    this.recording = true;
  }

  /** Nothing is recorded after this (the drain is over). */
  close(): void {
    this.recording = false;
  }

  private index(now: number): number {
    return Math.max(this.shipped, Math.floor((now - this.start) / 1000));
  }

  private bucket(i: number): Bucket {
    let b = this.buckets.get(i);
    if (!b) {
      b = { acked: 0, errors: {}, sessions: this.live, latency: undefined };
      this.buckets.set(i, b);
    }
    return b;
  }

  ack(latencyUs: number): void {
    if (!this.recording) return;
    const b = this.bucket(this.index(performance.now()));
    b.acked++;
    b.latency ??= newLatencyHistogram();
    b.latency.recordValue(latencyUs);
  }

  error(key: string, n = 1): void {
    if (!this.recording) return;
    const b = this.bucket(this.index(performance.now()));
    b.errors[key] = (b.errors[key] ?? 0) + n;
  }

  /** The count of open sockets changed. */
  sessions(live: number): void {
    this.live = live;
    if (this.recording) this.bucket(this.index(performance.now())).sessions = live;
  }

  /**
   * The seconds that have ended (with `all`, the current one too), every second present: one
   * without events keeps the sockets of the second before it.
   */
  take(all = false): SecondWire[] {
    if (!this.began) return [];
    const now = this.index(performance.now());
    const until = all ? Math.max(now, ...this.buckets.keys()) + 1 : now;
    const out: SecondWire[] = [];
    for (let i = this.shipped; i < until; i++) {
      const b = this.buckets.get(i);
      this.buckets.delete(i);
      if (b) this.shippedSessions = b.sessions;
      out.push({
        i,
        acked: b?.acked ?? 0,
        errors: b?.errors ?? {},
        sessions: this.shippedSessions,
        latency: b?.latency ? encodeHistogram(b.latency) : '',
      });
    }
    this.shipped = Math.max(this.shipped, until);
    return out;
  }
}

interface MergedSecond {
  acked: number;
  errors: Record<string, number>;
  sessions: number;
  latency: Histogram;
}

const addErrors = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

/** The parent's side: every process's seconds, added up by second. */
export class SecondsMerger {
  private readonly seconds = new Map<number, MergedSecond>();

  add(wire: readonly SecondWire[] | undefined): void {
    for (const w of wire ?? []) {
      let m = this.seconds.get(w.i);
      if (!m) {
        m = { acked: 0, errors: {}, sessions: 0, latency: newLatencyHistogram() };
        this.seconds.set(w.i, m);
      }
      m.acked += w.acked;
      m.sessions += w.sessions;
      addErrors(m.errors, w.errors);
      mergeEncoded(m.latency, w.latency);
    }
  }

  /**
   * One point per second of a window of `windowMs`; what came after its last second (answers
   * during the drain, frames counted unanswered) is added to that second.
   */
  series(windowMs: number): LoadSeries {
    const out = emptySeries();
    if (windowMs <= 0 && this.seconds.size === 0) return out;
    const n = Math.max(1, Math.round(windowMs / 1000));
    const points: MergedSecond[] = [];
    for (let i = 0; i < n; i++) {
      points.push(
        this.seconds.get(i) ?? {
          acked: 0,
          errors: {},
          sessions: points[i - 1]?.sessions ?? 0,
          latency: newLatencyHistogram(),
        },
      );
    }
    const last = points[n - 1]!;
    for (const [i, m] of [...this.seconds].sort((a, b) => a[0] - b[0])) {
      if (i < n) continue;
      last.acked += m.acked;
      addErrors(last.errors, m.errors);
      last.latency.add(m.latency);
    }
    const codes = [...new Set(points.flatMap((p) => Object.keys(p.errors)))].sort();
    for (const code of codes) out.errors[code] = points.map((p) => p.errors[code] ?? 0);
    points.forEach((p, i) => {
      const l = p.latency.totalCount > 0 ? latencyMs(p.latency) : undefined;
      out.t.push(i);
      out.ackedPerSec.push(p.acked);
      out.p50Ms.push(l ? l.p50 : null);
      out.p99Ms.push(l ? l.p99 : null);
      out.sessions.push(p.sessions);
    });
    return out;
  }
}
