//! Conformance suite for the intake pipeline's storage (both engines):
//! applying stored events exactly once, lead transitions with their
//! history and timeline, the timers the pipeline keeps, the lead feed's
//! filters and cursor, and tenant isolation.

use bos_core::identity::{normalize, IdentifierKind};
use bos_core::intake::interpret::interpret;
use bos_core::jobs::JobState;
use bos_core::leads::{self, Input, LeadSettings, LeadState};
use bos_core::{OrgName, Slug};
use bos_store::identity::{TimelineQuery, Traits};
use bos_store::intake::{NewInbound, NewSource, SourceKind};
use bos_store::jobs::{Finished, Outcome};
use bos_store::pipeline::{Applied, DueEvent, Item, LeadFilter, Ready, Work, GHOST_JOB};
use bos_store::testing::TestDb;
use bos_store::{Store, StoreError};
use std::sync::Arc;
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;

async fn org(s: &Store, slug: &str) -> Uuid {
    s.create_org(
        &OrgName::parse(slug).unwrap(),
        &Slug::parse(slug).unwrap(),
        1,
    )
    .await
    .unwrap()
    .id
}

/// An organization with a form source.
async fn setup() -> (TestDb, Uuid, Uuid) {
    let db = TestDb::new().await.unwrap();
    let org = org(&db.store, "acme").await;
    let source = db
        .store
        .create_source(
            org,
            NewSource {
                kind: SourceKind::Form,
                name: "Site".into(),
                secret: None,
                key_hash: None,
                config: None,
            },
            T0,
        )
        .await
        .unwrap();
    (db, org, source.id)
}

/// A form event from `email`: `form_submitted` engages a new lead.
fn form(id: &str, kind: &str, email: &str) -> NewInbound {
    NewInbound {
        external_id: id.into(),
        kind: kind.into(),
        payload: serde_json::json!({
            "type": kind,
            "fields": {"email": email, "first_name": "Ann"},
            "session_id": format!("s-{email}"),
            "page_url": "https://l.test/",
        })
        .to_string(),
    }
}

/// What the engine makes of a stored event, in short: read it, normalize
/// its identifiers under the default rules.
fn work(ev: &DueEvent) -> Work {
    let interp = match interpret(
        &ev.source_kind,
        &ev.kind,
        ev.payload.as_bytes(),
        ev.received_at,
    ) {
        Ok(i) => i,
        Err(e) => return Work::Park(e.to_string()),
    };
    let identifiers: Vec<_> = interp
        .identifiers
        .iter()
        .filter_map(|(k, v)| normalize(&IdentifierKind::parse(k).ok()?, v, "US").ok())
        .collect();
    if identifiers.is_empty() {
        return Work::Skip("names nobody".into());
    }
    Work::Apply(Box::new(Ready {
        identifiers,
        traits: Traits {
            first_name: interp.first_name.clone(),
            last_name: interp.last_name.clone(),
            company: interp.company.clone(),
            custom: interp.traits.clone(),
        },
        interp,
    }))
}

/// Stores `events` at `now` and applies everything due, one batch.
async fn ingest_and_apply(
    s: &Store,
    org: Uuid,
    source: Uuid,
    events: Vec<NewInbound>,
    now: i64,
) -> Vec<Applied> {
    s.ingest(org, source, events, now).await.unwrap();
    apply_due(s, now).await
}

async fn apply_due(s: &Store, now: i64) -> Vec<Applied> {
    let due = s.due_inbound(now, 100).await.unwrap();
    let settings = Arc::new(s.pipeline_settings(due[0].org_id).await.unwrap());
    let items: Arc<[Item]> = due
        .iter()
        .map(|ev| Item {
            event: ev.clone(),
            work: work(ev),
            settings: settings.clone(),
        })
        .collect();
    let r = s.apply_inbound(items, now).await.unwrap();
    r.events.into_iter().map(|e| e.applied).collect()
}

fn profile_of(a: &Applied) -> Uuid {
    match a {
        Applied::Processed { profile_id, .. } | Applied::Replayed { profile_id } => *profile_id,
        other => panic!("not applied: {other:?}"),
    }
}

/// Ann sends the form at `T0`: a new, engaged lead.
async fn ann_engages(s: &Store, org: Uuid, src: Uuid) -> Vec<Applied> {
    ingest_and_apply(
        s,
        org,
        src,
        vec![form("e1", "form_submitted", "ann@example.com")],
        T0,
    )
    .await
}

