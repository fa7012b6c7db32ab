// The option parser of every command (gateway/src/options/parse.ts): flag > env var > default, both flag
// spellings, one-line UsageErrors that name the flag or env var for every kind, and a --help that
// lists every option of a table (checked by iterating the tables, so that it cannot drift).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { SERVE_OPTIONS } from '../../gateway/src/config.ts';
import type { Kind } from '../../gateway/src/options/kinds.ts';
import {
  allowed,
  type OptionTable,
  parse,
  parseWithSources,
  UsageError,
  usage,
} from '../../gateway/src/options/parse.ts';
import { BENCH_OPTIONS } from '../../scripts/src/bench.ts';
import { LOADTEST_OPTIONS } from '../../scripts/src/loadtest.ts';
import { MAINTAIN_OPTIONS } from '../../scripts/src/maintain.ts';
import { MIGRATE_OPTIONS } from '../../scripts/src/migrate.ts';
import { SEED_OPTIONS } from '../../scripts/src/seed.ts';
import { USAGE_OPTIONS } from '../../scripts/src/usage.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'agentgate-options-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** One option of every kind, each with an env var. */
const EVERY_KIND = {
  name: { flag: '--name', env: 'T_NAME', kind: 'string', help: 'a name' },
  wait: { flag: '--wait', env: 'T_WAIT', kind: 'duration', min: 10, max: 60_000, default: '1s', help: 'a wait' },
  count: { flag: '--count', env: 'T_COUNT', kind: 'int', min: -5, max: 100, default: '3', help: 'a count' },
  share: { flag: '--share', env: 'T_SHARE', kind: 'number', min: 0, max: 1, default: '0.5', help: 'a share' },
  cache: { flag: '--cache', env: 'T_CACHE', kind: 'onoff', default: 'on', help: 'a switch' },
  listen: { flag: '--listen', env: 'T_LISTEN', kind: 'listen', default: '127.0.0.1:8080', help: 'an address' },
  level: { flag: '--level', env: 'T_LEVEL', kind: 'level', default: 'info', help: 'a level' },
  db: { flag: '--db', env: 'T_DB', kind: 'postgres-url', help: 'a database' },
  url: { flag: '--url', env: 'T_URL', kind: 'ws-url', help: 'a server' },
  runs: { flag: '--runs', env: 'T_RUNS', kind: 'list', choices: ['a', 'b'], default: 'a,b', help: 'runs' },
  out: { flag: '--out', env: 'T_OUT', kind: 'out-file', help: 'a file' },
  procs: { flag: '--procs', env: 'T_PROCS', kind: 'count-or-auto', min: 1, max: 8, default: '2', help: 'processes' },
  by: { flag: '--by', env: 'T_BY', kind: 'choice', choices: ['x', 'y'], default: 'x', help: 'a grouping' },
  json: { flag: '--json', env: 'T_JSON', kind: 'switch', default: 'off', help: 'a switch without a value' },
} as const satisfies OptionTable;

