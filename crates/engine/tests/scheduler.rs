//! The runner against a real store (SQLite always, PostgreSQL with
//! `BOS_TEST_DATABASE_URL`) on a test clock: nothing here sleeps. Time moves
//! by `TestClock::advance_ms` and `Runner::settled` waits until the runner
//! has looked at the table at that time and recorded what it ran.

use bos_core::jobs::JobState;
use bos_core::{OrgName, Slug};
use bos_engine::{Clock, JobError, Runner, RunnerConfig, Scheduler, TestClock};
use bos_store::jobs::NewJob;
use bos_store::testing::TestDb;
use bos_store::{Store, StoreOptions};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;

struct Env {
    db: TestDb,
    clock: Arc<TestClock>,
    sched: Scheduler,
    org: Uuid,
}

async fn env() -> Env {
    let db = TestDb::new().await.expect("test database");
    let org = db
        .store
        .create_org(
            &OrgName::parse("Acme").unwrap(),
            &Slug::parse("acme").unwrap(),
            1,
        )
        .await
        .unwrap()
        .id;
    let clock = Arc::new(TestClock::new(T0));
    let sched = Scheduler::new(db.store.clone(), clock.clone());
    Env {
        db,
        clock,
        sched,
        org,
    }
}

fn config() -> RunnerConfig {
    RunnerConfig {
        concurrency: 4,
        prefetch: 16,
        ..RunnerConfig::default()
    }
}

/// Records every run: (job id, attempt, clock at start).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Uuid, u32, i64)>>>);

impl Log {
    fn runs(&self) -> Vec<(Uuid, u32, i64)> {
        self.0.lock().unwrap().clone()
    }
}

