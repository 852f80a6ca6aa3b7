//! The inbox's reads: a page of conversations with filters, a sort and an
//! opaque cursor, and one conversation with its messages. Everything is
//! read on the read path (never the writer's turn) and scoped by
//! organization; unread is per member, from their read mark.

use base64::Engine as _;
use bos_core::inbox::{AuthorKind, Channel, DeliveryStatus, Direction, Priority, Status};
use bos_core::Millis;
use uuid::Uuid;

use super::{channel_bit, MAX_MESSAGES, MAX_PAGE};
use crate::sql::{q, read_rows, Row, Q};
use crate::{Store, StoreError};

/// Which conversations a list shows, by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Open,
    /// The customer wrote since the member last read it.
    Unread,
    AssignedToMe,
    /// Open and nobody's.
    Unassigned,
    Resolved,
}

impl StatusFilter {
    pub fn parse(s: &str) -> Option<StatusFilter> {
        Some(match s {
            "open" => StatusFilter::Open,
            "unread" => StatusFilter::Unread,
            "assigned_to_me" | "mine" => StatusFilter::AssignedToMe,
            "unassigned" => StatusFilter::Unassigned,
            "resolved" => StatusFilter::Resolved,
            _ => return None,
        })
    }
}

/// AI vs human: whether an AI agent has taken part in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorFilter {
    Ai,
    Human,
}

impl AuthorFilter {
    pub fn parse(s: &str) -> Option<AuthorFilter> {
        match s {
            "ai" => Some(AuthorFilter::Ai),
            "human" => Some(AuthorFilter::Human),
            _ => None,
        }
    }
}

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Latest message first.
    #[default]
    Recent,
    /// Conversations with an unanswered customer message, the longest
    /// waiting first (the others are left out of this sort).
    OldestUnread,
    /// Most urgent first, then most recent.
    Priority,
    /// The customer's lifetime value, highest first.
    Value,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "recent" => Sort::Recent,
            "oldest_unread" => Sort::OldestUnread,
            "priority" => Sort::Priority,
            "value" => Sort::Value,
            _ => return None,
        })
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// The member looking: their unread marks, "assigned to me".
    pub member: Option<Uuid>,
    pub channel: Option<Channel>,
    pub status: Option<StatusFilter>,
    pub author: Option<AuthorFilter>,
    pub priority: Option<Priority>,
    pub sort: Sort,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    pub limit: u32,
}

/// One row of the thread list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversationSummary {
    pub id: Uuid,
    pub profile_id: Uuid,
    pub customer_name: String,
    pub customer_email: String,
    pub customer_phone: String,
    pub customer_ltv_cents: i64,
    pub status: Status,
    pub assignee_id: Option<Uuid>,
    pub priority: Priority,
    pub priority_reason: String,
    pub last_message_at: Millis,
    pub last_inbound_at: Option<Millis>,
    pub waiting_since: Option<Millis>,
    pub last_preview: String,
    pub last_channel: Channel,
    pub last_author: AuthorKind,
    pub channels: Vec<Channel>,
    pub ai_involved: bool,
    pub message_count: i64,
    /// Unread for the member who asked (false when nobody asked).
    pub unread: bool,
    pub created_at: Millis,
}

/// A page of conversations.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page {
    pub items: Vec<ConversationSummary>,
    /// Pass back for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// One message as the conversation shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub channel: Channel,
    pub direction: Direction,
    pub author_kind: AuthorKind,
    pub author_id: Option<String>,
    pub author_name: String,
    pub text: String,
    /// Sanitized e-mail HTML.
    pub html: Option<String>,
    pub subject: Option<String>,
    pub attachments: serde_json::Value,
    pub provider_message_id: Option<String>,
    pub status: DeliveryStatus,
    pub status_detail: Option<String>,
    pub email_message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub created_at: Millis,
}

/// A conversation with its latest messages, oldest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversationDetail {
    pub conversation: ConversationSummary,
    pub messages: Vec<Message>,
    /// Older messages exist beyond [`MAX_MESSAGES`].
    pub truncated: bool,
}

fn bad(what: &str) -> StoreError {
    StoreError::Other(format!("unknown {what} in the inbox tables"))
}

const SUMMARY_COLS: &str = "c.id, c.profile_id, c.status, c.assignee_id, c.priority, \
    c.priority_reason, c.last_message_at, c.last_inbound_at, c.waiting_since, c.last_preview, \
    c.last_channel, c.last_author, c.channels, c.ai_involved, c.message_count, c.created_at, \
    coalesce(p.display_name, '') as customer_name, coalesce(p.primary_email, '') as customer_email, \
    coalesce(p.primary_phone, '') as customer_phone, c.customer_ltv_cents, \
    r.read_at";

