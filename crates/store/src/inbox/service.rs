//! What the inbox service needs from storage beyond messages and
//! conversations: writing its lines on the customer's timeline (a message
//! received, an assignment, a resolution, a reply), once per key so a
//! redelivery or a retried request never writes a second line.

use bos_core::Millis;
use uuid::Uuid;

use crate::engine::write_db;
use crate::sql::{q, read_rows, Db};
use crate::{new_id, Store, StoreError};

/// One line on a customer's timeline, written by the inbox.
#[derive(Debug, Clone)]
pub struct InboxTimelineEntry {
    /// Any profile of the customer; the line goes on its root.
    pub profile_id: Uuid,
    /// `message_in`, `message_out`, `conversation_assigned`…
    pub kind: String,
    pub summary: String,
    /// A JSON object of ids, never the message itself.
    pub data: serde_json::Value,
    /// The same key twice writes one line.
    pub key: String,
    pub at: Millis,
}

impl Store {
    /// Writes an inbox line on the customer's timeline (once per key).
    pub async fn inbox_timeline(
        &self,
        org: Uuid,
        e: &InboxTimelineEntry,
    ) -> Result<(), StoreError> {
        let e = e.clone();
        write_db!(self, |db| async move {
            let root = db
                .opt(
                    q("select root_id from profiles where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(e.profile_id),
                )
                .await?
                .map(|r| r.uuid("root_id"))
                .transpose()?
                .ok_or(StoreError::NotFound)?;
            db.exec(
                q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, \
                   summary, data, event_key) \
                   values ($1, $2, $3, $3, $4, $5, 'inbox', $6, $7, $8) on conflict do nothing")
                .bind(org)
                .bind(new_id())
                .bind(root)
                .bind(e.at)
                .bind(e.kind.as_str())
                .bind(e.summary.as_str())
                .bind(e.data.to_string())
                .bind(e.key.as_str()),
            )
            .await?;
            Ok(())
        })
    }

    /// The conversation a message belongs to, if the message is this
    /// organization's.
    pub async fn conversation_of_message(
        &self,
        org: Uuid,
        message: Uuid,
    ) -> Result<Option<Uuid>, StoreError> {
        let rows = read_rows(
            self,
            q("select conversation_id from messages where org_id = $1 and id = $2")
                .bind(org)
                .bind(message),
        )
        .await?;
        rows.first().map(|r| r.uuid("conversation_id")).transpose()
    }
}

/// A nudge the nudge engine sent, as the inbox shows it in the customer's
/// conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentNudge {
    pub profile_id: Uuid,
    pub channel: bos_core::inbox::Channel,
    pub campaign_name: String,
    pub subject: Option<String>,
    pub text: String,
    /// The provider's id (a Twilio MessageSid), so its receipts find the
    /// message; `None` for the development sink.
    pub provider_id: Option<String>,
    /// Our `Message-ID` of an e-mail nudge, without angle brackets, so a
    /// reply quoting it threads.
    pub email_message_id: Option<String>,
    /// The provider already reported it delivered.
    pub delivered: bool,
}

impl Store {
    /// The nudge an execution sent, once it has gone out (`sent` or
    /// `delivered`); `None` before that or for another organization's id.
    pub async fn sent_nudge(
        &self,
        org: Uuid,
        execution: Uuid,
    ) -> Result<Option<SentNudge>, StoreError> {
        let rows = read_rows(
            self,
            q(
                "select e.profile_id, e.channel, e.subject, e.body, e.provider_id, e.message_id, \
               e.status, c.name as campaign_name from nudge_executions e \
               left join campaigns c on c.org_id = e.org_id and c.id = e.campaign_id \
               where e.org_id = $1 and e.id = $2 and e.status in ('sent', 'delivered')",
            )
            .bind(org)
            .bind(execution),
        )
        .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let channel = crate::nudge::parse_channel(&r.text("channel")?)?;
        let channel = match channel {
            bos_core::nudge::Channel::Sms => bos_core::inbox::Channel::Sms,
            _ => bos_core::inbox::Channel::Email,
        };
        let is_email = channel == bos_core::inbox::Channel::Email;
        Ok(Some(SentNudge {
            profile_id: r.uuid("profile_id")?,
            channel,
            campaign_name: r.opt_text("campaign_name")?.unwrap_or_default(),
            subject: r.opt_text("subject")?,
            text: r.text("body")?,
            provider_id: r.opt_text("provider_id")?.filter(|p| !p.is_empty()),
            email_message_id: if is_email {
                Some(r.text("message_id")?.trim_matches(['<', '>']).to_string())
            } else {
                None
            },
            delivered: r.text("status")? == "delivered",
        }))
    }
}
