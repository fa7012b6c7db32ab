// `npx agentgate <command>` (SPEC §1). Each command returns its exit code; errors a user can fix
// are one line on stderr with exit code 2.
import { ConfigError, parseFlags } from './config.js';
import { DataDirBusyError, resolveDatabase } from './ops/embedded-postgres.js';
import { connect } from './store/db.js';
import { migrate } from './store/migrate.js';

const USAGE = `usage: agentgate <command> [options]

commands:
  serve      run the gateway (see README for options; every option is also an env var)
  migrate    apply database migrations   [--database-url URL]
  seed       create agents to test with  --agents N [--metadata-keys K] [--prebuild-fraction F] --out FILE
  loadtest   drive agent sockets         --url WS_URL (--tokens FILE | --database-url URL --agents N)
                                         [--duration 60s] [--stats-interval 1s] [--metadata-interval 1s]
                                         [--metadata-keys K] [--procs P] [--rate R | --inflight W]
                                         [--ramp CONN_PER_S] [--request-timeout 30s] [--json FILE]
  bench      echo vs cached vs uncached  [--agents N] [--duration D] [--warmup D] [--json FILE]
                                         [--idle-sessions N] [--rate R] [--runs echo,cached,uncached]

Every serve option is also an environment variable; see README.md.
`;

type Command = (argv: string[]) => Promise<number>;

// seed, loadtest and bench live in the scripts workspace; a variable specifier keeps the
// type-checker from needing a circular project reference.
const scriptsModule = (name: string): Promise<{ main: Command }> => import(`@agentgate/scripts/${name}` as string);

const commands: Record<string, Command> = {
  serve: async (argv) => (await import('./serve.js')).serveMain(argv),
  migrate: migrateMain,
  seed: async (argv) => (await scriptsModule('seed')).main(argv),
  loadtest: async (argv) => (await scriptsModule('loadtest')).main(argv),
  bench: async (argv) => (await scriptsModule('bench')).main(argv),
};

async function migrateMain(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, ['--database-url', '--data-dir']);
  const db = await resolveDatabase({
    databaseUrl: flags.get('--database-url') ?? process.env['DATABASE_URL'],
    dataDir: `${flags.get('--data-dir') ?? process.env['AGENTGATE_DATA_DIR'] ?? '.agentgate'}/pgdata`,
  });
  const sql = connect(db.url, { max: 1 });
  try {
    const r = await migrate(sql);
    console.log(
      r.applied.length
        ? `applied ${r.applied.length} migration(s): ${r.applied.join(', ')}; schema is at version ${r.current}`
        : `schema is up to date at version ${r.current}`,
    );
    return 0;
  } finally {
    await sql.end({ timeout: 5 });
    await db.stop();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (cmd && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!cmd) {
    process.stderr.write(`agentgate: unknown command ${JSON.stringify(name)}\n${USAGE}`);
    return 2;
  }
  try {
    return await cmd(rest);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof DataDirBusyError || (err as { userError?: boolean }).userError) {
      process.stderr.write(`agentgate ${name}: ${(err as Error).message}\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'CONNECT_TIMEOUT') {
      process.stderr.write(`agentgate ${name}: cannot reach the database (${e.code})\n`);
      return 1;
    }
    process.stderr.write(`agentgate ${name}: ${e.stack ?? String(e)}\n`);
    return 1;
  }
}
