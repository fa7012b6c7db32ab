// One catalog of every JSON-RPC error code and WebSocket close code (SPEC §4, §7), shared by the
// gateway, the agent client and the tests. Private close codes follow Centrifugo's convention:
// 4000–4499 mean "reconnect", 4500–4999 mean "do not reconnect".

export const RpcError = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  NotAuthorized: -32001,
  Unavailable: -32002,
  RateLimited: -32003,
  MetadataKeysTooLong: -32004,
} as const;
export type RpcErrorCode = (typeof RpcError)[keyof typeof RpcError];

export const RpcErrorMessage: Record<RpcErrorCode, string> = {
  [RpcError.ParseError]: 'parse error: frame is not valid JSON',
  [RpcError.InvalidRequest]: 'invalid request: not a JSON-RPC 2.0 request',
  [RpcError.MethodNotFound]: 'method not found',
  [RpcError.InvalidParams]: 'invalid params',
  [RpcError.InternalError]: 'internal error',
  [RpcError.NotAuthorized]: 'not authorized for this workspace',
  [RpcError.Unavailable]: 'temporarily unavailable, retry later',
  [RpcError.RateLimited]: 'rate limited',
  [RpcError.MetadataKeysTooLong]: 'metadata keys too long',
};

export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  UnsupportedData: 1003,
  InvalidPayload: 1007,
  MessageTooBig: 1009,
  InternalError: 1011,
  SlowConsumer: 4008,
  Replaced: 4009,
  NotAuthorized: 4501,
} as const;
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Whether a client should reconnect after the socket closed with `code`. */
export function shouldReconnect(code: number): boolean {
  if (code >= 4500 && code <= 4999) return false;
  return true;
}

export const CloseReason: Record<CloseCodeValue, string> = {
  [CloseCode.Normal]: 'normal closure',
  [CloseCode.GoingAway]: 'going away',
  [CloseCode.UnsupportedData]: 'binary frames are not supported',
  [CloseCode.InvalidPayload]: 'text frame is not valid UTF-8',
  [CloseCode.MessageTooBig]: 'frame exceeds the size limit',
  [CloseCode.InternalError]: 'internal error',
  [CloseCode.SlowConsumer]: 'slow consumer',
  [CloseCode.Replaced]: 'replaced by a newer session of the same agent',
  [CloseCode.NotAuthorized]: 'no longer authorized',
};

/** Well-known ids and limits from SPEC §2 and §4. */
export const PREBUILDS_OWNER_ID = 'c42fdf75-3097-471c-8c33-fb52454d81c0';
export const RPC_PATH = '/api/v2/workspaceagents/me/rpc';
export const METADATA_KEYS_BUDGET_BYTES = 6144;
export const METADATA_VALUE_LIMIT_BYTES = 2048;
export const MAX_UNANSWERED_PER_SESSION = 64;
/** Sessions one agent may hold in one gateway process (SPEC §3); a newer one replaces the oldest (4009). */
export const MAX_SESSIONS_PER_AGENT = 4;
/** Elements of one JSON-RPC batch (SPEC §4); a longer batch is answered with a single -32600. */
export const MAX_BATCH_ELEMENTS = 64;
export const SLOW_CONSUMER_BYTES = 1024 * 1024;
