// The well-behaved neighbour of a fuzz run (SPEC §7: bad input never disturbs other sessions): a
// second agent that sends valid UpdateStats one after another, each with its own rx_bytes, until
// stopped. Every one must be acknowledged, and stored once.
import { AgentClient } from '@agentgate/shared';

export interface SteadyResult {
  acked: number;
  /** rx_bytes of every acknowledged frame: 1..acked. */
  ackedRxBytes: number[];
  errors: string[];
}

export interface SteadyAgent {
  /** Stops after the frame in flight is answered. */
  stop(): Promise<SteadyResult>;
}

export async function startSteadyAgent(url: string, token: string, pauseMs = 5): Promise<SteadyAgent> {
  const client = new AgentClient({ url, token, reconnect: false, requestTimeoutMs: 10_000 });
  await client.connect();
  const result: SteadyResult = { acked: 0, ackedRxBytes: [], errors: [] };
  let stopping = false;
  const loop = (async () => {
    for (let n = 1; !stopping; n++) {
      try {
        await client.updateStats({ rxBytes: n, txBytes: n, connectionCount: 0, connectionsByProto: { ssh: 0 } });
        result.acked++;
        result.ackedRxBytes.push(n);
      } catch (e) {
        result.errors.push(`frame ${n}: ${(e as Error).message}`);
        if (result.errors.length >= 10) break;
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      await client.close(1000, 'fuzz over');
      return result;
    },
  };
}
