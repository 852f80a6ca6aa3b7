//! The Unified Inbox service: every door a message comes in or goes out
//! through (provider webhooks, forms, the nudge sender, the API and the
//! UI) records it here. An inbound message gets its priority from the
//! customer's tone, value and intent, lands in the customer's one
//! conversation, goes on their timeline and tells live views; a member
//! assigns, resolves, reopens and reads a conversation here, each with a
//! timeline line where the customer's history should show it. Lists,
//! conversations and search pass through to the store with the member
//! asking, so unread is theirs. Replies from the composer are in
//! [`reply`].

use bos_core::inbox::{assess, AuthorKind, Channel, DeliveryStatus, PriorityInputs};
use bos_core::Millis;
use bos_store::inbox::{
    people_text, ConversationDetail, InboundMessage, InboxTimelineEntry, ListQuery,
    OutboundMessage, Page, Recorded, SearchHit,
};
use bos_store::{Store, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::bus::{Bus, BusEvent};

/// Search with the thread list's filters.
pub mod find;
/// Replies from the composer: which channels are open, and sending once.
pub mod reply;
pub use find::Found;
pub use reply::{NoMetaPages, Outbound, PageTokens, Reply, ReplyBy, ReplyChannel, StoredMetaPages};
/// Replies under an idempotency key: a repeat gets the first answer.
pub mod once;
pub use once::KeyedReply;
/// Instagram and Messenger deliveries applied to the inbox.
pub mod meta;

/// The longest message text accepted from a person or a provider, in
/// characters: far above any real message, low enough that one request
/// cannot fill the table.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// Why an inbox operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// An input is not acceptable; the text says what to send.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// No such conversation in this organization.
    #[error("no such conversation")]
    NotFound,
    /// The action does not apply now (already resolved, already open).
    #[error("{0}")]
    Conflict(String),
    /// A reply cannot go out on this channel now; the sentence is what
    /// the composer shows (the customer opted out, Meta's window closed).
    #[error("{0}")]
    CannotSend(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for InboxError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => InboxError::NotFound,
            StoreError::Conflict(c) => InboxError::Conflict(c),
            other => InboxError::Store(other),
        }
    }
}

/// A customer's message, as the door it came through read it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The customer (any of their profiles).
    pub profile_id: Uuid,
    pub channel: Channel,
    /// The provider's id, so a redelivery is stored once; `None` for a form.
    pub provider_message_id: Option<String>,
    /// The name the sender gave, when any (else the customer's).
    pub author_name: Option<String>,
    pub text: String,
    /// E-mail HTML as received (sanitized by the store before it is kept).
    pub html: Option<String>,
    pub subject: Option<String>,
    /// A JSON array of attachment metadata (names, types, sizes).
    pub attachments: serde_json::Value,
    pub email_message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// The door already wrote the customer's timeline line for this
    /// message (the nudge hooks, the intake pipeline): no second line.
    pub on_timeline_already: bool,
}

impl Inbound {
    /// A plain text message with nothing else.
    pub fn text(profile_id: Uuid, channel: Channel, text: impl Into<String>) -> Inbound {
        Inbound {
            profile_id,
            channel,
            provider_message_id: None,
            author_name: None,
            text: text.into(),
            html: None,
            subject: None,
            attachments: serde_json::Value::Array(Vec::new()),
            email_message_id: None,
            in_reply_to: None,
            references: Vec::new(),
            on_timeline_already: false,
        }
    }
}

/// A message the business sent that the inbox should show: a nudge sent
/// by the nudge engine, or an echo of a message sent from the provider's
/// own app.
#[derive(Debug, Clone)]
pub struct Sent {
    pub profile_id: Uuid,
    pub channel: Channel,
    pub author: AuthorKind,
    pub author_name: String,
    pub text: String,
    pub html: Option<String>,
    pub subject: Option<String>,
    pub provider_message_id: Option<String>,
    pub email_message_id: Option<String>,
}

/// The inbox of one process: the store it writes, the bus it tells, and
/// how its replies reach the providers.
#[derive(Clone)]
pub struct Inbox {
    store: Store,
    bus: Bus,
    outbound: std::sync::Arc<Outbound>,
}

fn tags_of(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

fn check_text(text: &str) -> Result<(), InboxError> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(InboxError::Invalid {
            field: "text",
            detail: format!(
                "A message is at most {MAX_TEXT_CHARS} characters; send a shorter one."
            ),
        });
    }
    Ok(())
}

impl Inbox {
    /// An inbox whose replies use the providers' public addresses and no
    /// Meta page (see [`Inbox::with_outbound`]).
    pub fn new(store: Store, bus: Bus) -> Inbox {
        Inbox {
            store,
            bus,
            outbound: std::sync::Arc::new(Outbound::default()),
        }
    }

