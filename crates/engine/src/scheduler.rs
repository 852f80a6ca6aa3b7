//! The durable scheduler's runtime: a [`Scheduler`] handle that
//! schedules jobs and wakes runners, and the [`Runner`] that executes them.
//!
//! A runner sleeps until the earliest `run_at` in the table — a timer, not a
//! polling sweep — and is woken early when a job is scheduled before that
//! (in-process by a `Notify`, across replicas by PostgreSQL `LISTEN`). It
//! claims due jobs in batches under a lease, holds at most `prefetch` of
//! them, runs at most `concurrency` handlers at once, and records outcomes
//! in batches: done jobs are deleted, failures retried with backoff (the
//! rule is in `bos_core::jobs`) or parked. A heartbeat renews its leases
//! while handlers run; jobs of a worker that died are reclaimed when their
//! lease runs out. Shutdown stops claiming, lets running handlers finish
//! for a grace period, and hands back what it did not run.
//!
//! Jobs are **at least once**: a worker can die after a handler's effect and
//! before its completion is recorded, and the job then runs again. Handlers
//! must be idempotent (outbound sends add their own at-most-once guard).

use crate::clock::Clock;
use bos_core::jobs::{after_failure, AfterFailure, Backoff, Failure};
use bos_core::Millis;
use bos_store::jobs::{ClaimedJob, Finished, JobSignal, NewJob, Outcome, Scheduled};
use bos_store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use uuid::Uuid;

/// What a handler is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobContext {
    pub org_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    pub unique_key: Option<String>,
    /// The JSON text it was scheduled with.
    pub payload: String,
    /// When it was due.
    pub run_at: Millis,
    /// 1 on the first run.
    pub attempt: u32,
    pub max_attempts: u32,
}

/// Why a handler failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub message: String,
    pub failure: Failure,
}

impl JobError {
    /// Try again after the backoff.
    pub fn retry(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            failure: Failure::Transient { retry_at: None },
        }
    }

    /// Try again at `at` (a provider's `Retry-After`).
    pub fn retry_at(message: impl Into<String>, at: Millis) -> JobError {
        JobError {
            message: message.into(),
            failure: Failure::Transient { retry_at: Some(at) },
        }
    }

    /// Never try again: park the job with this message.
    pub fn permanent(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            failure: Failure::Permanent,
        }
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'static>>;
type Handler = Arc<dyn Fn(JobContext) -> HandlerFuture + Send + Sync + 'static>;

/// How a runner behaves. The defaults suit `bos serve`.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Names this runner's leases (unique per process and runner).
    pub owner: String,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Jobs claimed and not yet finished at most (≥ concurrency): a local
    /// queue, so one claim feeds many handlers.
    pub prefetch: usize,
    /// How long a claim holds a job before another worker may take it.
    pub lease_ms: Millis,
    /// Claim jobs due this soon and start each at its exact time, so the
    /// claim's round trip (an fsync on SQLite) is not added to lateness.
    pub lookahead_ms: Millis,
    /// The longest sleep between two looks at the table, whatever the
    /// timer says: bounds the cost of a wall-clock step or a missed
    /// notification.
    pub max_idle_ms: Millis,
    /// How often expired leases of other (dead) workers are taken back.
    pub reclaim_every_ms: Millis,
    pub backoff: Backoff,
    /// Outcomes recorded per write at most.
    pub finish_batch: usize,
    /// How long shutdown waits for running handlers.
    pub shutdown_grace: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            owner: default_owner(),
            concurrency: 16,
            prefetch: 256,
            lease_ms: 5 * 60_000,
            lookahead_ms: 20,
            max_idle_ms: 30_000,
            reclaim_every_ms: 30_000,
            backoff: Backoff::default(),
            finish_batch: 1_000,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// `host:pid:random`: tells in the table which process holds a lease.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "bos".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

/// One runner's wake-up line: schedulers compare a new job's `run_at` with
/// the time the runner means to wake and ring only when it is earlier.
struct Wake {
    notify: Notify,
    /// When the runner will look next; `i64::MAX` while it is looking (so
    /// any schedule during a pass rings, and the next wait returns at once).
    planned: AtomicI64,
}

impl Wake {
    fn ring_if_before(&self, run_at: Millis) {
        if run_at < self.planned.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }
}

struct Shared {
    store: Store,
    clock: Arc<dyn Clock>,
    runners: Mutex<Vec<Weak<Wake>>>,
}

/// Schedules jobs and wakes this process's runners. Cheap to clone; what the
/// rest of BOS holds to set timers.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

