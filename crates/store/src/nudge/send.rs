//! What becomes of a claimed send: a failed send's retry claimed again
//! (unless an opt-out or a stop came in between), the provider's answer
//! (sent, failed, retry later, or unknown), its delivery reports, and the
//! sweep that marks sends cut off by a crash as `unknown`.

use super::{
    channel_str, load_channel, parse_channel, stop_reason_str, Claimed, ExecutionStatus, SEND_JOB,
};
use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::nudge::{self, Campaign, Channel, MessageLinks, StopReason};
use bos_core::Millis;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

impl crate::Store {
    /// A retry of a failed send: claims it again (`retrying` → `sending`)
    /// unless the customer opted out meanwhile or the sequence was stopped
    /// by a reply or purchase, which end it as failed.
    pub async fn claim_retry(
        &self,
        org: Uuid,
        execution: Uuid,
        now: Millis,
        links: Arc<dyn MessageLinks>,
    ) -> Result<Option<Claimed>, StoreError> {
        let keys = self.keyring();
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select x.status, x.channel, x.to_addr, x.subject, x.body, x.message_id, x.idem_key, x.token, \
                       x.attempts, x.campaign_id, x.profile_id, c.definition, e.stop_reason \
                       from nudge_executions x left join campaigns c on c.org_id = x.org_id and c.id = x.campaign_id \
                       left join enrollments e on e.org_id = x.org_id and e.id = x.enrollment_id \
                       where x.org_id = $1 and x.id = $2")
                    .bind(org)
                    .bind(execution),
                )
                .await?;
            let Some(r) = r else { return Ok(None) };
            if ExecutionStatus::stored(&r.text("status")?)? != ExecutionStatus::Retrying {
                return Ok(None);
            }
            let channel = parse_channel(&r.text("channel")?)?;
            let to = r.text("to_addr")?;
            let opted = db
                .opt(
                    q("select 1 from opt_outs where org_id = $1 and channel = $2 and address = $3")
                        .bind(org)
                        .bind(channel_str(channel))
                        .bind(to.as_str()),
                )
                .await?
                .is_some();
            let stop = r.opt_text("stop_reason")?;
            // Any stop but running out of steps ends the retries too.
            let ends_retries = [
                StopReason::Converted,
                StopReason::Replied,
                StopReason::Removed,
                StopReason::OptedOut(channel),
            ]
            .map(stop_reason_str);
            let blocked = if opted {
                Some("the customer opted out before the retry".to_string())
            } else if stop.as_deref().is_some_and(|s| ends_retries.contains(&s)) {
                Some(format!(
                    "the sequence stopped ({}) before the retry",
                    stop.unwrap_or_default()
                ))
            } else {
                None
            };
            if let Some(why) = blocked {
                db.exec(
                    q("update nudge_executions set status = 'failed', error = $3, updated_at = $4 where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(execution)
                        .bind(why)
                        .bind(now),
                )
                .await?;
                return Ok(None);
            }
            let attempts = r.i64("attempts")? + 1;
            db.exec(
                q("update nudge_executions set status = 'sending', attempts = $3, next_attempt_at = null, updated_at = $4 \
                   where org_id = $1 and id = $2 and status = 'retrying'")
                .bind(org)
                .bind(execution)
                .bind(attempts)
                .bind(now),
            )
            .await?;
            let campaign: Option<Campaign> = r
                .opt_text("definition")?
                .and_then(|d| serde_json::from_str(&d).ok());
            let (config, hook) = load_channel(db, &keys, org, channel).await?;
            let tok = r.text("token")?;
            let subject = r.opt_text("subject")?;
            let text = r.text("body")?;
            // The HTML part is rebuilt from the stored text, which holds the
            // rendered message (values were substituted at the first try).
            let html = (channel != Channel::Sms)
                .then(|| nudge::email_html_from_text(&text, &tok, &*links));
            Ok(Some(Claimed {
                org_id: org,
                execution_id: execution,
                campaign_id: r.uuid("campaign_id")?,
                profile_id: r.uuid("profile_id")?,
                channel,
                to,
                from: config.sender_addr(channel),
                subject,
                text,
                html,
                message_id: r.text("message_id")?,
                idem_key: r.text("idem_key")?,
                unsubscribe_url: (channel != Channel::Sms).then(|| links.unsubscribe(&tok)),
                status_callback: hook.map(|h| links.delivery_status(&h)),
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                max_attempts: campaign.map(|c| c.max_attempts.max(1)).unwrap_or(1),
                config,
            }))
        })
    }

    /// The provider accepted the message.
    pub async fn execution_sent(
        &self,
        org: Uuid,
        execution: Uuid,
        provider_id: Option<String>,
        delivered: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.execution_sent_then(org, execution, provider_id, delivered, false, now)
            .await
            .map(|_| ())
    }

    /// [`Store::execution_sent`], and with `to_inbox` the nudge shown in
    /// the customer's conversation in the same transaction (or the timer
    /// that shows it later, see `inbox::copies`); `None` when the
    /// execution was not `sending` (or without `to_inbox`).
    pub async fn execution_sent_then(
        &self,
        org: Uuid,
        execution: Uuid,
        provider_id: Option<String>,
        delivered: bool,
        to_inbox: bool,
        now: Millis,
    ) -> Result<Option<crate::inbox::NudgeCopy>, StoreError> {
        let status = if delivered {
            ExecutionStatus::Delivered
        } else {
            ExecutionStatus::Sent
        };
        write_db!(self, |db| async move {
            let n = db.exec(
                q("update nudge_executions set status = $3, provider_id = $4, sent_at = $5, \
                   delivered_at = case when $3 = 'delivered' then $5 else delivered_at end, error = null, updated_at = $5 \
                   where org_id = $1 and id = $2 and status = 'sending'")
                .bind(org)
                .bind(execution)
                .bind(status.as_str())
                .bind(provider_id)
                .bind(now),
            )
            .await?;
            if to_inbox && n == 1 {
                return Ok(Some(
                    crate::inbox::show_nudge_tx(db, org, execution, now).await?,
                ));
            }
            Ok(None)
        })
    }

    /// A transient failure: tried again at `retry_at`, or failed for good
    /// when `retry_at` is `None` (attempts used up, or a permanent error).
    pub async fn execution_failed(
        &self,
        org: Uuid,
        execution: Uuid,
        error: String,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            let status = if retry_at.is_some() {
                ExecutionStatus::Retrying
            } else {
                ExecutionStatus::Failed
            };
            let n = db
                .exec(
                    q("update nudge_executions set status = $3, error = $4, next_attempt_at = $5, updated_at = $6 \
                       where org_id = $1 and id = $2 and status = 'sending'")
                    .bind(org)
                    .bind(execution)
                    .bind(status.as_str())
                    .bind(error)
                    .bind(retry_at)
                    .bind(now),
                )
                .await?;
            if let (Some(at), 1) = (retry_at, n) {
                crate::timers::set(
                    db,
                    org,
                    SEND_JOB,
                    &format!("exec:{execution}"),
                    json!({ "execution_id": execution }).to_string(),
                    at,
                    now,
                )
                .await?;
            }
            Ok(())
        })
    }

    /// The provider may or may not have sent it (no answer after the
    /// request went out): `unknown`, shown and never re-sent.
    pub async fn execution_unknown(
        &self,
        org: Uuid,
        execution: Uuid,
        error: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            db.exec(
                q("update nudge_executions set status = 'unknown', error = $3, sent_at = coalesce(sent_at, $4), updated_at = $4 \
                   where org_id = $1 and id = $2 and status = 'sending'")
                .bind(org)
                .bind(execution)
                .bind(error)
                .bind(now),
            )
            .await?;
            Ok(())
        })
    }

    /// Executions left `sending` longer than `lease_ms` (by default
    /// [`SENDING_LEASE_MS`](super::SENDING_LEASE_MS)) were cut off by a crash: they become `unknown`
    /// (every tenant; a system task).
    pub async fn sweep_sending(&self, now: Millis, lease_ms: Millis) -> Result<u64, StoreError> {
        write_db!(self, |db| async move {
            db.exec(
                q("update nudge_executions set status = 'unknown', \
                   error = 'the process stopped while sending; the provider may have sent it, so it is not sent again', \
                   sent_at = coalesce(sent_at, updated_at), updated_at = $1 where status = 'sending' and updated_at < $2")
                .bind(now)
                .bind(now - lease_ms.max(0)),
            )
            .await
        })
    }

    /// A provider's delivery report (Twilio status callback), applied
    /// forward only: `sent → delivered | undelivered | failed`. Returns
    /// whether it changed anything.
    pub async fn delivery_status(
        &self,
        org: Uuid,
        provider_id: String,
        status: ExecutionStatus,
        error: Option<String>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select id, status from nudge_executions where org_id = $1 and provider_id = $2")
                        .bind(org)
                        .bind(provider_id.as_str()),
                )
                .await?;
            let Some(r) = r else { return Ok(false) };
            let current = ExecutionStatus::stored(&r.text("status")?)?;
            if status.rank() <= current.rank() {
                return Ok(false);
            }
            db.exec(
                q("update nudge_executions set status = $3, error = coalesce($4, error), \
                   delivered_at = case when $3 = 'delivered' then $5 else delivered_at end, updated_at = $5 \
                   where org_id = $1 and id = $2")
                .bind(org)
                .bind(r.uuid("id")?)
                .bind(status.as_str())
                .bind(error)
                .bind(now),
            )
            .await?;
            Ok(true)
        })
    }
}
