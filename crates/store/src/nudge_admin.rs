//! Managing the nudge engine: campaigns saved from the
//! builder and the API, their status, live stats and funnels, the
//! development sink's outbox, a customer's enrollments and executions, the
//! tenant's nudge settings, and previews rendered for a real customer. The
//! engine that sends lives in `nudge.rs`; this module only reads what it
//! wrote, and writes campaign definitions and status changes.

use crate::engine::write_db;
use crate::nudge::{
    build, load_person, save_enrollment, CampaignStatus, NudgeSettings, StepFunnel,
};
use crate::sql::{q, read_rows, Db, Row};
use crate::{new_id, StoreError};
use bos_core::nudge::{Campaign, Channel, Enrollment, Event};
use bos_core::Millis;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// How many of the most recently active customers are read for the names
/// of their custom traits.
const TRAIT_SAMPLE: i64 = 2_000;

/// A stored campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRow {
    pub id: Uuid,
    pub status: CampaignStatus,
    pub campaign: Campaign,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Live figures of one campaign: enrollments, and sums over its executions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignStats {
    /// Customers in the campaign now.
    pub active: i64,
    /// Everyone who ever entered it.
    pub enrolled: i64,
    /// Handed to a provider: sent, delivered, undelivered, or unknown.
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub replied: i64,
    pub converted: i64,
    pub failed: i64,
    pub converted_cents: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSummary {
    pub row: CampaignRow,
    pub stats: CampaignStats,
}

/// Sends and conversions of one variant of one step: the A/B comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantStat {
    /// From 0.
    pub step: i64,
    pub variant: String,
    pub sent: i64,
    pub converted: i64,
}

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
    /// `completed`, `converted`, `replied`, `opted_out` or `removed`.
    pub stop_reason: Option<String>,
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

const EXEC_COLS: &str = "x.id, x.campaign_id, coalesce(c.name, ''), x.enrollment_id, x.profile_id, x.step, \
     x.variant_name, x.channel, x.status, x.provider, x.error, x.to_addr, x.subject, x.body, x.created_at, \
     x.sent_at, x.delivered_at, x.opened_at, x.clicked_at, x.replied_at, x.converted_at, x.converted_cents";

const EXEC_FROM: &str =
    "from nudge_executions x left join campaigns c on c.org_id = x.org_id and c.id = x.campaign_id";

fn execution(r: &Row) -> Result<ExecutionRow, StoreError> {
    Ok(ExecutionRow {
        id: r.uuid(0)?,
        campaign_id: r.uuid(1)?,
        campaign_name: r.text(2)?,
        enrollment_id: r.uuid(3)?,
        profile_id: r.uuid(4)?,
        step: r.i64(5)?,
        variant: r.text(6)?,
        channel: r.text(7)?,
        status: r.text(8)?,
        provider: r.opt_text(9)?,
        error: r.opt_text(10)?,
        to: r.text(11)?,
        subject: r.opt_text(12)?,
        body: r.text(13)?,
        created_at: r.i64(14)?,
        sent_at: r.opt_i64(15)?,
        delivered_at: r.opt_i64(16)?,
        opened_at: r.opt_i64(17)?,
        clicked_at: r.opt_i64(18)?,
        replied_at: r.opt_i64(19)?,
        converted_at: r.opt_i64(20)?,
        converted_cents: r.opt_i64(21)?,
    })
}

const CAMPAIGN_COLS: &str = "id, status, definition, created_at, updated_at";

fn campaign_row(r: &Row) -> Result<CampaignRow, StoreError> {
    let status = r.text(1)?;
    Ok(CampaignRow {
        id: r.uuid(0)?,
        status: CampaignStatus::parse(&status)
            .ok_or_else(|| StoreError::Other(format!("campaign status {status:?}")))?,
        campaign: serde_json::from_str(&r.text(2)?)
            .map_err(|e| StoreError::Other(format!("campaign definition: {e}")))?,
        created_at: r.i64(3)?,
        updated_at: r.i64(4)?,
    })
}

