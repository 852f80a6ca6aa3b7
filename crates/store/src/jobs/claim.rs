//! Running jobs: claiming due jobs in batches under a lease, finishing
//! them in batches, renewing and releasing leases, reclaiming the jobs of
//! a lost worker, and the two times a runner wakes for.

use super::{cut, ClaimRow, ClaimedJob, Finished, Outcome, Reclaimed};
use crate::engine::{lite_db, read, write, Engine};
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::Millis;
use uuid::Uuid;

/// Ids per `delete … in (…)` on SQLite (well under its parameter limit).
const SQLITE_DELETE_CHUNK: usize = 500;

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

impl crate::Store {
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
                            org_id: r.uuid("org_id")?,
                            id: r.uuid("id")?,
                            kind: r.text("kind")?,
                            unique_key: r.opt_text("unique_key")?,
                            payload: r.text("payload")?,
                            run_at: r.i64("run_at")?,
                            attempts: r.i64("attempts")?,
                            max_attempts: r.i64("max_attempts")?,
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
