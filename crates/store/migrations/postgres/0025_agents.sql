-- AI agents as workers: the registry (what each agent is, whether a member
-- paused it, and its last heartbeat as reported — the status a member reads
-- is derived from these at read time, decision 0039), every interaction an
-- agent reports (what the metrics add up), the API key an agent reports
-- with, and which agent is handling a conversation.
create table agents (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    name text not null,
    kind text not null check (kind in ('chat', 'voice', 'sms', 'email', 'sdr')),
    provider text not null check (provider in ('api', 'builtin', 'vapi', 'retell')),
    -- The voice platform's own assistant or agent id, so its reports find the agent.
    platform_agent_id text,
    paused bigint not null default 0,
    paused_at bigint,
    -- The member who paused it (a user id), and the name shown in the 409.
    paused_by uuid,
    paused_by_name text,
    -- The last heartbeat as the agent sent it (validated by core::agents::Heartbeat).
    heartbeat_at bigint,
    heartbeat_status text check (heartbeat_status in ('idle', 'working', 'talking', 'error')),
    heartbeat_activity text,
    heartbeat_error text,
    call_started_at bigint,
    interval_ms bigint,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (org_id, id)
);
create index agents_by_name on agents(org_id, name, id);
create unique index agents_platform on agents(org_id, provider, platform_agent_id) where platform_agent_id is not null;

create table agent_interactions (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    agent_id uuid not null,
    -- The customer (a profile id) and the conversation, when known.
    profile_id uuid,
    conversation_id uuid,
    outcome text not null check (outcome in ('success', 'failure', 'handed_off')),
    started_at bigint not null,
    ended_at bigint,
    first_response_ms bigint check (first_response_ms >= 0),
    -- Millionths of a US dollar.
    cost_micros bigint not null default 0 check (cost_micros >= 0),
    tokens bigint not null default 0 check (tokens >= 0),
    csat bigint check (csat between 0 and 10),
    -- 0-10 in tenths (0-100), so both engines keep it as an integer.
    sentiment_tenths bigint check (sentiment_tenths between 0 and 100),
    human_intervened bigint not null default 0,
    summary text,
    -- JSON array of {"role", "text"}.
    transcript text not null default '[]',
    -- The agent's own id for the interaction: a retry is stored once.
    external_id text,
    created_at bigint not null,
    primary key (org_id, id),
    foreign key (org_id, agent_id) references agents(org_id, id) on delete cascade
);
create unique index agent_interactions_external on agent_interactions(org_id, agent_id, external_id) where external_id is not null;
-- Totals for the whole organization over a period, and for one agent.
create index agent_interactions_period on agent_interactions(org_id, started_at);
create index agent_interactions_agent_period on agent_interactions(org_id, agent_id, started_at);
create index agent_interactions_profile on agent_interactions(org_id, profile_id, started_at) where profile_id is not null;

-- A key of scope `agent` made for an agent speaks only for that agent.
alter table api_keys add column agent_id uuid;
-- The AI agent handling the conversation (members are `assignee_id`).
alter table conversations add column agent_id uuid;
create index conversations_agent on conversations(org_id, agent_id, status) where agent_id is not null;
