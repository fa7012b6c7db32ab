// `npx agentgate seed` (SPEC §9): creates orgs, users, templates, workspaces, completed provisioner
// jobs, one `start` build per workspace, resources, agents and their declared metadata keys, in
// batched `unnest` statements, and writes the agents' tokens for the load test.
import { randomBytes, randomUUID } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DATABASE_OPTIONS } from '@agentgate/gateway/config';
import { resolveDatabase } from '@agentgate/gateway/embedded';
import { type OptionTable, parse } from '@agentgate/gateway/options';
import { connect, type Sql } from '@agentgate/gateway/store/db';
import { checkDatabase } from '@agentgate/gateway/store/db-check';
import { migrate } from '@agentgate/gateway/store/migrate';
import { PREBUILDS_OWNER_ID } from '@agentgate/shared';
import { DEFAULT_METADATA_KEYS, metadataKeyNames } from './loadtest/frames.js';

export interface SeededAgent {
  agentId: string;
  workspaceId: string;
  token: string;
}

export interface SeedOptions {
  agents: number;
  /** Declared metadata keys per agent (default 0 here; the CLI's default is the 4 keys `loadtest` sends). */
  metadataKeys?: number;
  /** Share of workspaces (0..1) owned by the prebuilds user: unclaimed prebuilds. */
  prebuildFraction?: number;
  /** Called after each batch with the agents written so far (all commit together at the end). */
  onProgress?: (done: number, total: number) => void;
}

const ORGS = 3;
const TEMPLATES_PER_ORG = 2;
const WORKSPACES_PER_USER = 10;
/** Upper bound of rows per statement (metadata rows grow with K). */
const ROWS_PER_STATEMENT = 20_000;
const MAX_WORKSPACES_PER_BATCH = 2_500;
const HOUR_NS = 3_600_000_000_000;

/**
 * Inserts `agents` workspaces, each with one agent and `metadataKeys` declared metadata keys
 * (`m0`..`m{K-1}`, the names `loadtest` sends), in one transaction. Names carry a random suffix so
 * that seeding the same database again never collides.
 */
export async function seed(sql: Sql, opts: SeedOptions): Promise<SeededAgent[]> {
  const n = opts.agents;
  const k = opts.metadataKeys ?? 0;
  const fraction = opts.prebuildFraction ?? 0;
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`agents must be a positive integer, got ${n}`);
  if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`metadataKeys must be an integer >= 0, got ${k}`);
  if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`prebuildFraction must be in 0..1, got ${fraction}`);

  const run = randomBytes(4).toString('hex');
  const prebuilds = Math.round(fraction * n);
  const owned = n - prebuilds;

  const orgIds = Array.from({ length: Math.min(ORGS, n) }, () => randomUUID());
  const templates = orgIds.flatMap((orgId) =>
    Array.from({ length: TEMPLATES_PER_ORG }, () => ({ id: randomUUID(), orgId })),
  );
  const userIds = Array.from({ length: Math.ceil(owned / WORKSPACES_PER_USER) }, () => randomUUID());

  const keys = metadataKeyNames(k);
  const perBatch = Math.max(1, Math.min(MAX_WORKSPACES_PER_BATCH, Math.floor(ROWS_PER_STATEMENT / Math.max(1, k))));
  const out: SeededAgent[] = [];

  await sql.begin(async (tx) => {
    await tx`
      insert into organizations (id, name)
      select * from unnest(${orgIds}::uuid[], ${orgIds.map((_, i) => `org-${run}-${i}`)}::text[])`;
    await tx`
      insert into templates (id, organization_id, name, default_ttl)
      select id, org, name, ${8 * HOUR_NS}::bigint
      from unnest(
        ${templates.map((t) => t.id)}::uuid[],
        ${templates.map((t) => t.orgId)}::uuid[],
        ${templates.map((_, i) => `template-${run}-${i}`)}::text[]
      ) as t(id, org, name)`;
    for (let i = 0; i < userIds.length; i += ROWS_PER_STATEMENT) {
      const ids = userIds.slice(i, i + ROWS_PER_STATEMENT);
      await tx`
        insert into users (id, username)
        select * from unnest(${ids}::uuid[], ${ids.map((_, j) => `user-${run}-${i + j}`)}::text[])`;
    }

    let ownedSoFar = 0;
    for (let start = 0; start < n; start += perBatch) {
      const size = Math.min(perBatch, n - start);
      const ws = {
        id: [] as string[],
        owner: [] as string[],
        org: [] as string[],
        template: [] as string[],
        name: [] as string[],
      };
      const job: string[] = [];
      const build: string[] = [];
      const resource: string[] = [];
      const agent: string[] = [];
      const token: string[] = [];
      for (let i = start; i < start + size; i++) {
        // Spread prebuilds evenly over the workspaces instead of putting them all first.
        const isPrebuild = Math.floor(((i + 1) * prebuilds) / n) > Math.floor((i * prebuilds) / n);
        const tpl = templates[i % templates.length]!;
        ws.id.push(randomUUID());
        ws.owner.push(isPrebuild ? PREBUILDS_OWNER_ID : userIds[Math.floor(ownedSoFar++ / WORKSPACES_PER_USER)]!);
        ws.org.push(tpl.orgId);
        ws.template.push(tpl.id);
        ws.name.push(`${isPrebuild ? 'prebuild' : 'ws'}-${run}-${i}`);
        job.push(randomUUID());
        build.push(randomUUID());
        resource.push(randomUUID());
        agent.push(randomUUID());
        token.push(randomUUID());
      }
      await tx`
        insert into provisioner_jobs (id, completed_at)
        select id, now() from unnest(${job}::uuid[]) as j(id)`;
      await tx`
        insert into workspaces (id, owner_id, organization_id, template_id, name, ttl)
        select id, owner, org, template, name, ${8 * HOUR_NS}::bigint
        from unnest(${ws.id}::uuid[], ${ws.owner}::uuid[], ${ws.org}::uuid[], ${ws.template}::uuid[], ${ws.name}::text[])
          as w(id, owner, org, template, name)`;
      await tx`
        insert into workspace_builds (id, workspace_id, build_number, transition, job_id, deadline)
        select id, workspace, 1, 'start', job, now() + interval '8 hours'
        from unnest(${build}::uuid[], ${ws.id}::uuid[], ${job}::uuid[]) as b(id, workspace, job)`;
      await tx`
        insert into workspace_resources (id, job_id, name, type)
        select id, job, 'dev', 'docker_container' from unnest(${resource}::uuid[], ${job}::uuid[]) as r(id, job)`;
      await tx`
        insert into workspace_agents (id, resource_id, name, auth_token)
        select id, resource, 'main', token
        from unnest(${agent}::uuid[], ${resource}::uuid[], ${token}::uuid[]) as a(id, resource, token)`;
      if (k > 0) {
        await tx`
          insert into workspace_agent_metadata (workspace_agent_id, key, display_name, script, timeout, "interval")
          select a.id, g.key, 'Metric ' || (g.i - 1), 'echo ' || (g.i - 1), 5, 10
          from unnest(${agent}::uuid[]) as a(id) cross join unnest(${keys}::text[]) with ordinality as g(key, i)`;
      }
      for (let i = 0; i < size; i++) out.push({ agentId: agent[i]!, workspaceId: ws.id[i]!, token: token[i]! });
      opts.onProgress?.(out.length, n);
    }
  });
  return out;
}

