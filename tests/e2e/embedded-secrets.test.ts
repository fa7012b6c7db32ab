// SPEC §7 "Embedded PostgreSQL keeps its password out of world-readable files": scram-sha-256 for
// every connection and every stored password, the password only in the 0700 state directory
// (mode 0600), nothing made in the temp directory while the cluster is created and started, and a
// cluster that an older agentgate left on clear-text `password` authentication is moved to scram.
import assert from 'node:assert/strict';
import {
  existsSync,
  type FSWatcher,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../gateway/src/store/db.ts';
import { embeddedWorkDir, listening, type Served, serveEmbedded } from '../helpers/embedded.ts';

/** Every regular file below `dir`. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

async function authSettings(url: string) {
  const sql = connect(url, { max: 1 });
  try {
    const hba = await sql<
      { auth_method: string; error: string | null }[]
    >`select auth_method, error from pg_hba_file_rules`;
    const roles = await sql<{ rolname: string; scheme: string }[]>`
      select rolname, split_part(rolpassword, '$', 1) as scheme from pg_authid where rolpassword is not null`;
    const [enc] = await sql<{ password_encryption: string }[]>`show password_encryption`;
    return { hba: [...hba], roles: roles.map((r) => ({ ...r })), encryption: enc!.password_encryption };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

describe('the embedded PostgreSQL password', () => {
  let dir: ReturnType<typeof embeddedWorkDir>;
  let tmp: string;
  let watcher: FSWatcher;
  const madeInTmp: string[] = [];
  const started: Served[] = [];

  before(() => {
    dir = embeddedWorkDir('agentgate-embedded-secrets-');
    // The gateway's temp directory (TMPDIR, what os.tmpdir() returns), watched from the start.
    tmp = mkdtempSync(path.join(tmpdir(), 'agentgate-tmpdir-'));
    watcher = watch(tmp, (_event, name) => madeInTmp.push(String(name)));
  });
  after(async () => {
    watcher.close();
    await dir.cleanup(started);
    rmSync(tmp, { recursive: true, force: true });
  });

  test('scram-sha-256 only, the secret only in the 0700 state dir, nothing in the temp dir', async () => {
    const pgdata = path.join(dir.dataDir, 'pgdata');
    const first = serveEmbedded(dir.dataDir, { env: { TMPDIR: tmp } });
    started.push(first);
    await listening(first);

    assert.deepEqual(readdirSync(tmp), [], 'no file left in the temp directory');
    assert.deepEqual(madeInTmp, [], 'no file made in the temp directory, even for a moment');
    const port = Number(readFileSync(`${pgdata}.port`, 'utf8'));
    // PostgreSQL's compiled-in socket directory: the server listens on TCP only.
    assert.ok(!existsSync(`/tmp/.s.PGSQL.${port}`), 'no Unix socket in /tmp');

    assert.equal(statSync(dir.dataDir).mode & 0o777, 0o700, 'the state dir is 0700');
    assert.equal(statSync(`${pgdata}.secret`).mode & 0o777, 0o600, 'the secret is 0600');
    assert.equal(statSync(`${pgdata}.agentgate.secret`).mode & 0o777, 0o600, 'the gateway role’s secret is 0600');
    const password = readFileSync(`${pgdata}.secret`, 'utf8').trim();
    const rolePassword = readFileSync(`${pgdata}.agentgate.secret`, 'utf8').trim();
    assert.ok(password.length >= 20 && rolePassword.length >= 20 && password !== rolePassword);
    const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;

    const auth = await authSettings(url);
    assert.ok(auth.hba.length > 0);
    for (const rule of auth.hba) {
      assert.equal(rule.error, null);
      assert.equal(rule.auth_method, 'scram-sha-256', 'every pg_hba.conf rule asks for scram');
    }
    assert.deepEqual(
      auth.roles.sort((a, b) => a.rolname.localeCompare(b.rolname)),
      [
        { rolname: 'agentgate', scheme: 'SCRAM-SHA-256' },
        { rolname: 'postgres', scheme: 'SCRAM-SHA-256' },
      ],
      'the superuser and the gateway role, both with SCRAM verifiers',
    );
    assert.equal(auth.encryption, 'scram-sha-256');

    const wrong = connect(url.replace(encodeURIComponent(password), 'not-the-password'), { max: 1 });
    await assert.rejects(wrong`select 1`, (e: Error & { code?: string }) => e.code === '28P01');
    await wrong.end({ timeout: 1 });

    // The passwords are in no file of the cluster (initdb was fed one on stdin, the server was sent
    // the other's SCRAM verifier only).
    const cluster = realpathSync(pgdata);
    for (const f of filesUnder(cluster)) {
      const content = readFileSync(f);
      assert.ok(!content.includes(password) && !content.includes(rolePassword), `${f} holds a password`);
    }

    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    assert.deepEqual(readdirSync(tmp), []);

    // A cluster made by an older agentgate, on clear-text `password`: moved to scram on start.
    const hbaFile = path.join(cluster, 'pg_hba.conf');
    writeFileSync(hbaFile, readFileSync(hbaFile, 'utf8').replaceAll('scram-sha-256', 'password'));
    const second = serveEmbedded(dir.dataDir, { env: { TMPDIR: tmp } });
    started.push(second);
    await listening(second);
    const port2 = Number(readFileSync(`${pgdata}.port`, 'utf8'));
    const upgraded = await authSettings(url.replace(`:${port}/`, `:${port2}/`));
    assert.deepEqual(new Set(upgraded.hba.map((r) => r.auth_method)), new Set(['scram-sha-256']));
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
    assert.deepEqual(madeInTmp, []);
  });
});
