//! An agent's event stream as stored, and the hand-off between an agent
//! and the people of the organization. Every agent has its own numbered
//! events (`agent_events.seq` counts per agent): a customer's new message
//! on a conversation the agent may answer, a pause or a resume, a hand-off,
//! a member taking a conversation over or handing it back. Each is written
//! in the same transaction as the change it reports, so a stream that
//! resumes after the last number it saw misses nothing and sees nothing
//! twice. Appending locks the agent's row, so two writers never take the
//! same number and numbers become visible in order on both engines.
//!
//! Which conversations an agent hears about: those it handles
//! (`conversations.agent_id`) and those nobody handles yet (no agent and
//! no member: every agent of the organization hears of them, and the
//! first that answers claims it). Never one a member holds
//! (`assignee_id`), or one waiting for a human after a hand-off.

use bos_core::inbox::Channel;
use bos_core::Millis;
use uuid::Uuid;

use crate::engine::write_db;
use crate::sql::{q, read_rows, Db, Row};
use crate::{Store, StoreError};

/// The most events one read returns.
pub const EVENTS_PAGE: u32 = 100;

/// What happened, for the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A customer wrote on a conversation the agent may answer.
    Message,
    Paused,
    Resumed,
    /// The conversation was handed to a human (by the agent, or for it).
    HandedOff,
    /// A member took the conversation over: the agent stops answering it.
    Takeover,
    /// A member gave the conversation back to the agent.
    HandedBack,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Message => "message",
            StreamKind::Paused => "paused",
            StreamKind::Resumed => "resumed",
            StreamKind::HandedOff => "handed_off",
            StreamKind::Takeover => "takeover",
            StreamKind::HandedBack => "handed_back",
        }
    }

    pub fn parse(s: &str) -> Option<StreamKind> {
        [
            StreamKind::Message,
            StreamKind::Paused,
            StreamKind::Resumed,
            StreamKind::HandedOff,
            StreamKind::Takeover,
            StreamKind::HandedBack,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The customer's message a `message` event names, as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMessage {
    pub channel: Channel,
    pub text: String,
    pub subject: Option<String>,
    pub author_name: String,
    pub at: Millis,
}

/// The customer of an event's conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCustomer {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: String,
}

/// One event of an agent's stream, with what the agent needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub seq: i64,
    pub kind: StreamKind,
    pub conversation_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    /// The hand-off's reason, or who paused, took over or handed back.
    pub detail: Option<String>,
    pub at: Millis,
    pub message: Option<StreamMessage>,
    pub customer: Option<StreamCustomer>,
    /// The agent handling the conversation now (none: nobody claimed it).
    pub conversation_agent_id: Option<Uuid>,
}

/// A conversation's hands: which agent, which member, and whether it waits
/// for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationHands {
    pub profile_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub handoff_at: Option<Millis>,
    pub handoff_reason: Option<String>,
}

/// What a hand-off, takeover or hand-back did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandsMoved {
    /// The conversation's hands afterwards.
    pub hands: ConversationHands,
    /// False when it already was so (nothing written, nobody told).
    pub changed: bool,
}

fn hands_row(r: &Row) -> Result<ConversationHands, StoreError> {
    Ok(ConversationHands {
        profile_id: r.uuid("profile_id")?,
        agent_id: r.opt_uuid("agent_id")?,
        assignee_id: r.opt_uuid("assignee_id")?,
        handoff_at: r.opt_i64("handoff_at")?,
        handoff_reason: r.opt_text("handoff_reason")?,
    })
}

const HANDS: &str =
    "select profile_id, agent_id, assignee_id, handoff_at, handoff_reason from conversations \
     where org_id = $1 and id = $2";

async fn locked_hands<D: Db>(
    db: &mut D,
    org: Uuid,
    conv: Uuid,
) -> Result<ConversationHands, StoreError> {
    let r = db
        .one(q(format!("{HANDS}{}", D::LOCK)).bind(org).bind(conv))
        .await?;
    hands_row(&r)
}

