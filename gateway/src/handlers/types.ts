// A method of the agent API (Coder's agentapi: one file per RPC family): its name, how it handles
// one request of a session, and — when it writes — when its writer is idle (the drain waits for it).
// It is built once per gateway from the dependencies every method may use, and wired by one line.
import type { Session } from '../session/session.js';
import type { AgentMetrics } from '../ops/agent-metrics.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { BatchWriter, type BatchWriterHooks, type PendingWrite, type WriteBuffer } from '../store/batch-writer.js';
import type { Db } from '../store/db.js';
import type { ActivityWriter } from '../store/activity.js';
import type { Outcome } from './outcome.js';

export interface Method {
  readonly name: string;
  /** Validates, authorizes against the session, writes; resolves to the request's outcome. */
  handle(session: Session, params: unknown): Promise<Outcome>;
  /** Resolves when nothing of this method waits for the database (the shutdown drain). */
  idle(): Promise<void>;
}

export interface MethodDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  agentMetrics: AgentMetrics;
  activity: ActivityWriter;
  /** The interval UpdateStats returns to agents. */
  reportIntervalMs: number;
  /** A group-commit writer for `table` (SPEC §7), sharing the write buffer with the others. */
  writer<T>(table: string, maxBatch: number, write: (items: T[]) => PendingWrite): BatchWriter<T>;
}

/** The `writer` of MethodDeps: every writer shares one buffer, clock and database hooks. */
export function writerFactory(
  buffer: WriteBuffer,
  clock: Clock,
  hooks: (table: string) => BatchWriterHooks,
): MethodDeps['writer'] {
  return (table, maxBatch, write) =>
    new BatchWriter({ name: table, maxBatch, write, buffer, clock, hooks: hooks(table) });
}
