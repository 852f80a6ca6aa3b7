-- God View identity layer: profiles, identity links, merges, the journey timeline.
-- Merges never move rows: every profile, link and timeline entry keeps the
-- profile it was first recorded on (profile_id) and carries the root of its
-- cluster (root_id), so a merge or an unmerge only rewrites root_id.
create table profiles (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    root_id blob not null,
    merged_into blob,
    first_name text not null default '',
    last_name text not null default '',
    display_name text not null default '',
    company text not null default '',
    primary_email text not null default '',
    primary_phone text not null default '',
    name_lc text not null default '',
    name_key text not null default '',
    own_ltv_cents integer not null default 0,
    ltv_cents integer not null default 0,
    own_order_count integer not null default 0,
    order_count integer not null default 0,
    currency text not null default 'USD',
    last_active_at integer not null,
    created_at integer not null,
    updated_at integer not null,
    status text not null default 'active',
    lead_state text not null default 'new',
    tags text not null default '[]',
    traits text not null default '{}',
    primary key (org_id, id)
);
create index profiles_root on profiles(org_id, root_id);
create index profiles_merged_into on profiles(org_id, merged_into);
create index profiles_by_last_active on profiles(org_id, last_active_at, id) where merged_into is null;
create index profiles_by_ltv on profiles(org_id, ltv_cents, id) where merged_into is null;
create index profiles_by_created on profiles(org_id, created_at, id) where merged_into is null;
create index profiles_by_name on profiles(org_id, name_lc, id) where merged_into is null;
create index profiles_by_name_key on profiles(org_id, name_key) where merged_into is null;

create table identity_links (
    org_id blob not null references organizations(id) on delete cascade,
    kind text not null,
    value text not null,
    profile_id blob not null,
    root_id blob not null,
    first_seen_at integer not null,
    last_seen_at integer not null,
    source text not null,
    primary key (org_id, kind, value)
);
create index identity_links_root on identity_links(org_id, root_id);
create index identity_links_profile on identity_links(org_id, profile_id);
create index identity_links_value on identity_links(org_id, value);

create table merges (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    survivor_id blob not null,
    absorbed_id blob not null,
    via_kind text not null,
    via_value text not null,
    event_key text,
    reason text not null,
    actor text not null,
    filled text not null default '[]',
    created_at integer not null,
    undone_at integer,
    undone_by text,
    primary key (org_id, id)
);
create index merges_survivor on merges(org_id, survivor_id);
create index merges_absorbed on merges(org_id, absorbed_id);

create table timeline (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    profile_id blob not null,
    root_id blob not null,
    occurred_at integer not null,
    kind text not null,
    source text not null,
    summary text not null,
    data text not null default '{}',
    event_key text,
    primary key (org_id, id)
);
create index timeline_by_root on timeline(org_id, root_id, occurred_at, id);
create index timeline_by_profile on timeline(org_id, profile_id);
create unique index timeline_event on timeline(org_id, event_key) where event_key is not null;

create table identity_rules (
    org_id blob primary key references organizations(id) on delete cascade,
    rules text not null,
    updated_at integer not null
);
