-- Tenancy and access. Times are BIGINT milliseconds since the epoch (UTC),
-- the same representation as on SQLite, so shared SQL compares them alike.
create table organizations (
    id uuid primary key,
    slug text not null unique,
    name text not null,
    created_at bigint not null
);

create table users (
    id uuid primary key,
    email text not null unique,
    display_name text not null,
    password_hash text not null,
    must_change_password boolean not null default false,
    created_at bigint not null,
    password_changed_at bigint not null
);

create table memberships (
    org_id uuid not null references organizations(id) on delete cascade,
    user_id uuid not null references users(id) on delete cascade,
    role text not null check (role in ('owner', 'admin', 'member')),
    created_at bigint not null,
    primary key (org_id, user_id)
);
create index memberships_user on memberships(user_id);

create table sessions (
    token_hash bytea primary key,
    user_id uuid not null references users(id) on delete cascade,
    org_id uuid references organizations(id) on delete set null,
    csrf_token text not null,
    created_at bigint not null,
    last_seen_at bigint not null,
    expires_at bigint not null
);
create index sessions_user on sessions(user_id);

create table login_failures (
    login text not null,
    at bigint not null
);
create index login_failures_login on login_failures(login, at);

create table api_keys (
    id uuid primary key,
    org_id uuid not null references organizations(id) on delete cascade,
    name text not null,
    display_prefix text not null,
    key_hash bytea not null unique,
    scopes text not null,
    created_by uuid references users(id) on delete set null,
    created_at bigint not null,
    last_used_at bigint,
    revoked_at bigint
);
create index api_keys_org on api_keys(org_id, created_at);
