// `agentgate migrate` on an empty database, and the schema it makes checked against the contract of
// SPEC §2 through information_schema / pg_catalog (not by reading migrations.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { connect, type Sql } from '../../gateway/src/store/db.ts';
import { runCli } from '../helpers/cli.ts';
import { serverUrl } from '../helpers/db.ts';

const PREBUILDS_USER_ID = 'c42fdf75-3097-471c-8c33-fb52454d81c0';
const ZERO_TIME = `'0001-01-01 00:00:00+00'`;

// SPEC §2, one column per entry: `name type [null] [= default]` (a column is `not null` unless
// marked `null`). Types are spelled as in the SPEC; TYPES maps them to information_schema.
const CONTRACT: Record<string, string[]> = {
  organizations: ['id uuid', 'name text', 'created_at timestamptz = now()'],
  users: ['id uuid', 'username text', 'deleted boolean = false', 'created_at timestamptz = now()'],
  templates: [
    'id uuid',
    'organization_id uuid',
    'name text',
    'deleted boolean = false',
    'activity_bump bigint = 3600000000000',
    'default_ttl bigint = 0',
    'allow_user_autostop boolean = true',
  ],
  workspaces: [
    'id uuid',
    'owner_id uuid',
    'organization_id uuid',
    'template_id uuid',
    'name text',
    'deleted boolean = false',
    'autostart_schedule text null',
    'ttl bigint null',
    `last_used_at timestamptz = ${ZERO_TIME}`,
    'dormant_at timestamptz null',
    `group_acl jsonb = '{}'`,
    `user_acl jsonb = '{}'`,
    'created_at timestamptz = now()',
    'updated_at timestamptz = now()',
  ],
  provisioner_jobs: ['id uuid', 'completed_at timestamptz null', 'created_at timestamptz = now()'],
  workspace_builds: [
    'id uuid',
    'workspace_id uuid',
    'build_number int',
    'transition text',
    'job_id uuid',
    `deadline timestamptz = ${ZERO_TIME}`,
    `max_deadline timestamptz = ${ZERO_TIME}`,
    'created_at timestamptz = now()',
    'updated_at timestamptz = now()',
  ],
  workspace_resources: ['id uuid', 'job_id uuid', 'name text', 'type text', 'created_at timestamptz = now()'],
  workspace_agents: [
    'id uuid',
    'resource_id uuid',
    'name text',
    'auth_token uuid',
    'deleted boolean = false',
    'first_connected_at timestamptz null',
    'last_connected_at timestamptz null',
    'disconnected_at timestamptz null',
    'created_at timestamptz = now()',
    'updated_at timestamptz = now()',
  ],
  workspace_agent_metadata: [
    'workspace_agent_id uuid',
    'key varchar(127)',
    `display_name text = ''`,
    `script text = ''`,
    `value text = ''`,
    `error text = ''`,
    'timeout bigint = 0',
    'interval bigint = 0',
    `collected_at timestamptz = ${ZERO_TIME}`,
  ],
  workspace_agent_stats: [
    'id uuid',
    'created_at timestamptz',
    'user_id uuid',
    'agent_id uuid',
    'workspace_id uuid',
    'template_id uuid',
    `connections_by_proto jsonb = '{}'`,
    'connection_count bigint = 0',
    'rx_packets bigint = 0',
    'rx_bytes bigint = 0',
    'tx_packets bigint = 0',
    'tx_bytes bigint = 0',
    'connection_median_latency_ms float8 = -1',
    'session_count_vscode bigint = 0',
    'session_count_jetbrains bigint = 0',
    'session_count_reconnecting_pty bigint = 0',
    'session_count_ssh bigint = 0',
    'usage boolean = false',
  ],
  workspace_agent_stats_daily: [
    'day date',
    'agent_id uuid',
    'workspace_id uuid',
    'template_id uuid',
    'user_id uuid',
    'reports bigint',
    'usage_reports bigint',
    'rx_packets bigint',
    'rx_bytes bigint',
    'tx_packets bigint',
    'tx_bytes bigint',
    'connection_count_max bigint',
    'connection_median_latency_ms float8',
    'session_count_vscode_max bigint',
    'session_count_jetbrains_max bigint',
    'session_count_reconnecting_pty_max bigint',
    'session_count_ssh_max bigint',
  ],
};

const TYPES: Record<string, { dataType: string; sqlType: string; maxLength?: number }> = {
  uuid: { dataType: 'uuid', sqlType: 'uuid' },
  text: { dataType: 'text', sqlType: 'text' },
  boolean: { dataType: 'boolean', sqlType: 'boolean' },
  bigint: { dataType: 'bigint', sqlType: 'bigint' },
  int: { dataType: 'integer', sqlType: 'integer' },
  float8: { dataType: 'double precision', sqlType: 'double precision' },
  jsonb: { dataType: 'jsonb', sqlType: 'jsonb' },
  timestamptz: { dataType: 'timestamp with time zone', sqlType: 'timestamptz' },
  date: { dataType: 'date', sqlType: 'date' },
  'varchar(127)': { dataType: 'character varying', sqlType: 'text', maxLength: 127 },
};