impl Scheduler {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Scheduler {
        Scheduler {
            shared: Arc::new(Shared {
                store,
                clock,
                runners: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Wakes this process's runners for a job due at `run_at` that was
    /// written by other means (the intake pipeline writes its timers in
    /// its own transaction).
    pub fn wake(&self, run_at: Millis) {
        let mut runners = self
            .shared
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        runners.retain(|w| match w.upgrade() {
            Some(w) => {
                w.ring_if_before(run_at);
                true
            }
            None => false,
        });
    }

    /// Schedules a job; a live job holding its key is kept (dedupe).
    pub async fn schedule(&self, job: NewJob) -> Result<Scheduled, StoreError> {
        let run_at = job.run_at;
        let s = self
            .shared
            .store
            .schedule_job(job, self.shared.clock.now_ms())
            .await?;
        if s.created {
            self.wake(run_at);
        }
        Ok(s)
    }

    /// Schedules many jobs in one transaction (see [`Scheduler::schedule`]).
    pub async fn schedule_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Scheduled>, StoreError> {
        let earliest = jobs.iter().map(|j| j.run_at).min();
        let s = self
            .shared
            .store
            .schedule_jobs(jobs, self.shared.clock.now_ms())
            .await?;
        if let Some(at) = earliest {
            self.wake(at);
        }
        Ok(s)
    }

    /// Schedules a job or moves the pending one holding its key to the new
    /// time and payload (a timer pushed back).
    pub async fn schedule_or_replace(&self, job: NewJob) -> Result<Scheduled, StoreError> {
        let run_at = job.run_at;
        let s = self
            .shared
            .store
            .schedule_or_replace_job(job, self.shared.clock.now_ms())
            .await?;
        self.wake(run_at);
        Ok(s)
    }

    /// Cancels the pending job holding `(kind, key)`; whether there was one.
    pub async fn cancel(&self, org: Uuid, kind: &str, key: &str) -> Result<bool, StoreError> {
        self.shared.store.cancel_job(org, kind, key).await
    }

    /// Puts a parked job back, due now.
    pub async fn retry_parked(&self, org: Uuid, id: Uuid) -> Result<(), StoreError> {
        let now = self.shared.clock.now_ms();
        self.shared.store.retry_job(org, id, now).await?;
        self.wake(now);
        Ok(())
    }

    /// A runner for this scheduler's store and clock; register handlers on
    /// it, then [`RunnerBuilder::start`].
    pub fn runner(&self, config: RunnerConfig) -> RunnerBuilder {
        RunnerBuilder {
            scheduler: self.clone(),
            config,
            handlers: HashMap::new(),
        }
    }
}

pub struct RunnerBuilder {
    scheduler: Scheduler,
    config: RunnerConfig,
    handlers: HashMap<String, Handler>,
}

impl RunnerBuilder {
    /// Registers the handler of one job kind.
    pub fn handle<F, Fut>(mut self, kind: impl Into<String>, f: F) -> RunnerBuilder
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.handlers
            .insert(kind.into(), Arc::new(move |job| Box::pin(f(job))));
        self
    }

    /// Starts the runner on the current tokio runtime.
    pub async fn start(self) -> Result<Runner, StoreError> {
        let mut config = self.config;
        config.concurrency = config.concurrency.max(1);
        config.prefetch = config.prefetch.max(config.concurrency);
        config.lease_ms = config.lease_ms.max(1_000);
        config.finish_batch = config.finish_batch.max(1);
        let listener = self.scheduler.shared.store.listen_for_jobs().await?;
        let wake = Arc::new(Wake {
            notify: Notify::new(),
            planned: AtomicI64::new(i64::MAX),
        });
        self.scheduler
            .shared
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&wake));
        let (progress, _) = watch::channel(Progress::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            store: self.scheduler.shared.store.clone(),
            clock: self.scheduler.shared.clock.clone(),
            config,
            handlers: self.handlers,
            wake,
            progress,
            slots: Arc::new(Semaphore::new(0)),
            held_changed: Notify::new(),
            held: Mutex::new(HashMap::new()),
        });
        inner.slots.add_permits(inner.config.concurrency);
        let mut background = Vec::new();
        if let Some(mut l) = listener {
            let wake = Arc::downgrade(&inner.wake);
            background.push(tokio::spawn(async move {
                loop {
                    let signal = l.recv().await;
                    let Some(w) = wake.upgrade() else { break };
                    match signal {
                        Ok(JobSignal::Scheduled(at)) => w.ring_if_before(at),
                        Ok(JobSignal::Reconnected) => w.notify.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %e, "job notifications lost; listening again");
                            w.notify.notify_one();
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }));
        }
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let completer = tokio::spawn(inner.clone().complete(done_rx));
        background.push(tokio::spawn(inner.clone().heartbeat(stop_rx.clone())));
        let main = tokio::spawn(inner.clone().run(stop_rx, done_tx));
        Ok(Runner {
            inner,
            stop: stop_tx,
            main: Some(main),
            completer: Some(completer),
            background,
        })
    }
}

/// What a runner is doing, for [`Runner::settled`] (tests drain with it
/// instead of sleeping) and for metrics.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Passes over the table begun.
    pub passes: u64,
    /// `Some(n)`: idle after pass `n`, waiting for the timer or a signal.
    pub idle_after: Option<u64>,
    /// The clock as the last idle pass read it.
    pub observed_now: Millis,
    /// Claimed jobs whose handler has not finished.
    pub held: usize,
    /// Held jobs waiting for their `run_at` (lookahead), by `run_at`.
    pub waiting: BTreeMap<Millis, usize>,
    /// Finished jobs whose outcome is not yet written.
    pub unrecorded: usize,
    /// Jobs whose outcome was written.
    pub recorded: u64,
}

