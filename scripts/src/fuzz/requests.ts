// JSON-RPC requests and notifications of the fuzzer: valid ones, the same with exactly one place
// wrong, ones wrong in many places, unknown methods and methods of the wrong type.
import fc, { type Arbitrary } from 'fast-check';
import { junk, type Member, noMember, object, protoMember, raw, required, text } from './json-values.js';
import { type GeneratorTarget, metadataParams } from './metadata-params.js';
import { statsParams } from './stats-params.js';
import { type Json, Obj } from './wire.js';

/** Request ids: mostly numbers and strings; absent for a notification; sometimes invalid. */
function requestId(fuzzy: boolean): Arbitrary<Member> {
  const valid = fc.oneof(
    { weight: 4, arbitrary: fc.nat() },
    { weight: 3, arbitrary: text },
    {
      weight: 1,
      arbitrary: fc.constantFrom<Json>(null, 0, -7, 2.5, raw('1e2'), raw('-0'), raw('18446744073709551616')),
    },
  );
  const invalid = fc.constantFrom<Json>(true, new Obj([['a', 1]]), [1], raw('1e309'), raw('-1e309'));
  const id = fuzzy ? fc.oneof({ weight: 8, arbitrary: valid }, { weight: 1, arbitrary: invalid }) : valid;
  return fc.option(
    id.map((v) => ['id', v] as const),
    { nil: undefined, freq: 6 },
  );
}

const jsonrpcValue = fc.oneof(
  { weight: 12, arbitrary: fc.constant<Json>('2.0') },
  { weight: 1, arbitrary: fc.constantFrom<Json>('1.0', '2', 2, raw('2.0'), null, ' 2.0') },
);

function request(method: Arbitrary<Json>, params: Arbitrary<Json | undefined>, fuzzy: boolean): Arbitrary<Json> {
  return object([
    required('jsonrpc', fuzzy ? jsonrpcValue : fc.constant('2.0'), fuzzy),
    requestId(fuzzy),
    method.map((m) => ['method', m] as const),
    params.map((p) => (p === undefined ? undefined : (['params', p] as const))),
    fuzzy ? protoMember : noMember,
  ]);
}

/** Members and elements of a tree, in order (the places a mutation can hit). */
function places(v: Json): number {
  if (v instanceof Obj) return v.entries.reduce((n, [, x]) => n + 1 + places(x), 0);
  if (Array.isArray(v)) return v.reduce<number>((n, x) => n + 1 + places(x), 0);
  return 0;
}

/** `tree` with its `at`-th place replaced by `by`, or removed when `by` is undefined. */
function mutate(tree: Json, at: number, by: Json | undefined): Json {
  let n = 0;
  const walk = (v: Json): Json => {
    if (v instanceof Obj) {
      const out: (readonly [string, Json])[] = [];
      for (const [k, x] of v.entries) {
        if (n++ === at) {
          if (by !== undefined) out.push([k, by]);
        } else out.push([k, walk(x)]);
      }
      return new Obj(out);
    }
    if (Array.isArray(v)) {
      const out: Json[] = [];
      for (const x of v) {
        if (n++ === at) {
          if (by !== undefined) out.push(by);
        } else out.push(walk(x));
      }
      return out;
    }
    return v;
  };
  return walk(tree);
}

/**
 * SPEC §4 `int` at its edges: just past 2^53-1, as a number and as a string; a decimal string with
 * leading zeros; JSON spellings of integers (`9.007199254740991e15` is 2^53-1).
 */
const intEdge = fc.constantFrom<Json>(
  '9007199254740992',
  '9999999999999999',
  '0000000000000000001',
  '00',
  raw('9007199254740991'),
  raw('9.007199254740991e15'),
  raw('1e16'),
  raw('0.0'),
);

/** A valid request with exactly one place wrong: a value of another type or range, or a member removed. */
function mutated(valid: Arbitrary<Json>): Arbitrary<Json> {
  const by = fc.oneof({ weight: 3, arbitrary: junk }, { weight: 2, arbitrary: intEdge });
  return fc
    .tuple(valid, fc.nat(), fc.option(by, { nil: undefined, freq: 4 }))
    .map(([tree, at, by]) => mutate(tree, at % Math.max(1, places(tree)), by));
}

const unknownMethod = fc.constantFrom<Json>(
  'updatestats',
  'UpdateStats ',
  'BatchUpdateLifecycle',
  '',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'rpc.discover',
);

/** One request or notification (an element of a batch, or a frame of its own). */
export function element(target: GeneratorTarget, small: boolean): Arbitrary<Json> {
  const valid = { fuzzy: false, small };
  const fuzzy = { fuzzy: true, small };
  const validStats = request(fc.constant('UpdateStats'), statsParams(valid), false);
  const validMetadata = request(fc.constant('BatchUpdateMetadata'), metadataParams(target, valid), false);
  const anyParams = fc.oneof(fc.constant(undefined), fc.constant(new Obj([])), junk);
  return fc.oneof(
    { weight: 20, arbitrary: validStats },
    { weight: 15, arbitrary: validMetadata },
    { weight: 15, arbitrary: mutated(validStats) },
    { weight: 15, arbitrary: mutated(validMetadata) },
    // Wrong in many places at once.
    { weight: 4, arbitrary: request(fc.constant('UpdateStats'), statsParams(fuzzy), true) },
    { weight: 4, arbitrary: request(fc.constant('BatchUpdateMetadata'), metadataParams(target, fuzzy), true) },
    { weight: 5, arbitrary: request(unknownMethod, anyParams, true) },
    // A method of the wrong type.
    {
      weight: 2,
      arbitrary: request(fc.constantFrom<Json>(42, null, ['UpdateStats'], new Obj([])), anyParams, true),
    },
    { weight: 2, arbitrary: fc.oneof(junk, fc.constantFrom<Json>('UpdateStats', 0, new Obj([['jsonrpc', '2.0']]))) },
  );
}
