//! Inbox search over message text (and e-mail subjects) and the customer's
//! name, e-mail and phone: FTS5 on SQLite, a `tsvector` with a GIN index on
//! PostgreSQL. Both split text at every character that is not a letter or
//! digit and match each word of the query as a prefix, all words required,
//! so the two engines find the same things. The database finds the rows;
//! the snippet and its highlighted parts are cut here from the plain text
//! (never from HTML), so the UI only escapes and marks them.

use bos_core::inbox::Channel;
use bos_core::Millis;
use uuid::Uuid;

use crate::engine::Engine;
use crate::sql::{q, read_rows, Row};
use crate::{Store, StoreError};

/// Words of a query that count; more are ignored.
const MAX_TERMS: usize = 8;
/// Longer words are cut (no real word is longer, and it bounds the query).
const MAX_TERM_CHARS: usize = 40;
/// The most hits one search returns.
pub const MAX_HITS: u32 = 50;
/// Characters of context on either side of the first match.
const CONTEXT_CHARS: usize = 60;

/// Where a hit was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchIn {
    Message,
    Customer,
}

/// A piece of a snippet: plain text, marked when it matched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnippetPart {
    pub text: String,
    pub matched: bool,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    pub conversation_id: Uuid,
    pub profile_id: Uuid,
    pub customer_name: String,
    pub found_in: SearchIn,
    /// The message, for a hit in a message.
    pub message_id: Option<Uuid>,
    pub channel: Option<Channel>,
    /// Plain text around the first match, in parts.
    pub snippet: Vec<SnippetPart>,
    pub at: Millis,
}

/// The query's words: lowercase runs of letters and digits.
pub(crate) fn terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in query.split(|c: char| !c.is_alphanumeric()) {
        if w.is_empty() {
            continue;
        }
        let w: String = w
            .chars()
            .take(MAX_TERM_CHARS)
            .flat_map(char::to_lowercase)
            .collect();
        if !out.contains(&w) {
            out.push(w);
        }
        if out.len() == MAX_TERMS {
            break;
        }
    }
    out
}

/// The most index words one query word may stand for on SQLite before the
/// prefix query is left to FTS5 (a prefix of one or two letters).
const MAX_EXPANSION: usize = 16;

/// How one query word is asked of FTS5.
enum Expanded {
    /// The index holds no word it is a prefix of: nothing can match.
    Nothing,
    /// These index words, each asked for exactly.
    Words(Vec<String>),
    /// Left to FTS5 as a prefix query.
    Prefix,
}

/// The words of the index behind `vocab` (an `fts5vocab` table of the
/// `instance` kind) that start with `word`, stepping from each to the next
/// with one seek: `term >= w || char(1)` is the first word after `w`.
/// A word with other than ASCII letters and digits is left to FTS5, whose
/// tokenizer folds it (our lowercasing may differ from its folding).
async fn expand(store: &Store, vocab: &str, word: &str) -> Result<Expanded, StoreError> {
    if !word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(Expanded::Prefix);
    }
    let sql = format!("select term from {vocab} where term >= $1 limit 1");
    let mut out: Vec<String> = Vec::new();
    let mut from = word.to_string();
    loop {
        let rows = read_rows(store, q(sql.as_str()).bind(from.as_str())).await?;
        let Some(row) = rows.first() else { break };
        let term = row.text(0)?;
        if !term.starts_with(word) {
            break;
        }
        if out.len() == MAX_EXPANSION {
            return Ok(Expanded::Prefix);
        }
        from = format!("{term}\u{1}");
        out.push(term);
    }
    Ok(if out.is_empty() {
        Expanded::Nothing
    } else {
        Expanded::Words(out)
    })
}

/// An FTS5 query for all of `terms`, each word as the index words it is a
/// prefix of (`("order" OR "orders")`), or as a prefix query; `None` when
/// a word matches nothing, so neither does the query.
async fn fts5_expanded(
    store: &Store,
    vocab: &str,
    terms: &[String],
) -> Result<Option<String>, StoreError> {
    let quote = |t: &str| format!("\"{}\"", t.replace('"', "\"\""));
    let mut parts = Vec::with_capacity(terms.len());
    for t in terms {
        match expand(store, vocab, t).await? {
            Expanded::Nothing => return Ok(None),
            Expanded::Prefix => parts.push(format!("{}*", quote(t))),
            Expanded::Words(ws) => parts.push(format!(
                "({})",
                ws.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" OR ")
            )),
        }
    }
    // FTS5 joins groups in parentheses only with an explicit AND.
    Ok(Some(parts.join(" AND ")))
}

