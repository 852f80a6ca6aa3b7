//! The inbox's writes, each one transaction over the `Db` seam: record an
//! inbound or outbound message (finding or starting the customer's
//! conversation), settle an outbound message's delivery, assign, resolve,
//! reopen, and mark read.

use bos_core::inbox::{
    sanitize_email_html, transition, AuthorKind, Channel, DeliveryStatus, Direction, Priority,
    Status, ThreadEvent, TransitionError,
};
use bos_core::Millis;
use uuid::Uuid;

use super::{channel_bit, preview};
use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::{new_id, Store, StoreError};

/// A message from the customer.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The customer (the profile's root).
    pub profile_id: Uuid,
    pub channel: Channel,
    /// The provider's id for deduplication (Twilio's MessageSid, Meta's
    /// mid, the e-mail provider's id); `None` when it has none (a form).
    pub provider_message_id: Option<String>,
    pub author_name: String,
    pub text: String,
    /// E-mail HTML as received; sanitized here before it is written.
    pub html: Option<String>,
    pub subject: Option<String>,
    /// A JSON array of attachment metadata.
    pub attachments: serde_json::Value,
    pub email_message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// The priority the engine assessed for this message.
    pub priority: Priority,
    pub priority_reason: String,
    /// The customer's name, e-mail and phone as search should find them.
    pub people: String,
    pub at: Millis,
}

/// A message to the customer: a member's or agent's reply, a nudge, or an
/// echo of a message the business sent from the provider's own app.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub profile_id: Uuid,
    pub channel: Channel,
    pub author: AuthorKind,
    /// The member's user id or the agent's id.
    pub author_id: Option<String>,
    pub author_name: String,
    pub text: String,
    pub html: Option<String>,
    pub subject: Option<String>,
    pub attachments: serde_json::Value,
    /// Known up front only for echoes; replies get theirs when sent.
    pub provider_message_id: Option<String>,
    /// `Pending` for a reply about to be sent; `Sent` for an echo.
    pub status: DeliveryStatus,
    pub email_message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub people: String,
    pub at: Millis,
}

/// What recording a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New {
        conversation_id: Uuid,
        message_id: Uuid,
        /// The conversation was resolved and this message reopened it.
        reopened: bool,
        /// This message started the conversation.
        started: bool,
    },
    /// The provider delivered this message before: nothing changed.
    AlreadyHad {
        conversation_id: Uuid,
        message_id: Uuid,
    },
}

impl Recorded {
    pub fn conversation_id(&self) -> Uuid {
        match self {
            Recorded::New {
                conversation_id, ..
            }
            | Recorded::AlreadyHad {
                conversation_id, ..
            } => *conversation_id,
        }
    }

    pub fn message_id(&self) -> Uuid {
        match self {
            Recorded::New { message_id, .. } | Recorded::AlreadyHad { message_id, .. } => {
                *message_id
            }
        }
    }
}

/// The fields both directions write.
struct NewMessage {
    org: Uuid,
    profile_id: Uuid,
    channel: Channel,
    author: AuthorKind,
    author_id: Option<String>,
    author_name: String,
    text: String,
    html: Option<String>,
    subject: Option<String>,
    attachments: String,
    provider_message_id: Option<String>,
    status: DeliveryStatus,
    email_message_id: Option<String>,
    in_reply_to: Option<String>,
    references: String,
    priority: Option<(Priority, String)>,
    people: String,
    at: Millis,
}

