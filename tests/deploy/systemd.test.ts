// deploy/systemd/agentgate.service (SPEC §11) against the gateway it runs: the configuration the
// unit gives `serve` is read by the gateway's own loader (so a changed default in config.ts shows
// here), and its stop timeout, descriptor limit, signal, user and sandbox must fit it. When this
// machine has a usable systemd-analyze, `systemd-analyze verify` must pass without a warning.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Config, loadConfig } from '../../gateway/src/config.ts';
import { findTool } from '../helpers/system-tool.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = path.join(REPO, 'deploy/systemd/agentgate.service');
/** Where the unit expects the repository (its WorkingDirectory). */
const INSTALL_DIR = '/opt/agentgate';

type Unit = Map<string, Map<string, string[]>>;

/** The unit's sections, each key with every value it was given (Environment= may repeat). */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section && eq > 0, `not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** The one value of `key` in `[section]` (the last one wins, as in systemd). */
function value(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

/** A systemd time span (`45s`, `1min 30s`, a bare number of seconds) in milliseconds. */
function timeSpanMs(span: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 };
  let total = 0;
  for (const part of span.trim().split(/\s+/)) {
    const m = /^(\d+(?:\.\d+)?)([a-z]*)$/.exec(part);
    assert.ok(m, `not a time span: ${span}`);
    const unit = m[2] === '' ? 1000 : units[m[2]!];
    assert.ok(unit !== undefined, `unknown time unit in ${span}`);
    total += Number(m[1]) * unit;
  }
  return total;
}

/** `serve`'s configuration under the unit: its ExecStart flags and Environment=, read by config.ts. */
function configUnder(unit: Unit): { config: Config; script: string } {
  const exec = value(unit, 'Service', 'ExecStart');
  assert.ok(exec, 'ExecStart is set');
  const argv = exec.split(/\s+/);
  const serve = argv.indexOf('serve');
  assert.ok(serve > 0, `ExecStart runs agentgate serve: ${exec}`);
  const env: Record<string, string> = {};
  for (const assignments of unit.get('Service')?.get('Environment') ?? []) {
    for (const a of assignments.split(/\s+/)) {
      const eq = a.indexOf('=');
      env[a.slice(0, eq)] = a.slice(eq + 1);
    }
  }
  return { config: loadConfig(argv.slice(serve + 1), env), script: argv[serve - 1]! };
}

const unit = parseUnit(readFileSync(UNIT, 'utf8'));

describe('deploy/systemd/agentgate.service', () => {
  const { config, script } = configUnder(unit);

  test('runs the repository bin with node, as `serve`', () => {
    const exec = value(unit, 'Service', 'ExecStart')!;
    assert.match(exec, /^\/\S*\/node /, 'an absolute path to node (systemd runs no shell)');
    const dir = value(unit, 'Service', 'WorkingDirectory');
    assert.equal(dir, INSTALL_DIR);
    assert.ok(script.startsWith(`${dir}/`), `${script} is inside ${dir}`);
    const inRepo = path.join(REPO, path.relative(dir!, script));
    assert.ok(existsSync(inRepo), `${path.relative(REPO, inRepo)} exists in the repository`);
    assert.equal(value(unit, 'Install', 'WantedBy'), 'multi-user.target');
  });

  test('stops with SIGTERM to the main process, and waits longer than the drain may take', () => {
    assert.equal(value(unit, 'Service', 'KillSignal'), 'SIGTERM', 'SIGTERM starts the drain (SPEC §7)');
    // The primary drains its workers (they ignore SIGTERM) and then stops: SIGTERM to it alone.
    assert.equal(value(unit, 'Service', 'KillMode'), 'mixed');
    const stopMs = timeSpanMs(value(unit, 'Service', 'TimeoutStopSec') ?? '90s');
    // The drain ends within --shutdown-timeout; the process then flushes and exits (an embedded
    // PostgreSQL stops too): 10 s of margin before SIGKILL.
    assert.ok(
      stopMs >= config.shutdownTimeoutMs + 10_000,
      `TimeoutStopSec ${stopMs} ms must exceed the shutdown timeout ${config.shutdownTimeoutMs} ms by 10 s`,
    );
    assert.equal(value(unit, 'Service', 'Restart'), 'on-failure');
    assert.equal(value(unit, 'Service', 'RestartPreventExitStatus'), '2', 'exit 2 is a configuration mistake');
  });

  test('allows more descriptors than --max-connections, with a margin', () => {
    const limit = Number(value(unit, 'Service', 'LimitNOFILE'));
    // One descriptor per socket, plus up to 18 database connections, the listeners, log and the
    // connections answered 503 beyond the limit: at least 1024 more.
    assert.ok(
      Number.isInteger(limit) && limit >= config.maxConnections + 1024,
      `LimitNOFILE ${limit} must be at least --max-connections ${config.maxConnections} + 1024`,
    );
  });

  test('listens for agents on every address and for /metrics on loopback only', () => {
    assert.equal(config.listenHost, '0.0.0.0');
    assert.equal(config.metricsListenHost, '127.0.0.1');
    assert.notEqual(config.listenPort, config.metricsListenPort);
  });

  test('runs as a user of its own, without privileges, in a sandbox', () => {
    const user = value(unit, 'Service', 'User');
    assert.ok(value(unit, 'Service', 'DynamicUser') === 'yes' || (user && user !== 'root'), 'a dedicated user');
    const want: Record<string, string[]> = {
      NoNewPrivileges: ['yes'],
      ProtectSystem: ['strict', 'full'],
      ProtectHome: ['yes', 'read-only', 'tmpfs'],
      PrivateTmp: ['yes'],
      PrivateDevices: ['yes'],
      ProtectKernelTunables: ['yes'],
      ProtectKernelModules: ['yes'],
      ProtectControlGroups: ['yes'],
      RestrictSUIDSGID: ['yes'],
      CapabilityBoundingSet: [''],
    };
    for (const [key, allowed] of Object.entries(want)) {
      const v = value(unit, 'Service', key);
      assert.ok(v !== undefined && allowed.includes(v), `${key}=${v ?? '(unset)'}, want one of ${allowed}`);
    }
    // V8's JIT writes code it then runs: this option would kill node at its first function.
    assert.notEqual(value(unit, 'Service', 'MemoryDenyWriteExecute'), 'yes');
    // DATABASE_URL comes from a file only root reads, not from the unit (which every user can read).
    assert.equal(config.databaseUrl, undefined, 'no DATABASE_URL in the unit');
    assert.match(value(unit, 'Service', 'EnvironmentFile') ?? '', /^\/etc\/agentgate\//);
  });

  const analyze = findTool('systemd-analyze');
  const probe = analyze ? verify(analyze, '[Service]\nExecStart=/bin/true\n') : undefined;
  const skip = !analyze
    ? 'skipped: systemd-analyze is not installed (apt-get install systemd)'
    : probe!.ok
      ? false
      : `skipped: systemd-analyze verify does not work on this machine (${probe!.output.split('\n')[0]})`;
  test('systemd-analyze verify passes without a warning', { skip }, (t) => {
    let text = readFileSync(UNIT, 'utf8');
    const node = /^ExecStart=(\S+)/m.exec(text)![1]!;
    if (!existsSync(node)) {
      // Verify checks that the program exists; a machine with node elsewhere checks with that one.
      text = text.replace(`ExecStart=${node} `, `ExecStart=${process.execPath} `);
      t.diagnostic(`${node} does not exist here: verified with ExecStart=${process.execPath}`);
    }
    const r = verify(analyze!, text);
    assert.ok(r.ok, `systemd-analyze verify:\n${r.output}`);
  });
});

/** Runs `systemd-analyze verify` on `text` as agentgate.service; ok when it exits 0 and says nothing. */
function verify(analyze: string, text: string): { ok: boolean; output: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentgate-unit-'));
  try {
    const file = path.join(dir, 'agentgate.service');
    writeFileSync(file, text);
    const r = spawnSync(analyze, ['verify', file], { encoding: 'utf8', timeout: 60_000 });
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim();
    return { ok: r.status === 0 && output === '', output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