fn ghost_key(p: Uuid) -> String {
    format!("ghost:{p}")
}

#[tokio::test]
async fn a_stored_event_applies_once_and_its_replay_changes_nothing() {
    let (db, org, src) = setup().await;
    let s = &db.store;
    let applied = ann_engages(s, org, src).await;
    let [Applied::Processed {
        profile_id,
        state,
        transition,
        created,
        ..
    }] = applied.as_slice()
    else {
        panic!("{applied:?}")
    };
    assert!(*created);
    assert_eq!(*state, LeadState::Engaged);
    assert_eq!(transition.as_ref().map(|t| t.to), Some(LeadState::Engaged));
    let audit = s.intake_audit(org).await.unwrap();
    let deliveries = s.deliveries(org, Some(src), None, 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, "processed");
    assert_eq!(deliveries[0].profile_id, Some(*profile_id));

    // The same batch again (another worker that read it too): nothing to do.
    let ev = deliveries[0].id;
    assert!(s.due_inbound(T0 + 10, 10).await.unwrap().is_empty());
    // A replay (put back in the queue by a person) finds its effects there.
    s.requeue_inbound(org, ev, T0 + 20).await.unwrap();
    let again = apply_due(s, T0 + 20).await;
    assert_eq!(
        again,
        vec![Applied::Replayed {
            profile_id: *profile_id
        }]
    );
    assert_eq!(s.intake_audit(org).await.unwrap(), audit);
    assert_eq!(s.lead_history(org, *profile_id).await.unwrap().len(), 1);
    // Applying an item whose event is no longer pending: already done.
    let due = DueEvent {
        org_id: org,
        id: ev,
        source_id: src,
        source_kind: "form".into(),
        external_id: "e1".into(),
        kind: "form_submitted".into(),
        payload: form("e1", "form_submitted", "ann@example.com").payload,
        received_at: T0,
        attempts: 0,
        next_at: T0,
    };
    let item = Item {
        work: work(&due),
        event: due,
        settings: Arc::new(s.pipeline_settings(org).await.unwrap()),
    };
    let r = s.apply_inbound(Arc::from([item]), T0 + 30).await.unwrap();
    assert_eq!(r.events[0].applied, Applied::AlreadyDone);
    // A duplicate delivery (the same key) is not stored twice.
    let dup = s
        .ingest(
            org,
            src,
            vec![form("e1", "form_submitted", "ann@example.com")],
            T0 + 40,
        )
        .await
        .unwrap();
    assert_eq!((dup.inserted, dup.duplicates), (0, 1));
}