fn attachments_json(v: &serde_json::Value) -> Result<String, StoreError> {
    match v {
        serde_json::Value::Null => Ok("[]".into()),
        serde_json::Value::Array(_) => Ok(v.to_string()),
        _ => Err(StoreError::Invalid(
            "attachments must be a JSON array".into(),
        )),
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

/// The existing message with this provider id, if any.
async fn by_provider_id<D: Db>(
    db: &mut D,
    org: Uuid,
    channel: Channel,
    provider_id: &str,
) -> Result<Option<(Uuid, Uuid)>, StoreError> {
    let row = db
        .opt(
            q("select id, conversation_id from messages \
               where org_id = $1 and channel = $2 and provider_message_id = $3")
            .bind(org)
            .bind(channel.as_str())
            .bind(provider_id),
        )
        .await?;
    row.map(|r| Ok((r.uuid("id")?, r.uuid("conversation_id")?)))
        .transpose()
}

/// [`Recorded::AlreadyHad`] when the message's provider id is stored.
async fn already_had<D: Db>(db: &mut D, m: &NewMessage) -> Result<Option<Recorded>, StoreError> {
    let Some(pid) = &m.provider_message_id else {
        return Ok(None);
    };
    Ok(by_provider_id(db, m.org, m.channel, pid)
        .await?
        .map(|(message_id, conversation_id)| Recorded::AlreadyHad {
            conversation_id,
            message_id,
        }))
}

async fn record_tx<D: Db>(db: &mut D, m: NewMessage) -> Result<Recorded, StoreError> {
    // Dedupe first, so a redelivery changes nothing at all.
    if let Some(had) = already_had(db, &m).await? {
        return Ok(had);
    }
    let direction = m.author.direction();
    let inbound = direction == Direction::Inbound;
    // A customer's message starts (or continues) the wait for an answer; a
    // person's or agent's reply ends it; automation does not count as one.
    let answers = matches!(m.author, AuthorKind::Member | AuthorKind::Agent);
    let (prio, prio_rank, prio_reason) = match &m.priority {
        Some((p, r)) => (Some(p.as_str()), Some(p.rank()), Some(r.clone())),
        None => (None, None, None),
    };
    let at_if_inbound = inbound.then_some(m.at);
    // Find or start the customer's one conversation. A conversation this
    // message starts is written whole, as the message leaves it: one
    // insert instead of an insert and an update that moves it in every
    // index (a sent nudge to a new customer is on the nudge drain's hot
    // path). The insert does nothing when it exists (or a concurrent
    // writer just made it); the locking read then serializes writers of
    // the same conversation.
    let new_conv = new_id();
    let started = db
        .exec(
            q(
                "insert into conversations (org_id, id, profile_id, status, last_message_at, \
               last_preview, last_channel, last_author, last_inbound_at, waiting_since, channels, \
               ai_involved, message_count, priority, priority_rank, priority_reason, people, \
               customer_ltv_cents, created_at, updated_at) \
               values ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $8, $9, $10, 1, $11, $12, $13, $14, \
               coalesce((select ltv_cents from profiles where org_id = $1 and id = $3), 0), $4, $4) \
               on conflict do nothing",
            )
            .bind(m.org)
            .bind(new_conv)
            .bind(m.profile_id)
            .bind(m.at)
            .bind(preview(&m.text))
            .bind(m.channel.as_str())
            .bind(m.author.as_str())
            .bind(at_if_inbound)
            .bind(channel_bit(m.channel))
            .bind(m.author.is_ai() as i64)
            .bind(prio.unwrap_or(Priority::Normal.as_str()))
            .bind(prio_rank.unwrap_or(Priority::Normal.rank()))
            .bind(prio_reason.clone().unwrap_or_default())
            .bind(m.people.as_str()),
        )
        .await?
        == 1;
    let (conversation_id, status, people_change) = if started {
        (new_conv, Status::Open, false)
    } else {
        let conv = db
            .one(
                q(format!(
                    "select id, status, people from conversations \
                     where org_id = $1 and profile_id = $2{}",
                    D::LOCK
                ))
                .bind(m.org)
                .bind(m.profile_id),
            )
            .await?;
        let status = Status::parse(&conv.text("status")?)
            .ok_or_else(|| StoreError::Other("unknown conversation status".into()))?;
        // Checked again under the lock: a concurrent delivery of the same
        // message to the same conversation waited for the first to commit.
        // SQLite's one writer has no concurrent delivery.
        if !D::SQLITE {
            if let Some(had) = already_had(db, &m).await? {
                return Ok(had);
            }
        }
        // Naming `people` in the update rewrites the conversation's search
        // entry (SQLite's trigger fires on the column, changed or not):
        // only when the names and handles did change.
        let people_change = !m.people.is_empty() && m.people != conv.text("people")?;
        (conv.uuid("id")?, status, people_change)
    };

    let message_id = new_id();
    let inserted = db
        .exec(
            q("insert into messages (org_id, id, conversation_id, channel, direction, author_kind, \
               author_id, author_name, body, html, subject, attachments, provider_message_id, status, \
               email_message_id, in_reply_to, email_references, created_at, updated_at) \
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18) \
               on conflict do nothing")
            .bind(m.org)
            .bind(message_id)
            .bind(conversation_id)
            .bind(m.channel.as_str())
            .bind(direction.as_str())
            .bind(m.author.as_str())
            .bind(m.author_id.clone())
            .bind(m.author_name.as_str())
            .bind(m.text.as_str())
            .bind(m.html.clone())
            .bind(m.subject.clone())
            .bind(m.attachments.as_str())
            .bind(m.provider_message_id.clone())
            .bind(m.status.as_str())
            .bind(m.email_message_id.clone())
            .bind(m.in_reply_to.clone())
            .bind(m.references.as_str())
            .bind(m.at),
        )
        .await?;
    if inserted == 0 {
        // The same provider id under another customer's conversation,
        // committed between our check and our insert: the conversation
        // this message would have started is not kept.
        if started {
            db.exec(
                q("delete from conversations where org_id = $1 and id = $2")
                    .bind(m.org)
                    .bind(new_conv),
            )
            .await?;
        }
        let pid = m.provider_message_id.as_deref().unwrap_or_default();
        let (message_id, conversation_id) = by_provider_id(db, m.org, m.channel, pid)
            .await?
            .ok_or_else(|| StoreError::Conflict("messages_provider_id".into()))?;
        return Ok(Recorded::AlreadyHad {
            conversation_id,
            message_id,
        });
    }
    if started {
        return Ok(Recorded::New {
            conversation_id,
            message_id,
            reopened: false,
            started,
        });
    }

    let event = match direction {
        Direction::Inbound => ThreadEvent::Inbound,
        Direction::Outbound => ThreadEvent::Outbound,
    };
    let next = transition(status, event).map_err(|e| StoreError::Other(e.to_string()))?;
    let set_people = if people_change { "people = $15, " } else { "" };
    let update = q(format!(
        "update conversations set {set_people}\
           status = $3, \
           last_message_at = case when $4 >= last_message_at then $4 else last_message_at end, \
           last_preview = case when $4 >= last_message_at then $5 else last_preview end, \
           last_channel = case when $4 >= last_message_at then $6 else last_channel end, \
           last_author = case when $4 >= last_message_at then $7 else last_author end, \
           last_inbound_at = case when $8 = 1 and (last_inbound_at is null or $4 > last_inbound_at) then $4 else last_inbound_at end, \
           waiting_since = case when $8 = 1 then coalesce(waiting_since, $4) when $9 = 1 then null else waiting_since end, \
           channels = channels | $10, \
           ai_involved = case when $11 = 1 then 1 else ai_involved end, \
           message_count = message_count + 1, \
           priority = coalesce($12, priority), \
           priority_rank = coalesce($13, priority_rank), \
           priority_reason = coalesce($14, priority_reason), \
           updated_at = $4 \
           where org_id = $1 and id = $2"
    ))
    .bind(m.org)
        .bind(conversation_id)
        .bind(next.as_str())
        .bind(m.at)
        .bind(preview(&m.text))
        .bind(m.channel.as_str())
        .bind(m.author.as_str())
        .bind(inbound as i64)
        .bind(answers as i64)
        .bind(channel_bit(m.channel))
        .bind(m.author.is_ai() as i64)
        .bind(prio)
        .bind(prio_rank)
    .bind(prio_reason);
    let update = if people_change {
        update.bind(m.people.as_str())
    } else {
        update
    };
    db.exec(update).await?;
    Ok(Recorded::New {
        conversation_id,
        message_id,
        reopened: status == Status::Resolved && next == Status::Open,
        started,
    })
}

/// The conversation's status, locked for the change that follows.
async fn locked_status<D: Db>(db: &mut D, org: Uuid, conv: Uuid) -> Result<Status, StoreError> {
    let row = db
        .one(
            q(format!(
                "select status from conversations where org_id = $1 and id = $2{}",
                D::LOCK
            ))
            .bind(org)
            .bind(conv),
        )
        .await?;
    Status::parse(&row.text("status")?)
        .ok_or_else(|| StoreError::Other("unknown conversation status".into()))
}

async fn move_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    conv: Uuid,
    event: ThreadEvent,
    at: Millis,
) -> Result<Status, StoreError> {
    let current = locked_status(db, org, conv).await?;
    let next = transition(current, event)
        .map_err(|e: TransitionError| StoreError::Conflict(e.to_string()))?;
    db.exec(
        q("update conversations set status = $3, updated_at = $4 where org_id = $1 and id = $2")
            .bind(org)
            .bind(conv)
            .bind(next.as_str())
            .bind(at),
    )
    .await?;
    Ok(next)
}

async fn assign_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    conv: Uuid,
    assignee: Option<Uuid>,
    at: Millis,
) -> Result<(), StoreError> {
    locked_status(db, org, conv).await?;
    if let Some(user) = assignee {
        // Only a member of this organization can hold a conversation.
        let member = db
            .opt(
                q("select 1 as one from memberships where org_id = $1 and user_id = $2")
                    .bind(org)
                    .bind(user),
            )
            .await?;
        if member.is_none() {
            return Err(StoreError::Invalid(
                "the assignee is not a member of this organization".into(),
            ));
        }
    }
    db.exec(
        q("update conversations set assignee_id = $3, updated_at = $4 where org_id = $1 and id = $2")
            .bind(org)
            .bind(conv)
            .bind(assignee)
            .bind(at),
    )
    .await?;
    Ok(())
}

