// The real `agentgate` bin (SPEC §1): `--help` after every command prints that command's option
// table (every flag of it) and exits 0; `agentgate --help` lists every command; a usage mistake in
// any command is one line `agentgate <cmd>: ...` on stderr with exit 2.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { OptionTable } from '../../gateway/src/options/parse.ts';
import { ECHO_OPTIONS } from '../../scripts/src/bench/echo-server.ts';
import { COMMANDS } from '../../scripts/src/cli.ts';

const here = path.dirname(new URL(import.meta.url).pathname);
const BIN = path.resolve(here, '../../scripts/bin/agentgate.js');
const ECHO = path.resolve(here, '../../scripts/dist/bench/echo-server.js');

/** Each command's option table, as the CLI loads it. */
const TABLES: Record<string, OptionTable> = Object.fromEntries(
  await Promise.all(Object.entries(COMMANDS).map(async ([name, c]) => [name, (await c.load()).options] as const)),
);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['DATABASE_URL'];
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

test('every command of the CLI loads an option table and a main', async () => {
  assert.ok(Object.keys(COMMANDS).length >= 9);
  for (const [name, c] of Object.entries(COMMANDS)) {
    const m = await c.load();
    assert.ok(Object.keys(m.options).length > 0, `${name}: an option table`);
    assert.equal(typeof m.main, 'function', `${name}: a main`);
  }
});

describe('agentgate <command> --help', () => {
  for (const [command, table] of Object.entries(TABLES)) {
    test(`${command} --help and -h print every option of its table`, async () => {
      const [long, short] = await Promise.all([run(BIN, [command, '--help']), run(BIN, [command, '-h'])]);
      for (const r of [long, short]) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        assert.ok(r.stdout.startsWith(`usage: agentgate ${command} [options]`), r.stdout);
        for (const spec of Object.values(table)) {
          assert.ok(r.stdout.includes(spec.flag), `${command} --help mentions ${spec.flag}`);
          if (spec.env) assert.ok(r.stdout.includes(spec.env), `${command} --help mentions ${spec.env}`);
        }
      }
      assert.equal(short.stdout, long.stdout);
    });
  }

  test('--help wins over other, even invalid, options; `agentgate help <cmd>` is the same', async () => {
    const [a, b] = await Promise.all([run(BIN, ['seed', '--agents', 'x', '--help']), run(BIN, ['help', 'seed'])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout, b.stdout);
  });

  test('the echo server of the bench has a generated --help too', async () => {
    const r = await run(ECHO, ['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const spec of Object.values(ECHO_OPTIONS)) assert.ok(r.stdout.includes(spec.flag), spec.flag);
  });
});

describe('agentgate', () => {
  test('--help lists every command with its summary', async () => {
    const r = await run(BIN, ['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const [name, command] of Object.entries(COMMANDS)) {
      assert.ok(
        lines(r.stdout).some((l) => l.trim().startsWith(name) && l.includes(command.summary)),
        `${name} is listed with its summary`,
      );
    }
  });

  test('--version prints the version of the gateway package', async () => {
    const r = await run(BIN, ['--version']);
    assert.equal(r.code, 0, r.stderr);
    const { version } = JSON.parse(readFileSync(new URL('../../gateway/package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    assert.equal(r.stdout, `agentgate ${version}\n`);
  });

  test('no command, or an unknown one, exits 2', async () => {
    const [none, unknown] = await Promise.all([run(BIN, []), run(BIN, ['serv'])]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /usage: agentgate <command>/);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "serv"/);
  });

  test('an unknown option of any command is one line naming it, exit 2', async () => {
    const results = await Promise.all(Object.keys(TABLES).map((c) => run(BIN, [c, '--bogus', '1'])));
    results.forEach((r, i) => {
      const command = Object.keys(TABLES)[i]!;
      assert.equal(r.code, 2, `${command}: ${r.stderr}`);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^agentgate ${command}: unknown option --bogus`));
    });
  });
});
