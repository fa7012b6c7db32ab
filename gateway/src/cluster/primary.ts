// `serve --workers N` (SPEC §8): the primary. It prepares the database once (embedded start,
// migrations), forks N workers that each run a whole gateway on the one port (node:cluster hands
// them connections round-robin), restarts a worker that dies (with backoff), answers the workers'
// questions about the whole tree (`/metrics`, `/debug/sessions`, `/readyz`) by gathering every
// worker's part over IPC, and on SIGTERM/SIGINT drains them all before it stops the database.
// It holds no socket and runs no gateway itself.
import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config.js';
import type { Logger } from '../ops/log.js';
import { logListening, type PreparedDatabase, stopper } from '../instance/announce.js';
import type { ShutdownSignals } from '../instance/signals.js';
import { isOurs, sendMessage, type ToPrimary } from './ipc.js';
import { RestartBackoff } from './restart-backoff.js';
import { TreeQuestions } from './tree-questions.js';

/** After a second signal, how long the workers get to exit before they are killed. */
const FORCE_GRACE_MS = 2000;

interface Slot {
  /** 1..N, stable across restarts (for the logs). */
  id: number;
  worker: Worker | undefined;
  pid: number | undefined;
  startedAt: number;
  listening: boolean;
  backoff: RestartBackoff;
  restartTimer: NodeJS.Timeout | undefined;
}

export async function runPrimary(
  config: Config,
  log: Logger,
  signals: ShutdownSignals,
  prepareDatabase: () => Promise<PreparedDatabase>,
): Promise<number> {
  const db = await prepareDatabase();
  const stopped = stopper(db, log);
  if (signals.isRequested) return stopped(signals.isForced ? 1 : 0);
  const primary = new Primary(config, log, db.url);
  const started = await Promise.race([primary.start(), signals.requested.then(() => 'signal' as const)]);
  if (started === 'listening') {
    // With port 0 each worker's metrics listener shares one random port the primary does not learn.
    const metricsPort = config.metricsListenPort;
    logListening(log, config, { port: primary.port!, metricsPort, embedded: db.embedded, workers: config.workers });
    await signals.requested;
  } else if (started !== 'signal') {
    log.error({ code: started.code }, 'a worker could not start; stopping');
    await primary.stop(signals.forced);
    await db.stop();
    return started.code === 2 ? 2 : 1;
  }
  return stopped(await primary.stop(signals.forced));
}

