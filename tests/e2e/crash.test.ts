// SPEC §7 crash: the gateway is SIGKILLed while agents stream frames; every acknowledged frame is
// in the database afterwards (acknowledgement follows commit).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AgentClient } from '@agentgate/shared';
import { connectAgent } from '../helpers/agent-socket.ts';
import { createFixture, type DbFixture } from '../helpers/db-fixtures.ts';
import { countStats } from '../helpers/db-reads.ts';
import { freshDatabase, type TestDatabase } from '../helpers/db.ts';
import { type GatewayProcess, startGateway } from '../helpers/gateway-process.ts';

describe('§7 crash (SIGKILL)', () => {
  let db: TestDatabase;
  let gw: GatewayProcess;

  before(async () => {
    db = await freshDatabase();
    gw = await startGateway({ databaseUrl: db.url, args: ['--session-rate', '100000'] });
  });
  after(async () => {
    await gw?.stop('SIGKILL');
    await db?.drop();
  });

  test('no acknowledged frame is lost', async () => {
    const fixtures: DbFixture[] = [];
    for (let i = 0; i < 10; i++) fixtures.push(await createFixture(db.sql));
    const clients: AgentClient[] = [];
    for (const f of fixtures) clients.push(await connectAgent(gw.url, f.token, { requestTimeoutMs: 5000 }));
    const acked = new Map<string, number>(fixtures.map((f) => [f.agentId, 0]));
    let stop = false;
    const loops = clients.flatMap((c, i) =>
      Array.from({ length: 8 }, async () => {
        const agentId = fixtures[i]!.agentId;
        for (let n = 0; !stop && n < 100_000; n++) {
          try {
            await c.updateStats({ rxBytes: n, connectionCount: 0 });
            acked.set(agentId, acked.get(agentId)! + 1);
          } catch {
            return; // the socket died with the process
          }
        }
      }),
    );
    // Let frames flow, then kill the process without warning.
    await new Promise((r) => setTimeout(r, 1500));
    const total = () => [...acked.values()].reduce((a, b) => a + b, 0);
    assert.ok(total() > 100, `only ${total()} frames acknowledged before the kill`);
    const killed = gw.stop('SIGKILL');
    stop = true;
    await Promise.all(loops);
    await killed;
    for (const c of clients) await c.close();
    for (const f of fixtures) {
      const rows = await countStats(db.sql, f.agentId);
      assert.ok(
        rows >= acked.get(f.agentId)!,
        `agent ${f.agentId}: ${acked.get(f.agentId)} acknowledged, ${rows} stored`,
      );
    }
  });
});
