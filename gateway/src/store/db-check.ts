// SPEC §7 startup: a database that cannot be reached, refuses the credentials, lacks the database,
// or does not speak PostgreSQL's protocol gets one line naming the cause (password masked) and a
// hint, and a non-zero exit within 15 s: never a stack trace, never a busy loop. postgres.js
// reconnects at once, forever, to a server that answers its startup message with anything else
// and closes (measured: 190 connections/s against an HTTP server), so the protocol is probed first
// on a raw socket: an SSLRequest, which every PostgreSQL answers with one byte, 'S' or 'N'.
import net from 'node:net';
import { connect, redactUrl } from './db.js';

/** The database cannot be used: the message is one line for the user (the CLI prints it, exit 1). */
export class DatabaseUnusableError extends Error {
  override name = 'DatabaseUnusableError';
}

/** A startup phase cut short by SIGINT/SIGTERM (SPEC §7): not an error, the process stops. */
export class StartupAborted extends Error {
  override name = 'StartupAborted';
}

const PROBE_TIMEOUT_MS = 5000;
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

function target(url: string): { host: string; port: number; path?: string } {
  const u = new URL(url);
  const socketDir = u.searchParams.get('host');
  const port = Number(u.port || u.searchParams.get('port') || 5432);
  if (socketDir?.startsWith('/')) return { host: socketDir, port, path: `${socketDir}/.s.PGSQL.${port}` };
  return { host: decodeURIComponent(u.hostname).replace(/^\[|\]$/g, '') || 'localhost', port };
}

function where(url: string): string {
  const t = target(url);
  return t.path ?? (t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`);
}

/** One line: what is wrong with the database at `url`, and what to do. */
function unusable(url: string, cause: string, hint: string): DatabaseUnusableError {
  return new DatabaseUnusableError(`cannot use the database ${redactUrl(url)}: ${cause}; ${hint}`);
}

/** A network or PostgreSQL failure of the first connection, as one line; undefined for anything else (a bug). */
export function explainDatabaseError(err: unknown, url: string): DatabaseUnusableError | undefined {
  if (err instanceof DatabaseUnusableError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message.split('\n')[0]! : String(err);
  const at = where(url);
  switch (code) {
    case 'ECONNREFUSED':
      return unusable(url, `nothing listens at ${at} (ECONNREFUSED)`, 'is PostgreSQL running there?');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return unusable(url, `the host ${target(url).host} is not known (${code})`, 'check the host in the URL');
    case 'ECONNRESET':
    case 'EPIPE':
      return unusable(url, `${at} reset the connection (${code})`, 'is it PostgreSQL, and does it accept this client?');
    case 'CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return unusable(url, `no answer from ${at} (${code})`, 'check the host, the port and the network');
    case 'CONNECTION_CLOSED':
    case 'CONNECTION_ENDED':
    case 'CONNECTION_DESTROYED':
      return unusable(url, `${at} closed the connection (${code})`, 'is it PostgreSQL?');
    case '28P01':
      return unusable(url, message, 'check the user and password in the URL');
    case '28000':
      return unusable(url, message, "check the user in the URL and the server's pg_hba.conf");
    case '3D000':
      return unusable(url, message, 'create it (createdb) or fix the database name in the URL');
    case '57P03':
      return unusable(url, message, 'the server is starting or stopping; try again in a moment');
    case '53300':
      return unusable(url, message, "raise the server's max_connections or use fewer gateway processes");
    case '42501':
      return unusable(url, message, 'the user needs to own the database (or its schema) to run the migrations');
  }
  // Any other error the server reported (a SQLSTATE): its message is the cause.
  if (/^[0-9A-Z]{5}$/.test(code)) return unusable(url, `${message} (${code})`, 'see the PostgreSQL server log');
  return undefined;
}

/** Resolves once `signal` aborts (never, without one). */
function aborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (!signal) return;
    const stop = () => reject(new StartupAborted('startup cut short by a signal'));
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
  });
}

/** Whether something PostgreSQL-speaking answers at `url`: its answer to an SSLRequest is 'S' or 'N'. */
function probeProtocol(url: string, signal?: AbortSignal): Promise<void> {
  const t = target(url);
  return new Promise<void>((resolve, reject) => {
    const socket = t.path ? net.connect(t.path) : net.connect(t.port, t.host);
    let received = Buffer.alloc(0);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(new StartupAborted('startup cut short by a signal'));
    const timer = setTimeout(
      () => finish(Object.assign(new Error('no answer'), { code: 'CONNECT_TIMEOUT' })),
      PROBE_TIMEOUT_MS,
    );
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => socket.write(SSL_REQUEST));
    socket.on('error', (err) => finish(err));
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      const first = received[0];
      if (received.length === 1 && (first === 0x53 || first === 0x4e)) return finish(); // 'S' or 'N'
      // An 'E' is an ancient server's error answer to SSLRequest: still PostgreSQL.
      if (first === 0x45 && received.length >= 5) return finish();
      finish(notPostgres(url, received));
    });
    socket.on('end', () => finish(received.length === 0 ? notPostgres(url, received) : undefined));
  });
}

function notPostgres(url: string, answer: Buffer): DatabaseUnusableError {
  const text = answer
    .subarray(0, 60)
    .toString('latin1')
    .split(/\r?\n/)[0]!
    .replace(/[^\x20-\x7e]+/g, ' ')
    .trim();
  const said = answer.length === 0 ? 'closed the connection without an answer' : `answered ${JSON.stringify(text)}`;
  return unusable(url, `${where(url)} does not speak PostgreSQL's protocol (it ${said})`, 'check the port in the URL');
}

/**
 * Checks that the database at `url` can be used, before anything relies on it: the protocol, then
 * one connection with the credentials and a `select 1`. Throws DatabaseUnusableError (one line), or
 * StartupAborted when `signal` aborts first.
 */
export async function checkDatabase(url: string, signal?: AbortSignal): Promise<void> {
  try {
    await probeProtocol(url, signal);
  } catch (err) {
    if (err instanceof StartupAborted) throw err;
    throw explainDatabaseError(err, url) ?? err;
  }
  const sql = connect(url, { max: 1, applicationName: 'agentgate-check', connectTimeoutS: 5 });
  try {
    await Promise.race([sql`select 1`, aborted(signal)]);
  } catch (err) {
    if (err instanceof StartupAborted) throw err;
    throw explainDatabaseError(err, url) ?? err;
  } finally {
    await sql.end({ timeout: 0 }).catch(() => {});
  }
}
