//! Timers: scheduler jobs held by a unique key that later events move or
//! cancel (a lead's ghosting window, a checkout's abandonment, a nudge
//! step). The one implementation of the timer upsert, written over [`Db`]
//! so it runs inside whatever transaction the caller has open: the intake
//! pipeline and the nudges set timers in the same commit as the event that
//! caused them, and [`crate::Store::schedule_or_replace_job`] wraps it in a
//! transaction of its own.
//!
//! Setting a timer moves the pending job holding its key to the new time
//! and payload with a fresh attempt budget. A job already running keeps
//! running but gives up the key, and a new pending job takes it. A parked
//! job keeps its key for display but no longer holds it, so it is never
//! touched. Cancelling deletes only the pending holder.

use crate::jobs::Scheduled;
use crate::sql::{q, Db};
use crate::{new_id, StoreError};
use bos_core::Millis;
use uuid::Uuid;

/// Rounds of move-or-insert before giving up: on PostgreSQL a concurrent
/// setter may insert between our update and insert; the next round then
/// finds its row and moves it.
const ROUNDS: usize = 3;

/// A timer to set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer<'a> {
    pub(crate) org: Uuid,
    /// The handler that runs it (a job kind).
    pub(crate) kind: &'a str,
    /// At most one pending timer per (org, kind, key).
    pub(crate) key: &'a str,
    /// JSON text handed to the handler.
    pub(crate) payload: &'a str,
    pub(crate) run_at: Millis,
    pub(crate) max_attempts: u32,
}

/// Sets a timer (see the module's rules), inside the caller's transaction.
/// `created` is false when a pending timer was moved.
pub(crate) async fn set_with<D: Db>(
    db: &mut D,
    t: &Timer<'_>,
    now: Millis,
) -> Result<Scheduled, StoreError> {
    let max_attempts = i64::from(t.max_attempts.max(1));
    for _ in 0..ROUNDS {
        // The redundant `state <> 'parked'` repeats the partial unique
        // index's condition so SQLite uses the index (it does not infer it
        // from `state = 'pending'`); without it these scan the tenant's jobs.
        let moved = db
            .opt(
                q(
                    "update jobs set payload = $4, run_at = $5, max_attempts = $6, attempts = 0, \
                   last_error = null, updated_at = $7 \
                   where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked' \
                   and state = 'pending' returning id",
                )
                .bind(t.org)
                .bind(t.kind)
                .bind(t.key)
                .bind(t.payload)
                .bind(t.run_at)
                .bind(max_attempts)
                .bind(now),
            )
            .await?;
        if let Some(r) = moved {
            return Ok(Scheduled {
                id: r.uuid("id")?,
                created: false,
            });
        }
        db.exec(
            q("update jobs set unique_key = null, updated_at = $4 \
               where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked' \
               and state = 'running'")
            .bind(t.org)
            .bind(t.kind)
            .bind(t.key)
            .bind(now),
        )
        .await?;
        let id = new_id();
        let inserted = db
            .exec(
                q("insert into jobs (org_id, id, kind, unique_key, payload, state, run_at, attempts, \
                   max_attempts, created_at, updated_at) \
                   values ($1, $2, $3, $4, $5, 'pending', $6, 0, $7, $8, $8) \
                   on conflict (org_id, kind, unique_key) where unique_key is not null \
                   and state <> 'parked' do nothing")
                .bind(t.org)
                .bind(id)
                .bind(t.kind)
                .bind(t.key)
                .bind(t.payload)
                .bind(t.run_at)
                .bind(max_attempts)
                .bind(now),
            )
            .await?;
        if inserted == 1 {
            return Ok(Scheduled { id, created: true });
        }
    }
    Err(StoreError::Conflict(
        "jobs_unique_key: the key kept changing hands; schedule again".into(),
    ))
}

/// A timer with the default attempt budget: the form the pipeline and the
/// nudges use.
pub(crate) async fn set<D: Db>(
    db: &mut D,
    org: Uuid,
    kind: &str,
    key: &str,
    payload: String,
    run_at: Millis,
    now: Millis,
) -> Result<Scheduled, StoreError> {
    let t = Timer {
        org,
        kind,
        key,
        payload: &payload,
        run_at,
        max_attempts: crate::jobs::DEFAULT_MAX_ATTEMPTS,
    };
    set_with(db, &t, now).await
}

/// Cancels the pending timer holding `(kind, key)`; a running one is not
/// stopped. Whether one was cancelled.
pub(crate) async fn cancel<D: Db>(
    db: &mut D,
    org: Uuid,
    kind: &str,
    key: &str,
) -> Result<bool, StoreError> {
    let n = db
        .exec(
            // `state <> 'parked'`: see `set_with`.
            q(
                "delete from jobs where org_id = $1 and kind = $2 and unique_key = $3 \
               and state <> 'parked' and state = 'pending'",
            )
            .bind(org)
            .bind(kind)
            .bind(key),
        )
        .await?;
    Ok(n > 0)
}
