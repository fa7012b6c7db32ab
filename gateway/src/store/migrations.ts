// The schema of SPEC §2, as ordered migrations. Kept as TypeScript strings so that `tsc` ships
// them in dist/ with no copy step. Never edit a released migration: add the next one.
import { PREBUILDS_OWNER_ID } from '@agentgate/shared';
import { statsPartitionsAndRollup } from './migrations-stats.js';

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    id: 1,
    name: 'schema',
    sql: /* sql */ `
create table organizations (
  id uuid primary key,
  name text not null unique,
  created_at timestamptz not null default now()
);

create table users (
  id uuid primary key,
  username text not null unique,
  deleted boolean not null default false,
  created_at timestamptz not null default now()
);

create table templates (
  id uuid primary key,
  organization_id uuid not null references organizations,
  name text not null,
  deleted boolean not null default false,
  activity_bump bigint not null default 3600000000000,
  default_ttl bigint not null default 0,
  allow_user_autostop boolean not null default true
);

create table workspaces (
  id uuid primary key,
  owner_id uuid not null references users,
  organization_id uuid not null references organizations,
  template_id uuid not null references templates,
  name text not null,
  deleted boolean not null default false,
  autostart_schedule text null,
  ttl bigint null,
  last_used_at timestamptz not null default '0001-01-01 00:00:00+00',
  dormant_at timestamptz null,
  group_acl jsonb not null default '{}',
  user_acl jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index workspaces_owner_id_idx on workspaces (owner_id);
create index workspaces_template_id_idx on workspaces (template_id);

create table provisioner_jobs (
  id uuid primary key,
  completed_at timestamptz null,
  created_at timestamptz not null default now()
);

create table workspace_builds (
  id uuid primary key,
  workspace_id uuid not null references workspaces,
  build_number int not null,
  transition text not null check (transition in ('start', 'stop', 'delete')),
  job_id uuid not null references provisioner_jobs,
  deadline timestamptz not null default '0001-01-01 00:00:00+00',
  max_deadline timestamptz not null default '0001-01-01 00:00:00+00',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, build_number)
);
-- agent -> resource -> build: the build is found by its job.
create index workspace_builds_job_id_idx on workspace_builds (job_id);

create table workspace_resources (
  id uuid primary key,
  job_id uuid not null references provisioner_jobs,
  name text not null,
  type text not null,
  created_at timestamptz not null default now()
);
create index workspace_resources_job_id_idx on workspace_resources (job_id);

create table workspace_agents (
  id uuid primary key,
  resource_id uuid not null references workspace_resources,
  name text not null,
  auth_token uuid not null unique,
  deleted boolean not null default false,
  first_connected_at timestamptz null,
  last_connected_at timestamptz null,
  disconnected_at timestamptz null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index workspace_agents_resource_id_idx on workspace_agents (resource_id);

create table workspace_agent_metadata (
  workspace_agent_id uuid not null references workspace_agents,
  key varchar(127) not null,
  display_name text not null default '',
  script text not null default '',
  value text not null default '',
  error text not null default '',
  timeout bigint not null default 0,
  "interval" bigint not null default 0,
  collected_at timestamptz not null default '0001-01-01 00:00:00+00',
  primary key (workspace_agent_id, key)
);

-- No foreign keys: inserting a stats row must not read another table (SPEC §2).
create table workspace_agent_stats (
  id uuid primary key,
  created_at timestamptz not null,
  user_id uuid not null,
  agent_id uuid not null,
  workspace_id uuid not null,
  template_id uuid not null,
  connections_by_proto jsonb not null default '{}',
  connection_count bigint not null default 0,
  rx_packets bigint not null default 0,
  rx_bytes bigint not null default 0,
  tx_packets bigint not null default 0,
  tx_bytes bigint not null default 0,
  connection_median_latency_ms double precision not null default -1,
  session_count_vscode bigint not null default 0,
  session_count_jetbrains bigint not null default 0,
  session_count_reconnecting_pty bigint not null default 0,
  session_count_ssh bigint not null default 0,
  usage boolean not null default false
);
create index workspace_agent_stats_created_at_idx on workspace_agent_stats (created_at);

create view workspaces_expanded as
select w.*, u.username as owner_username, t.name as template_name
from workspaces w
join users u on u.id = w.owner_id
join templates t on t.id = w.template_id;

insert into users (id, username) values ('${PREBUILDS_OWNER_ID}', 'prebuilds');
`,
  },
  {
    // SPEC §8 push invalidation: after a commit that really changes an identity column, NOTIFY
    // agentgate_identity naming the id. `update of` + `when (... is distinct from ...)` keep the
    // gateway's own writes (last_used_at, deadlines, connection times, updated_at) silent.
    // pg_notify in a trigger is sent at commit, and PostgreSQL folds duplicate payloads of one
    // transaction, so a bulk update notifies once per distinct id.
    id: 3,
    name: 'identity_notify',
    sql: /* sql */ `
create function agentgate_notify_identity() returns trigger language plpgsql as $$
declare
  row_id uuid;
begin
  if tg_op = 'DELETE' then row_id := old.id; else row_id := new.id; end if;
  perform pg_notify('agentgate_identity', jsonb_build_object(tg_argv[0], row_id)::text);
  return null;
end
$$;

create trigger agentgate_identity_update
after update of owner_id, organization_id, template_id, name, autostart_schedule, deleted, dormant_at on workspaces
for each row when (
  old.owner_id is distinct from new.owner_id or old.organization_id is distinct from new.organization_id
  or old.template_id is distinct from new.template_id or old.name is distinct from new.name
  or old.autostart_schedule is distinct from new.autostart_schedule or old.deleted is distinct from new.deleted
  or old.dormant_at is distinct from new.dormant_at)
execute function agentgate_notify_identity('workspace_id');
create trigger agentgate_identity_delete after delete on workspaces
for each row execute function agentgate_notify_identity('workspace_id');

create trigger agentgate_identity_update after update of username on users
for each row when (old.username is distinct from new.username)
execute function agentgate_notify_identity('owner_id');

create trigger agentgate_identity_update after update of name on templates
for each row when (old.name is distinct from new.name)
execute function agentgate_notify_identity('template_id');

create trigger agentgate_identity_update after update of auth_token, deleted on workspace_agents
for each row when (old.auth_token is distinct from new.auth_token or old.deleted is distinct from new.deleted)
execute function agentgate_notify_identity('agent_id');
create trigger agentgate_identity_delete after delete on workspace_agents
for each row execute function agentgate_notify_identity('agent_id');
`,
  },
  {
    // SPEC §8 bulk updates: migration 3 notified once per row, so a sweep of 100 000 workspaces sent
    // 100 000 notifications and held the global notify lock at commit. Statement-level triggers
    // see the statement's rows in transition tables: up to 1000 changed rows notify one id each,
    // more send one {"all": true}. PostgreSQL allows no `update of <columns>` with transition
    // tables, so the functions compare old and new identity columns themselves: the gateway's own
    // writes (last_used_at, deadlines, connection times) change no identity column and stay silent.
    id: 4,
    name: 'identity_notify_per_statement',
    sql: /* sql */ `
drop trigger agentgate_identity_update on workspaces;
drop trigger agentgate_identity_delete on workspaces;
drop trigger agentgate_identity_update on users;
drop trigger agentgate_identity_update on templates;
drop trigger agentgate_identity_update on workspace_agents;
drop trigger agentgate_identity_delete on workspace_agents;
drop function agentgate_notify_identity();

-- ids: the changed rows, at most 1001 (the callers' limit): one notification each, or one for all.
create function agentgate_notify_ids(key text, ids uuid[]) returns void language plpgsql as $$
declare
  row_id uuid;
begin
  if cardinality(ids) > 1000 then
    perform pg_notify('agentgate_identity', jsonb_build_object('all', true)::text);
    return;
  end if;
  foreach row_id in array ids loop
    perform pg_notify('agentgate_identity', jsonb_build_object(key, row_id)::text);
  end loop;
end
$$;

create function agentgate_notify_workspaces_update() returns trigger language plpgsql as $$
begin
  perform agentgate_notify_ids('workspace_id', array(
    select n.id from new_rows n join old_rows o on o.id = n.id
    where (o.owner_id, o.organization_id, o.template_id, o.name, o.autostart_schedule, o.deleted, o.dormant_at)
      is distinct from (n.owner_id, n.organization_id, n.template_id, n.name, n.autostart_schedule, n.deleted, n.dormant_at)
    limit 1001));
  return null;
end
$$;

create function agentgate_notify_users_update() returns trigger language plpgsql as $$
begin
  perform agentgate_notify_ids('owner_id', array(
    select n.id from new_rows n join old_rows o on o.id = n.id
    where o.username is distinct from n.username
    limit 1001));
  return null;
end
$$;

create function agentgate_notify_templates_update() returns trigger language plpgsql as $$
begin
  perform agentgate_notify_ids('template_id', array(
    select n.id from new_rows n join old_rows o on o.id = n.id
    where o.name is distinct from n.name
    limit 1001));
  return null;
end
$$;

create function agentgate_notify_agents_update() returns trigger language plpgsql as $$
begin
  perform agentgate_notify_ids('agent_id', array(
    select n.id from new_rows n join old_rows o on o.id = n.id
    where (o.auth_token, o.deleted) is distinct from (n.auth_token, n.deleted)
    limit 1001));
  return null;
end
$$;

-- tg_argv[0]: the payload key of the table's id.
create function agentgate_notify_deleted() returns trigger language plpgsql as $$
begin
  perform agentgate_notify_ids(tg_argv[0], array(select id from old_rows limit 1001));
  return null;
end
$$;

create trigger agentgate_identity_update after update on workspaces
referencing old table as old_rows new table as new_rows
for each statement execute function agentgate_notify_workspaces_update();
create trigger agentgate_identity_delete after delete on workspaces
referencing old table as old_rows
for each statement execute function agentgate_notify_deleted('workspace_id');

create trigger agentgate_identity_update after update on users
referencing old table as old_rows new table as new_rows
for each statement execute function agentgate_notify_users_update();

create trigger agentgate_identity_update after update on templates
referencing old table as old_rows new table as new_rows
for each statement execute function agentgate_notify_templates_update();

create trigger agentgate_identity_update after update on workspace_agents
referencing old table as old_rows new table as new_rows
for each statement execute function agentgate_notify_agents_update();
create trigger agentgate_identity_delete after delete on workspace_agents
referencing old table as old_rows
for each statement execute function agentgate_notify_deleted('agent_id');
`,
  },
  { id: 5, name: 'stats_partitions_and_rollup', sql: statsPartitionsAndRollup },
];
