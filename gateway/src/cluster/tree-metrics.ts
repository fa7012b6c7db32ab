// `/metrics` of the whole process tree (SPEC §8), merged in the primary from every worker's part:
// the gateway's own series summed by prom-client's cluster aggregator (counters and gauges summed,
// histograms merged bucket by bucket, process metrics by each metric's declared aggregator), and
// the agents' series once each even when an agent has sockets on two workers (the most recently
// reported wins), grouped per family under one `# TYPE`. Runs on a scrape only, in the primary,
// which holds no socket. Only an agent found on two workers costs a lookup per series.
import { AggregatorRegistry } from 'prom-client';
import { type AgentSamplesPart, CHUNK_BYTES, familyHeader, type SeriesType } from '../ops/agent-metrics.js';
import type { RegistryJson } from '../ops/metrics.js';

/** Where an agent's lines are: part, first line, line count. */
interface AgentSpan {
  part: number;
  first: number;
  count: number;
}

export class TreeMetrics {
  private readonly registries: RegistryJson[] = [];
  private readonly parts: { part: AgentSamplesPart; lines: string[] }[] = [];
  /** The first span of every agent, and the others of an agent seen on several workers. */
  private readonly spans = new Map<string, AgentSpan[]>();

  addRegistry(json: RegistryJson): void {
    this.registries.push(json);
  }

  addAgents(part: AgentSamplesPart): void {
    const index = this.parts.length;
    const lines = part.text.split('\n');
    lines.pop(); // after the last '\n'
    this.parts.push({ part, lines });
    let first = 0;
    for (let i = 0; i < part.agents.length; i++) {
      const span = { part: index, first, count: part.counts[i]! };
      const known = this.spans.get(part.agents[i]!);
      if (known) known.push(span);
      else this.spans.set(part.agents[i]!, [span]);
      first += span.count;
    }
  }

  /** Every series once, by family: an agent on one worker as is, one on several merged by series. */
  private byFamily(): Map<string, { type: SeriesType; lines: string[] }> {
    const families = new Map<string, { type: SeriesType; lines: string[] }>();
    const push = (p: number, line: number) => {
      const { part, lines } = this.parts[p]!;
      const f = part.families[part.lineFamily[line]!]!;
      let family = families.get(f.name);
      if (!family) {
        family = { type: f.type, lines: [] };
        families.set(f.name, family);
      }
      family.lines.push(lines[line]!);
    };
    for (const spans of this.spans.values()) {
      if (spans.length === 1) {
        const { part, first, count } = spans[0]!;
        for (let l = first; l < first + count; l++) push(part, l);
        continue;
      }
      // The same agent on several workers: by series (the line up to its value), the latest report.
      const latest = new Map<string, { part: number; line: number; at: number }>();
      for (const { part, first, count } of spans) {
        const { part: p, lines } = this.parts[part]!;
        for (let l = first; l < first + count; l++) {
          const text = lines[l]!;
          const key = text.slice(0, text.lastIndexOf(' '));
          const at = p.ats[l]!;
          const known = latest.get(key);
          if (!known || known.at < at) latest.set(key, { part, line: l, at });
        }
      }
      for (const { part, line } of latest.values()) push(part, line);
    }
    return families;
  }

  /** The Prometheus text: the gateway's series, then the agents', in chunks of about `maxBytes`. */
  async *chunks(maxBytes = CHUNK_BYTES): AsyncGenerator<string> {
    if (this.registries.length > 0) yield await AggregatorRegistry.aggregate(this.registries).metrics();
    let out: string[] = [];
    let bytes = 0;
    for (const [name, family] of this.byFamily()) {
      const header = familyHeader(name, family.type).slice(0, -1);
      out.push(header);
      bytes += header.length + 1;
      for (const line of family.lines) {
        out.push(line);
        bytes += Buffer.byteLength(line, 'utf8') + 1;
        if (bytes >= maxBytes) {
          yield `${out.join('\n')}\n`;
          out = [];
          bytes = 0;
        }
      }
    }
    if (out.length > 0) yield `${out.join('\n')}\n`;
  }
}