    /// The same inbox, its replies sent as `outbound` says.
    pub fn with_outbound(mut self, outbound: Outbound) -> Inbox {
        self.outbound = std::sync::Arc::new(outbound);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The customer's name and the text search finds them by.
    async fn who(&self, org: Uuid, profile: Uuid) -> Result<(String, String), InboxError> {
        let p = self.store.profile(org, profile).await?;
        let people = people_text(&p.display_name, &p.primary_email, &p.primary_phone);
        Ok((p.display_name, people))
    }

    /// Tells live views that `conversation` changed.
    pub fn tell(&self, org: Uuid, conversation: Uuid) {
        self.bus.publish(BusEvent::conversation(org, conversation));
    }

    /// Records a customer's message in their conversation: priority from
    /// its tone, the customer's value or `vip` tag and their lead's intent;
    /// a timeline line (unless the door wrote one); live views told. A
    /// redelivery of a stored message changes nothing and is reported as
    /// [`Recorded::AlreadyHad`].
    pub async fn record_inbound(
        &self,
        org: Uuid,
        m: Inbound,
        now: Millis,
    ) -> Result<Recorded, InboxError> {
        check_text(&m.text)?;
        let p = self.store.profile(org, m.profile_id).await?;
        let lead = self.store.lead(org, p.root_id).await?;
        let mut tags = tags_of(&p.tags);
        if let Some(l) = &lead {
            tags.extend(crate::leads::tags_of(&l.tags));
        }
        let assessment = assess(&PriorityInputs {
            text: &m.text,
            lifetime_value_cents: p.ltv_cents,
            // No organization sets a VIP threshold yet: the `vip` tag names them.
            vip_threshold_cents: None,
            tags: &tags,
            intent: lead.as_ref().map(|l| l.category),
        });
        let people = people_text(&p.display_name, &p.primary_email, &p.primary_phone);
        let author_name = m
            .author_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| p.display_name.clone());
        let recorded = self
            .store
            .record_inbound(
                org,
                &InboundMessage {
                    profile_id: p.root_id,
                    channel: m.channel,
                    provider_message_id: m.provider_message_id.clone(),
                    author_name,
                    text: m.text.clone(),
                    html: m.html.clone(),
                    subject: m.subject.clone(),
                    attachments: m.attachments.clone(),
                    email_message_id: m.email_message_id.clone(),
                    in_reply_to: m.in_reply_to.clone(),
                    references: m.references.clone(),
                    priority: assessment.priority,
                    priority_reason: assessment.reason,
                    people,
                    at: now,
                },
            )
            .await?;
        if let Recorded::New {
            conversation_id,
            message_id,
            ..
        } = recorded
        {
            if !m.on_timeline_already {
                self.store
                    .inbox_timeline(
                        org,
                        &InboxTimelineEntry {
                            profile_id: p.root_id,
                            kind: "message_in".into(),
                            summary: format!("Message received on {}", m.channel.label()),
                            data: json!({
                                "conversation_id": conversation_id,
                                "message_id": message_id,
                                "channel": m.channel.as_str(),
                            }),
                            key: format!("inbox:in:{message_id}"),
                            at: now,
                        },
                    )
                    .await?;
            }
            self.tell(org, conversation_id);
        }
        Ok(recorded)
    }

    /// Shows a message the business already sent (an echo from another
    /// app) in the customer's conversation, `sent`. Stored once per
    /// provider id.
    pub async fn record_sent(
        &self,
        org: Uuid,
        m: Sent,
        now: Millis,
    ) -> Result<Recorded, InboxError> {
        let (_, people) = self.who(org, m.profile_id).await?;
        let root = self.store.profile(org, m.profile_id).await?.root_id;
        let message = OutboundMessage {
            profile_id: root,
            channel: m.channel,
            author: m.author,
            author_id: None,
            author_name: m.author_name,
            text: m.text,
            html: m.html,
            subject: m.subject,
            attachments: serde_json::Value::Array(Vec::new()),
            provider_message_id: m.provider_message_id,
            status: DeliveryStatus::Sent,
            email_message_id: m.email_message_id,
            in_reply_to: None,
            references: Vec::new(),
            people,
            at: now,
        };
        let recorded = self.store.record_outbound(org, &message).await?;
        if let Recorded::New {
            conversation_id, ..
        } = recorded
        {
            self.tell(org, conversation_id);
        }
        Ok(recorded)
    }

    /// Shows a nudge the nudge engine has sent in the customer's
    /// conversation, as automation, once: a second call for the same
    /// execution changes nothing. Nothing happens before it has gone out.
    /// The nudge engine wrote its own timeline line already.
    pub async fn record_nudge(
        &self,
        org: Uuid,
        execution: Uuid,
        now: Millis,
    ) -> Result<Option<Recorded>, InboxError> {
        let recorded = self.store.show_nudge(org, execution, now).await?;
        if let Some(Recorded::New {
            conversation_id, ..
        }) = recorded
        {
            self.tell(org, conversation_id);
        }
        Ok(recorded)
    }

    /// A provider's receipt (delivered, read, failed) for a message it
    /// knows by its id; `false` when the message is not ours.
    pub async fn delivery_receipt(
        &self,
        org: Uuid,
        channel: Channel,
        provider_message_id: &str,
        status: DeliveryStatus,
        now: Millis,
    ) -> Result<bool, InboxError> {
        let Some(message) = self
            .store
            .message_delivery_by_provider_id(org, channel, provider_message_id, status, now)
            .await?
        else {
            return Ok(false);
        };
        if let Some(conv) = self.store.conversation_of_message(org, message).await? {
            self.tell(org, conv);
        }
        Ok(true)
    }

