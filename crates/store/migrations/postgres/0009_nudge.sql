-- The nudge engine (SPEC NU1–NU5): campaigns, each customer's run through
-- one (enrollments), every step execution with its delivery status and
-- tracking, opt-outs per channel and address, and per-tenant channel and
-- nudge settings.
create table campaigns (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    name text not null,
    trigger_kind text not null,
    trigger_event text,
    definition text not null,
    status text not null check (status in ('draft', 'active', 'paused', 'archived')),
    created_at bigint not null,
    updated_at bigint not null,
    primary key (org_id, id)
);
create index campaigns_trigger on campaigns(org_id, trigger_kind, status);

create table enrollments (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    campaign_id uuid not null,
    profile_id uuid not null,
    state text not null,
    status text not null check (status in ('active', 'stopped')),
    stop_reason text,
    context text not null default '{}',
    next_due bigint,
    started_at bigint not null,
    ended_at bigint,
    updated_at bigint not null,
    primary key (org_id, id)
);
create unique index enrollments_one_active on enrollments(org_id, campaign_id, profile_id) where status = 'active';
create index enrollments_profile on enrollments(org_id, profile_id, status);
create index enrollments_campaign on enrollments(org_id, campaign_id, profile_id, started_at);

create table nudge_executions (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    enrollment_id uuid not null,
    campaign_id uuid not null,
    profile_id uuid not null,
    step bigint not null,
    variant bigint not null,
    variant_name text not null,
    channel text not null check (channel in ('email', 'sms')),
    idem_key text not null,
    status text not null check (status in ('sending', 'retrying', 'sent', 'delivered', 'undelivered', 'failed', 'unknown')),
    attempts bigint not null default 0,
    next_attempt_at bigint,
    provider text,
    provider_id text,
    error text,
    to_addr text not null,
    from_addr text not null default '',
    subject text,
    body text not null,
    message_id text not null,
    token text not null,
    link_url text,
    created_at bigint not null,
    sent_at bigint,
    delivered_at bigint,
    opened_at bigint,
    clicked_at bigint,
    replied_at bigint,
    converted_at bigint,
    converted_cents bigint,
    updated_at bigint not null,
    primary key (org_id, id)
);
create unique index nudge_exec_key on nudge_executions(org_id, idem_key);
create unique index nudge_exec_token on nudge_executions(token);
create index nudge_exec_provider on nudge_executions(provider_id) where provider_id is not null;
create index nudge_exec_campaign on nudge_executions(org_id, campaign_id, step);
create index nudge_exec_profile on nudge_executions(org_id, profile_id, created_at);
create index nudge_exec_sending on nudge_executions(updated_at) where status = 'sending';
create index nudge_exec_outbox on nudge_executions(org_id, created_at) where provider = 'dev';

create table opt_outs (
    org_id uuid not null references organizations(id) on delete cascade,
    channel text not null check (channel in ('email', 'sms')),
    address text not null,
    profile_id uuid,
    source text not null,
    at bigint not null,
    primary key (org_id, channel, address)
);
create index opt_outs_profile on opt_outs(org_id, profile_id);

create table channel_settings (
    org_id uuid not null references organizations(id) on delete cascade,
    channel text not null check (channel in ('email', 'sms')),
    provider text not null,
    config text not null,
    hook_key text not null,
    updated_at bigint not null,
    primary key (org_id, channel)
);
create unique index channel_settings_hook on channel_settings(hook_key);

create table nudge_settings (
    org_id uuid primary key references organizations(id) on delete cascade,
    timezone text not null default 'UTC',
    email_window_ms bigint not null,
    sms_window_ms bigint not null,
    updated_at bigint not null
);
