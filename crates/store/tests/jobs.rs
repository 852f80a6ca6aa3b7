//! The job table's conformance suite: unique keys,
//! claims under leases, reclaiming a dead worker's jobs, retry and park,
//! restart. Runs on SQLite always and on PostgreSQL with
//! `BOS_TEST_DATABASE_URL`; each test gets a fresh database.

use bos_core::jobs::JobState;
use bos_core::{OrgName, Slug};
use bos_store::jobs::{Finished, NewJob, Outcome, Reclaimed};
use bos_store::testing::TestDb;
use bos_store::{Store, StoreError, StoreOptions};
use std::collections::HashSet;
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;
const LEASE: i64 = 60_000;

async fn db() -> TestDb {
    TestDb::new().await.expect("test database")
}

async fn org(s: &Store, name: &str) -> Uuid {
    s.create_org(
        &OrgName::parse(name).unwrap(),
        &Slug::from_name(name).unwrap(),
        1,
    )
    .await
    .unwrap()
    .id
}

fn done(org: Uuid, id: Uuid) -> Finished {
    Finished {
        org_id: org,
        id,
        outcome: Outcome::Done,
    }
}

#[tokio::test]
async fn unique_keys_dedupe_per_org_and_kind_while_live() {
    let db = db().await;
    let s = &db.store;
    let (a, b) = (org(s, "Acme").await, org(s, "Beta").await);
    let job = |o, kind: &str, key: &str, at| NewJob::new(o, kind, at).key(key);

    let first = s
        .schedule_job(job(a, "ghost", "p1", T0 + 10), T0)
        .await
        .unwrap();
    assert!(first.created);
    let again = s
        .schedule_job(job(a, "ghost", "p1", T0 + 99), T0)
        .await
        .unwrap();
    assert_eq!(
        (again.id, again.created),
        (first.id, false),
        "same key: kept"
    );
    assert_eq!(s.job(a, first.id).await.unwrap().unwrap().run_at, T0 + 10);
    // Another org, another kind, no key: all separate jobs.
    assert!(
        s.schedule_job(job(b, "ghost", "p1", T0), T0)
            .await
            .unwrap()
            .created
    );
    assert!(
        s.schedule_job(job(a, "nudge", "p1", T0), T0)
            .await
            .unwrap()
            .created
    );
    assert!(
        s.schedule_job(NewJob::new(a, "ghost", T0), T0)
            .await
            .unwrap()
            .created
    );
    assert!(
        s.schedule_job(NewJob::new(a, "ghost", T0), T0)
            .await
            .unwrap()
            .created
    );
    // Duplicates inside one batch collapse too.
    let batch = s
        .schedule_jobs(
            vec![
                job(a, "batch", "k", T0),
                job(a, "batch", "k", T0),
                job(a, "batch", "j", T0),
            ],
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        batch.iter().map(|s| s.created).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(batch[0].id, batch[1].id);
    assert_eq!(s.job_counts(a).await.unwrap().pending, 6);
    assert_eq!(s.job_counts(b).await.unwrap().pending, 1);

    // A running holder still holds the key.
    let claimed = s
        .claim_jobs("w1", T0 + 10, 100, T0 + LEASE, T0)
        .await
        .unwrap();
    assert!(claimed.iter().any(|j| j.id == first.id));
    let while_running = s
        .schedule_job(job(a, "ghost", "p1", T0 + 50), T0)
        .await
        .unwrap();
    assert_eq!((while_running.id, while_running.created), (first.id, false));
    // Parked, it no longer does.
    let parked = s
        .finish_jobs(
            "w1",
            vec![Finished {
                org_id: a,
                id: first.id,
                outcome: Outcome::Park {
                    error: "boom".into(),
                },
            }],
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(parked, 1);
    let fresh = s
        .schedule_job(job(a, "ghost", "p1", T0 + 60), T0)
        .await
        .unwrap();
    assert!(fresh.created && fresh.id != first.id);
    // ... and the parked one cannot come back while the new one lives.
    assert!(matches!(
        s.retry_job(a, first.id, T0 + 2).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn schedule_or_replace_moves_a_pending_timer_and_detaches_a_running_one() {
    let db = db().await;
    let s = &db.store;
    let a = org(s, "Acme").await;
    let timer = |at, payload: &str| NewJob::new(a, "ghost", at).key("c1").payload(payload);

    let first = s
        .schedule_or_replace_job(timer(T0 + 1_000, "{\"v\":1}"), T0)
        .await
        .unwrap();
    assert!(first.created);
    let moved = s
        .schedule_or_replace_job(timer(T0 + 5_000, "{\"v\":2}"), T0)
        .await
        .unwrap();
    assert_eq!((moved.id, moved.created), (first.id, false));
    let rec = s.job(a, first.id).await.unwrap().unwrap();
    assert_eq!(
        (rec.run_at, rec.payload.as_str()),
        (T0 + 5_000, "{\"v\":2}")
    );
    assert_eq!(s.job_counts(a).await.unwrap().pending, 1);
    assert!(s
        .claim_jobs("w", T0 + 1_000, 10, T0 + LEASE, T0)
        .await
        .unwrap()
        .is_empty());

    let claimed = s
        .claim_jobs("w", T0 + 5_000, 10, T0 + LEASE, T0)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let next = s
        .schedule_or_replace_job(timer(T0 + 9_000, "{\"v\":3}"), T0)
        .await
        .unwrap();
    assert!(next.created && next.id != first.id);
    let running = s.job(a, first.id).await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.unique_key),
        (JobState::Running, None)
    );
    assert_eq!(
        s.job_by_key(a, "ghost", "c1").await.unwrap().unwrap().id,
        next.id
    );
    // The detached job finishes as it is.
    assert_eq!(
        s.finish_jobs("w", vec![done(a, first.id)], T0)
            .await
            .unwrap(),
        1
    );

    assert!(s.cancel_job(a, "ghost", "c1").await.unwrap());
    assert!(!s.cancel_job(a, "ghost", "c1").await.unwrap());
    assert_eq!(s.job_counts(a).await.unwrap().pending, 0);
}

#[tokio::test]
async fn claims_take_due_jobs_oldest_first_under_a_lease() {
    let db = db().await;
    let s = &db.store;
    let a = org(s, "Acme").await;
    let jobs = (0..10)
        .map(|i| NewJob::new(a, "k", T0 + 100 * (10 - i)).payload(format!("{{\"i\":{i}}}")))
        .collect();
    s.schedule_jobs(jobs, T0).await.unwrap();
    assert_eq!(s.next_job_due().await.unwrap(), Some(T0 + 100));
    assert!(s
        .claim_jobs("w", T0 + 99, 100, T0 + LEASE, T0)
        .await
        .unwrap()
        .is_empty());

    let got = s
        .claim_jobs("w", T0 + 500, 3, T0 + LEASE, T0)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|j| j.run_at).collect::<Vec<_>>(),
        [T0 + 100, T0 + 200, T0 + 300]
    );
    assert!(got.iter().all(|j| j.attempts == 1 && j.max_attempts == 25));
    let rec = s.job(a, got[0].id).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Running);
    assert_eq!(rec.lease_owner.as_deref(), Some("w"));
    assert_eq!(rec.lease_until, Some(T0 + LEASE));
    assert_eq!(s.next_job_due().await.unwrap(), Some(T0 + 400));
    assert_eq!(s.next_lease_expiry().await.unwrap(), Some(T0 + LEASE));

    // Leased jobs are not handed out again.
    let rest = s
        .claim_jobs("w2", T0 + 10_000, 100, T0 + LEASE, T0)
        .await
        .unwrap();
    assert_eq!(rest.len(), 7);
    let ids: HashSet<Uuid> = got.iter().chain(&rest).map(|j| j.id).collect();
    assert_eq!(ids.len(), 10);
    assert_eq!(s.next_job_due().await.unwrap(), None);

    // Only the lease holder finishes a job.
    assert_eq!(
        s.finish_jobs("w2", vec![done(a, got[0].id)], T0)
            .await
            .unwrap(),
        0
    );
    let all: Vec<Finished> = got.iter().map(|j| done(a, j.id)).collect();
    assert_eq!(s.finish_jobs("w", all, T0).await.unwrap(), 3);
    assert_eq!(
        s.job(a, got[0].id).await.unwrap(),
        None,
        "done jobs are deleted"
    );
    let c = s.job_counts(a).await.unwrap();
    assert_eq!((c.pending, c.running, c.parked), (0, 7, 0));
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_job() {
    let db = db().await;
    let s = db.store.clone();
    let a = org(&s, "Acme").await;
    let n = 2_000;
    let jobs: Vec<NewJob> = (0..n).map(|i| NewJob::new(a, "k", T0 + i)).collect();
    s.schedule_jobs(jobs, T0).await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..8 {
        let s = s.clone();
        set.spawn(async move {
            let owner = format!("w{w}");
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_jobs(&owner, T0 + n, 37, T0 + LEASE, T0)
                    .await
                    .unwrap();
                if got.is_empty() && s.next_job_due().await.unwrap().is_none() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        });
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    while let Some(r) = set.join_next().await {
        for id in r.unwrap() {
            total += 1;
            assert!(seen.insert(id), "job {id} handed to two claimers");
        }
    }
    assert_eq!(total, n as usize);
    assert_eq!(s.job_counts(a).await.unwrap().running, n as u64);
}

#[tokio::test]
async fn expired_leases_are_reclaimed_and_the_old_holder_loses_the_job() {
    let db = db().await;
    let s = &db.store;
    let a = org(s, "Acme").await;
    let id = s
        .schedule_job(NewJob::new(a, "k", T0).max_attempts(2), T0)
        .await
        .unwrap()
        .id;
    let first = s.claim_jobs("dead", T0, 10, T0 + LEASE, T0).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        s.renew_leases("dead", T0 + 2 * LEASE, T0 + 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.reclaim_expired_jobs(T0 + 2 * LEASE - 1).await.unwrap(),
        Reclaimed::default()
    );
    let r = s.reclaim_expired_jobs(T0 + 2 * LEASE).await.unwrap();
    assert_eq!((r.requeued, r.parked), (1, 0));
    let rec = s.job(a, id).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.run_at, rec.lease_owner),
        (JobState::Pending, T0 + 2 * LEASE, None)
    );
    assert!(rec.last_error.unwrap().contains("lease expired"));

    let now = T0 + 2 * LEASE;
    let second = s
        .claim_jobs("alive", now, 10, now + LEASE, now)
        .await
        .unwrap();
    assert_eq!((second.len(), second[0].attempts), (1, 2));
    // The old holder's late completion does not touch the new claim.
    assert_eq!(
        s.finish_jobs("dead", vec![done(a, id)], now).await.unwrap(),
        0
    );
    assert_eq!(
        s.job(a, id).await.unwrap().unwrap().lease_owner.as_deref(),
        Some("alive")
    );
    // Dying on the last attempt parks the job instead of looping forever.
    let r = s.reclaim_expired_jobs(now + LEASE).await.unwrap();
    assert_eq!((r.requeued, r.parked), (0, 1));
    assert_eq!(s.job(a, id).await.unwrap().unwrap().state, JobState::Parked);
}

