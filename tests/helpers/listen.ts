// PostgreSQL LISTEN on a channel, keeping every NOTIFY payload the gateway sends.
import type { Sql } from '../../gateway/src/store/db.ts';

export interface Listener {
  /** Payloads received so far, parsed as JSON when possible. */
  payloads: unknown[];
  /** The same payloads as sent. */
  raw: string[];
  unlisten(): Promise<void>;
}

/** LISTENs on `channel` (resolves once the LISTEN is active). */
export async function listen(sql: Sql, channel: string): Promise<Listener> {
  const payloads: unknown[] = [];
  const raw: string[] = [];
  const sub = await sql.listen(channel, (p) => {
    raw.push(p);
    try {
      payloads.push(JSON.parse(p));
    } catch {
      payloads.push(p);
    }
  });
  return { payloads, raw, unlisten: () => sub.unlisten() };
}
