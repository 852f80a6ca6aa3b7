//! The durable job table behind the scheduler: scheduling with unique
//! keys, claiming due jobs in batches under a lease, finishing them in
//! batches, reclaiming the jobs of a lost worker, and the few tenant views a
//! UI needs (failing and parked jobs, counts, retry, cancel).
//!
//! Claiming is the one place the engines differ: on SQLite the single writer
//! already serializes claimers, so a plain `update … returning` is enough; on
//! PostgreSQL several replicas claim at once and `for update skip locked`
//! lets each take different rows without waiting on the others. Bulk writes
//! on PostgreSQL bind arrays (`unnest`) so a batch is one round trip; on
//! SQLite they are a loop of small statements inside one group commit.
//!
//! Unique keys: at most one *live* (pending or running) job per
//! `(org, kind, key)`. [`Store::schedule_jobs`] keeps an existing live job
//! and adds nothing (dedupe); [`Store::schedule_or_replace_job`] moves a
//! pending one to the new time and payload, and when the holder is already
//! running it detaches the key from it and adds the new job (the running one
//! finishes as it is). Parked jobs keep their key for display but no longer
//! hold it.
//!
//! Jobs are at least once: a worker that dies mid-job loses its lease and
//! the job runs again, so handlers must be idempotent.
//!
//! The rooms: this module schedules; `claim` runs (claims, finishes,
//! leases, reclaims); `admin` is what a tenant sees and does. The timer
//! upsert behind `schedule_or_replace_job` is `crate::timers`.

mod admin;
mod claim;

use crate::engine::{write_db, Engine};
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::jobs::JobState;
use bos_core::Millis;
use uuid::Uuid;

/// The PostgreSQL channel on which schedulers announce new jobs; the
/// payload is the earliest `run_at` of what was scheduled.
pub const NOTIFY_CHANNEL: &str = "bos_jobs";

/// Attempts before a job is parked when the caller does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;

/// Errors are kept for people to read; a runaway message is cut.
const MAX_ERROR_CHARS: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub org_id: Uuid,
    /// Which handler runs it (e.g. `nudge.step`, `lead.ghosting`).
    pub kind: String,
    /// At most one live job per (org, kind, key).
    pub unique_key: Option<String>,
    /// JSON text handed to the handler as is.
    pub payload: String,
    pub run_at: Millis,
    pub max_attempts: u32,
}

impl NewJob {
    pub fn new(org_id: Uuid, kind: impl Into<String>, run_at: Millis) -> NewJob {
        NewJob {
            org_id,
            kind: kind.into(),
            unique_key: None,
            payload: "{}".into(),
            run_at,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    pub fn key(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }

    pub fn payload(mut self, json: impl Into<String>) -> NewJob {
        self.payload = json.into();
        self
    }

    pub fn max_attempts(mut self, n: u32) -> NewJob {
        self.max_attempts = n.max(1);
        self
    }
}

/// The job a schedule call refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    pub id: Uuid,
    /// False when a live job with the same key already existed: it was kept
    /// (`schedule_jobs`) or moved to the new time (`schedule_or_replace_job`).
    pub created: bool,
}

/// A job handed to a worker by [`Store::claim_jobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub org_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    pub unique_key: Option<String>,
    pub payload: String,
    pub run_at: Millis,
    /// Including this one.
    pub attempts: u32,
    pub max_attempts: u32,
}

/// What a worker reports for a claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the job is deleted.
    Done,
    /// Failed; pending again at `at`.
    Retry { at: Millis, error: String },
    /// Failed for good (or out of attempts); kept for a person.
    Park { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub org_id: Uuid,
    pub id: Uuid,
    pub outcome: Outcome,
}

/// A job as stored, for views and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub org_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    pub unique_key: Option<String>,
    pub payload: String,
    pub state: JobState,
    pub run_at: Millis,
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Millis>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub pending: u64,
    pub running: u64,
    pub parked: u64,
}

/// Jobs taken back from workers whose lease ran out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Pending again, due now.
    pub requeued: u64,
    /// Out of attempts: parked.
    pub parked: u64,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    org_id: Uuid,
    id: Uuid,
    kind: String,
    unique_key: Option<String>,
    payload: String,
    run_at: i64,
    attempts: i64,
    max_attempts: i64,
}

