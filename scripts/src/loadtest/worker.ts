// Entry point of a load worker child process (spawned by run-load.ts): the channel is Node's IPC.
import { serveWorker, type ToWorker, type WorkerChannel } from './worker-loop.js';

const channel: WorkerChannel = {
  send: (msg) =>
    new Promise((resolve) => {
      if (!process.connected) return resolve();
      process.send!(msg, undefined, {}, () => resolve());
    }),
  onMessage: (handler) => process.on('message', (m) => handler(m as ToWorker)),
};
// The parent orchestrates the end (Ctrl-C reaches the whole process group; the parent then says
// stop). Without a parent there is nobody to report to: leave at once.
process.on('SIGINT', () => {});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
await serveWorker(channel);
process.disconnect?.();
process.exit(0);