impl Progress {
    fn waiting_after(&self, t: Millis) -> usize {
        self.waiting.range(t + 1..).map(|(_, n)| n).sum()
    }
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    config: RunnerConfig,
    handlers: HashMap<String, Handler>,
    wake: Arc<Wake>,
    progress: watch::Sender<Progress>,
    /// Handler slots (`concurrency`).
    slots: Arc<Semaphore>,
    /// Rung when a held job's handler finishes (room to claim again).
    held_changed: Notify,
    /// Held jobs: id → (org, task), to hand them back at shutdown.
    held: Mutex<HashMap<Uuid, (Uuid, tokio::task::AbortHandle)>>,
}

/// A started runner. Dropping it without [`Runner::shutdown`] aborts it
/// (its leases then expire and other workers take the jobs back).
pub struct Runner {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    main: Option<tokio::task::JoinHandle<()>>,
    completer: Option<tokio::task::JoinHandle<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Runner {
    pub fn owner(&self) -> &str {
        &self.inner.config.owner
    }

    pub fn progress(&self) -> Progress {
        self.inner.progress.borrow().clone()
    }

    /// Waits until this runner has looked at the table at a time ≥ `t`,
    /// started every job it found due by `t`, and recorded their outcomes.
    /// Jobs it holds for later (lookahead) may still wait. With a test
    /// clock: advance it, then `settled(clock.now_ms())` — no sleeping.
    pub async fn settled(&self, t: Millis) {
        let mut rx = self.inner.progress.subscribe();
        let begun = rx.borrow().passes;
        self.inner.wake.notify.notify_one();
        let _ = rx
            .wait_for(|p| {
                p.idle_after.is_some_and(|n| n > begun)
                    && p.observed_now >= t
                    && p.unrecorded == 0
                    && p.held == p.waiting_after(t)
            })
            .await;
    }

    /// Stops claiming, lets running handlers finish (up to the grace
    /// period), records their outcomes, and hands back the jobs it held but
    /// did not finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(main) = self.main.take() {
            let _ = main.await;
        }
        if let Some(c) = self.completer.take() {
            let _ = c.await;
        }
        for b in self.background.drain(..) {
            b.abort();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        for t in self
            .main
            .iter()
            .chain(&self.completer)
            .chain(&self.background)
        {
            t.abort();
        }
        let held = self.inner.held.lock().unwrap_or_else(|e| e.into_inner());
        for (_, task) in held.values() {
            task.abort();
        }
    }
}

enum Pass {
    /// Claimed a full batch: look again at once.
    More,
    /// Nothing more to claim now.
    Idle,
}

