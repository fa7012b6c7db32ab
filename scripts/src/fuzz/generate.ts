// The fuzzer's frames as fast-check arbitraries: valid frames (some stored), the same with wrong
// types in any field, huge numbers, lone surrogates, `__proto__` keys, malformed JSON, deep nesting,
// batches (empty, full, over 64), notifications, unknown methods, binary frames, invalid UTF-8 and
// frames around the size limit. A seed and a count give the same frames every time (fc.sample).
import fc, { type Arbitrary } from 'fast-check';
import { INT_FIELDS } from './oracle.js';
import { type Json, Obj, Raw, textFrame, toJson, type WireFrame } from './wire.js';

export interface GeneratorTarget {
  maxFrameBytes: number;
  /** Declared metadata keys of the fuzzing agent: valid frames mostly write these. */
  declaredKeys: readonly string[];
}

/**
 * The metadata keys a fuzz run declares for its agent: plain ones, `__proto__`, one that a key with
 * a lone surrogate (`k\ud800`) is stored as (SPEC §4: U+FFFD), and non-ASCII ones.
 */
export const FUZZ_METADATA_KEYS: readonly string[] = [
  'm0',
  'm1',
  'cpu',
  '__proto__',
  'k\ufffd',
  'ключ',
  'a😀',
  'sp ace',
];

const SAFE = Number.MAX_SAFE_INTEGER;
const raw = (t: string) => new Raw(t);

/** Numbers that JSON holds and a double does not, or only just (SPEC §7: huge values). */
const HUGE: Json[] = [
  raw('1e309'),
  raw('-1e309'),
  raw('1e400'),
  raw('18446744073709551616'),
  raw('-18446744073709551616'),
  raw('9007199254740992'),
  raw('9007199254740993'),
  raw('123456789012345678901234567890'),
  raw('1e-400'),
  raw('4.9e-324'),
  raw('-0'),
  raw('1.7976931348623157e308'),
];

/** Text units: mostly plain, some non-ASCII, lone UTF-16 surrogates, and characters JSON must escape. */
const unit = fc.oneof(
  { weight: 14, arbitrary: fc.constantFrom(...'abcdefxyz0123456789_-.:/ ') },
  { weight: 2, arbitrary: fc.constantFrom('é', 'ß', 'ключ', '中', '😀', '\ufffd', '\u2028', '\ufeff') },
  { weight: 2, arbitrary: fc.constantFrom('\ud800', '\udbff', '\udc00', '\udfff') },
  { weight: 1, arbitrary: fc.constantFrom('\u0000', '\u0001', '\u001f', '"', '\\', '\u007f') },
);
const text = fc.string({ unit, maxLength: 16 });

/** A string of about `limit` UTF-8 bytes, just under, at or just over it, in units of 1 to 4 bytes. */
function nearLimit(limit: number): Arbitrary<string> {
  return fc
    .record({
      prefix: fc.constantFrom('', 'a', 'ab', 'abc'),
      unit: fc.constantFrom('a', 'é', '中', '😀', '\ud800', '\u0000'),
      delta: fc.integer({ min: -2, max: 2 }),
    })
    .map(({ prefix, unit, delta }) => {
      const size = Buffer.byteLength(unit, 'utf8');
      return prefix + unit.repeat(Math.max(0, Math.floor(limit / size) + delta));
    });
}

const nested = (depth: number, open: string, close: string, inner = ''): Raw =>
  raw(open.repeat(depth) + inner + close.repeat(depth));

/** Values of the wrong type (or range) for any field. */
const junk: Arbitrary<Json> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom<Json>(
      null,
      true,
      false,
      -1,
      1.5,
      -0.5,
      '',
      'abc',
      '-1',
      '1.5',
      '1e3',
      ' 1',
      '+1',
      '0x10',
      '١',
      '\ud800',
      'NaN',
      String(SAFE + 1),
      '18446744073709551616',
      '99999999999999999999',
      '9999999999999999',
      [],
      [1, 2],
      new Obj([]),
      new Obj([['__proto__', new Obj([['polluted', true]])]]),
    ),
  },
  { weight: 3, arbitrary: fc.constantFrom(...HUGE) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 300 }).map((d) => nested(d, '[', ']')) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 300 }).map((d) => nested(d, '{"a":', '}', '1')) },
);

