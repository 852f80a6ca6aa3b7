-- Replies from the inbox are written `pending` before their provider is
-- called; one cut off by a crash is found by the sweep through this index
-- (it holds only the few messages in flight) and becomes `unknown`.
create index messages_pending on messages(updated_at) where status = 'pending';