/// PostgreSQL `to_tsquery`: every word as a prefix, all required. Words
/// are letters and digits only, so none can be tsquery syntax.
fn tsquery(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("{t}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// Cuts a snippet of `text` around the first word that starts with one of
/// `terms`, in parts with the matching words marked. `None` when no word
/// matches.
pub(crate) fn snippet(text: &str, terms: &[String]) -> Option<Vec<SnippetPart>> {
    let chars: Vec<char> = text.chars().collect();
    // Word spans in chars.
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
            words.push((start, i));
        } else {
            i += 1;
        }
    }
    let is_hit = |(s, e): (usize, usize)| {
        let w: String = chars[s..e].iter().flat_map(|c| c.to_lowercase()).collect();
        terms.iter().any(|t| w.starts_with(t.as_str()))
    };
    let hits: Vec<(usize, usize)> = words.into_iter().filter(|w| is_hit(*w)).collect();
    let first = *hits.first()?;
    let from = first.0.saturating_sub(CONTEXT_CHARS);
    let to = (first.1 + CONTEXT_CHARS).min(chars.len());
    let mut parts: Vec<SnippetPart> = Vec::new();
    let mut push = |text: String, matched: bool| {
        if text.is_empty() {
            return;
        }
        match parts.last_mut() {
            Some(last) if last.matched == matched => last.text.push_str(&text),
            _ => parts.push(SnippetPart { text, matched }),
        }
    };
    if from > 0 {
        push("…".into(), false);
    }
    let mut at = from;
    for (s, e) in hits.into_iter().filter(|(s, e)| *s >= from && *e <= to) {
        push(chars[at..s].iter().collect(), false);
        push(chars[s..e].iter().collect(), true);
        at = e;
    }
    push(chars[at..to].iter().collect(), false);
    if to < chars.len() {
        push("…".into(), false);
    }
    // Whitespace runs (newlines from e-mail) shown as one space.
    for p in &mut parts {
        if !p.matched {
            let mut collapsed = String::with_capacity(p.text.len());
            for c in p.text.chars() {
                if c.is_whitespace() {
                    if !collapsed.ends_with(' ') {
                        collapsed.push(' ');
                    }
                } else {
                    collapsed.push(c);
                }
            }
            p.text = collapsed;
        }
    }
    Some(parts)
}

fn message_hit(row: &Row, terms: &[String]) -> Result<Option<SearchHit>, StoreError> {
    let body = row.text("body")?;
    let subject = row.opt_text("subject")?.unwrap_or_default();
    let Some(snippet) = snippet(&body, terms).or_else(|| snippet(&subject, terms)) else {
        return Ok(None);
    };
    Ok(Some(SearchHit {
        conversation_id: row.uuid("conversation_id")?,
        profile_id: row.uuid("profile_id")?,
        customer_name: row.text("customer_name")?,
        found_in: SearchIn::Message,
        message_id: Some(row.uuid("id")?),
        channel: Channel::parse(&row.text("channel")?),
        snippet,
        at: row.i64("created_at")?,
    }))
}

fn customer_hit(row: &Row, terms: &[String]) -> Result<Option<SearchHit>, StoreError> {
    let Some(snippet) = snippet(&row.text("people")?, terms) else {
        return Ok(None);
    };
    Ok(Some(SearchHit {
        conversation_id: row.uuid("id")?,
        profile_id: row.uuid("profile_id")?,
        customer_name: row.text("customer_name")?,
        found_in: SearchIn::Customer,
        message_id: None,
        channel: None,
        snippet,
        at: row.i64("last_message_at")?,
    }))
}

/// One PostgreSQL search: a table with a `tsvector` column under a GIN
/// index, and the query that reads a page of its matches newest first.
struct PgSearch {
    table: &'static str,
    column: &'static str,
    /// `$1` the organization, `$2` the `tsquery`, `$3` the page size.
    sql: &'static str,
}