async fn recording_runner(e: &Env, log: &Log, cfg: RunnerConfig) -> Runner {
    let (log, clock) = (log.clone(), e.clock.clone());
    e.sched
        .runner(cfg)
        .handle("tick", move |job| {
            let (log, clock) = (log.clone(), clock.clone());
            async move {
                log.0
                    .lock()
                    .unwrap()
                    .push((job.id, job.attempt, clock.now_ms()));
                Ok(())
            }
        })
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_fires_when_the_clock_reaches_its_time_and_not_before() {
    let e = env().await;
    let log = Log::default();
    let runner = recording_runner(&e, &log, config()).await;
    let id = e
        .sched
        .schedule(NewJob::new(e.org, "tick", T0 + 60_000))
        .await
        .unwrap()
        .id;
    runner.settled(e.clock.now_ms()).await;
    e.clock.advance_ms(59_999);
    runner.settled(e.clock.now_ms()).await;
    assert!(log.runs().is_empty(), "not due yet");
    // Within the lookahead the runner may hold the job, but not start it.
    assert!(e.db.store.job(e.org, id).await.unwrap().is_some());

    e.clock.advance_ms(1);
    runner.settled(e.clock.now_ms()).await;
    assert_eq!(log.runs(), vec![(id, 1, T0 + 60_000)]);
    assert_eq!(
        e.db.store.job(e.org, id).await.unwrap(),
        None,
        "done jobs are deleted"
    );
    runner.shutdown().await;
}

#[tokio::test]
async fn an_earlier_job_wakes_a_runner_sleeping_for_a_later_one() {
    let e = env().await;
    let log = Log::default();
    let runner = recording_runner(&e, &log, config()).await;
    e.sched
        .schedule(NewJob::new(e.org, "tick", T0 + 3_600_000))
        .await
        .unwrap();
    runner.settled(T0).await;
    let soon = e
        .sched
        .schedule(NewJob::new(e.org, "tick", T0 + 1_000))
        .await
        .unwrap()
        .id;
    e.clock.advance_ms(1_000);
    runner.settled(e.clock.now_ms()).await;
    assert_eq!(log.runs(), vec![(soon, 1, T0 + 1_000)]);
    // Several due at once all run, each exactly once.
    let more: Vec<NewJob> = (0..50)
        .map(|i| NewJob::new(e.org, "tick", T0 + 2_000 + i))
        .collect();
    e.sched.schedule_many(more).await.unwrap();
    e.clock.advance_ms(10_000);
    runner.settled(e.clock.now_ms()).await;
    let runs = log.runs();
    assert_eq!(runs.len(), 51);
    assert_eq!(runs.iter().map(|r| r.0).collect::<HashSet<_>>().len(), 51);
    assert_eq!(e.db.store.job_counts(e.org).await.unwrap().pending, 1);
    runner.shutdown().await;
}

#[tokio::test]
async fn rescheduling_a_timer_moves_it_and_dedupes() {
    let e = env().await;
    let log = Log::default();
    let runner = recording_runner(&e, &log, config()).await;
    let timer = |at| NewJob::new(e.org, "tick", at).key("customer-1");
    let first = e
        .sched
        .schedule_or_replace(timer(T0 + 10_000))
        .await
        .unwrap();
    // The customer wrote again: the window starts over.
    let moved = e
        .sched
        .schedule_or_replace(timer(T0 + 20_000))
        .await
        .unwrap();
    assert_eq!((moved.id, moved.created), (first.id, false));
    let dup = e.sched.schedule(timer(T0 + 5_000)).await.unwrap();
    assert_eq!((dup.id, dup.created), (first.id, false));
    e.clock.advance_ms(10_000);
    runner.settled(e.clock.now_ms()).await;
    assert!(log.runs().is_empty());
    e.clock.advance_ms(10_000);
    runner.settled(e.clock.now_ms()).await;
    assert_eq!(log.runs(), vec![(first.id, 1, T0 + 20_000)]);
    // Cancelled timers never fire.
    e.sched.schedule(timer(T0 + 30_000)).await.unwrap();
    assert!(e.sched.cancel(e.org, "tick", "customer-1").await.unwrap());
    e.clock.advance_ms(60_000);
    runner.settled(e.clock.now_ms()).await;
    assert_eq!(log.runs().len(), 1);
    runner.shutdown().await;
}

#[tokio::test]
async fn failures_back_off_then_park_and_a_retry_runs_again() {
    let e = env().await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (a, f, clock) = (attempts.clone(), fail.clone(), e.clock.clone());
    let runner = e
        .sched
        .runner(config())
        .handle("flaky", move |job| {
            let (a, f, clock) = (a.clone(), f.clone(), clock.clone());
            async move {
                a.lock().unwrap().push((job.attempt, clock.now_ms()));
                if f.load(std::sync::atomic::Ordering::SeqCst) {
                    Err(JobError::retry("provider answered 503"))
                } else {
                    Ok(())
                }
            }
        })
        .start()
        .await
        .unwrap();
    let id = e
        .sched
        .schedule(NewJob::new(e.org, "flaky", T0).max_attempts(4))
        .await
        .unwrap()
        .id;
    runner.settled(T0).await;
    let mut last = T0;
    for attempt in 1..4u32 {
        let rec = e.db.store.job(e.org, id).await.unwrap().unwrap();
        assert_eq!(rec.state, JobState::Pending, "after attempt {attempt}");
        assert_eq!(rec.last_error.as_deref(), Some("provider answered 503"));
        // Equal jitter: between half and all of 1 s, 2 s, 4 s.
        let ceiling = 1_000 << (attempt - 1);
        let wait = rec.run_at - last;
        assert!(
            wait >= ceiling / 2 && wait <= ceiling,
            "attempt {attempt} waits {wait} ms"
        );
        e.clock.set_ms(rec.run_at - 1);
        runner.settled(e.clock.now_ms()).await;
        assert_eq!(
            attempts.lock().unwrap().len(),
            attempt as usize,
            "not retried early"
        );
        e.clock.advance_ms(1);
        runner.settled(e.clock.now_ms()).await;
        last = rec.run_at;
    }
    let runs = attempts.lock().unwrap().clone();
    assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let rec = e.db.store.job(e.org, id).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Parked, 4));
    assert_eq!(e.db.store.failing_jobs(e.org, 10).await.unwrap().len(), 1);

    // A person fixes the cause and retries it.
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    e.sched.retry_parked(e.org, id).await.unwrap();
    runner.settled(e.clock.now_ms()).await;
    assert_eq!(attempts.lock().unwrap().len(), 5);
    assert_eq!(e.db.store.job(e.org, id).await.unwrap(), None);
    runner.shutdown().await;
}

