-- Idempotency keys of inbox replies (`POST /api/v1/conversations/{id}/messages`
-- with an `Idempotency-Key`, and the composer's per-form key): the first
-- request with a key claims it (`answer_status` null while it runs) and
-- stores its answer; a repeat within 24 hours gets that answer back and
-- sends nothing. Keys are per organization and per caller (an API key or
-- a member), so two callers cannot collide or read each other's answers.
create table reply_idempotency (
    org_id blob not null references organizations(id) on delete cascade,
    -- 'key:<api key id>' or 'member:<user id>'.
    principal text not null,
    idem_key text not null,
    -- SHA-256 of the request (conversation, channel, text, subject): the
    -- same key with another request is refused, not answered.
    fingerprint text not null,
    -- The first answer, once there is one.
    answer_status integer,
    answer_body text,
    created_at integer not null,
    primary key (org_id, principal, idem_key)
);
-- The sweep drops keys older than 24 hours across organizations.
create index reply_idempotency_created on reply_idempotency(created_at);
