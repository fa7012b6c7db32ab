// Agent-reported metrics on `/metrics` (SPEC §4 UpdateStats step 2): `agentgate_agent_<name>` with
// the identity labels plus the metric's own, value as last reported. Bounded per agent (names and
// label names of 128 bytes, 16 own labels, label values of 1024 bytes, 200 series, 64 KiB of text;
// the excess is dropped and counted), expired on a timer after two report intervals without a
// report, and dropped on an identity change. Series are kept grouped by family with their
// exposition prefix built once, so a scrape only joins numbers, in chunks of bounded bytes.
import type { Metric } from '@agentgate/shared';
import type { Clock, TimerHandle } from './clock.js';
import {
  type AgentSamplesPart,
  CHUNK_BYTES,
  escapeLabel,
  familyHeader,
  formatValue,
  overBytes,
  type SeriesType,
} from './exposition.js';

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const IDENTITY_LABELS = new Set(['agent_name', 'username', 'workspace_name', 'template_name']);
/** Agent metric names whose exported name is one of the gateway's own series. */
const RESERVED_NAMES = new Set(['metrics_dropped_total']);

/** SPEC §4 caps per agent. */
const MAX_SERIES_PER_AGENT = 200;
const MAX_OWN_LABELS = 16;
const MAX_NAME_BYTES = 128;
const MAX_LABEL_VALUE_BYTES = 1024;
const MAX_TEXT_BYTES_PER_AGENT = 64 * 1024;
/** The longest value formatValue writes (`-0.0000012345678901234567`): a series' bytes never grow past its cost. */
const MAX_VALUE_CHARS = 25;
export interface AgentLabels {
  agentName: string;
  username: string;
  workspaceName: string;
  templateName: string;
}

interface Family {
  name: string;
  type: SeriesType;
  series: Set<Series>;
}

interface Series {
  family: Family;
  agentId: string;
  /** `name{labels} `: the line up to the value. */
  prefix: string;
  /** UTF-8 bytes of the line with the longest value: what the series costs its agent. */
  bytes: number;
  value: number;
  at: number;
}

interface AgentEntry {
  identityKey: string;
  /** By metric name + own labels. */
  series: Map<string, Series>;
  /** The sum of the series' bytes (at most MAX_TEXT_BYTES_PER_AGENT). */
  bytes: number;
}

/** The metric's own labels as exposition text (`,name="value"` sorted by name), or null to drop it. */
function ownLabels(m: Metric): string | null {
  if (!m.labels || m.labels.length === 0) return '';
  if (m.labels.length > MAX_OWN_LABELS) return null;
  // A repeated label name keeps its last value: a series must not carry a name twice.
  const kept = new Map<string, string>();
  for (const l of m.labels) {
    if (overBytes(l.name, MAX_NAME_BYTES) || overBytes(l.value, MAX_LABEL_VALUE_BYTES)) return null;
    if (LABEL_RE.test(l.name) && !l.name.startsWith('__') && !IDENTITY_LABELS.has(l.name)) kept.set(l.name, l.value);
  }
  let own = '';
  for (const name of [...kept.keys()].sort()) own += `,${name}="${escapeLabel(kept.get(name)!)}"`;
  return own;
}

export class AgentMetrics {
  private readonly agents = new Map<string, AgentEntry>();
  private readonly families = new Map<string, Family>();
  private timer: TimerHandle | undefined;
  private sweepClock: Clock | undefined;

  constructor(
    private readonly expireAfterMs: number,
    private readonly onDropped: (n: number) => void,
  ) {}

  /** Records one report; returns how many metrics were dropped (invalid, over a cap). */
  update(agentId: string, labels: AgentLabels, metrics: Metric[], now: number): number {
    const identityLabels =
      `agent_name="${escapeLabel(labels.agentName)}",username="${escapeLabel(labels.username)}",` +
      `workspace_name="${escapeLabel(labels.workspaceName)}",template_name="${escapeLabel(labels.templateName)}"`;
    let entry = this.agents.get(agentId);
    if (entry && entry.identityKey !== identityLabels) {
      this.forget(agentId);
      entry = undefined;
    }
    if (!entry) {
      entry = { identityKey: identityLabels, series: new Map(), bytes: 0 };
      this.agents.set(agentId, entry);
    }
    let dropped = 0;
    for (const m of metrics) {
      // The length first: the pattern is never run over a long name (names that match it are ASCII).
      const valid = m.name.length <= MAX_NAME_BYTES && NAME_RE.test(m.name) && !RESERVED_NAMES.has(m.name);
      const own = valid ? ownLabels(m) : null;
      if (own === null) {
        dropped++;
        continue;
      }
      const key = m.name + own;
      const known = entry.series.get(key);
      if (known) {
        known.value = m.value;
        known.at = now;
        continue;
      }
      if (entry.series.size >= MAX_SERIES_PER_AGENT) {
        dropped++;
        continue;
      }
      const name = `agentgate_agent_${m.name}`;
      const prefix = `${name}{${identityLabels}${own}} `;
      const bytes = Buffer.byteLength(prefix, 'utf8') + MAX_VALUE_CHARS + 1;
      if (entry.bytes + bytes > MAX_TEXT_BYTES_PER_AGENT) {
        dropped++;
        continue;
      }
      const family = this.family(name, m.type === 'COUNTER' ? 'counter' : m.type === 'GAUGE' ? 'gauge' : 'untyped');
      const series: Series = { family, agentId, prefix, bytes, value: m.value, at: now };
      family.series.add(series);
      entry.series.set(key, series);
      entry.bytes += bytes;
    }
    if (dropped > 0) this.onDropped(dropped);
    return dropped;
  }

