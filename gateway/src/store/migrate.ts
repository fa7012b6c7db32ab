// Applies migrations.ts in order, all in one transaction (each in a savepoint), recorded in
// agentgate_migrations: a failed migration leaves the schema as it was. A transaction-level advisory
// lock makes concurrent `migrate` runs (replicas starting together) wait, not collide.
import type { Sql } from './db.js';
import { migrations } from './migrations.js';

const MIGRATION_LOCK = 7_245_001;

export interface MigrateResult {
  applied: string[];
  current: number;
}

export async function migrate(sql: Sql): Promise<MigrateResult> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`create table if not exists agentgate_migrations (
      id int primary key, name text not null, applied_at timestamptz not null default now())`;
    const done = new Set((await tx<{ id: number }[]>`select id from agentgate_migrations`).map((r) => r.id));
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      await tx.savepoint(async (sp) => {
        await sp.unsafe(m.sql);
        await sp`insert into agentgate_migrations (id, name) values (${m.id}, ${m.name})`;
      });
      applied.push(`${m.id}_${m.name}`);
    }
    return { applied, current: migrations.at(-1)?.id ?? 0 };
  });
}
