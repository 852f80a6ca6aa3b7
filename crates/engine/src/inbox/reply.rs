//! Replies from the inbox's one composer, on any channel the customer can
//! be reached on: SMS through the organization's Twilio channel, e-mail
//! through its SMTP channel (threaded under the customer's last e-mail:
//! `In-Reply-To`, `References`, "Re: subject"), Instagram and Facebook
//! through Meta's Send API with the connected page's token, and the
//! development sink when a channel has no provider. The composer asks
//! first which channels are open ([`Inbox::reply_channels`]): each closed
//! one comes with the sentence that says why.
//!
//! A reply goes out at most once, with the nudge sender's guarantees: the
//! message is written `pending` (in the transaction that checks the
//! opt-out once more) before the provider is called; the provider's
//! answer settles it `sent`, `failed` or `unknown` (no answer after the
//! request left: it may have been delivered); a crash in between leaves it
//! `pending` until the sweep makes it `unknown`. Nothing here ever sends a
//! stored reply again: sending again is a new reply, by a person.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bos_channels::meta::{MetaConfig, MetaError, MetaOutgoing, MetaSender};
use bos_channels::{Medium, Outgoing, Receipt, SendError};
use bos_core::inbox::{
    can_reply, mask_address, message_id, needs_human_agent_tag, reply_headers, reply_subject,
    AuthorKind, Channel, ChannelFacts, DeliveryStatus, REPLY_CHANNELS,
};
use bos_core::Millis;
use bos_store::inbox::{Message, OutboundMessage, ReplyTargets, ReplyWritten};
use bos_store::nudge::ChannelConfig;
use bos_store::StoreError;
use serde_json::json;
use uuid::Uuid;

use super::{check_text, Inbox, InboxError};
use crate::links::MessageLinks;

/// The most characters of one SMS reply: Twilio refuses longer bodies.
pub const SMS_MAX_CHARS: usize = 1600;

/// What a member sends from the composer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub channel: Channel,
    pub text: String,
    /// E-mail only. Left out, a reply keeps "Re: " and the thread's
    /// subject; when the customer never e-mailed, [`default_subject`].
    pub subject: Option<String>,
}

/// One channel in the composer's selector.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplyChannel {
    pub channel: Channel,
    /// The customer's address there, masked for display; empty when none.
    pub to: String,
    pub available: bool,
    /// Why a reply cannot go out there now: the sentence the composer shows.
    pub why_not: Option<String>,
}

/// Who is replying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBy {
    /// A member of the organization, by user id.
    Member(Uuid),
    /// An integration, through an API key.
    ApiKey { id: Uuid, name: String },
    /// An AI agent, through the key made for it: the message is authored
    /// as the agent (its id and name), so the thread shows AI took part.
    Agent { id: Uuid, name: String },
}

/// A boxed future, so [`PageTokens`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a Meta reply gets its page access token: the organization's
/// connected Meta source for Instagram or Facebook.
pub trait PageTokens: Send + Sync {
    /// The page access token that sends on `channel` for `org`; `None`
    /// when no Meta page is connected.
    fn page_token<'a>(
        &'a self,
        org: Uuid,
        channel: Channel,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;
}

/// No Meta page anywhere: Instagram and Facebook replies are shown as not
/// connected.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetaPages;

impl PageTokens for NoMetaPages {
    fn page_token<'a>(
        &'a self,
        _org: Uuid,
        _channel: Channel,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// The organization's connected Meta source, as stored: the page token of
/// its most recently connected page or Instagram account sends both
/// Instagram and Messenger replies.
#[derive(Clone)]
pub struct StoredMetaPages(pub bos_store::Store);

impl PageTokens for StoredMetaPages {
    fn page_token<'a>(
        &'a self,
        org: Uuid,
        _channel: Channel,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(self.0.meta_page_token(org))
    }
}

