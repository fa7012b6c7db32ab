// The options of every `agentgate` command (SPEC §1, §9): a command declares a table, `parse` reads
// it from flags and the environment (flag, then env var, then default) into typed values, and
// `usage` prints the same table as `--help`. Every mistake is one UsageError line that names the
// flag or env var as the user wrote it and says what is allowed; values are never echoed (a URL or
// a token may hold a secret).
import { allowed, constraint, convert, Invalid, type KindValues, type OptionSpec, PLACEHOLDER } from './kinds.js';
import { UsageError } from '../ops/usage-error.js';

export { allowed, LOG_LEVELS, type Listen, type LogLevel, type OptionSpec } from './kinds.js';
export { UsageError };

/** Option name (the key of the parsed object) to its spec. */
export type OptionTable = Readonly<Record<string, OptionSpec>>;

type Present<S extends OptionSpec> = S extends { readonly default: string } | { readonly required: true }
  ? true
  : false;

/** The parsed values of a table: options without a default or `required` may be undefined. */
export type Options<T extends OptionTable> = {
  -readonly [K in keyof T]: Present<T[K]> extends true
    ? KindValues[T[K]['kind']]
    : KindValues[T[K]['kind']] | undefined;
};

export type Source = 'flag' | 'env' | 'default';

/** The one-line error for a bad value of `spec`, blaming `name` (its flag or its env var). */
function invalidValue(spec: OptionSpec, name: string, detail?: string): UsageError {
  return new UsageError(`invalid ${name}: expected ${allowed(spec)}${detail ? ` (${detail})` : ''}`);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

function unknownOption(flag: string, table: OptionTable): UsageError {
  const near = Object.values(table)
    .map((s) => s.flag)
    .find((f) => f.toLowerCase() === flag.toLowerCase() || editDistance(f, flag) <= 2);
  return new UsageError(`unknown option ${flag} (${near ? `did you mean ${near}?` : '--help lists the options'})`);
}

/** Splits argv into the raw value of each option given as `--flag value` or `--flag=value`. */
function readArgv(table: OptionTable, argv: string[]): Map<string, string> {
  const byFlag = new Map(Object.entries(table).map(([key, spec]) => [spec.flag as string, key]));
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const key = byFlag.get(flag);
    if (key === undefined) throw unknownOption(flag, table);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (table[key]!.kind === 'switch') value = 'on';
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) {
        throw new UsageError(`missing value for ${flag}: expected ${allowed(table[key]!)}`);
      }
      i++;
    }
    out.set(key, value);
  }
  return out;
}

/** Like `parse`, and also says where each value came from (undefined: not given, no default). */
export function parseWithSources<T extends OptionTable>(
  table: T,
  argv: string[],
  env: NodeJS.ProcessEnv,
): { values: Options<T>; sources: { [K in keyof T]: Source | undefined } } {
  const given = readArgv(table, argv);
  const values: Record<string, unknown> = {};
  const sources: Record<string, Source | undefined> = {};
  for (const [key, spec] of Object.entries(table)) {
    const fromEnv = spec.env !== undefined && env[spec.env] !== '' ? env[spec.env] : undefined;
    let raw: string | undefined;
    let source: Source | undefined;
    if (given.has(key)) [raw, source] = [given.get(key), 'flag'];
    else if (fromEnv !== undefined) [raw, source] = [fromEnv, 'env'];
    else if (spec.default !== undefined) [raw, source] = [spec.default, 'default'];
    sources[key] = source;
    if (raw === undefined) {
      if (spec.required) {
        throw new UsageError(`missing ${spec.flag}${spec.env ? ` (or ${spec.env})` : ''}: expected ${allowed(spec)}`);
      }
      values[key] = undefined;
      continue;
    }
    const value = convert(spec, raw);
    if (value instanceof Invalid) {
      if (source === 'default') throw new Error(`option table: the default of ${spec.flag} is invalid`);
      throw invalidValue(spec, source === 'env' ? spec.env! : spec.flag, value.detail);
    }
    values[key] = value;
  }
  return { values: values as Options<T>, sources: sources as { [K in keyof T]: Source | undefined } };
}

/**
 * Reads the options of `table` from `argv` and `env`: a flag wins over its env var, an env var
 * over the default; an empty env var counts as unset. Throws one-line UsageErrors.
 */
export function parse<T extends OptionTable>(table: T, argv: string[], env: NodeJS.ProcessEnv): Options<T> {
  return parseWithSources(table, argv, env).values;
}

/** True when argv asks for help (`--help` or `-h`) in place of a flag. */
export function wantsHelp(argv: string[]): boolean {
  return argv.some((a) => a === '--help' || a === '-h');
}

/**
 * The `--help` text of `agentgate <command>` (`program` replaces `agentgate` for other entry
 * points): every option of the table with what it allows, its env var, its default and its help.
 */
export function usage(
  command: string,
  table: OptionTable,
  { summary, program = 'agentgate' }: { summary?: string; program?: string } = {},
): string {
  const rows = Object.values(table).map((spec) => {
    const details: string[] = [];
    if (spec.required) details.push('required');
    if (spec.env) details.push(`env ${spec.env}`);
    if (spec.default !== undefined) details.push(`default ${spec.default}`);
    else if (spec.defaultHelp !== undefined) details.push(`default: ${spec.defaultHelp}`);
    const limits = constraint(spec);
    if (limits) details.push(limits);
    const arg = spec.arg ?? PLACEHOLDER[spec.kind];
    return { left: arg ? `${spec.flag} ${arg}` : spec.flag, help: spec.help, details: details.join('; ') };
  });
  rows.push({ left: '-h, --help', help: 'print this help', details: '' });
  const width = Math.min(34, Math.max(...rows.map((r) => r.left.length))) + 2;
  const pad = ' '.repeat(width + 2);
  const lines = [`usage: ${[program, command].filter(Boolean).join(' ')} [options]`, ''];
  if (summary) lines.push(summary, '');
  const anyEnv = Object.values(table).some((spec) => spec.env !== undefined);
  lines.push(anyEnv ? 'options (a flag wins over its environment variable):' : 'options:');
  for (const r of rows) {
    if (r.left.length < width) lines.push(`  ${r.left.padEnd(width)}${r.help}`);
    else lines.push(`  ${r.left}`, `${pad}${r.help}`);
    if (r.details) lines.push(`${pad}${r.details}`);
  }
  return `${lines.join('\n')}\n`;
}