#[tokio::test]
async fn failures_retry_later_then_park_visibly_and_can_be_retried() {
    let db = db().await;
    let s = &db.store;
    let a = org(s, "Acme").await;
    let id = s
        .schedule_job(NewJob::new(a, "send", T0).key("step-1").max_attempts(2), T0)
        .await
        .unwrap()
        .id;
    s.claim_jobs("w", T0, 1, T0 + LEASE, T0).await.unwrap();
    let retry = Finished {
        org_id: a,
        id,
        outcome: Outcome::Retry {
            at: T0 + 30_000,
            error: "smtp 451".into(),
        },
    };
    assert_eq!(s.finish_jobs("w", vec![retry], T0 + 5).await.unwrap(), 1);
    let rec = s.job(a, id).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.run_at, rec.attempts),
        (JobState::Pending, T0 + 30_000, 1)
    );
    assert_eq!(rec.last_error.as_deref(), Some("smtp 451"));
    assert!(s
        .claim_jobs("w", T0 + 29_999, 1, T0 + LEASE, T0)
        .await
        .unwrap()
        .is_empty());
    let again = s
        .claim_jobs("w", T0 + 30_000, 1, T0 + LEASE, T0)
        .await
        .unwrap();
    assert_eq!(again[0].attempts, 2);
    let long = "x".repeat(5_000);
    let park = Finished {
        org_id: a,
        id,
        outcome: Outcome::Park { error: long },
    };
    assert_eq!(
        s.finish_jobs("w", vec![park], T0 + 30_001).await.unwrap(),
        1
    );

    let failing = s.failing_jobs(a, 10).await.unwrap();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0].state, JobState::Parked);
    assert!(failing[0].last_error.as_ref().unwrap().chars().count() <= 2_001);
    assert_eq!(s.job_counts(a).await.unwrap().parked, 1);
    assert!(s
        .claim_jobs("w", T0 + 999_999, 10, T0 + LEASE, T0)
        .await
        .unwrap()
        .is_empty());
    // Another org sees none of it.
    let b = org(s, "Beta").await;
    assert!(s.failing_jobs(b, 10).await.unwrap().is_empty());
    assert!(matches!(
        s.retry_job(b, id, T0).await,
        Err(StoreError::NotFound)
    ));

    s.retry_job(a, id, T0 + 40_000).await.unwrap();
    let rec = s.job(a, id).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.attempts, rec.run_at),
        (JobState::Pending, 0, T0 + 40_000)
    );
    assert!(
        matches!(s.retry_job(a, id, T0).await, Err(StoreError::NotFound)),
        "only parked jobs"
    );
    let c = s
        .claim_jobs("w", T0 + 40_000, 1, T0 + LEASE, T0)
        .await
        .unwrap();
    assert_eq!(c[0].attempts, 1);
    // Released at shutdown: pending again, the attempt not counted.
    assert_eq!(s.release_jobs("w", vec![(a, id)], T0).await.unwrap(), 1);
    let rec = s.job(a, id).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Pending, 0));
    s.claim_jobs("w", T0 + 40_000, 1, T0 + LEASE, T0)
        .await
        .unwrap();
    s.finish_jobs("w", vec![done(a, id)], T0).await.unwrap();
    assert!(
        !s.delete_parked_job(a, id).await.unwrap(),
        "it was done, not parked"
    );
    assert_eq!(s.job_counts(a).await.unwrap(), Default::default());
}

