// The gateway's own role in the embedded cluster (SPEC §7: "The gateway connects as a non-superuser
// role that owns its database (migrations included); only the embedded cluster's own management
// uses the superuser"): role `agentgate` (LOGIN, no other attribute) owning database `agentgate`.
// Run by the superuser on every start, before anyone else may connect; idempotent, and a start cut
// short anywhere is finished by the next one.
//
// A cluster made by an older agentgate kept the gateway's tables, owned by the superuser, in
// database `postgres`. That database is renamed `agentgate` (its rows stay where they are), a new
// empty `postgres` is made for management, and every object the superuser owned in the renamed
// database passes to the role, in one transaction with the database itself.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import postgres from 'postgres';

export const GATEWAY_ROLE = 'agentgate';
export const GATEWAY_DATABASE = 'agentgate';
/** The database the superuser manages the cluster from (never the gateway's). */
const MANAGEMENT_DATABASE = 'template1';
/** PostgreSQL's own default iteration count for scram-sha-256. */
const SCRAM_ITERATIONS = 4096;

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677), made here so that
 * the password itself is never sent, nor can it appear in a server log. `password` is ASCII: no
 * SASLprep needed.
 */
function scramVerifier(password: string): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const b64 = (b: Buffer) => b.toString('base64');
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

/** A superuser session on `database`; search_path pinned so that no object of the role is ever resolved. */
function superuserOn(adminUrl: string, database: string) {
  const u = new URL(adminUrl);
  u.pathname = `/${database}`;
  return postgres(u.toString(), {
    max: 1,
    connect_timeout: 10,
    idle_timeout: 0,
    onnotice: () => {},
    connection: { application_name: 'agentgate-admin', search_path: 'pg_catalog' },
  });
}

async function withSuperuser<T>(adminUrl: string, database: string, f: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = superuserOn(adminUrl, database);
  try {
    return await f(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Hands every object of the superuser in the current database (outside the system schemas) to the role. */
const HAND_OVER = `
do $$
declare
  su oid := (select oid from pg_catalog.pg_roles where rolname = current_user);
  r record;
begin
  for r in
    select n.nspname from pg_catalog.pg_namespace n
    where n.nspowner = su and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
      and n.nspname !~ '^pg_(toast_)?temp_'
  loop
    execute pg_catalog.format('alter schema %I owner to ${GATEWAY_ROLE}', r.nspname);
  end loop;
  for r in
    select c.oid::pg_catalog.regclass::text as obj, c.relkind from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relowner = su and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
      and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and n.nspname !~ '^pg_(toast_)?temp_'
      -- an extension's objects stay its own; a sequence of a serial or identity column follows its table
      and not exists (select from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        and d.objid = c.oid and (d.deptype = 'e' or (c.relkind = 'S' and d.deptype in ('a', 'i'))))
  loop
    execute pg_catalog.format('alter %s %s owner to ${GATEWAY_ROLE}', case r.relkind when 'S' then 'sequence'
      when 'v' then 'view' when 'm' then 'materialized view' when 'f' then 'foreign table' else 'table' end, r.obj);
  end loop;
  for r in
    select p.oid::pg_catalog.regprocedure::text as obj, p.prokind from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where p.proowner = su and n.nspname not in ('pg_catalog', 'information_schema')
      and not exists (select from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
        and d.objid = p.oid and d.deptype = 'e')
  loop
    execute pg_catalog.format('alter %s %s owner to ${GATEWAY_ROLE}',
      case r.prokind when 'a' then 'aggregate' when 'p' then 'procedure' else 'function' end, r.obj);
  end loop;
  for r in
    select t.oid::pg_catalog.regtype::text as obj from pg_catalog.pg_type t
    join pg_catalog.pg_namespace n on n.oid = t.typnamespace
    where t.typowner = su and n.nspname not in ('pg_catalog', 'information_schema')
      and (t.typtype in ('e', 'd', 'r')
        or (t.typtype = 'c' and (select c.relkind from pg_catalog.pg_class c where c.oid = t.typrelid) = 'c'))
      and not exists (select from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
        and d.objid = t.oid and d.deptype = 'e')
  loop
    execute pg_catalog.format('alter type %s owner to ${GATEWAY_ROLE}', r.obj);
  end loop;
end
$$`;

/**
 * Makes role GATEWAY_ROLE (password `password`, which the state dir keeps) the non-superuser owner
 * of database GATEWAY_DATABASE and of everything in it. `adminUrl` is the superuser's.
 */
export async function provisionGatewayRole(adminUrl: string, password: string): Promise<void> {
  const verifier = scramVerifier(password);
  const owner = await withSuperuser(adminUrl, MANAGEMENT_DATABASE, async (sql) => {
    const [role] = await sql`select 1 from pg_catalog.pg_roles where rolname = ${GATEWAY_ROLE}`;
    if (!role) await sql.unsafe(`create role ${GATEWAY_ROLE}`);
    // Every start: the attributes and the password the state dir holds, whatever happened meanwhile.
    await sql.unsafe(
      `alter role ${GATEWAY_ROLE} with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit connection limit -1 password '${verifier}'`,
    );
    const dbs = new Map(
      (
        await sql<{ datname: string; owner: string }[]>`
          select datname, pg_catalog.pg_get_userbyid(datdba) as owner from pg_catalog.pg_database
          where datname in (${GATEWAY_DATABASE}, 'postgres')`
      ).map((d) => [d.datname, d.owner]),
    );
    if (!dbs.has(GATEWAY_DATABASE)) {
      const legacy =
        dbs.has('postgres') &&
        (await withSuperuser(adminUrl, 'postgres', async (pg) => {
          const [t] = await pg`select pg_catalog.to_regclass('public.agentgate_migrations') is not null as found`;
          return Boolean(t?.['found']);
        }));
      if (legacy) {
        await sql.unsafe(`alter database postgres rename to ${GATEWAY_DATABASE}`);
        dbs.set(GATEWAY_DATABASE, String(dbs.get('postgres')));
        dbs.delete('postgres');
      } else {
        await sql.unsafe(`create database ${GATEWAY_DATABASE} owner ${GATEWAY_ROLE} template template0`);
        dbs.set(GATEWAY_DATABASE, GATEWAY_ROLE);
      }
    }
    if (!dbs.has('postgres')) await sql.unsafe('create database postgres template template0');
    return dbs.get(GATEWAY_DATABASE);
  });
  if (owner === GATEWAY_ROLE) return;
  await withSuperuser(adminUrl, GATEWAY_DATABASE, (sql) =>
    sql.begin(async (tx) => {
      await tx.unsafe(HAND_OVER);
      await tx.unsafe(`alter database ${GATEWAY_DATABASE} owner to ${GATEWAY_ROLE}`);
    }),
  );
}