/// How replies reach the providers.
#[derive(Clone)]
pub struct Outbound {
    /// Twilio's API base; tests point it at a local fake.
    pub twilio_base_url: String,
    /// Meta's Graph API base and version; tests point it at a local fake.
    pub meta_base_url: String,
    pub meta_version: String,
    /// Per send: longer than any provider's own answer time.
    pub send_timeout: Duration,
    /// Allow SMTP hosts on private networks (tests, a relay on the same
    /// machine).
    pub allow_private_hosts: bool,
    /// A reply still `pending` this long after it was written was cut off
    /// by a crash (longer than any send takes).
    pub pending_lease_ms: Millis,
    /// Where Twilio posts delivery reports; none, and no reports come.
    pub links: Option<Arc<dyn MessageLinks>>,
    pub pages: Arc<dyn PageTokens>,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            twilio_base_url: "https://api.twilio.com".into(),
            meta_base_url: MetaConfig::DEFAULT_BASE_URL.into(),
            meta_version: MetaConfig::DEFAULT_VERSION.into(),
            send_timeout: Duration::from_secs(30),
            allow_private_hosts: false,
            pending_lease_ms: bos_store::nudge::SENDING_LEASE_MS,
            links: None,
            pages: Arc::new(NoMetaPages),
        }
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("twilio_base_url", &self.twilio_base_url)
            .field("meta_base_url", &self.meta_base_url)
            .field("meta_version", &self.meta_version)
            .field("send_timeout", &self.send_timeout)
            .field("allow_private_hosts", &self.allow_private_hosts)
            .field("pending_lease_ms", &self.pending_lease_ms)
            .finish_non_exhaustive()
    }
}

/// The nudge settings' name for an inbox channel that has them.
fn nudge_channel(c: Channel) -> Option<bos_core::nudge::Channel> {
    match c {
        Channel::Sms => Some(bos_core::nudge::Channel::Sms),
        Channel::Email => Some(bos_core::nudge::Channel::Email),
        _ => None,
    }
}

fn invalid(field: &'static str, detail: impl Into<String>) -> InboxError {
    InboxError::Invalid {
        field,
        detail: detail.into(),
    }
}

/// The domain of a From address (`Shop <shop@mail.example>` → `mail.example`),
/// for our Message-IDs.
fn from_domain(from: &str) -> &str {
    from.trim()
        .trim_end_matches('>')
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("")
}

/// How one provider call ended, in the terms the message row keeps.
struct Outcome {
    status: DeliveryStatus,
    provider_id: Option<String>,
    detail: Option<String>,
}

impl Outcome {
    fn accepted(r: Receipt) -> Outcome {
        Outcome {
            // The development sink reports `delivered` at once.
            status: if r.status == "delivered" {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Sent
            },
            provider_id: r.provider_id,
            detail: None,
        }
    }

    fn refused(e: SendError) -> Outcome {
        let (status, detail) = match e {
            SendError::Transient(why) => (
                DeliveryStatus::Failed,
                format!("Not sent, the provider is unavailable ({why}): send it again later."),
            ),
            SendError::Permanent(why) => (
                DeliveryStatus::Failed,
                format!("Not sent: the provider refused it ({why})."),
            ),
            SendError::Ambiguous(why) => (
                DeliveryStatus::Unknown,
                format!(
                    "The provider did not answer ({why}): it may have been sent, so it is not \
                     sent again. Check with the customer before sending it again."
                ),
            ),
        };
        Outcome {
            status,
            provider_id: None,
            detail: Some(detail),
        }
    }
}

/// A reply ready for its provider.
enum Route {
    /// SMS or e-mail through the organization's channel settings.
    Channel {
        config: ChannelConfig,
        out: Box<Outgoing>,
    },
    /// Instagram or Facebook through the Send API.
    Meta { token: String, out: MetaOutgoing },
}

