//! Reads for the channel settings pages and the provider webhooks: each
//! channel's settings with its webhook key, and the opt-out list. The writes (settings, inbound messages, delivery reports,
//! tracking, opt-outs) are in [`crate::nudge`], except the replay guard of
//! signed provider tokens, which is here.

use crate::engine::write_db;
use crate::nudge::{channel_str, parse_channel, ChannelConfig};
use crate::sql::{q, read_rows, Db};
use crate::{new_id, StoreError};
use bos_core::nudge::Channel;
use bos_core::Millis;
use uuid::Uuid;

/// One channel's settings as the settings page shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSetting {
    pub channel: Channel,
    /// The development sink when nothing was saved.
    pub config: ChannelConfig,
    /// The key in the channel's webhook URLs; made on the first save.
    pub hook_key: Option<String>,
    pub updated_at: Option<Millis>,
}

/// An address that receives no nudges on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    pub channel: Channel,
    pub address: String,
    pub profile_id: Option<Uuid>,
    /// What opted it out: `unsubscribe link`, `SMS keyword`, `api`, …
    pub source: String,
    pub at: Millis,
}

/// A minimal execution row for tests of the webhooks and tracking routes.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct TestExecution {
    pub profile_id: Uuid,
    pub channel: Channel,
    pub to: String,
    pub status: String,
    pub provider_id: Option<String>,
    pub token: String,
    pub link_url: Option<String>,
    pub message_id: String,
}

/// What a test reads back from an execution.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestExecutionState {
    pub status: String,
    pub error: Option<String>,
    pub delivered_at: Option<Millis>,
    pub opened_at: Option<Millis>,
    pub clicked_at: Option<Millis>,
    pub replied_at: Option<Millis>,
}

impl crate::Store {
    /// Both channels' settings (email first), the development sink for a
    /// channel never saved.
    pub async fn channel_settings(&self, org: Uuid) -> Result<Vec<ChannelSetting>, StoreError> {
        let rows = read_rows(
            self,
            q("select channel, config, hook_key, updated_at from channel_settings where org_id = $1")
                .bind(org),
        )
        .await?;
        let keys = self.keyring();
        let mut out = Vec::new();
        for channel in [Channel::Email, Channel::Sms] {
            let mut setting = ChannelSetting {
                channel,
                config: ChannelConfig::Dev,
                hook_key: None,
                updated_at: None,
            };
            for r in &rows {
                if parse_channel(&r.text("channel")?)? == channel {
                    setting.config =
                        crate::nudge::open_channel_config(&keys, org, channel, &r.text("config")?)?;
                    setting.hook_key = Some(r.text("hook_key")?);
                    setting.updated_at = Some(r.i64("updated_at")?);
                }
            }
            out.push(setting);
        }
        Ok(out)
    }