/// `from` and joins of a summary query; `$1` is the org, `$2` the member.
const SUMMARY_FROM: &str = "from conversations c \
    left join profiles p on p.org_id = c.org_id and p.id = c.profile_id \
    left join conversation_reads r on r.org_id = c.org_id and r.conversation_id = c.id and r.member_id = $2";

fn summary(row: &Row, member: Option<Uuid>) -> Result<ConversationSummary, StoreError> {
    let channels_bits = row.i64("channels")?;
    let last_inbound_at = row.opt_i64("last_inbound_at")?;
    Ok(ConversationSummary {
        id: row.uuid("id")?,
        profile_id: row.uuid("profile_id")?,
        customer_name: row.text("customer_name")?,
        customer_email: row.text("customer_email")?,
        customer_phone: row.text("customer_phone")?,
        customer_ltv_cents: row.i64("customer_ltv_cents")?,
        status: Status::parse(&row.text("status")?).ok_or_else(|| bad("status"))?,
        assignee_id: row.opt_uuid("assignee_id")?,
        priority: Priority::parse(&row.text("priority")?).ok_or_else(|| bad("priority"))?,
        priority_reason: row.text("priority_reason")?,
        last_message_at: row.i64("last_message_at")?,
        last_inbound_at,
        waiting_since: row.opt_i64("waiting_since")?,
        last_preview: row.text("last_preview")?,
        last_channel: Channel::parse(&row.text("last_channel")?).ok_or_else(|| bad("channel"))?,
        last_author: AuthorKind::parse(&row.text("last_author")?).ok_or_else(|| bad("author"))?,
        channels: Channel::ALL
            .iter()
            .copied()
            .filter(|c| channels_bits & channel_bit(*c) != 0)
            .collect(),
        ai_involved: row.i64("ai_involved")? != 0,
        message_count: row.i64("message_count")?,
        unread: member.is_some()
            && bos_core::inbox::is_unread(last_inbound_at, row.opt_i64("read_at")?),
        created_at: row.i64("created_at")?,
    })
}

pub(super) fn message(row: &Row) -> Result<Message, StoreError> {
    let attachments =
        serde_json::from_str(&row.text("attachments")?).unwrap_or(serde_json::Value::Array(vec![]));
    let references = serde_json::from_str(&row.text("email_references")?).unwrap_or_default();
    Ok(Message {
        id: row.uuid("id")?,
        conversation_id: row.uuid("conversation_id")?,
        channel: Channel::parse(&row.text("channel")?).ok_or_else(|| bad("channel"))?,
        direction: Direction::parse(&row.text("direction")?).ok_or_else(|| bad("direction"))?,
        author_kind: AuthorKind::parse(&row.text("author_kind")?).ok_or_else(|| bad("author"))?,
        author_id: row.opt_text("author_id")?,
        author_name: row.text("author_name")?,
        text: row.text("body")?,
        html: row.opt_text("html")?,
        subject: row.opt_text("subject")?,
        attachments,
        provider_message_id: row.opt_text("provider_message_id")?,
        status: DeliveryStatus::parse(&row.text("status")?).ok_or_else(|| bad("status"))?,
        status_detail: row.opt_text("status_detail")?,
        email_message_id: row.opt_text("email_message_id")?,
        in_reply_to: row.opt_text("in_reply_to")?,
        references,
        created_at: row.i64("created_at")?,
    })
}

pub(crate) const MESSAGE_COLS: &str = "id, conversation_id, channel, direction, author_kind, \
    author_id, author_name, body, html, subject, attachments, provider_message_id, status, \
    status_detail, email_message_id, in_reply_to, email_references, created_at";

/// A position in a sorted list: the sort's keys of the last row shown and
/// its id. Opaque to callers (base64 of `sort:k1:k2:id`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    k1: i64,
    k2: i64,
    id: Uuid,
}

fn sort_tag(s: Sort) -> &'static str {
    match s {
        Sort::Recent => "r",
        Sort::OldestUnread => "o",
        Sort::Priority => "p",
        Sort::Value => "v",
    }
}

fn encode_cursor(sort: Sort, c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}:{}:{}:{}",
        sort_tag(sort),
        c.k1,
        c.k2,
        c.id.simple()
    ))
}

