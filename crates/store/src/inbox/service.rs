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