pub(super) async fn delivery_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    message: Uuid,
    next: DeliveryStatus,
    provider_message_id: Option<String>,
    detail: Option<String>,
    at: Millis,
) -> Result<bool, StoreError> {
    let row = db
        .one(
            q(format!(
                "select status from messages where org_id = $1 and id = $2{}",
                D::LOCK
            ))
            .bind(org)
            .bind(message),
        )
        .await?;
    let current = DeliveryStatus::parse(&row.text("status")?)
        .ok_or_else(|| StoreError::Other("unknown delivery status".into()))?;
    let moves = current.may_become(next);
    // The provider's id is kept whenever it is learned, even from a late
    // report that does not move the status (echoes and receipts name it).
    db.exec(
        q("update messages set \
           status = case when $3 = 1 then $4 else status end, \
           status_detail = case when $3 = 1 then $5 else status_detail end, \
           provider_message_id = coalesce(provider_message_id, $6), \
           updated_at = $7 \
           where org_id = $1 and id = $2")
        .bind(org)
        .bind(message)
        .bind(moves as i64)
        .bind(next.as_str())
        .bind(detail)
        .bind(provider_message_id)
        .bind(at),
    )
    .await?;
    Ok(moves)
}

/// An outbound message as a row to write; refuses what cannot be outbound.
fn outbound(org: Uuid, m: &OutboundMessage) -> Result<NewMessage, StoreError> {
    if m.author == AuthorKind::Customer {
        return Err(StoreError::Invalid(
            "an outbound message cannot be authored by the customer".into(),
        ));
    }
    if m.status == DeliveryStatus::Received {
        return Err(StoreError::Invalid(
            "an outbound message cannot be `received`".into(),
        ));
    }
    Ok(NewMessage {
        org,
        profile_id: m.profile_id,
        channel: m.channel,
        author: m.author,
        author_id: nonempty(m.author_id.clone()),
        author_name: m.author_name.clone(),
        text: m.text.clone(),
        html: m.html.as_deref().map(sanitize_email_html),
        subject: nonempty(m.subject.clone()),
        attachments: attachments_json(&m.attachments)?,
        provider_message_id: nonempty(m.provider_message_id.clone()),
        status: m.status,
        email_message_id: nonempty(m.email_message_id.clone()),
        in_reply_to: nonempty(m.in_reply_to.clone()),
        references: serde_json::to_string(&m.references)
            .map_err(|e| StoreError::Other(e.to_string()))?,
        priority: None,
        people: m.people.clone(),
        at: m.at,
    })
}

