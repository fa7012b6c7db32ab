// A promise that gives up: rejects after `ms` unless `p` settles first (the work itself goes on;
// cancel it separately where that matters).
import { type Clock, systemClock } from './clock.js';

/** The rejection of withTimeout when time ran out (the work may still be going on). */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

export function withTimeout<T>(p: Promise<T>, ms: number, clock: Clock = systemClock): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = clock.setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms`)), ms, 'timeout');
    p.then(
      (v) => {
        clock.clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clock.clearTimeout(t);
        reject(e);
      },
    );
  });
}
