-- Membership by invitation: adding a member stores an invitation; the
-- invited person becomes a member only by accepting it through its link.
-- The link's token is kept as its SHA-256 only. An invitation is pending
-- until it is accepted, revoked or past `expires_at`. Times are integer
-- milliseconds.
create table invitations (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    email text not null,
    role text not null check (role in ('owner', 'admin', 'member')),
    token_hash blob not null,
    invited_by blob references users(id) on delete set null,
    created_at integer not null,
    expires_at integer not null,
    accepted_at integer,
    accepted_by blob references users(id) on delete set null,
    revoked_at integer,
    primary key (org_id, id)
);
-- How the accept page finds its invitation: by the link's token, whatever
-- the organization.
create unique index invitations_token on invitations(token_hash);
create index invitations_org on invitations(org_id, created_at);
