//! The queue of stored inbound events: what is due, failed attempts and
//! their retries, requeues, and the reads the sources page and the crash
//! and intake benchmarks make of it.

use super::{retry_delay_ms, Delivery, DueEvent, MAX_ATTEMPTS};
use crate::engine::{read, write_db};
use crate::sql::{q, Db, Row};
use crate::StoreError;
use bos_core::Millis;
use std::collections::HashMap;
use uuid::Uuid;

const DELIVERY_COLS: &str =
    "id, source_id, external_id, kind, received_at, status, attempts, error, processed_at, profile_id";

fn delivery(r: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.uuid("id")?,
        source_id: r.uuid("source_id")?,
        external_id: r.text("external_id")?,
        kind: r.text("kind")?,
        received_at: r.i64("received_at")?,
        status: r.text("status")?,
        attempts: r.i64("attempts")?,
        error: r.opt_text("error")?,
        processed_at: r.opt_i64("processed_at")?,
        profile_id: r.opt_uuid("profile_id")?,
    })
}

impl crate::Store {
    /// Due pending events across tenants, oldest first (a system query:
    /// the pipeline serves every tenant).
    pub async fn due_inbound(&self, now: Millis, limit: u32) -> Result<Vec<DueEvent>, StoreError> {
        self.due_inbound_after(now, None, limit).await
    }

    /// Like [`Store::due_inbound`], after the queue position `after`
    /// (`next_at`, id) of the last event already taken.
    pub async fn due_inbound_after(
        &self,
        now: Millis,
        after: Option<(Millis, Uuid)>,
        limit: u32,
    ) -> Result<Vec<DueEvent>, StoreError> {
        let cols = "select e.org_id as org_id, e.id as id, e.source_id as source_id, s.kind as source_kind, \
                    e.external_id as external_id, e.kind as kind, e.payload as payload, \
                    e.received_at as received_at, e.attempts as attempts, e.next_at as next_at \
                    from inbound_events e join sources s on s.org_id = e.org_id and s.id = e.source_id \
                    where e.status = 'pending' and e.next_at <= $1";
        let query = match after {
            None => q(format!("{cols} order by e.next_at, e.id limit $2")).bind(now).bind(i64::from(limit)),
            Some((at, id)) => q(format!(
                "{cols} and (e.next_at > $3 or (e.next_at = $3 and e.id > $4)) order by e.next_at, e.id limit $2"
            ))
            .bind(now)
            .bind(i64::from(limit))
            .bind(at)
            .bind(id),
        };
        let rows = crate::sql::read_rows(self, query).await?;
        rows.iter()
            .map(|r| {
                Ok(DueEvent {
                    org_id: r.uuid("org_id")?,
                    id: r.uuid("id")?,
                    source_id: r.uuid("source_id")?,
                    source_kind: r.text("source_kind")?,
                    external_id: r.text("external_id")?,
                    kind: r.text("kind")?,
                    payload: r.text("payload")?,
                    received_at: r.i64("received_at")?,
                    attempts: r.i64("attempts")?.max(0) as u32,
                    next_at: r.i64("next_at")?,
                })
            })
            .collect()
    }

    /// When the next retry of a failed event is due, if one waits.
    pub async fn next_inbound_retry(&self) -> Result<Option<Millis>, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_scalar::<_, Option<i64>>(
                "select min(next_at) from inbound_events where status = 'pending'",
            )
            .fetch_one(&mut *c)
            .await?)
        })
    }
}