/** Bad values of each kind; typed by Kind, so a new kind without a case does not compile. */
const BAD: Record<Kind, string[]> = {
  string: [''],
  duration: ['5', '5x', '-1s', 'soon', '5ms', '2m'],
  int: ['abc', '1.5', '64k', '-6', '101'],
  number: ['half', '1.5', '-0.1', '1e3'],
  onoff: ['maybe', 'yes'],
  listen: ['localhost', '127.0.0.1:65536', ':x'],
  level: ['verbose', 'INFO!'],
  'postgres-url': ['mysql://root:hunter2@h/db', 'localhost:5432'],
  'ws-url': ['http://h/x', 'h:1'],
  list: ['c', 'a,,b', ''],
  'out-file': ['/no/such/dir/file.json'],
  'count-or-auto': ['0', '9', 'many', '1.5', '-1'],
  choice: ['z', 'x,y', 'X'],
  switch: ['yes', 'maybe'],
};

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UsageError, `expected a UsageError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `one line: ${JSON.stringify(e.message)}`);
    return e;
  }
  assert.fail('did not throw');
}

describe('parse', () => {
  test('defaults, then env vars, then flags', () => {
    const d = parse(EVERY_KIND, [], {});
    assert.deepEqual(d, {
      name: undefined,
      wait: 1000,
      count: 3,
      share: 0.5,
      cache: true,
      listen: { host: '127.0.0.1', port: 8080 },
      level: 'info',
      db: undefined,
      url: undefined,
      runs: ['a', 'b'],
      out: undefined,
      procs: 2,
      by: 'x',
      json: false,
    });
    assert.equal(parse(EVERY_KIND, ['--json'], {}).json, true, 'a switch takes no value');
    assert.equal(parse(EVERY_KIND, ['--json', '--by', 'y'], {}).by, 'y', 'the next flag is not its value');
    assert.equal(parse(EVERY_KIND, ['--json=off'], { T_JSON: 'on' }).json, false);
    assert.equal(parse(EVERY_KIND, [], { T_JSON: 'on' }).json, true);
    assert.equal(parse(EVERY_KIND, ['--procs', 'auto'], {}).procs, 'auto');
    assert.equal(parse(EVERY_KIND, [], { T_PROCS: '8' }).procs, 8);
    const env = { T_NAME: 'env', T_WAIT: '2s', T_COUNT: '7', T_CACHE: 'off', T_RUNS: 'none', T_DB: 'postgres://h/d' };
    const e = parseWithSources(EVERY_KIND, [], env);
    assert.equal(e.values.name, 'env');
    assert.equal(e.values.wait, 2000);
    assert.equal(e.values.count, 7);
    assert.equal(e.values.cache, false);
    assert.deepEqual(e.values.runs, []);
    assert.equal(e.values.db, 'postgres://h/d');
    assert.equal(e.sources.name, 'env');
    assert.equal(e.sources.share, 'default');
    assert.equal(e.sources.out, undefined);

    const out = path.join(dir, 'r.json');
    const f = parseWithSources(
      EVERY_KIND,
      ['--name', 'flag', '--wait=3s', '--count', '-2', `--out=${out}`, '--url', 'wss://h/x', '--listen', '[::1]:0'],
      env,
    );
    assert.equal(f.values.name, 'flag');
    assert.equal(f.values.wait, 3000);
    assert.equal(f.values.count, -2);
    assert.equal(f.values.out, out);
    assert.equal(f.values.url, 'wss://h/x');
    assert.deepEqual(f.values.listen, { host: '::1', port: 0 });
    assert.equal(f.values.cache, false, 'an env var still applies beside other flags');
    assert.equal(f.sources.name, 'flag');
    assert.equal(f.sources.cache, 'env');
  });

  test('a bad env var is not read when its flag is given; an empty env var is unset', () => {
    assert.equal(parse(EVERY_KIND, ['--count', '4'], { T_COUNT: 'abc' }).count, 4);
    assert.equal(parse(EVERY_KIND, [], { T_COUNT: '' }).count, 3);
  });

  test('--flag=value splits at the first =, and the last of a repeated flag wins', () => {
    assert.equal(parse(EVERY_KIND, ['--name=a=b'], {}).name, 'a=b');
    assert.equal(parse(EVERY_KIND, ['--count', '1', '--count=2'], {}).count, 2);
  });

  describe('every kind: a bad value is one line naming the flag or the env var and what is allowed', () => {
    for (const [key, spec] of Object.entries(EVERY_KIND)) {
      test(`${spec.kind} (${spec.flag})`, () => {
        const bad = BAD[spec.kind];
        assert.ok(bad.length > 0);
        for (const v of bad) {
          const byFlag = usageError(() => parse(EVERY_KIND, [`${spec.flag}=${v}`], {}));
          assert.ok(byFlag.message.includes(spec.flag), `${JSON.stringify(byFlag.message)} names ${spec.flag}`);
          assert.ok(byFlag.message.includes(allowed(spec)), `${JSON.stringify(byFlag.message)} says what is allowed`);
          // A switch takes no value: `--json v` is the switch and a stray argument.
          if (v !== '' && spec.kind !== 'switch') {
            const bySpace = usageError(() => parse(EVERY_KIND, [spec.flag, v], {}));
            assert.equal(bySpace.message, byFlag.message);
          }
          if (v === '') continue; // an empty env var is unset
          const byEnv = usageError(() => parse(EVERY_KIND, [], { [spec.env]: v }));
          assert.ok(byEnv.message.includes(spec.env), `${JSON.stringify(byEnv.message)} names ${spec.env}`);
          assert.ok(!byEnv.message.includes(spec.flag), `${JSON.stringify(byEnv.message)} does not blame the flag`);
          assert.ok(byEnv.message.includes(allowed(spec)));
          for (const m of [byFlag.message, byEnv.message]) {
            assert.ok(v.length < 3 || !m.includes(v), `${JSON.stringify(m)} does not echo the value (${key})`);
          }
        }
      });
    }
  });

  test('durations name their units and bounds', () => {
    const e = usageError(() => parse(EVERY_KIND, ['--wait', '5x'], {}));
    for (const unit of ['ms', 's', 'm', 'h']) assert.match(e.message, new RegExp(`\\d${unit}\\b`));
    assert.match(e.message, /at least 10ms/);
    assert.match(e.message, /at most 1m/);
  });

  test('unknown flags, stray arguments, missing values and missing required options', () => {
    assert.match(usageError(() => parse(EVERY_KIND, ['--nope', '1'], {})).message, /unknown option --nope/);
    assert.match(usageError(() => parse(EVERY_KIND, ['--Count', '1'], {})).message, /--Count.*did you mean --count/);
    assert.match(usageError(() => parse(EVERY_KIND, ['stray'], {})).message, /unexpected argument "stray"/);
    assert.match(usageError(() => parse(EVERY_KIND, ['-h'], {})).message, /unexpected argument "-h"/);
    const missing = usageError(() => parse(EVERY_KIND, ['--count'], {})).message;
    assert.match(missing, /--count/);
    assert.ok(missing.includes(allowed(EVERY_KIND.count)));
    assert.match(usageError(() => parse(EVERY_KIND, ['--count', '--name', 'x'], {})).message, /--count/);
    const required = { n: { flag: '--n', env: 'T_N', kind: 'int', required: true, help: 'n' } } as const;
    const r = usageError(() => parse(required, [], {})).message;
    assert.match(r, /missing --n \(or T_N\)/);
    assert.equal(parse(required, [], { T_N: '5' }).n, 5);
  });

  test('a bad default is a bug in the table, not a usage error', () => {
    const broken = { n: { flag: '--n', kind: 'int', default: 'x', help: 'n' } } as const;
    assert.throws(
      () => parse(broken, [], {}),
      (e: unknown) => e instanceof Error && !(e instanceof UsageError),
    );
  });
});

const TABLES: Record<string, OptionTable> = {
  serve: SERVE_OPTIONS,
  migrate: MIGRATE_OPTIONS,
  seed: SEED_OPTIONS,
  loadtest: LOADTEST_OPTIONS,
  bench: BENCH_OPTIONS,
  maintain: MAINTAIN_OPTIONS,
  usage: USAGE_OPTIONS,
  test: EVERY_KIND,
};

describe('the tables of every command', () => {
  for (const [command, table] of Object.entries(TABLES)) {
    test(`${command}: usage() lists every option with its env var, default and help`, () => {
      const text = usage(command, table, { summary: `the ${command} command` });
      assert.ok(text.startsWith(`usage: agentgate ${command} [options]\n`), text);
      assert.ok(text.includes(`the ${command} command`));
      const lines = text.split('\n');
      for (const spec of Object.values(table)) {
        const at = lines.findIndex((l) => l.trimStart().startsWith(`${spec.flag} `));
        assert.ok(at >= 0, `${spec.flag} is listed`);
        const block = lines.slice(at, at + 3).join('\n');
        assert.ok(block.includes(spec.help), `${spec.flag}: help`);
        if (spec.env) assert.ok(block.includes(`env ${spec.env}`), `${spec.flag}: env ${spec.env}`);
        if (spec.default !== undefined) assert.ok(block.includes(`default ${spec.default}`), `${spec.flag}: default`);
        if (spec.defaultHelp !== undefined) assert.ok(block.includes(spec.defaultHelp), `${spec.flag}: default`);
        if (spec.required) assert.ok(block.includes('required'), `${spec.flag}: required`);
      }
      assert.match(text, /--help/);
    });

    test(`${command}: flags and env vars are unique and every default parses`, () => {
      const specs = Object.values(table);
      assert.equal(new Set(specs.map((s) => s.flag)).size, specs.length);
      const envs = specs.flatMap((s) => (s.env ? [s.env] : []));
      assert.equal(new Set(envs).size, envs.length);
      for (const [key, spec] of Object.entries(table)) {
        if (spec.default === undefined) continue;
        assert.doesNotThrow(() => parse({ [key]: spec }, [], {}), `${spec.flag} default ${spec.default}`);
      }
    });
  }
});
