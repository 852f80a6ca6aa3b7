//! Entering and leaving campaigns: a trigger enrolls a customer in every
//! active campaign it starts (minding re-entry cooldowns), an event (a
//! conversion, a reply, an opt-out, a person's removal) ends the
//! enrollments that stop on it, and a conversion is credited to the nudge
//! the attribution rule picks. These run inside the transactions that
//! observe the trigger or the stop.

use super::{
    load_person, load_settings, load_stop_facts, opt_outs_of, parse_channel, record_skip,
    stop_reason_str, timeline, ENROLLMENT_ACTIVE, ENROLLMENT_STOPPED, STEP_JOB,
};
use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::{new_id, StoreError};
use bos_core::nudge::{
    self, attribute, Campaign, Enrollment, Event, Reach, SkipReason, Touch, Trigger,
};
use bos_core::Millis;
use serde_json::{json, Value};
use uuid::Uuid;

pub(crate) async fn set_step_timer<D: Db>(
    db: &mut D,
    org: Uuid,
    enrollment: Uuid,
    run_at: Millis,
    now: Millis,
    timers: &mut Vec<Millis>,
) -> Result<(), StoreError> {
    crate::timers::set(
        db,
        org,
        STEP_JOB,
        &format!("enroll:{enrollment}"),
        json!({ "enrollment_id": enrollment }).to_string(),
        run_at,
        now,
    )
    .await?;
    timers.push(run_at);
    Ok(())
}

/// Enrolls `root` in every active campaign with this trigger (and event
/// name), unless already in it or inside its re-entry cooldown. Two more
/// gates hold, each counted in the campaign's funnel and shown on the
/// customer's timeline when it keeps them out: a stop within the
/// campaign's window (a conversion, a loss, a reply, an opt-out; see
/// [`nudge::stop_before_enrolling`]), and reachability (some step must
/// have a channel they have an address on and did not opt out of). `ctx`
/// holds what the trigger knows (`cart_url`, `cart_total`), for templates.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn trigger_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    kind: &str,
    event_name: Option<&str>,
    ctx: &Value,
    at: Millis,
    now: Millis,
    timers: &mut Vec<Millis>,
) -> Result<usize, StoreError> {
    let campaigns = db
        .rows(
            q("select id, definition, name from campaigns where org_id = $1 and trigger_kind = $2 and status = 'active'")
                .bind(org)
                .bind(kind),
        )
        .await?;
    if campaigns.is_empty() {
        return Ok(0);
    }
    let person = load_person(db, org, root).await?;
    let opt_outs = opt_outs_of(db, org, &person).await?;
    let opted: Vec<_> = opt_outs.iter().map(|(c, _)| *c).collect();
    let reach = Reach {
        has_email: person.email.is_some(),
        has_phone: person.phone.is_some(),
        opted_out: opted.clone(),
    };
    let facts = load_stop_facts(db, org, root, opt_outs).await?;
    let mut enrolled = 0;
    for c in campaigns {
        let cid = c.uuid("id")?;
        let Ok(campaign) = serde_json::from_str::<Campaign>(&c.text("definition")?) else {
            continue;
        };
        if let (Trigger::Event { name }, Some(ev)) = (&campaign.trigger, event_name) {
            if name.trim() != ev.trim() {
                continue;
            }
        }
        let last = db
            .opt(
                q("select status, ended_at from enrollments where org_id = $1 and campaign_id = $2 and profile_id = $3 \
                   order by started_at desc limit 1")
                .bind(org)
                .bind(cid)
                .bind(root),
            )
            .await?;
        if let Some(l) = last {
            if l.text("status")? == ENROLLMENT_ACTIVE {
                continue;
            }
            if let Some(ended) = l.opt_i64("ended_at")? {
                if !nudge::can_reenter(&campaign, now, ended) {
                    continue;
                }
            }
        }
        let name = c.text("name")?;
        let gate = match (
            nudge::stop_before_enrolling(&campaign, &facts, at),
            nudge::unreachable(&campaign, &reach),
        ) {
            (Some(stop), _) => Some((SkipReason::Stopped, stop.label().to_string())),
            (None, Some(why)) => Some((why, format!("not reachable: {}", why.label()))),
            (None, None) => None,
        };
        if let Some((reason, why)) = gate {
            let summary = format!("Not entered campaign \u{201c}{name}\u{201d}: {why}");
            record_skip(db, org, cid, root, None, None, reason, &summary, now).await?;
            continue;
        }
        let id = new_id();
        let mut e = Enrollment::new(
            cid.to_string(),
            root.to_string(),
            id.to_string(),
            opted.clone(),
        );
        e.on_trigger(&campaign, at);
        let inserted = db
            .exec(
                q("insert into enrollments (org_id, id, campaign_id, profile_id, state, status, context, next_due, \
                   started_at, updated_at) values ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $8) on conflict do nothing")
                .bind(org)
                .bind(id)
                .bind(cid)
                .bind(root)
                .bind(serde_json::to_string(&e).unwrap_or_default())
                .bind(ctx.to_string())
                .bind(e.next_due)
                .bind(now),
            )
            .await?;
        if inserted == 0 {
            continue;
        }
        if let Some(due) = e.next_due {
            set_step_timer(db, org, id, due, now, timers).await?;
        }
        timeline(
            db,
            org,
            root,
            now,
            "nudge",
            &format!("Entered campaign \u{201c}{name}\u{201d}"),
            json!({ "campaign_id": cid, "enrollment_id": id }),
            &format!("enroll:{id}"),
        )
        .await?;
        enrolled += 1;
    }
    Ok(enrolled)
}