/// The sums over executions, columns 1.. of a row grouped by `group`.
const STAT_SUMS: &str =
    "count(case when status in ('sent', 'delivered', 'undelivered', 'unknown') then 1 end), \
     count(case when status = 'delivered' or delivered_at is not null then 1 end), \
     count(opened_at), count(clicked_at), count(replied_at), count(converted_at), \
     count(case when status = 'failed' then 1 end), \
     count(case when status = 'unknown' then 1 end), \
     count(case when status in ('sending', 'retrying') then 1 end), \
     cast(coalesce(sum(converted_cents), 0) as bigint)";

fn funnel_of(step: i64, r: &Row) -> Result<StepFunnel, StoreError> {
    Ok(StepFunnel {
        step,
        sent: r.i64(1)?,
        delivered: r.i64(2)?,
        opened: r.i64(3)?,
        clicked: r.i64(4)?,
        replied: r.i64(5)?,
        converted: r.i64(6)?,
        failed: r.i64(7)?,
        unknown: r.i64(8)?,
        pending: r.i64(9)?,
        converted_cents: r.i64(10)?,
    })
}

fn definition(c: &Campaign) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

fn trigger_event(c: &Campaign) -> Option<String> {
    match &c.trigger {
        bos_core::nudge::Trigger::Event { name } => Some(name.trim().to_string()),
        _ => None,
    }
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
    /// Saves a new campaign; the caller validated it.
    pub async fn create_campaign(
        &self,
        org: Uuid,
        campaign: &Campaign,
        status: CampaignStatus,
        now: Millis,
    ) -> Result<Uuid, StoreError> {
        let id = new_id();
        let c = campaign.clone();
        write_db!(self, |db| async move {
            db.exec(
                q("insert into campaigns (org_id, id, name, trigger_kind, trigger_event, definition, status, \
                   created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $8)")
                .bind(org)
                .bind(id)
                .bind(c.name.trim())
                .bind(crate::nudge::trigger_kind(&c.trigger))
                .bind(trigger_event(&c))
                .bind(definition(&c))
                .bind(status.as_str())
                .bind(now),
            )
            .await?;
            Ok(id)
        })
    }

    /// Replaces a campaign's definition (its status stays). Enrollments
    /// keep their place: the next step they reach is the edited one.
    pub async fn update_campaign(
        &self,
        org: Uuid,
        id: Uuid,
        campaign: &Campaign,
        now: Millis,
    ) -> Result<(), StoreError> {
        let c = campaign.clone();
        write_db!(self, |db| async move {
            let n = db
                .exec(
                    q("update campaigns set name = $3, trigger_kind = $4, trigger_event = $5, definition = $6, \
                       updated_at = $7 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(id)
                    .bind(c.name.trim())
                    .bind(crate::nudge::trigger_kind(&c.trigger))
                    .bind(trigger_event(&c))
                    .bind(definition(&c))
                    .bind(now),
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    /// Moves a campaign to `status`. Resuming (to active from paused) sets
    /// the step timers of its waiting enrollments again and returns them,
    /// for the caller to wake the scheduler; archiving ends every active
    /// enrollment, in the same transaction as the status change.
    pub async fn set_campaign_status(
        &self,
        org: Uuid,
        id: Uuid,
        status: CampaignStatus,
        now: Millis,
    ) -> Result<Vec<Millis>, StoreError> {
        let before = write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select status, definition from campaigns where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(id),
                )
                .await?;
            let Some(r) = r else {
                return Err(StoreError::NotFound);
            };
            let before = r.text(0)?;
            db.exec(
                q("update campaigns set status = $3, updated_at = $4 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(id)
                    .bind(status.as_str())
                    .bind(now),
            )
            .await?;
            if status == CampaignStatus::Archived {
                let campaign: Campaign = serde_json::from_str(&r.text(1)?)
                    .map_err(|e| StoreError::Other(format!("campaign definition: {e}")))?;
                let rows = db
                    .rows(
                        q("select id, state from enrollments where org_id = $1 and campaign_id = $2 \
                           and status = 'active'")
                        .bind(org)
                        .bind(id),
                    )
                    .await?;
                for e in rows {
                    let eid = e.uuid(0)?;
                    let Ok(mut state) = serde_json::from_str::<Enrollment>(&e.text(1)?) else {
                        continue;
                    };
                    state.on_event(&campaign, Event::Removed);
                    save_enrollment(db, org, eid, &state, now).await?;
                }
            }
            Ok(before)
        })?;
        if status == CampaignStatus::Active && before != "active" {
            return self.rearm_campaign(org, id, now).await;
        }
        Ok(Vec::new())
    }

    /// The tenant's campaigns, newest first, with their live figures.
    /// Archived ones come last.
    pub async fn campaigns(&self, org: Uuid) -> Result<Vec<CampaignSummary>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {CAMPAIGN_COLS} from campaigns where org_id = $1 \
                 order by case when status = 'archived' then 1 else 0 end, created_at desc"
            ))
            .bind(org),
        )
        .await?;
        let enrolled = read_rows(
            self,
            q(
                "select campaign_id, count(case when status = 'active' then 1 end), count(*) \
               from enrollments where org_id = $1 group by campaign_id",
            )
            .bind(org),
        )
        .await?;
        let sums = read_rows(
            self,
            q(format!(
                "select campaign_id, {STAT_SUMS} from nudge_executions where org_id = $1 group by campaign_id"
            ))
            .bind(org),
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = campaign_row(r)?;
            let mut stats = CampaignStats::default();
            for e in &enrolled {
                if e.uuid(0)? == row.id {
                    stats.active = e.i64(1)?;
                    stats.enrolled = e.i64(2)?;
                }
            }
            for s in &sums {
                if s.uuid(0)? == row.id {
                    let f = funnel_of(0, s)?;
                    stats.sent = f.sent;
                    stats.delivered = f.delivered;
                    stats.opened = f.opened;
                    stats.clicked = f.clicked;
                    stats.replied = f.replied;
                    stats.converted = f.converted;
                    stats.failed = f.failed;
                    stats.converted_cents = f.converted_cents;
                }
            }
            out.push(CampaignSummary { row, stats });
        }
        Ok(out)
    }

    /// One campaign's live figures (zeros for a campaign of nobody).
    pub async fn campaign_stats(&self, org: Uuid, id: Uuid) -> Result<CampaignStats, StoreError> {
        let e = read_rows(
            self,
            q(
                "select count(case when status = 'active' then 1 end), count(*) \
               from enrollments where org_id = $1 and campaign_id = $2",
            )
            .bind(org)
            .bind(id),
        )
        .await?;
        let x = read_rows(
            self,
            q(format!(
                "select 0, {STAT_SUMS} from nudge_executions where org_id = $1 and campaign_id = $2"
            ))
            .bind(org)
            .bind(id),
        )
        .await?;
        let mut stats = CampaignStats::default();
        if let Some(r) = e.first() {
            stats.active = r.i64(0)?;
            stats.enrolled = r.i64(1)?;
        }
        if let Some(r) = x.first() {
            let f = funnel_of(0, r)?;
            stats.sent = f.sent;
            stats.delivered = f.delivered;
            stats.opened = f.opened;
            stats.clicked = f.clicked;
            stats.replied = f.replied;
            stats.converted = f.converted;
            stats.failed = f.failed;
            stats.converted_cents = f.converted_cents;
        }
        Ok(stats)
    }

    /// One campaign of this tenant.
    pub async fn campaign(&self, org: Uuid, id: Uuid) -> Result<Option<CampaignRow>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {CAMPAIGN_COLS} from campaigns where org_id = $1 and id = $2"
            ))
            .bind(org)
            .bind(id),
        )
        .await?;
        rows.first().map(campaign_row).transpose()
    }

    /// Per-step figures, one row for every step of the campaign's current
    /// definition (zeros where nothing was sent yet). NotFound when the
    /// campaign is not this tenant's.
    pub async fn campaign_funnel(
        &self,
        org: Uuid,
        id: Uuid,
    ) -> Result<Vec<StepFunnel>, StoreError> {
        let c = self.campaign(org, id).await?.ok_or(StoreError::NotFound)?;
        let rows = read_rows(
            self,
            q(format!(
                "select step, {STAT_SUMS} from nudge_executions where org_id = $1 and campaign_id = $2 \
                 group by step"
            ))
            .bind(org)
            .bind(id),
        )
        .await?;
        let mut out: Vec<StepFunnel> = (0..c.campaign.steps.len() as i64)
            .map(|step| StepFunnel {
                step,
                ..StepFunnel::default()
            })
            .collect();
        for r in &rows {
            let step = r.i64(0)?;
            let f = funnel_of(step, r)?;
            match out.iter_mut().find(|s| s.step == step) {
                Some(slot) => *slot = f,
                // A step removed from the definition after it sent.
                None => out.push(f),
            }
        }
        Ok(out)
    }

    /// Sends and conversions per step and variant, in step order.
    pub async fn variant_stats(&self, org: Uuid, id: Uuid) -> Result<Vec<VariantStat>, StoreError> {
        let rows = read_rows(
            self,
            q("select step, variant_name, \
               count(case when status in ('sent', 'delivered', 'undelivered', 'unknown') then 1 end), \
               count(converted_at) from nudge_executions where org_id = $1 and campaign_id = $2 \
               group by step, variant_name order by step, variant_name")
            .bind(org)
            .bind(id),
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VariantStat {
                    step: r.i64(0)?,
                    variant: r.text(1)?,
                    sent: r.i64(2)?,
                    converted: r.i64(3)?,
                })
            })
            .collect()
    }

    /// A campaign's latest executions, newest first.
    pub async fn recent_executions(
        &self,
        org: Uuid,
        campaign: Uuid,
        limit: i64,
    ) -> Result<Vec<ExecutionRow>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {EXEC_COLS} {EXEC_FROM} where x.org_id = $1 and x.campaign_id = $2 \
                 order by x.created_at desc, x.id desc limit $3"
            ))
            .bind(org)
            .bind(campaign)
            .bind(limit),
        )
        .await?;
        rows.iter().map(execution).collect()
    }

    /// The development sink's messages, newest first.
    pub async fn outbox(&self, org: Uuid, limit: i64) -> Result<Vec<ExecutionRow>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {EXEC_COLS} {EXEC_FROM} where x.org_id = $1 and x.provider = 'dev' \
                 order by x.created_at desc, x.id desc limit $2"
            ))
            .bind(org)
            .bind(limit),
        )
        .await?;
        rows.iter().map(execution).collect()
    }

    /// Every execution sent to this customer (and to profiles merged into
    /// them), newest first.
    pub async fn executions_for_profile(
        &self,
        org: Uuid,
        profile: Uuid,
    ) -> Result<Vec<ExecutionRow>, StoreError> {
        let root = self.root_of(org, profile).await?;
        let rows = read_rows(
            self,
            q(format!(
                "select {EXEC_COLS} {EXEC_FROM} where x.org_id = $1 and x.profile_id in \
                 (select id from profiles where org_id = $1 and root_id = $2) \
                 order by x.created_at desc, x.id desc limit 200"
            ))
            .bind(org)
            .bind(root),
        )
        .await?;
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
            q("select e.id, e.campaign_id, coalesce(c.name, ''), e.profile_id, e.status, e.stop_reason, e.state, \
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
                let state: Value = serde_json::from_str(&r.text(6)?).unwrap_or_default();
                Ok(EnrollmentRow {
                    id: r.uuid(0)?,
                    campaign_id: r.uuid(1)?,
                    campaign_name: r.text(2)?,
                    profile_id: r.uuid(3)?,
                    status: r.text(4)?,
                    stop_reason: r.opt_text(5)?,
                    step_index: state.get("step_index").and_then(Value::as_i64).unwrap_or(0),
                    next_due: r.opt_i64(7)?,
                    started_at: r.i64(8)?,
                    ended_at: r.opt_i64(9)?,
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
            .map(|r| Ok((r.uuid(0)?, r.uuid(1)?)))
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
        rows.first().ok_or(StoreError::NotFound)?.uuid(0)
    }

    /// The tenant's nudge settings (defaults until saved).
    pub async fn nudge_settings(&self, org: Uuid) -> Result<NudgeSettings, StoreError> {
        let rows = read_rows(self, q(crate::nudge::SETTINGS_SQL).bind(org)).await?;
        crate::nudge::settings_row(rows.first())
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
                q("insert into nudge_settings (org_id, timezone, email_window_ms, sms_window_ms, updated_at) \
                   values ($1, $2, $3, $4, $5) on conflict (org_id) do update set timezone = excluded.timezone, \
                   email_window_ms = excluded.email_window_ms, sms_window_ms = excluded.sms_window_ms, \
                   updated_at = excluded.updated_at")
                .bind(org)
                .bind(s.timezone.as_str())
                .bind(s.windows.email_ms)
                .bind(s.windows.sms_ms)
                .bind(now),
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
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&r.text(0)?) {
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
            return Ok(Some(r.uuid(0)?));
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
        any.first().map(|r| r.uuid(0)).transpose()
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
            return Ok(Some(r.uuid(0)?));
        }
        let rows = read_rows(
            self,
            q("select root_id from profiles where org_id = $1 and lower(primary_email) = $2 limit 1")
                .bind(org)
                .bind(e.as_str()),
        )
        .await?;
        rows.first().map(|r| r.uuid(0)).transpose()
    }

    /// Renders step `step`, variant `variant` (both from 0) of `campaign`
    /// for a real customer, as the engine would, without sending. The cart
    /// comes from their latest enrollment in this campaign (`campaign_id`)
    /// or else their latest open checkout. `Ok(Err(sentence))` when the
    /// message cannot be rendered for them (a missing value); NotFound when
    /// the customer is not this tenant's.
    #[allow(clippy::too_many_arguments)]
    pub async fn preview(
        &self,
        org: Uuid,
        campaign_id: Option<Uuid>,
        campaign: &Campaign,
        step: usize,
        variant: usize,
        profile: Uuid,
        base_url: &str,
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
        let v = v.clone();
        let channel = s.channel;
        let base = base_url.to_string();
        write_db!(self, |db| async move {
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
                    ctx = serde_json::from_str(&r.text(0)?).unwrap_or(ctx);
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
                    let currency = r.opt_text(2)?;
                    let total = r.opt_i64(1)?.map(|t| money_text(t, currency.as_deref()));
                    ctx = json!({ "cart_url": r.opt_text(0)?, "cart_total": total });
                }
            }
            let resolved = match channel {
                Channel::Preferred => crate::nudge::preferred(&person),
                c => c,
            };
            let to = match resolved {
                Channel::Sms => person.phone.clone(),
                _ => person.email.clone(),
            };
            Ok(
                match build(&v, resolved, &person, &ctx, &base, "preview", true) {
                    Ok(b) => Ok(Preview {
                        channel: crate::nudge::channel_str(resolved).to_string(),
                        to,
                        subject: b.subject,
                        text: b.text,
                        html: b.html,
                    }),
                    Err(e) => Err(e.to_string()),
                },
            )
        })
    }
}