/// Writes an outbound message inside the caller's transaction (a reply
/// checks the customer's opt-outs in the same one).
pub(super) async fn record_outbound_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    m: &OutboundMessage,
) -> Result<Recorded, StoreError> {
    let new = outbound(org, m)?;
    record_tx(db, new).await
}

impl Store {
    /// Records a customer's message: finds or starts their conversation,
    /// reopens it when resolved, and stores the message once (a redelivery
    /// with the same provider id is [`Recorded::AlreadyHad`]).
    pub async fn record_inbound(
        &self,
        org: Uuid,
        m: &InboundMessage,
    ) -> Result<Recorded, StoreError> {
        let new = NewMessage {
            org,
            profile_id: m.profile_id,
            channel: m.channel,
            author: AuthorKind::Customer,
            author_id: None,
            author_name: m.author_name.clone(),
            text: m.text.clone(),
            html: m.html.as_deref().map(sanitize_email_html),
            subject: nonempty(m.subject.clone()),
            attachments: attachments_json(&m.attachments)?,
            provider_message_id: nonempty(m.provider_message_id.clone()),
            status: DeliveryStatus::Received,
            email_message_id: nonempty(m.email_message_id.clone()),
            in_reply_to: nonempty(m.in_reply_to.clone()),
            references: serde_json::to_string(&m.references)
                .map_err(|e| StoreError::Other(e.to_string()))?,
            priority: Some((m.priority, m.priority_reason.clone())),
            people: m.people.clone(),
            at: m.at,
        };
        let at = m.at;
        write_db!(self, |db| async move {
            let r = record_tx(db, new).await?;
            // The agents who may answer hear of it in the same write.
            if let Recorded::New {
                conversation_id,
                message_id,
                ..
            } = r
            {
                crate::agents::cue_inbound(db, org, conversation_id, message_id, at).await?;
            }
            Ok(r)
        })
    }

