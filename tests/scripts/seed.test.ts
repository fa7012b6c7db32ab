// `agentgate seed` (SPEC §9) through the real CLI: the tokens file matches what is in the database
// and only its owner can read it, agents resolve to their workspace the way the gateway resolves
// them (SPEC §2), the default keys are the ones loadtest sends, and bad arguments are one line on
// stderr with exit code 2.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PREBUILDS_OWNER_ID } from '@agentgate/shared';
import { DEFAULT_METADATA_KEYS, metadataKeyNames } from '../../scripts/src/loadtest/frames.ts';
import { runCli } from '../helpers/cli.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';

interface TokenEntry {
  agentId: string;
  workspaceId: string;
  token: string;
}

function readTokens(file: string): TokenEntry[] {
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  assert.ok(Array.isArray(parsed), 'tokens file is a JSON array');
  return parsed as TokenEntry[];
}

/** The URL's password, to check that it never leaks into output. */
function passwordOf(url: string): string {
  return decodeURIComponent(new URL(url).password);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('agentgate seed', () => {
  let db: TestDatabase;
  let dir: string;

  before(async () => {
    db = await freshDatabase();
    dir = mkdtempSync(path.join(tmpdir(), 'agentgate-seed-test-'));
  });
  after(async () => {
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('writes N tokens that resolve to their agent and workspace, with K keys and the prebuild share', async () => {
    const out = path.join(dir, 'first.json');
    const n = 45;
    const k = 3;
    const r = await runCli([
      'seed',
      '--database-url',
      db.url,
      '--agents',
      String(n),
      '--metadata-keys',
      String(k),
      '--prebuild-fraction',
      '0.2',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, `seed failed: ${r.stderr}`);
    const pw = passwordOf(db.url);
    assert.ok(!r.stdout.includes(pw) && !r.stderr.includes(pw), 'the database password is never printed');

    const tokens = readTokens(out);
    assert.equal(tokens.length, n);
    for (const t of tokens) {
      assert.deepEqual(Object.keys(t).sort(), ['agentId', 'token', 'workspaceId']);
      assert.match(t.agentId, UUID_RE);
      assert.match(t.workspaceId, UUID_RE);
      assert.match(t.token, UUID_RE);
    }
    assert.equal(new Set(tokens.map((t) => t.token)).size, n, 'tokens are unique');
    assert.equal(new Set(tokens.map((t) => t.workspaceId)).size, n, 'one workspace per agent');

    // The gateway's path: token -> agent -> resource -> build (by job) -> workspace (SPEC §2, §3).
    const rows = await db.sql<
      {
        token: string;
        agent_id: string;
        workspace_id: string;
        owner_id: string;
        org_ok: boolean;
        build_ok: boolean;
        latest: boolean;
        agent_deleted: boolean;
        workspace_deleted: boolean;
        dormant: boolean;
      }[]
    >`
      select a.auth_token::text as token, a.id::text as agent_id, w.id::text as workspace_id,
             w.owner_id::text as owner_id, a.deleted as agent_deleted, w.deleted as workspace_deleted,
             w.dormant_at is not null as dormant,
             w.organization_id = t.organization_id as org_ok,
             (b.build_number = 1 and b.transition = 'start' and j.completed_at is not null
               and b.deadline > now() and b.max_deadline = '0001-01-01 00:00:00+00') as build_ok,
             b.build_number = (select max(build_number) from workspace_builds where workspace_id = w.id) as latest
      from workspace_agents a
      join workspace_resources r on r.id = a.resource_id
      join workspace_builds b on b.job_id = r.job_id
      join provisioner_jobs j on j.id = b.job_id
      join workspaces w on w.id = b.workspace_id
      join templates t on t.id = w.template_id
      join users u on u.id = w.owner_id
      where a.auth_token = any(${tokens.map((t) => t.token)}::uuid[])`;
    assert.equal(rows.length, n, 'every token resolves to exactly one agent and workspace');
    const byToken = new Map(rows.map((row) => [row.token, row]));
    for (const t of tokens) {
      const row = byToken.get(t.token);
      assert.ok(row, `token of agent ${t.agentId} is in workspace_agents`);
      assert.equal(row.agent_id, t.agentId);
      assert.equal(row.workspace_id, t.workspaceId);
      assert.equal(row.org_ok, true, 'workspace org is its template org');
      assert.equal(row.build_ok, true, 'one completed start build with a deadline and no max deadline');
      assert.equal(row.latest, true);
      assert.equal(row.agent_deleted || row.workspace_deleted || row.dormant, false);
    }

    const prebuilds = rows.filter((row) => row.owner_id === PREBUILDS_OWNER_ID).length;
    assert.equal(prebuilds, Math.round(0.2 * n), 'round(F*N) workspaces are unclaimed prebuilds');
    const owners = new Map<string, number>();
    for (const row of rows) {
      if (row.owner_id !== PREBUILDS_OWNER_ID) owners.set(row.owner_id, (owners.get(row.owner_id) ?? 0) + 1);
    }
    assert.ok(owners.size >= 2, 'real users own the other workspaces');

    const keys = await db.sql<{ agent_id: string; keys: string[]; bad: number }[]>`
      select workspace_agent_id::text as agent_id, array_agg(key order by key) as keys,
             count(*) filter (where value <> '' or collected_at <> '0001-01-01 00:00:00+00')::int as bad
      from workspace_agent_metadata
      where workspace_agent_id = any(${tokens.map((t) => t.agentId)}::uuid[])
      group by workspace_agent_id`;
    assert.equal(keys.length, n, 'every agent has metadata keys');
    for (const row of keys) {
      assert.deepEqual(row.keys, ['m0', 'm1', 'm2']);
      assert.equal(row.bad, 0, 'declared keys start with no value and an unset collected_at');
    }
  });

  test('runs twice on the same database without collisions', async () => {
    const out1 = path.join(dir, 'a.json');
    const out2 = path.join(dir, 'b.json');
    const [before1] = await db.sql<{ n: number }[]>`select count(*)::int as n from workspace_agents`;
    const r1 = await runCli(['seed', '--database-url', db.url, '--agents', '7', '--out', out1]);
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await runCli(['seed', '--database-url', db.url, '--agents=9', '--metadata-keys=0', `--out=${out2}`]);
    assert.equal(r2.code, 0, r2.stderr);
    const all = [...readTokens(out1), ...readTokens(out2)];
    assert.equal(all.length, 16);
    assert.equal(new Set(all.map((t) => t.token)).size, 16);
    const [after1] = await db.sql<{ n: number }[]>`select count(*)::int as n from workspace_agents`;
    assert.equal(after1!.n - before1!.n, 16);
    const meta = await db.sql<{ agent_id: string; keys: string[] }[]>`
      select workspace_agent_id::text as agent_id, array_agg(key order by key) as keys
      from workspace_agent_metadata
      where workspace_agent_id = any(${all.map((t) => t.agentId)}::uuid[])
      group by workspace_agent_id`;
    // The first run declared the default keys, the very ones loadtest sends by default; the second none.
    assert.equal(DEFAULT_METADATA_KEYS, 4);
    const firstRun = new Set(readTokens(out1).map((t) => t.agentId));
    assert.equal(meta.length, 7);
    for (const row of meta) {
      assert.ok(firstRun.has(row.agent_id));
      assert.deepEqual(row.keys, metadataKeyNames(DEFAULT_METADATA_KEYS));
    }
  });

  test('the tokens file is readable by its owner only (0600), also when it existed world-readable', async () => {
    const fresh = path.join(dir, 'fresh.json');
    const r1 = await runCli(['seed', '--database-url', db.url, '--agents', '2', '--out', fresh]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(statSync(fresh).mode & 0o777, 0o600);

    const old = path.join(dir, 'old.json');
    writeFileSync(old, 'old tokens');
    chmodSync(old, 0o644);
    const r2 = await runCli(['seed', '--database-url', db.url, '--agents', '3', '--out', old]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(statSync(old).mode & 0o777, 0o600);
    assert.equal(readTokens(old).length, 3);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
      'no temporary file is left behind',
    );
  });

  test('bad arguments exit 2 with one line on stderr', async () => {
    const out = path.join(dir, 'never.json');
    const cases: { args: string[]; mentions: string }[] = [
      { args: ['--out', out], mentions: '--agents' },
      { args: ['--agents', '0', '--out', out], mentions: '--agents' },
      { args: ['--agents', 'ten', '--out', out], mentions: '--agents' },
      { args: ['--agents', '1.5', '--out', out], mentions: '--agents' },
      { args: ['--agents', '5', '--metadata-keys', '-1', '--out', out], mentions: '--metadata-keys' },
      { args: ['--agents', '5', '--metadata-keys', 'x', '--out', out], mentions: '--metadata-keys' },
      { args: ['--agents', '5', '--prebuild-fraction', '1.5', '--out', out], mentions: '--prebuild-fraction' },
      { args: ['--agents', '5', '--prebuild-fraction', 'half', '--out', out], mentions: '--prebuild-fraction' },
      { args: ['--agents', '5'], mentions: '--out' },
      { args: ['--agents', '5', '--out', out, '--bogus', '1'], mentions: '--bogus' },
    ];
    const pw = passwordOf(db.url);
    const results = await Promise.all(cases.map((c) => runCli(['seed', '--database-url', db.url, ...c.args])));
    results.forEach((r, i) => {
      const c = cases[i]!;
      const label = c.args.join(' ');
      assert.equal(r.code, 2, `exit code for ${label} (stderr: ${r.stderr})`);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, `one stderr line for ${label}: ${JSON.stringify(r.stderr)}`);
      assert.ok(lines[0]!.includes(c.mentions), `${JSON.stringify(lines[0])} names ${c.mentions}`);
      assert.ok(!r.stderr.includes(pw) && !r.stdout.includes(pw), 'no password in the output');
    });
    assert.throws(() => readFileSync(out), 'nothing is written on bad arguments');

    // A bad URL is named, never echoed (it may hold a password).
    const bad = await runCli(['seed', '--agents', '1', '--out', out], {
      DATABASE_URL: 'mysql://root:hunter2secret@127.0.0.1/x',
    });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr.trim(), /^[^\n]*DATABASE_URL[^\n]*$/);
    assert.ok(!bad.stderr.includes('hunter2secret'));
  });
});
