// Time in tests: units, the RFC 3339 format of timestamps in JSON, and wall-clock times in a time
// zone computed without a cron library (to check autostart against an independent answer).

export const NS_PER_MS = 1_000_000;
export const HOUR_NS = 3_600_000_000_000;
export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

/** A timestamp as the gateway writes it in JSON (RFC 3339). */
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** The offset (ms) of `timeZone` from UTC at instant `t`. */
function tzOffsetMs(t: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(t));
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return asUtc - Math.floor(t / 1000) * 1000;
}

/** The first instant after `now` at which the wall clock of `timeZone` reads `hour`:00. */
export function nextLocalTime(now: number, timeZone: string, hour: number): number {
  const off = tzOffsetMs(now, timeZone);
  const local = new Date(now + off);
  const candidates: number[] = [];
  for (let d = 0; d <= 2; d++) {
    const guess = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + d, hour, 0, 0);
    // Two passes settle the offset across a DST change.
    let t = guess - tzOffsetMs(guess, timeZone);
    t = guess - tzOffsetMs(t, timeZone);
    candidates.push(t);
  }
  const next = candidates.find((t) => t > now);
  if (next === undefined) throw new Error('no next local time found');
  return next;
}