/// Appends the agent's next event. The agent's row is locked first, so
/// the next number is taken by one writer at a time.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn append<D: Db>(
    db: &mut D,
    org: Uuid,
    agent: Uuid,
    kind: StreamKind,
    conversation: Option<Uuid>,
    message: Option<Uuid>,
    detail: Option<String>,
    at: Millis,
) -> Result<(), StoreError> {
    db.one(
        q(format!(
            "select id from agents where org_id = $1 and id = $2{}",
            D::LOCK
        ))
        .bind(org)
        .bind(agent),
    )
    .await?;
    let next = db
        .one(
            q(
                "select coalesce(max(seq), 0) + 1 as next_seq from agent_events \
               where org_id = $1 and agent_id = $2",
            )
            .bind(org)
            .bind(agent),
        )
        .await?
        .i64("next_seq")?;
    db.exec(
        q(
            "insert into agent_events (org_id, agent_id, seq, kind, conversation_id, message_id, \
             detail, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(org)
        .bind(agent)
        .bind(next)
        .bind(kind.as_str())
        .bind(conversation)
        .bind(message)
        .bind(detail)
        .bind(at),
    )
    .await?;
    Ok(())
}

/// Tells the agents who may answer it of a customer's new message, in the
/// transaction that stored it: the conversation's agent, or every agent of
/// the organization when none has claimed it; nobody when a member holds
/// it or it waits for a human.
pub(crate) async fn cue_inbound<D: Db>(
    db: &mut D,
    org: Uuid,
    conv: Uuid,
    message: Uuid,
    at: Millis,
) -> Result<(), StoreError> {
    let hands = hands_row(&db.one(q(HANDS).bind(org).bind(conv)).await?)?;
    if hands.assignee_id.is_some() || hands.handoff_at.is_some() {
        return Ok(());
    }
    let agents = match hands.agent_id {
        Some(a) => vec![a],
        None => db
            .rows(q("select id from agents where org_id = $1 order by id").bind(org))
            .await?
            .iter()
            .map(|r| r.uuid("id"))
            .collect::<Result<Vec<_>, _>>()?,
    };
    // In id order: every writer locks agents in the same order.
    for a in agents {
        append(
            db,
            org,
            a,
            StreamKind::Message,
            Some(conv),
            Some(message),
            None,
            at,
        )
        .await?;
    }
    Ok(())
}

/// How a hand-off, takeover or hand-back ends: the hands afterwards.
async fn hands_after<D: Db>(
    db: &mut D,
    org: Uuid,
    conv: Uuid,
    changed: bool,
) -> Result<HandsMoved, StoreError> {
    let hands = hands_row(&db.one(q(HANDS).bind(org).bind(conv)).await?)?;
    Ok(HandsMoved { hands, changed })
}

fn agent_name_sql() -> &'static str {
    "select name from agents where org_id = $1 and id = $2"
}