class Primary {
  /** The port the workers listen on (port 0 picks one, shared by all of them). */
  port: number | undefined;
  private readonly slots: Slot[];
  private stopping = false;
  private announced = false;
  private onStarted: ((r: 'listening' | { code: number }) => void) | undefined;
  private onAllStopped: (() => void) | undefined;
  private workersFailed = false;
  private readonly questions: TreeQuestions;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly databaseUrl: string,
  ) {
    this.questions = new TreeQuestions(log, () =>
      this.slots.flatMap((s) => (s.worker?.isConnected() ? [s.worker] : [])),
    );
    this.slots = Array.from({ length: config.workers }, (_, i) => ({
      id: i + 1,
      worker: undefined,
      pid: undefined,
      startedAt: 0,
      listening: false,
      backoff: new RestartBackoff(),
      restartTimer: undefined,
    }));
  }

  /** Forks every worker; settles when all of them listen, or with the exit code of one that could not start. */
  start(): Promise<'listening' | { code: number }> {
    // Structured clone instead of JSON: a scrape moves tens of MB of exposition lines full of quotes.
    cluster.setupPrimary({ serialization: 'advanced' });
    return new Promise((resolve) => {
      this.onStarted = resolve;
      for (const slot of this.slots) this.fork(slot);
    });
  }

  private fork(slot: Slot): void {
    // The worker runs this same command (argv, execArgv); the database URL follows over IPC.
    const worker = cluster.fork();
    slot.worker = worker;
    slot.pid = worker.process.pid;
    slot.startedAt = Date.now();
    slot.listening = false;
    this.log.info({ worker: slot.id, workerPid: slot.pid }, 'worker started');
    worker.on('message', (m: unknown) => {
      if (isOurs<ToPrimary>(m)) this.onMessage(slot, worker, m);
    });
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
  }

  private onMessage(slot: Slot, worker: Worker, m: ToPrimary): void {
    switch (m.agentgate) {
      case 'hello':
        if (this.stopping) {
          void sendMessage(worker, { agentgate: 'drain' }).catch(() => {});
          return;
        }
        // The same listen call in every worker (even port 0): node:cluster shares one handle per address.
        void sendMessage(worker, {
          agentgate: 'start',
          databaseUrl: this.databaseUrl,
        }).catch(() => {});
        return;
      case 'listening':
        slot.listening = true;
        this.port ??= m.port;
        this.log.info({ worker: slot.id, workerPid: slot.pid, port: m.port }, 'worker listening');
        if (!this.announced && this.slots.every((s) => s.listening)) {
          this.announced = true;
          this.onStarted?.('listening');
        }
        return;
      case 'ask':
        void this.questions.answer(worker, m.id, m.kind);
        return;
      case 'part':
        this.questions.onPart(worker, m);
        return;
      case 'more':
        this.questions.onMore(worker, m);
        return;
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.listening = false;
    this.questions.forget(worker);
    const pid = slot.pid;
    if (this.stopping) {
      if (code !== 0) this.workersFailed = true;
      this.log.info({ worker: slot.id, workerPid: pid, code, signal }, 'worker stopped');
      if (this.slots.every((s) => s.worker === undefined)) this.onAllStopped?.();
      return;
    }
    if (!this.announced) {
      this.log.error({ worker: slot.id, workerPid: pid, code, signal }, 'worker exited during startup');
      this.onStarted?.({ code: code ?? 1 });
      return;
    }
    const livedMs = Date.now() - slot.startedAt;
    const restartInMs = slot.backoff.after(livedMs);
    this.log.warn(
      { worker: slot.id, workerPid: pid, code, signal, livedMs, restartInMs },
      'worker exited; restarting it',
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!this.stopping) this.fork(slot);
    }, restartInMs);
  }

  /**
   * SPEC §7 for the tree: every worker drains (each within the shutdown timeout) and exits; a
   * second signal makes them skip the rest; a worker that outlives the budget is killed. Returns
   * the exit code of the primary.
   */
  async stop(forced: Promise<void>): Promise<number> {
    this.stopping = true;
    const budgetMs = this.config.shutdownTimeoutMs;
    const hardStop = setTimeout(() => {
      this.log.error('shutdown timeout reached; exiting');
      process.exit(1);
    }, budgetMs + 10_000);
    hardStop.unref();
    for (const slot of this.slots) clearTimeout(slot.restartTimer);
    const live = () => this.slots.flatMap((s) => (s.worker ? [s.worker] : []));
    const allStopped = new Promise<'stopped'>((resolve) => {
      if (live().length === 0) resolve('stopped');
      this.onAllStopped = () => resolve('stopped');
    });
    for (const w of live()) void sendMessage(w, { agentgate: 'drain' }).catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      allStopped,
      forced.then(() => 'forced' as const),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), budgetMs + 2000);
      }),
    ]);
    clearTimeout(timer);
    if (outcome !== 'stopped') {
      if (outcome === 'forced') {
        for (const w of live()) void sendMessage(w, { agentgate: 'force' }).catch(() => {});
        await Promise.race([allStopped, new Promise((r) => setTimeout(r, FORCE_GRACE_MS))]);
      }
      const left = live();
      if (left.length > 0) {
        this.log.error({ workerPids: left.map((w) => w.process.pid) }, 'workers did not stop in time; killing them');
        for (const w of left) w.process.kill('SIGKILL');
        await Promise.race([allStopped, new Promise((r) => setTimeout(r, FORCE_GRACE_MS))]);
      }
      return 1;
    }
    return this.workersFailed ? 1 : 0;
  }
}