#[tokio::test]
async fn lead_moves_are_recorded_with_history_and_timeline() {
    let (db, org, src) = setup().await;
    let s = &db.store;
    let p = profile_of(&ann_engages(s, org, src).await[0]);
    let changed = s
        .lead_action(
            org,
            p,
            Input::MarkConverted,
            "rep@example.com".into(),
            T0 + 1_000,
        )
        .await
        .unwrap()
        .expect("a move");
    assert_eq!(changed.transition.to, LeadState::Converted);
    // Converted is final: marking it lost moves nothing.
    assert!(s
        .lead_action(
            org,
            p,
            Input::MarkLost,
            "rep@example.com".into(),
            T0 + 2_000
        )
        .await
        .unwrap()
        .is_none());

    let history = s.lead_history(org, p).await.unwrap();
    let moves: Vec<_> = history
        .iter()
        .map(|h| {
            (
                h.from_state.as_str(),
                h.to_state.as_str(),
                h.actor.as_str(),
                h.at,
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            ("new", "engaged", "pipeline", T0),
            ("engaged", "converted", "rep@example.com", T0 + 1_000),
        ]
    );
    let lead = s.lead(org, p).await.unwrap().unwrap();
    assert_eq!(lead.state, "converted");
    assert_eq!(lead.state_at, T0 + 1_000);
    let timeline = s
        .timeline(
            org,
            p,
            &TimelineQuery {
                kinds: vec!["lead_state".into()],
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    assert!(timeline.iter().all(|e| e.kind == "lead_state"));
    // A converted lead has no ghosting timer.
    assert!(s
        .job_by_key(org, GHOST_JOB, &ghost_key(p))
        .await
        .unwrap()
        .is_none());
    // The state counts see it.
    let (states, _) = s.lead_counts(org).await.unwrap();
    assert_eq!(states, vec![("converted".to_string(), 1)]);
}

#[tokio::test]
async fn timers_move_when_pending_leave_running_jobs_and_never_touch_parked_ones() {
    let (db, org, src) = setup().await;
    let s = &db.store;
    let rules = LeadSettings::default();
    let p = profile_of(&ann_engages(s, org, src).await[0]);
    let key = ghost_key(p);
    // Engaged: the ghosting timer waits from the activity.
    let first = s.job_by_key(org, GHOST_JOB, &key).await.unwrap().unwrap();
    assert_eq!(first.state, JobState::Pending);
    assert_eq!(first.run_at, leads::ghost_due_at(T0, &rules));

    // Active since: when the timer fires early it moves itself (the same
    // job) to the new end of the window.
    ingest_and_apply(
        s,
        org,
        src,
        vec![form("e2", "form_started", "ann@example.com")],
        T0 + 60_000,
    )
    .await;
    let (moved, due) = s.lead_inactivity(org, p, first.run_at).await.unwrap();
    assert!(moved.is_none());
    let due = due.expect("set again");
    let pending = s.job_by_key(org, GHOST_JOB, &key).await.unwrap().unwrap();
    assert_eq!((pending.id, pending.run_at), (first.id, due));
    assert_eq!(due, leads::ghost_due_at(T0 + 60_000, &rules));

    // Running: the job keeps running but gives its key to a new one.
    let claimed = s
        .claim_jobs("w1", i64::MAX / 2, 10, T0 + 9_000_000_000, T0 + 100)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    let by = "rep@example.com".to_string();
    s.lead_action(org, p, Input::MarkLost, by.clone(), T0 + 200)
        .await
        .unwrap()
        .expect("lost");
    // Cancelling leaves a running job alone.
    let running = s.job(org, first.id).await.unwrap().unwrap();
    assert_eq!(running.state, JobState::Running);
    let reopened = s
        .lead_action(org, p, Input::Reopen, by.clone(), T0 + 300)
        .await
        .unwrap()
        .expect("reopened");
    assert_eq!(
        reopened.ghost_timer_at,
        Some(leads::ghost_due_at(T0 + 300, &rules))
    );
    let running = s.job(org, first.id).await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.unique_key.as_deref()),
        (JobState::Running, None)
    );
    let second = s.job_by_key(org, GHOST_JOB, &key).await.unwrap().unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(
        (second.state, second.run_at),
        (JobState::Pending, leads::ghost_due_at(T0 + 300, &rules))
    );

    // Parked: it keeps its key for display, and setting the timer again
    // adds a new job without touching it.
    let claimed = s
        .claim_jobs("w2", i64::MAX / 2, 10, T0 + 9_000_000_000, T0 + 400)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![second.id]
    );
    s.finish_jobs(
        "w2",
        vec![Finished {
            org_id: org,
            id: second.id,
            outcome: Outcome::Park {
                error: "gave up".into(),
            },
        }],
        T0 + 500,
    )
    .await
    .unwrap();
    let parked = s.job(org, second.id).await.unwrap().unwrap();
    assert_eq!(parked.state, JobState::Parked);
    s.lead_action(org, p, Input::MarkLost, by.clone(), T0 + 600)
        .await
        .unwrap()
        .expect("lost");
    s.lead_action(org, p, Input::Reopen, by, T0 + 700)
        .await
        .unwrap()
        .expect("reopened");
    assert_eq!(s.job(org, second.id).await.unwrap().unwrap(), parked);
    let third = s.job_by_key(org, GHOST_JOB, &key).await.unwrap().unwrap();
    assert!(third.id != first.id && third.id != second.id);
    assert_eq!(third.state, JobState::Pending);

    // Converting cancels the pending one.
    s.lead_action(
        org,
        p,
        Input::MarkConverted,
        "rep@example.com".into(),
        T0 + 800,
    )
    .await
    .unwrap()
    .expect("converted");
    assert!(s.job(org, third.id).await.unwrap().is_none());
    assert_eq!(s.job(org, second.id).await.unwrap().unwrap(), parked);
}

