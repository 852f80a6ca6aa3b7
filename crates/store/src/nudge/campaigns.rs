//! Campaigns as the builder and the API save them, their status moves
//! (resuming sets waiting enrollments' timers again, archiving ends them),
//! and their live figures: enrollments, the per-step funnel, and the A/B
//! comparison of variants.

use super::{save_enrollment, trigger_kind, CampaignStatus, SkipCount, StepFunnel};
use crate::engine::write_db;
use crate::sql::{q, read_rows, Db, Row};
use crate::{new_id, StoreError};
use bos_core::nudge::{Campaign, Enrollment, Event, SkipReason, Trigger};
use bos_core::Millis;
use serde::Serialize;
use uuid::Uuid;

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
    /// Customers the trigger caught but the campaign did not enroll, by
    /// reason: `no_address` and `opted_out` (not reachable), `stopped` (a
    /// conversion, loss, reply or opt-out within the campaign's window).
    pub not_enrolled: Vec<SkipCount>,
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

const CAMPAIGN_COLS: &str = "id, status, definition, created_at, updated_at";

fn campaign_row(r: &Row) -> Result<CampaignRow, StoreError> {
    Ok(CampaignRow {
        id: r.uuid("id")?,
        status: CampaignStatus::stored(&r.text("status")?)?,
        campaign: serde_json::from_str(&r.text("definition")?)
            .map_err(|e| StoreError::Other(format!("campaign definition: {e}")))?,
        created_at: r.i64("created_at")?,
        updated_at: r.i64("updated_at")?,
    })
}

/// The sums over executions, named as [`funnel_of`] reads them.
const STAT_SUMS: &str =
    "count(case when status in ('sent', 'delivered', 'undelivered', 'unknown') then 1 end) as sent, \
     count(case when status = 'delivered' or delivered_at is not null then 1 end) as delivered, \
     count(opened_at) as opened, count(clicked_at) as clicked, count(replied_at) as replied, \
     count(converted_at) as converted, \
     count(case when status = 'failed' then 1 end) as failed, \
     count(case when status = 'unknown' then 1 end) as unknown, \
     count(case when status in ('sending', 'retrying') then 1 end) as pending, \
     cast(coalesce(sum(converted_cents), 0) as bigint) as converted_cents";

/// Adds rows of `reason` and `n` to counts (all reasons, zeros first).
fn add_skips<'a>(
    counts: &mut Vec<SkipCount>,
    rows: impl IntoIterator<Item = &'a Row>,
) -> Result<(), StoreError> {
    if counts.is_empty() {
        *counts = SkipCount::zeros();
    }
    for r in rows {
        let reason = r.parsed("reason", SkipReason::parse)?;
        if let Some(c) = counts.iter_mut().find(|c| c.reason == reason.as_str()) {
            c.count += r.i64("n")?;
        }
    }
    Ok(())
}

fn funnel_of(step: i64, r: &Row) -> Result<StepFunnel, StoreError> {
    Ok(StepFunnel {
        step,
        sent: r.i64("sent")?,
        delivered: r.i64("delivered")?,
        opened: r.i64("opened")?,
        clicked: r.i64("clicked")?,
        replied: r.i64("replied")?,
        converted: r.i64("converted")?,
        failed: r.i64("failed")?,
        unknown: r.i64("unknown")?,
        pending: r.i64("pending")?,
        converted_cents: r.i64("converted_cents")?,
        skipped: Vec::new(),
    })
}

/// The counts of enrollments, named as [`CampaignStats::read`] reads them.
const ENROLLED_COUNTS: &str =
    "count(case when status = 'active' then 1 end) as active, count(*) as enrolled";

