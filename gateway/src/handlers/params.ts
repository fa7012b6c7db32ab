// Params validation with typebox validators compiled once from the schemas in shared/.
import type { ParamError } from '@agentgate/shared';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { type HandlerOutcome, invalidParams } from './outcome.js';

/** `data.errors` of a -32602 lists at most this many (SPEC §4): the answer stays smaller than the request. */
export const MAX_REPORTED_ERRORS = 10;

export function compile<T extends TSchema>(schema: T): TypeCheck<T> {
  return TypeCompiler.Compile(schema);
}

export function schemaErrors<T extends TSchema>(check: TypeCheck<T>, value: unknown): HandlerOutcome {
  const errors: ParamError[] = [];
  for (const e of check.Errors(value)) {
    errors.push({ path: e.path || '/', message: e.message });
    if (errors.length >= MAX_REPORTED_ERRORS) break;
  }
  return invalidParams(errors);
}

/**
 * SPEC §4 `int` as a number: a non-negative safe integer, given as a JSON number or a decimal string
 * (any number of digits, leading zeros included); -1 for anything else. The handlers check every
 * int with this, not only through the schema: a record's values are not checked by typebox when
 * their key holds a line break (its pattern is `^.*$`).
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
