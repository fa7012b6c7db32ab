// `npx agentgate openrpc [--out FILE]`: the agent protocol as an OpenRPC 1.2.6 document, generated
// from the typebox schemas and the code catalog in shared/. docs/openrpc.json is its output, and
// tests/docs/protocol.test.ts fails when the two disagree; docs/protocol.md is the prose (what each
// error and close code means, limits, an example session).
import { readFileSync, writeFileSync } from 'node:fs';
import {
  BatchUpdateMetadataParams,
  BatchUpdateMetadataResult,
  MAX_BATCH_ELEMENTS,
  MetadataItem,
  Methods,
  Metric,
  RPC_PATH,
  RpcError,
  type RpcErrorCode,
  RpcErrorMessage,
  Stats,
  UpdateStatsParams,
  UpdateStatsResult,
} from '@agentgate/shared';
import { type OptionTable, parse } from '@agentgate/gateway/options';

export const OPENRPC_OPTIONS = {
  out: { flag: '--out', kind: 'out-file', help: 'write the document here instead of stdout' },
} as const satisfies OptionTable;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A typebox schema (a JSON Schema object with typebox's own markers under symbol keys). */
type Schema = object;

/** A typebox schema as plain JSON Schema (its markers are symbols, which JSON drops). */
const plain = (schema: Schema): Json => JSON.parse(JSON.stringify(schema)) as Json;

/** Named schemas under components/schemas; where one appears inside another, it becomes a $ref. */
const NAMED: Record<string, Schema> = { Stats, Metric, MetadataItem, UpdateStatsResult, BatchUpdateMetadataResult };

function withRefs(schema: Json, self?: string): Json {
  if (Array.isArray(schema)) return schema.map((s) => withRefs(s));
  if (schema === null || typeof schema !== 'object') return schema;
  const text = JSON.stringify(schema);
  for (const [name, named] of Object.entries(NAMED)) {
    if (name !== self && JSON.stringify(plain(named)) === text) return { $ref: `#/components/schemas/${name}` };
  }
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, withRefs(v)]));
}

/** The error names of the catalog, by code. */
const errorName = (code: RpcErrorCode) => Object.entries(RpcError).find(([, c]) => c === code)![0];

/** What the gateway puts in `data` of the errors that carry some (an example of each). */
const ERROR_DATA: Partial<Record<RpcErrorCode, Json>> = {
  [RpcError.InvalidParams]: { errors: [{ path: '/stats/rxBytes', message: 'Expected union value' }] },
  [RpcError.MetadataKeysTooLong]: { droppedKeys: ['k41', 'k42'] },
};

/** The errors of a call to any method; BatchUpdateMetadata adds -32004. */
const CALL_ERRORS: readonly RpcErrorCode[] = [
  RpcError.InvalidParams,
  RpcError.NotAuthorized,
  RpcError.Unavailable,
  RpcError.RateLimited,
  RpcError.InternalError,
];

/** The params of a by-name method: one OpenRPC param per property of its typebox params object. */
function params(schema: { properties: Record<string, Schema>; required?: string[] }): Json[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, property]) => ({
    name,
    required: required.has(name),
    schema: withRefs(plain(property)),
  }));
}

const errorRefs = (codes: readonly RpcErrorCode[]): Json[] =>
  codes.map((code) => ({ $ref: `#/components/errors/${errorName(code)}` }));

/** The OpenRPC 1.2.6 document of the agent protocol; `version` is the document's version. */
function openrpcDocument(version: string): Json {
  const methods: Record<keyof typeof Methods, Json> = {
    UpdateStats: {
      name: Methods.UpdateStats,
      summary: 'Report the agent’s stats; learn how often to report.',
      description:
        'With stats, one row is stored for the agent (missing counters are 0, connectionMedianLatencyMs -1) and the answer comes only after it is committed; the agent’s own metrics are exported on the gateway’s /metrics as agentgate_agent_<name>. With connectionCount > 0 the workspace counts as used (its deadline may be bumped). Without stats it only returns the interval and touches nothing. Integers are JSON numbers or decimal strings (as protojson writes int64).',
      paramStructure: 'by-name',
      params: params(UpdateStatsParams),
      result: { name: 'UpdateStatsResult', schema: { $ref: '#/components/schemas/UpdateStatsResult' } },
      errors: errorRefs(CALL_ERRORS),
      examples: [
        {
          name: 'stats',
          params: [
            {
              name: 'stats',
              value: {
                connectionsByProto: { ssh: 1 },
                connectionCount: 1,
                rxBytes: '1024',
                txBytes: 2048,
                sessionCountSsh: 1,
                metrics: [
                  { name: 'cpu_seconds', type: 'COUNTER', value: 12.5, labels: [{ name: 'core', value: '0' }] },
                ],
              },
            },
          ],
          result: { name: 'UpdateStatsResult', value: { reportInterval: '30s' } },
        },
      ],
    },
    BatchUpdateMetadata: {
      name: Methods.BatchUpdateMetadata,
      summary: 'Report the latest values of the agent’s declared metadata keys.',
      description:
        'Only keys declared for the agent are written; others are ignored. collected_at is the gateway’s time (collectedAt and age are accepted and ignored). A value or error over 2048 bytes is cut or replaced, and the keys of one call may take 6144 bytes together (-32004 beyond). When a key repeats, the last value wins. The answer comes only after the write is committed.',
      paramStructure: 'by-name',
      params: params(BatchUpdateMetadataParams),
      result: {
        name: 'BatchUpdateMetadataResult',
        schema: { $ref: '#/components/schemas/BatchUpdateMetadataResult' },
      },
      errors: errorRefs([...CALL_ERRORS, RpcError.MetadataKeysTooLong]),
      examples: [
        {
          name: 'two keys',
          params: [
            {
              name: 'metadata',
              value: [
                { key: 'cpu', result: { value: '12%' } },
                { key: 'disk', result: { value: '', error: 'df: timed out' } },
              ],
            },
          ],
          result: { name: 'BatchUpdateMetadataResult', value: {} },
        },
      ],
    },
  };
  return {
    openrpc: '1.2.6',
    info: {
      title: 'agentgate agent protocol',
      version,
      description: `JSON-RPC 2.0 over the text frames of one WebSocket per agent: GET ${RPC_PATH} with Upgrade: websocket and the agent token in Coder-Session-Token or Authorization: Bearer. A frame holds one request, a notification (no id, no answer) or a batch of up to ${MAX_BATCH_ELEMENTS}. Close codes, limits and an example session: docs/protocol.md.`,
    },
    servers: [{ name: 'npm start', url: `ws://127.0.0.1:8080${RPC_PATH}` }],
    methods: Object.values(methods),
    components: {
      schemas: Object.fromEntries(Object.entries(NAMED).map(([name, s]) => [name, withRefs(plain(s), name)])),
      errors: Object.fromEntries(
        (Object.values(RpcError) as RpcErrorCode[]).map((code) => [
          errorName(code),
          { code, message: RpcErrorMessage[code], ...(ERROR_DATA[code] ? { data: ERROR_DATA[code] } : {}) },
        ]),
      ),
    },
  };
}

/** The version of this package, which the document carries. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The text of docs/openrpc.json. */
export function openrpcText(): string {
  return `${JSON.stringify(openrpcDocument(packageVersion()), null, 2)}\n`;
}

/** `agentgate openrpc`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { out } = parse(OPENRPC_OPTIONS, argv, env);
  if (out) writeFileSync(out, openrpcText());
  else process.stdout.write(openrpcText());
  return 0;
}
