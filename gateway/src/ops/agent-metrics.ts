// Agent-reported metrics on `/metrics` (SPEC §4 UpdateStats step 2): `agentgate_agent_<name>` with
// the identity labels plus the metric's own, value as last reported. A series not reported for two
// report intervals disappears; an identity change drops the agent's series under the old labels.
import type { Metric } from '@agentgate/shared';

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const IDENTITY_LABELS = new Set(['agent_name', 'username', 'workspace_name', 'template_name']);
/** Agent metric names whose exported name is one of the gateway's own series. */
const RESERVED_NAMES = new Set(['metrics_dropped_total']);

export interface AgentLabels {
  agentName: string;
  username: string;
  workspaceName: string;
  templateName: string;
}

interface Series {
  name: string;
  type: 'counter' | 'gauge' | 'untyped';
  labels: string;
  value: number;
  at: number;
}

interface AgentEntry {
  identityKey: string;
  series: Map<string, Series>;
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

export class AgentMetrics {
  private readonly agents = new Map<string, AgentEntry>();

  constructor(
    private readonly expireAfterMs: number,
    private readonly onDropped: (n: number) => void,
  ) {}

  /** Records one report; returns how many metrics were dropped for an invalid name. */
  update(agentId: string, labels: AgentLabels, metrics: Metric[], now: number): number {
    const identityLabels =
      `agent_name="${escapeLabel(labels.agentName)}",username="${escapeLabel(labels.username)}",` +
      `workspace_name="${escapeLabel(labels.workspaceName)}",template_name="${escapeLabel(labels.templateName)}"`;
    let entry = this.agents.get(agentId);
    if (!entry || entry.identityKey !== identityLabels) {
      entry = { identityKey: identityLabels, series: new Map() };
      this.agents.set(agentId, entry);
    }
    let dropped = 0;
    for (const m of metrics) {
      if (!NAME_RE.test(m.name) || RESERVED_NAMES.has(m.name)) {
        dropped++;
        continue;
      }
      let own = '';
      if (m.labels && m.labels.length > 0) {
        // A repeated label name keeps its last value: a series must not carry a name twice.
        const kept = new Map<string, string>();
        for (const l of m.labels) {
          if (LABEL_RE.test(l.name) && !l.name.startsWith('__') && !IDENTITY_LABELS.has(l.name))
            kept.set(l.name, l.value);
        }
        for (const name of [...kept.keys()].sort()) own += `,${name}="${escapeLabel(kept.get(name)!)}"`;
      }
      const name = `agentgate_agent_${m.name}`;
      const key = name + own;
      const type = m.type === 'COUNTER' ? 'counter' : m.type === 'GAUGE' ? 'gauge' : 'untyped';
      entry.series.set(key, { name, type, labels: identityLabels + own, value: m.value, at: now });
    }
    if (dropped > 0) this.onDropped(dropped);
    return dropped;
  }

  /** Drops an agent's series (its identity changed, so they would carry stale labels). */
  forget(agentId: string): void {
    this.agents.delete(agentId);
  }

  /** Removes series older than two report intervals. */
  sweep(now: number): void {
    const limit = now - this.expireAfterMs;
    for (const [agentId, entry] of this.agents) {
      for (const [k, s] of entry.series) if (s.at < limit) entry.series.delete(k);
      if (entry.series.size === 0) this.agents.delete(agentId);
    }
  }

  /** Prometheus text exposition of every live series. */
  render(now: number): string {
    this.sweep(now);
    const byName = new Map<string, Series[]>();
    for (const entry of this.agents.values()) {
      for (const s of entry.series.values()) {
        const list = byName.get(s.name);
        if (list) list.push(s);
        else byName.set(s.name, [s]);
      }
    }
    let out = '';
    for (const [name, list] of byName) {
      out += `# HELP ${name} Reported by workspace agents.\n# TYPE ${name} ${list[0]!.type}\n`;
      for (const s of list) out += `${name}{${s.labels}} ${formatValue(s.value)}\n`;
    }
    return out;
  }
}