impl Inbox {
    /// The composer's channels for this conversation: where a reply can go
    /// now, and for every other channel the sentence that says why not.
    /// `human`: a member writes (the composer), who may answer Instagram and
    /// Facebook for 7 days with Meta's human agent tag; an integration may
    /// not.
    pub async fn reply_channels(
        &self,
        org: Uuid,
        conversation_id: Uuid,
        now: Millis,
        human: bool,
    ) -> Result<Vec<ReplyChannel>, InboxError> {
        let targets = self.store.reply_targets(org, conversation_id).await?;
        let mut out = Vec::with_capacity(REPLY_CHANNELS.len());
        for channel in REPLY_CHANNELS {
            let facts = self.facts(org, &targets, channel, human).await?;
            let verdict = can_reply(channel, &facts, now);
            out.push(ReplyChannel {
                channel,
                to: facts
                    .address
                    .as_deref()
                    .map(mask_address)
                    .unwrap_or_default(),
                available: verdict.is_ok(),
                why_not: verdict.err(),
            });
        }
        Ok(out)
    }

    /// What the rules need about one channel of the conversation's customer.
    async fn facts(
        &self,
        org: Uuid,
        targets: &ReplyTargets,
        channel: Channel,
        human: bool,
    ) -> Result<ChannelFacts, InboxError> {
        let connected = if channel.has_messaging_window() {
            self.outbound
                .pages
                .page_token(org, channel)
                .await?
                .is_some_and(|t| !t.is_empty())
        } else {
            true
        };
        Ok(ChannelFacts {
            address: targets.address(channel).map(str::to_string),
            opted_out: targets.opted_out(channel),
            connected,
            last_inbound_at: targets.last_inbound_at(channel),
            human,
        })
    }

    /// A member's reply in the conversation; see [`Inbox::reply_as`].
    pub async fn reply(
        &self,
        org: Uuid,
        member: Uuid,
        conversation_id: Uuid,
        reply: Reply,
        now: Millis,
    ) -> Result<Message, InboxError> {
        self.reply_as(org, ReplyBy::Member(member), conversation_id, reply, now)
            .await
    }