impl From<ClaimRow> for ClaimedJob {
    fn from(r: ClaimRow) -> Self {
        ClaimedJob {
            org_id: r.org_id,
            id: r.id,
            kind: r.kind,
            unique_key: r.unique_key,
            payload: r.payload,
            run_at: r.run_at,
            attempts: clamp_u32(r.attempts),
            max_attempts: clamp_u32(r.max_attempts),
        }
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    org_id: Uuid,
    id: Uuid,
    kind: String,
    unique_key: Option<String>,
    payload: String,
    state: String,
    run_at: i64,
    attempts: i64,
    max_attempts: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        Ok(JobRecord {
            org_id: r.org_id,
            id: r.id,
            kind: r.kind,
            unique_key: r.unique_key,
            payload: r.payload,
            state: JobState::parse(&r.state)
                .ok_or_else(|| StoreError::unknown_value("jobs.state", &r.state))?,
            run_at: r.run_at,
            attempts: clamp_u32(r.attempts),
            max_attempts: clamp_u32(r.max_attempts),
            lease_owner: r.lease_owner,
            lease_until: r.lease_until,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn clamp_u32(v: i64) -> u32 {
    v.clamp(0, u32::MAX as i64) as u32
}

fn cut(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &error[..i]),
        None => error.to_string(),
    }
}

const JOB_COLS: &str =
    "org_id, id, kind, unique_key, payload, state, run_at, attempts, max_attempts, \
     lease_owner, lease_until, last_error, created_at, updated_at";

const INSERT_ONE: &str = "insert into jobs (org_id, id, kind, unique_key, payload, state, run_at, attempts, \
     max_attempts, created_at, updated_at) values ($1, $2, $3, $4, $5, 'pending', $6, 0, $7, $8, $8) \
     on conflict (org_id, kind, unique_key) where unique_key is not null and state <> 'parked' do nothing";
const LIVE_BY_KEY: &str =
    "select id from jobs where org_id = $1 and kind = $2 and unique_key = $3 \
     and state <> 'parked'";

impl crate::Store {
    /// Schedules one job; see [`Store::schedule_jobs`].
    pub async fn schedule_job(&self, job: NewJob, now: Millis) -> Result<Scheduled, StoreError> {
        let mut v = self.schedule_jobs(vec![job], now).await?;
        v.pop()
            .ok_or_else(|| StoreError::Other("schedule returned nothing".into()))
    }

    /// Schedules jobs in one transaction. A job whose key is held by a live
    /// (pending or running) job of the same org and kind adds nothing: the
    /// answer names the existing job with `created: false`. On PostgreSQL the
    /// commit notifies [`NOTIFY_CHANNEL`] so every replica's runner wakes.
    pub async fn schedule_jobs(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
    ) -> Result<Vec<Scheduled>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = jobs.iter().map(|_| crate::new_id()).collect();
        let earliest = jobs.iter().map(|j| j.run_at).min().unwrap_or(now);
        match &*self.engine {
            Engine::Sqlite(s) => {
                s.writer
                    .run(move |c| {
                        Box::pin(async move {
                            let mut out = Vec::with_capacity(jobs.len());
                            for (j, id) in jobs.iter().zip(ids) {
                                let n = sqlx::query(INSERT_ONE)
                                    .bind(j.org_id)
                                    .bind(id)
                                    .bind(&j.kind)
                                    .bind(&j.unique_key)
                                    .bind(&j.payload)
                                    .bind(j.run_at)
                                    .bind(j.max_attempts.max(1) as i64)
                                    .bind(now)
                                    .execute(&mut *c)
                                    .await?
                                    .rows_affected();
                                out.push(if n == 1 {
                                    Scheduled { id, created: true }
                                } else {
                                    let id: Uuid = sqlx::query_scalar(LIVE_BY_KEY)
                                        .bind(j.org_id)
                                        .bind(&j.kind)
                                        .bind(&j.unique_key)
                                        .fetch_one(&mut *c)
                                        .await?;
                                    Scheduled { id, created: false }
                                });
                            }
                            Ok(out)
                        })
                    })
                    .await
            }
            Engine::Postgres(p) => {
                let mut tx = p.begin().await?;
                let inserted: Vec<Uuid> = sqlx::query_scalar(
                    "insert into jobs (org_id, id, kind, unique_key, payload, state, run_at, attempts, \
                     max_attempts, created_at, updated_at) \
                     select o, i, k, u, p, 'pending', r, 0, m, $8, $8 \
                     from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[]) \
                     as t(o, i, k, u, p, r, m) \
                     on conflict (org_id, kind, unique_key) where unique_key is not null and state <> 'parked' \
                     do nothing returning id",
                )
                .bind(jobs.iter().map(|j| j.org_id).collect::<Vec<_>>())
                .bind(&ids)
                .bind(jobs.iter().map(|j| j.kind.clone()).collect::<Vec<_>>())
                .bind(jobs.iter().map(|j| j.unique_key.clone()).collect::<Vec<_>>())
                .bind(jobs.iter().map(|j| j.payload.clone()).collect::<Vec<_>>())
                .bind(jobs.iter().map(|j| j.run_at).collect::<Vec<_>>())
                .bind(jobs.iter().map(|j| j.max_attempts.max(1) as i64).collect::<Vec<_>>())
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                let mut out = Vec::with_capacity(jobs.len());
                if inserted.len() == jobs.len() {
                    out.extend(ids.iter().map(|&id| Scheduled { id, created: true }));
                } else {
                    let fresh: std::collections::HashSet<Uuid> = inserted.iter().copied().collect();
                    for (j, id) in jobs.iter().zip(&ids) {
                        if fresh.contains(id) {
                            out.push(Scheduled {
                                id: *id,
                                created: true,
                            });
                            continue;
                        }
                        // Held by a live job (committed before our insert, or
                        // earlier in this same batch).
                        let held: Option<Uuid> = sqlx::query_scalar(LIVE_BY_KEY)
                            .bind(j.org_id)
                            .bind(&j.kind)
                            .bind(&j.unique_key)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let id = held.ok_or_else(|| {
                            StoreError::Conflict(
                                "jobs_unique_key: the job holding this key finished meanwhile; schedule again"
                                    .into(),
                            )
                        })?;
                        out.push(Scheduled { id, created: false });
                    }
                }
                if !inserted.is_empty() {
                    announce(&mut *tx, earliest).await?;
                }
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Schedules a job, or moves the live job holding its key: a pending one
    /// gets the new `run_at`, payload and attempt budget (`created: false`);
    /// a running one keeps running but gives up the key, and the new job is
    /// added. This is how a timer is pushed back (a customer wrote again, so
    /// the ghosting window starts over).
    pub async fn schedule_or_replace_job(
        &self,
        job: NewJob,
        now: Millis,
    ) -> Result<Scheduled, StoreError> {
        let Some(key) = job.unique_key.clone() else {
            return self.schedule_job(job, now).await;
        };
        write_db!(self, |db| async move {
            let t = crate::timers::Timer {
                org: job.org_id,
                kind: &job.kind,
                key: &key,
                payload: &job.payload,
                run_at: job.run_at,
                max_attempts: job.max_attempts,
            };
            let s = crate::timers::set_with(db, &t, now).await?;
            announce(db, job.run_at).await?;
            Ok(s)
        })
    }
}

/// Tells every replica's runner that a job due at `at` was scheduled
/// (PostgreSQL; SQLite has one process per file and its runner is woken in
/// process).
pub(super) async fn announce<D: Db>(db: &mut D, at: Millis) -> Result<(), StoreError> {
    if !D::SQLITE {
        db.exec(
            q("select pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(at.to_string()),
        )
        .await?;
    }
    Ok(())
}

/// Wake-ups from other processes: on PostgreSQL, every job scheduled by any
/// replica (the earliest `run_at` of each schedule call). SQLite has one
/// process per database file, so the in-process signal is enough there.
pub struct JobListener {
    inner: sqlx::postgres::PgListener,
}

/// What a [`JobListener`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobSignal {
    /// A job due at this time was scheduled.
    Scheduled(Millis),
    /// The connection dropped and was re-established: notifications may
    /// have been missed, so look at the table again.
    Reconnected,
}

impl JobListener {
    /// Waits for the next signal.
    pub async fn recv(&mut self) -> Result<JobSignal, StoreError> {
        match self.inner.try_recv().await? {
            Some(n) => Ok(n
                .payload()
                .parse()
                .map(JobSignal::Scheduled)
                .unwrap_or(JobSignal::Reconnected)),
            None => Ok(JobSignal::Reconnected),
        }
    }
}

impl crate::Store {
    /// A listener for jobs scheduled by other processes (PostgreSQL only).
    pub async fn listen_for_jobs(&self) -> Result<Option<JobListener>, StoreError> {
        match &*self.engine {
            Engine::Sqlite(_) => Ok(None),
            Engine::Postgres(p) => {
                let mut inner = sqlx::postgres::PgListener::connect_with(p).await?;
                inner.listen(NOTIFY_CHANNEL).await?;
                Ok(Some(JobListener { inner }))
            }
        }
    }
}
