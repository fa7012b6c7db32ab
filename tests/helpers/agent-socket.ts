// Agent connections to the real gateway: an AgentClient that does not reconnect, the lab's raw
// WebSocket that queues every message (for frames the SDK would never send), and JSON-RPC request frames.
import { AgentClient } from '@agentgate/shared';
import { withTimeout } from './wait.ts';

export { RawSocket } from '../../scripts/src/lab/raw-socket.ts';

/** An AgentClient that does not reconnect, connected. */
export async function connectAgent(
  url: string,
  token: string,
  o: { tokenHeader?: 'coder' | 'bearer'; requestTimeoutMs?: number } = {},
): Promise<AgentClient> {
  const c = new AgentClient({ url, token, reconnect: false, requestTimeoutMs: o.requestTimeoutMs ?? 10_000, ...o });
  await c.connect();
  return c;
}

/** The code the client's socket closed with: at once if it is closed, else within `timeoutMs`. */
export function closeCode(c: AgentClient, timeoutMs: number): Promise<number> {
  if (!c.connected) return Promise.resolve(c.lastCloseCode);
  return withTimeout(
    new Promise<number>((resolve) => c.once('close', (code) => resolve(code))),
    timeoutMs,
    'the socket to close',
  );
}

/** A JSON-RPC 2.0 request frame. */
export function rpc(id: unknown, method: string, params?: unknown): Record<string, unknown> {
  const f: Record<string, unknown> = { jsonrpc: '2.0', id, method };
  if (params !== undefined) f['params'] = params;
  return f;
}
