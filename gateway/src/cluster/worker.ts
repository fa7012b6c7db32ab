// One worker of `serve --workers N` (SPEC §8): a whole gateway (own pools, writers, heartbeat) on
// the port the primary shares. It ignores SIGINT/SIGTERM (the terminal's Ctrl-C reaches the whole
// process group) and drains only when the primary says so, or when the primary is gone. Its routes
// answer for the whole tree: `/metrics`, `/debug/sessions` and, when its own database probe fails,
// `/readyz` ask the primary, which gathers every worker's part.
import cluster from 'node:cluster';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { DebugSession } from '@agentgate/shared';
import type { Config } from '../config.js';
import type { Gateway } from '../hub/gateway.js';
import type { Accepted } from '../http/agent-auth.js';
import type { Routes, Readiness } from '../http/server.js';
import type { Logger } from '../ops/log.js';
import type { RefusalReason } from '../ops/metrics.js';
import { CHUNK_BYTES, cutAtLines } from '../ops/exposition.js';
import { startInstance } from '../instance/instance.js';
import { ignoreShutdownSignals } from '../instance/signals.js';
import {
  type AskKind,
  isOurs,
  PART_BYTES,
  PIECE,
  sendMessage,
  type ToPrimary,
  type ToWorker,
  yieldToLoop,
} from './ipc.js';

type Start = Extract<ToWorker, { agentgate: 'start' }>;
type Answer = Extract<ToWorker, { agentgate: 'answer' }>;

/** A worker gives up on the primary's answer after this long without a piece of it. */
const ANSWER_IDLE_MS = 10_000;

export async function runWorker(config: Config, log: Logger): Promise<number> {
  ignoreShutdownSignals(log);
  // node:cluster exits a worker at once when the IPC channel closes; a lost primary must lead to
  // the §7 drain instead (this flag is what node checks before exiting).
  cluster.worker!.exitedAfterDisconnect = true;
  const link = new PrimaryLink(log);
  const start = await link.started;
  if (!start) return 0; // told to drain before it started
  const instance = await startInstance({
    // --max-connections is per process; the write buffer is the tree's, split evenly (README).
    config: { ...config, writeBuffer: Math.ceil(config.writeBuffer / config.workers) },
    databaseUrl: start.databaseUrl,
    log,
    api: (gateway) => new TreeRoutes(gateway, link),
  });
  link.gateway = instance.gateway;
  await link.send({ agentgate: 'listening', port: instance.port }).catch(() => {});
  await link.drainRequested;
  log.info({ sessions: instance.gateway.sessionCount }, 'draining the worker');
  const outcome = await instance.shutdown(link.forced);
  log.info({ outcome }, 'worker drained');
  return outcome === 'drained' ? 0 : 1;
}

/** The worker's end of the IPC channel. */
class PrimaryLink {
  gateway: Gateway | undefined;
  readonly started: Promise<Start | undefined>;
  readonly drainRequested: Promise<void>;
  readonly forced: Promise<void>;
  private resolveStarted!: (s: Start | undefined) => void;
  private resolveDrain!: () => void;
  private resolveForced!: () => void;
  private nextAskId = 0;
  private readonly asks = new Map<number, (m: Answer | Error) => void>();

  constructor(private readonly log: Logger) {
    this.started = new Promise((resolve) => {
      this.resolveStarted = resolve;
    });
    this.drainRequested = new Promise((resolve) => {
      this.resolveDrain = resolve;
    });
    this.forced = new Promise((resolve) => {
      this.resolveForced = resolve;
    });
    process.on('message', (m: unknown) => {
      if (isOurs<ToWorker>(m)) this.onMessage(m);
    });
    process.on('disconnect', () => {
      log.warn('the primary is gone; draining');
      for (const settle of this.asks.values()) settle(new Error('the primary is gone'));
      this.resolveStarted(undefined);
      this.resolveDrain();
    });
    void this.send({ agentgate: 'hello' }).catch(() => {});
  }

  get connected(): boolean {
    return process.connected === true;
  }

  send(m: ToPrimary): Promise<void> {
    return sendMessage(process, m);
  }

  private onMessage(m: ToWorker): void {
    switch (m.agentgate) {
      case 'start':
        this.resolveStarted(m);
        return;
      case 'drain':
        this.resolveStarted(undefined);
        this.resolveDrain();
        return;
      case 'force':
        this.resolveDrain();
        this.resolveForced();
        return;
      case 'gather':
        this.sendPart(m.id, m.kind).catch((err: Error) => {
          this.log.debug({ err: err.message }, 'a part could not be sent to the primary');
        });
        return;
      case 'answer':
        this.asks.get(m.id)?.(m);
        return;
    }
  }

