// SPEC §1 `serve` without DATABASE_URL: an embedded PostgreSQL in the data dir, kept across runs;
// a second server on the same data dir fails with one line; SIGTERM stops PostgreSQL too. The data
// dir's parent is 0700 here, like a clone in /root: as root, the cluster and the binaries must live
// where the postgres user can reach them (SPEC §7).
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runningPostmaster } from '../../gateway/src/embedded/postgres.ts';
import { runCli } from '../helpers/cli.ts';
import { embeddedWorkDir, listening, type Served, serveEmbedded } from '../helpers/embedded.ts';
import { httpRequest } from '../helpers/http.ts';

const asRoot = process.getuid?.() === 0;
const REPO = fileURLToPath(new URL('../..', import.meta.url));

describe('serve on the embedded PostgreSQL', () => {
  let dir: ReturnType<typeof embeddedWorkDir>;
  const started: Served[] = [];

  before(() => {
    dir = embeddedWorkDir('agentgate-embedded-');
    assert.equal(statSync(dir.work).mode & 0o777, 0o700, 'the parent of the data dir is closed to other users');
  });
  after(() => dir.cleanup(started));

  test('starts, refuses a second server on the same data, stops, and reuses the data', async (t) => {
    const pgdata = path.join(dir.dataDir, 'pgdata');
    const first = serveEmbedded(dir.dataDir);
    started.push(first);
    const http = await listening(first);
    assert.equal((await httpRequest(`${http}/readyz`)).status, 200);
    assert.ok(
      first.out.some((l) => l.includes('"migrations applied"')),
      'a new data dir is migrated',
    );
    const pgPid = runningPostmaster(pgdata);
    assert.ok(pgPid !== undefined, 'the embedded postmaster runs');
    assert.equal(statSync(dir.dataDir).mode & 0o777, 0o700, 'the state dir is 0700');
    if (asRoot) {
      // The server runs as postgres, from binaries and on data outside the 0700 tree.
      assert.ok(lstatSync(pgdata).isSymbolicLink(), 'as root, pgdata points to the cluster');
      assert.ok(!readlinkSync(pgdata).startsWith(dir.work), readlinkSync(pgdata));
      assert.equal(statSync(`/proc/${pgPid}`).uid, statSync(readlinkSync(pgdata)).uid);
      assert.notEqual(statSync(`/proc/${pgPid}`).uid, 0, 'PostgreSQL does not run as root');
      const exe = readlinkSync(`/proc/${pgPid}/exe`);
      assert.ok(!exe.startsWith(REPO), `${exe} is not under the clone`);
    }

    // `agentgate psql` reaches the running embedded database as the gateway's role.
    if (existsSync('/usr/bin/psql')) {
      const q = await runCli([
        'psql',
        '--data-dir',
        dir.dataDir,
        '--command',
        'select current_user, count(*) from agentgate_migrations',
      ]);
      assert.equal(q.code, 0, q.stderr);
      assert.match(q.stdout, /agentgate\s*\|\s*\d+/);
      assert.equal(runningPostmaster(pgdata), pgPid, 'psql used the running server');
    } else t.diagnostic('skipped: psql is not installed (apt-get install postgresql-client)');

    const second = serveEmbedded(dir.dataDir);
    started.push(second);
    assert.equal(await second.exited, 2);
    assert.equal(second.err.length, 1, second.err.join('\n'));
    assert.match(second.err[0]!, /in use by PID/);
    assert.equal(runningPostmaster(pgdata), pgPid, 'the refused server left PostgreSQL alone');

    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    assert.equal(runningPostmaster(pgdata), undefined, 'PostgreSQL was stopped');
    assert.equal(existsSync(`${pgdata}.port`), false, 'no port file of a stopped server is left behind');
    assert.equal(existsSync(`${pgdata}.secret`), true, 'the password is kept with the data');

    const third = serveEmbedded(dir.dataDir);
    started.push(third);
    await listening(third);
    assert.ok(!third.out.some((l) => l.includes('"migrations applied"')), 'the kept data is already migrated');
    third.child.kill('SIGTERM');
    assert.equal(await third.exited, 0);
  });
});