impl Inner {
    async fn run(
        self: Arc<Self>,
        mut stop: watch::Receiver<bool>,
        done: mpsc::UnboundedSender<Finished>,
    ) {
        let mut next_reclaim = i64::MIN;
        while !*stop.borrow() {
            self.wake.planned.store(i64::MAX, Ordering::SeqCst);
            let pass = self.progress_modify(|p| {
                p.passes += 1;
                p.idle_after = None;
                p.passes
            });
            let now = self.clock.now_ms();
            match self.pass(now, &mut next_reclaim, &done).await {
                Ok(Pass::More) => continue,
                Ok(Pass::Idle) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: the job table is unavailable; trying again in 1 s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            }
            let full = self.needs_room();
            let wake_at = if full {
                // Claiming must wait for room; the timer cannot help.
                next_reclaim.min(now.saturating_add(self.config.max_idle_ms))
            } else {
                match self.store.next_job_due().await {
                    Ok(next) => next
                        .map(|t| t - self.config.lookahead_ms)
                        .unwrap_or(i64::MAX)
                        .min(next_reclaim)
                        .min(now.saturating_add(self.config.max_idle_ms)),
                    Err(e) => {
                        tracing::warn!(error = %e, "scheduler: cannot read the next due time");
                        now + 1_000
                    }
                }
            };
            if !full && wake_at <= now {
                continue; // due already (scheduled during this pass)
            }
            self.wake.planned.store(wake_at, Ordering::SeqCst);
            self.progress.send_modify(|p| {
                p.idle_after = Some(pass);
                p.observed_now = now;
            });
            let sleep = self.clock.sleep_until(wake_at);
            tokio::select! {
                _ = sleep => {}
                _ = self.wake.notify.notified() => {}
                _ = self.held_changed.notified(), if full => {}
                _ = stop.changed() => {}
            }
        }
        self.wind_down(done).await;
    }

    fn progress_modify<R>(&self, f: impl FnOnce(&mut Progress) -> R) -> R {
        let mut out = None;
        self.progress.send_modify(|p| out = Some(f(p)));
        out.expect("send_modify runs its closure")
    }

    fn held_count(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Claims wait until at most half of `prefetch` is held, so each claim
    /// takes a batch: a claim is a transaction (an fsync), and topping the
    /// local queue up one job at a time would pay one per job.
    fn needs_room(&self) -> bool {
        self.held_count() * 2 > self.config.prefetch
    }

    async fn pass(
        self: &Arc<Self>,
        now: Millis,
        next_reclaim: &mut Millis,
        done: &mpsc::UnboundedSender<Finished>,
    ) -> Result<Pass, StoreError> {
        if now >= *next_reclaim {
            let r = self.store.reclaim_expired_jobs(now).await?;
            if r.requeued + r.parked > 0 {
                tracing::warn!(
                    requeued = r.requeued,
                    parked = r.parked,
                    "scheduler: took back jobs of a worker whose lease expired"
                );
            }
            *next_reclaim = now.saturating_add(self.config.reclaim_every_ms);
        }
        if self.needs_room() {
            return Ok(Pass::Idle);
        }
        let room = self.config.prefetch.saturating_sub(self.held_count());
        let jobs = self
            .store
            .claim_jobs(
                &self.config.owner,
                now.saturating_add(self.config.lookahead_ms),
                room as u32,
                now.saturating_add(self.config.lease_ms),
                now,
            )
            .await?;
        let claimed = jobs.len();
        if claimed > 0 {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            self.progress.send_modify(|p| {
                p.held += claimed;
                for j in &jobs {
                    if j.run_at > now {
                        *p.waiting.entry(j.run_at).or_default() += 1;
                    }
                }
            });
            for job in jobs {
                let (org, id) = (job.org_id, job.id);
                let waits = job.run_at > now;
                let task = tokio::spawn(self.clone().execute(job, waits, done.clone()));
                held.insert(id, (org, task.abort_handle()));
            }
        }
        Ok(if claimed == room {
            Pass::More
        } else {
            Pass::Idle
        })
    }

    /// One claimed job: wait for its time (lookahead) and a slot, run its
    /// handler (isolated, so a panic is a failure and not a lost job), and
    /// pass the outcome to the completer.
    async fn execute(
        self: Arc<Self>,
        job: ClaimedJob,
        waits: bool,
        done: mpsc::UnboundedSender<Finished>,
    ) {
        if waits {
            self.clock.sleep_until(job.run_at).await;
            self.progress.send_modify(|p| {
                if let Some(n) = p.waiting.get_mut(&job.run_at) {
                    *n -= 1;
                    if *n == 0 {
                        p.waiting.remove(&job.run_at);
                    }
                }
            });
        }
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let ctx = JobContext {
            org_id: job.org_id,
            id: job.id,
            kind: job.kind,
            unique_key: job.unique_key,
            payload: job.payload,
            run_at: job.run_at,
            attempt: job.attempts,
            max_attempts: job.max_attempts,
        };
        let result = match self.handlers.get(&ctx.kind) {
            Some(h) => match AbortOnDrop(tokio::spawn(h(ctx.clone()))).join().await {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(JobError::retry("the handler panicked")),
                Err(_) => Err(JobError::retry("the handler was cancelled")),
            },
            None => Err(JobError::retry(format!(
                "no handler for job kind '{}' on this worker",
                ctx.kind
            ))),
        };
        let now = self.clock.now_ms();
        let outcome = match result {
            Ok(()) => Outcome::Done,
            Err(e) => {
                let fate = after_failure(
                    &e.failure,
                    ctx.attempt,
                    ctx.max_attempts,
                    &self.config.backoff,
                    now,
                    rand::random::<f64>(),
                );
                tracing::info!(kind = %ctx.kind, job = %ctx.id, attempt = ctx.attempt, error = %e.message, ?fate, "job failed");
                match fate {
                    AfterFailure::Retry { at } => Outcome::Retry {
                        at,
                        error: e.message,
                    },
                    AfterFailure::Park => Outcome::Park { error: e.message },
                }
            }
        };
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ctx.id);
        self.progress.send_modify(|p| {
            p.held -= 1;
            p.unrecorded += 1;
        });
        self.held_changed.notify_one();
        let _ = done.send(Finished {
            org_id: ctx.org_id,
            id: ctx.id,
            outcome,
        });
    }

