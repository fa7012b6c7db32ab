// The parent's end of a load worker: a child process over IPC (worker.ts), or the same protocol in
// this process over an in-memory pair (for a load small enough not to need a process).
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { livePids } from '../lab/interrupt.js';
import { type FromWorker, serveWorker, type ToWorker } from './worker-loop.js';

export interface WorkerHandle {
  pid: number | undefined;
  send(msg: ToWorker): void;
  onMessage(handler: (msg: FromWorker) => void): void;
  exited: Promise<void>;
  kill(): void;
}

const entry = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url));

export function forkWorker(): WorkerHandle {
  const child: ChildProcess = fork(entry, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: entry.endsWith('.ts') ? ['--import', 'tsx'] : [],
  });
  const pid = child.pid;
  if (pid !== undefined) livePids.add(pid);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      if (pid !== undefined) livePids.delete(pid);
      resolve();
    }),
  );
  return {
    pid,
    send: (msg) => {
      if (child.connected) child.send(msg);
    },
    onMessage: (handler) => child.on('message', (m) => handler(m as FromWorker)),
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

export function inProcessWorker(): WorkerHandle {
  const toWorker = new EventEmitter();
  const toParent = new EventEmitter();
  const exited = serveWorker({
    send: async (msg) => {
      setImmediate(() => toParent.emit('message', msg));
    },
    onMessage: (handler) => toWorker.on('message', handler),
  });
  return {
    pid: undefined,
    send: (msg) => setImmediate(() => toWorker.emit('message', msg)),
    onMessage: (handler) => toParent.on('message', handler),
    exited,
    kill: () => {},
  };
}