    /// The conversation's customer, or `NotFound` when it is not this
    /// organization's.
    async fn customer_of(&self, org: Uuid, conversation: Uuid) -> Result<Uuid, InboxError> {
        Ok(self
            .store
            .conversation(org, conversation, None)
            .await?
            .conversation
            .profile_id)
    }

    async fn timeline_line(
        &self,
        org: Uuid,
        profile: Uuid,
        kind: &str,
        summary: String,
        conversation: Uuid,
        now: Millis,
    ) -> Result<(), InboxError> {
        self.store
            .inbox_timeline(
                org,
                &InboxTimelineEntry {
                    profile_id: profile,
                    kind: kind.into(),
                    summary,
                    data: json!({ "conversation_id": conversation }),
                    key: format!("inbox:{kind}:{conversation}:{now}"),
                    at: now,
                },
            )
            .await?;
        Ok(())
    }

    /// Assigns the conversation to a member of the organization, or to
    /// nobody; the customer's timeline says who took it.
    pub async fn assign(
        &self,
        org: Uuid,
        conversation: Uuid,
        assignee: Option<Uuid>,
        now: Millis,
    ) -> Result<(), InboxError> {
        let profile = self.customer_of(org, conversation).await?;
        self.store
            .assign_conversation(org, conversation, assignee, now)
            .await
            .map_err(|e| match e {
                StoreError::Invalid(detail) => InboxError::Invalid {
                    field: "member_id",
                    detail: format!(
                        "{detail}: send the id of a member of this organization, or null to unassign."
                    ),
                },
                other => other.into(),
            })?;
        let summary = match assignee {
            Some(member) => {
                let name = self
                    .store
                    .members(org)
                    .await?
                    .into_iter()
                    .find(|m| m.user_id == member)
                    .map(|m| {
                        if m.display_name.trim().is_empty() {
                            m.email
                        } else {
                            m.display_name
                        }
                    })
                    .unwrap_or_default();
                format!("Conversation assigned to {name}")
            }
            None => "Conversation unassigned".to_string(),
        };
        self.timeline_line(
            org,
            profile,
            "conversation_assigned",
            summary,
            conversation,
            now,
        )
        .await?;
        self.tell(org, conversation);
        Ok(())
    }

    /// Marks the conversation resolved; refused when it already is.
    pub async fn resolve(
        &self,
        org: Uuid,
        conversation: Uuid,
        now: Millis,
    ) -> Result<(), InboxError> {
        let profile = self.customer_of(org, conversation).await?;
        self.store
            .resolve_conversation(org, conversation, now)
            .await?;
        self.timeline_line(
            org,
            profile,
            "conversation_resolved",
            "Conversation resolved".into(),
            conversation,
            now,
        )
        .await?;
        self.tell(org, conversation);
        Ok(())
    }

    /// Opens a resolved conversation again; refused when it is open.
    pub async fn reopen(
        &self,
        org: Uuid,
        conversation: Uuid,
        now: Millis,
    ) -> Result<(), InboxError> {
        self.customer_of(org, conversation).await?;
        self.store
            .reopen_conversation(org, conversation, now)
            .await?;
        self.tell(org, conversation);
        Ok(())
    }

    /// Records that `member` has read the conversation up to now.
    pub async fn mark_read(
        &self,
        org: Uuid,
        conversation: Uuid,
        member: Uuid,
        now: Millis,
    ) -> Result<(), InboxError> {
        self.store
            .mark_conversation_read(org, conversation, member, now)
            .await?;
        Ok(())
    }

    /// A page of conversations as `member` sees them (their unread marks,
    /// "assigned to me").
    pub async fn list(
        &self,
        org: Uuid,
        member: Option<Uuid>,
        mut query: ListQuery,
    ) -> Result<Page, InboxError> {
        query.member = member;
        find::member_filter_needs(&query)?;
        self.store
            .list_conversations(org, &query)
            .await
            .map_err(|e| match e {
                // What is left to refuse is the cursor.
                StoreError::Invalid(detail) => InboxError::Invalid {
                    field: "cursor",
                    detail: format!(
                        "{detail}: send the next_cursor of the previous page as it is, with the same sort."
                    ),
                },
                other => other.into(),
            })
    }

    /// One conversation with its latest messages, unread as `member` sees it.
    pub async fn get(
        &self,
        org: Uuid,
        conversation: Uuid,
        member: Option<Uuid>,
    ) -> Result<ConversationDetail, InboxError> {
        Ok(self.store.conversation(org, conversation, member).await?)
    }

    /// Customers and messages matching `query`, with highlight parts.
    pub async fn search(
        &self,
        org: Uuid,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHit>, InboxError> {
        Ok(self.store.search_inbox(org, query, limit).await?)
    }
}
