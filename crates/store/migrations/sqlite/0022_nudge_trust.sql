-- Nudges you can trust: every step that went out late or not at all, and
-- every customer a campaign could not enroll, counted with its reason; the
-- per-customer daily message cap; and campaign priority, which decides who
-- waits when the cap has room for fewer messages than campaigns want.
alter table nudge_settings add column email_cap_per_day integer not null default 2;
alter table nudge_settings add column sms_cap_per_day integer not null default 1;
alter table campaigns add column priority integer not null default 0;
-- The latest conversion (an order or a person's "won"): the state keeps the
-- first, and a repeat purchase stops nudges as well.
alter table leads add column last_converted_at integer;

create table nudge_skips (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    campaign_id blob not null,
    profile_id blob not null,
    -- Null when the customer was not enrolled at all.
    enrollment_id blob,
    -- The step (from 0); null when the customer was not enrolled at all.
    step integer,
    reason text not null check (reason in ('no_address', 'opted_out', 'quiet_hours', 'cap', 'stopped')),
    detail text not null default '',
    at integer not null,
    primary key (org_id, id)
);
-- Counted once per enrollment, step and reason (a step the cap moves twice is
-- one customer held back); a customer not enrolled is counted each time.
create unique index nudge_skips_once on nudge_skips(org_id, enrollment_id, step, reason);
create index nudge_skips_campaign on nudge_skips(org_id, campaign_id, step, reason);
create index nudge_skips_profile on nudge_skips(org_id, profile_id, at);
