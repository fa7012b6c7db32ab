// The workers' questions about the whole process tree (SPEC §8: `/metrics`, `/debug/sessions` and
// `/readyz` describe the tree whichever worker answers): the primary asks every live worker for its
// part over IPC, merges them, and streams the answer back to the asking worker in pieces. A worker
// that does not answer in time is left out (logged), so a stuck worker cannot hang a scrape.
import type { Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import type { DebugSession } from '@agentgate/shared';
import type { Logger } from '../ops/log.js';
import { type AskKind, PIECE, sendMessage, type ToPrimary } from './ipc.js';
import { TreeMetrics } from './tree-metrics.js';

/** How long the primary waits for the workers' parts of a scrape. */
const GATHER_TIMEOUT_MS = 5000;
const READY_TIMEOUT_MS = 1000;

type Part = Extract<ToPrimary, { agentgate: 'part' }>;

interface Gathering {
  pending: Set<Worker>;
  onPart(part: Part, worker: Worker): void;
  finish(): void;
}

export class TreeQuestions {
  private nextGatherId = 0;
  private readonly gatherings = new Map<number, Gathering>();

  constructor(
    private readonly log: Logger,
    /** The workers that can answer now. */
    private readonly liveWorkers: () => Worker[],
  ) {}

  /** A worker that exited answers nothing more: the gatherings stop waiting for it. */
  forget(worker: Worker): void {
    for (const g of this.gatherings.values()) {
      if (g.pending.delete(worker) && g.pending.size === 0) g.finish();
    }
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

  /** Asks every live worker for its part of `kind`; settles when all answered or after `timeoutMs`. */
  private gather(kind: AskKind, timeoutMs: number, onPart: (part: Part, worker: Worker) => void): Promise<void> {
    const id = this.nextGatherId++;
    const workers = this.liveWorkers();
    return new Promise((resolve) => {
      const pending = new Set(workers);
      const timer = setTimeout(() => {
        this.log.warn(
          { kind, workerPids: [...pending].map((w) => w.process.pid) },
          'a worker did not answer in time; answering without it',
        );
        finish();
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.gatherings.delete(id);
        resolve();
      };
      this.gatherings.set(id, { pending, onPart, finish });
      if (pending.size === 0) {
        finish();
        return;
      }
      for (const w of workers) {
        sendMessage(w, { agentgate: 'gather', id, kind }).catch(() => {
          if (pending.delete(w) && pending.size === 0) finish();
        });
      }
    });
  }

  /** The tree's answer to one worker's question, streamed back to it in pieces. */
  async answer(asker: Worker, id: number, kind: AskKind): Promise<void> {
    try {
      if (kind === 'metrics') {
        const t0 = performance.now();
        const tree = new TreeMetrics();
        await this.gather(kind, GATHER_TIMEOUT_MS, (part) => {
          if (part.registry) tree.addRegistry(part.registry);
          if (part.agents) tree.addAgents(part.agents);
        });
        const gatheredMs = performance.now() - t0;
        for await (const chunk of tree.chunks()) await sendMessage(asker, { agentgate: 'answer', id, chunk });
        this.log.debug(
          { gatheredMs: Math.round(gatheredMs), answeredMs: Math.round(performance.now() - t0) },
          'metrics of the tree answered',
        );
      } else if (kind === 'sessions') {
        const sessions: DebugSession[] = [];
        await this.gather(kind, GATHER_TIMEOUT_MS, (part) => {
          if (part.sessions) for (const s of part.sessions) sessions.push(s);
        });
        for (let i = 0; i < sessions.length; i += PIECE) {
          await sendMessage(asker, { agentgate: 'answer', id, sessions: sessions.slice(i, i + PIECE) });
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
    } catch (err) {
      // The asking worker went away; nobody waits for this answer.
      this.log.debug({ kind, err: (err as Error).message }, 'an answer could not be delivered');
    }
  }
}
