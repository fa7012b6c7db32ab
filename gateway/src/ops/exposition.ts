// The Prometheus text format as the agents' series are written in it (SPEC §3, §4): names, label
// escaping, values, the `# HELP`/`# TYPE` header of a family, chunks of bounded bytes, and the parts
// in which a cluster worker hands its series to the primary.

/**
 * Bytes per chunk of a rendering (SPEC §3: chunks of bounded bytes, whatever the lines hold): a
 * scrape yields to the sockets between chunks, and a client that stops reading pins one chunk.
 */
export const CHUNK_BYTES = 64 * 1024;

export type SeriesType = 'counter' | 'gauge' | 'untyped';

/**
 * Live series as another process needs them to merge renderings (SPEC §8: an agent's series once,
 * whichever worker holds its sockets): family after family, its exposition lines (`name{labels}
 * value`) in one string (so a merge joins blocks, not lines), and for each line its agent and when
 * it was last reported (looked at only for an agent found on several workers). A family may go on
 * in the next part. Strings and typed arrays: cheap to send over IPC.
 */
export interface AgentSamplesPart {
  blocks: { name: string; type: SeriesType; lines: number; text: string }[];
  agents: string[];
  /** Index in `agents` of each line, block after block. */
  lineAgent: Uint32Array;
  /** When each line's series was last reported. */
  ats: Float64Array;
}

/** The `# HELP` and `# TYPE` lines of an agent family (one per family, whichever process renders it). */
export const familyHeader = (name: string, type: SeriesType) =>
  `# HELP ${name} Reported by workspace agents.\n# TYPE ${name} ${type}\n`;

export const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

/** Whether `s` holds more than `limit` UTF-8 bytes (cheap for short strings). */
export function overBytes(s: string, limit: number): boolean {
  if (s.length > limit) return true; // a UTF-16 unit is at least one UTF-8 byte
  if (s.length * 3 <= limit) return false; // and at most three
  return Buffer.byteLength(s, 'utf8') > limit;
}

/**
 * `text` (whole lines) in pieces of about `max` characters, each cut at a line end (so never inside
 * a character): at most `max` plus one line, which an agent's 64 KiB bounds.
 */
export function* cutAtLines(text: string, max: number): Generator<string> {
  let from = 0;
  while (text.length - from > max) {
    const end = text.indexOf('\n', from + max - 1);
    if (end === -1 || end === text.length - 1) break;
    yield text.slice(from, end + 1);
    from = end + 1;
  }
  yield from === 0 ? text : text.slice(from);
}
