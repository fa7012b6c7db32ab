// The kinds of option value (`duration`, `int`, `listen`, ...): what each parses to, how a raw flag
// or env value converts, and how --help and error messages say what is allowed. options.ts reads
// tables of options with these.
import { statSync } from 'node:fs';
import path from 'node:path';
import { parseDuration } from '@agentgate/shared';

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
  /** `500ms`, `30s`, `5m`, `1h`, `2d` (or `0`); in milliseconds (min/max in milliseconds too). */
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
  /** One item of `choices`. */
  choice: string;
  /** A flag without a value (`--json`): true when given; `on`/`off` from an env var or `--json=off`. */
  switch: boolean;
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
  /** The items a `list` may hold, or the values a `choice` may take. */
  readonly choices?: readonly string[];
  /** The value's placeholder in --help (`N`, `FILE`); a kind's own by default. */
  readonly arg?: string;
  /** One line: what the option is for. */
  readonly help: string;
}

export const PLACEHOLDER: Record<Kind, string> = {
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
  choice: 'A|B',
  switch: '',
};

function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
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
      return `a duration like 500ms, 30s, 5m, 1h or 2d${bounds.length ? ` (${bounds.join(', ')})` : ''}`;
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
    case 'choice':
      return `one of ${(spec.choices ?? []).join(', ')}`;
    case 'switch':
      return 'no value (or on or off)';
    case 'string':
      return 'a non-empty string';
  }
}

/** The limits that the placeholder does not say, short, for --help: `at least 10ms`, `0 to 1`. */
export function constraint(spec: OptionSpec): string {
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
export class Invalid {
  constructor(readonly detail?: string) {}
}

function inRange(n: number, spec: OptionSpec): boolean {
  return (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);
}

export function convert(spec: OptionSpec, raw: string): KindValues[Kind] | Invalid {
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
    case 'choice':
      return spec.choices?.includes(text) ? text : new Invalid();
    case 'switch': {
      const v = text.toLowerCase();
      return v === 'on' || v === 'off' ? v === 'on' : new Invalid();
    }
    case 'string':
      return raw === '' ? new Invalid() : raw;
  }
}