    /// Sends a reply on the channel asked for and answers the message as
    /// stored afterwards: `sent` (or `delivered` by the development sink),
    /// `failed` with the provider's reason, or `unknown` when the provider
    /// did not answer. Refused with [`InboxError::CannotSend`] and the
    /// composer's sentence when the channel is closed (no address, opted
    /// out, not connected, Meta's window over); nothing is written then.
    pub async fn reply_as(
        &self,
        org: Uuid,
        by: ReplyBy,
        conversation_id: Uuid,
        reply: Reply,
        now: Millis,
    ) -> Result<Message, InboxError> {
        let channel = reply.channel;
        let text = reply.text.trim().to_string();
        if text.is_empty() {
            return Err(invalid("text", "Write the message to send."));
        }
        check_text(&text)?;
        if !channel.can_reply() {
            return Err(invalid(
                "channel",
                "Reply on sms, email, instagram or facebook; a form cannot be answered.",
            ));
        }
        let limit = match channel {
            Channel::Sms => Some(SMS_MAX_CHARS),
            Channel::Instagram | Channel::Facebook => Some(bos_channels::meta::MAX_TEXT_CHARS),
            _ => None,
        };
        if let Some(max) = limit {
            if text.chars().count() > max {
                return Err(invalid(
                    "text",
                    format!(
                        "{} takes at most {max} characters in one message; shorten it or send it in parts.",
                        channel.label()
                    ),
                ));
            }
        }
        let (author_id, author_name) = self.author(org, &by).await?;
        let targets = self.store.reply_targets(org, conversation_id).await?;
        // Meta's human agent tag is for people: a member, not an API key.
        let human = matches!(by, ReplyBy::Member(_));
        let facts = self.facts(org, &targets, channel, human).await?;
        can_reply(channel, &facts, now).map_err(InboxError::CannotSend)?;
        let human_agent = needs_human_agent_tag(channel, &facts, now);
        let address = facts.address.clone().unwrap_or_default();

        let message_uuid = Uuid::now_v7();
        let mut row = OutboundMessage {
            profile_id: targets.profile_id,
            channel,
            author: match by {
                ReplyBy::Agent { .. } => AuthorKind::Agent,
                ReplyBy::Member(_) | ReplyBy::ApiKey { .. } => AuthorKind::Member,
            },
            author_id: Some(author_id),
            author_name: author_name.clone(),
            text: text.clone(),
            html: None,
            subject: None,
            attachments: serde_json::Value::Array(Vec::new()),
            provider_message_id: None,
            status: DeliveryStatus::Pending,
            email_message_id: None,
            in_reply_to: None,
            references: Vec::new(),
            people: targets.people.clone(),
            at: now,
        };
        let route = match nudge_channel(channel) {
            Some(nudge) => {
                let setting = self
                    .store
                    .channel_settings(org)
                    .await?
                    .into_iter()
                    .find(|s| s.channel == nudge);
                let (config, hook) = match setting {
                    Some(s) => (s.config, s.hook_key),
                    None => (ChannelConfig::Dev, None),
                };
                let from = config.sender_addr(nudge);
                let mut out = Outgoing {
                    medium: if channel == Channel::Sms {
                        Medium::Sms
                    } else {
                        Medium::Email
                    },
                    to: address.clone(),
                    from: from.clone(),
                    reply_to: None,
                    subject: None,
                    text: text.clone(),
                    html: None,
                    message_id: format!("{message_uuid}@bos.reply"),
                    in_reply_to: None,
                    references: Vec::new(),
                    idempotency_key: format!("reply:{message_uuid}"),
                    unsubscribe_url: None,
                    status_callback: None,
                };
                if channel == Channel::Email {
                    let thread = targets.email_thread.clone().unwrap_or_default();
                    let headers = reply_headers(&thread.ids);
                    let typed = reply
                        .subject
                        .as_deref()
                        .map(str::trim)
                        .filter(|s| !s.is_empty());
                    let subject = match (typed, thread.subject.as_deref()) {
                        (Some(s), _) => reply_subject_or_new(s, headers.in_reply_to.is_some()),
                        (None, Some(original)) => reply_subject(original),
                        (None, None) if headers.in_reply_to.is_some() => reply_subject(""),
                        // A new thread with no subject typed: a plain one
                        // naming the sender, rather than refusing the reply.
                        (None, None) => {
                            let org_name = self.store.org(org).await?.name;
                            default_subject(&org_name)
                        }
                    };
                    let id = message_id(&message_uuid.to_string(), from_domain(&from));
                    out.subject = Some(subject.clone());
                    out.message_id = id.clone();
                    out.in_reply_to = headers.in_reply_to.clone();
                    out.references = headers.references.clone();
                    row.subject = Some(subject);
                    row.email_message_id = Some(id);
                    row.in_reply_to = headers.in_reply_to;
                    row.references = headers.references;
                } else if let (Some(links), Some(hook)) = (&self.outbound.links, &hook) {
                    out.status_callback = Some(links.delivery_status(hook));
                }
                Route::Channel {
                    config,
                    out: Box::new(out),
                }
            }
            None => {
                let token = self
                    .outbound
                    .pages
                    .page_token(org, channel)
                    .await?
                    .unwrap_or_default();
                Route::Meta {
                    token,
                    out: MetaOutgoing {
                        recipient_id: address.clone(),
                        text: text.clone(),
                        human_agent,
                    },
                }
            }
        };

        // Written before the provider is called: from here on, whatever
        // happens, this reply is shown and never sent a second time.
        let recorded = match self
            .store
            .write_reply(org, conversation_id, &address, &row)
            .await?
        {
            ReplyWritten::Written(r) => r,
            ReplyWritten::OptedOut => {
                let closed = ChannelFacts {
                    opted_out: true,
                    ..facts
                };
                return Err(InboxError::CannotSend(
                    can_reply(channel, &closed, now)
                        .err()
                        .unwrap_or_else(|| "They opted out of this channel.".into()),
                ));
            }
        };
        let message = recorded.message_id();
        self.store
            .inbox_timeline(
                org,
                &bos_store::inbox::InboxTimelineEntry {
                    profile_id: targets.profile_id,
                    kind: "message_out".into(),
                    summary: format!("{author_name} replied on {}", channel.label()),
                    data: json!({
                        "conversation_id": conversation_id,
                        "message_id": message,
                        "channel": channel.as_str(),
                    }),
                    key: format!("inbox:out:{message}"),
                    at: now,
                },
            )
            .await?;
        self.tell(org, conversation_id);

        let outcome = self.deliver(route).await;
        self.store
            .set_message_delivery(
                org,
                message,
                outcome.status,
                outcome.provider_id,
                outcome.detail,
                now,
            )
            .await?;
        self.tell(org, conversation_id);
        Ok(self.store.message(org, message).await?)
    }

