//! The intake pipeline's storage: the queue of stored
//! inbound events, and the one transaction that applies a batch of them —
//! identity, timeline, intent, lead state, timers — so that an event's
//! effects and its `processed` mark commit together or not at all. That is
//! what makes processing exactly-once even across crashes and replicas: the
//! first statement of each event checks that it is still `pending` (and
//! locks its row on PostgreSQL), the last one marks it, and a second
//! worker (or a replay of the same batch) finds nothing to do.
//!
//! The per-lead tables live here too: `leads` (state, score, counters),
//! `lead_transitions` (history with reasons) and `checkouts` (the open
//! Shopify checkouts the abandonment timer watches), and `customer_groups`
//! (the accounts Segment `group` calls name, with their traits). Timers are rows of the
//! scheduler's `jobs` table written in the same transaction, so a crash can
//! never leave an event processed without its timer.

use crate::engine::{read, write_db};
use crate::identity::{insert_entry, resolve_tx, IdentifyAction, IdentifyInput, NewEvent, Traits};
use crate::sql::{q, Db, Row};
use crate::{new_id, StoreError};
use bos_core::identity::{Identifier, IdentityRules};
use bos_core::intake::interpret::{Entry, GroupTouch, Interpreted};
use bos_core::intent::{self, Intent, IntentRules, Signals};
use bos_core::leads::{self, Input, LeadSettings, LeadState, Transition};
use bos_core::Millis;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Job kinds the pipeline schedules (handlers live in the engine).
pub const GHOST_JOB: &str = "lead.ghosting";
pub const ABANDON_JOB: &str = "checkout.abandon";

/// Default abandonment window: a checkout with no order an hour later.
pub const DEFAULT_ABANDON_AFTER_MS: i64 = 3_600_000;

/// A new visit starts after this long without activity (the usual web
/// analytics session timeout).
const VISIT_GAP_MS: i64 = 30 * 60_000;

/// Attempts before a failing event is parked for a person.
pub const MAX_ATTEMPTS: u32 = 8;

/// A stored event waiting for the pipeline.
#[derive(Debug, Clone)]
pub struct DueEvent {
    pub org_id: Uuid,
    pub id: Uuid,
    pub source_id: Uuid,
    pub source_kind: String,
    pub external_id: String,
    pub kind: String,
    pub payload: String,
    pub received_at: Millis,
    pub attempts: u32,
    /// Its place in the queue, with the id.
    pub next_at: Millis,
}

/// A tenant's intake settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    pub identity: IdentityRules,
    pub intent: IntentRules,
    pub leads: LeadSettings,
    pub abandon_after_ms: i64,
}

/// What the engine decided an event is, before the store applies it.
#[derive(Debug, Clone)]
pub enum Work {
    Apply(Box<Ready>),
    /// Read, but names nobody usable: done, with this reason.
    Skip(String),
    /// Unreadable: parked with this reason (retrying cannot help).
    Park(String),
}

#[derive(Debug, Clone)]
pub struct Ready {
    /// Normalized, not blocklisted, at least one.
    pub identifiers: Vec<Identifier>,
    pub traits: Traits,
    pub interp: Interpreted,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub event: DueEvent,
    pub work: Work,
    pub settings: Arc<PipelineSettings>,
}

/// A lead as the feed and the profile page show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lead {
    pub profile_id: Uuid,
    pub display_name: String,
    pub email: String,
    pub phone: String,
    pub ltv_cents: i64,
    pub state: String,
    pub state_at: Millis,
    pub score: i64,
    pub category: String,
    pub fired: serde_json::Value,
    pub last_event: String,
    pub pages_viewed: i64,
    pub visits: i64,
    pub open_cart_cents: Option<i64>,
    pub assignee: Option<String>,
    pub tags: serde_json::Value,
    pub last_seen_at: Millis,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Processed {
        profile_id: Uuid,
        intent: Intent,
        state: LeadState,
        transition: Option<Transition>,
        created: bool,
    },
    /// Its effects were already there (a replay): nothing changed.
    Replayed {
        profile_id: Uuid,
    },
    Skipped(String),
    Parked(String),
    /// Another worker got to it first.
    AlreadyDone,
}

/// One applied event, for the live bus.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedEvent {
    pub org_id: Uuid,
    pub event_id: Uuid,
    pub applied: Applied,
}

/// A batch's result: per event, and the earliest timer it set.
#[derive(Debug, Clone, Default)]
pub struct BatchResult {
    pub events: Vec<AppliedEvent>,
    pub earliest_timer: Option<Millis>,
}

/// A lead state change made outside the event flow (a timer, a person).
#[derive(Debug, Clone, PartialEq)]
pub struct LeadChanged {
    pub profile_id: Uuid,
    pub transition: Transition,
    /// When the move (a reopen) set the ghosting timer: wake the runner.
    pub ghost_timer_at: Option<Millis>,
}

/// An inbound event as the sources page lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub source_id: Uuid,
    pub external_id: String,
    pub kind: String,
    pub received_at: Millis,
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub processed_at: Option<Millis>,
    pub profile_id: Option<Uuid>,
}

/// A lead's state history row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeadTransitionRow {
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
    pub actor: String,
    pub at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub state: Option<String>,
    pub category: Option<String>,
    /// The feed's cursor: leads after this (updated_at, profile id) in the
    /// feed's order. Without an id, only leads updated before the time.
    pub before: Option<Millis>,
    pub before_id: Option<Uuid>,
    pub limit: u32,
}

/// Retry delay after the n-th failed attempt: 1 s doubling, at most 10 min.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    (1_000i64 << attempts.min(10)).min(600_000)
}

const DELIVERY_COLS: &str =
    "id, source_id, external_id, kind, received_at, status, attempts, error, processed_at, profile_id";

fn delivery(r: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.uuid(0)?,
        source_id: r.uuid(1)?,
        external_id: r.text(2)?,
        kind: r.text(3)?,
        received_at: r.i64(4)?,
        status: r.text(5)?,
        attempts: r.i64(6)?,
        error: r.opt_text(7)?,
        processed_at: r.opt_i64(8)?,
        profile_id: r.opt_uuid(9)?,
    })
}

const LEAD_COLS: &str =
    "l.profile_id, p.display_name, p.primary_email, p.primary_phone, p.ltv_cents, \
     l.state, l.state_at, l.score, l.category, l.fired, l.last_event, l.pages_viewed, l.visits, \
     l.open_cart_cents, l.assignee, p.tags, l.last_seen_at, l.created_at, l.updated_at";

