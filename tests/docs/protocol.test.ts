// The protocol docs for agent authors (SPEC §11) cannot go stale: docs/openrpc.json is what
// `agentgate openrpc` generates now from the typebox schemas; its methods are the router's (the
// handler map hub/wiring.ts builds) and its errors every code the gateway answers with; its
// examples pass the schemas the gateway validates with. docs/protocol.md names every method,
// every error code and every close code (with the reconnect rule of codes.ts). The README and
// every command's --help point there, not at a SPEC outside the repository.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BatchUpdateMetadataParams,
  BatchUpdateMetadataResult,
  CloseCode,
  Methods,
  RpcError,
  type RpcErrorCode,
  RpcErrorMessage,
  shouldReconnect,
  UpdateStatsParams,
  UpdateStatsResult,
} from '@agentgate/shared';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { COMMANDS } from '../../scripts/src/cli.ts';
import { openrpcText } from '../../scripts/src/openrpc.ts';
import { runCli } from '../helpers/cli.ts';
import { Harness } from '../unit/harness.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string) => readFileSync(path.join(REPO, file), 'utf8');

interface OpenRpcMethod {
  name: string;
  paramStructure: string;
  params: { name: string; required: boolean; schema: unknown }[];
  result: { name: string; schema: unknown };
  errors: { $ref: string }[];
  examples: { params: { name: string; value: unknown }[]; result: { value: unknown } }[];
}
interface OpenRpc {
  openrpc: string;
  info: { title: string; version: string };
  methods: OpenRpcMethod[];
  components: { errors: Record<string, { code: number; message: string }>; schemas: Record<string, unknown> };
}

const fileText = read('docs/openrpc.json');
const doc = JSON.parse(fileText) as OpenRpc;

/** Every `RpcError.<Name>` the gateway's source uses, as codes. */
function codesTheGatewayUses(): Set<number> {
  const out = new Set<number>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/\bRpcError\.(\w+)/g)) {
          const code = (RpcError as Record<string, number>)[m[1]!];
          assert.ok(code !== undefined, `${p} uses RpcError.${m[1]}, which the catalog lacks`);
          out.add(code);
        }
      }
    }
  };
  walk(path.join(REPO, 'gateway/src'));
  return out;
}

const sorted = (xs: Iterable<number | string>) => [...xs].sort();

describe('docs/openrpc.json', () => {
  test('is what the generator makes now (regenerate: npx agentgate openrpc --out docs/openrpc.json)', () => {
    assert.equal(fileText, openrpcText());
  });

  test('`agentgate openrpc` prints it', async () => {
    const r = await runCli(['openrpc']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, fileText);
  });

  test('is an OpenRPC 1.2.6 document whose methods are the router’s', () => {
    assert.equal(doc.openrpc, '1.2.6');
    assert.ok(doc.info.title && doc.info.version);
    const routed = new Harness().core.methods.map((m) => m.name);
    assert.deepEqual(sorted(doc.methods.map((m) => m.name)), sorted(routed));
    assert.deepEqual(sorted(routed), sorted(Object.values(Methods)));
    for (const m of doc.methods) assert.equal(m.paramStructure, 'by-name', m.name);
  });

  test('its errors are every code the gateway answers with, with the catalog’s messages', () => {
    const errors = Object.values(doc.components.errors);
    assert.deepEqual(sorted(errors.map((e) => e.code)), sorted(Object.values(RpcError)));
    assert.deepEqual(sorted(errors.map((e) => e.code)), sorted(codesTheGatewayUses()));
    for (const e of errors) assert.equal(e.message, RpcErrorMessage[e.code as RpcErrorCode], String(e.code));
    for (const m of doc.methods) {
      for (const { $ref } of m.errors) {
        const name = /^#\/components\/errors\/(\w+)$/.exec($ref)?.[1];
        assert.ok(name && doc.components.errors[name], `${m.name}: ${$ref} resolves`);
      }
    }
    const codesOf = (method: string) =>
      doc.methods
        .find((m) => m.name === method)!
        .errors.map((e) => doc.components.errors[e.$ref.split('/').pop()!]!.code);
    assert.ok(codesOf(Methods.BatchUpdateMetadata).includes(RpcError.MetadataKeysTooLong));
    assert.ok(!codesOf(Methods.UpdateStats).includes(RpcError.MetadataKeysTooLong));
  });

  test('its examples pass the schemas the gateway validates with', () => {
    const schemas: Record<string, { params: TSchema; result: TSchema }> = {
      [Methods.UpdateStats]: { params: UpdateStatsParams, result: UpdateStatsResult },
      [Methods.BatchUpdateMetadata]: { params: BatchUpdateMetadataParams, result: BatchUpdateMetadataResult },
    };
    for (const m of doc.methods) {
      assert.ok(m.examples.length > 0, `${m.name} has an example`);
      const params = TypeCompiler.Compile(schemas[m.name]!.params);
      const result = TypeCompiler.Compile(schemas[m.name]!.result);
      for (const ex of m.examples) {
        const value = Object.fromEntries(ex.params.map((p) => [p.name, p.value]));
        assert.ok(params.Check(value), `${m.name} example params: ${JSON.stringify(value)}`);
        assert.ok(result.Check(ex.result.value), `${m.name} example result`);
      }
    }
  });
});

