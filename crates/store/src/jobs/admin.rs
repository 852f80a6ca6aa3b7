//! The tenant's views of its jobs and what a person may do with them:
//! read one, list the failing, retry or delete a parked job, cancel a
//! timer, count by state.

use super::{announce, JobCounts, JobRecord, JobRow, JOB_COLS};
use crate::engine::{read, write, write_db};
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::jobs::JobState;
use bos_core::Millis;
use uuid::Uuid;

impl crate::Store {
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
        let n = write_db!(self, |db| async move {
            let n = db
                .exec(
                    q("update jobs set state = 'pending', run_at = $3, attempts = 0, updated_at = $3 \
                       where org_id = $1 and id = $2 and state = 'parked'")
                    .bind(org)
                    .bind(id)
                    .bind(now),
                )
                .await?;
            if n > 0 {
                announce(db, now).await?;
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
        write_db!(self, |db| async move {
            crate::timers::cancel(db, org, &kind, &key).await
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
                None => return Err(StoreError::unknown_value("jobs.state", &state)),
            }
        }
        Ok(counts)
    }
}
