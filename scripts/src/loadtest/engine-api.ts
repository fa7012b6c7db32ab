// What the parent and a load process exchange about its engine: the configuration it gets, and
// the counters it reports (engine.ts).
import type { FrameMethod as Method, LoadMode } from './schedule.js';

export interface EngineConfig {
  url: string;
  tokens: string[];
  mode: LoadMode;
  metadataKeys: number;
  /** New connections per second opened by this engine. */
  rampPerSec: number;
  /** Upper bound of the connect phase. */
  connectPhaseMs: number;
  requestTimeoutMs: number;
  /** How long to wait for answers after the last frame was sent. */
  drainMs: number;
  /** The local address of this engine's sockets (see sourceAddress in run-load.ts). */
  localAddress?: string;
}

export interface EngineSnapshot {
  /** Sockets open right now. */
  live: number;
  /** Sockets open when the connect phase ended. */
  connected: number;
  sent: number;
  acked: number;
  /** Of `acked`: UpdateStats and BatchUpdateMetadata frames. */
  ackedByMethod: Record<Method, number>;
  /**
   * Every frame of the whole run, inside the measurement window or not (warm-up, cool-down): what
   * the database must hold. `unknown` failed with no known outcome (timeout, closed socket).
   */
  allFrames: { acked: Record<Method, number>; unknown: number };
  errors: Record<string, number>;
  reconnects: number;
  disconnects: number;
  skipped: { disconnected: number; inflightCap: number };
  /** Largest delay between a frame's scheduled time and its send (open-loop modes). */
  maxScheduleLagMs: number;
  /** Length of the measurement window in ms (so far, while it is open). */
  windowMs: number;
}
