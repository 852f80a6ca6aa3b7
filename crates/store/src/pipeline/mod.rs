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
//!
//! The rooms: `queue` (what is due, failures, retries, the sources page's
//! reads), `apply` (the batch transaction), `leads` (the lead row, its
//! moves and the feed), `backfill` (lead states that match the order
//! history, for customers who did not come through the event flow), `settings` (a tenant's intake settings and the
//! `group` accounts). The timer upsert itself is `crate::timers`.

mod apply;
mod backfill;
mod leads;
mod queue;
mod settings;

pub use backfill::LeadSync;
pub use settings::CustomerGroup;

use crate::identity::Traits;
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::identity::{Identifier, IdentityRules};
use bos_core::intake::interpret::Interpreted;
use bos_core::intent::{Category, Intent, IntentRules};
use bos_core::leads::{LeadSettings, LeadState, Transition};
use bos_core::Millis;
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
    pub state: LeadState,
    pub state_at: Millis,
    pub score: i64,
    pub category: Category,
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
    pub from_state: LeadState,
    pub to_state: LeadState,
    pub reason: String,
    pub actor: String,
    pub at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub state: Option<LeadState>,
    pub category: Option<Category>,
    /// The feed's cursor: leads after this (updated_at, profile id) in the
    /// feed's order. Without an id, only leads updated before the time.
    pub before: Option<Millis>,
    pub before_id: Option<Uuid>,
    pub limit: u32,
}

/// A write that had to touch a row: `NotFound` when it touched none.
fn found(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Retry delay after the n-th failed attempt: 1 s doubling, at most 10 min.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    (1_000i64 << attempts.min(10)).min(600_000)
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
    r.map(|r| r.uuid("root_id")).transpose()
}

// The pipeline's timers (ghosting, abandoned checkout) use the one timer upsert.
pub(crate) use crate::timers::{cancel as cancel_timer, set as set_timer};

/// Sets (or moves) the lead's ghosting timer: one per customer, keyed on
/// its root, so setting it again moves the one timer.
pub(crate) async fn set_ghost_timer<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    due: Millis,
    now: Millis,
) -> Result<(), StoreError> {
    let payload = serde_json::json!({ "profile_id": root }).to_string();
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
    Ok(())
}

/// Cancels the lead's ghosting timer (it closed).
pub(crate) async fn cancel_ghost_timer<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
) -> Result<(), StoreError> {
    cancel_timer(db, org, GHOST_JOB, &format!("ghost:{root}")).await?;
    Ok(())
}