fn lead_row(r: &Row) -> Result<Lead, StoreError> {
    let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
    Ok(Lead {
        profile_id: r.uuid(0)?,
        display_name: r.text(1)?,
        email: r.text(2)?,
        phone: r.text(3)?,
        ltv_cents: r.i64(4)?,
        state: r.text(5)?,
        state_at: r.i64(6)?,
        score: r.i64(7)?,
        category: r.text(8)?,
        fired: json(r.text(9)?),
        last_event: r.text(10)?,
        pages_viewed: r.i64(11)?,
        visits: r.i64(12)?,
        open_cart_cents: r.opt_i64(13)?,
        assignee: r.opt_text(14)?,
        tags: json(r.text(15)?),
        last_seen_at: r.i64(16)?,
        created_at: r.i64(17)?,
        updated_at: r.i64(18)?,
    })
}

/// The lead row's mutable part.
#[derive(Debug, Clone)]
struct LeadRow {
    state: LeadState,
    state_at: Millis,
    pages_viewed: i64,
    visits: i64,
    open_cart_cents: Option<i64>,
    last_seen_at: Millis,
    nudges_sent: i64,
    exists: bool,
}

async fn load_lead<D: Db>(db: &mut D, org: Uuid, profile: Uuid) -> Result<LeadRow, StoreError> {
    let r = db
        .opt(
            q("select state, state_at, pages_viewed, visits, open_cart_cents, last_seen_at, nudges_sent \
               from leads where org_id = $1 and profile_id = $2")
            .bind(org)
            .bind(profile),
        )
        .await?;
    Ok(match r {
        Some(r) => LeadRow {
            state: LeadState::parse(&r.text(0)?).unwrap_or(LeadState::New),
            state_at: r.i64(1)?,
            pages_viewed: r.i64(2)?,
            visits: r.i64(3)?,
            open_cart_cents: r.opt_i64(4)?,
            last_seen_at: r.i64(5)?,
            nudges_sent: r.i64(6)?,
            exists: true,
        },
        None => LeadRow {
            state: LeadState::New,
            state_at: 0,
            pages_viewed: 0,
            visits: 0,
            open_cart_cents: None,
            last_seen_at: 0,
            nudges_sent: 0,
            exists: false,
        },
    })
}

/// The profile an id resolves to now (its cluster's root).
pub(crate) async fn root_of<D: Db>(
    db: &mut D,
    org: Uuid,
    profile: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    let r = db
        .opt(
            q("select root_id from profiles where org_id = $1 and id = $2")
                .bind(org)
                .bind(profile),
        )
        .await?;
    r.map(|r| r.uuid(0)).transpose()
}