impl CampaignStats {
    /// A campaign's figures from its row of [`ENROLLED_COUNTS`] and its row
    /// of [`STAT_SUMS`] (zeros for what is missing).
    fn read(enrolled: Option<&Row>, sums: Option<&Row>) -> Result<CampaignStats, StoreError> {
        let mut stats = CampaignStats {
            not_enrolled: SkipCount::zeros(),
            ..CampaignStats::default()
        };
        if let Some(r) = enrolled {
            stats.active = r.i64("active")?;
            stats.enrolled = r.i64("enrolled")?;
        }
        if let Some(r) = sums {
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
}

fn definition(c: &Campaign) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

fn trigger_event(c: &Campaign) -> Option<String> {
    match &c.trigger {
        Trigger::Event { name } => Some(name.trim().to_string()),
        _ => None,
    }
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
                   created_at, updated_at, priority) values ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)")
                .bind(org)
                .bind(id)
                .bind(c.name.trim())
                .bind(trigger_kind(&c.trigger))
                .bind(trigger_event(&c))
                .bind(definition(&c))
                .bind(status.as_str())
                .bind(now)
                .bind(i64::from(c.priority)),
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
                       updated_at = $7, priority = $8 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(id)
                    .bind(c.name.trim())
                    .bind(trigger_kind(&c.trigger))
                    .bind(trigger_event(&c))
                    .bind(definition(&c))
                    .bind(now)
                    .bind(i64::from(c.priority)),
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
            let before = CampaignStatus::stored(&r.text("status")?)?;
            db.exec(
                q("update campaigns set status = $3, updated_at = $4 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(id)
                    .bind(status.as_str())
                    .bind(now),
            )
            .await?;
            if status == CampaignStatus::Archived {
                let campaign: Campaign = serde_json::from_str(&r.text("definition")?)
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
                    let eid = e.uuid("id")?;
                    let Ok(mut state) = serde_json::from_str::<Enrollment>(&e.text("state")?)
                    else {
                        continue;
                    };
                    state.on_event(&campaign, Event::Removed);
                    save_enrollment(db, org, eid, &state, now).await?;
                }
            }
            Ok(before)
        })?;
        if status == CampaignStatus::Active && before != CampaignStatus::Active {
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
            q(format!(
                "select campaign_id, {ENROLLED_COUNTS} from enrollments where org_id = $1 \
                 group by campaign_id"
            ))
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
        let skips = read_rows(
            self,
            q("select campaign_id, reason, count(*) as n from nudge_skips where org_id = $1 and step is null \
               group by campaign_id, reason")
            .bind(org),
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = campaign_row(r)?;
            let mine = |rows: &[Row]| -> Result<Option<usize>, StoreError> {
                for (i, x) in rows.iter().enumerate() {
                    if x.uuid("campaign_id")? == row.id {
                        return Ok(Some(i));
                    }
                }
                Ok(None)
            };
            let e = mine(&enrolled)?.map(|i| &enrolled[i]);
            let x = mine(&sums)?.map(|i| &sums[i]);
            let mut stats = CampaignStats::read(e, x)?;
            let own = skips
                .iter()
                .filter(|s| s.uuid("campaign_id").is_ok_and(|c| c == row.id));
            add_skips(&mut stats.not_enrolled, own)?;
            out.push(CampaignSummary { row, stats });
        }
        Ok(out)
    }

    /// One campaign's live figures (zeros for a campaign of nobody).
    pub async fn campaign_stats(&self, org: Uuid, id: Uuid) -> Result<CampaignStats, StoreError> {
        let e = read_rows(
            self,
            q(format!(
                "select {ENROLLED_COUNTS} from enrollments where org_id = $1 and campaign_id = $2"
            ))
            .bind(org)
            .bind(id),
        )
        .await?;
        let x = read_rows(
            self,
            q(format!(
                "select {STAT_SUMS} from nudge_executions where org_id = $1 and campaign_id = $2"
            ))
            .bind(org)
            .bind(id),
        )
        .await?;
        let mut stats = CampaignStats::read(e.first(), x.first())?;
        let skips = read_rows(
            self,
            q("select reason, count(*) as n from nudge_skips where org_id = $1 and campaign_id = $2 \
               and step is null group by reason")
            .bind(org)
            .bind(id),
        )
        .await?;
        add_skips(&mut stats.not_enrolled, &skips)?;
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
        let skips = read_rows(
            self,
            q("select step, reason, count(*) as n from nudge_skips where org_id = $1 and campaign_id = $2 \
               and step is not null group by step, reason")
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
            let step = r.i64("step")?;
            let f = funnel_of(step, r)?;
            match out.iter_mut().find(|s| s.step == step) {
                Some(slot) => *slot = f,
                // A step removed from the definition after it sent.
                None => out.push(f),
            }
        }
        for r in &skips {
            let step = r.i64("step")?;
            let slot = match out.iter().position(|s| s.step == step) {
                Some(i) => i,
                None => {
                    out.push(StepFunnel {
                        step,
                        ..StepFunnel::default()
                    });
                    out.len() - 1
                }
            };
            add_skips(&mut out[slot].skipped, [r])?;
        }
        for f in &mut out {
            if f.skipped.is_empty() {
                f.skipped = SkipCount::zeros();
            }
        }
        out.sort_by_key(|f| f.step);
        Ok(out)
    }

    /// Sends and conversions per step and variant, in step order.
    pub async fn variant_stats(&self, org: Uuid, id: Uuid) -> Result<Vec<VariantStat>, StoreError> {
        let rows = read_rows(
            self,
            q("select step, variant_name, \
               count(case when status in ('sent', 'delivered', 'undelivered', 'unknown') then 1 end) as sent, \
               count(converted_at) as converted from nudge_executions where org_id = $1 and campaign_id = $2 \
               group by step, variant_name order by step, variant_name")
            .bind(org)
            .bind(id),
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VariantStat {
                    step: r.i64("step")?,
                    variant: r.text("variant_name")?,
                    sent: r.i64("sent")?,
                    converted: r.i64("converted")?,
                })
            })
            .collect()
    }

    /// Stores a campaign under a known id, replacing its definition and
    /// status if it exists: for seeding (the demo) and tests. The caller
    /// validates the campaign first.
    pub async fn put_campaign(
        &self,
        org: Uuid,
        id: Uuid,
        campaign: &Campaign,
        status: CampaignStatus,
        now: Millis,
    ) -> Result<(), StoreError> {
        let def = serde_json::to_string(campaign).map_err(|e| StoreError::Other(e.to_string()))?;
        let name = campaign.name.trim().to_string();
        let kind = trigger_kind(&campaign.trigger);
        let priority = i64::from(campaign.priority);
        let event = match &campaign.trigger {
            Trigger::Event { name } => Some(name.clone()),
            _ => None,
        };
        write_db!(self, |db| async move {
            db.exec(
                q("insert into campaigns (org_id, id, name, trigger_kind, trigger_event, definition, status, created_at, updated_at, priority) \
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) on conflict (org_id, id) do update set name = excluded.name, \
                   trigger_kind = excluded.trigger_kind, trigger_event = excluded.trigger_event, \
                   definition = excluded.definition, status = excluded.status, updated_at = excluded.updated_at, \
                   priority = excluded.priority")
                .bind(org)
                .bind(id)
                .bind(name)
                .bind(kind)
                .bind(event)
                .bind(def)
                .bind(status.as_str())
                .bind(now)
                .bind(priority),
            )
            .await?;
            Ok(())
        })
    }
}
