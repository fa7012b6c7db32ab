// Frame shapes of SPEC §4 as typebox schemas: the gateway compiles them once, the client and the
// tests derive their static types from them. Nobody redeclares a frame shape.
import { type Static, Type } from '@sinclair/typebox';

/** A non-negative safe integer, as a JSON number or a decimal string (protojson writes int64 as strings). */
const Int = Type.Union([
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  Type.String({ pattern: '^[0-9]+$' }),
]);

const MetricType = Type.Union([Type.Literal('TYPE_UNSPECIFIED'), Type.Literal('COUNTER'), Type.Literal('GAUGE')]);

const MetricLabel = Type.Object({ name: Type.String(), value: Type.String() });

export const Metric = Type.Object({
  name: Type.String(),
  type: MetricType,
  value: Type.Number(),
  labels: Type.Optional(Type.Array(MetricLabel)),
});
export type Metric = Static<typeof Metric>;

/** The int counters of Stats (SPEC §4): missing ones are 0. */
export const STATS_INT_FIELDS = [
  'connectionCount',
  'rxPackets',
  'rxBytes',
  'txPackets',
  'txBytes',
  'sessionCountVscode',
  'sessionCountJetbrains',
  'sessionCountReconnectingPty',
  'sessionCountSsh',
] as const;

export const Stats = Type.Object({
  connectionsByProto: Type.Optional(Type.Record(Type.String(), Int)),
  connectionCount: Type.Optional(Int),
  connectionMedianLatencyMs: Type.Optional(Type.Number()),
  rxPackets: Type.Optional(Int),
  rxBytes: Type.Optional(Int),
  txPackets: Type.Optional(Int),
  txBytes: Type.Optional(Int),
  sessionCountVscode: Type.Optional(Int),
  sessionCountJetbrains: Type.Optional(Int),
  sessionCountReconnectingPty: Type.Optional(Int),
  sessionCountSsh: Type.Optional(Int),
  metrics: Type.Optional(Type.Array(Metric)),
});
export type Stats = Static<typeof Stats>;

export const UpdateStatsParams = Type.Object({ stats: Type.Optional(Stats) });
export type UpdateStatsParams = Static<typeof UpdateStatsParams>;

export const UpdateStatsResult = Type.Object({ reportInterval: Type.String() });
export type UpdateStatsResult = Static<typeof UpdateStatsResult>;

const MetadataResult = Type.Object({
  collectedAt: Type.Optional(Type.String()),
  age: Type.Optional(Int),
  // protojson omits empty strings, so an empty value may arrive as a missing field.
  value: Type.Optional(Type.String()),
  error: Type.Optional(Type.String()),
});

export const MetadataItem = Type.Object({ key: Type.String(), result: MetadataResult });
export type MetadataItem = Static<typeof MetadataItem>;

export const BatchUpdateMetadataParams = Type.Object({ metadata: Type.Array(MetadataItem) });
export type BatchUpdateMetadataParams = Static<typeof BatchUpdateMetadataParams>;

export const BatchUpdateMetadataResult = Type.Object({});
export type BatchUpdateMetadataResult = Static<typeof BatchUpdateMetadataResult>;

export const Methods = {
  UpdateStats: 'UpdateStats',
  BatchUpdateMetadata: 'BatchUpdateMetadata',
} as const;
export type MethodName = keyof typeof Methods;

/** JSON-RPC 2.0 envelopes (SPEC §4). */
type RpcId = string | number | null;
export interface RpcRequest<P = unknown> {
  jsonrpc: '2.0';
  id?: RpcId;
  method: string;
  params?: P;
}
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}
interface RpcSuccess<R = unknown> {
  jsonrpc: '2.0';
  id: RpcId;
  result: R;
}
interface RpcFailure {
  jsonrpc: '2.0';
  id: RpcId;
  error: RpcErrorObject;
}
export type RpcResponse<R = unknown> = RpcSuccess<R> | RpcFailure;

/** `data` of a -32602 error. */
export interface ParamError {
  path: string;
  message: string;
}
/** `data` of a -32004 error. */
export interface MetadataOverflowData {
  droppedKeys: string[];
}

/** Shape of `GET /debug/sessions` (SPEC §3). */
export type RefreshOutcome = 'none' | 'unchanged' | 'changed' | 'prebuild' | 'error';
export interface DebugSession {
  agentId: string;
  workspaceId: string;
  connectedAt: string;
  identityCached: boolean;
  lastRefreshAt: string | null;
  lastRefreshOutcome: RefreshOutcome;
  /** The cached identity's names (SPEC §3 rev 4), null when nothing is cached. */
  identity: { workspaceName: string; ownerUsername: string; templateName: string } | null;
  /** With `serve --workers N` (N > 1): the worker process that holds the session. */
  pid?: number;
}

/** NOTIFY payloads (SPEC §4). */
export interface StatsUpdateNotification {
  kind: 'stats_update';
  workspace_id: string;
}
export interface MetadataNotification {
  collected_at: string;
  keys: string[];
}
export const statsChannel = (ownerId: string) => `workspace_owner:${ownerId}`;
export const metadataChannel = (agentId: string) => `workspace_agent_metadata:${agentId}`;
