-- The search indexes' vocabularies, read only to list the words a typed
-- prefix stands for. A prefix query makes FTS5 merge the whole list of
-- matches of every word it covers before it can return the newest; the
-- same words asked for one by one are walked newest first and stop after a
-- page. The `instance` kind steps from one word to the next with one seek.
create virtual table messages_fts_vocab using fts5vocab(messages_fts, instance);
create virtual table conversations_fts_vocab using fts5vocab(conversations_fts, instance);
