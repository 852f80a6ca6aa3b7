//! Benchmark support: conversations, their customers and their messages
//! inserted in large multi-row batches, bypassing the one-message-per-
//! transaction write path (no dedupe, no state machine: the caller hands
//! over the finished state). Search stays maintained: SQLite's FTS5
//! triggers and PostgreSQL's generated `tsvector` columns run as for any
//! insert. Not for production data.

use bos_core::inbox::{AuthorKind, Channel, Priority, Status};
use bos_core::Millis;
use uuid::Uuid;

use super::{channel_bit, preview};
use crate::engine::write;
use crate::{Store, StoreError};

/// One conversation with its customer, as it stands after its messages.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct BulkConversation {
    pub id: Uuid,
    /// A new profile, inserted with the conversation.
    pub profile_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub ltv_cents: i64,
    pub status: Status,
    pub assignee_id: Option<Uuid>,
    pub priority: Priority,
    pub last_message_at: Millis,
    pub last_inbound_at: Option<Millis>,
    pub waiting_since: Option<Millis>,
    pub last_text: String,
    pub last_channel: Channel,
    pub last_author: AuthorKind,
    pub channels: Vec<Channel>,
    pub ai_involved: bool,
    pub message_count: i64,
    pub created_at: Millis,
    /// A member's read mark on it.
    pub read_by: Option<(Uuid, Millis)>,
}

/// One message of a [`BulkConversation`].
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct BulkMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub channel: Channel,
    pub author: AuthorKind,
    pub author_name: String,
    pub text: String,
    pub subject: Option<String>,
    pub at: Millis,
}

/// Rows per statement on PostgreSQL: under its limit on bound parameters.
const CONV_CHUNK: usize = 500;
const MSG_CHUNK: usize = 1000;
/// Rows per statement on SQLite. The driver finds each numbered
/// parameter's place by name, and SQLite looks a name up in a list of all
/// the statement's names, so a statement costs the square of its
/// parameters: at 1,000 rows that was four fifths of a load's time.
const SQLITE_CHUNK: usize = 16;

/// `($1, $k, …)` groups of `width` numbered parameters after the org's `$1`.
fn values(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push_str("($1");
        for k in 0..width {
            out.push_str(&format!(", ${}", 2 + r * width + k));
        }
        out.push(')');
    }
    out
}

/// The secondary indexes (and, on SQLite, the search triggers) of the
/// inbox tables, taken off for a bulk load by
/// [`Store::bulk_unindex_inbox`] and put back by
/// [`Store::bulk_reindex_inbox`]: each `create` statement as the database
/// itself recorded it.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct BulkIndexes {
    creates: Vec<String>,
}

impl Store {
    /// Drops the secondary indexes of `conversations`, `messages` and
    /// `conversation_reads` (and SQLite's search triggers) before a bulk
    /// load: a million conversations sorted into nine indexes one random
    /// row at a time, and every message's words merged into the search
    /// index batch after batch, cost far more than building each index once
    /// from the loaded rows. Only for a database nothing else is using.
    #[doc(hidden)]
    pub async fn bulk_unindex_inbox(&self) -> Result<BulkIndexes, StoreError> {
        let sqlite = matches!(&*self.engine, crate::engine::Engine::Sqlite(_));
        write!(self, |c| {
            let rows: Vec<(String, String, String)> = if sqlite {
                sqlx::query_as(
                    "select type, name, sql from sqlite_master \
                     where type in ('index', 'trigger') and sql is not null \
                     and tbl_name in ('conversations', 'messages', 'conversation_reads') \
                     order by type, name",
                )
                .fetch_all(&mut *c)
                .await?
            } else {
                sqlx::query_as(
                    "select 'index', i.indexname::text, i.indexdef from pg_indexes i \
                     where i.schemaname = current_schema() \
                     and i.tablename in ('conversations', 'messages', 'conversation_reads') \
                     and not exists (select 1 from pg_constraint k \
                       where k.conname = i.indexname and k.contype in ('p', 'u')) \
                     order by i.indexname",
                )
                .fetch_all(&mut *c)
                .await?
            };
            let mut creates = Vec::new();
            for (kind, name, sql) in rows {
                sqlx::query(&format!("drop {kind} {name}"))
                    .execute(&mut *c)
                    .await?;
                creates.push(sql);
            }
            Ok(BulkIndexes { creates })
        })
    }

