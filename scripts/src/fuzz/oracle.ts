// The fuzzer's oracle: what SPEC §4 and §7 say one frame must get — a close code, no answer, one
// answer, or a batch of answers — and what it must leave in the database. It reads only the bytes
// of the frame (never how the generator made it) and the target's settings. JSON is parsed with
// JSON.parse, the runtime's implementation of RFC 8259; everything after that is the SPEC's rules,
// written here again rather than taken from the gateway, so the two can disagree.
//
// Where the SPEC is silent, the oracle takes what an operator would expect, and says so:
// - members a request or a params object does not define are ignored (a newer agent may send more);
// - `value` of a metadata result may be absent and is then "" (protojson omits empty strings);
// - NUL cannot be stored in PostgreSQL text: it is removed from stored strings (before the limits
//   are applied), and a metadata key holding NUL matches no declared key.
import { CloseCode, RpcError } from '@agentgate/shared';
import type { WireFrame } from './wire.js';

/** SPEC §4 numbers, written here rather than imported, so that the oracle does not follow a changed constant. */
const MAX_BATCH = 64;
const KEYS_BUDGET_BYTES = 6144;
const VALUE_LIMIT_BYTES = 2048;
const METRIC_TYPES = new Set(['TYPE_UNSPECIFIED', 'COUNTER', 'GAUGE']);
export const INT_FIELDS = [
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

/** What the oracle needs to know about the gateway under test. */
export interface FuzzTarget {
  /** `--max-frame-bytes` of the gateway. */
  maxFrameBytes: number;
  /** `reportInterval` that UpdateStats answers (protojson duration, e.g. `30s`). */
  reportInterval: string;
  /** The metadata keys declared for the fuzzing agent (only these are ever stored). */
  declaredKeys: readonly string[];
}

type RpcId = string | number | null;

/** One expected JSON-RPC response (`at`: the batch element it answers, for reports). */
export type ExpectedAnswer = ({ id: RpcId; result: unknown } | { id: RpcId; code: number; droppedKeys?: string[] }) & {
  at?: number;
};

/** A stats row as stored: the ints as numbers, connections_by_proto as a plain object. */
export interface StatsRowValues {
  connectionsByProto: Record<string, number>;
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

/** One declared metadata key written by a frame. */
export interface MetadataWrite {
  key: string;
  value: string;
  error: string;
}

/** What the database holds afterwards because of a frame (requests acknowledged, notifications processed). */
export interface Effects {
  stats: StatsRowValues[];
  metadata: MetadataWrite[];
}

export type Expected =
  | { kind: 'close'; code: number; tokens: 0; effects: Effects }
  | { kind: 'none'; tokens: number; effects: Effects }
  | { kind: 'one'; answer: ExpectedAnswer; tokens: number; effects: Effects }
  | { kind: 'batch'; answers: ExpectedAnswer[]; tokens: number; effects: Effects };

const noEffects = (): Effects => ({ stats: [], metadata: [] });
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The expected outcome of sending `frame` on an open, authorized session with tokens to spare. */
export function expectFrame(frame: WireFrame, target: FuzzTarget): Expected {
  // A message over the limit is refused before anything else is looked at (SPEC §4: 1009).
  if (frame.data.length > target.maxFrameBytes)
    return { kind: 'close', code: CloseCode.MessageTooBig, tokens: 0, effects: noEffects() };
  if (frame.binary) return { kind: 'close', code: CloseCode.UnsupportedData, tokens: 0, effects: noEffects() };
  let text: string;
  try {
    text = utf8.decode(frame.data);
  } catch {
    return { kind: 'close', code: CloseCode.InvalidPayload, tokens: 0, effects: noEffects() };
  }
  return expectText(text, target);
}

function expectText(text: string, target: FuzzTarget): Expected {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return { kind: 'one', answer: { id: null, code: RpcError.ParseError }, tokens: 1, effects: noEffects() };
  }
  const effects = noEffects();
  if (!Array.isArray(msg)) {
    const answer = expectElement(msg, target, effects);
    return answer === undefined ? { kind: 'none', tokens: 1, effects } : { kind: 'one', answer, tokens: 1, effects };
  }
  // SPEC §4: an empty batch, or one over 64 elements, is one -32600 (id null) for one token.
  if (msg.length === 0 || msg.length > MAX_BATCH) {
    return { kind: 'one', answer: { id: null, code: RpcError.InvalidRequest }, tokens: 1, effects };
  }
  const answers: ExpectedAnswer[] = [];
  msg.forEach((el, at) => {
    const a = expectElement(el, target, effects);
    if (a !== undefined) answers.push({ ...a, at });
  });
  // JSON-RPC 2.0: a batch of notifications only is answered with nothing at all.
  if (answers.length === 0) return { kind: 'none', tokens: msg.length, effects };
  return { kind: 'batch', answers, tokens: msg.length, effects };
}

type Rec = Record<string, unknown>;

const isRecord = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const own = (o: Rec, k: string): boolean => Object.hasOwn(o, k);
const get = (o: Rec, k: string): unknown => (own(o, k) ? o[k] : undefined);

/** A valid id: a string, a number, or null (a number JSON.parse turns into ±Infinity is none). */
function validId(v: unknown): v is RpcId {
  return typeof v === 'string' || v === null || (typeof v === 'number' && Number.isFinite(v));
}

/** The id as the answer carries it after a JSON round trip (-0 is written 0). */
const echoed = (id: RpcId): RpcId => JSON.parse(JSON.stringify(id)) as RpcId;

/** One request or notification: its answer (undefined when none is due); its effects are added to `effects`. */
function expectElement(el: unknown, target: FuzzTarget, effects: Effects): ExpectedAnswer | undefined {
  if (!isRecord(el)) return { id: null, code: RpcError.InvalidRequest };
  const hasId = own(el, 'id');
  const id = get(el, 'id');
  const method = get(el, 'method');
  if (get(el, 'jsonrpc') !== '2.0' || typeof method !== 'string' || (hasId && !validId(id))) {
    // Not a request object: -32600 with the id when one could be read (JSON-RPC 2.0 §5, §6).
    return { id: hasId && validId(id) ? echoed(id) : null, code: RpcError.InvalidRequest };
  }
  const answer = (a: { result: unknown } | { code: number; droppedKeys?: string[] }): ExpectedAnswer | undefined =>
    hasId ? { id: echoed(id as RpcId), ...a } : undefined;
  const params = get(el, 'params');
  const paramsGiven = own(el, 'params');
  if (method !== 'UpdateStats' && method !== 'BatchUpdateMetadata') {
    return answer({ code: RpcError.MethodNotFound });
  }
  if (paramsGiven && !isRecord(params)) return answer({ code: RpcError.InvalidParams });
  if (method === 'UpdateStats') {
    const row = statsOf(paramsGiven ? (params as Rec) : {});
    if (row === 'invalid') return answer({ code: RpcError.InvalidParams });
    if (row !== undefined) effects.stats.push(row);
    return answer({ result: { reportInterval: target.reportInterval } });
  }
  if (!paramsGiven) return answer({ code: RpcError.InvalidParams });
  const md = metadataOf(params as Rec, target);
  if (md === 'invalid') return answer({ code: RpcError.InvalidParams });
  effects.metadata.push(...md.writes);
  if (md.droppedKeys.length > 0) return answer({ code: RpcError.MetadataKeysTooLong, droppedKeys: md.droppedKeys });
  return answer({ result: {} });
}

// --- UpdateStats ----------------------------------------------------------------------------------

/** SPEC §4 `int`: a non-negative safe integer, as a JSON number or a decimal string. */
function intOf(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER ? v + 0 : undefined;
  if (typeof v === 'string' && /^[0-9]+$/.test(v)) {
    return BigInt(v) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
  }
  return undefined;
}

/** SPEC `number`: a JSON number that is a double (one JSON.parse turns into ±Infinity is not). */
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function validMetric(m: unknown): boolean {
  if (!isRecord(m)) return false;
  const type = get(m, 'type');
  if (typeof get(m, 'name') !== 'string' || typeof type !== 'string' || !METRIC_TYPES.has(type)) return false;
  if (!isNumber(get(m, 'value'))) return false;
  if (!own(m, 'labels')) return true;
  const labels = get(m, 'labels');
  return (
    Array.isArray(labels) &&
    labels.every((l) => isRecord(l) && typeof get(l, 'name') === 'string' && typeof get(l, 'value') === 'string')
  );
}

/** The stats row of valid params, undefined when there is no `stats` (nothing stored), or 'invalid'. */
function statsOf(params: Rec): StatsRowValues | undefined | 'invalid' {
  if (!own(params, 'stats')) return undefined;
  const stats = get(params, 'stats');
  if (!isRecord(stats)) return 'invalid';
  const ints: Record<string, number> = {};
  for (const f of INT_FIELDS) {
    if (!own(stats, f)) {
      ints[f] = 0;
      continue;
    }
    const n = intOf(stats[f]);
    if (n === undefined) return 'invalid';
    ints[f] = n;
  }
  let latency = -1;
  if (own(stats, 'connectionMedianLatencyMs')) {
    const l = stats['connectionMedianLatencyMs'];
    if (!isNumber(l)) return 'invalid';
    latency = l;
  }
  const byProto: Record<string, number> = Object.create(null);
  if (own(stats, 'connectionsByProto')) {
    const m = stats['connectionsByProto'];
    if (!isRecord(m)) return 'invalid';
    for (const [k, v] of Object.entries(m)) {
      const n = intOf(v);
      if (n === undefined) return 'invalid';
      byProto[storedString(k)] = n;
    }
  }
  if (own(stats, 'metrics')) {
    const metrics = stats['metrics'];
    // Metrics the gateway cannot export are dropped and counted, never an error (SPEC §4) — but
    // the shape itself is part of the schema.
    if (!Array.isArray(metrics) || !metrics.every(validMetric)) return 'invalid';
  }
  return {
    connectionsByProto: byProto,
    connectionCount: ints['connectionCount']!,
    rxPackets: ints['rxPackets']!,
    rxBytes: ints['rxBytes']!,
    txPackets: ints['txPackets']!,
    txBytes: ints['txBytes']!,
    connectionMedianLatencyMs: latency,
    sessionCountVscode: ints['sessionCountVscode']!,
    sessionCountJetbrains: ints['sessionCountJetbrains']!,
    sessionCountReconnectingPty: ints['sessionCountReconnectingPty']!,
    sessionCountSsh: ints['sessionCountSsh']!,
  };
}

// --- BatchUpdateMetadata --------------------------------------------------------------------------

/** SPEC §4: every string is stored well-formed (a lone surrogate becomes U+FFFD); NUL cannot be stored. */
function storedString(s: string): string {
  return wellFormed(s).replaceAll('\u0000', '');
}

/** `s` with every lone UTF-16 surrogate replaced by U+FFFD. */
function wellFormed(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i]! + s[i + 1]!;
        i++;
        continue;
      }
    }
    out += c >= 0xd800 && c <= 0xdfff ? '\ufffd' : s[i]!;
  }
  return out;
}