export const SEED_OPTIONS = {
  agents: {
    flag: '--agents',
    kind: 'int',
    min: 1,
    required: true,
    help: 'agents to create, each in its own workspace',
  },
  metadataKeys: {
    flag: '--metadata-keys',
    kind: 'int',
    min: 0,
    default: String(DEFAULT_METADATA_KEYS),
    arg: 'K',
    help: 'metadata keys declared per agent (m0..m{K-1}, the keys loadtest sends; the gateway ignores undeclared keys)',
  },
  prebuildFraction: {
    flag: '--prebuild-fraction',
    kind: 'number',
    min: 0,
    max: 1,
    default: '0',
    arg: 'F',
    help: 'share of workspaces owned by the prebuilds user (unclaimed prebuilds)',
  },
  out: {
    flag: '--out',
    kind: 'out-file',
    required: true,
    help: 'where the tokens are written (mode 0600): [{agentId, workspaceId, token}]',
  },
  ...DATABASE_OPTIONS,
} as const satisfies OptionTable;

/** `agentgate seed ...`; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parse(SEED_OPTIONS, argv, env);
  const db = await resolveDatabase({ databaseUrl: args.databaseUrl, dataDir: path.join(args.dataDir, 'pgdata') });
  try {
    await checkDatabase(db.url);
  } catch (err) {
    await db.stop();
    throw err;
  }
  const sql = connect(db.url, { max: 1, applicationName: 'agentgate-seed' });
  try {
    await migrate(sql);
    const started = performance.now();
    let reported = 0;
    const agents = await seed(sql, {
      agents: args.agents,
      metadataKeys: args.metadataKeys,
      prebuildFraction: args.prebuildFraction,
      onProgress: (done, total) => {
        if (done < total && Math.floor(done / 10_000) > reported) {
          reported = Math.floor(done / 10_000);
          const s = ((performance.now() - started) / 1000).toFixed(1);
          process.stderr.write(`seed: ${done}/${total} agents (${s}s)\n`);
        }
      },
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    // One entry per line: valid JSON that a human can still read and diff.
    writeSecret(args.out, `[\n${agents.map((a) => JSON.stringify(a)).join(',\n')}\n]\n`);
    const prebuilds = Math.round(args.prebuildFraction * args.agents);
    console.log(
      `seeded ${agents.length} agents in ${agents.length} workspaces (${prebuilds} prebuilds), ` +
        `${agents.length * args.metadataKeys} metadata keys in ${seconds}s; tokens written to ${args.out}`,
    );
    return 0;
  } finally {
    await sql.end({ timeout: 5 });
    await db.stop();
  }
}

/**
 * Writes the tokens readable by their owner only (0600): a new file in the same directory, created
 * exclusively, then renamed over `file`. An existing file's mode never applies, and nothing that had
 * the old file open can read the new tokens.
 */
function writeSecret(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
