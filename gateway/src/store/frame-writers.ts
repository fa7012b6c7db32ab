// The two group-commit writers that hold frames (SPEC §7): one per table, sharing the write buffer.
import type { Clock } from '../ops/clock.js';
import { BatchWriter, type BatchWriterHooks } from './batch-writer.js';
import type { MetadataRow, StatsRow, Store } from './store.js';
import type { WriteBuffer } from './write-buffer.js';

export interface MetadataUpdate {
  key: string;
  value: string;
  error: string;
}

export interface MetadataWrite {
  agentId: string;
  updates: MetadataUpdate[];
}

/** The rows of one batch: the latest value of a key wins, within a call and across calls. */
function metadataRows(items: MetadataWrite[]): MetadataRow[] {
  const latest = new Map<string, MetadataRow>();
  for (const w of items) {
    for (const u of w.updates) {
      const k = `${w.agentId}\u0000${u.key}`;
      latest.delete(k);
      latest.set(k, { agentId: w.agentId, key: u.key, value: u.value, error: u.error });
    }
  }
  return [...latest.values()];
}

export interface FrameWriters {
  stats: BatchWriter<StatsRow>;
  metadata: BatchWriter<MetadataWrite>;
}

export function createFrameWriters(o: {
  store: Store;
  clock: Clock;
  buffer: WriteBuffer;
  hooks: BatchWriterHooks;
  onBatch?: (table: string, size: number) => void;
}): FrameWriters {
  const { store, clock, buffer } = o;
  const hooksFor = (table: string): BatchWriterHooks => ({
    ...o.hooks,
    onBatch: (n) => o.onBatch?.(table, n),
  });
  return {
    stats: new BatchWriter<StatsRow>({
      name: 'workspace_agent_stats',
      maxBatch: 2000,
      buffer,
      clock,
      hooks: hooksFor('workspace_agent_stats'),
      write: (rows, signal) => store.insertStatsBatch(rows, signal),
    }),
    metadata: new BatchWriter<MetadataWrite>({
      name: 'workspace_agent_metadata',
      maxBatch: 1000,
      buffer,
      clock,
      hooks: hooksFor('workspace_agent_metadata'),
      // collected_at is the server's clock at commit (SPEC §4).
      write: (items, signal) =>
        store.updateMetadataBatch(metadataRows(items), new Date(clock.now()).toISOString(), signal).then(() => {}),
    }),
  };
}