/** UTF-8 length of a well-formed string, counted by code point. */
function utf8Bytes(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

/** The longest prefix of `s` of at most `limit` UTF-8 bytes that ends on a character boundary. */
function cutUtf8(s: string, limit: number): string {
  let n = 0;
  let out = '';
  for (const ch of s) {
    const b = utf8Bytes(ch);
    if (n + b > limit) break;
    n += b;
    out += ch;
  }
  return out;
}

function validResult(r: unknown): r is Rec {
  if (!isRecord(r)) return false;
  if (own(r, 'collectedAt') && typeof r['collectedAt'] !== 'string') return false;
  if (own(r, 'age') && intOf(r['age']) === undefined) return false;
  if (own(r, 'value') && typeof r['value'] !== 'string') return false;
  if (own(r, 'error') && typeof r['error'] !== 'string') return false;
  return true;
}

function metadataOf(params: Rec, target: FuzzTarget): { writes: MetadataWrite[]; droppedKeys: string[] } | 'invalid' {
  const items = get(params, 'metadata');
  if (!Array.isArray(items)) return 'invalid';
  for (const it of items) {
    if (!isRecord(it) || typeof get(it, 'key') !== 'string' || !validResult(get(it, 'result'))) return 'invalid';
  }
  const declared = new Set(target.declaredKeys);
  const writes: MetadataWrite[] = [];
  const droppedKeys: string[] = [];
  let keyBytes = 0;
  for (const it of items as Rec[]) {
    const key = it['key'] as string;
    if (droppedKeys.length > 0) {
      droppedKeys.push(key);
      continue;
    }
    // The budget counts every key as sent (repeats too); a lone surrogate is 3 bytes, as U+FFFD.
    keyBytes += utf8Bytes(wellFormed(key));
    if (keyBytes > KEYS_BUDGET_BYTES) {
      droppedKeys.push(key);
      continue;
    }
    const result = it['result'] as Rec;
    let value = storedString((get(result, 'value') as string | undefined) ?? '');
    let error = storedString((get(result, 'error') as string | undefined) ?? '');
    const valueBytes = utf8Bytes(value);
    if (valueBytes > VALUE_LIMIT_BYTES) {
      value = cutUtf8(value, VALUE_LIMIT_BYTES);
      error = `value of ${valueBytes} bytes exceeded ${VALUE_LIMIT_BYTES} bytes`;
    } else {
      const errorBytes = utf8Bytes(error);
      if (errorBytes > VALUE_LIMIT_BYTES) error = `error of ${errorBytes} bytes exceeded ${VALUE_LIMIT_BYTES} bytes`;
    }
    const stored = storedString(key);
    if (!key.includes('\u0000') && declared.has(stored)) writes.push({ key: stored, value, error });
  }
  return { writes, droppedKeys };
}