    /// The author's id and the name the thread shows.
    async fn author(&self, org: Uuid, by: &ReplyBy) -> Result<(String, String), InboxError> {
        match by {
            ReplyBy::Member(user) => {
                let member = self
                    .store
                    .members(org)
                    .await?
                    .into_iter()
                    .find(|m| m.user_id == *user)
                    .ok_or_else(|| {
                        invalid(
                            "member",
                            "Only a member of this organization can reply in its inbox.",
                        )
                    })?;
                let name = if member.display_name.trim().is_empty() {
                    member.email
                } else {
                    member.display_name
                };
                Ok((user.to_string(), name))
            }
            ReplyBy::ApiKey { id, name } => Ok((format!("api_key:{id}"), format!("{name} (API)"))),
            ReplyBy::Agent { id, name } => Ok((id.to_string(), name.clone())),
        }
    }

    /// Calls the provider once, within the send timeout; no answer in time
    /// is an unknown outcome, never a retry.
    async fn deliver(&self, route: Route) -> Outcome {
        let o = &self.outbound;
        let wait = o.send_timeout + Duration::from_secs(5);
        let late = || SendError::Ambiguous("the provider did not answer in time".into());
        match route {
            Route::Channel { config, out } => {
                let sender = match crate::nudge::sender_for(
                    &config,
                    &o.twilio_base_url,
                    o.send_timeout,
                    o.allow_private_hosts,
                )
                .await
                {
                    Ok(s) => s,
                    Err(why) => {
                        return Outcome::refused(SendError::Permanent(format!(
                            "the channel's settings cannot send: {why}"
                        )))
                    }
                };
                match tokio::time::timeout(wait, sender.send(&out)).await {
                    Ok(Ok(r)) => Outcome::accepted(r),
                    Ok(Err(e)) => Outcome::refused(e),
                    Err(_) => Outcome::refused(late()),
                }
            }
            Route::Meta { token, out } => {
                let sender = match MetaSender::new(MetaConfig {
                    base_url: o.meta_base_url.clone(),
                    version: o.meta_version.clone(),
                    page_access_token: token,
                    timeout: o.send_timeout,
                }) {
                    Ok(s) => s,
                    Err(why) => return Outcome::refused(SendError::Permanent(why)),
                };
                match tokio::time::timeout(wait, sender.send(&out)).await {
                    Ok(Ok(mid)) => Outcome {
                        status: DeliveryStatus::Sent,
                        provider_id: Some(mid).filter(|m| !m.is_empty()),
                        detail: None,
                    },
                    Ok(Err(MetaError::WindowClosed(why))) => Outcome {
                        status: DeliveryStatus::Failed,
                        provider_id: None,
                        detail: Some(format!(
                            "Not sent: Meta refused it as outside the messaging window \
                             ({why}). Past 24 hours a reply needs the Human Agent permission \
                             on your Meta app; reply on another channel."
                        )),
                    },
                    Ok(Err(MetaError::Send(e))) => Outcome::refused(e),
                    Err(_) => Outcome::refused(late()),
                }
            }
        }
    }