impl crate::Store {
    /// Records a failed attempt: retried after a growing delay, parked once
    /// out of attempts.
    pub async fn fail_inbound(
        &self,
        org: Uuid,
        id: Uuid,
        error: String,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let error: String = error.chars().take(2_000).collect();
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select attempts from inbound_events where org_id = $1 and id = $2 and status = 'pending'")
                        .bind(org)
                        .bind(id),
                )
                .await?;
            let Some(r) = r else { return Ok(false) };
            let attempts = r.i64("attempts")?.max(0) as u32 + 1;
            let parked = attempts >= MAX_ATTEMPTS;
            db.exec(
                q("update inbound_events set attempts = $3, error = $4, next_at = $5, status = $6 \
                   where org_id = $1 and id = $2 and status = 'pending'")
                .bind(org)
                .bind(id)
                .bind(i64::from(attempts))
                .bind(error)
                .bind(now + retry_delay_ms(attempts))
                .bind(if parked { "parked" } else { "pending" }),
            )
            .await?;
            Ok(parked)
        })
    }

    /// Puts an event back in the queue, due now: a parked one to retry, or
    /// a processed one to replay (its effects are idempotent, so a replay
    /// changes only what is missing).
    pub async fn requeue_inbound(
        &self,
        org: Uuid,
        id: Uuid,
        now: Millis,
    ) -> Result<(), StoreError> {
        let n = write_db!(self, |db| async move {
            db.exec(
                q(
                    "update inbound_events set status = 'pending', next_at = $3, attempts = 0 \
                   where org_id = $1 and id = $2",
                )
                .bind(org)
                .bind(id)
                .bind(now),
            )
            .await
        })?;
        super::found(n)
    }

    /// A source's recent deliveries with their processing status.
    pub async fn deliveries(
        &self,
        org: Uuid,
        source: Option<Uuid>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let status = status.map(str::to_string);
        let rows = read_db(self, move |sql_src, sql_status| {
            format!(
                "select {DELIVERY_COLS} from inbound_events where org_id = $1 {sql_src} {sql_status} \
                 order by id desc limit $2"
            )
        }, org, source, status, limit)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// One delivery's raw payload (for its detail view).
    pub async fn delivery_payload(
        &self,
        org: Uuid,
        id: Uuid,
    ) -> Result<(Delivery, String), StoreError> {
        let sql = format!(
            "select {DELIVERY_COLS}, payload from inbound_events where org_id = $1 and id = $2"
        );
        let r = crate::sql::read_rows(self, q(sql).bind(org).bind(id)).await?;
        let r = r.into_iter().next().ok_or(StoreError::NotFound)?;
        Ok((delivery(&r)?, r.text("payload")?))
    }

    /// How many events wait, by status, for a tenant.
    pub async fn inbound_status_counts(
        &self,
        org: Uuid,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select status, count(*) as n from inbound_events where org_id = $1 group by status")
                .bind(org),
        )
        .await?;
        rows.iter()
            .map(|r| Ok((r.text("status")?, r.i64("n")?)))
            .collect()
    }

    /// Event counts by source and status, for the sources page:
    /// `(source_id, status, count)`.
    pub async fn source_status_counts(
        &self,
        org: Uuid,
    ) -> Result<Vec<(Uuid, String, i64)>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q(
                "select source_id, status, count(*) as n from inbound_events where org_id = $1 \
               group by source_id, status",
            )
            .bind(org),
        )
        .await?;
        rows.iter()
            .map(|r| Ok((r.uuid("source_id")?, r.text("status")?, r.i64("n")?)))
            .collect()
    }

    /// Consistency figures for the crash tests (`crates/bos/tests/kill.rs`): timeline
    /// entries written by the pipeline for inbound deliveries, the most
    /// attempts any processed event took, and live profiles.
    pub async fn intake_audit(&self, org: Uuid) -> Result<(i64, i64, i64), StoreError> {
        let one = |sql: &str| q(sql.to_string()).bind(org);
        let t = crate::sql::read_rows(
            self,
            one("select count(*) as n from timeline where org_id = $1 and event_key like 'in:%'"),
        )
        .await?;
        let a = crate::sql::read_rows(
            self,
            one("select coalesce(max(attempts), 0) as n from inbound_events where org_id = $1 and status = 'processed'"),
        )
        .await?;
        let p = crate::sql::read_rows(
            self,
            one("select count(*) as n from profiles where org_id = $1 and merged_into is null"),
        )
        .await?;
        let n = |rows: &[Row]| rows.first().ok_or(StoreError::NotFound)?.i64("n");
        Ok((n(&t)?, n(&a)?, n(&p)?))
    }

    /// Pipeline lag of each event received at or after `since` and
    /// processed: `processed_at − received_at` in ms (the intake benchmark).
    pub async fn inbound_lags(&self, org: Uuid, since: Millis) -> Result<Vec<i64>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q(
                "select processed_at - received_at as lag from inbound_events \
               where org_id = $1 and received_at >= $2 and processed_at is not null",
            )
            .bind(org)
            .bind(since),
        )
        .await?;
        rows.iter().map(|r| r.i64("lag")).collect()
    }
}

async fn read_db<F>(
    store: &crate::Store,
    make: F,
    org: Uuid,
    source: Option<Uuid>,
    status: Option<String>,
    limit: u32,
) -> Result<Vec<Row>, StoreError>
where
    F: FnOnce(&str, &str) -> String,
{
    let mut query = q("").bind(org).bind(i64::from(limit.clamp(1, 500)));
    let mut n = 2;
    let src = match source {
        Some(s) => {
            n += 1;
            query = query.bind(s);
            format!("and source_id = ${n}")
        }
        None => String::new(),
    };
    let st = match status {
        Some(s) => {
            n += 1;
            query = query.bind(s);
            format!("and status = ${n}")
        }
        None => String::new(),
    };
    query.sql = make(&src, &st);
    crate::sql::read_rows(store, query).await
}
