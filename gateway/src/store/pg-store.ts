// The Store of the running gateway: the statements of lookups.ts and writes.ts bound to their pools.
import type { AgentWorkspaceRow, RefreshRow } from '../domain.js';
import type { Sql } from './db.js';
import { agentByToken, refreshIdentities, workspaceByAgentId } from './lookups.js';
import type { ActivityRow, AgentConnectionRow, MetadataRow, StatsRow, Store } from './store.js';
import {
  bumpAndNotifyActivity,
  insertStatsBatch,
  markWorkspacesUsed,
  updateAgentConnections,
  updateMetadataBatch,
} from './writes.js';

export class PgStore implements Store {
  /**
   * `sql` serves the per-connection lookups (prepared: their generic plans are good). `batchSql`
   * serves the bulk statements over `unnest` arrays, unprepared: PostgreSQL's generic plan for
   * them (chosen after five executions) does not know the array sizes and ran 25x slower here.
   * Separate pools also keep lookups from queueing behind a long batch.
   */
  private readonly batchSql: Sql;

  constructor(
    private readonly sql: Sql,
    batchSql?: Sql,
  ) {
    this.batchSql = batchSql ?? sql;
  }

  agentByToken(token: string, signal?: AbortSignal): Promise<AgentWorkspaceRow | undefined> {
    return agentByToken(this.sql, token, signal);
  }

  workspaceByAgentId(agentId: string): Promise<AgentWorkspaceRow | undefined> {
    return workspaceByAgentId(this.sql, agentId);
  }

  refreshIdentities(pairs: { agentId: string; workspaceId: string }[]): Promise<RefreshRow[]> {
    return refreshIdentities(this.batchSql, pairs);
  }

  insertStatsBatch(rows: StatsRow[], signal?: AbortSignal): Promise<void> {
    return insertStatsBatch(this.batchSql, rows, signal);
  }

  updateMetadataBatch(rows: MetadataRow[], collectedAt: string, signal?: AbortSignal): Promise<number> {
    return updateMetadataBatch(this.batchSql, rows, collectedAt, signal);
  }

  bumpAndNotifyActivity(rows: ActivityRow[]): Promise<void> {
    return bumpAndNotifyActivity(this.batchSql, rows);
  }

  markWorkspacesUsed(workspaceIds: string[], at: string): Promise<void> {
    return markWorkspacesUsed(this.batchSql, workspaceIds, at);
  }

  updateAgentConnections(rows: AgentConnectionRow[]): Promise<void> {
    return updateAgentConnections(this.batchSql, rows);
  }

  async ping(): Promise<void> {
    await this.sql`select 1`;
  }
}