  /** This worker's part of a tree-wide answer, in pieces (the sockets are served between them). */
  private async sendPart(id: number, kind: AskKind): Promise<void> {
    const g = this.gateway;
    if (g && kind === 'ready') {
      await this.send({ agentgate: 'part', id, ready: g.readiness() === 'ready', done: true });
      return;
    }
    if (g && kind === 'sessions') {
      const pid = process.pid;
      const sessions = g.debugSessions().sessions.map((s) => ({ ...s, pid }));
      for (let i = 0; i < sessions.length; i += PIECE) {
        await this.send({ agentgate: 'part', id, sessions: sessions.slice(i, i + PIECE) });
        await yieldToLoop();
      }
    }
    if (g && kind === 'metrics') {
      await this.send({ agentgate: 'part', id, registry: await g.metricsJson() });
      for (const agents of g.agentSampleParts(PART_BYTES)) {
        await this.send({ agentgate: 'part', id, agents });
        await yieldToLoop();
      }
    }
    await this.send({ agentgate: 'part', id, done: true });
  }

  /**
   * Asks the primary for the tree's answer and yields its pieces. It is pulled: the next piece is
   * asked for when the caller takes one, so at most two are here (the one the caller has, the next
   * one coming) however slowly the caller goes, and the primary's stream waits meanwhile.
   */
  async *ask(kind: AskKind): AsyncGenerator<Answer> {
    const id = this.nextAskId++;
    const queue: (Answer | Error)[] = [];
    let wake: (() => void) | undefined;
    this.asks.set(id, (m) => {
      queue.push(m);
      wake?.();
    });
    let finished = false;
    try {
      await this.send({ agentgate: 'ask', id, kind });
      for (;;) {
        if (queue.length === 0) {
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            wake = resolve;
            timer = setTimeout(() => {
              queue.push(new Error(`the primary did not answer within ${ANSWER_IDLE_MS} ms`));
              resolve();
            }, ANSWER_IDLE_MS);
          });
          clearTimeout(timer);
          wake = undefined;
        }
        const m = queue.shift()!;
        if (m instanceof Error) throw m;
        finished = m.done === true;
        if (finished) {
          yield m;
          return;
        }
        await this.send({ agentgate: 'more', id });
        yield m;
      }
    } finally {
      this.asks.delete(id);
      // The caller stopped early (a scrape closed): the primary drops the rest of the answer.
      if (!finished && this.connected) void this.send({ agentgate: 'more', id, stop: true }).catch(() => {});
    }
  }
}

/** The routes of a worker: its own gateway for agents, the whole tree for the ops routes. */
class TreeRoutes implements Routes {
  readonly agentAuth: Gateway['agentAuth'];
  readonly adminAuth: Gateway['adminAuth'];

  constructor(
    private readonly gateway: Gateway,
    private readonly link: PrimaryLink,
  ) {
    this.agentAuth = gateway.agentAuth;
    this.adminAuth = gateway.adminAuth;
  }

  /** SPEC §8: 200 while a worker is ready; this one answers for itself unless its database probe fails. */
  async readiness(): Promise<Readiness> {
    const own = this.gateway.readiness();
    if (own !== 'database' || !this.link.connected) return own;
    try {
      for await (const m of this.link.ask('ready')) if (m.ready) return 'ready';
    } catch {
      /* the primary did not answer: this worker's own view stands */
    }
    return own;
  }

  async *metricsText(): AsyncGenerator<string> {
    if (!this.link.connected) {
      yield* this.gateway.metricsText();
      return;
    }
    for await (const m of this.link.ask('metrics')) {
      // Written in chunks as in one process, so a client that reads slowly but reads is not taken for stalled.
      if (m.chunk !== undefined) yield* cutAtLines(m.chunk, CHUNK_BYTES);
    }
  }

  async debugSessions(): Promise<{ sessions: DebugSession[] }> {
    if (!this.link.connected) return this.gateway.debugSessions();
    const sessions: DebugSession[] = [];
    for await (const m of this.link.ask('sessions')) if (m.sessions) for (const s of m.sessions) sessions.push(s);
    return { sessions };
  }

  accept(req: IncomingMessage, socket: Duplex, head: Buffer, accepted: Accepted): void {
    this.gateway.accept(req, socket, head, accepted);
  }

  refused(reason: RefusalReason): void {
    this.gateway.refused(reason);
  }
}
