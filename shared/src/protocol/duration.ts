// Durations as operators write them (`500ms`, `30s`, `5m`, `1h`, `2d`) and as protojson writes
// them (`"30s"`, `"0.500s"`).

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Parses `500ms`, `30s`, `1.5m`, `1h`, `2d` into milliseconds, and a bare `0` as 0 (SPEC §1: a
 * retention of `0` keeps data forever); returns undefined when malformed.
 */
export function parseDuration(text: string): number | undefined {
  if (text.trim() === '0') return 0;
  const m = DURATION_RE.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (UNIT_MS[m[2]!] ?? Number.NaN);
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** Formats milliseconds as a protojson Duration string: seconds with an `s` suffix. */
export function formatProtoDuration(ms: number): string {
  const whole = Math.trunc(ms / 1000);
  const frac = Math.abs(ms % 1000);
  if (frac === 0) return `${whole}s`;
  return `${whole}.${String(frac).padStart(3, '0')}s`;
}