#[tokio::test]
async fn the_lead_feed_filters_by_state_and_category_and_pages_by_cursor() {
    let (db, org, src) = setup().await;
    let s = &db.store;
    let mut profiles = Vec::new();
    for i in 0..5i64 {
        let applied = ingest_and_apply(
            s,
            org,
            src,
            vec![form(
                &format!("e{i}"),
                "form_submitted",
                &format!("p{i}@example.com"),
            )],
            // Two leads share each change time: the cursor breaks ties by id.
            T0 + (i / 2) * 1_000,
        )
        .await;
        profiles.push(profile_of(&applied[0]));
    }
    s.lead_action(
        org,
        profiles[0],
        Input::MarkLost,
        "rep@example.com".into(),
        T0 + 10_000,
    )
    .await
    .unwrap()
    .expect("lost");

    let all = s
        .lead_feed(
            org,
            &LeadFilter {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    // Newest change first, ties by id descending.
    assert_eq!(all[0].profile_id, profiles[0]);
    for w in all.windows(2) {
        assert!((w[0].updated_at, w[0].profile_id) > (w[1].updated_at, w[1].profile_id));
    }

    let engaged = s
        .lead_feed(
            org,
            &LeadFilter {
                state: Some(LeadState::Engaged),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(engaged.len(), 4);
    assert!(engaged.iter().all(|l| l.state == "engaged"));
    let category = all[1].category;
    let same = s
        .lead_feed(
            org,
            &LeadFilter {
                category: Some(category),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!same.is_empty());
    assert!(same.iter().all(|l| l.category == category));
    let none = s
        .lead_feed(
            org,
            &LeadFilter {
                state: Some(LeadState::Converted),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    // Pages of two: every lead once, in the same order as one page.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .lead_feed(
                org,
                &LeadFilter {
                    before: cursor.map(|(at, _)| at),
                    before_id: cursor.map(|(_, id)| id),
                    limit: 2,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some((last.updated_at, last.profile_id));
        paged.extend(page.iter().map(|l| l.profile_id));
    }
    assert_eq!(paged, all.iter().map(|l| l.profile_id).collect::<Vec<_>>());
}

#[tokio::test]
async fn another_organization_never_reads_or_moves_these_leads() {
    let (db, a, src) = setup().await;
    let s = &db.store;
    let b = org(s, "other").await;
    let p = profile_of(&ann_engages(s, a, src).await[0]);
    assert!(s.lead(a, p).await.unwrap().is_some());

    let feed = s
        .lead_feed(
            b,
            &LeadFilter {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(feed.is_empty());
    assert!(s.lead(b, p).await.unwrap().is_none());
    assert!(s.lead_history(b, p).await.unwrap().is_empty());
    assert_eq!(s.lead_counts(b).await.unwrap(), (vec![], vec![]));
    assert!(s.deliveries(b, None, None, 50).await.unwrap().is_empty());
    assert!(s
        .deliveries(b, Some(src), None, 50)
        .await
        .unwrap()
        .is_empty());
    assert!(s.inbound_status_counts(b).await.unwrap().is_empty());
    assert!(s.source_status_counts(b).await.unwrap().is_empty());
    assert_eq!(s.intake_audit(b).await.unwrap(), (0, 0, 0));
    let ev = s.deliveries(a, None, None, 1).await.unwrap()[0].id;
    assert!(matches!(
        s.delivery_payload(b, ev).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.requeue_inbound(b, ev, T0).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.lead_action(b, p, Input::MarkLost, "x@example.com".into(), T0)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.assign_lead(b, p, Some("x@example.com".into()), T0).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.tag_profile(b, p, "vip".into(), T0).await,
        Err(StoreError::NotFound)
    ));
    let (changed, timer) = s.lead_inactivity(b, p, T0 + 1).await.unwrap();
    assert!(changed.is_none() && timer.is_none());
    assert!(s
        .job_by_key(b, GHOST_JOB, &ghost_key(p))
        .await
        .unwrap()
        .is_none());
    // Org A's lead and timer are as they were.
    let lead = s.lead(a, p).await.unwrap().unwrap();
    assert_eq!((lead.state.as_str(), lead.assignee), ("engaged", None));
    assert!(s
        .job_by_key(a, GHOST_JOB, &ghost_key(p))
        .await
        .unwrap()
        .is_some());
}
