// The embedded PostgreSQL's state directory and files (gateway/src/embedded/state.ts, SPEC §7): a state
// dir that is a symlink or writable by others is refused, one of ours is closed to 0700; files are
// made without following links, and an existing one that is not ours or not private is refused.
import assert from 'node:assert/strict';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { readStateFile, secureStateDir, writeStateFile } from '../../gateway/src/embedded/state.ts';
import { UsageError } from '../../gateway/src/ops/usage-error.ts';

const refusedWith = (re: RegExp) => (e: unknown) => e instanceof UsageError && re.test(e.message);

describe('the state directory', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'agentgate-state-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  test('made 0700 when missing; one of ours that others may read is closed', () => {
    const made = path.join(work, 'a', 'state');
    secureStateDir(made);
    assert.equal(statSync(made).mode & 0o777, 0o700);
    const open = path.join(work, 'readable');
    mkdirSync(open);
    chmodSync(open, 0o755);
    secureStateDir(open);
    assert.equal(statSync(open).mode & 0o777, 0o700);
  });

  test('refused: a symlink (its target untouched), or a directory others may write', () => {
    const target = path.join(work, 'target');
    mkdirSync(target);
    chmodSync(target, 0o755);
    const link = path.join(work, 'link');
    symlinkSync(target, link);
    assert.throws(() => secureStateDir(link), refusedWith(/link is a symbolic link/));
    assert.equal(statSync(target).mode & 0o777, 0o755);
    const shared = path.join(work, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o770);
    assert.throws(() => secureStateDir(shared), refusedWith(/has mode 0770 \(writable by others\)/));
    assert.equal(statSync(shared).mode & 0o777, 0o770);
  });
});

describe('state files', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'agentgate-state-files-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  test('written 0600 by a rename: a link in the way is refused and its target untouched', () => {
    const file = path.join(work, 'pgdata.port');
    writeStateFile(file, '5432');
    assert.equal(readFileSync(file, 'utf8'), '5432');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    writeStateFile(file, '5433');
    assert.equal(readFileSync(file, 'utf8'), '5433');
    assert.deepEqual(readdirSync(work), ['pgdata.port'], 'no temp file left');

    const target = path.join(work, 'victim');
    writeFileSync(target, 'keep');
    const linked = path.join(work, 'pgdata.secret');
    symlinkSync(target, linked);
    assert.throws(() => writeStateFile(linked, 'x'), refusedWith(/pgdata\.secret is a symbolic link/));
    assert.throws(() => readStateFile(linked, { secret: true }), refusedWith(/pgdata\.secret is a symbolic link/));
    assert.equal(readFileSync(target, 'utf8'), 'keep');
    assert.ok(lstatSync(linked).isSymbolicLink());
  });

  test('read only when private: a secret others may read, or any file others may write, is refused', () => {
    const secret = path.join(work, 'loose.secret');
    writeFileSync(secret, 'pw');
    chmodSync(secret, 0o644);
    assert.throws(() => readStateFile(secret, { secret: true }), refusedWith(/has mode 0644 \(readable by others\)/));
    assert.throws(() => writeStateFile(secret, 'new'), refusedWith(/has mode 0644/));
    assert.equal(readStateFile(secret), 'pw', 'a file that is not a secret may be readable');
    chmodSync(secret, 0o666);
    assert.throws(() => readStateFile(secret), refusedWith(/has mode 0666 \(writable by others\)/));
    assert.equal(readStateFile(path.join(work, 'missing')), undefined);
  });
});
