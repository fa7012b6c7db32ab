// The cost of the refresh timers alone: after one refresh interval (the jittered first ticks are
// past), the replicas' statements over a while, counted by pg_stat_statements.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Sql } from '@agentgate/gateway/store/db';
import { readDbCounters, resetStatements, workspaceScans } from '../lab/statements.js';

export interface IdleLoad {
  sessions: number;
  refreshIntervalS: number;
  measuredS: number;
  /** Refreshes the timers make per minute: sessions / interval. */
  refreshesPerMin: number;
  statementsPerMin: number;
  workspaceReadsPerMin: number;
  top: { calls: number; query: string }[];
}

/** Waits `ms`, or less when `signal` aborts (never rejects). */
const abortableSleep = (ms: number, signal: AbortSignal) => sleep(ms, undefined, { signal }).catch(() => {});

export async function measureIdle(
  admin: Sql,
  o: { intervalMs: number; measureMs: number; sessions: number; log: (line: string) => void },
  signal: AbortSignal,
): Promise<IdleLoad> {
  const { intervalMs, measureMs, sessions } = o;
  o.log(`idle: ${intervalMs / 1000} s of warm-up (one refresh interval), then ${measureMs / 1000} s counted ...`);
  await abortableSleep(intervalMs, signal);
  const scans = await workspaceScans(admin);
  await resetStatements(admin);
  const t0 = performance.now();
  await abortableSleep(measureMs, signal);
  const c = await readDbCounters(admin, scans);
  const minutes = (performance.now() - t0) / 60_000;
  const perMin = (n: number) => Math.round((n / minutes) * 10) / 10;
  return {
    sessions,
    refreshIntervalS: intervalMs / 1000,
    measuredS: Math.round(minutes * 60),
    refreshesPerMin: Math.round((sessions / intervalMs) * 60_000 * 10) / 10,
    statementsPerMin: perMin(c.statements),
    workspaceReadsPerMin: perMin(c.workspaceStatements),
    top: c.top.map((t) => ({ calls: t.calls, query: t.query })),
  };
}
