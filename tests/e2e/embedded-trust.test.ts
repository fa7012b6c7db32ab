// SPEC §7: the embedded PostgreSQL "trusts no file another user controls". As root, a state
// directory that another user made (here `nobody`, in a sticky world-writable directory, as the
// system temp directory is), one that is writable by others, or a symlink, is refused with one line
// before anything is written; a data dir link that agentgate did not make is not followed; the
// cluster's own pg_hba.conf is never written through a link.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { embeddedWorkDir, listening, type Served, serveEmbedded } from '../helpers/embedded.ts';

const CLUSTERS = '/var/lib/agentgate/clusters';
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** Runs a shell command as `nobody` (the attacker); throws when it fails. */
function asNobody(script: string, env: Record<string, string>): void {
  const r = spawnSync('sh', ['-c', script], { uid: NOBODY, gid: NOBODY, env: { ...env, PATH: '/usr/bin:/bin' } });
  if (r.status !== 0) throw new Error(`as nobody: ${script}: ${r.stderr}`);
}

/** Mode, owner and content of a file, or a directory's mode, owner and entries. */
function snapshot(p: string) {
  const st = lstatSync(p);
  const what = st.isDirectory() ? readdirSync(p).sort() : st.isSymbolicLink() ? 'link' : readFileSync(p, 'utf8');
  return { mode: st.mode & 0o7777, uid: st.uid, what };
}

/** Clusters under /var/lib/agentgate made for a state dir `<parent>/<name>` (locateCluster's label). */
function clustersFor(stateDir: string): string[] {
  const label = `${path.basename(path.dirname(stateDir))}-${path.basename(stateDir)}`.replace(/[^A-Za-z0-9_-]+/g, '');
  return readdirSync(CLUSTERS).filter((n) => n.startsWith(`${label}-`));
}

async function refused(args: string[], why: RegExp) {
  const r = await runCli(args);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, why);
}

