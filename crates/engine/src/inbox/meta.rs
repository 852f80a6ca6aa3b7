//! Instagram Direct and Facebook Messenger into the inbox: the events of a
//! verified Meta delivery applied in order. A customer's message finds its
//! customer by the Instagram-scoped or page-scoped id as a God View
//! identity (a new customer when the id is unknown) and lands in their one
//! conversation once, however often Meta delivers it; an echo of a message
//! the business sent from Meta's own apps shows as the business's; reads
//! and delivery receipts move the status of what was sent forward. The
//! webhook's signature check happens before any of this, in the web layer.

use bos_channels::meta::{Event, EventKind, Platform};
use bos_core::identity::IdentifierKind;
use bos_core::inbox::{AuthorKind, Channel, DeliveryStatus};
use bos_core::Millis;
use bos_store::identity::Traits;
use bos_store::inbox::Recorded;
use uuid::Uuid;

use super::{Inbound, Inbox, InboxError, Sent};
use crate::identity::IdentityError;

/// What one delivery changed, for the webhook's log and its tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MetaApplied {
    /// Customers' messages stored for the first time.
    pub messages: usize,
    /// Messages Meta had delivered before: nothing changed.
    pub duplicates: usize,
    /// Echoes of the business's own messages stored.
    pub echoes: usize,
    /// Reads and delivery receipts applied.
    pub receipts: usize,
}

fn channel_of(p: Platform) -> Channel {
    match p {
        Platform::Instagram => Channel::Instagram,
        Platform::Messenger => Channel::Facebook,
    }
}

/// The God View identifier kind of a platform's scoped ids.
fn identifier_kind(p: Platform) -> IdentifierKind {
    match p {
        Platform::Instagram => IdentifierKind::InstagramId,
        Platform::Messenger => IdentifierKind::FacebookPsid,
    }
}

impl Inbox {
    /// The customer a scoped id belongs to, made when the id is new.
    async fn meta_customer(
        &self,
        org: Uuid,
        platform: Platform,
        scoped_id: &str,
        now: Millis,
    ) -> Result<Uuid, InboxError> {
        let kind = identifier_kind(platform);
        let resolved = crate::identity::resolve(
            self.store(),
            org,
            &[(kind.as_str().to_string(), scoped_id.to_string())],
            Traits::default(),
            platform.as_str(),
            None,
            now,
        )
        .await
        .map_err(|e| match e {
            IdentityError::Store(s) => InboxError::from(s),
            other => InboxError::Invalid {
                field: "sender.id",
                detail: other.to_string(),
            },
        })?;
        Ok(resolved.outcome.profile_id)
    }

    /// Applies a verified delivery's events, in order.
    pub async fn receive_meta(
        &self,
        org: Uuid,
        events: &[Event],
        now: Millis,
    ) -> Result<MetaApplied, InboxError> {
        let mut applied = MetaApplied::default();
        for e in events {
            let channel = channel_of(e.platform);
            match &e.kind {
                EventKind::Message {
                    mid,
                    text,
                    attachments,
                    is_echo,
                    ..
                } => {
                    let profile = self
                        .meta_customer(org, e.platform, e.customer_id(), now)
                        .await?;
                    let text = text.clone().unwrap_or_default();
                    let recorded = if *is_echo {
                        // Sent by a person from Meta's own apps (or the
                        // echo of our reply, already stored by its mid).
                        self.record_sent(
                            org,
                            Sent {
                                profile_id: profile,
                                channel,
                                author: AuthorKind::Member,
                                author_name: format!("{} app", channel.label()),
                                text,
                                html: None,
                                subject: None,
                                provider_message_id: Some(mid.clone()),
                                email_message_id: None,
                            },
                            now,
                        )
                        .await?
                    } else {
                        self.record_inbound(
                            org,
                            Inbound {
                                provider_message_id: Some(mid.clone()),
                                attachments: serde_json::to_value(attachments)
                                    .unwrap_or_else(|_| serde_json::json!([])),
                                ..Inbound::text(profile, channel, text)
                            },
                            now,
                        )
                        .await?
                    };
                    match (recorded, is_echo) {
                        (Recorded::AlreadyHad { .. }, _) => applied.duplicates += 1,
                        (Recorded::New { .. }, true) => applied.echoes += 1,
                        (Recorded::New { .. }, false) => applied.messages += 1,
                    }
                }
                EventKind::Read { watermark, mid } => {
                    applied.receipts += self
                        .meta_receipt(
                            org,
                            e,
                            channel,
                            DeliveryStatus::Read,
                            mid.iter(),
                            *watermark,
                            now,
                        )
                        .await?;
                }
                EventKind::Delivery { mids, watermark } => {
                    applied.receipts += self
                        .meta_receipt(
                            org,
                            e,
                            channel,
                            DeliveryStatus::Delivered,
                            mids.iter(),
                            *watermark,
                            now,
                        )
                        .await?;
                }
            }
        }
        Ok(applied)
    }

    /// A read or delivery receipt: the messages it names, and everything
    /// sent to this customer up to its watermark.
    #[allow(clippy::too_many_arguments)]
    async fn meta_receipt<'a>(
        &self,
        org: Uuid,
        e: &Event,
        channel: Channel,
        status: DeliveryStatus,
        mids: impl Iterator<Item = &'a String>,
        watermark: Option<Millis>,
        now: Millis,
    ) -> Result<usize, InboxError> {
        let mut n = 0;
        for mid in mids {
            if self
                .delivery_receipt(org, channel, mid, status, now)
                .await?
            {
                n += 1;
            }
        }
        if let Some(up_to) = watermark {
            let kind = identifier_kind(e.platform);
            // As the identity was stored: normalized.
            let Ok(id) = bos_core::identity::normalize(&kind, e.customer_id(), "") else {
                return Ok(n);
            };
            if let Some(conv) = self
                .store()
                .settle_sent_up_to(org, kind.as_str(), &id.value, channel, status, up_to, now)
                .await?
            {
                self.tell(org, conv);
                n += 1;
            }
        }
        Ok(n)
    }
}
