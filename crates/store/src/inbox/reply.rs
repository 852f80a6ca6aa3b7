//! What a reply from the inbox needs from storage: where the customer can
//! be reached (phone, e-mail, Instagram- and page-scoped ids), which of
//! those addresses opted out, when they last wrote on each channel (Meta's
//! window) and what an e-mail reply threads under; then the reply itself,
//! written `pending` in the same transaction that checks the opt-out once
//! more, before any provider is called; and the sweep that marks replies a
//! crash cut off as `unknown`, so they are shown and never sent again.

use bos_core::inbox::{Channel, ThreadIds};
use bos_core::Millis;
use uuid::Uuid;

use super::read::{message, Message, MESSAGE_COLS};
use super::write::{record_outbound_tx, OutboundMessage, Recorded};
use crate::engine::write_db;
use crate::sql::{q, read_rows, Db};
use crate::{Store, StoreError};

/// How a reply may reach the customer of one conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyTargets {
    pub conversation_id: Uuid,
    /// The customer the conversation belongs to.
    pub profile_id: Uuid,
    /// The customer's name, e-mail and phone as search finds them.
    pub people: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Instagram-scoped id.
    pub instagram_id: Option<String>,
    /// Facebook page-scoped id.
    pub facebook_psid: Option<String>,
    /// Channels whose address (above) is on the opt-out list.
    pub opted_out: Vec<Channel>,
    /// When the customer last wrote, per channel.
    pub last_inbound: Vec<(Channel, Millis)>,
    /// The latest e-mail of the conversation, which a reply answers.
    pub email_thread: Option<EmailThread>,
}

/// The conversation's latest e-mail: its ids and subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailThread {
    pub ids: ThreadIds,
    pub subject: Option<String>,
}

impl ReplyTargets {
    /// The address a reply on `channel` goes to.
    pub fn address(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Sms => self.phone.as_deref(),
            Channel::Email => self.email.as_deref(),
            Channel::Instagram => self.instagram_id.as_deref(),
            Channel::Facebook => self.facebook_psid.as_deref(),
            Channel::Form | Channel::Voice => None,
        }
    }

    pub fn opted_out(&self, channel: Channel) -> bool {
        self.opted_out.contains(&channel)
    }

    pub fn last_inbound_at(&self, channel: Channel) -> Option<Millis> {
        self.last_inbound
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, at)| *at)
    }
}

/// The opt-out list's name for a channel that has one (only SMS and
/// e-mail: Meta's users block a page in Meta's own apps).
fn opt_out_channel(c: Channel) -> Option<&'static str> {
    match c {
        Channel::Sms => Some("sms"),
        Channel::Email => Some("email"),
        _ => None,
    }
}

/// What writing a reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyWritten {
    /// Written `pending`; the provider may now be called.
    Written(Recorded),
    /// The address opted out after the composer was shown: nothing written.
    OptedOut,
}

