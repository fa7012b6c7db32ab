// Params validation with typebox validators compiled once from the schemas in shared/.
import type { ParamError } from '@agentgate/shared';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { type HandlerOutcome, invalidParams } from './outcome.js';

const MAX_REPORTED_ERRORS = 10;

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

/** A schema-valid `Int` (number or decimal string) as a number; -1 when a string exceeds 2^53-1. */
export function toInt(v: number | string | undefined): number {
  if (v === undefined) return 0;
  if (typeof v === 'number') return v;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : -1;
}

/**
 * An agent's string as it can be stored (SPEC §4): PostgreSQL text holds no NUL, and a lone UTF-16
 * surrogate (`"\ud800"` in the JSON) becomes U+FFFD instead of failing the batch it lands in.
 */
export function storable(s: string): string {
  const t = s.isWellFormed() ? s : s.toWellFormed();
  return t.includes('\u0000') ? t.replaceAll('\u0000', '') : t;
}
