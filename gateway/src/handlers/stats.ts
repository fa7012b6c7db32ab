// UpdateStats (SPEC §4): one stats row per report, answered after commit; agent metrics exported
// with identity labels; activity (connectionCount > 0) bumps, notifies and marks the workspace used.
import {
  type ParamError,
  STATS_INT_FIELDS,
  type Stats,
  UpdateStatsParams,
  type UpdateStatsResult,
} from '@agentgate/shared';
import type { AgentMetrics } from '../ops/agent-metrics.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { ActivityWriter } from '../store/activity-writer.js';
import type { BatchWriter, WriteDone } from '../store/batch-writer.js';
import { uuidv7 } from '../store/ids.js';
import type { StatsRow } from '../store/store.js';
import { constantResult, type HandlerOutcome, invalidParams, notAuthorized, writeFailed } from './outcome.js';
import { compile, MAX_REPORTED_ERRORS, schemaErrors, storable, toInt } from './params.js';
import type { Handler } from './types.js';

const check = compile(UpdateStatsParams);

export interface StatsDeps {
  writer: BatchWriter<StatsRow>;
  activity: ActivityWriter;
  agentMetrics: AgentMetrics;
  clock: Clock;
  log: Logger;
  reportInterval: string;
}

export function statsHandler(deps: StatsDeps): Handler {
  const intervalOnly = constantResult({ reportInterval: deps.reportInterval } satisfies UpdateStatsResult);
  return (session, params) => {
    const p = params === undefined ? {} : params;
    if (!check.Check(p)) return schemaErrors(check, p);
    const stats = p.stats;
    if (stats === undefined) return intervalOnly;
    const row = statsRow(stats);
    if ('errors' in row) return invalidParams(row.errors);

    const auth = session.authorize();
    const finish = (identity: Awaited<typeof auth>): HandlerOutcome | Promise<HandlerOutcome> => {
      if (identity === null) return notAuthorized;
      const s = session.subject;
      const r = row.row;
      const now = deps.clock.now();
      r.id = uuidv7(now);
      r.createdAt = new Date(now).toISOString();
      r.userId = s.ownerId;
      r.agentId = s.agentId;
      r.workspaceId = s.workspaceId;
      r.templateId = s.templateId;
      const activity = r.connectionCount > 0;
      return new Promise<HandlerOutcome>((resolve) => {
        const reply: WriteDone = (outcome, err) => {
          if (outcome !== 'ok')
            return resolve(writeFailed(deps.log, outcome, err, { method: 'UpdateStats', agentId: s.agentId }));
          if (stats.metrics && stats.metrics.length > 0) {
            deps.agentMetrics.update(
              s.agentId,
              {
                agentName: s.agentName,
                username: identity.ownerUsername,
                workspaceName: identity.name,
                templateName: identity.templateName,
              },
              stats.metrics,
              deps.clock.now(),
            );
          }
          if (activity) {
            deps.activity.record(s.workspaceId, {
              ownerId: s.ownerId,
              autostartSchedule: identity.autostartSchedule,
              prebuild: session.prebuild,
            });
          }
          resolve(intervalOnly);
        };
        deps.writer.submit(r, reply);
      });
    };
    return auth instanceof Promise ? auth.then(finish) : finish(auth);
  };
}

/** Builds the row's measured part; ids and times are filled after authorization. */
function statsRow(stats: Stats): { row: StatsRow } | { errors: ParamError[] } {
  const errors: ParamError[] = [];
  const bad = (path: string) => {
    if (errors.length < MAX_REPORTED_ERRORS) errors.push({ path, message: 'Expected a safe integer' });
  };
  const ints: Record<string, number> = {};
  for (const f of STATS_INT_FIELDS) {
    const n = toInt(stats[f]);
    if (n < 0) bad(`/stats/${f}`);
    ints[f] = n;
  }
  // No prototype: a `__proto__` key is a key like any other.
  const byProto: Record<string, number> = Object.create(null);
  if (stats.connectionsByProto) {
    for (const [proto, v] of Object.entries(stats.connectionsByProto)) {
      const n = toInt(v);
      if (n < 0) bad(`/stats/connectionsByProto/${proto}`);
      byProto[storable(proto)] = n;
    }
  }
  if (errors.length) return { errors };
  const latency = stats.connectionMedianLatencyMs;
  return {
    row: {
      id: '',
      createdAt: '',
      userId: '',
      agentId: '',
      workspaceId: '',
      templateId: '',
      connectionsByProto: JSON.stringify(byProto),
      connectionCount: ints['connectionCount']!,
      rxPackets: ints['rxPackets']!,
      rxBytes: ints['rxBytes']!,
      txPackets: ints['txPackets']!,
      txBytes: ints['txBytes']!,
      connectionMedianLatencyMs: latency === undefined || !Number.isFinite(latency) ? -1 : latency,
      sessionCountVscode: ints['sessionCountVscode']!,
      sessionCountJetbrains: ints['sessionCountJetbrains']!,
      sessionCountReconnectingPty: ints['sessionCountReconnectingPty']!,
      sessionCountSsh: ints['sessionCountSsh']!,
    },
  };
}
