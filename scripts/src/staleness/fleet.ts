// The gateways and agents of a staleness run: R replicas (`agentgate serve --workers W`) on one
// database, every replica LISTENing for identity changes, agent i connected to replica i mod R;
// and their cleanup.
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient, ConnectRefusedError } from '@agentgate/shared';
import { metricValue } from '../lab/http.js';
import { type ServerProcess, startGateway } from '../lab/process.js';
import type { SeededAgent } from '../seed.js';
import type { SessionPoller, Target } from './changes.js';

export interface ReplicaOptions {
  replicas: number;
  workers: number;
  refreshInterval: number;
  adminToken: string;
}

/** Runs `fn` over `items` with at most `width` at once. */
export async function pool<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

export class Fleet {
  readonly servers: ServerProcess[] = [];
  readonly clients: AgentClient[] = [];
  poller: SessionPoller | undefined;

  /** Starts the replicas one after another and waits until each LISTENs; returns their http:// URLs. */
  async startReplicas(o: ReplicaOptions, databaseUrl: string): Promise<string[]> {
    for (let r = 0; r < o.replicas; r++) {
      const args = ['--workers', String(o.workers), '--workspace-refresh-interval', `${o.refreshInterval}ms`];
      args.push('--admin-token', o.adminToken, '--shutdown-timeout', '5s');
      this.servers.push(await startGateway({ name: `replica ${r}`, databaseUrl, args }));
    }
    const httpUrls = this.servers.map((s) => s.httpUrl);
    await waitListening(httpUrls);
    return httpUrls;
  }

  /** Connects every agent to its replica (agent i to replica i mod R). */
  async connect(agents: SeededAgent[], signal: AbortSignal): Promise<Target[]> {
    const targets: Target[] = [];
    // Below the gateway's 64 token checks at once (SPEC §3); a 503 is retried.
    await pool(agents, 32, async (a, i) => {
      if (signal.aborted) return;
      const replica = i % this.servers.length;
      const client = new AgentClient({ url: this.servers[replica]!.url, token: a.token, reconnect: false });
      for (let attempt = 1; ; attempt++) {
        try {
          await client.connect();
          break;
        } catch (e) {
          if (!(e instanceof ConnectRefusedError && e.status === 503) || attempt >= 20) throw e;
          await sleep(100 * attempt);
        }
      }
      this.clients.push(client);
      const t: Target = { agentId: a.agentId, workspaceId: a.workspaceId, replica, client };
      client.once('close', (code) => {
        t.closedAt = Date.now();
        t.closeCode = code;
      });
      targets.push(t);
    });
    return targets;
  }

  async close(): Promise<void> {
    this.poller?.stop();
    await Promise.all(this.clients.map((c) => c.close().catch(() => {})));
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}

/** Waits until every replica's LISTEN connection is up (agentgate_identity_listening on /metrics). */
async function waitListening(httpUrls: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const url of httpUrls) {
    for (;;) {
      const text = await fetch(`${url}/metrics`)
        .then((r) => r.text())
        .catch(() => '');
      if ((metricValue(text, 'agentgate_identity_listening') ?? 0) >= 1) break;
      if (Date.now() > deadline) throw new Error(`${url} is not LISTENing for identity changes`);
      await sleep(100);
    }
  }
}