describe('docs/protocol.md', () => {
  const text = read('docs/protocol.md');
  /** The cells of each row of the table whose header line starts with `header`. */
  const table = (header: string) => {
    const lines = text.split('\n');
    const start = lines.findIndex((l) => l.startsWith(header));
    assert.ok(start >= 0, `a table headed "${header}"`);
    const rows: string[][] = [];
    for (const l of lines.slice(start + 2)) {
      if (!l.startsWith('|')) break;
      rows.push(l.split('|').map((c) => c.trim()));
    }
    return rows;
  };

  test('describes every method', () => {
    for (const m of Object.values(Methods)) assert.ok(text.includes(`### \`${m}\``), `a section for ${m}`);
  });

  test('says what every error code means', () => {
    const rows = table('| code | meaning | what the agent should do |');
    assert.deepEqual(sorted(rows.map((r) => Number(r[1]))), sorted(Object.values(RpcError)));
  });

  test('says for every close code whether to reconnect, as shouldReconnect() decides', () => {
    const rows = table('| code | meaning | reconnect? |');
    assert.deepEqual(sorted(rows.map((r) => Number(r[1]))), sorted(Object.values(CloseCode)));
    for (const r of rows) {
      const says = !/^(\*\*)?no\b/.test(r[3]!);
      assert.equal(says, shouldReconnect(Number(r[1])), `close ${r[1]}: "${r[3]}"`);
    }
  });

  test('stands on its own: no SPEC, a link to openrpc.json', () => {
    assert.ok(!/\bSPEC\b/.test(text), 'agent authors cannot open the SPEC');
    assert.ok(text.includes('](openrpc.json)'));
  });
});

describe('the README and --help point at docs/, not at the SPEC', () => {
  test('the README links docs/protocol.md and docs/openrpc.json', () => {
    const readme = read('README.md');
    assert.ok(readme.includes('](docs/protocol.md)'));
    assert.ok(readme.includes('](docs/openrpc.json)'));
    assert.ok(!/kept beside/.test(readme), 'no SPEC kept beside the repository');
  });

  test('no command’s --help mentions the SPEC', async () => {
    for (const [name, command] of Object.entries(COMMANDS)) {
      assert.ok(!/\bSPEC\b/.test(command.summary), `${name}: ${command.summary}`);
      for (const spec of Object.values((await command.load()).options)) {
        assert.ok(!/\bSPEC\b/.test(spec.help), `${name} ${spec.flag}: ${spec.help}`);
      }
    }
  });
});