interface ContractColumn {
  table: string;
  name: string;
  type: string;
  nullable: boolean;
  default: string | undefined;
}

function contractColumns(): ContractColumn[] {
  return Object.entries(CONTRACT).flatMap(([table, cols]) =>
    cols.map((c) => {
      const [decl, dflt] = c.split(' = ') as [string, string | undefined];
      const [name, type, nullable] = decl.split(' ') as [string, string, string | undefined];
      return { table, name, type, nullable: nullable === 'null', default: dflt };
    }),
  );
}

// Unique keys (primary keys included): table -> sorted column lists.
const UNIQUE: [string, string[]][] = [
  ['organizations', ['id']],
  ['organizations', ['name']],
  ['users', ['id']],
  ['users', ['username']],
  ['templates', ['id']],
  ['workspaces', ['id']],
  ['provisioner_jobs', ['id']],
  ['workspace_builds', ['id']],
  ['workspace_builds', ['build_number', 'workspace_id']],
  ['workspace_resources', ['id']],
  ['workspace_agents', ['id']],
  ['workspace_agents', ['auth_token']],
  ['workspace_agent_metadata', ['key', 'workspace_agent_id']],
  ['workspace_agent_stats', ['created_at', 'id']],
  ['workspace_agent_stats_daily', ['agent_id', 'day']],
];

// Foreign keys: table.column -> referenced table.
const FOREIGN: [string, string, string][] = [
  ['templates', 'organization_id', 'organizations'],
  ['workspaces', 'owner_id', 'users'],
  ['workspaces', 'organization_id', 'organizations'],
  ['workspaces', 'template_id', 'templates'],
  ['workspace_builds', 'workspace_id', 'workspaces'],
  ['workspace_builds', 'job_id', 'provisioner_jobs'],
  ['workspace_resources', 'job_id', 'provisioner_jobs'],
  ['workspace_agents', 'resource_id', 'workspace_resources'],
  ['workspace_agent_metadata', 'workspace_agent_id', 'workspace_agents'],
];

interface InfoColumn {
  table_name: string;
  column_name: string;
  data_type: string;
  is_nullable: 'YES' | 'NO';
  column_default: string | null;
  character_maximum_length: number | null;
  is_identity: 'YES' | 'NO';
  is_generated: string;
}

