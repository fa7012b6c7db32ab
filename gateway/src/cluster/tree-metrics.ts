// `/metrics` of the whole process tree (SPEC §8), merged in the primary from every worker's part:
// the gateway's own series summed by prom-client's cluster aggregator (counters and gauges summed,
// histograms merged bucket by bucket, process metrics by each metric's declared aggregator), and
// the agents' series once each even when an agent has sockets on two workers (the most recently
// reported wins), grouped per family under one `# TYPE`. Runs on a scrape only, in the primary,
// which holds no socket. Workers send their series family by family, so the merge joins blocks of
// text; only the lines of an agent found on two workers are looked at one by one.
import { AggregatorRegistry } from 'prom-client';
import { type AgentSamplesPart, CHUNK_BYTES, familyHeader, type SeriesType } from '../ops/exposition.js';
import type { RegistryJson } from '../ops/metrics.js';

interface HeldPart {
  part: AgentSamplesPart;
  /** The first line of each block. */
  firstLines: number[];
  /** 1 for each agent of the part also seen on another worker (set when rendering). */
  onSeveral?: Uint8Array;
}

interface FamilyBlocks {
  type: SeriesType;
  blocks: { held: HeldPart; index: number }[];
}

/** Text gathered into chunks of about `max` characters, each ending at a line end. */
class Chunks {
  readonly done: string[] = [];
  private out = '';

  constructor(private readonly max: number) {}

  /** Whole lines: a long text is cut at the line ends nearest to each chunk's end. */
  add(text: string): void {
    let from = 0;
    for (;;) {
      const room = this.max - this.out.length;
      if (text.length - from < room) break;
      const end = text.indexOf('\n', from + room - 1);
      if (end === -1) break;
      this.out += text.slice(from, end + 1);
      this.flush();
      from = end + 1;
    }
    if (from < text.length) this.out += from === 0 ? text : text.slice(from);
  }

  flush(): void {
    if (this.out !== '') this.done.push(this.out);
    this.out = '';
  }
}

export class TreeMetrics {
  private readonly registries: RegistryJson[] = [];
  private readonly parts: HeldPart[] = [];
  /** The worker each agent was first seen on, and the agents also seen on another. */
  private readonly seenOn = new Map<string, unknown>();
  private readonly onSeveral = new Set<string>();

  addRegistry(json: RegistryJson): void {
    this.registries.push(json);
  }

  /** One part of the agent series of the worker `from`. */
  addAgents(part: AgentSamplesPart, from: unknown): void {
    const firstLines: number[] = [];
    let line = 0;
    for (const b of part.blocks) {
      firstLines.push(line);
      line += b.lines;
    }
    this.parts.push({ part, firstLines });
    for (const agent of part.agents) {
      const seen = this.seenOn.get(agent);
      if (seen === undefined) this.seenOn.set(agent, from);
      else if (seen !== from) this.onSeveral.add(agent);
    }
  }

  /** The Prometheus text: the gateway's series, then the agents', in chunks of about `maxBytes`. */
  async *chunks(maxBytes = CHUNK_BYTES): AsyncGenerator<string> {
    if (this.registries.length > 0) yield await AggregatorRegistry.aggregate(this.registries).metrics();
    const families = new Map<string, FamilyBlocks>();
    for (const held of this.parts) {
      held.part.blocks.forEach((b, index) => {
        let f = families.get(b.name);
        if (!f) {
          f = { type: b.type, blocks: [] };
          families.set(b.name, f);
        }
        f.blocks.push({ held, index });
      });
    }
    const out = new Chunks(maxBytes);
    for (const [name, family] of families) {
      out.add(familyHeader(name, family.type));
      // The series of agents on several workers: by series (the line up to its value), the latest report.
      const latest = new Map<string, { line: string; at: number }>();
      for (const { held, index } of family.blocks) {
        const { part, firstLines } = held;
        const { text, lines } = part.blocks[index]!;
        const first = firstLines[index]!;
        if (this.onSeveral.size === 0) {
          out.add(text);
          continue;
        }
        held.onSeveral ??= Uint8Array.from(part.agents, (a) => (this.onSeveral.has(a) ? 1 : 0));
        // Runs of lines of agents on one worker go as they are; the others one by one.
        let run = 0;
        let at = 0;
        for (let k = 0; k < lines; k++) {
          const end = text.indexOf('\n', at);
          if (held.onSeveral[part.lineAgent[first + k]!] === 1) {
            if (run < at) out.add(text.slice(run, at));
            const line = text.slice(at, end);
            const key = line.slice(0, line.lastIndexOf(' '));
            const reported = part.ats[first + k]!;
            const known = latest.get(key);
            if (!known || known.at < reported) latest.set(key, { line, at: reported });
            run = end + 1;
          }
          at = end + 1;
        }
        if (run < text.length) out.add(run === 0 ? text : text.slice(run));
      }
      for (const { line } of latest.values()) out.add(`${line}\n`);
    }
    out.flush();
    yield* out.done;
  }
}
