// What `agentgate fuzz` reports: the frames answered otherwise than the SPEC says, the rows that
// should not be there, and one summary (also the JSON of --json).

export interface FuzzSummary {
  seed: number;
  frames: number;
  elapsedMs: number;
  byLabel: Record<string, number>;
  closes: Record<string, number>;
  reconnects: number;
  mismatches: number;
  stored: { statsRows: number; expectedStatsRows: number; metadataWrites: number; problems: string[] };
  neighbour: { acked: number; stored: number; errors: string[] };
  healthz: number | null;
  rssKiB: { start: number; warmed: number; after: number } | null;
}

/** `0 mismatches` reads as the good news it is; a bare `0 answered against the SPEC` read as a failure. */
export function mismatches(n: number): string {
  return n === 1 ? '1 mismatch' : `${n} mismatches`;
}

/** Every frame got its answer, the database holds what it should, the neighbour was undisturbed. */
export function isClean(s: FuzzSummary): boolean {
  return s.mismatches === 0 && s.stored.problems.length === 0 && s.neighbour.errors.length === 0 && s.healthz === 200;
}

/** The report on stdout; `shown` are the first mismatches, formatted. */
export function formatFuzzSummary(s: FuzzSummary, shown: string[]): string {
  let out = '';
  if (shown.length > 0) {
    out += `frames the gateway answered otherwise than the SPEC says (first ${shown.length}):\n${shown.join('\n')}\n\n`;
  }
  if (s.stored.problems.length > 0) {
    out += `the database holds what it should not:\n  ${s.stored.problems.slice(0, 20).join('\n  ')}\n\n`;
  }
  const list = (m: Record<string, number>, sep: string) =>
    Object.entries(m)
      .map(([k, v]) => `${k}${sep}${v}`)
      .join(', ');
  const errors = s.neighbour.errors;
  return (
    out +
    [
      `seed ${s.seed}: ${s.frames} frames in ${(s.elapsedMs / 1000).toFixed(1)} s (${Math.round((s.frames * 1000) / Math.max(1, s.elapsedMs))}/s), ${s.reconnects} reconnects`,
      `  by kind: ${list(s.byLabel, ' ')}`,
      `  closes: ${list(s.closes, ' x')}`,
      `  checked against the SPEC: ${s.frames} frames, ${mismatches(s.mismatches)}`,
      `  stored: ${s.stored.statsRows} stats rows for ${s.stored.expectedStatsRows} valid frames, ${s.stored.metadataWrites} metadata writes; ${s.stored.problems.length} problem(s)`,
      `  neighbour: ${s.neighbour.acked} acknowledged, ${s.neighbour.stored} stored, ${errors.length} error(s)${errors.length ? `: ${errors.slice(0, 3).join('; ')}` : ''}`,
      `  /healthz: ${s.healthz ?? 'no answer'}`,
      s.rssKiB
        ? `  gateway RSS: ${s.rssKiB.start} KiB at start, ${s.rssKiB.warmed} KiB after 1000 frames, ${s.rssKiB.after} KiB at the end`
        : '  gateway RSS: not measured (--url)',
      '',
    ].join('\n')
  );
}