#[tokio::test]
async fn jobs_survive_a_restart() {
    let db = db().await;
    let a = org(&db.store, "Acme").await;
    let id = db
        .store
        .schedule_job(NewJob::new(a, "k", T0 + 1_000).key("x"), T0)
        .await
        .unwrap()
        .id;
    db.store.close().await;
    let reopened = Store::open(&StoreOptions {
        url: db.url.clone(),
        max_connections: 2,
    })
    .await
    .unwrap();
    assert_eq!(reopened.next_job_due().await.unwrap(), Some(T0 + 1_000));
    let got = reopened
        .claim_jobs("w", T0 + 1_000, 10, T0 + LEASE, T0)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(
        reopened
            .finish_jobs("w", vec![done(a, id)], T0)
            .await
            .unwrap(),
        1
    );
    reopened.close().await;
}

#[tokio::test]
async fn jobs_go_with_their_org() {
    let db = db().await;
    let s = &db.store;
    let a = org(s, "Acme").await;
    assert!(matches!(
        s.schedule_job(NewJob::new(Uuid::now_v7(), "k", T0), T0)
            .await,
        Err(StoreError::Conflict(_))
    ));
    s.schedule_job(NewJob::new(a, "k", T0), T0).await.unwrap();
    assert_eq!(s.job_counts(a).await.unwrap().pending, 1);
}

