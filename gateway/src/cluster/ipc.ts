// The messages between the primary and its workers (node:cluster IPC, structured clone). Each carries its kind
// in `agentgate`, which tells them apart from node's own and any library's on the same channel.
// The database URL travels only here (never in argv, the environment or a log line).
import type { DebugSession } from '@agentgate/shared';
import type { AgentSamplesPart } from '../ops/exposition.js';
import type { RegistryJson } from '../ops/metrics.js';

/** What a worker asks the whole tree for. */
export type AskKind = 'metrics' | 'sessions' | 'ready';

/** Primary → worker. */
export type ToWorker =
  /** The answer to `hello`: where the database is. */
  | { agentgate: 'start'; databaseUrl: string }
  /** SPEC §7: drain within the shutdown timeout, then exit 0. */
  | { agentgate: 'drain' }
  /** A second signal: skip the rest of the drain. */
  | { agentgate: 'force' }
  /** Send your own part of `kind` as `part` messages, the last one `done`. */
  | { agentgate: 'gather'; id: number; kind: AskKind }
  /**
   * The tree's answer to the worker's `ask` `id`, in pieces; the last one `done`. After each piece
   * that is not `done`, the primary waits for the worker's `more` before it sends the next.
   */
  | { agentgate: 'answer'; id: number; chunk?: string; sessions?: DebugSession[]; ready?: boolean; done?: true };

/** Worker → primary. */
export type ToPrimary =
  | { agentgate: 'hello' }
  | { agentgate: 'listening'; port: number }
  | { agentgate: 'ask'; id: number; kind: AskKind }
  /**
   * The worker took a piece of answer `id` (for `/metrics`: its client took the one before): send
   * the next; with `stop`, send nothing more. The answer is pulled, so a slow client holds at most
   * two pieces in the worker and stalls the primary's stream instead of filling memory.
   */
  | { agentgate: 'more'; id: number; stop?: true }
  | {
      agentgate: 'part';
      id: number;
      registry?: RegistryJson;
      agents?: AgentSamplesPart;
      sessions?: DebugSession[];
      ready?: boolean;
      done?: true;
    };

export function isOurs<T extends { agentgate: string }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && typeof (m as { agentgate?: unknown }).agentgate === 'string';
}

/** Something messages can be sent to: `process` in a worker, a `cluster.Worker` in the primary. */
interface Channel {
  send?(message: unknown, callback?: (error: Error | null) => void): boolean;
  isConnected?(): boolean;
  connected?: boolean;
}

/**
 * Sends one message and resolves once it is written (the next chunk waits for it: the channel's
 * own backpressure). Rejects when the other end is gone.
 */
export function sendMessage(to: Channel, message: ToWorker | ToPrimary): Promise<void> {
  return new Promise((resolve, reject) => {
    const connected = to.isConnected ? to.isConnected() : to.connected !== false;
    if (!to.send || !connected) {
      reject(new Error('the IPC channel is closed'));
      return;
    }
    try {
      to.send(message, (err) => (err ? reject(err) : resolve()));
    } catch (err) {
      reject(err as Error);
    }
  });
}

/** Sessions per message: each costs a few ms to encode. */
export const PIECE = 5000;
/** Bytes of agent series per part a worker sends the primary (an agent's series are never split). */
export const PART_BYTES = 1024 * 1024;
/**
 * Characters (bytes, but for non-ASCII label values) per piece of `/metrics` the primary streams to
 * the asking worker, which holds at most two of them per scrape (the one its client is taking, and
 * the next, asked for meanwhile). Large, because each piece costs a round trip between processes.
 */
export const ANSWER_BYTES = 256 * 1024;

/** Lets the event loop serve sockets between two pieces. */
export const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