describe('the embedded PostgreSQL trusts no state another user controls', { skip: !asRoot && 'needs root' }, () => {
  let sticky: string; // world-writable and sticky, as /tmp
  let safe: string; // root's own, 0700
  before(() => {
    sticky = mkdtempSync(path.join(tmpdir(), 'agentgate-trust-sticky-'));
    chmodSync(sticky, 0o1777);
    safe = mkdtempSync(path.join(tmpdir(), 'agentgate-trust-root-'));
  });
  after(() => {
    rmSync(sticky, { recursive: true, force: true });
    rmSync(safe, { recursive: true, force: true });
  });

  test('a state dir made by nobody, with a 0666 secret and a port file linked to a root file, is refused', async () => {
    const rootFile = path.join(safe, 'precious');
    writeFileSync(rootFile, 'root’s own\n', { mode: 0o600 });
    const stateDir = path.join(sticky, 'agdata');
    asNobody('mkdir "$S" && : > "$S/pgdata.secret" && chmod 666 "$S/pgdata.secret" && ln -s "$R" "$S/pgdata.port"', {
      S: stateDir,
      R: rootFile,
    });
    const before = {
      root: snapshot(rootFile),
      state: snapshot(stateDir),
      secret: snapshot(`${stateDir}/pgdata.secret`),
    };

    for (const cmd of [
      ['serve', '--listen', '127.0.0.1:0'],
      ['migrate'],
      ['seed', '--agents', '1', '--out', '/dev/null'],
    ])
      await refused([...cmd, '--data-dir', stateDir], /agdata is owned by uid 65534, not by this user/);

    assert.deepEqual(snapshot(rootFile), before.root, 'the root-owned file is untouched');
    assert.deepEqual(snapshot(stateDir), before.state, 'nothing was made in the state dir, nor was it chmod-ed');
    assert.deepEqual(
      snapshot(`${stateDir}/pgdata.secret`),
      before.secret,
      'no password was written for nobody to read',
    );
    assert.deepEqual(clustersFor(stateDir), [], 'no cluster was made');
  });

  test('a state dir of ours that others may write is refused, not chmod-ed', async () => {
    const stateDir = path.join(safe, 'open');
    mkdirSync(stateDir);
    chmodSync(stateDir, 0o777);
    await refused(
      ['serve', '--listen', '127.0.0.1:0', '--data-dir', stateDir],
      /open has mode 0777 \(writable by others\)/,
    );
    assert.deepEqual(snapshot(stateDir), { mode: 0o777, uid: 0, what: [] });
  });

  test('a state dir or a data dir that is a symlink to a root-owned directory is neither followed nor chmod-ed', async () => {
    const target = path.join(safe, 'system-dir');
    mkdirSync(target, { mode: 0o755 });
    chmodSync(target, 0o755);
    const linkedState = path.join(sticky, 'linked-state');
    asNobody('ln -s "$T" "$L"', { T: target, L: linkedState });
    await refused(['serve', '--listen', '127.0.0.1:0', '--data-dir', linkedState], /linked-state is a symbolic link/);

    const stateDir = path.join(safe, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    symlinkSync(target, path.join(stateDir, 'pgdata'));
    await refused(
      ['serve', '--listen', '127.0.0.1:0', '--data-dir', stateDir],
      new RegExp(`pgdata points to ${target}, not to a cluster of ${CLUSTERS}`),
    );
    assert.deepEqual(snapshot(target), { mode: 0o755, uid: 0, what: [] }, 'the linked directory is untouched');
    assert.deepEqual(readdirSync(stateDir), ['pgdata'], 'no password or port written');
  });

  test('a secret of the wrong mode is refused, not rewritten', async () => {
    const stateDir = path.join(safe, 'loose');
    mkdirSync(stateDir, { mode: 0o700 });
    writeFileSync(path.join(stateDir, 'pgdata.secret'), 'shown to all', { mode: 0o644 });
    chmodSync(path.join(stateDir, 'pgdata.secret'), 0o644);
    await refused(['migrate', '--data-dir', stateDir], /pgdata\.secret has mode 0644 \(readable by others\)/);
    assert.deepEqual(snapshot(path.join(stateDir, 'pgdata.secret')), { mode: 0o644, uid: 0, what: 'shown to all' });
  });

  describe('the cluster’s own files', () => {
    let dir: ReturnType<typeof embeddedWorkDir>;
    const started: Served[] = [];
    before(() => {
      dir = embeddedWorkDir('agentgate-trust-cluster-');
    });
    after(() => dir.cleanup(started));

    test('pg_hba.conf made a link by the postgres user to a root file: refused, the root file untouched', async () => {
      const first = serveEmbedded(dir.dataDir);
      started.push(first);
      await listening(first);
      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0);

      const cluster = realpathSync(path.join(dir.dataDir, 'pgdata'));
      const rootFile = path.join(safe, 'hba-bait');
      // An older cluster's clear-text rule, which a start upgrades to scram by rewriting the file.
      writeFileSync(rootFile, 'host all all 127.0.0.1/32 password\n', { mode: 0o644 });
      const owner = statSync(cluster);
      const r = spawnSync('sh', ['-c', 'rm "$C/pg_hba.conf" && ln -s "$R" "$C/pg_hba.conf"'], {
        uid: owner.uid,
        gid: owner.gid,
        env: { C: cluster, R: rootFile, PATH: '/usr/bin:/bin' },
      });
      assert.equal(r.status, 0, String(r.stderr));
      const bait = snapshot(rootFile);

      const second = serveEmbedded(dir.dataDir);
      started.push(second);
      assert.equal(await second.exited, 2);
      assert.equal(second.err.length, 1, second.err.join('\n'));
      assert.match(second.err[0]!, /pg_hba\.conf is not a plain file of the postgres user/);
      assert.deepEqual(snapshot(rootFile), bait, 'the root-owned file was not written');
    });
  });
});