    /// Replies left `pending` by a crash become `unknown`, never to be
    /// sent again. Returns how many.
    pub async fn sweep_replies(&self, now: Millis) -> Result<u64, InboxError> {
        let n = self
            .store
            .sweep_pending_messages(now, self.outbound.pending_lease_ms)
            .await?;
        // Idempotency keys answer for 24 hours; older ones are forgotten.
        self.store.sweep_idempotency_keys(now).await?;
        if n > 0 {
            tracing::warn!(
                count = n,
                "inbox replies left pending by a crash are now unknown; they are not sent again"
            );
        }
        Ok(n)
    }

    /// Sweeps now and then every half lease (at most every minute) until
    /// the returned handle is aborted.
    pub fn start_sweeper(&self, clock: Arc<dyn crate::Clock>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let every =
            Duration::from_millis((self.outbound.pending_lease_ms / 2).clamp(200, 60_000) as u64);
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.sweep_replies(clock.now_ms()).await {
                    tracing::warn!(error = %e, "inbox reply sweep failed");
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}

/// The subject of an e-mail that starts a thread when the member typed
/// none: "A message from {organization}", on one line.
pub fn default_subject(org_name: &str) -> String {
    let name = reply_subject_or_new(org_name, false);
    if name.is_empty() {
        "A message for you".to_string()
    } else {
        format!("A message from {name}")
    }
}

/// A subject the member typed: kept as typed for a new thread; "Re: " in
/// front when it answers one (so mail clients that thread by subject
/// agree). Line breaks never reach the header.
fn reply_subject_or_new(typed: &str, answers: bool) -> String {
    if answers {
        reply_subject(typed)
    } else {
        typed
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_message_ids_use_the_senders_domain() {
        assert_eq!(
            from_domain("Shop <shop@mail.example.org>"),
            "mail.example.org"
        );
        assert_eq!(from_domain("shop@example.org"), "example.org");
        assert_eq!(from_domain("no address"), "");
    }

    #[test]
    fn typed_subjects() {
        assert_eq!(reply_subject_or_new("Your order", true), "Re: Your order");
        assert_eq!(
            reply_subject_or_new("Re: Your order", true),
            "Re: Your order"
        );
        assert_eq!(
            reply_subject_or_new(" Hello\r\nBcc: x ", false),
            "Hello  Bcc: x"
        );
    }

    #[test]
    fn a_new_thread_without_a_subject_names_the_sender() {
        assert_eq!(default_subject("Acme Store"), "A message from Acme Store");
        assert_eq!(
            default_subject(" Acme\r\nBcc: x "),
            "A message from Acme  Bcc: x"
        );
        assert_eq!(default_subject("  "), "A message for you");
    }

    #[test]
    fn provider_answers_become_statuses() {
        let sent = Outcome::accepted(Receipt {
            provider: "twilio",
            provider_id: Some("SM1".into()),
            status: "queued".into(),
        });
        assert_eq!(sent.status, DeliveryStatus::Sent);
        assert_eq!(sent.provider_id.as_deref(), Some("SM1"));
        let dev = Outcome::accepted(Receipt {
            provider: "dev",
            provider_id: None,
            status: "delivered".into(),
        });
        assert_eq!(dev.status, DeliveryStatus::Delivered);
        assert_eq!(
            Outcome::refused(SendError::Transient("503".into())).status,
            DeliveryStatus::Failed
        );
        assert_eq!(
            Outcome::refused(SendError::Permanent("21211".into())).status,
            DeliveryStatus::Failed
        );
        let unknown = Outcome::refused(SendError::Ambiguous("timeout".into()));
        assert_eq!(unknown.status, DeliveryStatus::Unknown);
        assert!(unknown.detail.unwrap().contains("not sent again"));
    }
}