#[tokio::test]
async fn permanent_failures_park_at_once_and_panics_are_retried() {
    let e = env().await;
    let runner = e
        .sched
        .runner(config())
        .handle("bad-address", |_job| async {
            Err(JobError::permanent("invalid e-mail address"))
        })
        .handle("panics", |job| async move {
            if job.attempt == 1 {
                panic!("a bug in the handler");
            }
            Ok(())
        })
        .start()
        .await
        .unwrap();
    let bad = e
        .sched
        .schedule(NewJob::new(e.org, "bad-address", T0))
        .await
        .unwrap()
        .id;
    let boom = e
        .sched
        .schedule(NewJob::new(e.org, "panics", T0))
        .await
        .unwrap()
        .id;
    let orphan = e
        .sched
        .schedule(NewJob::new(e.org, "nobody-handles", T0))
        .await
        .unwrap()
        .id;
    runner.settled(T0).await;
    let rec = e.db.store.job(e.org, bad).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Parked, 1));
    assert_eq!(rec.last_error.as_deref(), Some("invalid e-mail address"));
    let rec = e.db.store.job(e.org, boom).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Pending);
    assert!(rec.last_error.unwrap().contains("panicked"));
    let rec = e.db.store.job(e.org, orphan).await.unwrap().unwrap();
    assert!(rec.last_error.unwrap().contains("no handler"));
    e.clock.advance_ms(1_000);
    runner.settled(e.clock.now_ms()).await;
    assert_eq!(
        e.db.store.job(e.org, boom).await.unwrap(),
        None,
        "second attempt succeeded"
    );
    runner.shutdown().await;
}

#[tokio::test]
async fn two_runners_never_run_a_job_twice_or_at_once() {
    let e = env().await;
    let running = Arc::new(Mutex::new(HashSet::new()));
    let runs = Arc::new(Mutex::new(HashMap::<Uuid, u32>::new()));
    let mut runners = Vec::new();
    for _ in 0..2 {
        let (running, runs) = (running.clone(), runs.clone());
        let r = e
            .sched
            .runner(RunnerConfig {
                concurrency: 8,
                prefetch: 32,
                ..RunnerConfig::default()
            })
            .handle("tick", move |job| {
                let (running, runs) = (running.clone(), runs.clone());
                async move {
                    assert!(
                        running.lock().unwrap().insert(job.id),
                        "{} runs twice at once",
                        job.id
                    );
                    tokio::task::yield_now().await;
                    *runs.lock().unwrap().entry(job.id).or_default() += 1;
                    running.lock().unwrap().remove(&job.id);
                    Ok(())
                }
            })
            .start()
            .await
            .unwrap();
        runners.push(r);
    }
    let jobs: Vec<NewJob> = (0..600)
        .map(|i| NewJob::new(e.org, "tick", T0 + i % 7))
        .collect();
    e.sched.schedule_many(jobs).await.unwrap();
    e.clock.advance_ms(10);
    for r in &runners {
        r.settled(e.clock.now_ms()).await;
    }
    // Every job ran exactly once.
    assert_eq!(
        runners.iter().map(|r| r.progress().recorded).sum::<u64>(),
        600
    );
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 600);
    assert!(runs.values().all(|&n| n == 1));
    assert_eq!(
        e.db.store.job_counts(e.org).await.unwrap(),
        Default::default()
    );
    for r in runners {
        r.shutdown().await;
    }
}