/** A field's value: valid, or (when fuzzy) sometimes junk. */
function field(valid: Arbitrary<Json>, fuzzy: boolean): Arbitrary<Json> {
  return fuzzy ? fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: junk }) : valid;
}

type Member = readonly [string, Json] | undefined;

/** An optional member: absent about half the time. */
function opt(name: string, value: Arbitrary<Json>): Arbitrary<Member> {
  return fc.option(
    value.map((v) => [name, v] as const),
    { nil: undefined },
  );
}

function object(members: Arbitrary<Member>[]): Arbitrary<Obj> {
  return fc.tuple(...members).map((ms) => new Obj(ms.filter((m): m is readonly [string, Json] => m !== undefined)));
}

/** A `__proto__` member sometimes (SPEC §4: a key like any other). */
const protoMember: Arbitrary<Member> = fc.option(
  fc.oneof(junk, fc.constant<Json>(new Obj([['isAdmin', true]]))).map((v) => ['__proto__', v] as const),
  { nil: undefined, freq: 4 },
);

/** SPEC §4 `int` values: numbers and decimal strings, with raw forms JSON allows (`1.0`, `1e2`, `-0`). */
const intValue: Arbitrary<Json> = fc.oneof(
  { weight: 10, arbitrary: fc.nat({ max: 5000 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: SAFE }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: SAFE }).map(String) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Json>(SAFE, String(SAFE), '0', '007', raw('1.0'), raw('1e2'), raw('-0'), raw('0e0')),
  },
);

const latencyValue: Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }) },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(...HUGE) },
);

const protoKey = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'ssh',
      'vscode',
      'jetbrains',
      'reconnecting-pty',
      '__proto__',
      'constructor',
      'toString',
      '',
      '\ud800',
      'a\udfffb',
      'é',
      'x\u0000y',
      // Line terminators: a key that `.` in a pattern does not match.
      'line\nbreak',
      'ls\u2028',
    ),
  },
  { weight: 1, arbitrary: text },
);

function protoMap(fuzzy: boolean): Arbitrary<Json> {
  return fc
    .array(fc.tuple(protoKey, field(intValue, fuzzy)), { maxLength: 5 })
    .map((entries) => new Obj(entries) as Json);
}

/** How much one element may hold: a batch's elements are small, so that most batches fit a frame. */
interface Shape {
  fuzzy: boolean;
  small: boolean;
}

const labelName = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'host',
      'le',
      'agent_name',
      'username',
      'workspace_name',
      'template_name',
      '__proto__',
      '1bad',
      'bad-name',
      '',
    ),
  },
  { weight: 1, arbitrary: text },
);

/** A member that SPEC §4 requires: present (and maybe junk) when fuzzy, or sometimes missing. */
function required(name: string, value: Arbitrary<Json>, fuzzy: boolean): Arbitrary<Member> {
  const member = field(value, fuzzy).map((v) => [name, v] as const);
  return fuzzy ? fc.option(member, { nil: undefined, freq: 10 }) : member;
}

function label({ fuzzy, small }: Shape): Arbitrary<Json> {
  // SPEC §4: a label value over 1024 bytes drops the metric, never the frame.
  const value = small ? text : fc.oneof({ weight: 6, arbitrary: text }, { weight: 1, arbitrary: nearLimit(1024) });
  return object([required('name', labelName, fuzzy), required('value', value, fuzzy)]);
}

const metricName = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'cpu_seconds_total',
      'mem:bytes',
      '_x',
      'agent_cpu',
      'coderd_agentstats_up',
      '1abc',
      'bad-name',
      'with space',
      '',
      '\ud800',
      'é',
    ),
  },
  { weight: 1, arbitrary: text },
);

const metricType = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('TYPE_UNSPECIFIED', 'COUNTER', 'GAUGE') },
  { weight: 1, arbitrary: fc.constantFrom('HISTOGRAM', 'counter', '') },
);