#[tokio::test]
async fn a_large_batch_of_outcomes_across_orgs_is_written_at_once() {
    let db = db().await;
    let s = &db.store;
    let (a, b) = (org(s, "Acme").await, org(s, "Beta").await);
    let jobs: Vec<NewJob> = (0..1_300)
        .map(|i| NewJob::new(if i % 3 == 0 { b } else { a }, "k", T0 + i))
        .collect();
    s.schedule_jobs(jobs, T0).await.unwrap();
    let claimed = s
        .claim_jobs("w", T0 + 2_000, 2_000, T0 + LEASE, T0)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1_300);
    let mut outcomes: Vec<Finished> = claimed.iter().map(|j| done(j.org_id, j.id)).collect();
    // One failure in the middle of the batch, and one job this worker does not hold.
    outcomes[700].outcome = Outcome::Retry {
        at: T0 + 9_000,
        error: "timeout".into(),
    };
    outcomes.push(done(a, Uuid::now_v7()));
    assert_eq!(s.finish_jobs("w", outcomes, T0 + 1).await.unwrap(), 1_300);
    let (ca, cb) = (
        s.job_counts(a).await.unwrap(),
        s.job_counts(b).await.unwrap(),
    );
    assert_eq!(ca.pending + cb.pending, 1);
    assert_eq!(ca.running + cb.running + ca.parked + cb.parked, 0);
    assert_eq!(s.next_job_due().await.unwrap(), Some(T0 + 9_000));
}

#[tokio::test]
async fn one_job_from_a_hundred_concurrent_enqueues_of_the_same_key() {
    // Unique jobs: enqueue one (tenant, customer, step) 100 times at once.
    let db = db().await;
    let s = db.store.clone();
    let a = org(&s, "Acme").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100 {
        let s = s.clone();
        set.spawn(async move {
            let job = NewJob::new(a, "nudge.step", T0 + i).key("customer-7:step-2");
            if i % 2 == 0 {
                s.schedule_job(job, T0).await
            } else {
                s.schedule_jobs(vec![job], T0)
                    .await
                    .map(|mut v| v.remove(0))
            }
        });
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    while let Some(r) = set.join_next().await {
        let sch = r.unwrap().unwrap();
        ids.insert(sch.id);
        created += sch.created as usize;
    }
    assert_eq!((ids.len(), created), (1, 1));
    assert_eq!(s.job_counts(a).await.unwrap().pending, 1);
}
