//! Meta sources: a Facebook page or Instagram account connected to the
//! inbox. Owns their rows, with the app secret, verify token and page
//! access token sealed together at rest (opened only here, for the webhook
//! check and the Send API), the system lookup the webhook finds its tenant
//! by, the page token a reply is sent with, and a receipt that settles
//! every message sent up to a moment (Messenger's read and delivery
//! watermarks).

use bos_core::inbox::{Channel, DeliveryStatus, Direction};
use bos_core::Millis;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::write::delivery_tx;
use crate::engine::write_db;
use crate::secrets::meta_source_context;
use crate::sql::{q, read_rows, Db, Row};
use crate::{new_id, Store, StoreError};

/// What Meta gave the business when it set up the app and the page.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaCredentials {
    /// Signs every webhook delivery (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// The token Meta echoes in the subscription handshake.
    pub verify_token: String,
    /// Sends replies through the Send API.
    pub page_access_token: String,
}

impl std::fmt::Debug for MetaCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in logs.
        f.write_str("MetaCredentials { .. }")
    }
}

/// A connected page or Instagram account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSource {
    pub org_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub credentials: MetaCredentials,
    pub created_at: Millis,
}

impl Store {
    fn open_meta(&self, r: &Row) -> Result<MetaSource, StoreError> {
        let (org_id, id) = (r.uuid("org_id")?, r.uuid("id")?);
        let plain = self
            .keyring()
            .open(&meta_source_context(org_id, id), &r.text("secret")?)?;
        let credentials: MetaCredentials = serde_json::from_str(&plain)
            .map_err(|e| StoreError::Other(format!("meta source credentials: {e}")))?;
        Ok(MetaSource {
            org_id,
            id,
            name: r.text("name")?,
            credentials,
            created_at: r.i64("created_at")?,
        })
    }

    /// Connects a page or Instagram account; its credentials are sealed
    /// for this row before they are written.
    pub async fn create_meta_source(
        &self,
        org: Uuid,
        name: &str,
        credentials: &MetaCredentials,
        now: Millis,
    ) -> Result<MetaSource, StoreError> {
        let id = new_id();
        let plain =
            serde_json::to_string(credentials).map_err(|e| StoreError::Other(e.to_string()))?;
        let sealed = self.keyring().seal(&meta_source_context(org, id), &plain);
        let name_c = name.to_string();
        write_db!(self, |db| async move {
            db.exec(
                q(
                    "insert into meta_sources (org_id, id, name, secret, created_at) \
                   values ($1, $2, $3, $4, $5)",
                )
                .bind(org)
                .bind(id)
                .bind(name_c)
                .bind(sealed)
                .bind(now),
            )
            .await?;
            Ok(())
        })?;
        Ok(MetaSource {
            org_id: org,
            id,
            name: name.to_string(),
            credentials: credentials.clone(),
            created_at: now,
        })
    }

    /// The organization's Meta sources, oldest first.
    pub async fn meta_sources(&self, org: Uuid) -> Result<Vec<MetaSource>, StoreError> {
        let rows = read_rows(
            self,
            q(
                "select org_id, id, name, secret, created_at from meta_sources \
               where org_id = $1 order by id",
            )
            .bind(org),
        )
        .await?;
        rows.iter().map(|r| self.open_meta(r)).collect()
    }

    /// A system lookup for the public webhook: the Meta source named by
    /// the id in its URL, whatever its organization. The caller still has
    /// to prove it holds the source's secret.
    pub async fn meta_source_by_id(&self, id: Uuid) -> Result<Option<MetaSource>, StoreError> {
        let rows = read_rows(
            self,
            q("select org_id, id, name, secret, created_at from meta_sources where id = $1")
                .bind(id),
        )
        .await?;
        rows.first().map(|r| self.open_meta(r)).transpose()
    }

    /// The page access token a reply to Instagram or Messenger is sent
    /// with: the organization's most recently connected Meta source's, or
    /// `None` when it has connected none.
    pub async fn meta_page_token(&self, org: Uuid) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta_sources(org)
            .await?
            .pop()
            .map(|s| s.credentials.page_access_token))
    }

    /// A receipt for everything sent up to `up_to` (Messenger's read and
    /// delivery watermarks): every outbound message on `channel` in the
    /// conversation of the customer known by `identifier` (a scoped id),
    /// sent at or before `up_to`, moves forward to `status`. Returns the
    /// conversation when one is theirs.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle_sent_up_to(
        &self,
        org: Uuid,
        identifier_kind: &str,
        identifier: &str,
        channel: Channel,
        status: DeliveryStatus,
        up_to: Millis,
        at: Millis,
    ) -> Result<Option<Uuid>, StoreError> {
        let (kind, value) = (identifier_kind.to_string(), identifier.to_string());
        write_db!(self, |db| async move {
            let conv = db
                .opt(
                    q("select c.id from identity_links l join conversations c \
                       on c.org_id = l.org_id and c.profile_id = l.root_id \
                       where l.org_id = $1 and l.kind = $2 and l.value = $3")
                    .bind(org)
                    .bind(kind)
                    .bind(value),
                )
                .await?;
            let Some(conv) = conv else {
                return Ok(None);
            };
            let conv = conv.uuid("id")?;
            let rows = db
                .rows(
                    q(
                        "select id from messages where org_id = $1 and conversation_id = $2 \
                       and direction = $3 and channel = $4 and created_at <= $5",
                    )
                    .bind(org)
                    .bind(conv)
                    .bind(Direction::Outbound.as_str())
                    .bind(channel.as_str())
                    .bind(up_to),
                )
                .await?;
            for r in rows {
                delivery_tx(db, org, r.uuid("id")?, status, None, None, at).await?;
            }
            Ok(Some(conv))
        })
    }
}