function metric(shape: Shape): Arbitrary<Json> {
  const labels = shape.small
    ? fc.array(label(shape), { maxLength: 2 })
    : fc.oneof(
        { weight: 6, arbitrary: fc.array(label(shape), { maxLength: 3 }) },
        // SPEC §4: more than 16 labels drops the metric, never the frame.
        { weight: 1, arbitrary: fc.array(label({ fuzzy: false, small: true }), { minLength: 17, maxLength: 20 }) },
      );
  return object([
    required('name', metricName, shape.fuzzy),
    required('type', metricType, shape.fuzzy),
    required('value', fc.double({ noNaN: true, noDefaultInfinity: true }), shape.fuzzy),
    opt('labels', field(labels, shape.fuzzy)),
  ]);
}

const noMember = fc.constant<Member>(undefined);

function stats(shape: Shape): Arbitrary<Json> {
  const { fuzzy } = shape;
  return object([
    opt('connectionsByProto', field(protoMap(fuzzy), fuzzy)),
    ...INT_FIELDS.map((f) => opt(f, field(intValue, fuzzy))),
    opt('connectionMedianLatencyMs', field(latencyValue, fuzzy)),
    opt('metrics', field(fc.array(metric(shape), { maxLength: shape.small ? 2 : 3 }), fuzzy)),
    fuzzy ? protoMember : noMember,
  ]);
}

