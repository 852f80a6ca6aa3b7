-- A voice agent's webhook secret (Vapi's server secret, Retell's API key),
-- sealed like every provider secret (bound to this agent's row): the
-- signed call reports at /hooks/vapi/{agent_id} and /hooks/retell/{agent_id}
-- are checked with it. Null for agents that report over the API.
alter table agents add column webhook_secret text;
-- The hooks find their agent by the id in the URL alone.
create unique index agents_by_id on agents(id);
