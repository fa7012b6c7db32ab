// SPEC §1 `serve` without DATABASE_URL: an embedded PostgreSQL in the data dir, kept across runs;
// a second server on the same data dir fails with one line; SIGTERM stops PostgreSQL too.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runningPostmaster } from '../../gateway/src/ops/embedded-postgres.ts';
import { AGENTGATE_BIN, cliEnv } from '../helpers/cli.ts';
import { httpRequest } from '../helpers/http.ts';

interface Served {
  child: ChildProcess;
  out: string[];
  err: string[];
  exited: Promise<number | null>;
}

function serve(dataDir: string): Served {
  const args = [AGENTGATE_BIN, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'];
  const child = spawn(process.execPath, args, {
    env: cliEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: string[] = [];
  const err: string[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr!.on('data', (d: Buffer) => err.push(...d.toString().split('\n').filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, err, exited };
}

async function listening(s: Served): Promise<string> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    for (const line of s.out) {
      if (line.includes('"listening"')) return String((JSON.parse(line) as { url: string }).url);
    }
    if (s.child.exitCode !== null) throw new Error(`serve exited ${s.child.exitCode}: ${s.err.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('serve did not listen within 60 s');
}

describe('serve on the embedded PostgreSQL', () => {
  let work: string;
  let dataDir: string;
  const started: Served[] = [];

  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'agentgate-embedded-'));
    chmodSync(work, 0o755); // as root, PostgreSQL runs as the postgres user and must reach the data dir
    dataDir = path.join(work, 'state');
  });
  after(async () => {
    for (const s of started) {
      if (s.child.exitCode === null) {
        s.child.kill('SIGTERM');
        await s.exited;
      }
    }
    const pid = runningPostmaster(path.join(dataDir, 'pgdata'));
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  test('starts, refuses a second server on the same data, stops, and reuses the data', async () => {
    const first = serve(dataDir);
    started.push(first);
    const url = await listening(first);
    const http = url.replace(/^ws:/, 'http:').replace(/\/api\/.*$/, '');
    assert.equal((await httpRequest(`${http}/readyz`)).status, 200);
    assert.ok(
      first.out.some((l) => l.includes('"migrations applied"')),
      'a new data dir is migrated',
    );
    const pgPid = runningPostmaster(path.join(dataDir, 'pgdata'));
    assert.ok(pgPid !== undefined, 'the embedded postmaster runs');

    const second = serve(dataDir);
    started.push(second);
    assert.equal(await second.exited, 2);
    assert.equal(second.err.length, 1, second.err.join('\n'));
    assert.match(second.err[0]!, /in use by PID/);

    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    assert.equal(runningPostmaster(path.join(dataDir, 'pgdata')), undefined, 'PostgreSQL was stopped');

    const third = serve(dataDir);
    started.push(third);
    await listening(third);
    assert.ok(!third.out.some((l) => l.includes('"migrations applied"')), 'the kept data is already migrated');
    third.child.kill('SIGTERM');
    assert.equal(await third.exited, 0);
  });
});
