// The gateway's pools and how a statement runs on them. Every SQL statement of the gateway lives in
// store/, as a plain function of a pool and its arguments (SQL as SQL, STYLE: postgres.js); callers
// run it through a Db, which picks the pool, so that no layer of forwarding stands between a
// handler and its statement, and a unit test's fake Db answers each statement by its name.
import postgres from 'postgres';

export type Sql = postgres.Sql<Record<string, never>>;

/** One statement: a function of the pool and its arguments. */
export type Statement<A extends unknown[], R> = (sql: Sql, ...args: A) => R;

export interface Db {
  /**
   * Runs a per-connection lookup (the token check, the slow path) on the lookups' pool, whose
   * named prepared statements have good generic plans.
   */
  query<A extends unknown[], R>(statement: Statement<A, R>, ...args: A): R;
  /**
   * Runs a statement over arrays (group commit, batched refreshes) on the writers' pool, unprepared:
   * PostgreSQL's generic plan for them does not know the array sizes and ran 25x slower here.
   * Separate pools also keep lookups from queueing behind a long batch.
   */
  bulk<A extends unknown[], R>(statement: Statement<A, R>, ...args: A): R;
}

/** The Db of the running gateway. */
export function pgDb(sql: Sql, bulkSql: Sql = sql): Db {
  return {
    query: (statement, ...args) => statement(sql, ...args),
    bulk: (statement, ...args) => statement(bulkSql, ...args),
  };
}

export interface DbOptions {
  max?: number;
  /** Application name shown in pg_stat_activity. */
  applicationName?: string;
  connectTimeoutS?: number;
  /** Use named prepared statements (default true). */
  prepare?: boolean;
  /** Server-side statement_timeout: a statement running longer is aborted by PostgreSQL. */
  statementTimeoutMs?: number;
}

export function connect(url: string, opts: DbOptions = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    connect_timeout: opts.connectTimeoutS ?? 3,
    idle_timeout: 0,
    prepare: opts.prepare ?? true,
    onnotice: () => {},
    connection: {
      application_name: opts.applicationName ?? 'agentgate',
      ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
    },
    // Keep bigint columns as JS numbers: every value the gateway stores is a safe integer.
    types: { bigint: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
    transform: { undefined: null },
  }) as unknown as Sql;
}

/** A `postgres://` URL with its password replaced, safe for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * Sends a cancel request for `query` to the server. The cancel travels on a connection of its own,
 * whose failure (the server is gone) is of no interest: the query itself rejects. Its promise is
 * caught here, or it would reject with nobody listening (SPEC §7; patches/postgres-close-race.mjs
 * makes postgres.js return it).
 */
export function cancel(query: { cancel?(): unknown }): void {
  const sent = query.cancel?.();
  if (sent instanceof Promise) sent.catch(() => {});
}

/** Cancels `query` on the server when `signal` aborts. */
export function cancellable<R>(signal: AbortSignal | undefined, query: Promise<R> & { cancel(): unknown }): Promise<R> {
  if (!signal) return query;
  if (signal.aborted) cancel(query);
  else signal.addEventListener('abort', () => cancel(query), { once: true });
  return query;
}