#[tokio::test]
async fn a_dead_workers_jobs_are_taken_back_when_its_lease_expires() {
    let e = env().await;
    let log = Log::default();
    let id = e
        .sched
        .schedule(NewJob::new(e.org, "tick", T0))
        .await
        .unwrap()
        .id;
    // A replica claims it and dies without a word.
    let lease = 60_000;
    let got =
        e.db.store
            .claim_jobs("crashed-replica", T0, 10, T0 + lease, T0)
            .await
            .unwrap();
    assert_eq!(got.len(), 1);
    let runner = recording_runner(
        &e,
        &log,
        RunnerConfig {
            lease_ms: lease,
            reclaim_every_ms: 10_000,
            ..config()
        },
    )
    .await;
    runner.settled(T0).await;
    e.clock.advance_ms(lease - 1);
    runner.settled(e.clock.now_ms()).await;
    assert!(log.runs().is_empty(), "the lease still holds");
    e.clock.advance_ms(10_000);
    runner.settled(e.clock.now_ms()).await;
    let runs = log.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].0, runs[0].1),
        (id, 2),
        "second attempt, by the live runner"
    );
    runner.shutdown().await;
}

#[tokio::test]
async fn scheduled_jobs_survive_a_restart_of_the_process() {
    let e = env().await;
    let log = Log::default();
    let runner = recording_runner(&e, &log, config()).await;
    let id = e
        .sched
        .schedule(NewJob::new(e.org, "tick", T0 + 5_000).key("k"))
        .await
        .unwrap()
        .id;
    runner.settled(T0).await;
    runner.shutdown().await;
    e.db.store.close().await;

    let store = Store::open(&StoreOptions {
        url: e.db.url.clone(),
        max_connections: 2,
    })
    .await
    .unwrap();
    let sched = Scheduler::new(store.clone(), e.clock.clone());
    let env2 = Env {
        db: e.db,
        clock: e.clock.clone(),
        sched,
        org: e.org,
    };
    let runner = recording_runner(&env2, &log, config()).await;
    env2.clock.advance_ms(5_000);
    runner.settled(env2.clock.now_ms()).await;
    assert_eq!(log.runs(), vec![(id, 1, T0 + 5_000)]);
    assert_eq!(store.job(env2.org, id).await.unwrap(), None);
    runner.shutdown().await;
}

#[tokio::test]
async fn shutdown_hands_back_held_jobs_without_counting_an_attempt() {
    let e = env().await;
    let log = Log::default();
    let runner = recording_runner(
        &e,
        &log,
        RunnerConfig {
            lookahead_ms: 1_000,
            ..config()
        },
    )
    .await;
    let id = e
        .sched
        .schedule(NewJob::new(e.org, "tick", T0 + 500))
        .await
        .unwrap()
        .id;
    runner.settled(T0).await;
    let rec = e.db.store.job(e.org, id).await.unwrap().unwrap();
    assert_eq!(
        rec.state,
        JobState::Running,
        "claimed ahead, waiting for its time"
    );
    runner.shutdown().await;
    let rec = e.db.store.job(e.org, id).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.attempts, rec.lease_owner),
        (JobState::Pending, 0, None)
    );
    assert!(log.runs().is_empty());
}

