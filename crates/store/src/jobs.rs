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

use crate::engine::{lite_db, read, write, Engine};
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

/// Ids per `delete … in (…)` on SQLite (well under its parameter limit).
const SQLITE_DELETE_CHUNK: usize = 500;

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
                .ok_or_else(|| StoreError::Other(format!("unknown job state '{}'", r.state)))?,
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

/// SQLite's claim: the writer serializes claimers, so the subquery's rows
/// cannot be taken by anyone else before the update.
const CLAIM_SQLITE: &str = "update jobs set state = 'running', lease_owner = $1, lease_until = $2, \
     attempts = attempts + 1, updated_at = $3 \
     where rowid in (select rowid from jobs where state = 'pending' and run_at <= $4 order by run_at limit $5) \
     returning org_id, id, kind, unique_key, payload, run_at, attempts, max_attempts";
/// PostgreSQL's claim: rows locked by another replica's claim are skipped,
/// not waited for, so replicas never take the same job and never queue.
const CLAIM_PG: &str = "with due as (select org_id, id from jobs where state = 'pending' and run_at <= $4 \
     order by run_at limit $5 for update skip locked) \
     update jobs j set state = 'running', lease_owner = $1, lease_until = $2, attempts = j.attempts + 1, \
     updated_at = $3 from due where j.org_id = due.org_id and j.id = due.id \
     returning j.org_id, j.id, j.kind, j.unique_key, j.payload, j.run_at, j.attempts, j.max_attempts";

const DONE_ONE: &str =
    "delete from jobs where org_id = $1 and id = $2 and state = 'running' and lease_owner = $3";
const RETRY_ONE: &str = "update jobs set state = 'pending', run_at = $4, lease_owner = null, lease_until = null, \
     last_error = $5, updated_at = $6 where org_id = $1 and id = $2 and state = 'running' and lease_owner = $3";
const PARK_ONE: &str = "update jobs set state = 'parked', lease_owner = null, lease_until = null, \
     last_error = $4, updated_at = $5 where org_id = $1 and id = $2 and state = 'running' and lease_owner = $3";

