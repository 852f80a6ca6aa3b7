-- The Unified Inbox: one conversation per customer across every channel,
-- every message in and out, each member's read mark, and full-text search
-- over message text and the customer's name, e-mail and phone.
create table conversations (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    -- The customer (the profile's root when the conversation began).
    profile_id blob not null,
    status text not null default 'open' check (status in ('open', 'resolved')),
    -- The member it is assigned to (a user id), or none.
    assignee_id blob,
    priority text not null default 'normal' check (priority in ('urgent', 'high', 'normal', 'low')),
    -- 0 urgent … 3 low, so "most urgent first" is an ascending sort.
    priority_rank integer not null default 2,
    priority_reason text not null default '',
    last_message_at integer not null,
    last_inbound_at integer,
    -- The customer's oldest message nobody has answered yet, or null.
    waiting_since integer,
    last_preview text not null default '',
    last_channel text not null,
    last_author text not null,
    -- One bit per channel a message of this conversation travelled on.
    channels integer not null default 0,
    ai_involved integer not null default 0,
    message_count integer not null default 0,
    -- The customer's lifetime value, copied from their profile and kept
    -- current in the same write that changes it, so "highest value first"
    -- is an index walk rather than a join and a sort of every row.
    customer_ltv_cents integer not null default 0,
    -- The customer's name, e-mail and phone, for search.
    people text not null default '',
    created_at integer not null,
    updated_at integer not null,
    primary key (org_id, id)
);
create unique index conversations_profile on conversations(org_id, profile_id);
create index conversations_recent on conversations(org_id, last_message_at, id);
create index conversations_status_recent on conversations(org_id, status, last_message_at, id);
create index conversations_assignee on conversations(org_id, assignee_id, last_message_at, id);
-- Most urgent first, then most recent: the index runs in the order the list
-- reads it (mixed directions), so a page is a walk and not a sort.
-- Each sort has an index in its order, and a priority filter (an equality
-- on the rank) has one per sort too, so a page of any filter and sort is a
-- walk that stops after the page; the other filters (channel bits, unread,
-- AI) are checked on the rows walked, and each keeps at least a few percent.
create index conversations_priority on conversations(org_id, priority_rank, last_message_at desc, id desc);
create index conversations_waiting on conversations(org_id, waiting_since, id) where waiting_since is not null;
create index conversations_priority_waiting on conversations(org_id, priority_rank, waiting_since, id) where waiting_since is not null;
create index conversations_status_waiting on conversations(org_id, status, waiting_since, id) where waiting_since is not null;
create index conversations_value on conversations(org_id, customer_ltv_cents desc, id desc);
create index conversations_priority_value on conversations(org_id, priority_rank, customer_ltv_cents desc, id desc);

create table messages (
    org_id blob not null references organizations(id) on delete cascade,
    id blob not null,
    conversation_id blob not null,
    channel text not null,
    direction text not null check (direction in ('inbound', 'outbound')),
    author_kind text not null,
    -- The member's user id or the agent's id, as text; null for the customer and automation.
    author_id text,
    author_name text not null default '',
    body text not null default '',
    -- E-mail HTML, sanitized before it is written.
    html text,
    subject text,
    -- JSON array of attachment metadata.
    attachments text not null default '[]',
    provider_message_id text,
    status text not null,
    status_detail text,
    -- E-mail threading, ids without angle brackets; references as a JSON array.
    email_message_id text,
    in_reply_to text,
    email_references text not null default '[]',
    created_at integer not null,
    updated_at integer not null,
    primary key (org_id, id),
    foreign key (org_id, conversation_id) references conversations(org_id, id) on delete cascade
);
-- A provider delivers at least once: its id is the dedupe key, per channel.
create unique index messages_provider_id on messages(org_id, channel, provider_message_id) where provider_message_id is not null;
create index messages_by_conversation on messages(org_id, conversation_id, created_at, id);
create index messages_email_id on messages(org_id, email_message_id) where email_message_id is not null;

create table conversation_reads (
    org_id blob not null references organizations(id) on delete cascade,
    conversation_id blob not null,
    member_id blob not null,
    read_at integer not null,
    primary key (org_id, conversation_id, member_id),
    foreign key (org_id, conversation_id) references conversations(org_id, id) on delete cascade
);

-- Search: external-content FTS5 indexes kept in step by triggers (each
-- trigger on one line: the migration runner splits statements at line-end semicolons).
create virtual table messages_fts using fts5(body, subject, content='messages', content_rowid='rowid', tokenize='unicode61 remove_diacritics 0');
create trigger messages_fts_insert after insert on messages begin insert into messages_fts(rowid, body, subject) values (new.rowid, new.body, coalesce(new.subject, '')); end;
create trigger messages_fts_delete after delete on messages begin insert into messages_fts(messages_fts, rowid, body, subject) values ('delete', old.rowid, old.body, coalesce(old.subject, '')); end;
create trigger messages_fts_update after update of body, subject on messages begin insert into messages_fts(messages_fts, rowid, body, subject) values ('delete', old.rowid, old.body, coalesce(old.subject, '')); insert into messages_fts(rowid, body, subject) values (new.rowid, new.body, coalesce(new.subject, '')); end;
create virtual table conversations_fts using fts5(people, content='conversations', content_rowid='rowid', tokenize='unicode61 remove_diacritics 0');
create trigger conversations_fts_insert after insert on conversations begin insert into conversations_fts(rowid, people) values (new.rowid, new.people); end;
create trigger conversations_fts_delete after delete on conversations begin insert into conversations_fts(conversations_fts, rowid, people) values ('delete', old.rowid, old.people); end;
create trigger conversations_fts_update after update of people on conversations begin insert into conversations_fts(conversations_fts, rowid, people) values ('delete', old.rowid, old.people); insert into conversations_fts(rowid, people) values (new.rowid, new.people); end;
