// What `agentgate staleness` prints: p50/p99/max per kind of change and overall, the idle cost of
// the timers and the statements while changing (embedded database only), and the JSON of --json.
import { cpus } from 'node:os';
import { type ChangeKind, type ChangeResult, type Summary, summarize } from './changes.js';
import type { IdleLoad } from './idle.js';

export interface StalenessConfig {
  replicas: number;
  workers: number;
  agents: number;
  changes: number;
  concurrency: number;
  refreshInterval: number;
}

export interface StalenessRun {
  results: ChangeResult[];
  /** The replicas' statements while changing (embedded database only). */
  counters: { statements: number; workspaceReads: number } | undefined;
  idle: IdleLoad | undefined;
  serverVersion: string;
  tookMs: number;
}

function line(name: string, s: Summary): string {
  const timedOut = s.timedOut ? `  (${s.timedOut} timed out)` : '';
  return `${name.padEnd(8)} ${String(s.count).padStart(6)} ${String(s.p50).padStart(8)} ${String(s.p99).padStart(8)} ${String(s.max).padStart(8)}${timedOut}`;
}

export function formatStaleness(o: StalenessConfig, kinds: ChangeKind[], run: StalenessRun): string {
  const { results, idle, counters } = run;
  const byKind = kinds.map((k) => line(k, summarize(results.filter((r) => r.kind === k))));
  const out = [
    '',
    'staleness: from the change sent until every affected session reflects it (ms)',
    `${'kind'.padEnd(8)} ${'count'.padStart(6)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`,
    ...byKind,
    line('all', summarize(results)),
    '',
  ];
  if (idle) {
    out.push(
      `idle, ${o.replicas * o.agents} sessions at a ${o.refreshInterval / 1000} s refresh interval: ${idle.statementsPerMin} ` +
        `statements/min, of which ${idle.workspaceReadsPerMin} refresh reads/min ` +
        `(${idle.refreshesPerMin} refreshes/min due)`,
    );
  }
  if (counters) {
    out.push(
      `gateway statements while changing: ${counters.statements} (${counters.workspaceReads} workspace reads, ` +
        `${(counters.workspaceReads / Math.max(1, results.length)).toFixed(2)} per change)`,
    );
  }
  out.push(
    `${o.replicas} replica(s) x ${o.workers} worker(s), ${o.agents} agents each, refresh interval ` +
      `${o.refreshInterval / 1000} s; ${cpus().length} cores, Node ${process.version}, PostgreSQL ` +
      `${run.serverVersion}; took ${Math.round(run.tookMs / 1000)} s`,
  );
  return `${out.join('\n')}\n`;
}

export function stalenessJson(o: StalenessConfig, kinds: ChangeKind[], run: StalenessRun): string {
  const { results } = run;
  const byKind = Object.fromEntries(kinds.map((k) => [k, summarize(results.filter((r) => r.kind === k))]));
  const report = {
    config: {
      replicas: o.replicas,
      workers: o.workers,
      agentsPerReplica: o.agents,
      changes: o.changes,
      kinds,
      concurrency: o.concurrency,
      refreshIntervalS: o.refreshInterval / 1000,
    },
    machine: { cores: cpus().length, node: process.version, postgres: run.serverVersion },
    stalenessMs: { overall: summarize(results), byKind },
    ...(run.counters ? { statements: run.counters } : {}),
    ...(run.idle ? { idle: run.idle } : {}),
    changes: results,
  };
  return `${JSON.stringify(report, null, 2)}\n`;
}
