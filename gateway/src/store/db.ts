// One postgres.js pool per process. Every SQL statement of the gateway lives in store/.
import postgres from 'postgres';

export type Sql = postgres.Sql<Record<string, never>>;

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
 * Sends a cancel request for `query` to the server when `signal` aborts. The cancel travels on a
 * connection of its own, whose failure (the server is gone) is of no interest: the query itself
 * rejects. postgres.js returns that failure as a promise nobody else awaits (SPEC §7).
 */
export function cancellable<R>(signal: AbortSignal | undefined, query: Promise<R> & { cancel(): unknown }): Promise<R> {
  if (!signal) return query;
  const cancel = () => {
    const sent = query.cancel();
    if (sent instanceof Promise) sent.catch(() => {});
  };
  if (signal.aborted) cancel();
  else signal.addEventListener('abort', cancel, { once: true });
  return query;
}
