// SPEC §7: "The gateway connects as a non-superuser role that owns its database (migrations
// included); only the embedded cluster's own management uses the superuser." A compromise of the
// gateway's database connection must not become the `postgres` OS user (COPY ... TO PROGRAM). A
// cluster made by an older agentgate (the gateway's tables in database `postgres`, owned by the
// superuser) keeps its rows and is handed to the role on its next start.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { connect } from '../../gateway/src/store/db.ts';
import { connectAgent } from '../helpers/agent-socket.ts';
import { runCli } from '../helpers/cli.ts';
import { embeddedWorkDir, listening, olderAgentgateCluster, type Served, serveEmbedded } from '../helpers/embedded.ts';
import { httpRequest } from '../helpers/http.ts';

const side = (pgdata: string, ext: string) => readFileSync(`${pgdata}.${ext}`, 'utf8').trim();
const urlOf = (pgdata: string, role: string, secret: string, db: string) =>
  `postgres://${role}:${encodeURIComponent(side(pgdata, secret))}@127.0.0.1:${side(pgdata, 'port')}/${db}`;
const superuserUrl = (pgdata: string, db = 'postgres') => urlOf(pgdata, 'postgres', 'secret', db);
const gatewayUrl = (pgdata: string) => urlOf(pgdata, 'agentgate', 'agentgate.secret', 'agentgate');

interface Seen {
  /** The roles of the gateway's own connections (pg_stat_activity, application agentgate*). */
  gatewayRoles: string[];
  role: {
    rolsuper: boolean;
    rolcreaterole: boolean;
    rolcreatedb: boolean;
    rolreplication: boolean;
    rolbypassrls: boolean;
  };
  databases: Record<string, string>;
  /** Owners of the relations and functions in database `agentgate` (its schema `public` is the database owner's). */
  owners: string[];
}

async function look(pgdata: string): Promise<Seen> {
  const su = connect(superuserUrl(pgdata), { max: 1, applicationName: 'test' });
  const inDb = connect(superuserUrl(pgdata, 'agentgate'), { max: 1, applicationName: 'test' });
  try {
    const activity = await su<{ usename: string }[]>`
      select distinct usename from pg_stat_activity where application_name like 'agentgate%'`;
    const [role] = await su<Seen['role'][]>`
      select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls from pg_roles where rolname = 'agentgate'`;
    const dbs = await su<{ datname: string; owner: string }[]>`
      select datname, pg_get_userbyid(datdba) as owner from pg_database where not datistemplate`;
    const owners = await inDb<{ owner: string }[]>`
      select distinct owner from (
        select pg_get_userbyid(c.relowner) as owner from pg_class c
          join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'
        union all
        select pg_get_userbyid(p.proowner) from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public') o`;
    return {
      gatewayRoles: activity.map((r) => r.usename).sort(),
      role: { ...role! },
      databases: Object.fromEntries(dbs.map((d) => [d.datname, d.owner])),
      owners: owners.map((o) => o.owner).sort(),
    };
  } finally {
    await su.end({ timeout: 5 });
    await inDb.end({ timeout: 5 });
  }
}

const NO_POWERS = {
  rolsuper: false,
  rolcreaterole: false,
  rolcreatedb: false,
  rolreplication: false,
  rolbypassrls: false,
};

