-- The durable scheduler (NU2): one table of jobs for every time-based
-- capability (ghosting timers, abandonment windows, retries, nudges).
-- Completed jobs are deleted; parked ones stay, with their error, until a
-- person retries them. Times are integer milliseconds (UTC).
create table jobs (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    kind text not null,
    unique_key text,
    payload text not null default '{}',
    state text not null check (state in ('pending', 'running', 'parked')),
    run_at integer not null,
    attempts integer not null default 0,
    max_attempts integer not null,
    lease_owner text,
    lease_until integer,
    last_error text,
    created_at integer not null,
    updated_at integer not null,
    primary key (org_id, id)
);
-- The claim query (a system query across tenants): due pending jobs by time.
create index jobs_due on jobs(run_at) where state = 'pending';
-- Lease renewal and reclaiming jobs of a lost worker: only running jobs.
create index jobs_running on jobs(lease_until) where state = 'running';
-- One live job per (org, kind, key): re-scheduling a timer dedupes or replaces it.
create unique index jobs_unique_key on jobs(org_id, kind, unique_key) where unique_key is not null and state <> 'parked';
-- Failing and parked jobs of a tenant, newest first, for the UI.
create index jobs_errors on jobs(org_id, updated_at) where last_error is not null;
