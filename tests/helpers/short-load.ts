// A short load on a real gateway, so that every series a dashboard reads has samples: agents that
// report stats (with connections and their own metrics) and metadata, and a few refused requests.
import { type AgentClient, RPC_PATH, type Stats } from '@agentgate/shared';
import type { Sql } from '../../gateway/src/store/db.ts';
import { connectAgent } from './agent-socket.ts';
import { createFixture, type DbFixture } from './db-fixtures.ts';
import { httpRequest } from './http.ts';

const KEYS = ['cpu', 'mem'];

/** `n` agents, each in its own workspace, with two declared metadata keys; one organization. */
export async function loadFixtures(sql: Sql, n: number): Promise<DbFixture[]> {
  const first = await createFixture(sql, { metadataKeys: KEYS });
  const rest: DbFixture[] = [];
  for (let i = 1; i < n; i++) rest.push(await createFixture(sql, { orgId: first.orgId, metadataKeys: KEYS }));
  return [first, ...rest];
}

function stats(i: number): Stats {
  return {
    connectionCount: 2,
    connectionsByProto: { ssh: 1, vscode: 1 },
    connectionMedianLatencyMs: 12.5,
    rxPackets: 10 + i,
    rxBytes: 1000 + i,
    txPackets: 20 + i,
    txBytes: 2000 + i,
    sessionCountSsh: 1,
    sessionCountVscode: 1,
    metrics: [{ name: 'load_average', type: 'GAUGE', value: 0.5, labels: [{ name: 'period', value: '1m' }] }],
  };
}

/** One report of each kind from `agent`, awaited (so it is committed). */
async function report(agent: AgentClient, i: number): Promise<void> {
  await agent.updateStats(stats(i));
  const collectedAt = new Date().toISOString();
  await agent.batchUpdateMetadata(KEYS.map((key) => ({ key, result: { collectedAt, age: 1, value: `${key}-${i}` } })));
}

/** Requests the gateway refuses (404 and 401), counted in agentgate_connections_refused_total. */
async function refusals(httpUrl: string): Promise<void> {
  await httpRequest(`${httpUrl}/nope`);
  await httpRequest(`${httpUrl}${RPC_PATH}`, { upgrade: true });
}

export interface RunningLoad {
  /** Rounds done (every agent reported once per round). */
  readonly rounds: number;
  /** Stops the rounds and closes the agents (code 1000). */
  stop(): Promise<void>;
}

/**
 * Connects every fixture's agent and reports in rounds, `gapMs` apart, until stopped (or for
 * `rounds` rounds, then resolves `done`).
 */
export async function startLoad(
  wsUrl: string,
  httpUrl: string,
  fixtures: DbFixture[],
  o: { gapMs?: number; rounds?: number } = {},
): Promise<RunningLoad & { done: Promise<void> }> {
  const agents = await Promise.all(fixtures.map((f) => connectAgent(wsUrl, f.token)));
  let stopped = false;
  let rounds = 0;
  const done = (async () => {
    while (!stopped && (o.rounds === undefined || rounds < o.rounds)) {
      await Promise.all(agents.map((a, i) => report(a, rounds * agents.length + i)));
      await refusals(httpUrl);
      rounds++;
      if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
    }
  })();
  return {
    get rounds() {
      return rounds;
    },
    done,
    async stop() {
      stopped = true;
      await done;
      await Promise.all(agents.map((a) => a.close(1000)));
    },
  };
}
