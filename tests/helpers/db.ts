// Each test file gets its own database cloned from the migrated template that tests/run.ts made.
import { randomBytes } from 'node:crypto';
import { connect, type Sql } from '../../gateway/src/store/db.ts';

export interface TestDatabase {
  url: string;
  sql: Sql;
  drop(): Promise<void>;
}

function baseUrl(): string {
  const url = process.env['AGENTGATE_TEST_PG_URL'];
  if (!url) throw new Error('AGENTGATE_TEST_PG_URL is not set: run the tests with `npm test` (tests/run.ts)');
  return url;
}

export async function freshDatabase(): Promise<TestDatabase> {
  const admin = connect(baseUrl(), { max: 1 });
  const name = `t_${randomBytes(6).toString('hex')}`;
  const template = process.env['AGENTGATE_TEST_TEMPLATE_DB'] ?? 'agentgate_template';
  // Cloning takes a lock on the template; parallel files may collide briefly, so retry.
  for (let i = 0; ; i++) {
    try {
      await admin.unsafe(`create database ${name} template ${template}`);
      break;
    } catch (e) {
      if (i >= 50 || !String((e as Error).message).includes('being accessed')) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await admin.end();
  const url = baseUrl().replace(/\/postgres$/, `/${name}`);
  const sql = connect(url, { max: 4 });
  return {
    url,
    sql,
    async drop() {
      await sql.end({ timeout: 5 });
      const a = connect(baseUrl(), { max: 1 });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

/** The server URL without a database, for tests that make their own. */
export function serverUrl(): string {
  return baseUrl();
}