async fn write_reply_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    conversation: Uuid,
    address: String,
    mut m: OutboundMessage,
) -> Result<ReplyWritten, StoreError> {
    // Locked: the conversation's writers take turns (as recording does).
    let row = db
        .opt(
            q(format!(
                "select profile_id from conversations where org_id = $1 and id = $2{}",
                D::LOCK
            ))
            .bind(org)
            .bind(conversation),
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    m.profile_id = row.uuid("profile_id")?;
    if let Some(list) = opt_out_channel(m.channel) {
        let opted = db
            .opt(
                q("select 1 as one from opt_outs where org_id = $1 and channel = $2 and address = $3")
                    .bind(org)
                    .bind(list)
                    .bind(address.as_str()),
            )
            .await?
            .is_some();
        if opted {
            return Ok(ReplyWritten::OptedOut);
        }
    }
    Ok(ReplyWritten::Written(
        record_outbound_tx(db, org, &m).await?,
    ))
}

impl Store {
    /// Where and how a reply in `conversation` can reach its customer.
    pub async fn reply_targets(
        &self,
        org: Uuid,
        conversation: Uuid,
    ) -> Result<ReplyTargets, StoreError> {
        let conv = read_rows(
            self,
            q(
                "select c.profile_id, c.people, r.id as root_id, r.primary_email, r.primary_phone \
               from conversations c \
               left join profiles p on p.org_id = c.org_id and p.id = c.profile_id \
               left join profiles r on r.org_id = p.org_id and r.id = p.root_id \
               where c.org_id = $1 and c.id = $2",
            )
            .bind(org)
            .bind(conversation),
        )
        .await?;
        let conv = conv.first().ok_or(StoreError::NotFound)?;
        let profile_id = conv.uuid("profile_id")?;
        let root = conv.opt_uuid("root_id")?.unwrap_or(profile_id);
        let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
        let mut t = ReplyTargets {
            conversation_id: conversation,
            profile_id,
            people: conv.text("people")?,
            email: nonempty(conv.opt_text("primary_email")?),
            phone: nonempty(conv.opt_text("primary_phone")?),
            ..ReplyTargets::default()
        };
        // The newest identity of each kind fills what the profile lacks.
        let links = read_rows(
            self,
            q("select kind, value, last_seen_at from identity_links where org_id = $1 and root_id = $2 \
               and kind in ('email', 'phone', 'instagram_id', 'facebook_psid')")
            .bind(org)
            .bind(root),
        )
        .await?;
        let mut links = links
            .iter()
            .map(|r| Ok((r.text("kind")?, r.text("value")?, r.i64("last_seen_at")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        links.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
        for (kind, value, _) in links {
            let slot = match kind.as_str() {
                "email" => &mut t.email,
                "phone" => &mut t.phone,
                "instagram_id" => &mut t.instagram_id,
                "facebook_psid" => &mut t.facebook_psid,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        for c in [Channel::Sms, Channel::Email] {
            let (Some(list), Some(address)) = (opt_out_channel(c), t.address(c)) else {
                continue;
            };
            let rows = read_rows(
                self,
                q("select 1 as one from opt_outs where org_id = $1 and channel = $2 and address = $3")
                    .bind(org)
                    .bind(list)
                    .bind(address),
            )
            .await?;
            if !rows.is_empty() {
                t.opted_out.push(c);
            }
        }
        let rows = read_rows(
            self,
            q("select channel, max(created_at) as last_at from messages \
               where org_id = $1 and conversation_id = $2 and direction = 'inbound' group by channel")
            .bind(org)
            .bind(conversation),
        )
        .await?;
        for r in &rows {
            if let Some(c) = Channel::parse(&r.text("channel")?) {
                t.last_inbound.push((c, r.i64("last_at")?));
            }
        }
        t.email_thread = self
            .last_email_ids(org, conversation)
            .await?
            .map(|(ids, subject)| EmailThread { ids, subject });
        Ok(t)
    }

    /// Writes a reply `pending`, before its provider is called, unless its
    /// address opted out meanwhile (checked again here, in the same
    /// transaction). The message goes into `conversation` whatever the
    /// caller put in `m.profile_id`.
    pub async fn write_reply(
        &self,
        org: Uuid,
        conversation: Uuid,
        address: &str,
        m: &OutboundMessage,
    ) -> Result<ReplyWritten, StoreError> {
        let m = m.clone();
        let address = address.to_string();
        write_db!(self, |db| write_reply_tx(db, org, conversation, address, m))
    }

    /// One message of the organization.
    pub async fn message(&self, org: Uuid, id: Uuid) -> Result<Message, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {MESSAGE_COLS} from messages where org_id = $1 and id = $2"
            ))
            .bind(org)
            .bind(id),
        )
        .await?;
        message(rows.first().ok_or(StoreError::NotFound)?)
    }

    /// Replies left `pending` longer than `lease_ms` were cut off by a
    /// crash between their write and the provider's answer: they become
    /// `unknown` (the provider may have sent them), never to be sent again.
    /// Every organization's (a system task). Returns how many.
    pub async fn sweep_pending_messages(
        &self,
        now: Millis,
        lease_ms: Millis,
    ) -> Result<u64, StoreError> {
        write_db!(self, |db| async move {
            db.exec(
                q("update messages set status = 'unknown', \
                   status_detail = 'the server stopped while sending; the provider may have sent it, so it is not sent again', \
                   updated_at = $1 where status = 'pending' and updated_at < $2")
                .bind(now)
                .bind(now - lease_ms.max(0)),
            )
            .await
        })
    }
}
