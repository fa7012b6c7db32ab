// A promise that gives up: rejects after `ms` unless `p` settles first (the work itself goes on;
// cancel it separately where that matters).
import { type Clock, systemClock } from './clock.js';

export function withTimeout<T>(p: Promise<T>, ms: number, clock: Clock = systemClock): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = clock.setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
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
