// BatchUpdateMetadata params (SPEC §4): mostly the agent's declared keys, some undeclared or
// odd ones, long keys past the call's key budget, and values and errors around their size limit.
import fc, { type Arbitrary } from 'fast-check';
import {
  field,
  intValue,
  nearLimit,
  noMember,
  object,
  opt,
  protoMember,
  required,
  type Shape,
  text,
} from './json-values.js';
import type { Json } from './wire.js';

export interface GeneratorTarget {
  maxFrameBytes: number;
  /** Declared metadata keys of the fuzzing agent: valid frames mostly write these. */
  declaredKeys: readonly string[];
}

function metadataKey(target: GeneratorTarget, small: boolean): Arbitrary<string> {
  const keys = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...target.declaredKeys) },
    {
      weight: 2,
      arbitrary: fc.constantFrom('k\ud800', 'k\udbff', 'c\u0000pu', 'm0 ', 'M0', 'undeclared', '', '__proto__'),
    },
    { weight: 1, arbitrary: text },
  );
  if (small) return keys;
  // Long keys: a few of them cross the 6144-byte budget of one call (SPEC §4: -32004).
  return fc.oneof(
    { weight: 10, arbitrary: keys },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 4000 }).map((n) => 'K'.repeat(n)) },
  );
}

const timestamp = fc.oneof(
  fc.constantFrom('2024-01-02T03:04:05Z', '2024-01-02T03:04:05.123456789+02:00', 'yesterday', ''),
  text,
);

function metadataResult({ fuzzy, small }: Shape): Arbitrary<Json> {
  // Values and errors around the 2048-byte limit (SPEC §4: truncated, or replaced).
  const value = small ? text : fc.oneof({ weight: 6, arbitrary: text }, { weight: 1, arbitrary: nearLimit(2048) });
  return object([
    opt('collectedAt', field(timestamp, fuzzy)),
    opt('age', field(intValue, fuzzy)),
    fc.option(
      field(value, fuzzy).map((v) => ['value', v] as const),
      { nil: undefined, freq: 6 },
    ),
    opt('error', field(value, fuzzy)),
    fuzzy ? protoMember : noMember,
  ]);
}

export function metadataParams(target: GeneratorTarget, shape: Shape): Arbitrary<Json | undefined> {
  const { fuzzy, small } = shape;
  const item = object([
    required('key', metadataKey(target, small), fuzzy),
    required('result', metadataResult(shape), fuzzy),
  ]);
  const items = small
    ? fc.array(field(item, fuzzy), { maxLength: 3 })
    : fc.oneof(
        { weight: 6, arbitrary: fc.array(field(item, fuzzy), { maxLength: 6 }) },
        { weight: 1, arbitrary: fc.array(item, { minLength: 20, maxLength: 40 }) },
      );
  const params = object([required('metadata', items, fuzzy), fuzzy ? protoMember : noMember]);
  if (!fuzzy) return params;
  return fc.oneof(
    { weight: 10, arbitrary: params },
    { weight: 1, arbitrary: fc.constantFrom(undefined, null, [], 'x', 7) },
  );
}