/// Which engine a connection belongs to, for the few statements whose text
/// differs (the binds are the same, so the body is still written once).
trait Dialect {
    const SQLITE: bool;
}
impl Dialect for sqlx::SqliteConnection {
    const SQLITE: bool = true;
}
impl Dialect for sqlx::PgConnection {
    const SQLITE: bool = false;
}
fn is_sqlite<C: Dialect>(_: &C) -> bool {
    C::SQLITE
}

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
                    notify_pg(&mut tx, earliest).await?;
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
        let new_id = crate::new_id();
        write!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await?;
            // A concurrent replacer on PostgreSQL may insert between our
            // update and insert; the next round then finds its row. (The
            // redundant `state <> 'parked'` lets SQLite see that the partial
            // unique index applies.)
            for _ in 0..3 {
                let moved: Option<Uuid> = sqlx::query_scalar(
                    "update jobs set payload = $4, run_at = $5, max_attempts = $6, attempts = 0, \
                     last_error = null, updated_at = $7 \
                     where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked' and state = 'pending' returning id",
                )
                .bind(job.org_id)
                .bind(&job.kind)
                .bind(&key)
                .bind(&job.payload)
                .bind(job.run_at)
                .bind(job.max_attempts.max(1) as i64)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let scheduled = match moved {
                    Some(id) => Some(Scheduled { id, created: false }),
                    None => {
                        sqlx::query(
                            "update jobs set unique_key = null, updated_at = $4 \
                             where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked' and state = 'running'",
                        )
                        .bind(job.org_id)
                        .bind(&job.kind)
                        .bind(&key)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        let n = sqlx::query(INSERT_ONE)
                            .bind(job.org_id)
                            .bind(new_id)
                            .bind(&job.kind)
                            .bind(&key)
                            .bind(&job.payload)
                            .bind(job.run_at)
                            .bind(job.max_attempts.max(1) as i64)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        (n == 1).then_some(Scheduled {
                            id: new_id,
                            created: true,
                        })
                    }
                };
                if let Some(s) = scheduled {
                    if !is_sqlite(&*tx) {
                        sqlx::query("select pg_notify($1, $2)")
                            .bind(NOTIFY_CHANNEL)
                            .bind(job.run_at.to_string())
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    return Ok(s);
                }
            }
            Err(StoreError::Conflict(
                "jobs_unique_key: the key kept changing hands; schedule again".into(),
            ))
        })
    }

    /// Claims up to `limit` pending jobs due by `due_by` (oldest `run_at`
    /// first) for `owner`, leased until `lease_until`, and counts the attempt.
    /// No two claimers ever get the same job while its lease holds.
    pub async fn claim_jobs(
        &self,
        owner: &str,
        due_by: Millis,
        limit: u32,
        lease_until: Millis,
        now: Millis,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let owner = owner.to_string();
        let rows: Vec<ClaimRow> = match &*self.engine {
            // On the writer thread's own connection, like the nudge steps
            // and timers these jobs mostly are: when the two SQLite write
            // connections take turns, each turn finds the database changed
            // by the other and starts from an empty page cache.
            Engine::Sqlite(s) => lite_db!(s, |db| async move {
                let rows = db
                    .rows(
                        q(CLAIM_SQLITE)
                            .bind(owner.as_str())
                            .bind(lease_until)
                            .bind(now)
                            .bind(due_by)
                            .bind(limit as i64),
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ClaimRow {
                            org_id: r.uuid(0)?,
                            id: r.uuid(1)?,
                            kind: r.text(2)?,
                            unique_key: r.opt_text(3)?,
                            payload: r.text(4)?,
                            run_at: r.i64(5)?,
                            attempts: r.i64(6)?,
                            max_attempts: r.i64(7)?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })?,
            Engine::Postgres(p) => {
                let mut c = p.acquire().await?;
                sqlx::query_as(CLAIM_PG)
                    .bind(&owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(due_by)
                    .bind(limit as i64)
                    .fetch_all(&mut *c)
                    .await?
            }
        };
        let mut jobs: Vec<ClaimedJob> = rows.into_iter().map(ClaimedJob::from).collect();
        // `returning` gives no order; workers start the most overdue first.
        jobs.sort_by_key(|j| j.run_at);
        Ok(jobs)
    }

    /// Records what became of claimed jobs, all in one transaction. Only
    /// jobs still leased to `owner` are touched (a job whose lease ran out
    /// and was reclaimed belongs to its new claimer); returns how many were.
    pub async fn finish_jobs(
        &self,
        owner: &str,
        finished: Vec<Finished>,
        now: Millis,
    ) -> Result<u64, StoreError> {
        if finished.is_empty() {
            return Ok(0);
        }
        let owner = owner.to_string();
        match &*self.engine {
            // The writer thread's connection, as for claims (see there).
            Engine::Sqlite(s) => {
                lite_db!(s, |db| async move {
                    // Done jobs are deleted per org in chunks (one
                    // statement, one PK lookup per id).
                    let mut done: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
                    let mut n = 0;
                    for f in &finished {
                        match f.outcome {
                            Outcome::Done => done.entry(f.org_id).or_default().push(f.id),
                            _ => n += db.exec(finish_one(&owner, f, now)).await?,
                        }
                    }
                    for (org, ids) in done {
                        for chunk in ids.chunks(SQLITE_DELETE_CHUNK) {
                            let ids: Vec<String> =
                                (3..3 + chunk.len()).map(|i| format!("${i}")).collect();
                            let sql = format!(
                                "delete from jobs where org_id = $1 and state = 'running' \
                                         and lease_owner = $2 and id in ({})",
                                ids.join(", ")
                            );
                            let mut query = q(sql).bind(org).bind(owner.as_str());
                            for id in chunk {
                                query = query.bind(*id);
                            }
                            n += db.exec(query).await?;
                        }
                    }
                    Ok(n)
                })
            }
            Engine::Postgres(p) => {
                let mut tx = p.begin().await?;
                let (done, failed): (Vec<&Finished>, Vec<&Finished>) = finished
                    .iter()
                    .partition(|f| matches!(f.outcome, Outcome::Done));
                let mut n = 0;
                if !done.is_empty() {
                    n += sqlx::query(
                        "delete from jobs j using unnest($2::uuid[], $3::uuid[]) as d(org_id, id) \
                         where j.org_id = d.org_id and j.id = d.id and j.state = 'running' and j.lease_owner = $1",
                    )
                    .bind(&owner)
                    .bind(done.iter().map(|f| f.org_id).collect::<Vec<_>>())
                    .bind(done.iter().map(|f| f.id).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                for f in failed {
                    let c: &mut sqlx::PgConnection = &mut tx;
                    n += c.exec(finish_one(&owner, f, now)).await?;
                }
                tx.commit().await?;
                Ok(n)
            }
        }
    }

    /// Extends every lease `owner` holds to `lease_until` (a worker's
    /// heartbeat while handlers run); returns how many it still holds.
    pub async fn renew_leases(
        &self,
        owner: &str,
        lease_until: Millis,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let owner = owner.to_string();
        write!(self, |c| {
            Ok(sqlx::query(
                "update jobs set lease_until = $2, updated_at = $3 where state = 'running' and lease_owner = $1",
            )
            .bind(&owner)
            .bind(lease_until)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected())
        })
    }

    /// Hands back jobs `owner` claimed but will not run (shutdown): pending
    /// again at their own `run_at`, the attempt not counted.
    pub async fn release_jobs(
        &self,
        owner: &str,
        jobs: Vec<(Uuid, Uuid)>,
        now: Millis,
    ) -> Result<u64, StoreError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let owner = owner.to_string();
        write!(self, |c| {
            let mut n = 0;
            for (org, id) in &jobs {
                n += sqlx::query(
                    "update jobs set state = 'pending', lease_owner = null, lease_until = null, \
                     attempts = attempts - 1, updated_at = $4 \
                     where org_id = $1 and id = $2 and state = 'running' and lease_owner = $3",
                )
                .bind(*org)
                .bind(*id)
                .bind(&owner)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
            }
            Ok(n)
        })
    }

    /// Takes back running jobs whose lease ran out by `now` (their worker
    /// died or stalled): due again at once, or parked when that was their
    /// last attempt (a job that kills its worker every time must stop).
    pub async fn reclaim_expired_jobs(&self, now: Millis) -> Result<Reclaimed, StoreError> {
        write!(self, |c| {
            let parked = sqlx::query(
                "update jobs set state = 'parked', lease_owner = null, lease_until = null, \
                 last_error = 'the worker running it stopped answering (lease expired) on its last attempt', \
                 updated_at = $1 where state = 'running' and lease_until <= $1 and attempts >= max_attempts",
            )
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
            let requeued = sqlx::query(
                "update jobs set state = 'pending', run_at = $1, lease_owner = null, lease_until = null, \
                 last_error = 'the worker running it stopped answering (lease expired)', updated_at = $1 \
                 where state = 'running' and lease_until <= $1",
            )
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
            Ok(Reclaimed { requeued, parked })
        })
    }

    /// The earliest `run_at` of any pending job: when a runner must wake.
    pub async fn next_job_due(&self) -> Result<Option<Millis>, StoreError> {
        read!(self, |c| {
            Ok(
                sqlx::query_scalar("select min(run_at) from jobs where state = 'pending'")
                    .fetch_one(&mut *c)
                    .await?,
            )
        })
    }

    /// The earliest lease expiry of any running job: when a reclaim is due.
    pub async fn next_lease_expiry(&self) -> Result<Option<Millis>, StoreError> {
        read!(self, |c| {
            Ok(
                sqlx::query_scalar("select min(lease_until) from jobs where state = 'running'")
                    .fetch_one(&mut *c)
                    .await?,
            )
        })
    }

    pub async fn job(&self, org: Uuid, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!("select {JOB_COLS} from jobs where org_id = $1 and id = $2");
        let row: Option<JobRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(id)
                .fetch_optional(&mut *c)
                .await?)
        })?;
        row.map(JobRecord::try_from).transpose()
    }

    /// The live job holding `(kind, key)` in `org`, if any.
    pub async fn job_by_key(
        &self,
        org: Uuid,
        kind: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!(
            "select {JOB_COLS} from jobs where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked'"
        );
        let row: Option<JobRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(kind)
                .bind(key)
                .fetch_optional(&mut *c)
                .await?)
        })?;
        row.map(JobRecord::try_from).transpose()
    }

    /// Jobs of `org` that have failed at least once — parked, or pending a
    /// retry — most recently changed first.
    pub async fn failing_jobs(&self, org: Uuid, limit: u32) -> Result<Vec<JobRecord>, StoreError> {
        let sql = format!(
            "select {JOB_COLS} from jobs where org_id = $1 and last_error is not null \
             order by updated_at desc limit $2"
        );
        let rows: Vec<JobRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(limit as i64)
                .fetch_all(&mut *c)
                .await?)
        })?;
        rows.into_iter().map(JobRecord::try_from).collect()
    }

    /// Puts a parked job back: pending at `now` with a fresh attempt budget
    /// (its last error stays visible until it succeeds). Conflict when a
    /// live job has taken its key meanwhile; not found unless it is parked.
    pub async fn retry_job(&self, org: Uuid, id: Uuid, now: Millis) -> Result<(), StoreError> {
        let n = write!(self, |c| {
            let n = sqlx::query(
                "update jobs set state = 'pending', run_at = $3, attempts = 0, updated_at = $3 \
                 where org_id = $1 and id = $2 and state = 'parked'",
            )
            .bind(org)
            .bind(id)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n > 0 && !is_sqlite(&*c) {
                sqlx::query("select pg_notify($1, $2)")
                    .bind(NOTIFY_CHANNEL)
                    .bind(now.to_string())
                    .execute(&mut *c)
                    .await?;
            }
            Ok(n)
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Cancels the pending job holding `(kind, key)` in `org` (a timer that
    /// no longer applies). A job already running is not stopped. Returns
    /// whether one was cancelled.
    pub async fn cancel_job(&self, org: Uuid, kind: &str, key: &str) -> Result<bool, StoreError> {
        let (kind, key) = (kind.to_string(), key.to_string());
        write!(self, |c| {
            Ok(sqlx::query(
                "delete from jobs where org_id = $1 and kind = $2 and unique_key = $3 and state <> 'parked' and state = 'pending'",
            )
            .bind(org)
            .bind(&kind)
            .bind(&key)
            .execute(&mut *c)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// Deletes a parked job for good (a person decided it is not worth it).
    pub async fn delete_parked_job(&self, org: Uuid, id: Uuid) -> Result<bool, StoreError> {
        write!(self, |c| {
            Ok(
                sqlx::query("delete from jobs where org_id = $1 and id = $2 and state = 'parked'")
                    .bind(org)
                    .bind(id)
                    .execute(&mut *c)
                    .await?
                    .rows_affected()
                    > 0,
            )
        })
    }

    pub async fn job_counts(&self, org: Uuid) -> Result<JobCounts, StoreError> {
        let rows: Vec<(String, i64)> = read!(self, |c| {
            Ok(
                sqlx::query_as("select state, count(*) from jobs where org_id = $1 group by state")
                    .bind(org)
                    .fetch_all(&mut *c)
                    .await?,
            )
        })?;
        let mut counts = JobCounts::default();
        for (state, n) in rows {
            let n = n.max(0) as u64;
            match JobState::parse(&state) {
                Some(JobState::Pending) => counts.pending = n,
                Some(JobState::Running) => counts.running = n,
                Some(JobState::Parked) => counts.parked = n,
                None => {}
            }
        }
        Ok(counts)
    }
}

/// The statement that records one finished job, the same on both engines.
fn finish_one(owner: &str, f: &Finished, now: Millis) -> crate::sql::Q {
    match &f.outcome {
        Outcome::Done => q(DONE_ONE).bind(f.org_id).bind(f.id).bind(owner),
        Outcome::Retry { at, error } => q(RETRY_ONE)
            .bind(f.org_id)
            .bind(f.id)
            .bind(owner)
            .bind(*at)
            .bind(cut(error))
            .bind(now),
        Outcome::Park { error } => q(PARK_ONE)
            .bind(f.org_id)
            .bind(f.id)
            .bind(owner)
            .bind(cut(error))
            .bind(now),
    }
}

async fn notify_pg(c: &mut sqlx::PgConnection, earliest: Millis) -> Result<(), StoreError> {
    sqlx::query("select pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(earliest.to_string())
        .execute(&mut *c)
        .await?;
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
