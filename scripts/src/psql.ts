// `npx agentgate psql` (SPEC §1): a psql session on the embedded database, as the gateway's own role
// — the one a running `npm start` owns, or one started for the session and stopped after it. The
// password travels in PGPASSWORD (psql's environment), never on a command line or a terminal.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { DATABASE_OPTIONS } from '@agentgate/gateway/config';
import { resolveDatabase } from '@agentgate/gateway/embedded';
import { type OptionTable, parse, UsageError } from '@agentgate/gateway/options';

export const PSQL_OPTIONS = {
  dataDir: DATABASE_OPTIONS.dataDir,
  command: {
    flag: '--command',
    kind: 'string',
    arg: 'SQL',
    defaultHelp: 'none (an interactive session)',
    help: "one statement to run, as psql's --command, then exit",
  },
} as const satisfies OptionTable;

/** `agentgate psql ...`; returns psql's exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parse(PSQL_OPTIONS, argv, env);
  const db = await resolveDatabase({ dataDir: path.join(args.dataDir, 'pgdata') });
  try {
    const u = new URL(db.url);
    const psqlArgs = ['--host', u.hostname, '--port', u.port, '--username', decodeURIComponent(u.username)];
    psqlArgs.push('--dbname', u.pathname.slice(1));
    if (args.command !== undefined) psqlArgs.push('--command', args.command);
    const psqlEnv = { ...env, PGPASSWORD: decodeURIComponent(u.password) };
    // Ctrl-C belongs to psql (it cancels the statement): this process stays to stop what it started.
    const ignore = () => {};
    process.on('SIGINT', ignore);
    return await new Promise<number>((resolve, reject) => {
      const child = spawn('psql', psqlArgs, { stdio: 'inherit', env: psqlEnv });
      child.on('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'ENOENT' ? new UsageError('psql is not installed (apt-get install postgresql-client)') : e),
      );
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    }).finally(() => process.off('SIGINT', ignore));
  } finally {
    await db.stop();
  }
}
