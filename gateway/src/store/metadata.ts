// SPEC §4 BatchUpdateMetadata, the database side, for a whole group-commit batch in one statement:
// only declared keys are updated (the join), `collected_at` is the server's time at commit, and one
// NOTIFY per agent (per chunk of keys, each payload under 8000 bytes) lists the keys written. When a
// key repeats within a call or a batch, the latest value wins. Timestamps travel as RFC 3339 text
// cast in SQL: postgres.js reads a timestamptz parameter through JS Date, which takes year 0001
// for 2001.
import type { Sql } from './db.js';

export interface MetadataUpdate {
  key: string;
  value: string;
  error: string;
}

/** One frame's updates. */
export interface MetadataWrite {
  agentId: string;
  updates: MetadataUpdate[];
}

interface MetadataRow extends MetadataUpdate {
  agentId: string;
  /** Which NOTIFY of its agent lists the key. */
  chunk: number;
}

/** NOTIFY payloads must stay under 8000 bytes; an agent's keys are listed in chunks below this. */
const NOTIFY_KEYS_CHUNK_BYTES = 6000;

/** The rows of one batch, the latest value of a key winning, each assigned to a NOTIFY chunk. */
function metadataRows(items: MetadataWrite[]): MetadataRow[] {
  const latest = new Map<string, MetadataRow>();
  for (const w of items) {
    for (const u of w.updates) {
      const k = `${w.agentId}\u0000${u.key}`;
      latest.delete(k);
      latest.set(k, { agentId: w.agentId, key: u.key, value: u.value, error: u.error, chunk: 0 });
    }
  }
  const budget = new Map<string, { chunk: number; bytes: number }>();
  for (const r of latest.values()) {
    let b = budget.get(r.agentId);
    if (!b) {
      b = { chunk: 0, bytes: 0 };
      budget.set(r.agentId, b);
    }
    const size = Buffer.byteLength(JSON.stringify(r.key)) + 1;
    if (b.bytes + size > NOTIFY_KEYS_CHUNK_BYTES) {
      b.chunk++;
      b.bytes = 0;
    }
    b.bytes += size;
    r.chunk = b.chunk;
  }
  return [...latest.values()];
}

/** Payloads are compact JSON, as Coder's publishers write them. */
export function updateMetadataBatch(sql: Sql, items: MetadataWrite[], collectedAt: string) {
  return sql<{ written: number; notified: number }[]>`
    with input as (
      select * from json_to_recordset(${JSON.stringify(metadataRows(items))}::text::json)
        as i("agentId" uuid, key text, value text, error text, chunk int)
    ), updated as (
      update workspace_agent_metadata m
      set value = i.value, error = i.error, collected_at = ${collectedAt}::text::timestamptz
      from input i
      where m.workspace_agent_id = i."agentId" and m.key = i.key
      returning m.workspace_agent_id as agent_id, m.key::text as key, i.chunk
    ), notified as (
      select pg_notify('workspace_agent_metadata:' || agent_id,
                       '{"collected_at":' || to_json(${collectedAt}::text)::text
                       || ',"keys":[' || string_agg(to_json(key)::text, ',') || ']}')
      from updated group by agent_id, chunk
    )
    select (select count(*) from updated)::int as written, (select count(*) from notified)::int as notified`;
}