describe('the gateway’s own role in the embedded PostgreSQL', () => {
  const dirs: { dir: ReturnType<typeof embeddedWorkDir>; started: Served[] }[] = [];
  const fresh = () => {
    const d = { dir: embeddedWorkDir('agentgate-embedded-role-'), started: [] as Served[] };
    dirs.push(d);
    return { ...d.dir, pgdata: path.join(d.dir.dataDir, 'pgdata'), started: d.started };
  };
  afterEach(async () => {
    for (const d of dirs.splice(0)) await d.dir.cleanup(d.started);
  });

  test('a new cluster: the gateway and migrate connect as `agentgate`, which owns its database and may not run programs', async () => {
    const { dataDir, pgdata, started } = fresh();
    const gw = serveEmbedded(dataDir);
    started.push(gw);
    const http = await listening(gw);
    const startedLine = gw.out.find((l) => l.includes('"embedded PostgreSQL started"'));
    assert.ok(startedLine);
    const entry = JSON.parse(startedLine) as Record<string, unknown>;
    assert.equal(entry['pid'], gw.child.pid, '`pid` is the gateway’s, once');
    assert.equal(typeof entry['postmasterPid'], 'number');
    assert.match(String(entry['database']), /^postgres:\/\/agentgate:\*\*\*@127\.0\.0\.1:\d+\/agentgate$/);

    const seen = await look(pgdata);
    assert.deepEqual(seen.gatewayRoles, ['agentgate'], 'every connection of the gateway is the role’s');
    assert.deepEqual(seen.role, NO_POWERS);
    assert.equal(seen.databases['agentgate'], 'agentgate');
    assert.equal(seen.databases['postgres'], 'postgres', 'the management database stays the superuser’s');
    assert.deepEqual(seen.owners, ['agentgate'], 'the role migrated: it owns every table and function');

    const role = connect(gatewayUrl(pgdata), { max: 1 });
    try {
      await assert.rejects(
        role.unsafe(`copy (select 1) to program 'true'`),
        (e: { code?: string }) => e.code === '42501',
      );
      await assert.rejects(role.unsafe('create role intruder'), (e: { code?: string }) => e.code === '42501');
      await assert.rejects(role.unsafe('alter role agentgate superuser'), (e: { code?: string }) => e.code === '42501');
    } finally {
      await role.end({ timeout: 5 });
    }

    const migrate = await runCli(['migrate', '--data-dir', dataDir]);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /up to date/);
    assert.equal((await httpRequest(`${http}/readyz`)).status, 200);
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0);
  });

  test('a cluster of an older agentgate keeps its rows and is handed to the role', async () => {
    const { work, dataDir, pgdata, started } = fresh();
    const tokensFile = path.join(work, 'tokens.json');
    await olderAgentgateCluster(pgdata, async (url) => {
      const r = await runCli(['seed', '--database-url', url, '--agents', '5', '--out', tokensFile]);
      assert.equal(r.code, 0, r.stderr);
    });
    const tokens = JSON.parse(readFileSync(tokensFile, 'utf8')) as { token: string }[];

    const gw = serveEmbedded(dataDir);
    started.push(gw);
    const http = await listening(gw);
    assert.ok(!gw.out.some((l) => l.includes('"migrations applied"')), 'the kept schema was already migrated');
    const seen = await look(pgdata);
    assert.deepEqual(seen.gatewayRoles, ['agentgate']);
    assert.deepEqual(seen.role, NO_POWERS);
    assert.equal(seen.databases['agentgate'], 'agentgate', 'the old database, renamed, is the role’s');
    assert.equal(seen.databases['postgres'], 'postgres', 'a new, empty management database');
    assert.deepEqual(seen.owners, ['agentgate'], 'every object of the gateway passed to the role');

    // The old rows are there and the role writes beside them: an agent seeded before authenticates.
    const ws = `${http.replace(/^http:/, 'ws:')}/api/v2/workspaceagents/me/rpc`;
    const agent = await connectAgent(ws, tokens[0]!.token);
    try {
      await agent.updateStats({ rxBytes: 1 });
    } finally {
      await agent.close();
    }
    const role = connect(gatewayUrl(pgdata), { max: 1 });
    const su = connect(superuserUrl(pgdata), { max: 1 });
    try {
      const [n] = await role<{ n: number }[]>`select count(*)::int as n from workspaces`;
      assert.equal(n!.n, 5);
      const [old] = await su<{ found: boolean }[]>`select to_regclass('public.workspaces') is not null as found`;
      assert.equal(old!.found, false, 'nothing of the gateway is left in database `postgres`');
    } finally {
      await role.end({ timeout: 5 });
      await su.end({ timeout: 5 });
    }
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0);

    // The next start finds it done; migrate and seed run as the role.
    const migrate = await runCli(['migrate', '--data-dir', dataDir]);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /up to date/);
    const seed = await runCli(['seed', '--data-dir', dataDir, '--agents', '2', '--out', tokensFile]);
    assert.equal(seed.code, 0, seed.stderr);
  });
});