    /// Writes outcomes in batches: whatever finished while the last write
    /// was in flight goes in the next one.
    async fn complete(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Finished>) {
        let max = self.config.finish_batch;
        let mut batch = Vec::with_capacity(max);
        while rx.recv_many(&mut batch, max).await > 0 {
            let items: Vec<Finished> = std::mem::take(&mut batch);
            let n = items.len();
            let retry_soonest = items
                .iter()
                .filter_map(|f| match f.outcome {
                    Outcome::Retry { at, .. } => Some(at),
                    _ => None,
                })
                .min();
            let mut tries = 0;
            loop {
                let now = self.clock.now_ms();
                match self
                    .store
                    .finish_jobs(&self.config.owner, items.clone(), now)
                    .await
                {
                    Ok(written) => {
                        if (written as usize) < n {
                            tracing::warn!(
                                lost = n - written as usize,
                                "scheduler: some jobs were no longer leased to this worker when they finished"
                            );
                        }
                        break;
                    }
                    Err(e) if tries < 5 => {
                        tries += 1;
                        tracing::warn!(error = %e, "scheduler: recording outcomes failed; trying again");
                        tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                    }
                    Err(e) => {
                        // The leases will run out and the jobs run again.
                        tracing::error!(error = %e, jobs = n, "scheduler: outcomes not recorded");
                        break;
                    }
                }
            }
            self.progress.send_modify(|p| {
                p.unrecorded -= n;
                p.recorded += n as u64;
                if retry_soonest.is_some() {
                    // A retry may be due already: not settled until the
                    // runner has looked again (it is rung just below).
                    p.idle_after = None;
                }
            });
            if retry_soonest.is_some() {
                self.wake.notify.notify_one();
            }
        }
    }

    /// Renews this runner's leases while it holds jobs.
    async fn heartbeat(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = (self.config.lease_ms / 3).max(1);
        loop {
            let next = self.clock.now_ms().saturating_add(every);
            tokio::select! {
                _ = self.clock.sleep_until(next) => {}
                _ = stop.changed() => return,
            }
            if self.held_count() == 0 {
                continue;
            }
            let now = self.clock.now_ms();
            if let Err(e) = self
                .store
                .renew_leases(&self.config.owner, now + self.config.lease_ms, now)
                .await
            {
                tracing::warn!(error = %e, "scheduler: renewing leases failed");
            }
        }
    }

    async fn wind_down(self: &Arc<Self>, done: mpsc::UnboundedSender<Finished>) {
        drop(done);
        let mut rx = self.progress.subscribe();
        let finished = tokio::time::timeout(self.config.shutdown_grace, async {
            // Jobs waiting for their time would wait past the grace: only
            // handlers already running are worth waiting for.
            let _ = rx
                .wait_for(|p| p.held == p.waiting.values().sum::<usize>())
                .await;
        })
        .await;
        let left: Vec<(Uuid, Uuid)> = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            held.drain()
                .map(|(id, (org, task))| {
                    task.abort();
                    (org, id)
                })
                .collect()
        };
        if finished.is_err() {
            tracing::warn!(
                jobs = left.len(),
                "scheduler: handlers still running at shutdown were stopped"
            );
        }
        if !left.is_empty() {
            let now = self.clock.now_ms();
            match self.store.release_jobs(&self.config.owner, left, now).await {
                Ok(n) => tracing::info!(jobs = n, "scheduler: handed back jobs it did not run"),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: handing back jobs failed; their leases will expire")
                }
            }
        }
    }
}

/// A handler's task, stopped when the job's own task is (shutdown), so a
/// handed-back job never runs on in the background.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
