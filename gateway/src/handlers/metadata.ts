// BatchUpdateMetadata (SPEC §4): the keys budget, value and error truncation, the server's
// collected_at (set by the statement at commit), only declared keys (the statement's join),
// answered after commit.
import {
  BatchUpdateMetadataParams,
  compile,
  METADATA_KEYS_BUDGET_BYTES,
  METADATA_VALUE_LIMIT_BYTES,
  type MetadataOverflowData,
  Methods,
  paramErrors,
  RpcError,
  RpcErrorMessage,
  storable,
  toInt,
} from '@agentgate/shared';
import type { Session } from '../session/session.js';
import { type MetadataUpdate, type MetadataWrite, updateMetadataBatch } from '../store/metadata.js';
import { constantResult, invalidParams, notAuthorized, type Outcome, rpcError, writeFailed } from './outcome.js';
import type { Method, MethodDeps } from './types.js';

const check = compile(BatchUpdateMetadataParams);
const ok = constantResult({});

/** Cuts `s` to at most `limit` UTF-8 bytes without splitting a character. */
export function truncateUtf8(s: string, limit: number): string {
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= limit) return s;
  let end = limit;
  // Step back over continuation bytes (10xxxxxx) to the start of the cut character.
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/** Applies the SPEC §4 limits; returns the updates to write and the keys dropped by the budget. */
export function limitMetadata(items: { key: string; result: { value?: string; error?: string } }[]): {
  updates: MetadataUpdate[];
  droppedKeys: string[];
} {
  const updates: MetadataUpdate[] = [];
  const droppedKeys: string[] = [];
  let keyBytes = 0;
  for (const item of items) {
    if (droppedKeys.length > 0) {
      droppedKeys.push(item.key);
      continue;
    }
    keyBytes += Buffer.byteLength(item.key, 'utf8');
    if (keyBytes > METADATA_KEYS_BUDGET_BYTES) {
      droppedKeys.push(item.key);
      continue;
    }
    let value = storable(item.result.value ?? '');
    let error = storable(item.result.error ?? '');
    const valueBytes = Buffer.byteLength(value, 'utf8');
    if (valueBytes > METADATA_VALUE_LIMIT_BYTES) {
      error = `value of ${valueBytes} bytes exceeded ${METADATA_VALUE_LIMIT_BYTES} bytes`;
      value = truncateUtf8(value, METADATA_VALUE_LIMIT_BYTES);
    }
    const errorBytes = Buffer.byteLength(error, 'utf8');
    if (errorBytes > METADATA_VALUE_LIMIT_BYTES) {
      error = `error of ${errorBytes} bytes exceeded ${METADATA_VALUE_LIMIT_BYTES} bytes`;
    }
    // A key with NUL cannot be declared (PostgreSQL text has no NUL), so it can only be ignored.
    if (item.key.includes('\u0000')) continue;
    updates.push({ key: storable(item.key), value, error });
  }
  return { updates, droppedKeys };
}

export function batchUpdateMetadata(deps: MethodDeps): Method {
  const { clock, log } = deps;
  // collected_at is the server's clock at commit (SPEC §4).
  const writer = deps.writer<MetadataWrite>('workspace_agent_metadata', 1000, (items) =>
    deps.db.bulk(updateMetadataBatch, items, new Date(clock.now()).toISOString()),
  );

  async function handle(session: Session, params: unknown): Promise<Outcome> {
    if (!check.Check(params)) return invalidParams(paramErrors(check, params));
    // `age` is accepted and ignored, but only as an int (SPEC §4): the schema cannot say "safe".
    const badAge = params.metadata.findIndex((m) => m.result.age !== undefined && toInt(m.result.age) < 0);
    if (badAge >= 0)
      return invalidParams([{ path: `/metadata/${badAge}/result/age`, message: 'Expected a safe integer' }]);
    const { updates, droppedKeys } = limitMetadata(params.metadata);
    const answer: Outcome =
      droppedKeys.length === 0
        ? ok
        : rpcError(
            RpcError.MetadataKeysTooLong,
            `${RpcErrorMessage[RpcError.MetadataKeysTooLong]}: keys of one call exceed ${METADATA_KEYS_BUDGET_BYTES} bytes`,
            { droppedKeys } satisfies MetadataOverflowData,
          );
    if ((await session.authorize()) === null) return notAuthorized;
    if (updates.length === 0) return answer;
    const { agentId } = session.subject;
    const written = await writer.write({ agentId, updates });
    return written === 'ok' ? answer : writeFailed(log, written, { method: Methods.BatchUpdateMetadata, agentId });
  }

  return { name: Methods.BatchUpdateMetadata, handle, idle: () => writer.idle() };
}
