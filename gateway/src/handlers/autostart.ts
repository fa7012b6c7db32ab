// The next autostart of a workspace from its cached schedule (`CRON_TZ=Zone m h dom mon dow`, as
// Coder writes it), for the autostart-aware activity bump. Unparsable schedules have no next run.
import { Cron } from 'croner';

const parsed = new Map<string, Cron | null>();
const MAX_CACHED = 10_000;

function compile(schedule: string): Cron | null {
  let tz: string | undefined;
  let expr = schedule.trim();
  const m = /^(?:CRON_)?TZ=(\S+)\s+(.*)$/.exec(expr);
  if (m) {
    tz = m[1];
    expr = m[2]!.trim();
  }
  if (expr.split(/\s+/).length !== 5) return null;
  try {
    const cron = new Cron(expr, { timezone: tz, paused: true });
    cron.nextRun(new Date()); // an unknown time zone only fails here
    return cron;
  } catch {
    return null;
  }
}

/** The next run strictly after `now`, or null when the schedule is empty or unparsable. */
export function nextAutostart(schedule: string | null, now: Date): Date | null {
  if (!schedule) return null;
  let cron = parsed.get(schedule);
  if (cron === undefined) {
    cron = compile(schedule);
    if (parsed.size >= MAX_CACHED) parsed.clear();
    parsed.set(schedule, cron);
  }
  if (!cron) return null;
  try {
    return cron.nextRun(now);
  } catch {
    return null;
  }
}