#[tokio::test]
async fn clock_jumps_neither_fire_a_job_early_nor_twice() {
    // Clock jumps in small: +48 h, then −2 h.
    let e = env().await;
    let log = Log::default();
    let runner = recording_runner(&e, &log, config()).await;
    let hour = 3_600_000;
    let jobs: Vec<NewJob> = (1..=24)
        .map(|h| NewJob::new(e.org, "tick", T0 + h * hour))
        .collect();
    e.sched.schedule_many(jobs).await.unwrap();
    e.clock.advance_ms(48 * hour);
    runner.settled(e.clock.now_ms()).await;
    assert_eq!(
        log.runs().len(),
        24,
        "all overdue jobs fire once after the jump"
    );
    e.clock.advance_ms(-2 * hour);
    let later = e
        .sched
        .schedule(NewJob::new(e.org, "tick", e.clock.now_ms() + hour))
        .await
        .unwrap()
        .id;
    runner.settled(e.clock.now_ms()).await;
    e.clock.advance_ms(hour - 1);
    runner.settled(e.clock.now_ms()).await;
    assert_eq!(log.runs().len(), 24, "nothing ran twice, nothing ran early");
    e.clock.advance_ms(1);
    runner.settled(e.clock.now_ms()).await;
    let runs = log.runs();
    assert_eq!(runs.len(), 25);
    assert_eq!(runs[24].0, later);
    assert!(runs
        .iter()
        .all(|&(_, attempt, at)| attempt == 1 && at >= T0 + hour));
    runner.shutdown().await;
}

#[tokio::test]
async fn on_postgresql_a_job_scheduled_by_another_replica_wakes_this_runner() {
    let e = env().await;
    if e.db.engine_name() != "postgres" {
        // One process per SQLite file: the in-process signal is the only one.
        return;
    }
    // Replica B: its own store (pool) and scheduler; its runner is asleep
    // on a test clock that never moves, so only LISTEN/NOTIFY can wake it.
    let store_b = Store::open(&StoreOptions {
        url: e.db.url.clone(),
        max_connections: 2,
    })
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let runner_b = Scheduler::new(store_b, e.clock.clone())
        .runner(config())
        .handle("tick", move |job| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(job.id);
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    runner_b.settled(T0).await;
    // Replica A schedules a job due now.
    let id = e
        .sched
        .schedule(NewJob::new(e.org, "tick", T0))
        .await
        .unwrap()
        .id;
    // Only a guard against hanging forever if the notification never comes.
    let ran = tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv()).await;
    assert_eq!(ran.expect("replica B was never woken"), Some(id));
    runner_b.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_schedules_across_clock_jumps_fire_once_and_never_early() {
    // Clock jumps: 10,000 jobs due at random times over four days; the
    // clock moves in random steps with jumps of +48 h and −2 h; every job
    // runs exactly once, never before its time. (Times are UTC
    // milliseconds: a DST change moves no job; quiet hours, which do depend
    // on local time, are the nudge engine's.)
    use rand::{Rng, SeedableRng};
    let e = env().await;
    let log = Log::default();
    let runner = recording_runner(
        &e,
        &log,
        RunnerConfig {
            concurrency: 16,
            prefetch: 256,
            ..RunnerConfig::default()
        },
    )
    .await;
    let hour = 3_600_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let jobs: Vec<NewJob> = (0..10_000)
        .map(|_| NewJob::new(e.org, "tick", T0 + rng.gen_range(0..96 * hour)))
        .collect();
    let due: HashMap<Uuid, i64> = e
        .sched
        .schedule_many(jobs.clone())
        .await
        .unwrap()
        .into_iter()
        .zip(jobs.iter())
        .map(|(s, j)| (s.id, j.run_at))
        .collect();
    assert_eq!(due.len(), 10_000);
    while e.clock.now_ms() < T0 + 100 * hour {
        let step = match rng.gen_range(0..10) {
            0 => 48 * hour,
            1 => -2 * hour,
            _ => rng.gen_range(1..3 * hour),
        };
        e.clock.advance_ms(step);
        runner.settled(e.clock.now_ms()).await;
    }
    let runs = log.runs();
    let ids: HashSet<Uuid> = runs.iter().map(|r| r.0).collect();
    assert_eq!(runs.len(), 10_000, "each job ran");
    assert_eq!(ids.len(), 10_000, "none ran twice");
    for (id, attempt, at) in runs {
        assert_eq!(attempt, 1);
        assert!(at >= due[&id], "job {id} ran at {at}, due {}", due[&id]);
    }
    runner.shutdown().await;
}
