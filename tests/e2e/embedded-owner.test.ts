// SPEC §7: the embedded PostgreSQL "never stops a server that another live gateway uses". The
// server's owner is recorded beside the data (`pgdata.owner`: PID, start time, PID namespace); a
// server is an orphan only when that owner is gone or its PID names another process now — not when
// the server's parent is PID 1, as it is under a gateway that is PID 1 in a container.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { runningPostmaster } from '../../gateway/src/embedded/postgres.ts';
import { AGENTGATE_BIN, cliEnv, runCli } from '../helpers/cli.ts';
import { alive, embeddedWorkDir, listening, type Served, serveEmbedded } from '../helpers/embedded.ts';
import { httpRequest } from '../helpers/http.ts';

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** Kills a gateway with SIGKILL: its PostgreSQL stays behind, reparented to PID 1. */
async function killGateway(s: Served, pgdata: string): Promise<number> {
  const pg = runningPostmaster(pgdata);
  assert.ok(pg !== undefined);
  s.child.kill('SIGKILL');
  await s.exited;
  assert.equal(runningPostmaster(pgdata), pg, 'the postmaster outlived its gateway');
  assert.equal(parentOf(pg), 1, 'the orphaned postmaster belongs to PID 1 now');
  return pg;
}

describe('the owner of the embedded PostgreSQL', () => {
  const dirs: { dir: ReturnType<typeof embeddedWorkDir>; started: Served[] }[] = [];
  const fresh = () => {
    const d = { dir: embeddedWorkDir('agentgate-embedded-owner-'), started: [] as Served[] };
    dirs.push(d);
    return { ...d.dir, pgdata: path.join(d.dir.dataDir, 'pgdata'), started: d.started };
  };
  afterEach(async () => {
    for (const d of dirs.splice(0)) await d.dir.cleanup(d.started);
  });

  test('migrate beside a running gateway uses its server and leaves it running', async () => {
    const { dataDir, pgdata, started } = fresh();
    const gw = serveEmbedded(dataDir);
    started.push(gw);
    const http = await listening(gw);
    const pg = runningPostmaster(pgdata);
    const r = await runCli(['migrate', '--data-dir', dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /up to date/);
    assert.equal(runningPostmaster(pgdata), pg, 'the same server still runs');
    assert.equal((await httpRequest(`${http}/readyz`)).status, 200, 'the gateway still has its database');
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0);
  });

  test('a server whose gateway was killed is stopped by the next start', async () => {
    const { dataDir, pgdata, started } = fresh();
    const gw = serveEmbedded(dataDir);
    started.push(gw);
    await listening(gw);
    const orphan = await killGateway(gw, pgdata);

    const next = serveEmbedded(dataDir);
    started.push(next);
    const http = await listening(next);
    assert.ok(!alive(orphan), 'the orphan was stopped');
    const pg = runningPostmaster(pgdata);
    assert.ok(pg !== undefined && pg !== orphan, 'a server of its own runs');
    assert.equal((await httpRequest(`${http}/readyz`)).status, 200);
    next.child.kill('SIGTERM');
    assert.equal(await next.exited, 0);
  });

  test('a live owner keeps its server though the server’s parent is PID 1; a reused PID does not', async () => {
    const { dataDir, pgdata, started } = fresh();
    const gw = serveEmbedded(dataDir);
    started.push(gw);
    await listening(gw);
    const pg = await killGateway(gw, pgdata);

    // Make this test process the recorded owner: a live gateway whose server's parent is PID 1.
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const pidns = readlinkSync('/proc/self/ns/pid');
    writeFileSync(`${pgdata}.owner`, JSON.stringify({ pid: process.pid, start, pidns }));
    const uses = await runCli(['migrate', '--data-dir', dataDir]);
    assert.equal(uses.code, 0, uses.stderr);
    assert.match(uses.stdout, /up to date/);
    assert.equal(runningPostmaster(pgdata), pg, 'migrate used the live owner’s server and left it running');
    const refused = await runCli(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0']);
    assert.equal(refused.code, 2);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`in use by PID ${process.pid}\\b`));
    assert.equal(runningPostmaster(pgdata), pg);

    // The same PID with another start time is another process: the server is an orphan.
    writeFileSync(`${pgdata}.owner`, JSON.stringify({ pid: process.pid, start: '1', pidns }));
    const cleans = await runCli(['migrate', '--data-dir', dataDir]);
    assert.equal(cleans.code, 0, cleans.stderr);
    assert.ok(!alive(pg), 'the orphan was stopped');
    assert.equal(runningPostmaster(pgdata), undefined, 'migrate stopped the server it started');
  });
});

// A gateway that really is PID 1 (of a new PID namespace, as in a container); `migrate` runs in
// the same namespace, where the gateway's server has PID 1 for its parent. Namespaces need root.
describe('a gateway that is PID 1', { skip: process.getuid?.() !== 0 && 'PID namespaces need root' }, () => {
  let dir: ReturnType<typeof embeddedWorkDir>;
  const started: Served[] = [];
  let init: number | undefined;
  before(() => {
    dir = embeddedWorkDir('agentgate-embedded-pid1-');
  });
  after(async () => {
    if (init !== undefined && alive(init)) process.kill(init, 'SIGKILL'); // takes its namespace down
    await dir.cleanup(started);
  });

  test('keeps its server when migrate runs beside it', async () => {
    const gw = serveEmbedded(dir.dataDir, { prefix: ['unshare', '--fork', '--pid', '--mount-proc'] });
    started.push(gw);
    const http = await listening(gw);
    init = Number(readFileSync(`/proc/${gw.child.pid}/task/${gw.child.pid}/children`, 'utf8').trim());
    assert.match(readFileSync(`/proc/${init}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m, 'the gateway is PID 1 inside');

    const migrate = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const args = [
        '-t',
        String(init),
        '-p',
        '-m',
        process.execPath,
        AGENTGATE_BIN,
        'migrate',
        '--data-dir',
        dir.dataDir,
      ];
      execFile('nsenter', args, { env: cliEnv(), timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      );
    });
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /up to date/);
    assert.equal((await httpRequest(`${http}/readyz`)).status, 200, 'the gateway still has its database');

    process.kill(init, 'SIGTERM');
    assert.equal(await gw.exited, 0);
  });
});