function statsParams(shape: Shape): Arbitrary<Json | undefined> {
  const withStats = object([stats(shape).map((s) => ['stats', s] as const), shape.fuzzy ? protoMember : noMember]);
  if (!shape.fuzzy) {
    return fc.oneof(
      { weight: 8, arbitrary: withStats },
      { weight: 1, arbitrary: fc.constantFrom(undefined, new Obj([])) },
    );
  }
  return fc.oneof(
    { weight: 8, arbitrary: withStats },
    { weight: 1, arbitrary: fc.constantFrom(undefined, new Obj([]), new Obj([['stats', null]])) },
    { weight: 2, arbitrary: junk },
  );
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

function metadataParams(target: GeneratorTarget, shape: Shape): Arbitrary<Json | undefined> {
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
function element(target: GeneratorTarget, small: boolean): Arbitrary<Json> {
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

/** Byte sequences that are not UTF-8: a stray byte, an overlong form, a surrogate, past U+10FFFF, a cut sequence. */
const BAD_UTF8 = [
  [0xff],
  [0x80],
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
];

const MALFORMED = [
  '{',
  '}',
  '[',
  '{"jsonrpc":"2.0",}',
  "{'jsonrpc':'2.0','id':1,'method':'UpdateStats'}",
  '{"jsonrpc":"2.0","id":1,"method":"UpdateStats"}}',
  'nul',
  'tru',
  'NaN',
  'Infinity',
  '-',
  '01',
  '1.',
  '.5',
  '"\\x41"',
  '"unterminated',
  '{"jsonrpc":"2.0","id":1,"method":"UpdateStats" "params":{}}',
  '[1,]',
  '\u0000',
  '',
  ' ',
  '{"a":"\t"}',
  '{"a":"\\ud800"}',
  '// comment\n{}',
  '{"__proto__":1,}',
  '[{"jsonrpc":"2.0","id":1,"method":"UpdateStats"},',
];

/** Not JSON (JSON.parse decides: a mutation may happen to stay JSON, and the oracle then says so). */
function malformed(target: GeneratorTarget): Arbitrary<WireFrame> {
  const json = element(target, true).map(toJson);
  return fc
    .oneof(
      { weight: 3, arbitrary: fc.constantFrom(...MALFORMED) },
      { weight: 3, arbitrary: fc.tuple(json, fc.nat()).map(([t, n]) => t.slice(0, n % Math.max(1, t.length))) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(json, fc.nat(), fc.constantFrom(',', '"', '}', ']', '{', ':', '\\', 'x', ' '))
          .map(([t, n, c]) => {
            const at = n % (t.length + 1);
            return t.slice(0, at) + c + t.slice(at);
          }),
      },
      { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    )
    .map((t) => textFrame('malformed', t));
}

/** 10 000 nested arrays and the like (SPEC §7: deep values): alone, in a batch, in params, in an id. */
function deep(): Arbitrary<WireFrame> {
  const depth = fc.constantFrom(64, 1000, 5000, 10_000, 20_000);
  return fc
    .tuple(depth, fc.nat({ max: 7 }))
    .map(([d, where]) => {
      switch (where) {
        case 0:
          return toJson(nested(d, '[', ']'));
        case 1:
          return toJson(nested(d, '{"a":', '}', '1'));
        case 2:
          return toJson(
            new Obj([
              ['jsonrpc', '2.0'],
              ['id', d],
              ['method', 'UpdateStats'],
              ['params', new Obj([['stats', new Obj([['metrics', nested(d, '[', ']')]])]])],
            ]),
          );
        case 3:
          // An unknown member of params: ignored, so the frame is valid.
          return toJson(
            new Obj([
              ['jsonrpc', '2.0'],
              ['id', d],
              ['method', 'UpdateStats'],
              ['params', new Obj([['extra', nested(d, '[', ']')]])],
            ]),
          );
        case 4:
          return toJson(
            new Obj([
              ['jsonrpc', '2.0'],
              ['id', nested(d, '[', ']')],
              ['method', 'UpdateStats'],
            ]),
          );
        case 5:
          return toJson(
            new Obj([
              ['jsonrpc', '2.0'],
              ['id', d],
              ['method', 'BatchUpdateMetadata'],
              ['params', new Obj([['metadata', nested(d, '[', ']')]])],
            ]),
          );
        case 6:
          // Never closed: not JSON.
          return '['.repeat(d);
        default:
          return `[${toJson(
            new Obj([
              ['jsonrpc', '2.0'],
              ['id', 1],
              ['method', 'UpdateStats'],
            ]),
          )},${toJson(nested(d, '[', ']'))}]`;
      }
    })
    .map((t) => textFrame('deep', t));
}

/** Every kind of frame, weighted so that most reach a handler. */
export function frameArbitrary(target: GeneratorTarget): Arbitrary<WireFrame> {
  const json = element(target, false).map(toJson);
  const small = element(target, true);
  const smallJson = small.map(toJson);
  const max = target.maxFrameBytes;
  return fc.oneof(
    { weight: 50, arbitrary: json.map((t) => textFrame('single', t)) },
    {
      weight: 10,
      arbitrary: fc.array(small, { minLength: 1, maxLength: 64 }).map((b) => textFrame('batch', toJson(b))),
    },
    {
      weight: 2,
      arbitrary: fc.array(small, { minLength: 65, maxLength: 80 }).map((b) => textFrame('batch>64', toJson(b))),
    },
    { weight: 1, arbitrary: fc.constantFrom('[]', ' [ ] ', '[\n]').map((t) => textFrame('empty batch', t)) },
    { weight: 8, arbitrary: malformed(target) },
    { weight: 2, arbitrary: deep() },
    {
      weight: 2,
      arbitrary: fc
        .oneof(
          fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
          smallJson.map((t) => Buffer.from(t, 'utf8')),
        )
        .map((data) => ({ label: 'binary', binary: true, data })),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(smallJson, fc.nat(), fc.constantFrom(...BAD_UTF8)).map(([t, n, bad]) => {
        const b = Buffer.from(t, 'utf8');
        const at = n % (b.length + 1);
        return {
          label: 'invalid utf-8',
          binary: false,
          data: Buffer.concat([b.subarray(0, at), Buffer.from(bad), b.subarray(at)]),
        };
      }),
    },
    {
      // Around the limit: valid JSON padded with whitespace to limit-1 .. limit+10000 bytes.
      weight: 2,
      arbitrary: fc.tuple(json, fc.constantFrom(-1, 0, 1, 2, 1000, 10_000)).map(([t, delta]) => {
        const pad = Math.max(0, max + delta - Buffer.byteLength(t, 'utf8'));
        return textFrame('size limit', t + ' '.repeat(pad));
      }),
    },
  );
}
