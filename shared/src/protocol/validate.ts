// What an agent sends, checked as SPEC §4 says: validators compiled once from the schemas (a
// compiled check costs ~15 ns), the `data.errors` of a -32602 capped so that the answer stays
// smaller than the request, and the protocol's rules for ints and strings.
import type { TSchema } from '@sinclair/typebox';
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';
import type { ParamError } from './schemas.js';

/** `data.errors` of a -32602 lists at most this many. */
export const MAX_REPORTED_ERRORS = 10;

export function compile<T extends TSchema>(schema: T): TypeCheck<T> {
  return TypeCompiler.Compile(schema);
}

/** The first MAX_REPORTED_ERRORS schema errors of `value`, as `{path, message}`. */
export function paramErrors<T extends TSchema>(check: TypeCheck<T>, value: unknown): ParamError[] {
  const errors: ParamError[] = [];
  for (const e of check.Errors(value)) {
    errors.push({ path: e.path || '/', message: e.message });
    if (errors.length >= MAX_REPORTED_ERRORS) break;
  }
  return errors;
}

/**
 * SPEC §4 `int` as a number: a non-negative safe integer, given as a JSON number or a decimal string
 * (any number of digits, leading zeros included); -1 for anything else. Check every int with this,
 * not only through the schema: a record's values are not checked by typebox when their key holds a
 * line break (its pattern is `^.*$`).
 */
export function toInt(v: unknown): number {
  if (v === undefined) return 0;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : Number.NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n + 0 : -1;
}

/**
 * An agent's string as it can be stored (SPEC §4): PostgreSQL text holds no NUL, and a lone UTF-16
 * surrogate (`"\ud800"` in the JSON) becomes U+FFFD instead of failing the batch it lands in.
 */
export function storable(s: string): string {
  const t = s.isWellFormed() ? s : s.toWellFormed();
  return t.includes('\u0000') ? t.replaceAll('\u0000', '') : t;
}
