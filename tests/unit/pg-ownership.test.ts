// The owner record of an embedded PostgreSQL (gateway/src/ops/pg-ownership.ts): a live owner is
// told apart from a gone one, from a reused PID (another start time) and from a process of another
// PID namespace; only one process can hold the record, and only its holder releases it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { claimOwner, dropOwner, ownerState, readOwner, releaseOwner } from '../../gateway/src/ops/pg-ownership.ts';

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
