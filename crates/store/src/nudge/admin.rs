//! What the pages read about nudges, and the tenant's nudge settings:
//! the executions of a campaign, of a customer and of the development
//! sink's outbox; a customer's enrollments; the custom trait names a
//! template may use; and a message previewed for a real customer, composed
//! as a send would be but never stored.

use super::{
    build, channel_str, load_person, parse_channel, preferred, settings_row, ExecutionStatus,
    MessageLinks, NudgeSettings, SETTINGS_SQL,
};
use crate::engine::write_db;
use crate::sql::{q, read_rows, Db, Row};
use crate::StoreError;
use bos_core::nudge::{Campaign, Channel, StopReason};
use bos_core::Millis;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// How many of the most recently active customers are read for the names
/// of their custom traits.
const TRAIT_SAMPLE: i64 = 2_000;

/// One step execution, as the outbox, campaign and profile pages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionRow {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub campaign_name: String,
    pub enrollment_id: Uuid,
    pub profile_id: Uuid,
    /// From 0.
    pub step: i64,
    pub variant: String,
    pub channel: String,
    pub status: String,
    pub provider: Option<String>,
    pub error: Option<String>,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
    pub delivered_at: Option<Millis>,
    pub opened_at: Option<Millis>,
    pub clicked_at: Option<Millis>,
    pub replied_at: Option<Millis>,
    pub converted_at: Option<Millis>,
    pub converted_cents: Option<i64>,
}

/// One customer's run through one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollmentRow {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub campaign_name: String,
    pub profile_id: Uuid,
    /// `active` or `stopped`.
    pub status: String,
    /// `completed`, `converted`, `replied`, `opted_out`, `removed`, `lost`
    /// or `form_finished`.
    pub stop_reason: Option<String>,
    /// Why it ended, in the words a person uses ("stopped: finished the
    /// form"); `None` while it runs.
    pub ended_why: Option<String>,
    /// The next step to send, from 0.
    pub step_index: i64,
    pub next_due: Option<Millis>,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
}

/// A message rendered for a real customer, not sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// `email` or `sms`: a `preferred` step resolved for this customer.
    pub channel: String,
    /// Their address on that channel, when they have one.
    pub to: Option<String>,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
}

const EXEC_COLS: &str = "x.id, x.campaign_id, coalesce(c.name, '') as campaign_name, x.enrollment_id, x.profile_id, x.step, \
     x.variant_name, x.channel, x.status, x.provider, x.error, x.to_addr, x.subject, x.body, x.created_at, \
     x.sent_at, x.delivered_at, x.opened_at, x.clicked_at, x.replied_at, x.converted_at, x.converted_cents";

const EXEC_FROM: &str =
    "from nudge_executions x left join campaigns c on c.org_id = x.org_id and c.id = x.campaign_id";

fn execution(r: &Row) -> Result<ExecutionRow, StoreError> {
    Ok(ExecutionRow {
        id: r.uuid("id")?,
        campaign_id: r.uuid("campaign_id")?,
        campaign_name: r.text("campaign_name")?,
        enrollment_id: r.uuid("enrollment_id")?,
        profile_id: r.uuid("profile_id")?,
        step: r.i64("step")?,
        variant: r.text("variant_name")?,
        channel: parse_channel(&r.text("channel")?)?.as_str().to_string(),
        status: ExecutionStatus::stored(&r.text("status")?)?
            .as_str()
            .to_string(),
        provider: r.opt_text("provider")?,
        error: r.opt_text("error")?,
        to: r.text("to_addr")?,
        subject: r.opt_text("subject")?,
        body: r.text("body")?,
        created_at: r.i64("created_at")?,
        sent_at: r.opt_i64("sent_at")?,
        delivered_at: r.opt_i64("delivered_at")?,
        opened_at: r.opt_i64("opened_at")?,
        clicked_at: r.opt_i64("clicked_at")?,
        replied_at: r.opt_i64("replied_at")?,
        converted_at: r.opt_i64("converted_at")?,
        converted_cents: r.opt_i64("converted_cents")?,
    })
}

fn money_text(cents: i64, currency: Option<&str>) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!(
        "{sign}{}.{:02}{}",
        c / 100,
        c % 100,
        currency.map(|c| format!(" {c}")).unwrap_or_default()
    )
}

impl crate::Store {
    /// A campaign's latest executions, newest first.
    pub async fn recent_executions(
        &self,
        org: Uuid,
        campaign: Uuid,
        limit: i64,
    ) -> Result<Vec<ExecutionRow>, StoreError> {
        self.newest_executions(org, "x.campaign_id = $2", Some(campaign), limit)
            .await
    }

