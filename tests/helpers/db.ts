// Each test file gets its own database cloned from the migrated template that tests/run.ts made. The
// clone belongs to the embedded cluster's gateway role (no superuser), as the gateway's database
// does (SPEC §7): `url` is that role's, for the gateways under test; `sql` is the superuser's, for
// fixtures and for what only a superuser may do.
import { randomBytes } from 'node:crypto';
import { connect, type Sql } from '../../gateway/src/store/db.ts';

export interface TestDatabase {
  /** The gateway role's URL of this database. */
  url: string;
  /** A superuser pool on this database. */
  sql: Sql;
  drop(): Promise<void>;
}

function env(name: string): string {
  const url = process.env[name];
  if (!url) throw new Error(`${name} is not set: run the tests with \`npm test\` (tests/run.ts)`);
  return url;
}

const baseUrl = () => env('AGENTGATE_TEST_PG_URL');

function onDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function freshDatabase(): Promise<TestDatabase> {
  const admin = connect(baseUrl(), { max: 1 });
  const name = `t_${randomBytes(6).toString('hex')}`;
  const template = process.env['AGENTGATE_TEST_TEMPLATE_DB'] ?? 'agentgate_template';
  const gateway = env('AGENTGATE_TEST_PG_GATEWAY_URL');
  // Cloning takes a lock on the template; parallel files may collide briefly, so retry.
  for (let i = 0; ; i++) {
    try {
      await admin.unsafe(`create database ${name} template ${template} owner ${new URL(gateway).username}`);
      break;
    } catch (e) {
      if (i >= 50 || !String((e as Error).message).includes('being accessed')) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await admin.end();
  const sql = connect(onDatabase(baseUrl(), name), { max: 4 });
  return {
    url: onDatabase(gateway, name),
    sql,
    async drop() {
      await sql.end({ timeout: 5 });
      const a = connect(baseUrl(), { max: 1 });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

/** The superuser's URL of the server's `postgres` database, for tests that make their own. */
export function serverUrl(): string {
  return baseUrl();
}