fn decode_cursor(sort: Sort, s: &str) -> Result<Cursor, StoreError> {
    let invalid = || StoreError::Invalid("the cursor is not one this list gave out".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.split(':').collect();
    let [tag, k1, k2, id] = parts[..] else {
        return Err(invalid());
    };
    if tag != sort_tag(sort) {
        return Err(invalid());
    }
    Ok(Cursor {
        k1: k1.parse().map_err(|_| invalid())?,
        k2: k2.parse().map_err(|_| invalid())?,
        id: Uuid::parse_str(id).map_err(|_| invalid())?,
    })
}

fn cursor_of(sort: Sort, s: &ConversationSummary) -> Cursor {
    let (k1, k2) = match sort {
        Sort::Recent => (s.last_message_at, 0),
        Sort::OldestUnread => (s.waiting_since.unwrap_or(i64::MAX), 0),
        Sort::Priority => (s.priority.rank(), s.last_message_at),
        Sort::Value => (s.customer_ltv_cents, 0),
    };
    Cursor { k1, k2, id: s.id }
}

/// `(c.last_inbound_at > read mark)`: unread for the member `$2`.
const UNREAD: &str =
    "(c.last_inbound_at is not null and (r.read_at is null or r.read_at < c.last_inbound_at))";

/// Builds the list statement: filters, then the sort's keyset condition
/// and order. Arguments are numbered as they are added.
fn list_query(org: Uuid, query: &ListQuery) -> Result<(Q, u32), StoreError> {
    let needs_member = matches!(
        query.status,
        Some(StatusFilter::Unread) | Some(StatusFilter::AssignedToMe)
    );
    if needs_member && query.member.is_none() {
        return Err(StoreError::Invalid(
            "this status filter needs the member who is looking".into(),
        ));
    }
    let limit = query.limit.clamp(1, MAX_PAGE);
    let mut conds = vec!["c.org_id = $1".to_string()];
    let mut args: Vec<crate::sql::Arg> = vec![org.into(), query.member.into()];
    let next = |a: crate::sql::Arg, args: &mut Vec<crate::sql::Arg>| {
        args.push(a);
        format!("${}", args.len())
    };
    if let Some(ch) = query.channel {
        let p = next(channel_bit(ch).into(), &mut args);
        conds.push(format!("(c.channels & {p}) <> 0"));
    }
    match query.status {
        None => {}
        Some(StatusFilter::Open) => conds.push("c.status = 'open'".into()),
        Some(StatusFilter::Resolved) => conds.push("c.status = 'resolved'".into()),
        Some(StatusFilter::Unassigned) => {
            conds.push("c.status = 'open' and c.assignee_id is null".into())
        }
        Some(StatusFilter::AssignedToMe) => conds.push("c.assignee_id = $2".into()),
        Some(StatusFilter::Unread) => conds.push(UNREAD.into()),
    }
    match query.author {
        None => {}
        Some(AuthorFilter::Ai) => conds.push("c.ai_involved = 1".into()),
        Some(AuthorFilter::Human) => conds.push("c.ai_involved = 0".into()),
    }
    if let Some(p) = query.priority {
        // The rank, not the name: the indexes lead with it.
        let p = next(p.rank().into(), &mut args);
        conds.push(format!("c.priority_rank = {p}"));
    }
    if query.sort == Sort::OldestUnread {
        conds.push("c.waiting_since is not null".into());
    }
    let cursor = query
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| decode_cursor(query.sort, c))
        .transpose()?;
    if let Some(cur) = cursor {
        let k1 = next(cur.k1.into(), &mut args);
        let id = next(cur.id.into(), &mut args);
        // Each condition opens with a plain bound on the first key (`<=`,
        // `>=`) that the index seeks to; the `or` after it only settles ties.
        conds.push(match query.sort {
            Sort::Recent => format!(
                "c.last_message_at <= {k1} and \
                 (c.last_message_at < {k1} or (c.last_message_at = {k1} and c.id < {id}))"
            ),
            Sort::OldestUnread => format!(
                "c.waiting_since >= {k1} and \
                 (c.waiting_since > {k1} or (c.waiting_since = {k1} and c.id > {id}))"
            ),
            Sort::Priority => {
                let k2 = next(cur.k2.into(), &mut args);
                format!(
                    "c.priority_rank >= {k1} and (c.priority_rank > {k1} or (c.priority_rank = {k1} and \
                     (c.last_message_at < {k2} or (c.last_message_at = {k2} and c.id < {id}))))"
                )
            }
            Sort::Value => format!(
                "c.customer_ltv_cents <= {k1} and \
                 (c.customer_ltv_cents < {k1} or (c.customer_ltv_cents = {k1} and c.id < {id}))"
            ),
        });
    }
    let order = match query.sort {
        Sort::Recent => "c.last_message_at desc, c.id desc",
        Sort::OldestUnread => "c.waiting_since asc, c.id asc",
        Sort::Priority => "c.priority_rank asc, c.last_message_at desc, c.id desc",
        Sort::Value => "c.customer_ltv_cents desc, c.id desc",
    };
    let sql = format!(
        "select {SUMMARY_COLS} {SUMMARY_FROM} where {} order by {order} limit {}",
        conds.join(" and "),
        limit + 1
    );
    let mut stmt = q(sql);
    for a in args {
        stmt = stmt.bind(a);
    }
    Ok((stmt, limit))
}