/// Feeds `event` to every active enrollment of `root` (and of profiles
/// merged into it); returns how many it ended. Stopped enrollments lose
/// their step timer.
pub(crate) async fn stop_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    event: Event,
    only_trigger: Option<&str>,
    now: Millis,
) -> Result<usize, StoreError> {
    let rows = db
        .rows(
            q(
                "select e.id, e.state, c.definition, c.trigger_kind from enrollments e \
               join campaigns c on c.org_id = e.org_id and c.id = e.campaign_id \
               where e.org_id = $1 and e.status = 'active' and e.profile_id in \
               (select id from profiles where org_id = $1 and root_id = $2)",
            )
            .bind(org)
            .bind(root),
        )
        .await?;
    let mut stopped = 0;
    for r in rows {
        let trigger = r.text("trigger_kind")?;
        if only_trigger.is_some_and(|t| t != trigger) {
            continue;
        }
        let id = r.uuid("id")?;
        let (Ok(mut e), Ok(campaign)) = (
            serde_json::from_str::<Enrollment>(&r.text("state")?),
            serde_json::from_str::<Campaign>(&r.text("definition")?),
        ) else {
            continue;
        };
        let ended = e.on_event(&campaign, event);
        save_enrollment(db, org, id, &e, now).await?;
        if ended {
            stopped += 1;
        }
    }
    Ok(stopped)
}

pub(crate) async fn save_enrollment<D: Db>(
    db: &mut D,
    org: Uuid,
    id: Uuid,
    e: &Enrollment,
    now: Millis,
) -> Result<(), StoreError> {
    write_enrollment(db, org, id, e, now, true).await
}

/// Saves the state; `cancel_timer` removes a pending step timer when it
/// ended (the step handler passes false: its own timer is the one running,
/// so none is pending).
pub(crate) async fn write_enrollment<D: Db>(
    db: &mut D,
    org: Uuid,
    id: Uuid,
    e: &Enrollment,
    now: Millis,
    cancel_timer: bool,
) -> Result<(), StoreError> {
    let (status, reason, ended) = match e.stopped {
        Some(r) => (
            ENROLLMENT_STOPPED,
            Some(stop_reason_str(r).to_string()),
            Some(now),
        ),
        None => (ENROLLMENT_ACTIVE, None, None),
    };
    db.exec(
        q(
            "update enrollments set state = $3, status = $4, stop_reason = $5, next_due = $6, \
           ended_at = coalesce(ended_at, $7), updated_at = $8 where org_id = $1 and id = $2",
        )
        .bind(org)
        .bind(id)
        .bind(serde_json::to_string(e).unwrap_or_default())
        .bind(status)
        .bind(reason)
        .bind(e.next_due)
        .bind(ended)
        .bind(now),
    )
    .await?;
    if cancel_timer && e.stopped.is_some() {
        crate::timers::cancel(db, org, STEP_JOB, &format!("enroll:{id}")).await?;
    }
    Ok(())
}

