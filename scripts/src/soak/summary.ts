// What a soak run comes to: the gateway's RSS and event-loop delay over the load, and acknowledged
// frames against what PostgreSQL holds (one stats row per acknowledged UpdateStats; row updates of
// workspace_agent_metadata, K per frame). Printed as lines, and as JSON with --json.
import type { LoadReport } from '../loadtest/run-load.js';
import { formatSummary } from '../loadtest/report.js';
import type { Sample } from './samples.js';
import { withSamples } from '../report/series.js';

export interface SoakConfig {
  agents: number;
  workers: number;
  duration: number;
  statsInterval: number;
  metadataInterval: number;
  metadataKeys: number;
  sampleEvery: number;
}

export interface SoakRun {
  report: LoadReport;
  samples: Sample[];
  /** The samples of the load itself. */
  during: Sample[];
  /** Seconds until every agent was connected, or null. */
  connectS: number | null;
  /** The gateway's connections to PostgreSQL at the end, by application_name. */
  pgConnections: Record<string, number>;
  stored: { stats: number; metadataUpdates: number };
}

const median = (xs: number[]) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const maxOf = (xs: number[]) => (xs.length ? Math.max(...xs) : null);
const mib = (kib: number | null | undefined) => (kib == null ? 'n/a' : `${(kib / 1024).toFixed(1)} MiB`);

function memory(o: SoakConfig, run: SoakRun) {
  const { samples, during } = run;
  const last = during.at(-1);
  const sessions = last?.sessions ?? null;
  const first = samples[0];
  return {
    sessions,
    workerEnd: last?.workerRssKiB ? Object.values(last.workerRssKiB) : [],
    workerIdle: first?.workerRssKiB ? Object.values(first.workerRssKiB) : [],
    perSessionKiB: sessions && last && first ? Math.round(((last.rssKiB - first.rssKiB) / sessions) * 10) / 10 : null,
    rss: {
      idle: first?.rssKiB ?? null,
      minute1: o.duration >= 60_000 ? (during.find((s) => s.t >= 60)?.rssKiB ?? null) : null,
      end: last?.rssKiB ?? null,
      max: maxOf(during.map((s) => s.rssKiB)),
    },
  };
}

function eventLoopDelay(during: Sample[]) {
  const p99s = during.map((s) => s.lagP99Ms).filter((x): x is number => x !== null);
  return {
    p99Median: median(p99s),
    p99Max: maxOf(p99s),
    max: maxOf(during.map((s) => s.lagMaxMs).filter((x): x is number => x !== null)),
  };
}

/**
 * Every frame of the run counts here, not only the measured window's (frames of the cool-down are
 * stored too); frames whose outcome the load generator could not learn may or may not be stored.
 */
function frames(o: SoakConfig, run: SoakRun) {
  const { report, stored } = run;
  const unknown = report.allFrames.unknown;
  const ackedStats = report.allFrames.acked.stats;
  const ackedMetadata = report.allFrames.acked.metadata;
  const statsExtra = stored.stats - ackedStats;
  return {
    unknown,
    ackedStats,
    ackedMetadata,
    statsExtra,
    statsOk: statsExtra >= 0 && statsExtra <= unknown,
    expectedUpdates: ackedMetadata * o.metadataKeys,
  };
}

export type SoakSummary = ReturnType<typeof memory> & {
  lag: ReturnType<typeof eventLoopDelay>;
  frames: ReturnType<typeof frames>;
};

export function summarize(o: SoakConfig, run: SoakRun): SoakSummary {
  return { ...memory(o, run), lag: eventLoopDelay(run.during), frames: frames(o, run) };
}

export function formatSoak(o: SoakConfig, run: SoakRun, s: SoakSummary): string {
  const { report, pgConnections, connectS, stored } = run;
  const { rss, lag, frames: f } = s;
  const pgTotal = Object.values(pgConnections).reduce((a, b) => a + b, 0);
  const lines = [
    '',
    formatSummary(report),
    '',
    `soak: ${o.agents} agents, ${report.durationS.toFixed(0)} s, stats every ${o.statsInterval} ms and metadata every ${o.metadataInterval} ms (${o.metadataKeys} keys)`,
    `connect                ${o.agents} agents in ${connectS === null ? 'n/a' : `${connectS.toFixed(1)} s`}`,
    `gateway RSS            idle ${mib(rss.idle)}, at 1 min ${mib(rss.minute1)}, at the end ${mib(rss.end)}, max ${mib(rss.max)}; ${s.perSessionKiB ?? 'n/a'} KiB per session (${s.sessions ?? 'n/a'} sessions)`,
    ...(o.workers > 1
      ? [
          `worker RSS             at the end ${s.workerEnd.map((k) => mib(k)).join(', ')} (idle ${s.workerIdle.map((k) => mib(k)).join(', ')})`,
        ]
      : []),
    `PostgreSQL connections ${pgTotal} of the gateway at the end (${Object.entries(pgConnections)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')})`,
    `event-loop delay       p99 per ${o.sampleEvery / 1000} s window: median ${lag.p99Median ?? 'n/a'} ms, max ${lag.p99Max ?? 'n/a'} ms; longest ${lag.max ?? 'n/a'} ms`,
    `acked frames           ${f.ackedStats + f.ackedMetadata} in the whole run: ${f.ackedStats} UpdateStats, ${f.ackedMetadata} BatchUpdateMetadata; ${f.unknown} with no known outcome`,
    `stats rows             ${stored.stats} stored for ${f.ackedStats} acknowledged (${f.statsExtra >= 0 ? '+' : ''}${f.statsExtra}): ${f.statsOk ? 'every acknowledged frame stored, nothing else but frames of unknown outcome' : 'MISMATCH'}`,
    `metadata row updates   ${stored.metadataUpdates} counted by PostgreSQL for ${f.ackedMetadata} acknowledged x ${o.metadataKeys} keys = ${f.expectedUpdates} (repeats of a key within one batch are one update)`,
    '',
  ];
  return lines.join('\n');
}

/** The JSON report (--json); `series` is the load's per second with the gateway's samples. */
export function soakReport(o: SoakConfig, run: SoakRun, s: SoakSummary): object {
  const { report, stored } = run;
  const out = {
    agents: o.agents,
    workers: o.workers,
    durationS: report.durationS,
    connectS: run.connectS,
    rssKiB: s.rss,
    rssKiBPerSession: s.perSessionKiB,
    workerRssKiB: { idle: s.workerIdle, end: s.workerEnd },
    pgConnections: run.pgConnections,
    eventLoopDelayMs: s.lag,
    frames: {
      sent: report.sent,
      acked: report.acked,
      ackedStats: s.frames.ackedStats,
      ackedMetadata: s.frames.ackedMetadata,
      errors: report.errors,
      unknownOutcome: s.frames.unknown,
      latencyMs: report.latencyMs,
    },
    stored: { statsRows: stored.stats, metadataRowUpdates: stored.metadataUpdates, metadataKeys: o.metadataKeys },
    statsRowsMatchAcked: s.frames.statsOk,
    samples: run.samples,
    series: withSamples(report.series, run.during),
  };
  return out;
}
