//! Leads: the per-profile row (state, score, counters), its history with
//! reasons, the moves made outside the event flow (the ghosting timer, a
//! person's action, an abandoned checkout), and the feed's reads.

use super::{
    cancel_ghost_timer, root_of, set_ghost_timer, Lead, LeadChanged, LeadFilter, LeadTransitionRow,
};
use crate::engine::write_db;
use crate::sql::{q, Db, Row};
use crate::{new_id, StoreError};
use bos_core::intent::Category;
use bos_core::leads::{self, Input, LeadState, Transition};
use bos_core::Millis;
use serde_json::json;
use uuid::Uuid;

const LEAD_COLS: &str =
    "l.profile_id as profile_id, p.display_name as display_name, p.primary_email as email, \
     p.primary_phone as phone, p.ltv_cents as ltv_cents, l.state as state, l.state_at as state_at, \
     l.score as score, l.category as category, l.fired as fired, l.last_event as last_event, \
     l.pages_viewed as pages_viewed, l.visits as visits, l.open_cart_cents as open_cart_cents, \
     l.assignee as assignee, p.tags as tags, l.last_seen_at as last_seen_at, \
     l.created_at as created_at, l.updated_at as updated_at";

fn lead_row(r: &Row) -> Result<Lead, StoreError> {
    let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
    Ok(Lead {
        profile_id: r.uuid("profile_id")?,
        display_name: r.text("display_name")?,
        email: r.text("email")?,
        phone: r.text("phone")?,
        ltv_cents: r.i64("ltv_cents")?,
        state: r.parsed("state", LeadState::parse)?,
        state_at: r.i64("state_at")?,
        score: r.i64("score")?,
        category: r.parsed("category", Category::parse)?,
        fired: json(r.text("fired")?),
        last_event: r.text("last_event")?,
        pages_viewed: r.i64("pages_viewed")?,
        visits: r.i64("visits")?,
        open_cart_cents: r.opt_i64("open_cart_cents")?,
        assignee: r.opt_text("assignee")?,
        tags: json(r.text("tags")?),
        last_seen_at: r.i64("last_seen_at")?,
        created_at: r.i64("created_at")?,
        updated_at: r.i64("updated_at")?,
    })
}

/// The lead row's mutable part.
#[derive(Debug, Clone)]
pub(super) struct LeadRow {
    pub(super) state: LeadState,
    pub(super) state_at: Millis,
    pub(super) pages_viewed: i64,
    pub(super) visits: i64,
    pub(super) open_cart_cents: Option<i64>,
    pub(super) last_seen_at: Millis,
    pub(super) nudges_sent: i64,
    pub(super) exists: bool,
}

pub(super) async fn load_lead<D: Db>(
    db: &mut D,
    org: Uuid,
    profile: Uuid,
) -> Result<LeadRow, StoreError> {
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
            state: r.parsed("state", LeadState::parse)?,
            state_at: r.i64("state_at")?,
            pages_viewed: r.i64("pages_viewed")?,
            visits: r.i64("visits")?,
            open_cart_cents: r.opt_i64("open_cart_cents")?,
            last_seen_at: r.i64("last_seen_at")?,
            nudges_sent: r.i64("nudges_sent")?,
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

/// Records a lead's move: history row, timeline entry, the profile's
/// `lead_state` column. The `leads` row itself is the caller's.
pub(super) async fn record_transition<D: Db>(
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

impl crate::Store {
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
                    set_ghost_timer(db, org, root, due, now).await?;
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
                    crate::nudge::stop_tx(db, org, root, bos_core::nudge::Event::Lost, None, now)
                        .await?;
                }
                _ => {}
            }
            // A reopened lead is engaged again: it ghosts, like any other,
            // after the threshold without activity from now.
            let ghost_timer_at = if t.to == LeadState::Engaged {
                let due = leads::ghost_due_at(now, &settings.leads);
                set_ghost_timer(db, org, root, due, now).await?;
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
        super::found(n)
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
            let mut tags: Vec<String> = serde_json::from_str(&r.text("tags")?).unwrap_or_default();
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
            let (total, currency, url, items) = (
                r.opt_i64("total_cents")?,
                r.opt_text("currency")?,
                r.opt_text("url")?,
                r.i64("items")?,
            );
            let profile = r.uuid("profile_id")?;
            let root = root_of(db, org, profile).await?.unwrap_or(profile);
            db.exec(
                q("update checkouts set status = 'abandoned', updated_at = $3 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(checkout_id.as_str())
                    .bind(now),
            )
            .await?;
            let total_text = total.map(|t| amount(t, currency.as_deref()));
            let money = total_text
                .as_ref()
                .map(|t| format!(", {t}"))
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
                "select l.{col} as bucket, count(*) as n from leads l join profiles p on p.org_id = l.org_id and p.id = l.profile_id \
                 where l.org_id = $1 and p.merged_into is null group by l.{col}"
            )
        };
        let states = crate::sql::read_rows(self, q(by("state")).bind(org)).await?;
        let cats = crate::sql::read_rows(self, q(by("category")).bind(org)).await?;
        // Each name goes through its type's mapping (an unknown one is an
        // error), and is handed on as its name: the counts are keyed by
        // what the page and the API show.
        let states = states
            .iter()
            .map(|r| {
                let s = r.parsed("bucket", LeadState::parse)?;
                Ok((s.as_str().to_string(), r.i64("n")?))
            })
            .collect::<Result<_, StoreError>>()?;
        let cats = cats
            .iter()
            .map(|r| {
                let c = r.parsed("bucket", Category::parse)?;
                Ok((c.as_str().to_string(), r.i64("n")?))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((states, cats))
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
                    from_state: r.parsed("from_state", LeadState::parse)?,
                    to_state: r.parsed("to_state", LeadState::parse)?,
                    reason: r.text("reason")?,
                    actor: r.text("actor")?,
                    at: r.i64("at")?,
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
        cancel_ghost_timer(db, org, root).await?;
    }
    Ok(())
}

/// An amount in cents as the timeline and the nudge context show it:
/// `12.50 USD` (the currency when known).
fn amount(cents: i64, currency: Option<&str>) -> String {
    let currency = currency.map(|c| format!(" {c}")).unwrap_or_default();
    format!("{}.{:02}{currency}", cents / 100, cents % 100)
}