/// A conversion (an order, or a person marking the lead won): ends the
/// enrollments that stop on it, and credits the conversion to the nudge the
/// attribution rule picks, once.
pub(crate) async fn converted_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    at: Millis,
    value_cents: Option<i64>,
    now: Millis,
) -> Result<Option<Uuid>, StoreError> {
    stop_tx(db, org, root, Event::Converted, None, now).await?;
    // The latest conversion, which keeps later triggers from enrolling
    // (the state keeps only the first).
    db.exec(
        q(
            "update leads set last_converted_at = $3 where org_id = $1 and profile_id = $2 \
           and (last_converted_at is null or last_converted_at < $3)",
        )
        .bind(org)
        .bind(root)
        .bind(at),
    )
    .await?;
    let settings = load_settings(db, org).await?;
    let horizon = at - settings.windows.email_ms.max(settings.windows.sms_ms);
    let rows = db
        .rows(
            q("select id, idem_key, channel, sent_at, opened_at, clicked_at, replied_at from nudge_executions \
               where org_id = $1 and profile_id in (select id from profiles where org_id = $1 and root_id = $2) \
               and sent_at is not null and sent_at >= $3 and converted_at is null \
               and status in ('sent', 'delivered', 'unknown')")
            .bind(org)
            .bind(root)
            .bind(horizon),
        )
        .await?;
    let mut touches = Vec::new();
    let mut ids = Vec::new();
    for r in rows {
        let interacted = [
            r.opt_i64("opened_at")?,
            r.opt_i64("clicked_at")?,
            r.opt_i64("replied_at")?,
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t <= at)
        .max();
        touches.push(Touch {
            nudge_key: r.text("idem_key")?,
            channel: parse_channel(&r.text("channel")?)?,
            sent_at: r.i64("sent_at")?,
            interacted_at: interacted,
        });
        ids.push((r.text("idem_key")?, r.uuid("id")?));
    }
    let Some(t) = attribute(at, &touches, settings.windows) else {
        return Ok(None);
    };
    let Some((_, id)) = ids.iter().find(|(k, _)| *k == t.nudge_key) else {
        return Ok(None);
    };
    db.exec(
        q(
            "update nudge_executions set converted_at = $3, converted_cents = $4, updated_at = $5 \
           where org_id = $1 and id = $2 and converted_at is null",
        )
        .bind(org)
        .bind(*id)
        .bind(at)
        .bind(value_cents)
        .bind(now),
    )
    .await?;
    Ok(Some(*id))
}

impl crate::Store {
    /// Enrolls a customer as a trigger of `kind` would (the pipeline's and
    /// the timers' path, inside their transactions), for store-level
    /// tests: how many campaigns it entered, and the step timers set.
    #[doc(hidden)]
    pub async fn trigger_for_test(
        &self,
        org: Uuid,
        root: Uuid,
        kind: &str,
        event_name: Option<String>,
        ctx: Value,
        now: Millis,
    ) -> Result<(usize, Vec<Millis>), StoreError> {
        let kind = kind.to_string();
        write_db!(self, |db| async move {
            let mut timers = Vec::new();
            let n = trigger_tx(
                db,
                org,
                root,
                &kind,
                event_name.as_deref(),
                &ctx,
                now,
                now,
                &mut timers,
            )
            .await?;
            Ok((n, timers))
        })
    }

    /// Moves only a lead's row (no history, no stop of its enrollments),
    /// as an older version could have left it: for tests of the send-time
    /// stop rule.
    #[doc(hidden)]
    pub async fn test_set_lead_state(
        &self,
        org: Uuid,
        root: Uuid,
        state: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let state = state.to_string();
        write_db!(self, |db| async move {
            db.exec(
                q("update leads set state = $3, state_at = $4 where org_id = $1 and profile_id = $2")
                    .bind(org)
                    .bind(root)
                    .bind(state.as_str())
                    .bind(at),
            )
            .await?;
            Ok(())
        })
    }

    /// A person takes a customer out of a campaign.
    pub async fn remove_enrollment(
        &self,
        org: Uuid,
        enrollment: Uuid,
        now: Millis,
    ) -> Result<bool, StoreError> {
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select e.state, c.definition from enrollments e join campaigns c on c.org_id = e.org_id \
                       and c.id = e.campaign_id where e.org_id = $1 and e.id = $2 and e.status = 'active'")
                    .bind(org)
                    .bind(enrollment),
                )
                .await?;
            let Some(r) = r else { return Ok(false) };
            let (Ok(mut e), Ok(c)) = (
                serde_json::from_str::<Enrollment>(&r.text("state")?),
                serde_json::from_str::<Campaign>(&r.text("definition")?),
            ) else {
                return Ok(false);
            };
            e.on_event(&c, Event::Removed);
            save_enrollment(db, org, enrollment, &e, now).await?;
            Ok(true)
        })
    }

    /// Resuming a campaign: its waiting enrollments' step timers are set
    /// again (at their due time, or now when it passed while paused).
    /// Returns the timers set.
    pub async fn rearm_campaign(
        &self,
        org: Uuid,
        campaign: Uuid,
        now: Millis,
    ) -> Result<Vec<Millis>, StoreError> {
        write_db!(self, |db| async move {
            let rows = db
                .rows(
                    q("select id, next_due from enrollments where org_id = $1 and campaign_id = $2 and status = 'active' \
                       and next_due is not null")
                    .bind(org)
                    .bind(campaign),
                )
                .await?;
            let mut timers = Vec::new();
            for r in rows {
                let due = r.i64("next_due")?.max(now);
                set_step_timer(db, org, r.uuid("id")?, due, now, &mut timers).await?;
            }
            Ok(timers)
        })
    }
}

/// A stand-in for a deleted campaign, to end its enrollments with.
pub(crate) fn empty_campaign() -> Campaign {
    Campaign {
        name: String::new(),
        trigger: Trigger::LeadGhosting,
        steps: Vec::new(),
        stop: nudge::StopConditions::default(),
        quiet_hours: None,
        max_attempts: 1,
        reentry_cooldown_ms: 0,
        priority: 0,
    }
}
