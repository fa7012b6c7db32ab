// The fuzzer's frames as fast-check arbitraries: valid frames (some stored), the same with wrong
// types in any field, huge numbers, lone surrogates, `__proto__` keys, malformed JSON, deep nesting,
// batches (empty, full, over 64), notifications, unknown methods, binary frames, invalid UTF-8 and
// frames around the size limit. A seed and a count give the same frames every time (fc.sample).
import fc, { type Arbitrary } from 'fast-check';
import { BAD_UTF8, deep, malformed } from './broken-frames.js';
import type { GeneratorTarget } from './metadata-params.js';
import { element } from './requests.js';
import { textFrame, toJson, type WireFrame } from './wire.js';

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
