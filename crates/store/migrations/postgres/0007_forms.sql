-- Public web forms (SPEC IN1): a `form` source's settings, as a JSON object
-- (`{"thank_you_url": "https://…"}`). Null for sources without settings.
-- A form's public key (`fk_…`) is kept in `secret` (it is in the landing
-- page's HTML, so not secret) and its SHA-256 in `key_hash` for the lookup.
alter table sources add column config text;
