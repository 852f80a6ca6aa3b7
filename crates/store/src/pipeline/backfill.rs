//! Lead states that match the data: every customer gets a lead row, and
//! one with orders on record is `converted` (with the reason), whether the
//! customer came through the event flow, an import, the demo's seed, or
//! existed before leads did. The rule is core's
//! ([`bos_core::leads::state_from_orders`]); this finds the customers it
//! has not been applied to and applies it, a batch per transaction, so an
//! import's end, the demo's start and the operator's `bos leads backfill`
//! share one path. Running it again finds nothing to do.

use super::leads::record_transition;
use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::leads::{self, LeadState};
use bos_core::Millis;
use serde::Serialize;
use uuid::Uuid;

/// Customers per transaction: small enough that a large tenant's backfill
/// never holds the writer long, large enough that commits do not dominate.
const BATCH: i64 = 500;

/// What a backfill did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LeadSync {
    /// Customers who had no lead and got one as `new`.
    pub created_new: u64,
    /// Customers moved to `converted` because they have orders (with or
    /// without a lead before).
    pub converted: u64,
}

impl crate::Store {
    /// Gives every customer of `org` a lead whose state matches their
    /// orders (see the module). `actor` is who the history names (`import`,
    /// `demo`, `backfill`).
    pub async fn sync_lead_states(
        &self,
        org: Uuid,
        actor: &str,
        now: Millis,
    ) -> Result<LeadSync, StoreError> {
        let mut total = LeadSync::default();
        loop {
            let actor = actor.to_string();
            let (batch, n) = write_db!(self, |db| async move {
                // Roots only (merged profiles share their root's lead): no
                // lead yet, or an open one while orders are on record.
                let rows = db
                    .rows(
                        q("select p.id, p.order_count, p.last_active_at, l.state from profiles p \
                           left join leads l on l.org_id = p.org_id and l.profile_id = p.id \
                           where p.org_id = $1 and p.merged_into is null and (l.profile_id is null or \
                           (l.state in ('new', 'engaged', 'ghosting') and p.order_count > 0)) \
                           order by p.id limit $2")
                        .bind(org)
                        .bind(BATCH),
                    )
                    .await?;
                let mut done = LeadSync::default();
                for r in &rows {
                    let id = r.uuid("id")?;
                    let current = match r.opt_text("state")? {
                        Some(s) => Some(
                            LeadState::parse(&s)
                                .ok_or_else(|| StoreError::unknown_value("state", &s))?,
                        ),
                        None => None,
                    };
                    // The move is dated at their last activity, the
                    // closest known time to the order that made it.
                    let at = r.i64("last_active_at")?.min(now);
                    if current.is_none() {
                        db.exec(
                            q("insert into leads (org_id, profile_id, state, state_at, last_seen_at, created_at, updated_at) \
                               values ($1, $2, 'new', $3, $3, $4, $4) on conflict do nothing")
                            .bind(org)
                            .bind(id)
                            .bind(at)
                            .bind(now),
                        )
                        .await?;
                    }
                    match leads::state_from_orders(current, r.i64("order_count")?) {
                        Some(t) => {
                            record_transition(db, org, id, &t, &actor, at, None).await?;
                            db.exec(
                                q(
                                    "update leads set state = $3, state_at = $4, last_event = $5 \
                                   where org_id = $1 and profile_id = $2",
                                )
                                .bind(org)
                                .bind(id)
                                .bind(t.to.as_str())
                                .bind(at)
                                .bind(format!(
                                    "{} \u{2192} {}",
                                    t.from.label(),
                                    t.to.label()
                                )),
                            )
                            .await?;
                            done.converted += 1;
                        }
                        None => {
                            db.exec(
                                q("update profiles set lead_state = 'new' where org_id = $1 and id = $2")
                                    .bind(org)
                                    .bind(id),
                            )
                            .await?;
                            done.created_new += 1;
                        }
                    }
                }
                Ok((done, rows.len() as i64))
            })?;
            total.created_new += batch.created_new;
            total.converted += batch.converted;
            if n < BATCH {
                return Ok(total);
            }
        }
    }
}
