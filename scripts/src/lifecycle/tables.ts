// The table-level figures of the data lifecycle (SPEC §10) on a database of their own: the
// conversion of an unpartitioned table by migration 5, disk per million rows before and after, the
// rollup of a day, and dropping a day's partition against DELETE of the same rows.
import { GATEWAY_ROLE } from '@agentgate/gateway/embedded';
import { connect, type Sql } from '@agentgate/gateway/store/db';
import { addDays, dropPartition, emptyPartition, partitionName, rollUpDay } from '@agentgate/gateway/store/maintenance';
import { migrate } from '@agentgate/gateway/store/migrate';

const DAY_MS = 86_400_000;
const CHUNK = 500_000;

interface Disk {
  rows: number;
  heapBytes: number;
  indexBytes: number;
  /** Heap, TOAST and indexes per million rows. */
  bytesPerMillion: number;
}

export interface ConversionResult {
  rows: number;
  days: number;
  seconds: number;
  before: Disk;
  after: Disk;
}

export interface DayResult {
  rows: number;
  rollupSeconds: number;
  drop: { truncateMs: number; dropMs: number; walBytes: number };
  delete: { deleteMs: number; vacuumMs: number; walBytes: number };
}

/** A database owned by the gateway's role, and that role's single connection to it (the pass's `begin` needs one). */
export async function labDatabase(admin: Sql, gatewayUrl: string, name: string): Promise<Sql> {
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.unsafe(`create database ${name} owner ${GATEWAY_ROLE}`);
  const u = new URL(gatewayUrl);
  u.pathname = `/${name}`;
  return connect(u.toString(), { max: 1, prepare: false, applicationName: 'agentgate-lifecycle' });
}

/**
 * `rows` rows spread evenly over [fromMs, toMs), uuidv7 ids in time order as the gateway makes
 * them, `agents` agents, in statements of CHUNK rows (progress after each).
 */
export async function fillStats(
  sql: Sql,
  o: { fromMs: number; toMs: number; rows: number; agents: number; log: (m: string) => void },
): Promise<void> {
  const stepMs = (o.toMs - o.fromMs) / o.rows;
  for (let first = 0; first < o.rows; first += CHUNK) {
    const last = Math.min(o.rows, first + CHUNK) - 1;
    await sql`
      insert into workspace_agent_stats (
        id, created_at, user_id, agent_id, workspace_id, template_id, connections_by_proto, connection_count,
        rx_packets, rx_bytes, tx_packets, tx_bytes, connection_median_latency_ms,
        session_count_vscode, session_count_jetbrains, session_count_reconnecting_pty, session_count_ssh, usage)
      select (lpad(to_hex((extract(epoch from t) * 1000)::bigint), 12, '0') || '7' || substr(md5(g::text), 1, 3)
                || '8' || substr(md5(g::text), 4, 15))::uuid,
             t,
             ('00000000-0000-4000-8000-' || lpad(to_hex(g % ${o.agents} / 10), 12, '0'))::uuid,
             ('00000000-0000-4000-8001-' || lpad(to_hex(g % ${o.agents}), 12, '0'))::uuid,
             ('00000000-0000-4000-8002-' || lpad(to_hex(g % ${o.agents}), 12, '0'))::uuid,
             ('00000000-0000-4000-8003-' || lpad(to_hex(g % 7), 12, '0'))::uuid,
             '{"tcp": 1}', g % 3, g % 1000, (g % 1000) * 97, g % 900, (g % 900) * 113,
             case when g % 5 = 0 then -1 else (g % 50) / 3.0 end, g % 2, 0, g % 3 / 2, 1, g % 4 = 0
      from (select g, to_timestamp((${o.fromMs}::float8 + g * ${stepMs}::float8) / 1000) as t
            from generate_series(${first}::bigint, ${last}::bigint) g) s`;
    o.log(`  ${last + 1} of ${o.rows} rows`);
  }
}

async function disk(sql: Sql, rows: number): Promise<Disk> {
  const [r] = await sql<{ heap: number; total: number }[]>`
    with t as (
      select inhrelid as oid from pg_inherits where inhparent = 'workspace_agent_stats'::regclass
      union all select 'workspace_agent_stats'::regclass::oid
    )
    select sum(pg_relation_size(oid))::bigint as heap, sum(pg_total_relation_size(oid))::bigint as total from t`;
  const total = Number(r!.total);
  return {
    rows,
    heapBytes: Number(r!.heap),
    indexBytes: total - Number(r!.heap),
    bytesPerMillion: Math.round((total / rows) * 1e6),
  };
}

