// SPEC §7: no unobserved rejection ends the process. A promise that rejects with nobody awaiting it
// (a library's internal promise when a database connection resets, or a bug of ours) is logged at
// error level with what can be known of it and counted in agentgate_unhandled_rejections_total;
// the gateway keeps serving its agents. Installed once per process, before anything else runs.
import type { Logger } from './log.js';

let count = 0;
let installed: Logger | undefined;

/** How many rejections the handler has seen in this process (the metric reads it at scrape time). */
export function unhandledRejections(): number {
  return count;
}

/** What a rejected promise says about where it came from: a postgres.js query carries its SQL. */
function describePromise(promise: Promise<unknown>): Record<string, unknown> {
  const p = promise as Promise<unknown> & { strings?: unknown; origin?: unknown };
  const out: Record<string, unknown> = { promise: p.constructor?.name ?? 'Promise' };
  if (Array.isArray(p.strings)) out['query'] = p.strings.join('$?').replace(/\s+/g, ' ').trim().slice(0, 200);
  return out;
}

export function installLastResort(log: Logger): void {
  if (installed) {
    installed = log;
    return;
  }
  installed = log;
  process.on('unhandledRejection', (reason, promise) => {
    count++;
    const err = reason instanceof Error ? reason : new Error(String(reason));
    const code = (reason as { code?: unknown } | undefined)?.code;
    installed?.error(
      { err, ...(code !== undefined ? { code } : {}), ...describePromise(promise), total: count },
      'unhandled rejection; the gateway goes on serving',
    );
  });
}