impl Store {
    /// A page of the organization's conversations.
    pub async fn list_conversations(
        &self,
        org: Uuid,
        query: &ListQuery,
    ) -> Result<Page, StoreError> {
        let (stmt, limit) = list_query(org, query)?;
        let rows = read_rows(self, stmt).await?;
        let mut items = rows
            .iter()
            .map(|r| summary(r, query.member))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items
                .last()
                .map(|last| encode_cursor(query.sort, &cursor_of(query.sort, last)))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// One conversation of the organization with its latest messages.
    pub async fn conversation(
        &self,
        org: Uuid,
        id: Uuid,
        member: Option<Uuid>,
    ) -> Result<ConversationDetail, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {SUMMARY_COLS} {SUMMARY_FROM} where c.org_id = $1 and c.id = $3"
            ))
            .bind(org)
            .bind(member)
            .bind(id),
        )
        .await?;
        let conversation = summary(rows.first().ok_or(StoreError::NotFound)?, member)?;
        let rows = read_rows(
            self,
            q(format!(
                "select {MESSAGE_COLS} from messages where org_id = $1 and conversation_id = $2 \
                 order by created_at desc, id desc limit {}",
                MAX_MESSAGES + 1
            ))
            .bind(org)
            .bind(id),
        )
        .await?;
        let mut messages = rows.iter().map(message).collect::<Result<Vec<_>, _>>()?;
        let truncated = messages.len() > MAX_MESSAGES as usize;
        messages.truncate(MAX_MESSAGES as usize);
        messages.reverse();
        Ok(ConversationDetail {
            conversation,
            messages,
            truncated,
        })
    }

    /// The organization's conversations among `ids`, as `member` sees
    /// them, in no particular order (ids of other organizations are
    /// simply not found).
    pub async fn conversations_by_id(
        &self,
        org: Uuid,
        ids: &[Uuid],
        member: Option<Uuid>,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
        let mut stmt = q(format!(
            "select {SUMMARY_COLS} {SUMMARY_FROM} where c.org_id = $1 and c.id in ({})",
            marks.join(", ")
        ))
        .bind(org)
        .bind(member);
        for id in ids {
            stmt = stmt.bind(*id);
        }
        let rows = read_rows(self, stmt).await?;
        rows.iter().map(|r| summary(r, member)).collect()
    }

    /// The customer's conversation, if they have one.
    pub async fn conversation_of_profile(
        &self,
        org: Uuid,
        profile: Uuid,
    ) -> Result<Option<Uuid>, StoreError> {
        let rows = read_rows(
            self,
            q("select id from conversations where org_id = $1 and profile_id = $2")
                .bind(org)
                .bind(profile),
        )
        .await?;
        rows.first().map(|r| r.uuid("id")).transpose()
    }

    /// The threading ids of the conversation's latest e-mail, for the
    /// headers of a reply (`bos_core::inbox::reply_headers`).
    pub async fn last_email_ids(
        &self,
        org: Uuid,
        conversation: Uuid,
    ) -> Result<Option<(bos_core::inbox::ThreadIds, Option<String>)>, StoreError> {
        let rows = read_rows(
            self,
            q(
                "select email_message_id, in_reply_to, email_references, subject from messages \
               where org_id = $1 and conversation_id = $2 and email_message_id is not null \
               order by created_at desc, id desc limit 1",
            )
            .bind(org)
            .bind(conversation),
        )
        .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        Ok(Some((
            bos_core::inbox::ThreadIds {
                message_id: r.opt_text("email_message_id")?,
                in_reply_to: r.opt_text("in_reply_to")?,
                references: serde_json::from_str(&r.text("email_references")?).unwrap_or_default(),
            },
            r.opt_text("subject")?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let c = Cursor {
            k1: -5,
            k2: 1_700_000_000_000,
            id: Uuid::now_v7(),
        };
        let s = encode_cursor(Sort::Priority, &c);
        assert_eq!(decode_cursor(Sort::Priority, &s).unwrap(), c);
        // Another sort's cursor is refused, not misread.
        assert!(matches!(
            decode_cursor(Sort::Recent, &s),
            Err(StoreError::Invalid(_))
        ));
        for bad in ["", "!!!", "cjox", &s[..s.len() - 3]] {
            assert!(matches!(
                decode_cursor(Sort::Priority, bad),
                Err(StoreError::Invalid(_))
            ));
        }
    }

    #[test]
    fn filters_that_need_a_member_say_so() {
        let q = ListQuery {
            status: Some(StatusFilter::Unread),
            ..ListQuery::default()
        };
        assert!(matches!(
            list_query(Uuid::nil(), &q),
            Err(StoreError::Invalid(_))
        ));
    }
}
