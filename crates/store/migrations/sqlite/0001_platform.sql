-- Tenancy and access. Times are INTEGER milliseconds since the epoch (UTC).
create table organizations (
    id blob primary key,
    slug text not null unique,
    name text not null,
    created_at integer not null
);

create table users (
    id blob primary key,
    email text not null unique,
    display_name text not null,
    password_hash text not null,
    must_change_password integer not null default 0,
    created_at integer not null,
    password_changed_at integer not null
);

create table memberships (
    org_id blob not null references organizations(id) on delete cascade,
    user_id blob not null references users(id) on delete cascade,
    role text not null check (role in ('owner', 'admin', 'member')),
    created_at integer not null,
    primary key (org_id, user_id)
);
create index memberships_user on memberships(user_id);

create table sessions (
    token_hash blob primary key,
    user_id blob not null references users(id) on delete cascade,
    org_id blob references organizations(id) on delete set null,
    csrf_token text not null,
    created_at integer not null,
    last_seen_at integer not null,
    expires_at integer not null
);
create index sessions_user on sessions(user_id);

create table login_failures (
    login text not null,
    at integer not null
);
create index login_failures_login on login_failures(login, at);

create table api_keys (
    id blob primary key,
    org_id blob not null references organizations(id) on delete cascade,
    name text not null,
    display_prefix text not null,
    key_hash blob not null unique,
    scopes text not null,
    created_by blob references users(id) on delete set null,
    created_at integer not null,
    last_used_at integer,
    revoked_at integer
);
create index api_keys_org on api_keys(org_id, created_at);
