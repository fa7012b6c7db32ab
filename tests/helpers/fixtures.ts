// Black-box test fixtures: rows inserted with only the columns of SPEC §2, read helpers that keep
// the zero time (year 0001) intact, and small clients (raw WebSocket, HTTP, /metrics, LISTEN) for
// driving the real gateway process. Everything here talks to the gateway from the outside.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { AgentClient, PREBUILDS_OWNER_ID, type DebugSession } from '@agentgate/shared';
import WebSocket from 'ws';
import type { Sql } from '../../gateway/src/store/db.ts';

export const ZERO_TIME = '0001-01-01 00:00:00+00';
export const NS_PER_MS = 1_000_000;
export const HOUR_NS = 3_600_000_000_000;
export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

/** A short unique suffix for names that must be unique (org name, username). */
export function uniq(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Fixtures (SPEC §2)

export interface FixtureOptions {
  /** Reuse an organization instead of creating one. */
  orgId?: string;
  /** Owner of the workspace: an existing user id. Default: a new user. */
  ownerId?: string;
  /** Owner = the prebuilds system user (an unclaimed prebuild). */
  prebuild?: boolean;
  /** Reuse a template instead of creating one (the template options are then ignored). */
  templateId?: string;
  username?: string;
  templateName?: string;
  workspaceName?: string;
  agentName?: string;
  autostartSchedule?: string | null;
  /** workspaces.ttl in nanoseconds (null = unset). */
  ttlNs?: number | null;
  /** templates.activity_bump in nanoseconds (default 1 h). */
  activityBumpNs?: number;
  /** templates.default_ttl in nanoseconds (default 0). */
  defaultTtlNs?: number;
  allowUserAutostop?: boolean;
  transition?: 'start' | 'stop' | 'delete';
  /** provisioner_jobs.completed_at; null = not completed. Default: one minute ago. */
  jobCompletedAt?: Date | null;
  /** workspace_builds.deadline; null = the zero time (unset). Default: unset. */
  deadline?: Date | null;
  /** workspace_builds.max_deadline; null = the zero time (unset). Default: unset. */
  maxDeadline?: Date | null;
  /** The agent token (a UUID). Default: random. */
  token?: string;
  /** Declared metadata keys of the agent. */
  metadataKeys?: string[];
  agentDeleted?: boolean;
  workspaceDeleted?: boolean;
  /** workspaces.dormant_at (null = not dormant). */
  dormantAt?: Date | null;
}

export interface Fixture {
  orgId: string;
  userId: string;
  username: string;
  templateId: string;
  templateName: string;
  workspaceId: string;
  workspaceName: string;
  jobId: string;
  buildId: string;
  resourceId: string;
  agentId: string;
  agentName: string;
  token: string;
  metadataKeys: string[];
}

/** Inserts one org/user/template/workspace/job/build/resource/agent (+ metadata keys). */
export async function createFixture(sql: Sql, o: FixtureOptions = {}): Promise<Fixture> {
  const orgId = o.orgId ?? randomUUID();
  if (!o.orgId) await sql`insert into organizations (id, name) values (${orgId}, ${uniq('org')})`;

  let userId: string;
  let username: string;
  if (o.prebuild) {
    userId = PREBUILDS_OWNER_ID;
    username = 'prebuilds';
  } else if (o.ownerId) {
    userId = o.ownerId;
    const [u] = await sql<{ username: string }[]>`select username from users where id = ${userId}`;
    username = u!.username;
  } else {
    userId = randomUUID();
    username = o.username ?? uniq('user');
    await sql`insert into users (id, username) values (${userId}, ${username})`;
  }

  let templateId: string;
  let templateName: string;
  if (o.templateId) {
    templateId = o.templateId;
    const [t] = await sql<{ name: string }[]>`select name from templates where id = ${templateId}`;
    templateName = t!.name;
  } else {
    templateId = randomUUID();
    templateName = o.templateName ?? uniq('tpl');
    await sql`
      insert into templates (id, organization_id, name, activity_bump, default_ttl, allow_user_autostop)
      values (${templateId}, ${orgId}, ${templateName}, ${o.activityBumpNs ?? HOUR_NS}::bigint,
              ${o.defaultTtlNs ?? 0}::bigint, ${o.allowUserAutostop ?? true})`;
  }

  const workspaceId = randomUUID();
  const workspaceName = o.workspaceName ?? uniq('ws');
  await sql`
    insert into workspaces (id, owner_id, organization_id, template_id, name, deleted, autostart_schedule, ttl, dormant_at)
    values (${workspaceId}, ${userId}, ${orgId}, ${templateId}, ${workspaceName}, ${o.workspaceDeleted ?? false},
            ${o.autostartSchedule ?? null}, ${o.ttlNs ?? null}::bigint, ${o.dormantAt ?? null}::timestamptz)`;

  const jobId = randomUUID();
  const completedAt = o.jobCompletedAt === undefined ? new Date(Date.now() - MINUTE_MS) : o.jobCompletedAt;
  await sql`insert into provisioner_jobs (id, completed_at) values (${jobId}, ${completedAt}::timestamptz)`;

  const buildId = randomUUID();
  await sql`
    insert into workspace_builds (id, workspace_id, build_number, transition, job_id, deadline, max_deadline)
    values (${buildId}, ${workspaceId}, 1, ${o.transition ?? 'start'}, ${jobId},
            ${timeOrZero(o.deadline)}::text::timestamptz, ${timeOrZero(o.maxDeadline)}::text::timestamptz)`;

  const resourceId = randomUUID();
  await sql`insert into workspace_resources (id, job_id, name, type) values (${resourceId}, ${jobId}, 'dev', 'docker_container')`;

  const agentId = randomUUID();
  const agentName = o.agentName ?? uniq('agent');
  const token = o.token ?? randomUUID();
  await sql`
    insert into workspace_agents (id, resource_id, name, auth_token, deleted)
    values (${agentId}, ${resourceId}, ${agentName}, ${token}, ${o.agentDeleted ?? false})`;

  const metadataKeys = o.metadataKeys ?? [];
  for (const key of metadataKeys) {
    await sql`
      insert into workspace_agent_metadata (workspace_agent_id, key, display_name, script, "interval", timeout)
      values (${agentId}, ${key}, ${key}, 'echo hi', 10, 5)`;
  }

  return {
    orgId,
    userId,
    username,
    templateId,
    templateName,
    workspaceId,
    workspaceName,
    jobId,
    buildId,
    resourceId,
    agentId,
    agentName,
    token,
    metadataKeys,
  };
}

// Passed as text: a timestamptz parameter would go through JS Date, which reads year 0001 as 2001.
function timeOrZero(t: Date | null | undefined): string {
  return t ? t.toISOString() : ZERO_TIME;
}

/** Creates a user and returns its id. */
export async function createUser(sql: Sql, username = uniq('user')): Promise<string> {
  const id = randomUUID();
  await sql`insert into users (id, username) values (${id}, ${username})`;
  return id;
}

/**
 * Adds build number (latest + 1) to the fixture's workspace, with its own job and, optionally, a
 * resource and agent; after this the fixture's agent no longer belongs to the latest build.
 */
export async function addNewerBuild(
  sql: Sql,
  fx: Fixture,
  o: { transition?: 'start' | 'stop' | 'delete'; withAgent?: boolean } = {},
): Promise<{ buildId: string; jobId: string; agentId?: string; token?: string }> {
  const jobId = randomUUID();
  await sql`insert into provisioner_jobs (id, completed_at) values (${jobId}, now())`;
  const buildId = randomUUID();
  await sql`
    insert into workspace_builds (id, workspace_id, build_number, transition, job_id)
    select ${buildId}, ${fx.workspaceId}, coalesce(max(build_number), 0) + 1, ${o.transition ?? 'start'}, ${jobId}
    from workspace_builds where workspace_id = ${fx.workspaceId}`;
  if (!o.withAgent) return { buildId, jobId };
  const resourceId = randomUUID();
  await sql`insert into workspace_resources (id, job_id, name, type) values (${resourceId}, ${jobId}, 'dev', 'docker_container')`;
  const agentId = randomUUID();
  const token = randomUUID();
  await sql`insert into workspace_agents (id, resource_id, name, auth_token) values (${agentId}, ${resourceId}, ${uniq('agent')}, ${token})`;
  return { buildId, jobId, agentId, token };
}

export async function renameWorkspace(sql: Sql, workspaceId: string, name: string): Promise<void> {
  await sql`update workspaces set name = ${name}, updated_at = now() where id = ${workspaceId}`;
}

/** Claims a prebuild: sets the owner to a real user (created when not given); returns the owner id. */
export async function claimPrebuild(sql: Sql, workspaceId: string, ownerId?: string): Promise<string> {
  const owner = ownerId ?? (await createUser(sql));
  await sql`update workspaces set owner_id = ${owner}, updated_at = now() where id = ${workspaceId}`;
  return owner;
}

export async function deleteWorkspace(sql: Sql, workspaceId: string): Promise<void> {
  await sql`update workspaces set deleted = true, updated_at = now() where id = ${workspaceId}`;
}

export async function makeDormant(sql: Sql, workspaceId: string): Promise<void> {
  await sql`update workspaces set dormant_at = now(), updated_at = now() where id = ${workspaceId}`;
}

export async function deleteAgent(sql: Sql, agentId: string): Promise<void> {
  await sql`update workspace_agents set deleted = true, updated_at = now() where id = ${agentId}`;
}

/** Gives the agent a new token and returns it. */
export async function rotateToken(sql: Sql, agentId: string): Promise<string> {
  const token = randomUUID();
  await sql`update workspace_agents set auth_token = ${token}, updated_at = now() where id = ${agentId}`;
  return token;
}

// ---------------------------------------------------------------------------------------------
// Reads. Timestamps come back as epoch milliseconds computed in SQL, and the zero time as null,
// so that year 0001 is never handed to JavaScript's Date parser.

const ms = (col: string) => `case when ${col} is null or ${col} = '${ZERO_TIME}' then null
  else (extract(epoch from ${col}) * 1000)::float8 end`;

export interface BuildRow {
  deadlineMs: number | null;
  maxDeadlineMs: number | null;
  /** deadline as PostgreSQL text, e.g. '0001-01-01 00:00:00+00'. */
  deadlineText: string;
}

export async function readBuild(sql: Sql, buildId: string): Promise<BuildRow> {
  const [r] = await sql.unsafe<{ deadline_ms: number | null; max_deadline_ms: number | null; deadline_text: string }[]>(
    `select ${ms('deadline')} as deadline_ms, ${ms('max_deadline')} as max_deadline_ms,
            to_char(deadline at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as deadline_text
     from workspace_builds where id = $1`,
    [buildId],
  );
  if (!r) throw new Error(`no build ${buildId}`);
  return { deadlineMs: r.deadline_ms, maxDeadlineMs: r.max_deadline_ms, deadlineText: r.deadline_text };
}

export interface AgentRow {
  firstConnectedAtMs: number | null;
  lastConnectedAtMs: number | null;
  disconnectedAtMs: number | null;
}

export async function readAgent(sql: Sql, agentId: string): Promise<AgentRow> {
  const [r] = await sql.unsafe<{ f: number | null; l: number | null; d: number | null }[]>(
    `select ${ms('first_connected_at')} as f, ${ms('last_connected_at')} as l, ${ms('disconnected_at')} as d
     from workspace_agents where id = $1`,
    [agentId],
  );
  if (!r) throw new Error(`no agent ${agentId}`);
  return { firstConnectedAtMs: r.f, lastConnectedAtMs: r.l, disconnectedAtMs: r.d };
}

/** workspaces.last_used_at in epoch ms, or null while it is the zero time. */
export async function readLastUsedAt(sql: Sql, workspaceId: string): Promise<number | null> {
  const [r] = await sql.unsafe<{ v: number | null }[]>(
    `select ${ms('last_used_at')} as v from workspaces where id = $1`,
    [workspaceId],
  );
  if (!r) throw new Error(`no workspace ${workspaceId}`);
  return r.v;
}

export interface MetadataRow {
  key: string;
  value: string;
  error: string;
  collectedAtMs: number | null;
}

/** The agent's metadata rows, keyed by key. */
export async function readMetadata(sql: Sql, agentId: string): Promise<Map<string, MetadataRow>> {
  const rows = await sql.unsafe<{ key: string; value: string; error: string; c: number | null }[]>(
    `select key, value, error, ${ms('collected_at')} as c from workspace_agent_metadata where workspace_agent_id = $1`,
    [agentId],
  );
  return new Map(rows.map((r) => [r.key, { key: r.key, value: r.value, error: r.error, collectedAtMs: r.c }]));
}

export interface StatsRow {
  id: string;
  createdAtMs: number;
  user_id: string;
  agent_id: string;
  workspace_id: string;
  template_id: string;
  connections_by_proto: Record<string, unknown>;
  /** jsonb_typeof of every value in connections_by_proto. */
  proto_types: Record<string, string>;
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
  usage: boolean;
}

/** Every stats row of the agent, oldest first. */
export async function readStats(sql: Sql, agentId: string): Promise<StatsRow[]> {
  return sql.unsafe<StatsRow[]>(
    `select s.id, (extract(epoch from s.created_at) * 1000)::float8 as "createdAtMs", s.user_id, s.agent_id,
            s.workspace_id, s.template_id, s.connections_by_proto,
            coalesce((select jsonb_object_agg(k, jsonb_typeof(v)) from jsonb_each(s.connections_by_proto) as e(k, v)),
                     '{}'::jsonb) as proto_types,
            s.connection_count, s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes, s.connection_median_latency_ms,
            s.session_count_vscode, s.session_count_jetbrains, s.session_count_reconnecting_pty,
            s.session_count_ssh, s.usage
     from workspace_agent_stats s where s.agent_id = $1 order by s.created_at, s.id`,
    [agentId],
  );
}

export async function countStats(sql: Sql, agentId: string): Promise<number> {
  const [r] = await sql<
    { n: number }[]
  >`select count(*)::int as n from workspace_agent_stats where agent_id = ${agentId}`;
  return r!.n;
}

// ---------------------------------------------------------------------------------------------
// Waiting

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `fn` until it returns something other than undefined/null/false, and returns that; throws after
 * `timeoutMs` with `what` and the last value or error seen.
 */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  { timeoutMs = 5000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v as T;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${show(last)}`);
    }
    await sleep(intervalMs);
  }
}

function show(v: unknown): string {
  if (v instanceof Error) return v.message;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** Rejects after `ms` unless `p` settles first. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Agent connections

/** An AgentClient that does not reconnect, connected. */
export async function connectAgent(
  url: string,
  token: string,
  o: { tokenHeader?: 'coder' | 'bearer'; requestTimeoutMs?: number } = {},
): Promise<AgentClient> {
  const c = new AgentClient({ url, token, reconnect: false, requestTimeoutMs: o.requestTimeoutMs ?? 10_000, ...o });
  await c.connect();
  return c;
}

export interface CloseInfo {
  code: number;
  reason: string;
  at: number;
}

/** A raw WebSocket that queues every text message (parsed JSON) and records the close. */
export class RawSocket {
  readonly messages: unknown[] = [];
  private waiters: (() => void)[] = [];
  readonly closed: Promise<CloseInfo>;
  closeInfo: CloseInfo | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      let v: unknown;
      try {
        v = isBinary ? { binary: text } : JSON.parse(text);
      } catch {
        v = { unparsable: text };
      }
      this.messages.push(v);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        this.wake();
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {
      /* surfaced through `closed` */
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static open(url: string, token: string, header: 'coder' | 'bearer' = 'coder'): Promise<RawSocket> {
    const headers: Record<string, string> =
      header === 'bearer' ? { Authorization: `Bearer ${token}` } : { 'Coder-Session-Token': token };
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: 10_000 });
    return new Promise((resolve, reject) => {
      const s = new RawSocket(ws);
      ws.once('open', () => resolve(s));
      ws.once('unexpected-response', (_req, res) => {
        ws.terminate();
        reject(new Error(`upgrade refused with ${res.statusCode}`));
      });
      ws.once('error', reject);
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a string as is, or an object as JSON. */
  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  sendBytes(data: Buffer, binary: boolean): void {
    this.ws.send(data, { binary });
  }

  /** The next message not yet taken; rejects after `timeoutMs` or when the socket closes first. */
  async next(timeoutMs = 5000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.messages.length > 0) return this.messages.shift();
      if (this.closeInfo) throw new Error(`socket closed with ${this.closeInfo.code} before a message came`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends `frame` and returns the next message. */
  async request(frame: unknown, timeoutMs = 5000): Promise<Record<string, unknown>> {
    this.send(frame);
    return (await this.next(timeoutMs)) as Record<string, unknown>;
  }

  async waitClosed(timeoutMs = 5000): Promise<CloseInfo> {
    return withTimeout(this.closed, timeoutMs, 'socket close');
  }

  close(): Promise<CloseInfo> {
    if (!this.closeInfo) this.ws.close(1000);
    return withTimeout(this.closed, 3000, 'socket close').catch(() => {
      this.ws.terminate();
      return { code: 1006, reason: 'terminated', at: Date.now() };
    });
  }
}

/** A JSON-RPC 2.0 request frame. */
export function rpc(id: unknown, method: string, params?: unknown): Record<string, unknown> {
  const f: Record<string, unknown> = { jsonrpc: '2.0', id, method };
  if (params !== undefined) f['params'] = params;
  return f;
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON, or undefined. */
  json: unknown;
  /** The server switched protocols (a WebSocket was created). */
  upgraded: boolean;
}

/**
 * One HTTP request; with `upgrade` it carries a valid WebSocket handshake. A 101 answer is reported
 * as `upgraded` and its socket closed at once.
 */
export function httpRequest(
  url: string,
  o: { method?: string; headers?: Record<string, string>; upgrade?: boolean; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.upgrade) {
    headers['Connection'] = 'Upgrade';
    headers['Upgrade'] = 'websocket';
    headers['Sec-WebSocket-Version'] = '13';
    headers['Sec-WebSocket-Key'] = randomBytes(16).toString('base64');
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? 'GET', headers, agent: false });
    const t = setTimeout(() => {
      req.destroy(new Error(`no answer from ${url} within ${o.timeoutMs ?? 5000} ms`));
    }, o.timeoutMs ?? 5000);
    req.on('upgrade', (res, socket) => {
      clearTimeout(t);
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '', json: undefined, upgraded: true });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(t);
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json, upgraded: false });
      });
      res.on('error', reject);
    });
    req.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    req.end();
  });
}

/** GET /debug/sessions with the admin token. */
export async function debugSessions(httpUrl: string, adminToken: string): Promise<DebugSession[]> {
  const r = await httpRequest(`${httpUrl}/debug/sessions`, { headers: { Authorization: `Bearer ${adminToken}` } });
  if (r.status !== 200) throw new Error(`/debug/sessions answered ${r.status}: ${r.body}`);
  return (r.json as { sessions: DebugSession[] }).sessions;
}

export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

// ---------------------------------------------------------------------------------------------
// Prometheus text

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/g;

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = SAMPLE_RE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(LABEL_RE)) {
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    const v = m[3]!;
    out.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

export async function scrape(httpUrl: string): Promise<Sample[]> {
  const r = await httpRequest(`${httpUrl}/metrics`);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parseMetrics(r.body);
}

/** Samples named `name` whose labels include every pair of `labels`. */
export function samples(all: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The sum of the matching samples (0 when none match). */
export function metricSum(all: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples(all, name, labels).reduce((a, s) => a + s.value, 0);
}

/** The §6 counters, read in one scrape. */
export async function authCounters(
  httpUrl: string,
): Promise<{ connect: number; refresh: number; fallback: number; hit: number; miss: number }> {
  const all = await scrape(httpUrl);
  return {
    connect: metricSum(all, 'agentgate_workspace_lookups_total', { reason: 'connect' }),
    refresh: metricSum(all, 'agentgate_workspace_lookups_total', { reason: 'refresh' }),
    fallback: metricSum(all, 'agentgate_workspace_lookups_total', { reason: 'fallback' }),
    hit: metricSum(all, 'agentgate_identity_cache_total', { result: 'hit' }),
    miss: metricSum(all, 'agentgate_identity_cache_total', { result: 'miss' }),
  };
}

// ---------------------------------------------------------------------------------------------
// LISTEN

export interface Listener {
  /** Payloads received so far, parsed as JSON when possible. */
  payloads: unknown[];
  /** The same payloads as sent. */
  raw: string[];
  unlisten(): Promise<void>;
}

/** LISTENs on `channel` (resolves once the LISTEN is active). */
export async function listen(sql: Sql, channel: string): Promise<Listener> {
  const payloads: unknown[] = [];
  const raw: string[] = [];
  const sub = await sql.listen(channel, (p) => {
    raw.push(p);
    try {
      payloads.push(JSON.parse(p));
    } catch {
      payloads.push(p);
    }
  });
  return { payloads, raw, unlisten: () => sub.unlisten() };
}

// ---------------------------------------------------------------------------------------------
// Time zones, without a cron library

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

// ---------------------------------------------------------------------------------------------
// A loopback TCP proxy in front of PostgreSQL, to take the database away from one gateway.

export interface TcpProxy {
  port: number;
  /** The `postgres://` URL `url` rewritten to go through the proxy. */
  rewrite(url: string): string;
  /** Refuses new connections and resets every open one (the database is unreachable). */
  cut(): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  const targetHost = target.hostname;
  const open = new Set<net.Socket>();
  const make = () =>
    net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      open.add(client);
      open.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        open.delete(client);
        open.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  let server = make();
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    });
  const port = await listen(0);
  const closeServer = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return {
    port,
    rewrite(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    async cut() {
      const closing = closeServer();
      for (const s of open) s.resetAndDestroy();
      open.clear();
      await closing;
    },
    async restore() {
      if (server.listening) return;
      server = make();
      await listen(port);
    },
    async close() {
      for (const s of open) s.destroy();
      if (server.listening) await closeServer();
    },
  };
}