impl Store {
    /// The agent's events after `after`, oldest first, at most `limit`.
    pub async fn agent_events(
        &self,
        org: Uuid,
        agent: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StreamEvent>, StoreError> {
        let rows = read_rows(
            self,
            q(
                "select e.seq, e.kind, e.conversation_id, e.message_id, e.detail, e.created_at, \
               m.channel, m.body, m.subject, m.author_name, m.created_at as message_at, \
               c.profile_id, c.agent_id as conversation_agent_id, \
               coalesce(p.display_name, '') as customer_name, \
               coalesce(p.primary_email, '') as customer_email, \
               coalesce(p.primary_phone, '') as customer_phone \
               from agent_events e \
               left join messages m on m.org_id = e.org_id and m.id = e.message_id \
               left join conversations c on c.org_id = e.org_id and c.id = e.conversation_id \
               left join profiles p on p.org_id = c.org_id and p.id = c.profile_id \
               where e.org_id = $1 and e.agent_id = $2 and e.seq > $3 \
               order by e.seq limit $4",
            )
            .bind(org)
            .bind(agent)
            .bind(after)
            .bind(i64::from(limit.min(EVENTS_PAGE))),
        )
        .await?;
        rows.iter()
            .map(|r| {
                let kind = StreamKind::parse(&r.text("kind")?)
                    .ok_or_else(|| StoreError::Other("unknown agent event kind".into()))?;
                let message = match r.opt_text("channel")? {
                    Some(ch) => Some(StreamMessage {
                        channel: Channel::parse(&ch)
                            .ok_or_else(|| StoreError::Other("unknown channel".into()))?,
                        text: r.opt_text("body")?.unwrap_or_default(),
                        subject: r.opt_text("subject")?,
                        author_name: r.opt_text("author_name")?.unwrap_or_default(),
                        at: r.opt_i64("message_at")?.unwrap_or_default(),
                    }),
                    None => None,
                };
                let customer = match r.opt_uuid("profile_id")? {
                    Some(id) => Some(StreamCustomer {
                        id,
                        name: r.text("customer_name")?,
                        email: r.text("customer_email")?,
                        phone: r.text("customer_phone")?,
                    }),
                    None => None,
                };
                Ok(StreamEvent {
                    seq: r.i64("seq")?,
                    kind,
                    conversation_id: r.opt_uuid("conversation_id")?,
                    message_id: r.opt_uuid("message_id")?,
                    detail: r.opt_text("detail")?,
                    at: r.i64("created_at")?,
                    message,
                    customer,
                    conversation_agent_id: r.opt_uuid("conversation_agent_id")?,
                })
            })
            .collect()
    }

    /// The number of the agent's latest event (0 before its first).
    pub async fn agent_events_head(&self, org: Uuid, agent: Uuid) -> Result<i64, StoreError> {
        let rows = read_rows(
            self,
            q("select coalesce(max(seq), 0) as head from agent_events \
               where org_id = $1 and agent_id = $2")
            .bind(org)
            .bind(agent),
        )
        .await?;
        rows.first().map(|r| r.i64("head")).unwrap_or(Ok(0))
    }

    /// Drops the organization's agent events older than `before`.
    pub async fn prune_agent_events(&self, org: Uuid, before: Millis) -> Result<u64, StoreError> {
        write_db!(self, |db| async move {
            db.exec(
                q("delete from agent_events where org_id = $1 and created_at < $2")
                    .bind(org)
                    .bind(before),
            )
            .await
        })
    }

    /// A conversation's hands now; `NotFound` for another organization's.
    pub async fn conversation_hands(
        &self,
        org: Uuid,
        conv: Uuid,
    ) -> Result<ConversationHands, StoreError> {
        let rows = read_rows(self, q(HANDS).bind(org).bind(conv)).await?;
        rows.first().map(hands_row).ok_or(StoreError::NotFound)?
    }

    /// Hands the conversation to a human for an agent: `agent` is the agent
    /// asking (its key), or `None` for a member or admin acting for the
    /// conversation's agent. The agent stays on the conversation (it is
    /// who a member hands it back to); the conversation waits for a human,
    /// at least `high` priority with the reason, waiting since now unless
    /// it already waited. Already handed off: unchanged. `Conflict` when
    /// another agent or a member has the conversation, or no agent does.
    pub async fn hand_off_conversation(
        &self,
        org: Uuid,
        conv: Uuid,
        agent: Option<Uuid>,
        reason: &str,
        at: Millis,
    ) -> Result<HandsMoved, StoreError> {
        let reason = reason.to_string();
        write_db!(self, |db| async move {
            let h = locked_hands(db, org, conv).await?;
            let agent = match (agent, h.agent_id) {
                (Some(me), Some(other)) if me != other => {
                    return Err(StoreError::Conflict(
                        "Another agent is handling this conversation: only it can hand it off."
                            .into(),
                    ))
                }
                (Some(me), _) => me,
                (None, Some(a)) => a,
                (None, None) => {
                    return Err(StoreError::Conflict(
                        "No agent is handling this conversation, so there is nothing to hand \
                         off: assign it to a member instead."
                            .into(),
                    ))
                }
            };
            if h.handoff_at.is_some() && h.agent_id == Some(agent) {
                return hands_after(db, org, conv, false).await;
            }
            if h.assignee_id.is_some() {
                return Err(StoreError::Conflict(
                    "A member already has this conversation: it is no longer the agent's to \
                     hand off."
                        .into(),
                ));
            }
            let name = db
                .one(q(agent_name_sql()).bind(org).bind(agent))
                .await?
                .text("name")?;
            db.exec(
                q("update conversations set agent_id = $3, handoff_at = $4, handoff_reason = $5, \
                   priority = case when priority_rank > 1 then 'high' else priority end, \
                   priority_rank = case when priority_rank > 1 then 1 else priority_rank end, \
                   priority_reason = $6, waiting_since = coalesce(waiting_since, $4), \
                   updated_at = $4 where org_id = $1 and id = $2")
                .bind(org)
                .bind(conv)
                .bind(agent)
                .bind(at)
                .bind(reason.as_str())
                .bind(format!("{name} asked for a human: {reason}")),
            )
            .await?;
            append(
                db,
                org,
                agent,
                StreamKind::HandedOff,
                Some(conv),
                None,
                Some(reason.clone()),
                at,
            )
            .await?;
            hands_after(db, org, conv, true).await
        })
    }

    /// A member takes the conversation over: it is assigned to them and no
    /// longer waits for a human; its agent (if any) is told `takeover`.
    /// Already theirs and not waiting: unchanged. `Invalid` when `member`
    /// is not a member; `Conflict` when another member has it.
    pub async fn take_over_conversation(
        &self,
        org: Uuid,
        conv: Uuid,
        member: Uuid,
        by_name: &str,
        at: Millis,
    ) -> Result<HandsMoved, StoreError> {
        let by_name = by_name.to_string();
        write_db!(self, |db| async move {
            let h = locked_hands(db, org, conv).await?;
            let is_member = db
                .opt(
                    q("select 1 as one from memberships where org_id = $1 and user_id = $2")
                        .bind(org)
                        .bind(member),
                )
                .await?;
            if is_member.is_none() {
                return Err(StoreError::Invalid(
                    "the member taking over is not a member of this organization".into(),
                ));
            }
            match h.assignee_id {
                Some(m) if m != member => {
                    return Err(StoreError::Conflict(
                        "Another member has this conversation: assign it instead of taking it \
                         over."
                            .into(),
                    ))
                }
                Some(_) if h.handoff_at.is_none() => {
                    return hands_after(db, org, conv, false).await;
                }
                _ => {}
            }
            db.exec(
                q(
                    "update conversations set assignee_id = $3, handoff_at = null, \
                   handoff_reason = null, updated_at = $4 where org_id = $1 and id = $2",
                )
                .bind(org)
                .bind(conv)
                .bind(member)
                .bind(at),
            )
            .await?;
            if let Some(agent) = h.agent_id {
                append(
                    db,
                    org,
                    agent,
                    StreamKind::Takeover,
                    Some(conv),
                    None,
                    Some(by_name.clone()),
                    at,
                )
                .await?;
            }
            hands_after(db, org, conv, true).await
        })
    }

    /// A member gives the conversation back to its agent: nobody at the
    /// business holds it and it no longer waits for a human; the agent is
    /// told `handed_back`. Already the agent's: unchanged. `Conflict` when
    /// no agent ever had it.
    pub async fn hand_back_conversation(
        &self,
        org: Uuid,
        conv: Uuid,
        by_name: &str,
        at: Millis,
    ) -> Result<HandsMoved, StoreError> {
        let by_name = by_name.to_string();
        write_db!(self, |db| async move {
            let h = locked_hands(db, org, conv).await?;
            let Some(agent) = h.agent_id else {
                return Err(StoreError::Conflict(
                    "No agent has had this conversation, so there is none to hand it back to."
                        .into(),
                ));
            };
            if h.assignee_id.is_none() && h.handoff_at.is_none() {
                return hands_after(db, org, conv, false).await;
            }
            db.exec(
                q(
                    "update conversations set assignee_id = null, handoff_at = null, \
                   handoff_reason = null, updated_at = $3 where org_id = $1 and id = $2",
                )
                .bind(org)
                .bind(conv)
                .bind(at),
            )
            .await?;
            append(
                db,
                org,
                agent,
                StreamKind::HandedBack,
                Some(conv),
                None,
                Some(by_name.clone()),
                at,
            )
            .await?;
            hands_after(db, org, conv, true).await
        })
    }
}
