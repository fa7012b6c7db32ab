// The gateway's only view of the database. PgStore (pg-store.ts) implements it with SQL;
// unit tests swap in a fake that counts calls. Every method is one statement.
import type { AgentWorkspaceRow, RefreshRow } from '../domain.js';

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

export interface MetadataRow {
  agentId: string;
  key: string;
  value: string;
  error: string;
}

export interface ActivityRow {
  workspaceId: string;
  ownerId: string;
  /** RFC 3339 next autostart, when the cached schedule has one. */
  nextAutostart: string | null;
  /** Prebuilds are not bumped (SPEC §4). */
  bump: boolean;
}

export interface AgentConnectionRow {
  agentId: string;
  /** RFC 3339; sets last_connected_at (and first_connected_at if null), clears disconnected_at. */
  connectedAt: string | null;
  /** RFC 3339; sets disconnected_at. */
  disconnectedAt: string | null;
}

export interface Store {
  /** `signal` cancels the query on the server. */
  agentByToken(token: string, signal?: AbortSignal): Promise<AgentWorkspaceRow | undefined>;
  workspaceByAgentId(agentId: string): Promise<AgentWorkspaceRow | undefined>;
  refreshIdentities(pairs: { agentId: string; workspaceId: string }[]): Promise<RefreshRow[]>;
  /** `signal` cancels the statement on the server (group commit gives up on a stalled attempt). */
  insertStatsBatch(rows: StatsRow[], signal?: AbortSignal): Promise<void>;
  /** Updates declared keys and notifies per agent in the same statement; resolves to the rows written. */
  updateMetadataBatch(rows: MetadataRow[], collectedAt: string, signal?: AbortSignal): Promise<number>;
  bumpAndNotifyActivity(rows: ActivityRow[]): Promise<void>;
  markWorkspacesUsed(workspaceIds: string[], at: string): Promise<void>;
  updateAgentConnections(rows: AgentConnectionRow[]): Promise<void>;
  ping(): Promise<void>;
}