const PEOPLE: PgSearch = PgSearch {
    table: "conversations",
    column: "people_search",
    sql: "select c.id, c.profile_id, c.people, c.last_message_at, \
          coalesce(p.display_name, '') as customer_name \
          from (select id, org_id, profile_id, people, last_message_at from conversations \
                where org_id = $1 and people_search @@ to_tsquery('simple', $2) \
                order by last_message_at desc, id desc limit $3) c \
          left join profiles p on p.org_id = c.org_id and p.id = c.profile_id \
          order by c.last_message_at desc, c.id desc",
};

const MESSAGES: PgSearch = PgSearch {
    table: "messages",
    column: "body_search",
    sql: "select m.id, m.conversation_id, m.channel, m.body, m.subject, m.created_at, \
          c.profile_id, coalesce(p.display_name, '') as customer_name \
          from (select org_id, id, conversation_id, channel, body, subject, created_at \
                from messages where org_id = $1 and body_search @@ to_tsquery('simple', $2) \
                order by created_at desc, id desc limit $3) m \
          join conversations c on c.org_id = m.org_id and c.id = m.conversation_id \
          left join profiles p on p.org_id = c.org_id and p.id = c.profile_id \
          order by m.created_at desc, m.id desc",
};

/// Estimates, from the planner's own statistics (the most common lexemes
/// of the column and their frequencies, as `analyze` gathered them), how
/// many rows match all the query's words, and sets this transaction's plan
/// by it: the GIN index and a sort of its matches when they are few
/// (fewer than √(page × rows)), else a walk of the table's newest-first
/// index that stops after a page. A word the statistics do not list is
/// rarer than every word they do, so its matches are few.
///
/// PostgreSQL's planner makes this choice itself but floors the estimate
/// of any prefix match at half a percent of the rows, so a rare word (or
/// one that matches nothing) looked common enough to walk for: 50–200 ms
/// at 200,000 messages where the GIN index answers in one.
const PG_CHOOSE_PLAN: &str = "\
    with est as ( \
      select exp(sum(ln(least(greatest(coalesce(( \
               select sum(u.f) from pg_stats s, \
                 unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) as u(e, f) \
               where s.schemaname = current_schema() and s.tablename = $1 and s.attname = $2 \
                 and starts_with(u.e, w)), 0), 1e-9), 1)))) as f, \
             (select greatest(reltuples, 0) from pg_class where oid = $1::regclass) as total \
      from regexp_split_to_table($3, ' ') as w \
    ), choice as ( \
      select (f * total) * (f * total) <= $4 * total as rare from est \
    ) \
    select (case when rare then 1 else 0 end)::bigint as rare, \
      set_config('enable_seqscan', 'off', true) as a, \
      set_config('enable_bitmapscan', case when rare then 'on' else 'off' end, true) as b, \
      set_config('enable_indexscan', case when rare then 'off' else 'on' end, true) as c \
    from choice";

/// Runs one search in the plan [`PG_CHOOSE_PLAN`] picks, in `tx`.
async fn pg_search(
    tx: &mut sqlx::PgConnection,
    s: &PgSearch,
    org: Uuid,
    terms: &[String],
    limit: i64,
) -> Result<Vec<Row>, StoreError> {
    use crate::sql::Db;
    tx.rows(
        q(PG_CHOOSE_PLAN)
            .bind(s.table)
            .bind(s.column)
            .bind(terms.join(" "))
            .bind(limit),
    )
    .await?;
    tx.rows(q(s.sql).bind(org).bind(tsquery(terms)).bind(limit))
        .await
}

impl Store {
    /// Searches the organization's conversations: customers whose name,
    /// e-mail or phone match come first, then messages, newest first.
    ///
    /// A common word matches a large share of every message, so neither
    /// engine may collect the matches and sort them. SQLite walks the FTS5
    /// index from the highest rowid down (rowids grow as messages are
    /// written, so this is newest first) and stops after a page; PostgreSQL
    /// chooses between walking the organization's messages newest first
    /// (`messages_recent`), checking each against the query, and the GIN
    /// index for a rare word, whose few matches are cheap to sort.
    pub async fn search_inbox(
        &self,
        org: Uuid,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let terms = terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let limit = limit.clamp(1, MAX_HITS) as i64;
        let pg = match &*self.engine {
            Engine::Postgres(p) => p,
            Engine::Sqlite(_) => return self.search_sqlite(org, &terms, limit).await,
        };
        let mut tx = pg.begin().await?;
        let people = pg_search(&mut tx, &PEOPLE, org, &terms, limit).await?;
        let messages = pg_search(&mut tx, &MESSAGES, org, &terms, limit).await?;
        // Read-only: nothing to keep, and the plan settings end with it.
        tx.rollback().await?;
        let mut hits = Vec::new();
        for row in &people {
            hits.extend(customer_hit(row, &terms)?);
        }
        for row in &messages {
            hits.extend(message_hit(row, &terms)?);
        }
        hits.truncate(limit as usize);
        Ok(hits)
    }

