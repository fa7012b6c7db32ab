// Ctrl-C of a long run: the first SIGINT/SIGTERM asks the run to stop and clean up (its
// AbortSignal); a second kills, by PID, every child process the run started and exits 130.

/**
 * Every child process of this run that has not exited (servers, load workers, the embedded
 * PostgreSQL): whoever starts one adds its PID and deletes it at its exit.
 */
export const livePids = new Set<number>();

export interface InterruptOptions {
  /** Where to say what happens (nothing is said without it). */
  log?: (line: string) => void;
  /** What the first Ctrl-C does, for the message (default `stopping`). */
  stopping?: string;
}

/** Installs the two-signal handler; returns its remover. */
export function onInterrupt(abort: AbortController, o: InterruptOptions = {}): () => void {
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    abort.abort();
    if (interrupts === 1) {
      o.log?.(`interrupted: ${o.stopping ?? 'stopping'} (Ctrl-C again to kill)`);
      return;
    }
    o.log?.('interrupted again: killing everything');
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
