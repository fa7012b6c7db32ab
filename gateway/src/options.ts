// The options of every `agentgate` command (SPEC §1, §9): a command declares a table, `parse` reads
// it from flags and the environment (flag, then env var, then default) into typed values, and
// `usage` prints the same table as `--help`. Every mistake is one UsageError line that names the
// flag or env var as the user wrote it and says what is allowed; values are never echoed (a URL or
// a token may hold a secret).
import { statSync } from 'node:fs';
import path from 'node:path';
import { parseDuration } from '@agentgate/shared';
import { UsageError } from './ops/usage-error.js';

export { UsageError };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Listen {
  host: string;
  port: number;
}

/** What each kind of option parses to. */
export interface KindValues {
  /** Any non-empty text. */
  string: string;
  /** `500ms`, `30s`, `5m`, `1h`; in milliseconds (min/max in milliseconds too). */
  duration: number;
  int: number;
  /** A decimal number such as a fraction: `0.25`. */
  number: number;
  onoff: boolean;
  /** `host:port`, port 0..65535; an IPv6 host in brackets. */
  listen: Listen;
  level: LogLevel;
  'postgres-url': string;
  'ws-url': string;
  /** `a,b,c` (items from `choices` when given), or `none` for the empty list. */
  list: string[];
  /** A file to write, in a directory that exists. */
  'out-file': string;
  /** A count (min/max apply), or `auto` for one per CPU. */
  'count-or-auto': number | 'auto';
}
export type Kind = keyof KindValues;

export interface OptionSpec {
  readonly flag: `--${string}`;
  readonly env?: string;
  readonly kind: Kind;
  /** Written as the user would write it; parsed like a flag value. */
  readonly default?: string;
  /** What --help shows when there is no default value: `embedded`, `none`, ... */
  readonly defaultHelp?: string;
  readonly required?: boolean;
  readonly min?: number;
  readonly max?: number;
  /** The items a `list` may hold. */
  readonly choices?: readonly string[];
  /** The value's placeholder in --help (`N`, `FILE`); a kind's own by default. */
  readonly arg?: string;
  /** One line: what the option is for. */
  readonly help: string;
}

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

const PLACEHOLDER: Record<Kind, string> = {
  string: 'VALUE',
  duration: 'DURATION',
  int: 'N',
  number: 'X',
  onoff: 'on|off',
  listen: 'HOST:PORT',
  level: 'LEVEL',
  'postgres-url': 'URL',
  'ws-url': 'WS_URL',
  list: 'A,B',
  'out-file': 'FILE',
  'count-or-auto': 'N|auto',
};

function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function range(spec: OptionSpec): string {
  const { min, max } = spec;
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` of at least ${min}`;
  if (max !== undefined) return ` of at most ${max}`;
  return '';
}

/** What a value of this option may be, as one phrase: "an integer of at least 1". */
export function allowed(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'duration': {
      const bounds = [
        spec.min !== undefined && spec.min > 0 ? `at least ${formatMs(spec.min)}` : '',
        spec.max !== undefined ? `at most ${formatMs(spec.max)}` : '',
      ].filter(Boolean);
      return `a duration like 500ms, 30s, 5m or 1h${bounds.length ? ` (${bounds.join(', ')})` : ''}`;
    }
    case 'int':
      return `an integer${range(spec)}`;
    case 'number':
      return `a number${range(spec)}`;
    case 'onoff':
      return 'on or off';
    case 'listen':
      return 'host:port with a port from 0 to 65535';
    case 'level':
      return `one of ${LOG_LEVELS.join(', ')}`;
    case 'postgres-url':
      return 'a postgres:// URL';
    case 'ws-url':
      return 'a ws:// or wss:// URL';
    case 'list':
      return spec.choices ? `a comma-separated list of ${spec.choices.join(', ')} (or none)` : 'a comma-separated list';
    case 'out-file':
      return 'a file path in an existing directory';
    case 'count-or-auto':
      return `auto or an integer${range(spec)}`;
    case 'string':
      return 'a non-empty string';
  }
}

/** The limits that the placeholder does not say, short, for --help: `at least 10ms`, `0 to 1`. */
function constraint(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'duration':
      return spec.min !== undefined && spec.min > 0 ? `at least ${formatMs(spec.min)}` : '';
    case 'int':
    case 'number':
    case 'count-or-auto':
      return range(spec).replace(/^ (from|of) /, '');
    case 'level':
      return LOG_LEVELS.join('|');
    case 'list':
      return spec.choices ? `any of ${spec.choices.join('|')} or none` : '';
    default:
      return '';
  }
}

/** A value that does not fit its option; `detail` is safe to show (never the value itself). */
class Invalid {
  constructor(readonly detail?: string) {}
}

function inRange(n: number, spec: OptionSpec): boolean {
  return (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);
}

function convert(spec: OptionSpec, raw: string): KindValues[Kind] | Invalid {
  const text = raw.trim();
  switch (spec.kind) {
    case 'duration': {
      const ms = parseDuration(text);
      return ms !== undefined && inRange(ms, spec) ? ms : new Invalid();
    }
    case 'int': {
      const n = /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
      return Number.isSafeInteger(n) && inRange(n, spec) ? n : new Invalid();
    }
    case 'number': {
      const n = /^-?(\d+(\.\d*)?|\.\d+)$/.test(text) ? Number(text) : Number.NaN;
      return Number.isFinite(n) && inRange(n, spec) ? n : new Invalid();
    }
    case 'onoff': {
      const v = text.toLowerCase();
      return v === 'on' || v === 'off' ? v === 'on' : new Invalid();
    }
    case 'listen': {
      const m = /^(.+):(\d{1,5})$/.exec(text);
      const port = m ? Number(m[2]) : Number.NaN;
      if (!m || port > 65535) return new Invalid();
      return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
    }
    case 'level':
      return (LOG_LEVELS as readonly string[]).includes(raw) ? (raw as LogLevel) : new Invalid();
    case 'postgres-url':
      return /^postgres(ql)?:\/\/./.test(raw) ? raw : new Invalid();
    case 'ws-url':
      return /^wss?:\/\/./.test(raw) ? raw : new Invalid();
    case 'list': {
      if (text === 'none') return [];
      const items = text.split(',').map((s) => s.trim());
      if (items.some((s) => s === '' || (spec.choices !== undefined && !spec.choices.includes(s)))) {
        return new Invalid();
      }
      return items;
    }
    case 'out-file': {
      if (raw === '') return new Invalid();
      const dir = path.dirname(path.resolve(raw));
      let isDir = false;
      try {
        isDir = statSync(dir).isDirectory();
      } catch {
        isDir = false;
      }
      return isDir ? raw : new Invalid(`directory ${dir} does not exist`);
    }
    case 'count-or-auto': {
      if (text.toLowerCase() === 'auto') return 'auto';
      const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
      return Number.isSafeInteger(n) && inRange(n, spec) ? n : new Invalid();
    }
    case 'string':
      return raw === '' ? new Invalid() : raw;
  }
}

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
    return { left: `${spec.flag} ${spec.arg ?? PLACEHOLDER[spec.kind]}`, help: spec.help, details: details.join('; ') };
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
