// Applies migrations.ts in order, all in one transaction (each in a savepoint), recorded in
// agentgate_migrations: a failed migration leaves the schema as it was. A transaction-level advisory
// lock makes concurrent `migrate` runs (replicas starting together) wait, not collide.
import type { Sql } from './db.js';
import { DatabaseUnusableError } from './db-check.js';
import { migrations } from './migrations.js';

const MIGRATION_LOCK = 7_245_001;

export interface MigrateResult {
  applied: string[];
  current: number;
}

/** `upTo`: apply the migrations up to this id only (tests build an older schema with it). */
export async function migrate(
  sql: Sql,
  { upTo = Number.POSITIVE_INFINITY }: { upTo?: number } = {},
): Promise<MigrateResult> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`create table if not exists agentgate_migrations (
      id int primary key, name text not null, applied_at timestamptz not null default now())`;
    const done = new Set((await tx<{ id: number }[]>`select id from agentgate_migrations`).map((r) => r.id));
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.id) || m.id > upTo) continue;
      await tx.savepoint(async (sp) => {
        await sp.unsafe(m.sql);
        await sp`insert into agentgate_migrations (id, name) values (${m.id}, ${m.name})`;
      });
      applied.push(`${m.id}_${m.name}`);
    }
    const current = Math.max(0, ...done, ...migrations.filter((m) => m.id <= upTo).map((m) => m.id));
    return { applied, current };
  });
}

/** For the commands that use the schema without migrating it (`maintain`, `usage`): one line when it is older than this code. */
export async function requireCurrentSchema(sql: Sql): Promise<void> {
  const [t] = await sql<{ exists: boolean }[]>`select to_regclass('agentgate_migrations') is not null as exists`;
  const [v] = t?.exists ? await sql<{ v: number | null }[]>`select max(id) as v from agentgate_migrations` : [];
  const have = v?.v ?? 0;
  const want = migrations.at(-1)?.id ?? 0;
  if (have < want) {
    throw new DatabaseUnusableError(
      `the database schema is at version ${have}, older than this agentgate's (${want}): run \`npx agentgate migrate\` (or start the gateway) first`,
    );
  }
}