/** Migrations 1-4 (the unpartitioned table), `rows` rows over `days` days up to today, then migration 5, timed. */
export async function measureConversion(
  sql: Sql,
  o: { rows: number; days: number; agents: number; log: (m: string) => void; checkpoint: () => Promise<void> },
): Promise<ConversionResult> {
  await migrate(sql, { upTo: 4 });
  const nowMs = Date.now();
  o.log(`conversion: filling the unpartitioned table with ${o.rows} rows over ${o.days} days ...`);
  await fillStats(sql, { fromMs: nowMs - o.days * DAY_MS, toMs: nowMs, rows: o.rows, agents: o.agents, log: o.log });
  await sql`vacuum analyze workspace_agent_stats`;
  await o.checkpoint();
  const before = await disk(sql, o.rows);
  o.log('conversion: migrating (migration 5) ...');
  const t = performance.now();
  await migrate(sql);
  const seconds = (performance.now() - t) / 1000;
  await sql`vacuum analyze workspace_agent_stats`;
  return { rows: o.rows, days: o.days, seconds, before, after: await disk(sql, o.rows) };
}

async function walLsn(sql: Sql): Promise<string> {
  const [r] = await sql<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
  return r!.lsn;
}

async function walSince(sql: Sql, lsn: string): Promise<number> {
  const [r] = await sql<{ b: number }[]>`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${lsn}::pg_lsn)::bigint as b`;
  return Number(r!.b);
}

/** Two days of `rows` rows each: the rollup of one, then its partition dropped (the pass's way) against DELETE of the other. */
export async function measureDay(
  sql: Sql,
  o: { rows: number; agents: number; log: (m: string) => void },
): Promise<DayResult> {
  await migrate(sql);
  const [t] = await sql<{ today: string }[]>`select ((now() at time zone 'UTC')::date)::text as today`;
  const [dropped, deleted] = [addDays(t!.today, -6), addDays(t!.today, -5)];
  for (const day of [dropped, deleted]) {
    const from = Date.parse(`${day}T00:00:00Z`);
    await sql.unsafe(
      `create table ${partitionName(day)} partition of workspace_agent_stats for values from ('${day} 00:00:00+00') to ('${addDays(day, 1)} 00:00:00+00')`,
    );
    o.log(`day ${day}: filling ${o.rows} rows ...`);
    await fillStats(sql, { fromMs: from, toMs: from + DAY_MS - 1000, rows: o.rows, agents: o.agents, log: o.log });
    await sql`vacuum analyze ${sql(partitionName(day))}`;
  }
  o.log(`rollup of ${dropped} ...`);
  let at = performance.now();
  const rolled = await rollUpDay(sql, dropped);
  const rollupSeconds = (performance.now() - at) / 1000;
  if (rolled !== o.rows) throw new Error(`the rollup counted ${rolled} rows, not ${o.rows}`);

  let lsn = await walLsn(sql);
  at = performance.now();
  await emptyPartition(sql, dropped, rolled, 1000);
  const truncateMs = performance.now() - at;
  at = performance.now();
  await dropPartition(sql, dropped, 1000);
  const dropMs = performance.now() - at;
  const dropWal = await walSince(sql, lsn);

  o.log(`DELETE of ${deleted} ...`);
  lsn = await walLsn(sql);
  at = performance.now();
  await sql`delete from workspace_agent_stats
            where created_at >= ${`${deleted}T00:00:00Z`}::timestamptz and created_at < ${`${addDays(deleted, 1)}T00:00:00Z`}::timestamptz`;
  const deleteMs = performance.now() - at;
  at = performance.now();
  await sql`vacuum ${sql(partitionName(deleted))}`;
  const vacuumMs = performance.now() - at;
  return {
    rows: o.rows,
    rollupSeconds,
    drop: { truncateMs, dropMs, walBytes: dropWal },
    delete: { deleteMs, vacuumMs, walBytes: await walSince(sql, lsn) },
  };
}