/// Schedules a timer or moves the pending one holding its key (the same
/// semantics as `Store::schedule_or_replace_job`, inside our transaction).
pub(crate) async fn set_timer<D: Db>(
    db: &mut D,
    org: Uuid,
    kind: &str,
    key: &str,
    payload: String,
    run_at: Millis,
    now: Millis,
) -> Result<(), StoreError> {
    let moved = db
        .exec(
            q("update jobs set payload = $4, run_at = $5, attempts = 0, last_error = null, updated_at = $6 \
               where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked' and state = 'pending'")
            .bind(org)
            .bind(kind)
            .bind(key)
            .bind(payload.as_str())
            .bind(run_at)
            .bind(now),
        )
        .await?;
    if moved == 0 {
        db.exec(
            q("update jobs set unique_key = null, updated_at = $4 \
               where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked' and state = 'running'")
            .bind(org)
            .bind(kind)
            .bind(key)
            .bind(now),
        )
        .await?;
        db.exec(
            q("insert into jobs (org_id, id, kind, unique_key, payload, state, run_at, attempts, \
               max_attempts, created_at, updated_at) values ($1, $2, $3, $4, $5, 'pending', $6, 0, $7, $8, $8) \
               on conflict do nothing")
            .bind(org)
            .bind(new_id())
            .bind(kind)
            .bind(key)
            .bind(payload)
            .bind(run_at)
            .bind(crate::jobs::DEFAULT_MAX_ATTEMPTS as i64)
            .bind(now),
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn cancel_timer<D: Db>(
    db: &mut D,
    org: Uuid,
    kind: &str,
    key: &str,
) -> Result<(), StoreError> {
    db.exec(
        // `state <> 'parked'` repeats the unique index's condition so SQLite
        // uses it (it does not infer it from `state = 'pending'`); without
        // it the delete scans every job of the tenant.
        q("delete from jobs where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked' and state = 'pending'")
            .bind(org)
            .bind(kind)
            .bind(key),
    )
    .await?;
    Ok(())
}

/// Records a lead's move: history row, timeline entry, the profile's
/// `lead_state` column. The `leads` row itself is the caller's.
async fn record_transition<D: Db>(
    db: &mut D,
    org: Uuid,
    profile: Uuid,
    t: &Transition,
    actor: &str,
    at: Millis,
    key: Option<String>,
) -> Result<(), StoreError> {
    db.exec(
        q("insert into lead_transitions (org_id, id, profile_id, from_state, to_state, reason, actor, at) \
           values ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(org)
        .bind(new_id())
        .bind(profile)
        .bind(t.from.as_str())
        .bind(t.to.as_str())
        .bind(t.reason.as_str())
        .bind(actor)
        .bind(at),
    )
    .await?;
    let data =
        json!({"from": t.from.as_str(), "to": t.to.as_str(), "reason": t.reason, "actor": actor});
    db.exec(
        q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, data, event_key) \
           values ($1, $2, $3, $3, $4, 'lead_state', $5, $6, $7, $8) on conflict do nothing")
        .bind(org)
        .bind(new_id())
        .bind(profile)
        .bind(at)
        .bind(actor)
        .bind(format!("{} → {}: {}", t.from.label(), t.to.label(), t.reason))
        .bind(data.to_string())
        .bind(key),
    )
    .await?;
    db.exec(
        q("update profiles set lead_state = $3 where org_id = $1 and id = $2")
            .bind(org)
            .bind(profile)
            .bind(t.to.as_str()),
    )
    .await?;
    Ok(())
}

fn entry_event(e: &Entry, key: String) -> NewEvent {
    NewEvent {
        kind: e.kind.to_string(),
        summary: e.summary.clone(),
        occurred_at: e.occurred_at,
        // Filled when the entry is written, with the intent score added.
        data: String::new(),
        key: Some(key),
        revenue_cents: e.revenue_cents,
        is_order: e.is_order,
    }
}

/// Applies one event inside the caller's transaction.
async fn apply_one<D: Db>(
    db: &mut D,
    item: &Item,
    now: Millis,
    timers: &mut Vec<Millis>,
) -> Result<Applied, StoreError> {
    let ev = &item.event;
    let org = ev.org_id;
    let (status, error, skipped) = match &item.work {
        Work::Apply(ready) => {
            // Still pending (another replica may have applied it since it
            // was read)? Checked, not claimed: the one update at the end
            // records the outcome and the profile, so the row (payload
            // and all) is written once.
            let pending = db
                .opt(
                    q(format!(
                        "select 1 from inbound_events where org_id = $1 and id = $2 and status = 'pending'{}",
                        D::LOCK
                    ))
                    .bind(org)
                    .bind(ev.id),
                )
                .await?;
            if pending.is_none() {
                return Ok(Applied::AlreadyDone);
            }
            let applied = apply_ready(db, item, ready, now, timers).await?;
            let profile = match &applied {
                Applied::Processed { profile_id, .. } | Applied::Replayed { profile_id } => {
                    Some(*profile_id)
                }
                _ => None,
            };
            db.exec(
                q("update inbound_events set status = 'processed', processed_at = $3, attempts = attempts + 1, \
                   error = null, profile_id = $4 where org_id = $1 and id = $2")
                .bind(org)
                .bind(ev.id)
                .bind(now)
                .bind(profile),
            )
            .await?;
            return Ok(applied);
        }
        Work::Skip(r) => ("skipped", r.clone(), Applied::Skipped(r.clone())),
        Work::Park(r) => ("parked", r.clone(), Applied::Parked(r.clone())),
    };
    let claimed = db
        .exec(
            q("update inbound_events set status = $3, processed_at = $4, attempts = attempts + 1, error = $5 \
               where org_id = $1 and id = $2 and status = 'pending'")
            .bind(org)
            .bind(ev.id)
            .bind(status)
            .bind(now)
            .bind(error),
        )
        .await?;
    Ok(if claimed == 0 {
        Applied::AlreadyDone
    } else {
        skipped
    })
}

/// The work of a readable event, inside the caller's transaction.
async fn apply_ready<D: Db>(
    db: &mut D,
    item: &Item,
    ready: &Ready,
    now: Millis,
    timers: &mut Vec<Millis>,
) -> Result<Applied, StoreError> {
    let ev = &item.event;
    let org = ev.org_id;
    let s = &item.settings;
    let interp = &ready.interp;
    let Some(main) = interp.entries.first() else {
        return Ok(Applied::Skipped("nothing to record".into()));
    };
    let main_key = main
        .key
        .clone()
        .unwrap_or_else(|| format!("in:{}:{}", ev.source_id, ev.external_id));
    // A checkout's later updates add identifiers and move its timer, but
    // its "started checkout" entry is written once.
    let known_checkout = match &interp.checkout {
        Some(c) => db
            .opt(
                q("select 1 from checkouts where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(c.id.as_str()),
            )
            .await?
            .is_some(),
        None => false,
    };
    let input = IdentifyInput {
        identifiers: ready.identifiers.clone(),
        traits: ready.traits.clone(),
        source: ev.source_kind.clone(),
        event: (!known_checkout).then(|| entry_event(main, main_key.clone())),
        now,
    };
    // The main entry is written below, once the intent it carries is known.
    let outcome = resolve_tx(db, org, &s.identity, &input).await?;
    let root = outcome.profile_id;
    if outcome.action == IdentifyAction::Replayed {
        return Ok(Applied::Replayed { profile_id: root });
    }
    // Drawn before the secondary entries' ids, so that among entries of
    // the same time the main one still sorts first.
    let main_id = new_id();
    for (i, e) in interp.entries.iter().enumerate().skip(1) {
        let suffix = e.key.clone().unwrap_or_else(|| i.to_string());
        db.exec(
            q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, data, event_key) \
               values ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9) on conflict do nothing")
            .bind(org)
            .bind(new_id())
            .bind(root)
            .bind(e.occurred_at)
            .bind(e.kind)
            .bind(ev.source_kind.as_str())
            .bind(e.summary.as_str())
            .bind(e.data.to_string())
            .bind(format!("{main_key}:{suffix}")),
        )
        .await?;
    }

    // Intent: this event's signals plus the lead's running totals.
    let mut lead = load_lead(db, org, root).await?;
    let at = main.occurred_at;
    let sig = &interp.signal;
    if sig.is_page {
        lead.pages_viewed += 1;
    }
    if lead.visits == 0 || at - lead.last_seen_at > VISIT_GAP_MS {
        lead.visits += 1;
    }
    if let Some(c) = &interp.checkout {
        lead.open_cart_cents = if c.completed { None } else { c.total_cents };
    }
    if sig.opens_cart && sig.cart_value_cents.is_some() {
        lead.open_cart_cents = sig.cart_value_cents;
    }
    if sig.purchase {
        lead.open_cart_cents = None;
    }
    let signals = Signals {
        event_type: sig.event_type.to_string(),
        event_name: sig.event_name.clone(),
        cart_value_cents: sig.cart_value_cents.or(lead.open_cart_cents),
        form_fields: sig.form_fields.clone(),
        pages_viewed: lead.pages_viewed.clamp(0, u32::MAX as i64) as u32,
        visits: lead.visits.clamp(0, u32::MAX as i64) as u32,
        utm_source: sig.utm_source.clone(),
        utm_medium: sig.utm_medium.clone(),
        utm_campaign: sig.utm_campaign.clone(),
        ad_click: sig.ad_click,
    };
    let intent = intent::evaluate(&s.intent, &signals);
    if let Some(mut entry) = input.event {
        let mut data = main.data.clone();
        if let serde_json::Value::Object(m) = &mut data {
            m.insert(
                "intent".into(),
                serde_json::to_value(&intent).unwrap_or_default(),
            );
        }
        entry.data = data.to_string();
        insert_entry(db, org, main_id, root, &ev.source_kind, &entry).await?;
    }

    // Lead state.
    let lead_input = if sig.purchase {
        Input::Purchase { at }
    } else {
        Input::Activity {
            score: intent.score,
            strong: sig.strong,
            at,
        }
    };
    let transition = leads::next(lead.state, &lead_input, &s.leads);
    if let Some(t) = &transition {
        record_transition(
            db,
            org,
            root,
            t,
            "pipeline",
            at.max(lead.state_at),
            Some(format!("{main_key}:state")),
        )
        .await?;
        lead.state = t.to;
        lead.state_at = at.max(lead.state_at);
    }
    let last_seen = lead.last_seen_at.max(at);
    // The ghosting timer is set when a lead becomes engaged, not moved on
    // every event: when it fires it re-checks the last activity and, if
    // the lead was active since, sets itself again from that activity.
    let engaged_now = transition
        .as_ref()
        .is_some_and(|t| t.to == LeadState::Engaged);
    if engaged_now {
        let due = leads::ghost_due_at(last_seen, &s.leads);
        set_timer(
            db,
            org,
            GHOST_JOB,
            &format!("ghost:{root}"),
            json!({"profile_id": root}).to_string(),
            due,
            now,
        )
        .await?;
        timers.push(due);
    } else if !leads::is_open(lead.state) {
        cancel_timer(db, org, GHOST_JOB, &format!("ghost:{root}")).await?;
    }
    let fired = serde_json::to_string(&intent.fired).unwrap_or_else(|_| "[]".into());
    db.exec(
        q("insert into leads (org_id, profile_id, state, state_at, score, category, fired, last_event, pages_viewed, \
           visits, open_cart_cents, nudges_sent, last_seen_at, created_at, updated_at) \
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
           on conflict (org_id, profile_id) do update set state = excluded.state, state_at = excluded.state_at, \
           score = excluded.score, category = excluded.category, fired = excluded.fired, \
           last_event = excluded.last_event, pages_viewed = excluded.pages_viewed, visits = excluded.visits, \
           open_cart_cents = excluded.open_cart_cents, last_seen_at = excluded.last_seen_at, \
           updated_at = excluded.updated_at")
        .bind(org)
        .bind(root)
        .bind(lead.state.as_str())
        .bind(if lead.exists || transition.is_some() { lead.state_at } else { at })
        .bind(i64::from(intent.score))
        .bind(intent.category.as_str())
        .bind(fired)
        .bind(main.summary.as_str())
        .bind(lead.pages_viewed)
        .bind(lead.visits)
        .bind(lead.open_cart_cents)
        .bind(lead.nudges_sent)
        .bind(last_seen)
        .bind(now),
    )
    .await?;

    // Nudges: a purchase converts (and is attributed), a finished form ends
    // the "form not finished" sequences, and starts and named events enroll.
    if sig.purchase {
        crate::nudge::converted_tx(db, org, root, at, sig.cart_value_cents, now).await?;
    }
    match sig.event_type {
        "form_started" => {
            crate::nudge::trigger_tx(
                db,
                org,
                root,
                "form_started_not_finished",
                None,
                &json!({}),
                at,
                now,
                timers,
            )
            .await?;
        }
        "form_submitted" => {
            crate::nudge::stop_tx(
                db,
                org,
                root,
                bos_core::nudge::Event::Converted,
                Some("form_started_not_finished"),
                now,
            )
            .await?;
        }
        _ => {}
    }
    // Named events: Segment `track` calls and the types of generic webhooks.
    if let Some(name) = sig
        .event_name
        .as_deref()
        .filter(|_| matches!(sig.event_type, "track" | "webhook"))
    {
        crate::nudge::trigger_tx(
            db,
            org,
            root,
            "event",
            Some(name),
            &json!({}),
            at,
            now,
            timers,
        )
        .await?;
    }

    // Checkouts and their abandonment timers.
    if let Some(c) = &interp.checkout {
        let status = if c.completed { "completed" } else { "open" };
        db.exec(
            q("insert into checkouts (org_id, id, token, cart_token, profile_id, status, total_cents, currency, url, items, created_at, updated_at) \
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
               on conflict (org_id, id) do update set token = excluded.token, cart_token = excluded.cart_token, \
               profile_id = excluded.profile_id, total_cents = excluded.total_cents, currency = excluded.currency, \
               url = excluded.url, items = excluded.items, updated_at = excluded.updated_at, \
               status = case when checkouts.status = 'open' then excluded.status else checkouts.status end")
            .bind(org)
            .bind(c.id.as_str())
            .bind(c.token.clone())
            .bind(c.cart_token.clone())
            .bind(root)
            .bind(status)
            .bind(c.total_cents)
            .bind(c.currency.clone())
            .bind(c.url.clone())
            .bind(c.items.min(i64::MAX as u64) as i64)
            .bind(now),
        )
        .await?;
        let key = format!("checkout:{}", c.id);
        if c.completed {
            cancel_timer(db, org, ABANDON_JOB, &key).await?;
        } else {
            // From the checkout's own last change: a late delivery must not
            // push the window back.
            let due = at + s.abandon_after_ms;
            set_timer(
                db,
                org,
                ABANDON_JOB,
                &key,
                json!({"checkout_id": c.id}).to_string(),
                due,
                now,
            )
            .await?;
            timers.push(due);
        }
    }
    if let Some(g) = &interp.group {
        upsert_group(db, org, g, root, now).await?;
    }
    if let Some(o) = &interp.order {
        let closed = db
            .rows(
                q("update checkouts set status = 'completed', updated_at = $5 where org_id = $1 and status = 'open' \
                   and ((token is not null and token = $2) or id = $2 or (cart_token is not null and cart_token = $3) or profile_id = $4) \
                   returning id")
                .bind(org)
                .bind(o.checkout_token.clone().unwrap_or_default())
                .bind(o.cart_token.clone().unwrap_or_default())
                .bind(root)
                .bind(now),
            )
            .await?;
        for r in closed {
            cancel_timer(db, org, ABANDON_JOB, &format!("checkout:{}", r.text(0)?)).await?;
        }
    }
    Ok(Applied::Processed {
        profile_id: root,
        intent,
        state: lead.state,
        transition,
        created: outcome.action == IdentifyAction::Created,
    })
}

/// A group call's account: its traits laid over the stored ones (the
/// call's names win, the rest stay), and the customer last seen in it.
async fn upsert_group<D: Db>(
    db: &mut D,
    org: Uuid,
    g: &GroupTouch,
    profile: Uuid,
    now: Millis,
) -> Result<(), StoreError> {
    let stored = db
        .opt(
            q("select traits from customer_groups where org_id = $1 and group_id = $2")
                .bind(org)
                .bind(g.group_id.as_str()),
        )
        .await?;
    let current: serde_json::Map<String, serde_json::Value> = match &stored {
        Some(r) => serde_json::from_str(&r.text(0)?).unwrap_or_default(),
        None => serde_json::Map::new(),
    };
    let (traits, _) = bos_core::identity::traits::overlay(&current, &g.traits);
    db.exec(
        q("insert into customer_groups (org_id, group_id, traits, last_profile_id, created_at, updated_at) \
           values ($1, $2, $3, $4, $5, $5) \
           on conflict (org_id, group_id) do update set traits = excluded.traits, \
           last_profile_id = excluded.last_profile_id, updated_at = excluded.updated_at")
        .bind(org)
        .bind(g.group_id.as_str())
        .bind(serde_json::Value::Object(traits).to_string())
        .bind(profile)
        .bind(now),
    )
    .await?;
    Ok(())
}

/// An account as a `group` call left it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CustomerGroup {
    pub group_id: String,
    pub traits: serde_json::Value,
    pub last_profile_id: Option<Uuid>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl crate::Store {
    /// One account of the organization, by its group id.
    pub async fn customer_group(
        &self,
        org: Uuid,
        group_id: &str,
    ) -> Result<Option<CustomerGroup>, StoreError> {
        let r = crate::sql::read_rows(
            self,
            q("select group_id, traits, last_profile_id, created_at, updated_at from customer_groups \
               where org_id = $1 and group_id = $2")
            .bind(org)
            .bind(group_id),
        )
        .await?;
        r.first()
            .map(|r| {
                Ok(CustomerGroup {
                    group_id: r.text(0)?,
                    traits: serde_json::from_str(&r.text(1)?).unwrap_or_default(),
                    last_profile_id: r.opt_uuid(2)?,
                    created_at: r.i64(3)?,
                    updated_at: r.i64(4)?,
                })
            })
            .transpose()
    }
}

impl crate::Store {
    /// Due pending events across tenants, oldest first (a system query:
    /// the pipeline serves every tenant).
    pub async fn due_inbound(&self, now: Millis, limit: u32) -> Result<Vec<DueEvent>, StoreError> {
        self.due_inbound_after(now, None, limit).await
    }

    /// Like [`Store::due_inbound`], after the queue position `after`
    /// (`next_at`, id) of the last event already taken.
    pub async fn due_inbound_after(
        &self,
        now: Millis,
        after: Option<(Millis, Uuid)>,
        limit: u32,
    ) -> Result<Vec<DueEvent>, StoreError> {
        let cols = "select e.org_id, e.id, e.source_id, s.kind, e.external_id, e.kind, e.payload, e.received_at, \
                    e.attempts, e.next_at from inbound_events e join sources s on s.org_id = e.org_id and s.id = e.source_id \
                    where e.status = 'pending' and e.next_at <= $1";
        let query = match after {
            None => q(format!("{cols} order by e.next_at, e.id limit $2")).bind(now).bind(i64::from(limit)),
            Some((at, id)) => q(format!(
                "{cols} and (e.next_at > $3 or (e.next_at = $3 and e.id > $4)) order by e.next_at, e.id limit $2"
            ))
            .bind(now)
            .bind(i64::from(limit))
            .bind(at)
            .bind(id),
        };
        let rows = crate::sql::read_rows(self, query).await?;
        rows.iter()
            .map(|r| {
                Ok(DueEvent {
                    org_id: r.uuid(0)?,
                    id: r.uuid(1)?,
                    source_id: r.uuid(2)?,
                    source_kind: r.text(3)?,
                    external_id: r.text(4)?,
                    kind: r.text(5)?,
                    payload: r.text(6)?,
                    received_at: r.i64(7)?,
                    attempts: r.i64(8)?.max(0) as u32,
                    next_at: r.i64(9)?,
                })
            })
            .collect()
    }

    /// When the next retry of a failed event is due, if one waits.
    pub async fn next_inbound_retry(&self) -> Result<Option<Millis>, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_scalar::<_, Option<i64>>(
                "select min(next_at) from inbound_events where status = 'pending'",
            )
            .fetch_one(&mut *c)
            .await?)
        })
    }

    /// Applies a batch in one transaction. Any error rolls the whole batch
    /// back; the caller then applies its events one by one, so one bad event
    /// costs only itself.
    pub async fn apply_inbound(
        &self,
        items: Arc<[Item]>,
        now: Millis,
    ) -> Result<BatchResult, StoreError> {
        write_db!(self, |db| async move {
            let mut out = BatchResult::default();
            let mut timers = Vec::new();
            for item in items.iter() {
                let applied = apply_one(db, item, now, &mut timers).await?;
                out.events.push(AppliedEvent {
                    org_id: item.event.org_id,
                    event_id: item.event.id,
                    applied,
                });
            }
            out.earliest_timer = timers.into_iter().min();
            Ok(out)
        })
    }

    /// Records a failed attempt: retried after a growing delay, parked once
    /// out of attempts.
    pub async fn fail_inbound(
        &self,
        org: Uuid,
        id: Uuid,
        error: String,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let error: String = error.chars().take(2_000).collect();
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select attempts from inbound_events where org_id = $1 and id = $2 and status = 'pending'")
                        .bind(org)
                        .bind(id),
                )
                .await?;
            let Some(r) = r else { return Ok(false) };
            let attempts = r.i64(0)?.max(0) as u32 + 1;
            let parked = attempts >= MAX_ATTEMPTS;
            db.exec(
                q("update inbound_events set attempts = $3, error = $4, next_at = $5, status = $6 \
                   where org_id = $1 and id = $2 and status = 'pending'")
                .bind(org)
                .bind(id)
                .bind(i64::from(attempts))
                .bind(error)
                .bind(now + retry_delay_ms(attempts))
                .bind(if parked { "parked" } else { "pending" }),
            )
            .await?;
            Ok(parked)
        })
    }

    /// Puts an event back in the queue, due now: a parked one to retry, or
    /// a processed one to replay (its effects are idempotent, so a replay
    /// changes only what is missing).
    pub async fn requeue_inbound(
        &self,
        org: Uuid,
        id: Uuid,
        now: Millis,
    ) -> Result<(), StoreError> {
        let n = write_db!(self, |db| async move {
            db.exec(
                q(
                    "update inbound_events set status = 'pending', next_at = $3, attempts = 0 \
                   where org_id = $1 and id = $2",
                )
                .bind(org)
                .bind(id)
                .bind(now),
            )
            .await
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A source's recent deliveries with their processing status.
    pub async fn deliveries(
        &self,
        org: Uuid,
        source: Option<Uuid>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let status = status.map(str::to_string);
        let rows = read_db(self, move |sql_src, sql_status| {
            format!(
                "select {DELIVERY_COLS} from inbound_events where org_id = $1 {sql_src} {sql_status} \
                 order by id desc limit $2"
            )
        }, org, source, status, limit)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// One delivery's raw payload (for its detail view).
    pub async fn delivery_payload(
        &self,
        org: Uuid,
        id: Uuid,
    ) -> Result<(Delivery, String), StoreError> {
        let sql = format!(
            "select {DELIVERY_COLS}, payload from inbound_events where org_id = $1 and id = $2"
        );
        let r = crate::sql::read_rows(self, q(sql).bind(org).bind(id)).await?;
        let r = r.into_iter().next().ok_or(StoreError::NotFound)?;
        Ok((delivery(&r)?, r.text(10)?))
    }

    /// How many events wait, by status, for a tenant.
    pub async fn inbound_status_counts(
        &self,
        org: Uuid,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select status, count(*) from inbound_events where org_id = $1 group by status")
                .bind(org),
        )
        .await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.i64(1)?))).collect()
    }

    /// Event counts by source and status, for the sources page:
    /// `(source_id, status, count)`.
    pub async fn source_status_counts(
        &self,
        org: Uuid,
    ) -> Result<Vec<(Uuid, String, i64)>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q(
                "select source_id, status, count(*) from inbound_events where org_id = $1 \
               group by source_id, status",
            )
            .bind(org),
        )
        .await?;
        rows.iter()
            .map(|r| Ok((r.uuid(0)?, r.text(1)?, r.i64(2)?)))
            .collect()
    }

    /// Consistency figures for the crash tests (`crates/bos/tests/kill.rs`): timeline
    /// entries written by the pipeline for inbound deliveries, the most
    /// attempts any processed event took, and live profiles.
    pub async fn intake_audit(&self, org: Uuid) -> Result<(i64, i64, i64), StoreError> {
        let one = |sql: &str| q(sql.to_string()).bind(org);
        let t = crate::sql::read_rows(
            self,
            one("select count(*) from timeline where org_id = $1 and event_key like 'in:%'"),
        )
        .await?;
        let a = crate::sql::read_rows(
            self,
            one("select coalesce(max(attempts), 0) from inbound_events where org_id = $1 and status = 'processed'"),
        )
        .await?;
        let p = crate::sql::read_rows(
            self,
            one("select count(*) from profiles where org_id = $1 and merged_into is null"),
        )
        .await?;
        Ok((t[0].i64(0)?, a[0].i64(0)?, p[0].i64(0)?))
    }

    /// Pipeline lag of each event received at or after `since` and
    /// processed: `processed_at − received_at` in ms (the intake benchmark).
    pub async fn inbound_lags(&self, org: Uuid, since: Millis) -> Result<Vec<i64>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select processed_at - received_at from inbound_events \
               where org_id = $1 and received_at >= $2 and processed_at is not null")
            .bind(org)
            .bind(since),
        )
        .await?;
        rows.iter().map(|r| r.i64(0)).collect()
    }

    /// The tenant's intake settings, defaults where none were saved.
    pub async fn pipeline_settings(&self, org: Uuid) -> Result<PipelineSettings, StoreError> {
        let identity = self.identity_rules(org).await?;
        let r = crate::sql::read_rows(
            self,
            q("select intent_rules, lead_settings, abandon_after_ms from intake_settings where org_id = $1").bind(org),
        )
        .await?;
        let mut s = PipelineSettings {
            identity,
            intent: IntentRules::default(),
            leads: LeadSettings::default(),
            abandon_after_ms: DEFAULT_ABANDON_AFTER_MS,
        };
        if let Some(r) = r.first() {
            if let Some(t) = r.opt_text(0)? {
                s.intent = serde_json::from_str(&t)
                    .map_err(|e| StoreError::Other(format!("stored intent rules: {e}")))?;
            }
            if let Some(t) = r.opt_text(1)? {
                s.leads = serde_json::from_str(&t)
                    .map_err(|e| StoreError::Other(format!("stored lead settings: {e}")))?;
            }
            if let Some(ms) = r.opt_i64(2)? {
                s.abandon_after_ms = ms;
            }
        }
        Ok(s)
    }

    /// Saves the tenant's intent rules (validated by the caller).
    pub async fn set_intent_rules(
        &self,
        org: Uuid,
        rules: &IntentRules,
        now: Millis,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(rules).map_err(|e| StoreError::Other(e.to_string()))?;
        write_db!(self, |db| async move {
            db.exec(
                q("insert into intake_settings (org_id, intent_rules, updated_at) values ($1, $2, $3) \
                   on conflict (org_id) do update set intent_rules = excluded.intent_rules, updated_at = excluded.updated_at")
                .bind(org)
                .bind(text)
                .bind(now),
            )
            .await?;
            Ok(())
        })
    }

    /// Saves the tenant's lead settings and abandonment window.
    pub async fn set_lead_settings(
        &self,
        org: Uuid,
        s: &LeadSettings,
        abandon_after_ms: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(s).map_err(|e| StoreError::Other(e.to_string()))?;
        write_db!(self, |db| async move {
            db.exec(
                q("insert into intake_settings (org_id, lead_settings, abandon_after_ms, updated_at) values ($1, $2, $3, $4) \
                   on conflict (org_id) do update set lead_settings = excluded.lead_settings, \
                   abandon_after_ms = excluded.abandon_after_ms, updated_at = excluded.updated_at")
                .bind(org)
                .bind(text)
                .bind(abandon_after_ms)
                .bind(now),
            )
            .await?;
            Ok(())
        })
    }

    /// The ghosting timer fired for `profile`: ghosts the lead if it has
    /// been inactive long enough; if it was active since the timer was set,
    /// sets the timer again from the last activity (returned, to wake the
    /// runner). A merge may have moved the lead: it follows the root.
    pub async fn lead_inactivity(
        &self,
        org: Uuid,
        profile: Uuid,
        now: Millis,
    ) -> Result<(Option<LeadChanged>, Option<Millis>), StoreError> {
        let settings = self.pipeline_settings(org).await?;
        write_db!(self, |db| async move {
            let Some(root) = root_of(db, org, profile).await? else {
                return Ok((None, None));
            };
            let lead = load_lead(db, org, root).await?;
            if !lead.exists {
                return Ok((None, None));
            }
            let input = Input::InactivityElapsed {
                last_active_at: lead.last_seen_at,
                now,
            };
            match leads::next(lead.state, &input, &settings.leads) {
                Some(t) => {
                    set_state(db, org, root, &t, "scheduler", now).await?;
                    let mut timers = Vec::new();
                    if t.to == LeadState::Ghosting {
                        crate::nudge::trigger_tx(
                            db,
                            org,
                            root,
                            "lead_ghosting",
                            None,
                            &json!({}),
                            now,
                            now,
                            &mut timers,
                        )
                        .await?;
                    }
                    Ok((
                        Some(LeadChanged {
                            profile_id: root,
                            transition: t,
                            ghost_timer_at: None,
                        }),
                        timers.into_iter().min(),
                    ))
                }
                None if lead.state == LeadState::Engaged => {
                    let due = leads::ghost_due_at(lead.last_seen_at, &settings.leads).max(now + 1);
                    let payload = json!({"profile_id": root}).to_string();
                    set_timer(
                        db,
                        org,
                        GHOST_JOB,
                        &format!("ghost:{root}"),
                        payload,
                        due,
                        now,
                    )
                    .await?;
                    Ok((None, Some(due)))
                }
                None => Ok((None, None)),
            }
        })
    }

    /// A person moves a lead (mark converted, mark lost, reopen).
    pub async fn lead_action(
        &self,
        org: Uuid,
        profile: Uuid,
        input: Input,
        actor: String,
        now: Millis,
    ) -> Result<Option<LeadChanged>, StoreError> {
        let settings = self.pipeline_settings(org).await?;
        write_db!(self, |db| async move {
            let Some(root) = root_of(db, org, profile).await? else {
                return Err(StoreError::NotFound);
            };
            let lead = load_lead(db, org, root).await?;
            let Some(t) = leads::next(lead.state, &input, &settings.leads) else {
                return Ok(None);
            };
            if !lead.exists {
                db.exec(
                    q("insert into leads (org_id, profile_id, state, state_at, last_seen_at, created_at, updated_at) \
                       values ($1, $2, 'new', $3, $3, $3, $3)")
                    .bind(org)
                    .bind(root)
                    .bind(now),
                )
                .await?;
            }
            set_state(db, org, root, &t, &actor, now).await?;
            match t.to {
                LeadState::Converted => {
                    crate::nudge::converted_tx(db, org, root, now, None, now).await?;
                }
                LeadState::Lost => {
                    crate::nudge::stop_tx(
                        db,
                        org,
                        root,
                        bos_core::nudge::Event::Removed,
                        None,
                        now,
                    )
                    .await?;
                }
                _ => {}
            }
            // A reopened lead is engaged again: it ghosts, like any other,
            // after the threshold without activity from now.
            let ghost_timer_at = if t.to == LeadState::Engaged {
                let due = leads::ghost_due_at(now, &settings.leads);
                let payload = json!({"profile_id": root}).to_string();
                set_timer(
                    db,
                    org,
                    GHOST_JOB,
                    &format!("ghost:{root}"),
                    payload,
                    due,
                    now,
                )
                .await?;
                Some(due)
            } else {
                None
            };
            Ok(Some(LeadChanged {
                profile_id: root,
                transition: t,
                ghost_timer_at,
            }))
        })
    }

    /// Assigns a lead to a member (by email), or clears it.
    pub async fn assign_lead(
        &self,
        org: Uuid,
        profile: Uuid,
        assignee: Option<String>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let n = write_db!(self, |db| async move {
            let Some(root) = root_of(db, org, profile).await? else {
                return Ok(0);
            };
            db.exec(
                q("update leads set assignee = $3, updated_at = $4 where org_id = $1 and profile_id = $2")
                    .bind(org)
                    .bind(root)
                    .bind(assignee)
                    .bind(now),
            )
            .await
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Adds a tag to a profile (kept once, in order).
    pub async fn tag_profile(
        &self,
        org: Uuid,
        profile: Uuid,
        tag: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            let Some(root) = root_of(db, org, profile).await? else {
                return Err(StoreError::NotFound);
            };
            let r = db
                .one(
                    q("select tags from profiles where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(root),
                )
                .await?;
            let mut tags: Vec<String> = serde_json::from_str(&r.text(0)?).unwrap_or_default();
            if !tags.contains(&tag) {
                tags.push(tag);
            }
            db.exec(
                q("update profiles set tags = $3 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(root)
                    .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into())),
            )
            .await?;
            db.exec(
                q("update leads set updated_at = $3 where org_id = $1 and profile_id = $2")
                    .bind(org)
                    .bind(root)
                    .bind(now),
            )
            .await?;
            Ok(())
        })
    }

    /// The abandonment timer fired: an open checkout becomes abandoned, on
    /// the timeline. Returns the profile when it did.
    pub async fn checkout_abandoned(
        &self,
        org: Uuid,
        checkout_id: String,
        now: Millis,
    ) -> Result<Option<(Uuid, Option<Millis>)>, StoreError> {
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q(
                        "select profile_id, total_cents, currency, url, items from checkouts \
                       where org_id = $1 and id = $2 and status = 'open'",
                    )
                    .bind(org)
                    .bind(checkout_id.as_str()),
                )
                .await?;
            let Some(r) = r else { return Ok(None) };
            let (total, currency, url, items) =
                (r.opt_i64(1)?, r.opt_text(2)?, r.opt_text(3)?, r.i64(4)?);
            let root = root_of(db, org, r.uuid(0)?).await?.unwrap_or(r.uuid(0)?);
            db.exec(
                q("update checkouts set status = 'abandoned', updated_at = $3 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(checkout_id.as_str())
                    .bind(now),
            )
            .await?;
            let money = total
                .map(|t| {
                    format!(
                        ", {}.{:02}{}",
                        t / 100,
                        t % 100,
                        currency
                            .as_deref()
                            .map(|c| format!(" {c}"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let items = if items == 1 {
                "1 item".to_string()
            } else {
                format!("{items} items")
            };
            let data = json!({"checkout_id": checkout_id, "total_cents": total, "currency": currency, "url": url});
            db.exec(
                q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, data, event_key) \
                   values ($1, $2, $3, $3, $4, 'checkout_abandoned', 'shopify', $5, $6, $7) on conflict do nothing")
                .bind(org)
                .bind(new_id())
                .bind(root)
                .bind(now)
                .bind(format!("Abandoned checkout: {items}{money}"))
                .bind(data.to_string())
                .bind(format!("checkout_abandoned:{checkout_id}")),
            )
            .await?;
            db.exec(
                q("update leads set last_event = $3, updated_at = $4 where org_id = $1 and profile_id = $2")
                    .bind(org)
                    .bind(root)
                    .bind(format!("Abandoned checkout: {items}{money}"))
                    .bind(now),
            )
            .await?;
            let total_text = total.map(|t| {
                format!(
                    "{}.{:02}{}",
                    t / 100,
                    t % 100,
                    currency
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default()
                )
            });
            let ctx =
                json!({ "cart_url": url, "cart_total": total_text, "checkout_id": checkout_id });
            let mut timers = Vec::new();
            crate::nudge::trigger_tx(
                db,
                org,
                root,
                "checkout_abandoned",
                None,
                &ctx,
                now,
                now,
                &mut timers,
            )
            .await?;
            Ok(Some((root, timers.into_iter().min())))
        })
    }

    /// The live feed: leads by last change, newest first.
    pub async fn lead_feed(&self, org: Uuid, f: &LeadFilter) -> Result<Vec<Lead>, StoreError> {
        let mut sql = format!(
            "select {LEAD_COLS} from leads l join profiles p on p.org_id = l.org_id and p.id = l.profile_id \
             where l.org_id = $1 and p.merged_into is null"
        );
        let mut query = q("").bind(org);
        let mut n = 1;
        if let Some(s) = &f.state {
            n += 1;
            sql.push_str(&format!(" and l.state = ${n}"));
            query = query.bind(s.as_str());
        }
        if let Some(c) = &f.category {
            n += 1;
            sql.push_str(&format!(" and l.category = ${n}"));
            query = query.bind(c.as_str());
        }
        match (f.before, f.before_id) {
            (Some(b), Some(id)) => {
                // Ties on the time are broken by id, so no lead sharing the
                // last row's time is skipped or shown twice.
                sql.push_str(&format!(
                    " and (l.updated_at < ${} or (l.updated_at = ${} and l.profile_id < ${}))",
                    n + 1,
                    n + 1,
                    n + 2
                ));
                n += 2;
                query = query.bind(b).bind(id);
            }
            (Some(b), None) => {
                n += 1;
                sql.push_str(&format!(" and l.updated_at < ${n}"));
                query = query.bind(b);
            }
            _ => {}
        }
        n += 1;
        sql.push_str(&format!(
            " order by l.updated_at desc, l.profile_id desc limit ${n}"
        ));
        query = query.bind(i64::from(f.limit.clamp(1, 500)));
        query.sql = sql;
        let rows = crate::sql::read_rows(self, query).await?;
        rows.iter().map(lead_row).collect()
    }

    /// One profile's lead, if it has one.
    pub async fn lead(&self, org: Uuid, profile: Uuid) -> Result<Option<Lead>, StoreError> {
        let sql = format!(
            "select {LEAD_COLS} from leads l join profiles p on p.org_id = l.org_id and p.id = l.profile_id \
             where l.org_id = $1 and l.profile_id = (select root_id from profiles where org_id = $1 and id = $2)"
        );
        let rows = crate::sql::read_rows(self, q(sql).bind(org).bind(profile)).await?;
        rows.first().map(lead_row).transpose()
    }

    /// Leads per state and per intent category.
    pub async fn lead_counts(
        &self,
        org: Uuid,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>), StoreError> {
        let by = |col: &str| {
            format!(
                "select l.{col}, count(*) from leads l join profiles p on p.org_id = l.org_id and p.id = l.profile_id \
                 where l.org_id = $1 and p.merged_into is null group by l.{col}"
            )
        };
        let states = crate::sql::read_rows(self, q(by("state")).bind(org)).await?;
        let cats = crate::sql::read_rows(self, q(by("category")).bind(org)).await?;
        let pairs = |rows: Vec<Row>| -> Result<Vec<(String, i64)>, StoreError> {
            rows.iter().map(|r| Ok((r.text(0)?, r.i64(1)?))).collect()
        };
        Ok((pairs(states)?, pairs(cats)?))
    }

    /// A lead's state history, oldest first.
    pub async fn lead_history(
        &self,
        org: Uuid,
        profile: Uuid,
    ) -> Result<Vec<LeadTransitionRow>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select from_state, to_state, reason, actor, at from lead_transitions \
               where org_id = $1 and profile_id = (select root_id from profiles where org_id = $1 and id = $2) \
               order by at, id")
            .bind(org)
            .bind(profile),
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LeadTransitionRow {
                    from_state: r.text(0)?,
                    to_state: r.text(1)?,
                    reason: r.text(2)?,
                    actor: r.text(3)?,
                    at: r.i64(4)?,
                })
            })
            .collect()
    }
}

