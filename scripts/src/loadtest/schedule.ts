// How agents send, and the open-loop clock: frame j is due at a fixed time, whether or not the
// server kept up, and a tick sends every frame that has come due (a bounded number per tick).

/** How agents send. `rate` and `inflight` alternate UpdateStats and BatchUpdateMetadata per agent. */
export type LoadMode =
  /** Each agent sends stats and metadata at these intervals (spread evenly over the interval). */
  | { kind: 'interval'; statsIntervalMs: number; metadataIntervalMs: number }
  /** Open loop: a fixed total of frames per second, round-robin over the agents. */
  | { kind: 'rate'; framesPerSec: number }
  /** Closed loop (saturation): each agent keeps this many requests unanswered. */
  | { kind: 'inflight'; perAgent: number }
  /** Connect and hold the sockets; send nothing. */
  | { kind: 'idle' };

export type FrameMethod = 'stats' | 'metadata';

/** Frames sent per tick at most, so that a late generator never blocks its event loop for long. */
const TICK_BUDGET = 2000;
const TICK_MS = 2;

export interface OpenLoop {
  mode: Extract<LoadMode, { kind: 'interval' | 'rate' }>;
  agents: number;
  /** When frame 0 is due (performance.now()). */
  t0: number;
  /** Sends a frame from agent `i` (a method of its own choosing when none is given). */
  send(i: number, method?: FrameMethod): void;
  /** How late (ms) a frame is sent behind its due time. */
  late(ms: number): void;
}

/** Runs the open loop until the returned function is called. */
export function startOpenLoop(o: OpenLoop): () => void {
  const { mode, agents: n, t0 } = o;
  let statsCursor = 0;
  let metaCursor = 0;
  let rateCursor = 0;
  let stopped = false;
  let immediate: NodeJS.Immediate | undefined;
  const tick = (): void => {
    immediate = undefined;
    if (stopped) return;
    const now = performance.now();
    const elapsed = now - t0;
    let budget = TICK_BUDGET;
    if (mode.kind === 'interval') {
      // Stats frame j goes to agent j % n at j·I/n; metadata frames are offset by half a slot.
      const statsDue = Math.floor((elapsed * n) / mode.statsIntervalMs) + 1;
      while (statsCursor < statsDue && budget-- > 0) {
        o.late(now - (t0 + (statsCursor * mode.statsIntervalMs) / n));
        o.send(statsCursor++ % n, 'stats');
      }
      const metaDue = Math.max(0, Math.floor((elapsed * n) / mode.metadataIntervalMs - 0.5) + 1);
      while (metaCursor < metaDue && budget-- > 0) {
        o.late(now - (t0 + ((metaCursor + 0.5) * mode.metadataIntervalMs) / n));
        o.send(metaCursor++ % n, 'metadata');
      }
      if (statsCursor < statsDue || metaCursor < metaDue) immediate = setImmediate(tick);
    } else {
      const due = Math.floor((elapsed * mode.framesPerSec) / 1000) + 1;
      while (rateCursor < due && budget-- > 0) {
        o.late(now - (t0 + (rateCursor * 1000) / mode.framesPerSec));
        o.send(rateCursor++ % n);
      }
      if (rateCursor < due) immediate = setImmediate(tick);
    }
  };
  const timer = setInterval(tick, TICK_MS);
  tick();
  return () => {
    stopped = true;
    clearInterval(timer);
    if (immediate) clearImmediate(immediate);
  };
}