    /// Records a message to the customer, `pending` before any provider is
    /// called (or already `sent` for an echo). An echo whose provider id
    /// is already stored is [`Recorded::AlreadyHad`].
    pub async fn record_outbound(
        &self,
        org: Uuid,
        m: &OutboundMessage,
    ) -> Result<Recorded, StoreError> {
        let new = outbound(org, m)?;
        write_db!(self, |db| record_tx(db, new))
    }

    /// Settles an outbound message's delivery: only forward moves apply
    /// (a late `sent` never overwrites `delivered`). Returns whether the
    /// status moved. The provider's id is kept when first learned.
    pub async fn set_message_delivery(
        &self,
        org: Uuid,
        message: Uuid,
        status: DeliveryStatus,
        provider_message_id: Option<String>,
        detail: Option<String>,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let pid = nonempty(provider_message_id);
        write_db!(self, |db| delivery_tx(
            db, org, message, status, pid, detail, at
        ))
    }

    /// A provider's receipt (delivered, read, failed) for the message it
    /// knows by `provider_message_id`; `None` when no such message is ours.
    pub async fn message_delivery_by_provider_id(
        &self,
        org: Uuid,
        channel: Channel,
        provider_message_id: &str,
        status: DeliveryStatus,
        at: Millis,
    ) -> Result<Option<Uuid>, StoreError> {
        let pid = provider_message_id.to_string();
        write_db!(self, |db| async move {
            let Some((message, _)) = by_provider_id(db, org, channel, &pid).await? else {
                return Ok(None);
            };
            delivery_tx(db, org, message, status, None, None, at).await?;
            Ok(Some(message))
        })
    }

    /// Assigns the conversation to a member of the organization, or to
    /// nobody.
    pub async fn assign_conversation(
        &self,
        org: Uuid,
        conversation: Uuid,
        assignee: Option<Uuid>,
        at: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| assign_tx(db, org, conversation, assignee, at))
    }

    /// Marks the conversation resolved; `Conflict` when it already is.
    pub async fn resolve_conversation(
        &self,
        org: Uuid,
        conversation: Uuid,
        at: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| move_tx(
            db,
            org,
            conversation,
            ThreadEvent::Resolve,
            at
        ))
        .map(|_| ())
    }

    /// Opens a resolved conversation again; `Conflict` when it is open.
    pub async fn reopen_conversation(
        &self,
        org: Uuid,
        conversation: Uuid,
        at: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| move_tx(
            db,
            org,
            conversation,
            ThreadEvent::Reopen,
            at
        ))
        .map(|_| ())
    }

    /// Records that `member` has read the conversation up to `at`. A read
    /// mark only moves forward.
    pub async fn mark_conversation_read(
        &self,
        org: Uuid,
        conversation: Uuid,
        member: Uuid,
        at: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            // The conversation must be this organization's.
            db.one(
                q("select id from conversations where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(conversation),
            )
            .await?;
            db.exec(
                q(
                    "insert into conversation_reads (org_id, conversation_id, member_id, read_at) \
                   values ($1, $2, $3, $4) \
                   on conflict (org_id, conversation_id, member_id) do update \
                   set read_at = case when excluded.read_at > conversation_reads.read_at \
                   then excluded.read_at else conversation_reads.read_at end",
                )
                .bind(org)
                .bind(conversation)
                .bind(member)
                .bind(at),
            )
            .await?;
            Ok(())
        })
    }
}
