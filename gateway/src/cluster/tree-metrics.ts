// `/metrics` of the whole process tree (SPEC §8), merged in the primary from every worker's part:
// the gateway's own series summed by prom-client's cluster aggregator (counters and gauges summed,
// histograms merged bucket by bucket, process metrics by each metric's declared aggregator), and
// the agents' series once each even when an agent has sockets on two workers (the most recently
// reported wins), grouped per family under one `# TYPE`. Runs on a scrape only, in the primary,
// which holds no socket.
import { AggregatorRegistry } from 'prom-client';
import { type FamilySamples, familyHeader, type SeriesType } from '../ops/agent-metrics.js';
import type { RegistryJson } from '../ops/metrics.js';

/** Lines per chunk of the answer. */
const LINES_PER_CHUNK = 2000;

interface MergedFamily {
  type: SeriesType;
  /** By the line up to its value (name and labels): the series. */
  series: Map<string, { line: string; at: number }>;
}

export class TreeMetrics {
  private readonly registries: RegistryJson[] = [];
  private readonly families = new Map<string, MergedFamily>();

  addRegistry(json: RegistryJson): void {
    this.registries.push(json);
  }

  addFamilies(parts: FamilySamples[]): void {
    for (const part of parts) {
      let family = this.families.get(part.name);
      if (!family) {
        family = { type: part.type, series: new Map() };
        this.families.set(part.name, family);
      }
      const { lines, ats } = part;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!;
        const at = ats[i]!;
        const key = line.slice(0, line.lastIndexOf(' '));
        const known = family.series.get(key);
        if (!known || known.at < at) family.series.set(key, { line, at });
      }
    }
  }

  /** The Prometheus text: the gateway's series, then the agents', a few thousand lines a chunk. */
  async *chunks(): AsyncGenerator<string> {
    if (this.registries.length > 0) yield await AggregatorRegistry.aggregate(this.registries).metrics();
    let out = '';
    let lines = 0;
    for (const [name, family] of this.families) {
      out += familyHeader(name, family.type);
      for (const { line } of family.series.values()) {
        out += `${line}\n`;
        if (++lines % LINES_PER_CHUNK === 0) {
          yield out;
          out = '';
        }
      }
    }
    if (out !== '') yield out;
  }
}
