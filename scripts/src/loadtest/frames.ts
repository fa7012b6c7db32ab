// What a load agent reports: Stats shaped like a real agent's (a few connections, growing rx/tx
// counters, sessions by kind) and metadata for the keys the seed declares (m0..m{K-1}).
import type { MetadataItem, Stats } from '@agentgate/shared';

/** Per-agent counters that grow from frame to frame, as a real agent's network counters do. */
export interface AgentTraffic {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  seq: number;
}

export function newTraffic(): AgentTraffic {
  return { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, seq: 0 };
}

const int = (max: number): number => Math.floor(Math.random() * (max + 1));

/**
 * Metadata keys per agent that `seed` declares and `loadtest` sends by default: the same, or the
 * gateway acknowledges the metadata frames and stores nothing (it ignores undeclared keys, SPEC §4).
 */
export const DEFAULT_METADATA_KEYS = 4;

/** The metadata key names `seed` declares and `loadtest` sends (m0..m{K-1}). */
export function metadataKeyNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `m${i}`);
}

export function makeStats(t: AgentTraffic): Stats {
  t.seq++;
  const ssh = int(2);
  const vscode = int(1);
  const jetbrains = int(4) === 0 ? 1 : 0;
  const pty = int(1);
  t.rxPackets += 10 + int(200);
  t.rxBytes += 1_000 + int(60_000);
  t.txPackets += 10 + int(200);
  t.txBytes += 1_000 + int(120_000);
  return {
    connectionsByProto: { ssh, vscode, jetbrains, 'reconnecting-pty': pty },
    connectionCount: ssh + vscode + jetbrains + pty,
    connectionMedianLatencyMs: 1 + Math.round(Math.random() * 400) / 10,
    rxPackets: t.rxPackets,
    rxBytes: t.rxBytes,
    txPackets: t.txPackets,
    txBytes: t.txBytes,
    sessionCountVscode: vscode,
    sessionCountJetbrains: jetbrains,
    sessionCountReconnectingPty: pty,
    sessionCountSsh: ssh,
  };
}

export function makeMetadata(keys: readonly string[], t: AgentTraffic): MetadataItem[] {
  t.seq++;
  const collectedAt = new Date().toISOString();
  return keys.map((key, i) => ({
    key,
    result: { value: i === 0 ? `${(Math.random() * 100).toFixed(1)}%` : `${key}=${t.seq}`, error: '', collectedAt },
  }));
}
