// UpdateStats (SPEC §4): one stats row per report, answered after commit; the agent's metrics
// exported with its identity's labels; activity (connectionCount > 0) bumps, notifies and marks the
// workspace used.
import {
  compile,
  formatProtoDuration,
  MAX_REPORTED_ERRORS,
  Methods,
  type ParamError,
  paramErrors,
  STATS_INT_FIELDS,
  type Stats,
  storable,
  toInt,
  UpdateStatsParams,
  type UpdateStatsResult,
} from '@agentgate/shared';
import type { Session } from '../session/session.js';
import { insertStatsBatch, type StatsRow, uuidv7 } from '../store/stats.js';
import { constantResult, invalidParams, notAuthorized, type Outcome, writeFailed } from './outcome.js';
import type { Method, MethodDeps } from './types.js';

const check = compile(UpdateStatsParams);

export function updateStats(deps: MethodDeps): Method {
  const { clock, log, agentMetrics, activity } = deps;
  const writer = deps.writer<StatsRow>('workspace_agent_stats', 2000, (rows) => deps.db.bulk(insertStatsBatch, rows));
  const reportInterval = formatProtoDuration(deps.reportIntervalMs);
  const intervalOnly = constantResult({ reportInterval } satisfies UpdateStatsResult);

  async function handle(session: Session, params: unknown): Promise<Outcome> {
    const p = params === undefined ? {} : params;
    if (!check.Check(p)) return invalidParams(paramErrors(check, p));
    const stats = p.stats;
    // Without stats it only returns the interval: nothing is authorized or written.
    if (stats === undefined) return intervalOnly;
    const row = statsRow(stats);
    if (Array.isArray(row)) return invalidParams(row);
    const identity = await session.authorize();
    if (identity === null) return notAuthorized;
    const s = session.subject;
    const now = clock.now();
    row.id = uuidv7(now);
    row.createdAt = new Date(now).toISOString();
    row.userId = s.ownerId;
    row.agentId = s.agentId;
    row.workspaceId = s.workspaceId;
    row.templateId = s.templateId;
    const written = await writer.write(row);
    if (written !== 'ok') return writeFailed(log, written, { method: Methods.UpdateStats, agentId: s.agentId });
    if (stats.metrics && stats.metrics.length > 0) {
      const labels = {
        agentName: s.agentName,
        username: identity.ownerUsername,
        workspaceName: identity.name,
        templateName: identity.templateName,
      };
      agentMetrics.update(s.agentId, labels, stats.metrics, clock.now());
    }
    if (row.connectionCount > 0) {
      const { ownerId, workspaceId } = s;
      activity.record(workspaceId, {
        ownerId,
        autostartSchedule: identity.autostartSchedule,
        prebuild: session.prebuild,
      });
    }
    return intervalOnly;
  }

  return { name: Methods.UpdateStats, handle, idle: () => writer.idle() };
}

/** The row's measured part (ids and times are filled after authorization), or what is wrong with it. */
function statsRow(stats: Stats): StatsRow | ParamError[] {
  const errors: ParamError[] = [];
  // The answer stays smaller than the request: at most MAX_REPORTED_ERRORS listed (SPEC §4).
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
  if (errors.length) return errors;
  const latency = stats.connectionMedianLatencyMs;
  return {
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
  };
}