    /// SQLite: FTS5 walked from the highest rowid down, each query word
    /// asked as the index words it stands for (see [`expand`]).
    async fn search_sqlite(
        &self,
        org: Uuid,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let (people_sql, message_sql) = (
            // The matches sorted and cut to a page first; only the page's
            // customers are looked up.
            "select c.id, c.profile_id, c.people, c.last_message_at, \
             coalesce(p.display_name, '') as customer_name \
             from (select c.rowid as r, c.last_message_at as at \
                   from conversations_fts f join conversations c on c.rowid = f.rowid \
                   where conversations_fts match $2 and c.org_id = $1 \
                   order by c.last_message_at desc limit $3) h \
             join conversations c on c.rowid = h.r \
             left join profiles p on p.org_id = c.org_id and p.id = c.profile_id \
             order by h.at desc",
            "select m.id, m.conversation_id, m.channel, m.body, m.subject, m.created_at, \
             c.profile_id, coalesce(p.display_name, '') as customer_name \
             from messages_fts f cross join messages m on m.rowid = f.rowid \
             join conversations c on c.org_id = m.org_id and c.id = m.conversation_id \
             left join profiles p on p.org_id = c.org_id and p.id = c.profile_id \
             where messages_fts match $2 and m.org_id = $1 \
             order by f.rowid desc limit $3",
        );
        let mut hits = Vec::new();
        if let Some(pattern) = fts5_expanded(self, "conversations_fts_vocab", terms).await? {
            for row in read_rows(self, q(people_sql).bind(org).bind(pattern).bind(limit)).await? {
                hits.extend(customer_hit(&row, terms)?);
            }
        }
        if let Some(pattern) = fts5_expanded(self, "messages_fts_vocab", terms).await? {
            for row in read_rows(self, q(message_sql).bind(org).bind(pattern).bind(limit)).await? {
                hits.extend(message_hit(&row, terms)?);
            }
        }
        hits.truncate(limit as usize);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn terms_are_words_lowercased_and_bounded() {
        assert_eq!(terms("  Ann@Example.com "), vec!["ann", "example", "com"]);
        assert_eq!(terms("\"; drop table x; --"), vec!["drop", "table", "x"]);
        assert_eq!(terms("a a A"), vec!["a"]);
        assert!(terms("!!! ***").is_empty());
        assert_eq!(
            terms(&"w ".repeat(3).replace("w", "x y z q r s t u v")).len(),
            MAX_TERMS
        );
        assert_eq!(tsquery(&terms("ann smith")), "ann:* & smith:*");
    }

    #[test]
    fn snippets_mark_prefix_matches() {
        let parts = snippet("Where is my refund? Refunds take long", &terms("refund")).unwrap();
        let marked: Vec<&str> = parts
            .iter()
            .filter(|p| p.matched)
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(marked, vec!["refund", "Refunds"]);
        let all: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(all, "Where is my refund? Refunds take long");
        assert!(snippet("nothing here", &terms("refund")).is_none());
    }

    #[test]
    fn long_text_is_cut_around_the_first_match() {
        let text = format!("{} needle {}", "a ".repeat(200), "b ".repeat(200));
        let parts = snippet(&text, &terms("needle")).unwrap();
        let all: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert!(all.starts_with('…') && all.ends_with('…'), "{all}");
        assert!(all.chars().count() < 2 * CONTEXT_CHARS + 20);
    }

    proptest! {
        /// The snippet is a piece of the text: markup in a message stays
        /// text in parts, never anything else.
        #[test]
        fn snippet_never_invents_text(text in "\\PC{0,300}", q in "[a-z<>]{1,6}") {
            let t = terms(&q);
            if let Some(parts) = snippet(&text, &t) {
                for p in &parts {
                    if p.matched {
                        prop_assert!(text.contains(&p.text));
                    }
                }
            }
        }
    }
}
