-- An agent's event stream and the hand-off to a human. Each agent reads
-- its own numbered events in order (`seq` counts per agent, so a stream
-- resumes after the last number it saw): a customer's new message on a
-- conversation it may answer, a pause or resume, a hand-off, a member
-- taking the conversation over or handing it back. A message event names
-- the message; the stream reads its text when it sends it.
create table agent_events (
    org_id uuid not null references organizations(id) on delete cascade,
    agent_id uuid not null,
    seq bigint not null,
    kind text not null check (kind in ('message', 'paused', 'resumed', 'handed_off', 'takeover', 'handed_back')),
    conversation_id uuid,
    message_id uuid,
    -- The hand-off's reason, or who paused, took over or handed back.
    detail text,
    created_at bigint not null,
    primary key (org_id, agent_id, seq),
    foreign key (org_id, agent_id) references agents(org_id, id) on delete cascade
);
-- Old events are dropped after the resume window.
create index agent_events_age on agent_events(org_id, created_at);

-- A conversation an agent handed to a human: when, and why in its words.
-- Cleared when a member takes it over or hands it back.
alter table conversations add column handoff_at bigint;
alter table conversations add column handoff_reason text;
