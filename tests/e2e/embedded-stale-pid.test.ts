// SPEC §7: a process named in a `postmaster.pid` "is signalled only if its working directory is that
// cluster's data directory and its start time matches". After a reboot or a container restart, a
// stopped cluster's postmaster.pid may name another live PostgreSQL — here another embedded cluster,
// whose gateway still uses it — and its owner record is stale: `migrate` must leave that server
// alone.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runningPostmaster, startEmbeddedPostgres } from '../../gateway/src/embedded/postgres.ts';
import { runCli } from '../helpers/cli.ts';
import { alive, embeddedWorkDir, listening, type Served, serveEmbedded } from '../helpers/embedded.ts';
import { httpRequest } from '../helpers/http.ts';

describe('a stale postmaster.pid that names another PostgreSQL', () => {
  let a: ReturnType<typeof embeddedWorkDir>;
  let b: ReturnType<typeof embeddedWorkDir>;
  const startedB: Served[] = [];
  before(() => {
    a = embeddedWorkDir('agentgate-stale-pid-a-');
    b = embeddedWorkDir('agentgate-stale-pid-b-');
  });
  after(async () => {
    await a.cleanup([]);
    await b.cleanup(startedB);
  });

  test('migrate leaves the other server running, and starts its own', async () => {
    const pgdataA = path.join(a.dataDir, 'pgdata');
    const pgdataB = path.join(b.dataDir, 'pgdata');
    // A: a cluster that was started once and stopped.
    const pgA = await startEmbeddedPostgres({ dataDir: pgdataA });
    await pgA.stop();
    // B: a live gateway on its own cluster.
    const gwB = serveEmbedded(b.dataDir);
    startedB.push(gwB);
    const httpB = await listening(gwB);
    const postmasterB = runningPostmaster(pgdataB);
    assert.ok(postmasterB !== undefined);

    // A's postmaster.pid now names B's server, start time included; A's owner is long gone.
    const clusterA = realpathSync(pgdataA);
    writeFileSync(
      path.join(clusterA, 'postmaster.pid'),
      readFileSync(path.join(realpathSync(pgdataB), 'postmaster.pid')),
    );
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    const pidns = readlinkSync('/proc/self/ns/pid');
    writeFileSync(`${pgdataA}.owner`, JSON.stringify({ pid: gone, start: '1', pidns }));
    assert.equal(runningPostmaster(pgdataA), undefined, 'B’s server is not A’s');

    const r = await runCli(['migrate', '--data-dir', a.dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied \d+ migration/);
    assert.ok(alive(postmasterB), 'B’s server still runs');
    assert.equal(runningPostmaster(pgdataB), postmasterB);
    assert.equal((await httpRequest(`${httpB}/readyz`)).status, 200, 'B’s gateway still has its database');
    assert.ok(!gwB.out.some((l) => l.includes('database is unreachable')), gwB.out.join('\n'));

    gwB.child.kill('SIGTERM');
    assert.equal(await gwB.exited, 0);
  });
});
