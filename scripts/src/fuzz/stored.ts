// What the fuzzing agent must have left in the database: the Ledger adds up what the oracle says
// each frame stores (a stats row per valid UpdateStats with stats; the last write of each declared
// metadata key), and checkStored compares it with the rows — every row accounted for, exactly once.
import type { Sql } from '@agentgate/gateway/store/db';
import type { Effects, MetadataWrite, StatsRowValues } from './oracle.js';

/** One stats row as one comparable string (connections_by_proto with sorted keys; -0 is 0). */
function statsKey(r: StatsRowValues): string {
  const byProto = Object.keys(r.connectionsByProto)
    .sort()
    .map((k) => [k, r.connectionsByProto[k]]);
  return JSON.stringify([
    byProto,
    r.connectionCount,
    r.rxPackets,
    r.rxBytes,
    r.txPackets,
    r.txBytes,
    r.connectionMedianLatencyMs,
    r.sessionCountVscode,
    r.sessionCountJetbrains,
    r.sessionCountReconnectingPty,
    r.sessionCountSsh,
  ]);
}

export class Ledger {
  /** Expected stats rows: comparable row → how many. */
  readonly stats = new Map<string, number>();
  statsRows = 0;
  metadataWrites = 0;
  /** Each declared key's expected value and error (the last write wins; "" before any). */
  readonly metadata = new Map<string, { value: string; error: string }>();

  constructor(declaredKeys: readonly string[]) {
    for (const k of declaredKeys) this.metadata.set(k, { value: '', error: '' });
  }

  apply(e: Effects): void {
    for (const r of e.stats) {
      const k = statsKey(r);
      this.stats.set(k, (this.stats.get(k) ?? 0) + 1);
      this.statsRows++;
    }
    for (const w of e.metadata) this.write(w);
  }

  private write(w: MetadataWrite): void {
    this.metadata.set(w.key, { value: w.value, error: w.error });
    this.metadataWrites++;
  }
}

interface StatsDbRow {
  connections_by_proto: Record<string, unknown>;
  connection_count: number;
  rx_packets: number;
  rx_bytes: number;
  tx_packets: number;
  tx_bytes: number;
  connection_median_latency_ms: number;
  session_count_vscode: number;
  session_count_jetbrains: number;
  session_count_reconnecting_pty: number;
  session_count_ssh: number;
}

export interface StoredCheck {
  statsRows: number;
  metadataRows: number;
  problems: string[];
}

const clip = (s: string, max = 400) => (s.length > max ? `${s.slice(0, max)}…` : s);

async function compare(sql: Sql, agentId: string, ledger: Ledger): Promise<StoredCheck> {
  const rows = await sql<StatsDbRow[]>`
    select connections_by_proto, connection_count, rx_packets, rx_bytes, tx_packets, tx_bytes,
           connection_median_latency_ms, session_count_vscode, session_count_jetbrains,
           session_count_reconnecting_pty, session_count_ssh
    from workspace_agent_stats where agent_id = ${agentId}`;
  const meta = await sql<{ key: string; value: string; error: string }[]>`
    select key, value, error from workspace_agent_metadata where workspace_agent_id = ${agentId}`;
  const problems: string[] = [];
  const left = new Map(ledger.stats);
  for (const r of rows) {
    const byProto = r.connections_by_proto;
    if (Object.values(byProto).some((v) => typeof v !== 'number')) {
      problems.push(`connections_by_proto holds a value that is not a number: ${clip(JSON.stringify(byProto))}`);
    }
    const k = statsKey({
      connectionsByProto: byProto as Record<string, number>,
      connectionCount: r.connection_count,
      rxPackets: r.rx_packets,
      rxBytes: r.rx_bytes,
      txPackets: r.tx_packets,
      txBytes: r.tx_bytes,
      connectionMedianLatencyMs: r.connection_median_latency_ms,
      sessionCountVscode: r.session_count_vscode,
      sessionCountJetbrains: r.session_count_jetbrains,
      sessionCountReconnectingPty: r.session_count_reconnecting_pty,
      sessionCountSsh: r.session_count_ssh,
    });
    const n = left.get(k) ?? 0;
    if (n === 0) problems.push(`a stats row no valid frame accounts for (or one stored twice): ${clip(k)}`);
    else left.set(k, n - 1);
  }
  for (const [k, n] of left) {
    if (n > 0) problems.push(`${n} stats row(s) of valid frames missing: ${clip(k)}`);
  }
  const seen = new Set<string>();
  for (const m of meta) {
    seen.add(m.key);
    const want = ledger.metadata.get(m.key);
    if (!want) {
      problems.push(`a metadata row for a key that was never declared: ${JSON.stringify(m.key)}`);
      continue;
    }
    if (m.value !== want.value || m.error !== want.error) {
      problems.push(
        `metadata ${JSON.stringify(m.key)} holds value ${clip(JSON.stringify(m.value), 120)} error ${clip(JSON.stringify(m.error), 120)}; ` +
          `the last valid write was value ${clip(JSON.stringify(want.value), 120)} error ${clip(JSON.stringify(want.error), 120)}`,
      );
    }
  }
  for (const k of ledger.metadata.keys()) {
    if (!seen.has(k)) problems.push(`the declared metadata key ${JSON.stringify(k)} is gone`);
  }
  return { statsRows: rows.length, metadataRows: meta.length, problems };
}

/**
 * Compares the agent's rows with the ledger, again until they match or `settleMs` passed (writes of
 * notifications have no answer to wait for).
 */
export async function checkStored(sql: Sql, agentId: string, ledger: Ledger, settleMs = 5000): Promise<StoredCheck> {
  const until = performance.now() + settleMs;
  for (;;) {
    const c = await compare(sql, agentId, ledger);
    if (c.problems.length === 0 || performance.now() >= until) return c;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Declares metadata keys for an agent (what a template's agent metadata blocks would do). */
export async function declareMetadataKeys(sql: Sql, agentId: string, keys: readonly string[]): Promise<void> {
  const rows = keys.map((key) => ({ agentId, key }));
  await sql`
    insert into workspace_agent_metadata (workspace_agent_id, key, display_name, script, "interval", timeout)
    select i."agentId", i.key, i.key, 'echo fuzz', 10, 5
    from json_to_recordset(${JSON.stringify(rows)}::text::json) as i("agentId" uuid, key text)`;
}

/** The stats rows of an agent's `rx_bytes` values: what the steady agent sent, each once. */
export async function storedRxBytes(sql: Sql, agentId: string): Promise<number[]> {
  const rows = await sql<{ rx_bytes: number }[]>`
    select rx_bytes from workspace_agent_stats where agent_id = ${agentId} order by rx_bytes`;
  return rows.map((r) => r.rx_bytes);
}
