-- Membership by invitation: adding a member stores an invitation; the
-- invited person becomes a member only by accepting it through its link.
-- The link's token is kept as its SHA-256 only. An invitation is pending
-- until it is accepted, revoked or past `expires_at`. Times are bigint
-- milliseconds.
create table invitations (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    email text not null,
    role text not null check (role in ('owner', 'admin', 'member')),
    token_hash bytea not null,
    invited_by uuid references users(id) on delete set null,
    created_at bigint not null,
    expires_at bigint not null,
    accepted_at bigint,
    accepted_by uuid references users(id) on delete set null,
    revoked_at bigint,
    primary key (org_id, id)
);
-- How the accept page finds its invitation: by the link's token, whatever
-- the organization.
create unique index invitations_token on invitations(token_hash);
create index invitations_org on invitations(org_id, created_at);