    /// Puts back what [`Store::bulk_unindex_inbox`] took off, builds the
    /// search indexes from the loaded rows (SQLite's FTS5 `rebuild`; the
    /// GIN indexes on PostgreSQL), and gathers the planner's statistics.
    #[doc(hidden)]
    pub async fn bulk_reindex_inbox(&self, ix: BulkIndexes) -> Result<(), StoreError> {
        let sqlite = matches!(&*self.engine, crate::engine::Engine::Sqlite(_));
        write!(self, |c| {
            if !sqlite {
                sqlx::query("set maintenance_work_mem = '512MB'")
                    .execute(&mut *c)
                    .await?;
            }
            for sql in &ix.creates {
                sqlx::query(sql).execute(&mut *c).await?;
            }
            if sqlite {
                // Built from the rows, then merged into one segment: the
                // state a server's housekeeping merges (`optimize`) tend to.
                for t in ["messages_fts", "conversations_fts"] {
                    for cmd in ["rebuild", "optimize"] {
                        sqlx::query(&format!("insert into {t}({t}) values ('{cmd}')"))
                            .execute(&mut *c)
                            .await?;
                    }
                }
            } else {
                sqlx::query("reset maintenance_work_mem")
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        })?;
        self.optimize().await?;
        self.bulk_analyze_inbox().await
    }

    /// After a bulk load: the planner's statistics for the inbox tables, as
    /// PostgreSQL's autovacuum would gather them some minutes later (SQLite's
    /// are refreshed by `Store::optimize`). Without them PostgreSQL plans a
    /// list as if the tables were empty.
    #[doc(hidden)]
    pub async fn bulk_analyze_inbox(&self) -> Result<(), StoreError> {
        if let crate::engine::Engine::Postgres(_) = &*self.engine {
            write!(self, |c| {
                sqlx::query("analyze profiles, conversations, conversation_reads, messages")
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Inserts conversations (each with a new profile for its customer)
    /// and then messages, in one transaction per call. The messages must
    /// belong to conversations of this call or of an earlier one.
    #[doc(hidden)]
    pub async fn bulk_load_inbox(
        &self,
        org: Uuid,
        conversations: Vec<BulkConversation>,
        messages: Vec<BulkMessage>,
    ) -> Result<(), StoreError> {
        let sqlite = matches!(&*self.engine, crate::engine::Engine::Sqlite(_));
        write!(self, |c| {
            // SQLite's writer runs the body in a transaction of its own; one
            // begun inside it would be a savepoint, whose statement journal
            // copies every page the load touches. PostgreSQL's connection
            // is bare. (A failed load is the benchmark's end either way.)
            if !sqlite {
                sqlx::query("begin").execute(&mut *c).await?;
            }
            let tx = &mut *c;
            for chunk in conversations.chunks(if sqlite { SQLITE_CHUNK } else { CONV_CHUNK }) {
                let sql = format!(
                    "insert into profiles (org_id, id, root_id, first_name, last_name, display_name, \
                     name_lc, primary_email, primary_phone, own_ltv_cents, ltv_cents, last_active_at, \
                     created_at, updated_at) values {}",
                    values(chunk.len(), 13)
                );
                let mut q = sqlx::query(&sql).bind(org);
                for cv in chunk {
                    let name = format!("{} {}", cv.first_name, cv.last_name);
                    q = q
                        .bind(cv.profile_id)
                        .bind(cv.profile_id)
                        .bind(cv.first_name.as_str())
                        .bind(cv.last_name.as_str())
                        .bind(name.clone())
                        .bind(name.to_lowercase())
                        .bind(cv.email.as_str())
                        .bind(cv.phone.as_str())
                        .bind(cv.ltv_cents)
                        .bind(cv.ltv_cents)
                        .bind(cv.last_message_at)
                        .bind(cv.created_at)
                        .bind(cv.last_message_at);
                }
                q.execute(&mut *tx).await?;
                let sql = format!(
                    "insert into conversations (org_id, id, profile_id, status, assignee_id, priority, \
                     priority_rank, priority_reason, last_message_at, last_inbound_at, waiting_since, \
                     last_preview, last_channel, last_author, channels, ai_involved, message_count, \
                     customer_ltv_cents, people, created_at, updated_at) values {}",
                    values(chunk.len(), 20)
                );
                let mut q = sqlx::query(&sql).bind(org);
                for cv in chunk {
                    let name = format!("{} {}", cv.first_name, cv.last_name);
                    let bits = cv.channels.iter().fold(0, |a, ch| a | channel_bit(*ch));
                    q = q
                        .bind(cv.id)
                        .bind(cv.profile_id)
                        .bind(cv.status.as_str())
                        .bind(cv.assignee_id)
                        .bind(cv.priority.as_str())
                        .bind(cv.priority.rank())
                        .bind("")
                        .bind(cv.last_message_at)
                        .bind(cv.last_inbound_at)
                        .bind(cv.waiting_since)
                        .bind(preview(&cv.last_text))
                        .bind(cv.last_channel.as_str())
                        .bind(cv.last_author.as_str())
                        .bind(bits)
                        .bind(cv.ai_involved as i64)
                        .bind(cv.message_count)
                        .bind(cv.ltv_cents)
                        .bind(super::people_text(&name, &cv.email, &cv.phone))
                        .bind(cv.created_at)
                        .bind(cv.last_message_at);
                }
                q.execute(&mut *tx).await?;
                let reads: Vec<_> = chunk
                    .iter()
                    .filter_map(|cv| cv.read_by.map(|r| (cv.id, r)))
                    .collect();
                if !reads.is_empty() {
                    let sql = format!(
                        "insert into conversation_reads (org_id, conversation_id, member_id, read_at) \
                         values {}",
                        values(reads.len(), 3)
                    );
                    let mut q = sqlx::query(&sql).bind(org);
                    for (conv, (member, at)) in reads {
                        q = q.bind(conv).bind(member).bind(at);
                    }
                    q.execute(&mut *tx).await?;
                }
            }
            for chunk in messages.chunks(if sqlite { SQLITE_CHUNK } else { MSG_CHUNK }) {
                let sql = format!(
                    "insert into messages (org_id, id, conversation_id, channel, direction, \
                     author_kind, author_name, body, subject, status, created_at, updated_at) \
                     values {}",
                    values(chunk.len(), 11)
                );
                let mut q = sqlx::query(&sql).bind(org);
                for m in chunk {
                    let direction = m.author.direction();
                    let status = match direction {
                        bos_core::inbox::Direction::Inbound => "received",
                        bos_core::inbox::Direction::Outbound => "delivered",
                    };
                    q = q
                        .bind(m.id)
                        .bind(m.conversation_id)
                        .bind(m.channel.as_str())
                        .bind(direction.as_str())
                        .bind(m.author.as_str())
                        .bind(m.author_name.as_str())
                        .bind(m.text.as_str())
                        .bind(m.subject.as_deref())
                        .bind(status)
                        .bind(m.at)
                        .bind(m.at);
                }
                q.execute(&mut *tx).await?;
            }
            if !sqlite {
                sqlx::query("commit").execute(&mut *tx).await?;
            }
            Ok(())
        })
    }
}
