// The JSON values fuzz frames are built of: text with awkward units, numbers past a double, values
// of the wrong type for any field (junk), SPEC §4 ints, and the members that make up an object.
import fc, { type Arbitrary } from 'fast-check';
import { type Json, Obj, Raw } from './wire.js';

const SAFE = Number.MAX_SAFE_INTEGER;
export const raw = (t: string) => new Raw(t);

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
export const text = fc.string({ unit, maxLength: 16 });

/** A string of about `limit` UTF-8 bytes, just under, at or just over it, in units of 1 to 4 bytes. */
export function nearLimit(limit: number): Arbitrary<string> {
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

export const nested = (depth: number, open: string, close: string, inner = ''): Raw =>
  raw(open.repeat(depth) + inner + close.repeat(depth));

/** Values of the wrong type (or range) for any field. */
export const junk: Arbitrary<Json> = fc.oneof(
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
export function field(valid: Arbitrary<Json>, fuzzy: boolean): Arbitrary<Json> {
  return fuzzy ? fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: junk }) : valid;
}

export type Member = readonly [string, Json] | undefined;

/** An optional member: absent about half the time. */
export function opt(name: string, value: Arbitrary<Json>): Arbitrary<Member> {
  return fc.option(
    value.map((v) => [name, v] as const),
    { nil: undefined },
  );
}

export function object(members: Arbitrary<Member>[]): Arbitrary<Obj> {
  return fc.tuple(...members).map((ms) => new Obj(ms.filter((m): m is readonly [string, Json] => m !== undefined)));
}

/** A `__proto__` member sometimes (SPEC §4: a key like any other). */
export const protoMember: Arbitrary<Member> = fc.option(
  fc.oneof(junk, fc.constant<Json>(new Obj([['isAdmin', true]]))).map((v) => ['__proto__', v] as const),
  { nil: undefined, freq: 4 },
);

/** SPEC §4 `int` values: numbers and decimal strings, with raw forms JSON allows (`1.0`, `1e2`, `-0`). */
export const intValue: Arbitrary<Json> = fc.oneof(
  { weight: 10, arbitrary: fc.nat({ max: 5000 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: SAFE }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: SAFE }).map(String) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Json>(SAFE, String(SAFE), '0', '007', raw('1.0'), raw('1e2'), raw('-0'), raw('0e0')),
  },
);

export const latencyValue: Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }) },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(...HUGE) },
);

/** How much one element may hold: a batch's elements are small, so that most batches fit a frame. */
export interface Shape {
  fuzzy: boolean;
  small: boolean;
}

/** A member that SPEC §4 requires: present (and maybe junk) when fuzzy, or sometimes missing. */
export function required(name: string, value: Arbitrary<Json>, fuzzy: boolean): Arbitrary<Member> {
  const member = field(value, fuzzy).map((v) => [name, v] as const);
  return fuzzy ? fc.option(member, { nil: undefined, freq: 10 }) : member;
}

export const noMember = fc.constant<Member>(undefined);
