-- identity_links keyed by its primary key alone (decision 0004, update of
-- 2026-11-28). As a rowid table every link was two b-tree entries (the row
-- and its (org_id, kind, value) key), and every lookup by identifier found
-- the key, then fetched the row by rowid: one more random page. Without
-- rowid the row lives in the primary key's b-tree. Measured with `bos bench
-- import --rows 1000000`: 47.9 s against 52.7 s.
create table identity_links_v2 (
    org_id blob not null references organizations(id) on delete cascade,
    kind text not null,
    value text not null,
    profile_id blob not null,
    root_id blob not null,
    first_seen_at integer not null,
    last_seen_at integer not null,
    source text not null,
    primary key (org_id, kind, value)
) without rowid;
insert into identity_links_v2 (org_id, kind, value, profile_id, root_id, first_seen_at, last_seen_at, source)
    select org_id, kind, value, profile_id, root_id, first_seen_at, last_seen_at, source from identity_links;
drop table identity_links;
alter table identity_links_v2 rename to identity_links;
create index identity_links_root on identity_links(org_id, root_id);