/// Moves a lead outside the event flow.
async fn set_state<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    t: &Transition,
    actor: &str,
    now: Millis,
) -> Result<(), StoreError> {
    record_transition(db, org, root, t, actor, now, None).await?;
    db.exec(
        q(
            "update leads set state = $3, state_at = $4, updated_at = $4, \
           last_event = $5 where org_id = $1 and profile_id = $2",
        )
        .bind(org)
        .bind(root)
        .bind(t.to.as_str())
        .bind(now)
        .bind(format!("{} → {}", t.from.label(), t.to.label())),
    )
    .await?;
    if !leads::is_open(t.to) || t.to == LeadState::Ghosting {
        cancel_timer(db, org, GHOST_JOB, &format!("ghost:{root}")).await?;
    }
    Ok(())
}

async fn read_db<F>(
    store: &crate::Store,
    make: F,
    org: Uuid,
    source: Option<Uuid>,
    status: Option<String>,
    limit: u32,
) -> Result<Vec<Row>, StoreError>
where
    F: FnOnce(&str, &str) -> String,
{
    let mut query = q("").bind(org).bind(i64::from(limit.clamp(1, 500)));
    let mut n = 2;
    let src = match source {
        Some(s) => {
            n += 1;
            query = query.bind(s);
            format!("and source_id = ${n}")
        }
        None => String::new(),
    };
    let st = match status {
        Some(s) => {
            n += 1;
            query = query.bind(s);
            format!("and status = ${n}")
        }
        None => String::new(),
    };
    query.sql = make(&src, &st);
    crate::sql::read_rows(store, query).await
}
