// SPEC §4 UpdateStats, the database side: one `workspace_agent_stats` row per report, written by
// group commit (one statement per batch). Row ids are the gateway's own, chosen once per frame, so
// that a retried batch is idempotent (SPEC §7): time-ordered UUIDv7 (RFC 9562), so consecutive rows
// land next to each other in the primary-key index instead of at random pages.
import { randomFillSync } from 'node:crypto';
import type { Sql } from './db.js';

export interface StatsRow {
  id: string;
  createdAt: string;
  userId: string;
  agentId: string;
  workspaceId: string;
  templateId: string;
  /** JSON text of `{proto: number}`. */
  connectionsByProto: string;
  connectionCount: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  connectionMedianLatencyMs: number;
  sessionCountVscode: number;
  sessionCountJetbrains: number;
  sessionCountReconnectingPty: number;
  sessionCountSsh: number;
}

/**
 * One statement per batch. The batch travels as one JSON text (JSON.stringify is native; per-element
 * array escaping in postgres.js cost more); `::text::json` keeps postgres.js from encoding it again.
 */
export function insertStatsBatch(sql: Sql, rows: StatsRow[]) {
  return sql`
    insert into workspace_agent_stats (
      id, created_at, user_id, agent_id, workspace_id, template_id, connections_by_proto, connection_count,
      rx_packets, rx_bytes, tx_packets, tx_bytes, connection_median_latency_ms,
      session_count_vscode, session_count_jetbrains, session_count_reconnecting_pty, session_count_ssh)
    select id, "createdAt", "userId", "agentId", "workspaceId", "templateId", "connectionsByProto"::jsonb,
           "connectionCount", "rxPackets", "rxBytes", "txPackets", "txBytes", "connectionMedianLatencyMs",
           "sessionCountVscode", "sessionCountJetbrains", "sessionCountReconnectingPty", "sessionCountSsh"
    from json_to_recordset(${JSON.stringify(rows)}::text::json) as r(
      id uuid, "createdAt" timestamptz, "userId" uuid, "agentId" uuid, "workspaceId" uuid, "templateId" uuid,
      "connectionsByProto" text, "connectionCount" bigint, "rxPackets" bigint, "rxBytes" bigint,
      "txPackets" bigint, "txBytes" bigint, "connectionMedianLatencyMs" float8, "sessionCountVscode" bigint,
      "sessionCountJetbrains" bigint, "sessionCountReconnectingPty" bigint, "sessionCountSsh" bigint)
    on conflict (id, created_at) do nothing`;
}

const POOL = 4096;
const pool = Buffer.alloc(POOL);
let offset = POOL;
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** A UUIDv7 for `now` (48-bit milliseconds, then 74 random bits). */
export function uuidv7(now: number = Date.now()): string {
  if (offset + 10 > POOL) {
    randomFillSync(pool);
    offset = 0;
  }
  const r = pool;
  const o = offset;
  offset += 10;
  const hi = Math.floor(now / 0x1000000);
  const lo = now % 0x1000000;
  const b0 = (hi >>> 16) & 0xff;
  const b1 = (hi >>> 8) & 0xff;
  const b2 = hi & 0xff;
  const b3 = (lo >>> 16) & 0xff;
  const b4 = (lo >>> 8) & 0xff;
  const b5 = lo & 0xff;
  const b6 = 0x70 | (r[o]! & 0x0f); // version 7
  const b8 = 0x80 | (r[o + 2]! & 0x3f); // variant 10
  return (
    HEX[b0]! +
    HEX[b1]! +
    HEX[b2]! +
    HEX[b3]! +
    '-' +
    HEX[b4]! +
    HEX[b5]! +
    '-' +
    HEX[b6]! +
    HEX[r[o + 1]!]! +
    '-' +
    HEX[b8]! +
    HEX[r[o + 3]!]! +
    '-' +
    HEX[r[o + 4]!]! +
    HEX[r[o + 5]!]! +
    HEX[r[o + 6]!]! +
    HEX[r[o + 7]!]! +
    HEX[r[o + 8]!]! +
    HEX[r[o + 9]!]!
  );
}
