// The worker side of a load: one LoadEngine driven by its parent over a message channel (IPC when
// the worker is a child process, an in-memory pair when it runs in the parent's process).
import type { EngineConfig, EngineSnapshot } from './engine-api.js';
import { LoadEngine } from './engine.js';
import type { SecondWire } from './seconds.js';

export type ToWorker =
  | { type: 'init'; config: EngineConfig; progressEveryMs: number }
  /** Start sending; `measure` opens the measurement window at the first frame. */
  | { type: 'load'; measure: boolean }
  | { type: 'measure' }
  | { type: 'unmeasure' }
  /** Stop sending, drain, answer `done`. */
  | { type: 'finish' }
  | { type: 'stop' };

export type FromWorker =
  /** Periodic; `window` is the latency histogram since the previous progress message. */
  | { type: 'progress'; snapshot: EngineSnapshot; window: string; seconds: SecondWire[] }
  | { type: 'connected'; snapshot: EngineSnapshot }
  | { type: 'done'; snapshot: EngineSnapshot; window: string; total: string; seconds: SecondWire[] }
  | { type: 'stopped' };

export interface WorkerChannel {
  send(msg: FromWorker): Promise<void>;
  onMessage(handler: (msg: ToWorker) => void): void;
}

/** Runs the worker side of the protocol on `channel`; resolves once it was told to stop. */
export function serveWorker(channel: WorkerChannel): Promise<void> {
  let engine: LoadEngine | undefined;
  let progress: NodeJS.Timeout | undefined;
  return new Promise((resolve) => {
    channel.onMessage((msg) => {
      const e = engine;
      switch (msg.type) {
        case 'init': {
          const created = new LoadEngine(msg.config);
          engine = created;
          progress = setInterval(() => {
            void channel.send({
              type: 'progress',
              snapshot: created.snapshot(),
              window: created.takeWindow(),
              seconds: created.takeSeconds(),
            });
          }, msg.progressEveryMs);
          void created.connectAll().then(() => channel.send({ type: 'connected', snapshot: created.snapshot() }));
          break;
        }
        case 'load':
          e?.startLoad(msg.measure);
          break;
        case 'measure':
          e?.beginMeasure();
          break;
        case 'unmeasure':
          e?.endMeasure();
          break;
        case 'finish':
          if (!e) return;
          void e.finishLoad().then(() =>
            channel.send({
              type: 'done',
              snapshot: e.snapshot(),
              window: e.takeWindow(),
              total: e.totalHistogram(),
              seconds: e.takeSeconds(true),
            }),
          );
          break;
        case 'stop':
          if (progress) clearInterval(progress);
          void (e?.close() ?? Promise.resolve()).then(() => channel.send({ type: 'stopped' })).finally(resolve);
          break;
      }
    });
  });
}
