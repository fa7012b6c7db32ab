// The workers' questions about the whole process tree (SPEC §8: `/metrics`, `/debug/sessions` and
// `/readyz` describe the tree whichever worker answers): the primary asks every live worker for its
// part over IPC, merges them, and streams the answer back to the asking worker in pieces that the
// worker pulls one at a time (a slow scraper stalls the stream, it does not fill memory). A worker
// that does not answer in time is left out (logged), so a stuck worker cannot hang a scrape.
// Concurrent scrapes share one gather of `/metrics`, reused for a second.
import type { Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import type { DebugSession } from '@agentgate/shared';
import { type Clock, systemClock, type TimerHandle } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { ANSWER_BYTES, type AskKind, PIECE, sendMessage, type ToPrimary, type ToWorker } from './ipc.js';
import { TreeMetrics } from './tree-metrics.js';

/** How long the primary waits for the workers' parts of a scrape. */
const GATHER_TIMEOUT_MS = 5000;
const READY_TIMEOUT_MS = 1000;
/** A finished gather of `/metrics` also answers the scrapes that ask within this long. */
const SHARED_GATHER_MS = 1000;
/**
 * How long an answer waits for its worker to pull the next piece: beyond what a client that keeps
 * reading can take (a piece is 4 chunks, each of which may take 10 s before a stalled scrape is closed).
 */
const PULL_TIMEOUT_MS = 60_000;

type Part = Extract<ToPrimary, { agentgate: 'part' }>;
type More = Extract<ToPrimary, { agentgate: 'more' }>;
type Answer = Extract<ToWorker, { agentgate: 'answer' }>;

interface Gathering {
  pending: Set<Worker>;
  onPart(part: Part, worker: Worker): void;
  finish(): void;
}

/** The asking worker's `more` messages for one answer: each lets the next piece go. */
class Pull {
  private early: boolean | undefined;
  private waiting: ((more: boolean) => void) | undefined;

  /** A `more` (true) or a `stop` or the asker's exit (false); a stop is never forgotten. */
  settle(more: boolean): void {
    if (this.waiting) this.waiting(more);
    else if (this.early !== false) this.early = more;
  }

  /** Resolves true when the worker asks for the next piece; false when it stops, leaves, or after `timeoutMs`. */
  next(clock: Clock, timeoutMs: number): Promise<boolean> {
    if (this.early !== undefined) {
      const more = this.early;
      this.early = undefined;
      return Promise.resolve(more);
    }
    return new Promise((resolve) => {
      const timer = clock.setTimeout(() => this.waiting?.(false), timeoutMs, 'answer_pull');
      this.waiting = (more) => {
        clock.clearTimeout(timer);
        this.waiting = undefined;
        resolve(more);
      };
    });
  }
}

export class TreeQuestions {
  private nextGatherId = 0;
  private readonly gatherings = new Map<number, Gathering>();
  /** The answers being pulled, by asking worker and its ask id. */
  private readonly pulls = new Map<Worker, Map<number, Pull>>();
  /** The `/metrics` body being gathered, or gathered less than SHARED_GATHER_MS ago. */
  private shared: { body: Promise<string[]>; until: number } | undefined;

  constructor(
    private readonly log: Logger,
    /** The workers that can answer now. */
    private readonly liveWorkers: () => Worker[],
    private readonly clock: Clock = systemClock,
  ) {}

  /** A worker that exited answers nothing more and pulls nothing more. */
  forget(worker: Worker): void {
    for (const g of this.gatherings.values()) {
      if (g.pending.delete(worker) && g.pending.size === 0) g.finish();
    }
    for (const pull of this.pulls.get(worker)?.values() ?? []) pull.settle(false);
  }

  /** A worker's part of a gathering. */
  onPart(worker: Worker, m: Part): void {
    const g = this.gatherings.get(m.id);
    if (!g?.pending.has(worker)) return;
    g.onPart(m, worker);
    if (m.done) {
      g.pending.delete(worker);
      if (g.pending.size === 0) g.finish();
    }
  }

  /** The asking worker took a piece of its answer `m.id` (or wants no more). */
  onMore(worker: Worker, m: More): void {
    this.pulls
      .get(worker)
      ?.get(m.id)
      ?.settle(m.stop !== true);
  }

  /** Asks every live worker for its part of `kind`; settles when all answered or after `timeoutMs`. */
  private gather(kind: AskKind, timeoutMs: number, onPart: (part: Part, worker: Worker) => void): Promise<void> {
    const id = this.nextGatherId++;
    const workers = this.liveWorkers();
    return new Promise((resolve) => {
      const pending = new Set(workers);
      let timer: TimerHandle | undefined;
      const finish = () => {
        this.clock.clearTimeout(timer);
        this.gatherings.delete(id);
        resolve();
      };
      this.gatherings.set(id, { pending, onPart, finish });
      if (pending.size === 0) {
        finish();
        return;
      }
      timer = this.clock.setTimeout(
        () => {
          this.log.warn(
            { kind, workerPids: [...pending].map((w) => w.process.pid) },
            'a worker did not answer in time; answering without it',
          );
          finish();
        },
        timeoutMs,
        'gather',
      );
      for (const w of workers) {
        sendMessage(w, { agentgate: 'gather', id, kind }).catch(() => {
          if (pending.delete(w) && pending.size === 0) finish();
        });
      }
    });
  }

  /** The tree's `/metrics` in chunks: one gather for every scrape that asks while it runs or within a second after. */
  private metricsBody(): Promise<string[]> {
    if (this.shared && this.clock.now() < this.shared.until) return this.shared.body;
    const shared = { body: this.gatherMetrics(), until: Number.POSITIVE_INFINITY };
    this.shared = shared;
    const forget = () => {
      if (this.shared === shared) this.shared = undefined;
    };
    shared.body.then(() => {
      shared.until = this.clock.now() + SHARED_GATHER_MS;
      // Streams still answering keep their body; the primary keeps none once the second is over.
      this.clock.setTimeout(forget, SHARED_GATHER_MS, 'shared_gather').unref?.();
    }, forget);
    return shared.body;
  }

  private async gatherMetrics(): Promise<string[]> {
    const t0 = performance.now();
    const tree = new TreeMetrics();
    await this.gather('metrics', GATHER_TIMEOUT_MS, (part, worker) => {
      if (part.registry) tree.addRegistry(part.registry);
      if (part.agents) tree.addAgents(part.agents, worker);
    });
    const gatheredMs = performance.now() - t0;
    const body: string[] = [];
    for await (const chunk of tree.chunks(ANSWER_BYTES)) body.push(chunk);
    this.log.debug(
      { gatheredMs: Math.round(gatheredMs), renderedMs: Math.round(performance.now() - t0 - gatheredMs) },
      'metrics of the tree gathered',
    );
    return body;
  }

  private async sessions(): Promise<DebugSession[]> {
    const sessions: DebugSession[] = [];
    await this.gather('sessions', GATHER_TIMEOUT_MS, (part) => {
      if (part.sessions) for (const s of part.sessions) sessions.push(s);
    });
    return sessions;
  }

  /** The tree's answer to one worker's question, streamed back to it one pulled piece at a time. */
  async answer(asker: Worker, id: number, kind: AskKind): Promise<void> {
    let pulls = this.pulls.get(asker);
    if (!pulls) {
      pulls = new Map();
      this.pulls.set(asker, pulls);
    }
    const pull = new Pull();
    const t0 = performance.now();
    pulls.set(id, pull);
    let pieces = 0;
    let piecesSent = 0;
    /** Sends one piece; true once the asker pulled the next. */
    const piece = async (m: Answer) => {
      await sendMessage(asker, m);
      piecesSent++;
      const more = await pull.next(this.clock, PULL_TIMEOUT_MS);
      if (!more) {
        const workerPid = asker.process.pid;
        this.log.debug({ kind, workerPid, piecesSent, pieces }, 'the asking worker stopped pulling its answer');
      }
      return more;
    };
    try {
      if (kind === 'metrics') {
        const body = await this.metricsBody();
        pieces = body.length;
        for (const chunk of body) if (!(await piece({ agentgate: 'answer', id, chunk }))) return;
      } else if (kind === 'sessions') {
        const sessions = await this.sessions();
        pieces = Math.ceil(sessions.length / PIECE);
        for (let i = 0; i < sessions.length; i += PIECE) {
          if (!(await piece({ agentgate: 'answer', id, sessions: sessions.slice(i, i + PIECE) }))) return;
        }
      } else {
        let ready = false;
        await this.gather(kind, READY_TIMEOUT_MS, (part) => {
          ready ||= part.ready === true;
        });
        await sendMessage(asker, { agentgate: 'answer', id, ready, done: true });
        return;
      }
      await sendMessage(asker, { agentgate: 'answer', id, done: true });
      this.log.debug({ kind, pieces, answeredMs: Math.round(performance.now() - t0) }, 'an answer was delivered');
    } catch (err) {
      // The asking worker went away; nobody waits for this answer.
      this.log.debug({ kind, err: (err as Error).message }, 'an answer could not be delivered');
    } finally {
      pulls.delete(id);
      if (pulls.size === 0 && this.pulls.get(asker) === pulls) this.pulls.delete(asker);
    }
  }
}
