-- Provider webhook tokens already used (Mailgun signs a timestamp and a
-- one-time token), so each signed delivery is accepted once. One row per
-- organization, provider and token: a tenant's traffic only ever fills its
-- own rows, every replica sees the same table, and rows past `expires_at`
-- are deleted as new tokens of the same organization and provider arrive.
-- Times are integer milliseconds.
create table hook_replays (
    org_id blob not null references organizations(id) on delete cascade,
    provider text not null,
    token text not null,
    expires_at integer not null,
    primary key (org_id, provider, token)
);
create index hook_replays_expiry on hook_replays(org_id, provider, expires_at);
