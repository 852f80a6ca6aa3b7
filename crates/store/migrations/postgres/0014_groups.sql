-- Segment `group` calls: the accounts (companies) a tenant's customers
-- belong to, with the traits the account itself has. The customer's side is
-- a `group_id` trait on the profile and a timeline entry; this table holds
-- the account's side, once per organization and group id, its traits laid
-- over the previous call's (given names win, the rest stay).
create table customer_groups (
    org_id uuid not null references organizations(id) on delete cascade,
    group_id text not null,
    -- JSON object of scalar traits (text like profiles.traits).
    traits text not null default '{}',
    -- The profile of the last customer seen in it (the root at the time).
    last_profile_id uuid,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (org_id, group_id)
);