    /// The organization's opt-outs, newest first.
    pub async fn opt_outs(&self, org: Uuid, limit: u32) -> Result<Vec<OptOut>, StoreError> {
        let rows = read_rows(
            self,
            q(
                "select channel, address, profile_id, source, at from opt_outs where org_id = $1 \
               order by at desc, address limit $2",
            )
            .bind(org)
            .bind(i64::from(limit)),
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OptOut {
                    channel: parse_channel(&r.text("channel")?)?,
                    address: r.text("address")?,
                    profile_id: r.opt_uuid("profile_id")?,
                    source: r.text("source")?,
                    at: r.i64("at")?,
                })
            })
            .collect()
    }

    /// Whether `address` is opted out of `channel` (exact stored form).
    pub async fn is_opted_out(
        &self,
        org: Uuid,
        channel: Channel,
        address: &str,
    ) -> Result<bool, StoreError> {
        let rows = read_rows(
            self,
            q("select count(*) as n from opt_outs where org_id = $1 and channel = $2 and address = $3")
                .bind(org)
                .bind(channel_str(channel))
                .bind(address),
        )
        .await?;
        Ok(rows.first().map(|r| r.i64("n")).transpose()?.unwrap_or(0) > 0)
    }

    /// Rows a webhook may write, for tests that check a refused request
    /// wrote nothing: (timeline rows, opt-outs, profiles).
    #[doc(hidden)]
    pub async fn hook_row_counts(&self, org: Uuid) -> Result<(i64, i64, i64), StoreError> {
        let rows = read_rows(
            self,
            q(
                "select (select count(*) from timeline where org_id = $1) as timeline, \
               (select count(*) from opt_outs where org_id = $1) as opt_outs, \
               (select count(*) from profiles where org_id = $1) as profiles",
            )
            .bind(org),
        )
        .await?;
        let r = rows.first().ok_or(StoreError::NotFound)?;
        Ok((r.i64("timeline")?, r.i64("opt_outs")?, r.i64("profiles")?))
    }

    /// Inserts an execution as if a step had been sent, for tests of the
    /// webhooks and tracking routes (the real flow is `nudge_step`).
    #[doc(hidden)]
    pub async fn insert_test_execution(
        &self,
        org: Uuid,
        x: TestExecution,
        now: Millis,
    ) -> Result<Uuid, StoreError> {
        let id = new_id();
        write_db!(self, |db| async move {
            db.exec(
                q("insert into nudge_executions (org_id, id, enrollment_id, campaign_id, profile_id, step, variant, \
                   variant_name, channel, idem_key, status, attempts, provider, provider_id, to_addr, from_addr, \
                   subject, body, message_id, token, link_url, created_at, sent_at, updated_at) \
                   values ($1, $2, $3, $4, $5, 0, 0, 'A', $6, $7, $8, 1, 'test', $9, $10, 'test', null, 'test', \
                   $11, $12, $13, $14, $14, $14)")
                .bind(org)
                .bind(id)
                .bind(new_id())
                .bind(new_id())
                .bind(x.profile_id)
                .bind(channel_str(x.channel))
                .bind(format!("test:{id}"))
                .bind(x.status.as_str())
                .bind(x.provider_id)
                .bind(x.to.as_str())
                .bind(x.message_id.as_str())
                .bind(x.token.as_str())
                .bind(x.link_url)
                .bind(now),
            )
            .await?;
            Ok(id)
        })
    }

    /// An execution's delivery and tracking state, for tests.
    #[doc(hidden)]
    pub async fn test_execution_state(
        &self,
        org: Uuid,
        id: Uuid,
    ) -> Result<Option<TestExecutionState>, StoreError> {
        let rows = read_rows(
            self,
            q("select status, error, delivered_at, opened_at, clicked_at, replied_at from nudge_executions \
               where org_id = $1 and id = $2")
            .bind(org)
            .bind(id),
        )
        .await?;
        rows.first()
            .map(|r| {
                Ok(TestExecutionState {
                    status: r.text("status")?,
                    error: r.opt_text("error")?,
                    delivered_at: r.opt_i64("delivered_at")?,
                    opened_at: r.opt_i64("opened_at")?,
                    clicked_at: r.opt_i64("clicked_at")?,
                    replied_at: r.opt_i64("replied_at")?,
                })
            })
            .transpose()
    }

    /// Records a provider's one-time webhook token (Mailgun's `token`) as
    /// used by `org` until `expires_at`; false when it is in use already.
    /// Expired tokens of the same organization and provider are deleted in
    /// the same write, so the table holds at most what each tenant's own
    /// signed deliveries put there within the expiry, and one tenant's
    /// traffic never touches another's rows.
    pub async fn claim_hook_token(
        &self,
        org: Uuid,
        provider: &str,
        token: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError> {
        let (provider, token) = (provider.to_string(), token.to_string());
        write_db!(self, |db| async move {
            db.exec(
                q("delete from hook_replays where org_id = $1 and provider = $2 and expires_at <= $3")
                    .bind(org)
                    .bind(provider.as_str())
                    .bind(now),
            )
            .await?;
            let n = db
                .exec(
                    q(
                        "insert into hook_replays (org_id, provider, token, expires_at) \
                       values ($1, $2, $3, $4) on conflict do nothing",
                    )
                    .bind(org)
                    .bind(provider.as_str())
                    .bind(token.as_str())
                    .bind(expires_at),
                )
                .await?;
            Ok(n == 1)
        })
    }

    /// Forgets a claimed token: the delivery it came with was not stored,
    /// so the provider's retry (same token) must be accepted.
    pub async fn release_hook_token(
        &self,
        org: Uuid,
        provider: &str,
        token: &str,
    ) -> Result<(), StoreError> {
        let (provider, token) = (provider.to_string(), token.to_string());
        write_db!(self, |db| async move {
            db.exec(
                q("delete from hook_replays where org_id = $1 and provider = $2 and token = $3")
                    .bind(org)
                    .bind(provider.as_str())
                    .bind(token.as_str()),
            )
            .await?;
            Ok(())
        })
    }

    /// How many replay tokens `org` holds, for tests.
    #[doc(hidden)]
    pub async fn hook_token_count(&self, org: Uuid) -> Result<i64, StoreError> {
        let rows = read_rows(
            self,
            q("select count(*) as n from hook_replays where org_id = $1").bind(org),
        )
        .await?;
        Ok(rows.first().map(|r| r.i64("n")).transpose()?.unwrap_or(0))
    }
}
