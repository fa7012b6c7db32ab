// Frames that are not JSON, or JSON nested far too deep (SPEC §7), and bytes that are not UTF-8.
import fc, { type Arbitrary } from 'fast-check';
import { nested } from './json-values.js';
import type { GeneratorTarget } from './metadata-params.js';
import { element } from './requests.js';
import { Obj, textFrame, toJson, type WireFrame } from './wire.js';

/** Byte sequences that are not UTF-8: a stray byte, an overlong form, a surrogate, past U+10FFFF, a cut sequence. */
export const BAD_UTF8 = [
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
export function malformed(target: GeneratorTarget): Arbitrary<WireFrame> {
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
export function deep(): Arbitrary<WireFrame> {
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
