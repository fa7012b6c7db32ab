// SPEC §7 shutdown drain, on the injected clock: sockets keep being served until their turn, are
// answered what they sent and closed with 1001, spread over min(5 s, a third of the budget) so that
// agents do not reconnect in one wave; a close handshake ends as soon as the peer replies, so N
// sessions take the spread window plus about a second. Then every writer is flushed, and the last
// usage flush runs. Never takes longer than the budget.
import { CloseCode } from '@agentgate/shared';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import { withTimeout } from '../ops/timeout.js';
import type { AgentConnection } from '../rpc/connection.js';

export interface DrainDeps {
  clock: Clock;
  log: Logger;
  /** The frame writers: resolve when nothing is queued or in flight. */
  writersIdle(): Promise<unknown>;
  /** The coalesced writes (activity, last_used_at, connection times), flushed last. */
  finalFlushes: (() => Promise<void>)[];
}

function sleep(clock: Clock, ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => clock.setTimeout(resolve, ms, 'drain_spread'));
}

export async function drain(conns: AgentConnection[], deps: DrainDeps, timeoutMs: number): Promise<void> {
  const { clock, log } = deps;
  const started = clock.now();
  const spreadMs = Math.min(5000, timeoutMs / 3);
  const perConnMs = Math.max(100, timeoutMs - spreadMs - 2000);
  log.info({ sessions: conns.length, spreadMs }, 'draining');
  await Promise.all(
    conns.map(async (conn, i) => {
      const delay = conns.length > 1 ? (spreadMs * i) / conns.length : 0;
      await sleep(clock, delay);
      const closed = conn.closeWhenAnswered(CloseCode.GoingAway, 'server shutting down', perConnMs - delay);
      // A peer that does not finish the close handshake is cut off within the drain budget.
      const left = Math.max(100, timeoutMs - (clock.now() - started) - 1000);
      await withTimeout(closed, left, clock).catch(() => conn.ws.terminate());
    }),
  );
  const left = () => Math.max(0, timeoutMs - (clock.now() - started) - 500);
  await withTimeout(deps.writersIdle(), left(), clock).catch(() => {
    log.warn('some frames were still waiting for the database at shutdown');
  });
  for (const flush of deps.finalFlushes) await withTimeout(flush(), left(), clock).catch(() => {});
}
