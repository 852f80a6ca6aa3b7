-- Intake (SPEC IN1, IN2): the sources a tenant sends events from, and every
-- raw event as it arrived, stored before the endpoint answers 2xx. Processing
-- (the pipeline) reads `pending` rows later. Times are integer milliseconds.
create table sources (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    kind text not null check (kind in ('segment', 'webhook', 'shopify', 'form')),
    name text not null,
    -- Standard Webhooks secret (`whsec_…`): kept, because verifying an HMAC
    -- needs the key itself.
    secret text,
    -- SHA-256 of a Segment write key: the key arrives in clear on every
    -- request, so a hash is enough to recognise it and a dump shows no key.
    key_hash bytea,
    created_at bigint not null,
    primary key (org_id, id)
);
-- How a public endpoint finds its tenant: by the write key's hash, or by
-- the source id in the webhook URL. System lookups, hence not by org_id.
create unique index sources_key_hash on sources(key_hash) where key_hash is not null;
create unique index sources_id on sources(id);

create table inbound_events (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    source_id uuid not null,
    -- The provider's dedupe key: Segment messageId, webhook-id.
    external_id text not null,
    kind text not null,
    received_at bigint not null,
    -- The event's raw JSON, exactly as received.
    payload text not null,
    status text not null default 'pending' check (status in ('pending')),
    primary key (org_id, id),
    foreign key (org_id, source_id) references sources(org_id, id) on delete cascade
);
-- A retried delivery finds its first copy here and changes nothing (R4).
create unique index inbound_events_dedupe on inbound_events(org_id, source_id, external_id);
-- Recent events of one source, newest first.
create index inbound_events_recent on inbound_events(org_id, source_id, received_at);
