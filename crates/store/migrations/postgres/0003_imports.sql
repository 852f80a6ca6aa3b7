-- Import runs started from the UI or the API (SPEC ID9): what was uploaded,
-- how far the run got, and its summary. The rows themselves are keyed on the
-- timeline by file digest and line (see store/src/import.rs), which is what
-- makes a re-upload of the same file skip what an earlier run imported.
create table imports (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    file_name text not null,
    digest text not null,
    source text not null,
    status text not null check (status in ('queued', 'running', 'done', 'failed', 'interrupted')),
    total_rows bigint not null,
    processed_rows bigint not null default 0,
    created_rows bigint not null default 0,
    matched_rows bigint not null default 0,
    merged_rows bigint not null default 0,
    unchanged_rows bigint not null default 0,
    rejected_rows bigint not null default 0,
    absorbed_profiles bigint not null default 0,
    linked_identifiers bigint not null default 0,
    dropped_identifiers bigint not null default 0,
    warning_count bigint not null default 0,
    -- JSON arrays of {line, reason} / {line, message}: the first rows only
    -- (the counts above are complete).
    rejections text not null default '[]',
    warnings text not null default '[]',
    ignored_columns text not null default '[]',
    error text,
    started_by text not null,
    user_id uuid references users(id) on delete set null,
    created_at bigint not null,
    updated_at bigint not null,
    finished_at bigint,
    primary key (org_id, id)
);
create index imports_by_digest on imports(org_id, digest, status);
