// What the gateway records about use, coalesced (nobody waits on these writes, so they never hold a
// frame): after a committed stats row with connectionCount > 0 (SPEC §4 step 3), per workspace, the
// deadline bump and the stats_update NOTIFY within about a second (one statement per flush), and
// `last_used_at` once per usage flush interval; and the agents' connection times (SPEC §5).
// Timestamps travel as RFC 3339 text cast in SQL (`::text::timestamptz`): postgres.js reads a
// timestamptz parameter through JS Date, which takes year 0001 for 2001.
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Db, Sql } from './db.js';
import { KeyedFlusher } from './keyed-flusher.js';

export interface Activity {
  ownerId: string;
  autostartSchedule: string | null;
  prebuild: boolean;
}

export interface ActivityRow {
  workspaceId: string;
  ownerId: string;
  /** RFC 3339 next autostart, when the cached schedule has one. */
  nextAutostart: string | null;
  /** Prebuilds are not bumped (SPEC §4). */
  bump: boolean;
}

export interface AgentConnectionRow {
  agentId: string;
  /** RFC 3339; sets last_connected_at (and first_connected_at if null), clears disconnected_at. */
  connectedAt: string | null;
  /** RFC 3339; sets disconnected_at. */
  disconnectedAt: string | null;
}
/**
 * SPEC §4 activity: the autostart-aware deadline bump of each workspace's latest start build
 * (never decreasing, capped by a set max_deadline), and one stats_update NOTIFY per workspace.
 */
async function bumpAndNotifyActivity(sql: Sql, rows: ActivityRow[]): Promise<void> {
  const bump = rows.filter((r) => r.bump);
  await sql`
    with input as (
      select * from unnest(${bump.map((r) => r.workspaceId)}::uuid[], ${bump.map((r) => r.nextAutostart)}::text[]::timestamptz[])
        as i(workspace_id, next_autostart)
    ), latest as (
      select distinct on (b.workspace_id) b.id, b.workspace_id, b.transition, b.deadline, b.max_deadline, b.job_id
      from workspace_builds b
      where b.workspace_id in (select workspace_id from input)
      order by b.workspace_id, b.build_number desc
    ), calc as (
      select l.id, l.deadline, l.max_deadline,
             case when i.next_autostart > now()
                       and i.next_autostart < now() + make_interval(secs => t.activity_bump / 1e9)
                  then (i.next_autostart - now())
                       + make_interval(secs => (case when t.allow_user_autostop then coalesce(w.ttl, 0)
                                                    else t.default_ttl end) / 1e9)
                  else make_interval(secs => t.activity_bump / 1e9) end as bump
      from latest l
      join input i on i.workspace_id = l.workspace_id
      join provisioner_jobs j on j.id = l.job_id
      join workspaces w on w.id = l.workspace_id
      join templates t on t.id = w.template_id
      where l.transition = 'start' and j.completed_at is not null and l.deadline <> '0001-01-01 00:00:00+00'::timestamptz
    ), target as (
      select id, deadline,
             case when max_deadline <> '0001-01-01 00:00:00+00'::timestamptz then least(now() + bump, max_deadline)
                  else now() + bump end as new_deadline
      from calc
      where bump > interval '0' and deadline - bump * 0.95 < now()
    ), bumped as (
      update workspace_builds b set deadline = t.new_deadline, updated_at = now()
      from target t
      where b.id = t.id and t.new_deadline > t.deadline
      returning b.id
    ), notified as (
      select pg_notify('workspace_owner:' || owner_id,
                       '{"kind":"stats_update","workspace_id":"' || workspace_id || '"}')
      from unnest(${rows.map((r) => r.workspaceId)}::uuid[], ${rows.map((r) => r.ownerId)}::uuid[])
        as o(workspace_id, owner_id)
    )
    select (select count(*) from bumped) as bumped, (select count(*) from notified) as notified`;
}

async function markWorkspacesUsed(sql: Sql, workspaceIds: string[], at: string): Promise<void> {
  await sql`
    update workspaces set last_used_at = ${at}::text::timestamptz
    where id = any(${workspaceIds}::uuid[]) and last_used_at < ${at}::text::timestamptz`;
}

export async function updateAgentConnections(sql: Sql, rows: AgentConnectionRow[]): Promise<void> {
  await sql`
    update workspace_agents a set
      first_connected_at = coalesce(a.first_connected_at, u.connected_at),
      last_connected_at = coalesce(u.connected_at, a.last_connected_at),
      disconnected_at = case when u.disconnected_at is not null then u.disconnected_at
                             when u.connected_at is not null then null
                             else a.disconnected_at end,
      updated_at = now()
    from unnest(${rows.map((r) => r.agentId)}::uuid[], ${rows.map((r) => r.connectedAt)}::text[]::timestamptz[],
                ${rows.map((r) => r.disconnectedAt)}::text[]::timestamptz[]) as u(id, connected_at, disconnected_at)
    where a.id = u.id`;
}

export interface ActivityWriterOptions {
  db: Db;
  clock: Clock;
  log: Logger;
  nextAutostart: (schedule: string | null, now: Date) => Date | null;
  /** Delay between the first activity and its bump/notify flush. */
  bumpDelayMs: number;
  onSuccess(): void;
  onFailure(err: unknown): void;
}

/** Activity per workspace: the bump and NOTIFY soon, `last_used_at` on the usage timer. */
export class ActivityWriter {
  private readonly bumps: KeyedFlusher<Activity>;
  private readonly used: KeyedFlusher<true>;

  constructor(opts: ActivityWriterOptions) {
    const { db, clock, log } = opts;
    this.bumps = new KeyedFlusher<Activity>({
      name: 'activity',
      delayMs: opts.bumpDelayMs,
      // Each statement NOTIFYs once per workspace; small statements keep the NOTIFY lock short.
      maxBatch: 250,
      clock,
      log,
      merge: (_older, newer) => newer,
      onSuccess: opts.onSuccess,
      onFailure: opts.onFailure,
      write: (entries) => {
        const now = new Date(clock.now());
        const rows = entries.map(([workspaceId, a]) => ({
          workspaceId,
          ownerId: a.ownerId,
          nextAutostart: a.prebuild ? null : (opts.nextAutostart(a.autostartSchedule, now)?.toISOString() ?? null),
          bump: !a.prebuild,
        }));
        return db.bulk(bumpAndNotifyActivity, rows);
      },
    });
    this.used = new KeyedFlusher<true>({
      name: 'last_used_at',
      // Flushed by the usage timer (flushUsage), never by a change.
      delayMs: null,
      clock,
      log,
      merge: () => true,
      onSuccess: opts.onSuccess,
      onFailure: opts.onFailure,
      write: (entries) =>
        db.bulk(
          markWorkspacesUsed,
          entries.map(([id]) => id),
          new Date(clock.now()).toISOString(),
        ),
    });
  }

  /** Records activity of a workspace whose stats row has committed. */
  record(workspaceId: string, activity: Activity): void {
    this.bumps.set(workspaceId, activity);
    this.used.set(workspaceId, true);
  }

  /** Called every usage flush interval and at shutdown. */
  flushUsage(): Promise<void> {
    return this.used.flush();
  }

  async flushAll(): Promise<void> {
    this.bumps.stop();
    await this.bumps.flush();
    await this.flushUsage();
  }
}
