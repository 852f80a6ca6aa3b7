-- The intake pipeline (SPEC IN2–IN4): processing state on each inbound
-- event, the lead behind each profile (intent score, lead state, counters),
-- its state history, open Shopify checkouts for the abandonment timer, and
-- per-tenant intake settings. SQLite cannot alter a check constraint, so
-- inbound_events is rebuilt with its rows.
create table inbound_events_v2 (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    source_id blob not null,
    external_id text not null,
    kind text not null,
    received_at integer not null,
    payload text not null,
    -- pending: waiting (or waiting to retry at next_at); processed; skipped
    -- (read, but named nobody); parked (failed for good, see error).
    status text not null default 'pending' check (status in ('pending', 'processed', 'skipped', 'parked')),
    attempts integer not null default 0,
    next_at integer not null default 0,
    error text,
    processed_at integer,
    profile_id blob,
    primary key (org_id, id),
    foreign key (org_id, source_id) references sources(org_id, id) on delete cascade
);
insert into inbound_events_v2 (org_id, id, source_id, external_id, kind, received_at, payload, status)
    select org_id, id, source_id, external_id, kind, received_at, payload, status from inbound_events;
drop table inbound_events;
alter table inbound_events_v2 rename to inbound_events;
create unique index inbound_events_dedupe on inbound_events(org_id, source_id, external_id);
create index inbound_events_recent on inbound_events(org_id, source_id, received_at);
-- The pipeline's queue (a system query across tenants, in arrival order).
create index inbound_events_pending on inbound_events(next_at, id) where status = 'pending';
-- Parked events of a tenant, for the UI.
create index inbound_events_parked on inbound_events(org_id, id) where status = 'parked';

create table leads (
    org_id blob not null references organizations(id) on delete cascade,
    profile_id blob not null,
    state text not null default 'new',
    state_at integer not null,
    score integer not null default 0,
    category text not null default 'browsing',
    -- The rules that fired for the last score, as JSON.
    fired text not null default '[]',
    last_event text not null default '',
    pages_viewed integer not null default 0,
    visits integer not null default 0,
    open_cart_cents integer,
    nudges_sent integer not null default 0,
    assignee text,
    last_seen_at integer not null,
    created_at integer not null,
    updated_at integer not null,
    primary key (org_id, profile_id)
);
create index leads_feed on leads(org_id, updated_at);

create table lead_transitions (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    profile_id blob not null,
    from_state text not null,
    to_state text not null,
    reason text not null,
    actor text not null,
    at integer not null,
    primary key (org_id, id)
);
create index lead_transitions_profile on lead_transitions(org_id, profile_id, at);

create table checkouts (
    org_id blob not null references organizations(id) on delete cascade,
    id text not null,
    token text,
    cart_token text,
    profile_id blob not null,
    status text not null check (status in ('open', 'completed', 'abandoned')),
    total_cents integer,
    currency text,
    url text,
    items integer not null default 0,
    created_at integer not null,
    updated_at integer not null,
    primary key (org_id, id)
);
create index checkouts_token on checkouts(org_id, token);
create index checkouts_cart_token on checkouts(org_id, cart_token);

create table intake_settings (
    org_id blob primary key references organizations(id) on delete cascade,
    intent_rules text,
    lead_settings text,
    abandon_after_ms integer,
    updated_at integer not null
);
