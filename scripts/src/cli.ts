// `npx agentgate <command>` (SPEC §1): the top layer. Each command declares its options as a table
// (gateway/src/options/parse.ts), so `agentgate <command> --help` is generated from what it parses. A
// UsageError is one line on stderr and exit 2, an unreachable database one line and exit 1,
// anything else its stack and exit 1. The environment arrives as a parameter from bin/agentgate.js.
import { type OptionTable, UsageError, usage, wantsHelp } from '@agentgate/gateway/options';

type Main = (argv: string[], env: NodeJS.ProcessEnv) => Promise<number>;

export interface CommandModule {
  options: OptionTable;
  main: Main;
}

export interface Command {
  /** One line for `agentgate --help`. */
  summary: string;
  /** Imported on use: `agentgate seed` loads neither the gateway nor the load generator. */
  load(): Promise<CommandModule>;
}

/** The module of command `name` exports its option table as `<NAME>_OPTIONS`, and its `main`. */
type ModuleOf<N extends string> = Readonly<Record<`${Uppercase<N>}_OPTIONS`, OptionTable>> & { main: Main };

/** Checks, at compile time, that each command's module exports what its name says. */
function table<T extends { [N in keyof T & string]: readonly [summary: string, load: () => Promise<ModuleOf<N>>] }>(
  t: T,
): T {
  return t;
}

/** Every command: its summary and its module. */
const TABLE = table({
  serve: ['run the gateway (what `npm start` runs); every option is also an env var', () => import('./serve.js')],
  migrate: ['apply the database migrations (idempotent)', () => import('./migrate.js')],
  maintain: [
    'run one maintenance pass (partitions, rollup, retention) and print what it did as JSON',
    () => import('./maintain.js'),
  ],
  usage: [
    'the daily rollup as a report: workspaces, reports, bytes and days with usage per template or workspace',
    () => import('./usage.js'),
  ],
  psql: ["a psql session on the embedded database, as the gateway's role", () => import('./psql.js')],
  seed: ['create agents to test with and write their tokens', () => import('./seed.js')],
  loadtest: ['hold N agent sockets, drive stats and metadata, report latency', () => import('./loadtest.js')],
  bench: ['echo server vs gateway cached vs uncached, under the same load', () => import('./bench.js')],
  lifecycle: [
    'data lifecycle figures: migration 5 of N rows, disk, rollup, drop vs DELETE, the stall of frames during a pass',
    () => import('./lifecycle.js'),
  ],
  staleness: [
    'replicas on one database: time from an identity change until the sessions reflect it',
    () => import('./staleness.js'),
  ],
  scrape: [
    'how /metrics holds up with many agent series: scrape time and event-loop delay',
    () => import('./scrape.js'),
  ],
  fuzz: [
    'send N generated frames (bad and good) and check every answer and row against the protocol',
    () => import('./fuzz.js'),
  ],
  openrpc: [
    'print the agent protocol as an OpenRPC document (docs/openrpc.json; prose in docs/protocol.md)',
    () => import('./openrpc.js'),
  ],
  soak: [
    'a long load against a gateway started here: RSS, event-loop delay, acked frames vs rows',
    () => import('./soak.js'),
  ],
  report: [
    'render the JSON report of loadtest, soak or bench as its HTML page or as an SVG of its plots',
    () => import('./report.js'),
  ],
});

export const COMMANDS: Readonly<Record<string, Command>> = Object.fromEntries(
  Object.entries(TABLE).map(([name, [summary, load]]) => [
    name,
    {
      summary,
      load: async (): Promise<CommandModule> => {
        const m = (await load()) as unknown as Record<string, unknown>;
        return { options: m[`${name.toUpperCase()}_OPTIONS`] as OptionTable, main: m['main'] as Main };
      },
    },
  ]),
);

/** `agentgate --help`: the command list. */
export function commandsUsage(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  return [
    'usage: agentgate <command> [options]',
    '',
    'commands:',
    ...names.map((n) => `  ${n.padEnd(width)}${COMMANDS[n]!.summary}`),
    '',
    '`agentgate <command> --help` lists the options of a command; `agentgate --version` the version.',
    '',
  ].join('\n');
}

/** Usage of one command (from its option table), or undefined for an unknown name. */
export async function commandUsage(name: string): Promise<string | undefined> {
  const command = COMMANDS[name];
  if (!command) return undefined;
  return usage(name, (await command.load()).options, { summary: command.summary });
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'CONNECT_TIMEOUT', 'ECONNRESET']);

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(commandsUsage());
    return 2;
  }
  if (name === '--version' || name === '-V') {
    const { VERSION } = await import('@agentgate/gateway/version');
    process.stdout.write(`agentgate ${VERSION}\n`);
    return 0;
  }
  if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    process.stdout.write(commandsUsage());
    return 0;
  }
  const helpFor = name === 'help' ? rest[0]! : wantsHelp(rest) ? name : undefined;
  if (helpFor !== undefined) {
    const text = await commandUsage(helpFor);
    if (text === undefined) return unknownCommand(helpFor);
    process.stdout.write(text);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) return unknownCommand(name);
  try {
    return await (await command.load()).main(rest, env);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`agentgate ${name}: ${err.message}\n`);
      return 2;
    }
    // SPEC §7: a database that cannot be used is one line (cause, masked URL, hint), exit 1.
    if ((err as Error)?.name === 'DatabaseUnusableError') {
      process.stderr.write(`agentgate ${name}: ${(err as Error).message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code === 'string' && UNREACHABLE.has(e.code)) {
      process.stderr.write(`agentgate ${name}: cannot reach the database (${e.code})\n`);
      return 1;
    }
    // An error PostgreSQL reported (a SQLSTATE) is the database's answer, not a bug: one line.
    if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) {
      process.stderr.write(`agentgate ${name}: the database answered: ${e.message.split('\n')[0]} (${e.code})\n`);
      return 1;
    }
    process.stderr.write(`agentgate ${name}: ${e?.stack ?? String(e)}\n`);
    return 1;
  }
}

function unknownCommand(name: string): number {
  process.stderr.write(`agentgate: unknown command ${JSON.stringify(name)}\n${commandsUsage()}`);
  return 2;
}