  private family(name: string, type: SeriesType): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { name, type, series: new Set() };
      this.families.set(name, f);
    }
    return f;
  }

  private remove(s: Series): void {
    s.family.series.delete(s);
    if (s.family.series.size === 0) this.families.delete(s.family.name);
  }

  /** Drops an agent's series (its identity changed, so they would carry stale labels). */
  forget(agentId: string): void {
    const entry = this.agents.get(agentId);
    if (!entry) return;
    for (const s of entry.series.values()) this.remove(s);
    this.agents.delete(agentId);
  }

  /** Removes series not reported for two report intervals. */
  sweep(now: number): void {
    const limit = now - this.expireAfterMs;
    for (const [agentId, entry] of this.agents) {
      for (const [k, s] of entry.series) {
        if (s.at < limit) {
          entry.series.delete(k);
          entry.bytes -= s.bytes;
          this.remove(s);
        }
      }
      if (entry.series.size === 0) this.agents.delete(agentId);
    }
  }

  /** Sweeps on `clock` whether or not anyone scrapes (SPEC §4), a few times per expiry period. */
  startSweeping(clock: Clock): void {
    this.sweepClock = clock;
    const every = Math.max(1000, Math.round(this.expireAfterMs / 4));
    const tick = () => {
      this.sweep(clock.now());
      this.timer = clock.setTimeout(tick, every, 'agent_metrics_sweep');
      this.timer.unref?.();
    };
    this.timer = clock.setTimeout(tick, every, 'agent_metrics_sweep');
    this.timer.unref?.();
  }

  stopSweeping(): void {
    this.sweepClock?.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Live series. */
  get size(): number {
    let n = 0;
    for (const f of this.families.values()) n += f.series.size;
    return n;
  }

  /** Prometheus text of every live series, in chunks of about CHUNK_BYTES (at most one line more). */
  *chunks(now: number): Generator<string> {
    const limit = now - this.expireAfterMs;
    let out = '';
    let bytes = 0;
    for (const f of this.families.values()) {
      let header = familyHeader(f.name, f.type);
      for (const s of f.series) {
        if (s.at < limit) continue;
        out += `${header}${s.prefix}${formatValue(s.value)}\n`;
        bytes += header.length + s.bytes;
        header = '';
        if (bytes >= CHUNK_BYTES) {
          yield out;
          out = '';
          bytes = 0;
        }
      }
    }
    if (out !== '') yield out;
  }

  /** The whole rendering as one string (tests, small registries). */
  render(now: number): string {
    let text = '';
    for (const c of this.chunks(now)) text += c;
    return text;
  }

  /** Every live series, family after family, in parts of about `maxBytes`. */
  *sampleParts(now: number, maxBytes: number): Generator<AgentSamplesPart> {
    const limit = now - this.expireAfterMs;
    let blocks: AgentSamplesPart['blocks'] = [];
    let agents: string[] = [];
    let agentIndex = new Map<string, number>();
    let lineAgent: number[] = [];
    let ats: number[] = [];
    let bytes = 0;
    const part = (): AgentSamplesPart => ({
      blocks,
      agents,
      lineAgent: Uint32Array.from(lineAgent),
      ats: Float64Array.from(ats),
    });
    for (const f of this.families.values()) {
      let text = '';
      let lines = 0;
      for (const s of f.series) {
        if (s.at < limit) continue;
        let a = agentIndex.get(s.agentId);
        if (a === undefined) {
          a = agents.length;
          agents.push(s.agentId);
          agentIndex.set(s.agentId, a);
        }
        text += `${s.prefix}${formatValue(s.value)}\n`;
        lines++;
        lineAgent.push(a);
        ats.push(s.at);
        bytes += s.bytes;
        if (bytes >= maxBytes) {
          blocks.push({ name: f.name, type: f.type, lines, text });
          yield part();
          blocks = [];
          agents = [];
          agentIndex = new Map();
          lineAgent = [];
          ats = [];
          bytes = 0;
          text = '';
          lines = 0;
        }
      }
      if (lines > 0) blocks.push({ name: f.name, type: f.type, lines, text });
    }
    if (blocks.length > 0) yield part();
  }
}
