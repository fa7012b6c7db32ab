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

/** PostgreSQL text cannot hold NUL; agents' strings are stored without it. */
export function stripNul(s: string): string {
  return s.includes('\u0000') ? s.replaceAll('\u0000', '') : s;
}
