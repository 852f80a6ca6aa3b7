-- The intake pipeline (SPEC IN2–IN4): processing state on each inbound
-- event, the lead behind each profile (intent score, lead state, counters),
-- its state history, open Shopify checkouts for the abandonment timer, and
-- per-tenant intake settings.
alter table inbound_events drop constraint inbound_events_status_check;
alter table inbound_events add constraint inbound_events_status_check
    check (status in ('pending', 'processed', 'skipped', 'parked'));
alter table inbound_events add column attempts bigint not null default 0;
alter table inbound_events add column next_at bigint not null default 0;
alter table inbound_events add column error text;
alter table inbound_events add column processed_at bigint;
alter table inbound_events add column profile_id uuid;
create index inbound_events_pending on inbound_events(next_at, id) where status = 'pending';
create index inbound_events_parked on inbound_events(org_id, id) where status = 'parked';

create table leads (
    org_id uuid not null references organizations(id) on delete cascade,
    profile_id uuid not null,
    state text not null default 'new',
    state_at bigint not null,
    score bigint not null default 0,
    category text not null default 'browsing',
    fired text not null default '[]',
    last_event text not null default '',
    pages_viewed bigint not null default 0,
    visits bigint not null default 0,
    open_cart_cents bigint,
    nudges_sent bigint not null default 0,
    assignee text,
    last_seen_at bigint not null,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (org_id, profile_id)
);
create index leads_feed on leads(org_id, updated_at);

create table lead_transitions (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    profile_id uuid not null,
    from_state text not null,
    to_state text not null,
    reason text not null,
    actor text not null,
    at bigint not null,
    primary key (org_id, id)
);
create index lead_transitions_profile on lead_transitions(org_id, profile_id, at);

create table checkouts (
    org_id uuid not null references organizations(id) on delete cascade,
    id text not null,
    token text,
    cart_token text,
    profile_id uuid not null,
    status text not null check (status in ('open', 'completed', 'abandoned')),
    total_cents bigint,
    currency text,
    url text,
    items bigint not null default 0,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (org_id, id)
);
create index checkouts_token on checkouts(org_id, token);
create index checkouts_cart_token on checkouts(org_id, cart_token);

create table intake_settings (
    org_id uuid primary key references organizations(id) on delete cascade,
    intent_rules text,
    lead_settings text,
    abandon_after_ms bigint,
    updated_at bigint not null
);