describe('agentgate migrate on an empty database', () => {
  const name = `m_${randomBytes(6).toString('hex')}`;
  const url = serverUrl().replace(/\/postgres$/, `/${name}`);
  let sql: Sql;
  let columns: InfoColumn[];

  before(async () => {
    const admin = connect(serverUrl(), { max: 1 });
    await admin.unsafe(`create database ${name}`);
    await admin.end();
    sql = connect(url, { max: 2 });
  });
  after(async () => {
    await sql?.end({ timeout: 5 });
    const admin = connect(serverUrl(), { max: 1 });
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });

  test('applies the migrations once, then says the schema is up to date', async () => {
    const pw = decodeURIComponent(new URL(url).password);
    const first = await runCli(['migrate', '--database-url', url]);
    assert.equal(first.code, 0, `first migrate failed: ${first.stderr}`);
    assert.match(first.stdout, /applied/i);
    const second = await runCli(['migrate', `--database-url=${url}`]);
    assert.equal(second.code, 0, `second migrate failed: ${second.stderr}`);
    assert.match(second.stdout, /up to date/i);
    assert.doesNotMatch(second.stdout, /applied \d/i);
    for (const r of [first, second]) {
      assert.ok(!r.stdout.includes(pw) && !r.stderr.includes(pw), 'the database password is never printed');
    }
    columns = await sql<InfoColumn[]>`
      select table_name::text, column_name::text, data_type::text, is_nullable::text, column_default::text,
             character_maximum_length::int, is_identity::text, is_generated::text
      from information_schema.columns where table_schema = 'public'`;
  });

  test('every table and column of SPEC §2 exists with its type, nullability and default', async () => {
    assert.ok(columns, 'migrate ran');
    const byKey = new Map(columns.map((c) => [`${c.table_name}.${c.column_name}`, c]));
    for (const want of contractColumns()) {
      const key = `${want.table}.${want.name}`;
      const got = byKey.get(key);
      assert.ok(got, `${key} exists`);
      const type = TYPES[want.type];
      assert.ok(type, `known type ${want.type}`);
      assert.equal(got.data_type, type.dataType, `${key} type`);
      if (type.maxLength !== undefined) assert.equal(got.character_maximum_length, type.maxLength, `${key} length`);
      assert.equal(got.is_nullable, want.nullable ? 'YES' : 'NO', `${key} nullability`);
      if (want.default !== undefined) {
        assert.ok(got.column_default !== null, `${key} has a default`);
        // Compare by value, in one statement (so now() = now()), not by the text PostgreSQL prints.
        const [row] = await sql.unsafe<{ same: boolean }[]>(
          `select (${got.column_default})::${type.sqlType} is not distinct from (${want.default})::${type.sqlType} as same`,
        );
        assert.equal(row?.same, true, `${key} default is ${want.default}, not ${got.column_default}`);
      }
    }
  });

  test('columns added beyond the contract have a default', () => {
    assert.ok(columns, 'migrate ran');
    const contract = new Set(contractColumns().map((c) => `${c.table}.${c.name}`));
    for (const c of columns) {
      if (!(c.table_name in CONTRACT) || contract.has(`${c.table_name}.${c.column_name}`)) continue;
      const insertable =
        c.is_nullable === 'YES' || c.column_default !== null || c.is_identity === 'YES' || c.is_generated === 'ALWAYS';
      assert.ok(insertable, `added column ${c.table_name}.${c.column_name} needs a default`);
    }
  });

  test('keys: primary, unique and foreign keys of SPEC §2; none on workspace_agent_stats', async () => {
    const uniques = await sql<{ tbl: string; cols: string[] }[]>`
      select i.indrelid::regclass::text as tbl,
             array(select a.attname::text from pg_attribute a
                   where a.attrelid = i.indrelid and a.attnum = any(i.indkey) order by a.attname) as cols
      from pg_index i join pg_class c on c.oid = i.indrelid
      where i.indisunique and i.indpred is null and c.relnamespace = 'public'::regnamespace`;
    const have = new Set(uniques.map((u) => `${u.tbl}(${u.cols.join(',')})`));
    for (const [tbl, cols] of UNIQUE) assert.ok(have.has(`${tbl}(${cols.join(',')})`), `unique ${tbl}(${cols})`);

    const fks = await sql<{ tbl: string; ref: string; cols: string[] }[]>`
      select c.conrelid::regclass::text as tbl, c.confrelid::regclass::text as ref,
             array(select a.attname::text from pg_attribute a
                   where a.attrelid = c.conrelid and a.attnum = any(c.conkey) order by a.attname) as cols
      from pg_constraint c where c.contype = 'f' and c.connamespace = 'public'::regnamespace`;
    const fk = new Set(fks.map((f) => `${f.tbl}.${f.cols.join(',')}->${f.ref}`));
    for (const [tbl, col, ref] of FOREIGN)
      assert.ok(fk.has(`${tbl}.${col}->${ref}`), `${tbl}.${col} references ${ref}`);
    assert.deepEqual(
      fks.filter((f) => f.tbl === 'workspace_agent_stats'),
      [],
      'workspace_agent_stats has no foreign keys',
    );
  });

  test('the prebuilds user exists, the view expands workspaces, transition is checked', async () => {
    const [prebuilds] = await sql<{ username: string; deleted: boolean }[]>`
      select username, deleted from users where id = ${PREBUILDS_USER_ID}`;
    assert.deepEqual(prebuilds, { username: 'prebuilds', deleted: false });

    const viewCols = new Set(columns.filter((c) => c.table_name === 'workspaces_expanded').map((c) => c.column_name));
    for (const c of [...CONTRACT['workspaces']!.map((d) => d.split(' ')[0]!), 'owner_username', 'template_name']) {
      assert.ok(viewCols.has(c), `workspaces_expanded.${c}`);
    }

    // Insert with only contract columns (SPEC §2: provisioning systems do exactly this).
    const [org, user, tpl, ws, job] = Array.from({ length: 5 }, () => crypto.randomUUID());
    await sql`insert into organizations (id, name) values (${org!}, 'o')`;
    await sql`insert into users (id, username) values (${user!}, 'alice')`;
    await sql`insert into templates (id, organization_id, name) values (${tpl!}, ${org!}, 'tpl')`;
    await sql`insert into workspaces (id, owner_id, organization_id, template_id, name)
              values (${ws!}, ${user!}, ${org!}, ${tpl!}, 'ws')`;
    await sql`insert into provisioner_jobs (id) values (${job!})`;
    const [row] = await sql<{ owner_username: string; template_name: string; unset: boolean }[]>`
      select owner_username, template_name, last_used_at = ${sql.unsafe(ZERO_TIME)}::timestamptz as unset
      from workspaces_expanded where id = ${ws!}`;
    assert.deepEqual(row, { owner_username: 'alice', template_name: 'tpl', unset: true });

    await assert.rejects(
      sql`insert into workspace_builds (id, workspace_id, build_number, transition, job_id)
          values (${crypto.randomUUID()}, ${ws!}, 1, 'pause', ${job!})`,
      (e: { code?: string }) => e.code === '23514',
      'transition outside start/stop/delete is rejected by a check',
    );
    await sql`insert into workspace_builds (id, workspace_id, build_number, transition, job_id)
              values (${crypto.randomUUID()}, ${ws!}, 1, 'start', ${job!})`;
  });
});
