-- Meta sources: a Facebook page or Instagram account whose messages come
-- in over Meta's webhooks (`/hooks/meta/{id}`) and whose replies go out
-- through the Send API. A table of their own rather than a kind of intake
-- source: their deliveries are conversations, not pipeline events, and
-- the intake sources' kind check cannot be widened in place on SQLite.
create table meta_sources (
    org_id uuid not null references organizations(id) on delete cascade,
    id uuid not null,
    name text not null,
    -- The app secret, the verify token and the page access token, sealed
    -- together as one JSON value: verifying and sending need them in clear.
    secret text not null,
    created_at bigint not null,
    primary key (org_id, id)
);
-- How the webhook finds its tenant: by the source id in the URL. A system
-- lookup, hence not by org_id.
create unique index meta_sources_id on meta_sources(id);