    /// The development sink's messages, newest first.
    pub async fn outbox(&self, org: Uuid, limit: i64) -> Result<Vec<ExecutionRow>, StoreError> {
        self.newest_executions(org, "x.provider = 'dev'", None, limit)
            .await
    }

    /// Every execution sent to this customer (and to profiles merged into
    /// them), newest first.
    pub async fn executions_for_profile(
        &self,
        org: Uuid,
        profile: Uuid,
    ) -> Result<Vec<ExecutionRow>, StoreError> {
        let root = self.root_of(org, profile).await?;
        let filter = "x.profile_id in (select id from profiles where org_id = $1 and root_id = $2)";
        self.newest_executions(org, filter, Some(root), 200).await
    }

    /// This tenant's executions that match `filter` (over `x`, with `$1`
    /// the organization and `$2` the value `also` when there is one),
    /// newest first.
    async fn newest_executions(
        &self,
        org: Uuid,
        filter: &str,
        also: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<ExecutionRow>, StoreError> {
        let n = if also.is_some() { 3 } else { 2 };
        let mut stmt = q(format!(
            "select {EXEC_COLS} {EXEC_FROM} where x.org_id = $1 and {filter} \
             order by x.created_at desc, x.id desc limit ${n}"
        ))
        .bind(org);
        if let Some(v) = also {
            stmt = stmt.bind(v);
        }
        let rows = read_rows(self, stmt.bind(limit)).await?;
        rows.iter().map(execution).collect()
    }

    /// This customer's runs through campaigns, active first, then newest.
    pub async fn enrollments_for_profile(
        &self,
        org: Uuid,
        profile: Uuid,
    ) -> Result<Vec<EnrollmentRow>, StoreError> {
        let root = self.root_of(org, profile).await?;
        let rows = read_rows(
            self,
            q("select e.id, e.campaign_id, coalesce(c.name, '') as campaign_name, e.profile_id, e.status, e.stop_reason, e.state, \
               e.next_due, e.started_at, e.ended_at from enrollments e \
               left join campaigns c on c.org_id = e.org_id and c.id = e.campaign_id \
               where e.org_id = $1 and e.profile_id in (select id from profiles where org_id = $1 and root_id = $2) \
               order by case when e.status = 'active' then 0 else 1 end, e.started_at desc limit 200")
            .bind(org)
            .bind(root),
        )
        .await?;
        rows.iter()
            .map(|r| {
                let state: Value = serde_json::from_str(&r.text("state")?).unwrap_or_default();
                Ok(EnrollmentRow {
                    id: r.uuid("id")?,
                    campaign_id: r.uuid("campaign_id")?,
                    campaign_name: r.text("campaign_name")?,
                    profile_id: r.uuid("profile_id")?,
                    status: r.text("status")?,
                    stop_reason: r.opt_text("stop_reason")?,
                    ended_why: state
                        .get("stopped")
                        .cloned()
                        .and_then(|v| serde_json::from_value::<StopReason>(v).ok())
                        .map(|r| r.label().to_string()),
                    step_index: state.get("step_index").and_then(Value::as_i64).unwrap_or(0),
                    next_due: r.opt_i64("next_due")?,
                    started_at: r.i64("started_at")?,
                    ended_at: r.opt_i64("ended_at")?,
                })
            })
            .collect()
    }

    /// The enrollment's campaign and customer, when it is this tenant's.
    pub async fn enrollment_owner(
        &self,
        org: Uuid,
        enrollment: Uuid,
    ) -> Result<Option<(Uuid, Uuid)>, StoreError> {
        let rows = read_rows(
            self,
            q("select campaign_id, profile_id from enrollments where org_id = $1 and id = $2")
                .bind(org)
                .bind(enrollment),
        )
        .await?;
        rows.first()
            .map(|r| Ok((r.uuid("campaign_id")?, r.uuid("profile_id")?)))
            .transpose()
    }

    /// The root of the cluster a profile belongs to; NotFound when the
    /// profile is not this tenant's.
    async fn root_of(&self, org: Uuid, profile: Uuid) -> Result<Uuid, StoreError> {
        let rows = read_rows(
            self,
            q("select root_id from profiles where org_id = $1 and id = $2")
                .bind(org)
                .bind(profile),
        )
        .await?;
        rows.first().ok_or(StoreError::NotFound)?.uuid("root_id")
    }

    /// The tenant's nudge settings (defaults until saved).
    pub async fn nudge_settings(&self, org: Uuid) -> Result<NudgeSettings, StoreError> {
        let rows = read_rows(self, q(SETTINGS_SQL).bind(org)).await?;
        settings_row(rows.first())
    }

    /// Saves the tenant's nudge settings; the caller validated them.
    pub async fn set_nudge_settings(
        &self,
        org: Uuid,
        s: &NudgeSettings,
        now: Millis,
    ) -> Result<(), StoreError> {
        let s = s.clone();
        write_db!(self, |db| async move {
            db.exec(
                q("insert into nudge_settings (org_id, timezone, email_window_ms, sms_window_ms, updated_at, \
                   email_cap_per_day, sms_cap_per_day) \
                   values ($1, $2, $3, $4, $5, $6, $7) on conflict (org_id) do update set timezone = excluded.timezone, \
                   email_window_ms = excluded.email_window_ms, sms_window_ms = excluded.sms_window_ms, \
                   updated_at = excluded.updated_at, email_cap_per_day = excluded.email_cap_per_day, \
                   sms_cap_per_day = excluded.sms_cap_per_day")
                .bind(org)
                .bind(s.timezone.as_str())
                .bind(s.windows.email_ms)
                .bind(s.windows.sms_ms)
                .bind(now)
                .bind(i64::from(s.cap.email_per_day))
                .bind(i64::from(s.cap.sms_per_day)),
            )
            .await?;
            Ok(())
        })
    }

    /// The custom trait names templates may use as `{{ traits.<name> }}`:
    /// the keys of the most recently active customers' traits, sorted.
    pub async fn custom_trait_names(&self, org: Uuid) -> Result<Vec<String>, StoreError> {
        let rows = read_rows(
            self,
            q(
                "select traits from profiles where org_id = $1 and merged_into is null \
               order by last_active_at desc limit $2",
            )
            .bind(org)
            .bind(TRAIT_SAMPLE),
        )
        .await?;
        let mut names = std::collections::BTreeSet::new();
        for r in &rows {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&r.text("traits")?) {
                names.extend(m.keys().filter(|k| !k.trim().is_empty()).cloned());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The most recently active customer, for a preview when none is
    /// chosen: a lead when there is one, else anyone.
    pub async fn preview_profile(&self, org: Uuid) -> Result<Option<Uuid>, StoreError> {
        let lead = read_rows(
            self,
            q("select p.id from leads l join profiles p on p.org_id = l.org_id and p.id = l.profile_id \
               where l.org_id = $1 and p.merged_into is null order by p.last_active_at desc limit 1")
            .bind(org),
        )
        .await?;
        if let Some(r) = lead.first() {
            return Ok(Some(r.uuid("id")?));
        }
        let any = read_rows(
            self,
            q(
                "select id from profiles where org_id = $1 and merged_into is null \
               order by last_active_at desc limit 1",
            )
            .bind(org),
        )
        .await?;
        any.first().map(|r| r.uuid("id")).transpose()
    }

    /// The customer with this email address, when there is one.
    pub async fn profile_by_email(
        &self,
        org: Uuid,
        email: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        let e = email.trim().to_lowercase();
        let rows = read_rows(
            self,
            q("select root_id from identity_links where org_id = $1 and kind = 'email' and value = $2")
                .bind(org)
                .bind(e.as_str()),
        )
        .await?;
        if let Some(r) = rows.first() {
            return Ok(Some(r.uuid("root_id")?));
        }
        let rows = read_rows(
            self,
            q("select root_id from profiles where org_id = $1 and lower(primary_email) = $2 limit 1")
                .bind(org)
                .bind(e.as_str()),
        )
        .await?;
        rows.first().map(|r| r.uuid("root_id")).transpose()
    }

    /// Renders step `step`, variant `variant` (both from 0) of `campaign`
    /// for a real customer, as the engine would, without sending. The cart
    /// comes from their latest enrollment in this campaign (`campaign_id`)
    /// or else their latest open checkout. `Ok(Err(sentence))` when the
    /// message cannot be rendered for them (a missing value); NotFound when
    /// the customer is not this tenant's. Its links are built by `links`
    /// with the token `preview`, which names no message.
    #[allow(clippy::too_many_arguments)]
    pub async fn preview(
        &self,
        org: Uuid,
        campaign_id: Option<Uuid>,
        campaign: &Campaign,
        step: usize,
        variant: usize,
        profile: Uuid,
        links: &dyn MessageLinks,
    ) -> Result<Result<Preview, String>, StoreError> {
        let root = self.root_of(org, profile).await?;
        let Some(s) = campaign.steps.get(step) else {
            return Ok(Err(format!(
                "the campaign has no step {}; pick one from 1 to {}",
                step + 1,
                campaign.steps.len()
            )));
        };
        let Some(v) = s.variants.get(variant) else {
            return Ok(Err(format!(
                "step {} has no variant {}; pick one from 1 to {}",
                step + 1,
                variant + 1,
                s.variants.len()
            )));
        };
        let (person, ctx) = write_db!(self, |db| async move {
            let person = load_person(db, org, root).await?;
            let mut ctx = Value::Object(Default::default());
            if let Some(cid) = campaign_id {
                let r = db
                    .opt(
                        q("select context from enrollments where org_id = $1 and campaign_id = $2 and profile_id = $3 \
                           order by started_at desc limit 1")
                        .bind(org)
                        .bind(cid)
                        .bind(root),
                    )
                    .await?;
                if let Some(r) = r {
                    ctx = serde_json::from_str(&r.text("context")?).unwrap_or(ctx);
                }
            }
            if ctx.get("cart_url").is_none() {
                let r = db
                    .opt(
                        q("select url, total_cents, currency from checkouts where org_id = $1 and status = 'open' \
                           and profile_id in (select id from profiles where org_id = $1 and root_id = $2) \
                           order by updated_at desc limit 1")
                        .bind(org)
                        .bind(root),
                    )
                    .await?;
                if let Some(r) = r {
                    let currency = r.opt_text("currency")?;
                    let total = r
                        .opt_i64("total_cents")?
                        .map(|t| money_text(t, currency.as_deref()));
                    ctx = json!({ "cart_url": r.opt_text("url")?, "cart_total": total });
                }
            }
            Ok((person, ctx))
        })?;
        let resolved = match s.channel {
            Channel::Preferred => preferred(&person),
            c => c,
        };
        let to = match resolved {
            Channel::Sms => person.phone.clone(),
            _ => person.email.clone(),
        };
        Ok(
            match build(v, resolved, &person, &ctx, links, "preview", true) {
                Ok(b) => Ok(Preview {
                    channel: channel_str(resolved).to_string(),
                    to,
                    subject: b.subject,
                    text: b.text,
                    html: b.html,
                }),
                Err(e) => Err(e.to_string()),
            },
        )
    }
}

/// One step execution, as tests and the engine's benchmarks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub id: Uuid,
    pub enrollment_id: Uuid,
    pub profile_id: Uuid,
    pub step: i64,
    pub channel: String,
    pub status: String,
    pub attempts: i64,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub message_id: String,
    pub token: String,
    pub error: Option<String>,
    pub sent_at: Option<Millis>,
    pub converted_at: Option<Millis>,
    pub replied_at: Option<Millis>,
    pub created_at: Millis,
}

impl crate::Store {
    /// A campaign's executions, oldest first (at most `limit`).
    pub async fn campaign_executions(
        &self,
        org: Uuid,
        campaign: Uuid,
        limit: u32,
    ) -> Result<Vec<Execution>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select id, enrollment_id, profile_id, step, channel, status, attempts, to_addr, subject, body, \
               message_id, token, error, sent_at, converted_at, replied_at, created_at from nudge_executions \
               where org_id = $1 and campaign_id = $2 order by created_at, id limit $3")
            .bind(org)
            .bind(campaign)
            .bind(i64::from(limit)),
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Execution {
                    id: r.uuid("id")?,
                    enrollment_id: r.uuid("enrollment_id")?,
                    profile_id: r.uuid("profile_id")?,
                    step: r.i64("step")?,
                    channel: parse_channel(&r.text("channel")?)?.as_str().to_string(),
                    status: ExecutionStatus::stored(&r.text("status")?)?
                        .as_str()
                        .to_string(),
                    attempts: r.i64("attempts")?,
                    to: r.text("to_addr")?,
                    subject: r.opt_text("subject")?,
                    body: r.text("body")?,
                    message_id: r.text("message_id")?,
                    token: r.text("token")?,
                    error: r.opt_text("error")?,
                    sent_at: r.opt_i64("sent_at")?,
                    converted_at: r.opt_i64("converted_at")?,
                    replied_at: r.opt_i64("replied_at")?,
                    created_at: r.i64("created_at")?,
                })
            })
            .collect()
    }

    /// An enrollment's status and stop reason.
    pub async fn enrollment_status(
        &self,
        org: Uuid,
        enrollment: Uuid,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select status, stop_reason from enrollments where org_id = $1 and id = $2")
                .bind(org)
                .bind(enrollment),
        )
        .await?;
        rows.first()
            .map(|r| Ok((r.text("status")?, r.opt_text("stop_reason")?)))
            .transpose()
    }
}
