// The owner record of an embedded PostgreSQL (gateway/src/embedded/ownership.ts): a live owner is
// told apart from a gone one, from a reused PID (another start time) and from a process of another
// PID namespace; only one process can hold the record, and only its holder releases it. A PID in a
// postmaster.pid is the cluster's server only when the process works in the cluster's directory and
// started when the file says (SPEC §7).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  claimOwner,
  dropOwner,
  ownerState,
  postmasterOf,
  readOwner,
  releaseOwner,
  runningPostmaster,
} from '../../gateway/src/embedded/ownership.ts';

const stat = readFileSync('/proc/self/stat', 'utf8');
const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
const pidns = readlinkSync('/proc/self/ns/pid');

describe('owner record', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'agentgate-owner-'));
  const dataDir = path.join(work, 'pgdata');
  after(() => rmSync(work, { recursive: true, force: true }));

  test('a live process, a gone one, a reused PID, another namespace', () => {
    assert.equal(ownerState({ pid: process.pid, start, pidns }), 'alive');
    assert.equal(ownerState({ pid: process.pid, start: '1', pidns }), 'gone', 'same PID, other start time');
    const exited = spawnSync(process.execPath, ['-e', '0']).pid;
    assert.equal(ownerState({ pid: exited, start: undefined, pidns }), 'gone');
    assert.equal(ownerState({ pid: 1, start: '1', pidns: 'pid:[1]' }), 'unknown', 'PID 1 of another namespace');
  });

  test('one holder at a time; only the holder releases it', () => {
    assert.equal(claimOwner(dataDir), true);
    assert.deepEqual(readOwner(dataDir), { pid: process.pid, start, pidns });
    assert.equal(claimOwner(dataDir), false, 'already held');
    assert.deepEqual(
      readdirSync(work).filter((n) => n !== 'pgdata.owner'),
      [],
      'no leftover of the claim',
    );
    releaseOwner(dataDir);
    assert.equal(existsSync(`${dataDir}.owner`), false);

    assert.equal(claimOwner(dataDir), true);
    rmSync(`${dataDir}.owner`);
    // A record of another process is not ours to release.
    writeFileSync(`${dataDir}.owner`, JSON.stringify({ pid: process.pid, start: '1', pidns }));
    releaseOwner(dataDir);
    assert.equal(existsSync(`${dataDir}.owner`), true);
    dropOwner(dataDir);
    assert.equal(existsSync(`${dataDir}.owner`), false);
  });
});

describe('postmaster.pid', () => {
  const work = realpathSync(mkdtempSync(path.join(tmpdir(), 'agentgate-postmaster-')));
  const cluster = path.join(work, 'cluster');
  const elsewhere = path.join(work, 'elsewhere');
  let fake: ChildProcess;
  let startedAt: number;
  const pidFile = (dir: string, pid: number, start: number) =>
    writeFileSync(path.join(dir, 'postmaster.pid'), `${pid}\n${cluster}\n${start}\n5432\n\n127.0.0.1\n0 0\nready\n`);

  before(() => {
    mkdirSync(cluster);
    mkdirSync(elsewhere);
    // A process named `postgres` (comm comes from the name it was run by) working in the cluster.
    const bin = path.join(work, 'bin');
    mkdirSync(bin);
    const sleep = ['/usr/bin/sleep', '/bin/sleep'].find((p) => existsSync(p))!;
    symlinkSync(sleep, path.join(bin, 'postgres'));
    fake = spawn(path.join(bin, 'postgres'), ['600'], { cwd: cluster, stdio: 'ignore' });
    startedAt = Math.round(Date.now() / 1000);
  });
  after(() => {
    fake.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  test('the cluster’s own server: a postgres in its directory, started when the file says', () => {
    pidFile(cluster, fake.pid!, startedAt);
    assert.deepEqual(postmasterOf(cluster), { pid: fake.pid, verdict: 'ours' });
    assert.equal(runningPostmaster(cluster), fake.pid);
  });

  test('the same process with another start time: not signalled, not taken for stale either', () => {
    pidFile(cluster, fake.pid!, startedAt - 60);
    assert.deepEqual(postmasterOf(cluster), { pid: fake.pid, verdict: 'unsure' });
    assert.equal(runningPostmaster(cluster), undefined);
  });

  test('a postgres working in another directory, or not a postgres at all: another process', () => {
    pidFile(elsewhere, fake.pid!, startedAt);
    assert.deepEqual(postmasterOf(elsewhere), { pid: fake.pid, verdict: 'other' });
    assert.equal(runningPostmaster(elsewhere), undefined);
    pidFile(cluster, process.pid, startedAt);
    assert.deepEqual(postmasterOf(cluster), { pid: process.pid, verdict: 'other' });
  });

  test('a gone PID, a link or a FIFO in place of the file: no server (and no hang)', () => {
    pidFile(cluster, spawnSync(process.execPath, ['-e', '0']).pid, startedAt);
    assert.equal(postmasterOf(cluster), undefined);
    pidFile(elsewhere, fake.pid!, startedAt);
    rmSync(path.join(cluster, 'postmaster.pid'));
    symlinkSync(path.join(elsewhere, 'postmaster.pid'), path.join(cluster, 'postmaster.pid'));
    assert.equal(postmasterOf(cluster), undefined, 'a link is not followed');
    rmSync(path.join(cluster, 'postmaster.pid'));
    assert.equal(
      spawnSync('sh', ['-c', 'mkfifo "$F"'], {
        env: { F: path.join(cluster, 'postmaster.pid'), PATH: '/usr/bin:/bin' },
      }).status,
      0,
    );
    assert.equal(postmasterOf(cluster), undefined);
  });
});
