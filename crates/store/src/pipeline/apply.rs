//! Applying a batch of stored events in one transaction: per event,
//! identity, timeline, intent, lead state, nudges, checkouts and their
//! timers, and the event's `processed` mark, all committed together.

use super::leads::{load_lead, record_transition};
use super::{
    cancel_ghost_timer, cancel_timer, set_ghost_timer, set_timer, Applied, AppliedEvent,
    BatchResult, Item, Ready, Work, ABANDON_JOB, VISIT_GAP_MS,
};
use crate::engine::write_db;
use crate::identity::{insert_entry, resolve_tx, IdentifyAction, IdentifyInput, NewEvent};
use crate::sql::{q, Db};
use crate::{new_id, StoreError};
use bos_core::intake::interpret::{Entry, GroupTouch};
use bos_core::intent::{self, Signals};
use bos_core::leads::{self, Input, LeadState};
use bos_core::Millis;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

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
        set_ghost_timer(db, org, root, due, now).await?;
        timers.push(due);
    } else if !leads::is_open(lead.state) {
        cancel_ghost_timer(db, org, root).await?;
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
            // A message on the form becomes the customer's message in the
            // inbox: the timer here makes sure it does (see `inbox::copies`).
            if let Some(text) = sig
                .form_fields
                .get(bos_core::inbox::FORM_MESSAGE_FIELD)
                .filter(|t| !t.trim().is_empty())
            {
                let due = crate::inbox::form_copy_tx(db, org, ev.id, root, text, now).await?;
                timers.push(due);
            }
            crate::nudge::stop_tx(
                db,
                org,
                root,
                bos_core::nudge::Event::FormFinished,
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
            cancel_timer(db, org, ABANDON_JOB, &format!("checkout:{}", r.text("id")?)).await?;
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
        Some(r) => serde_json::from_str(&r.text("traits")?).unwrap_or_default(),
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

impl crate::Store {
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
}
