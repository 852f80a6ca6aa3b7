//! The record of each import run started from the UI or the API:
//! which file, its status (queued → running → done, failed or interrupted),
//! how many rows it has and how many are through, the summary counts, and
//! the first rejected rows with their line numbers and reasons.
//!
//! The rows themselves are written by `Store::import_rows`; this table only
//! follows a run, so a page or an API client can show its progress while a
//! background task works through the file, and anyone can read the summary
//! later. A run that stops updating (its server died) is marked
//! `interrupted` by [`crate::Store::interrupt_stale_imports`].

use crate::engine::{read, write};
use crate::{new_id, StoreError};
use bos_core::identity::import::Rejection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Rejected rows (and warnings) kept per import; the counts stay complete.
/// A file with more problems than this is better fixed and uploaded again
/// than read row by row in a browser.
pub const KEPT_ROWS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportStatus {
    /// Saved, waiting for its task to start.
    Queued,
    Running,
    Done,
    /// Stopped by an error (the `error` column says which).
    Failed,
    /// The server stopped while the run was going; every finished batch is
    /// kept, and uploading the same file again resumes.
    Interrupted,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Queued => "queued",
            ImportStatus::Running => "running",
            ImportStatus::Done => "done",
            ImportStatus::Failed => "failed",
            ImportStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<ImportStatus> {
        Some(match s {
            "queued" => ImportStatus::Queued,
            "running" => ImportStatus::Running,
            "done" => ImportStatus::Done,
            "failed" => ImportStatus::Failed,
            "interrupted" => ImportStatus::Interrupted,
            _ => return None,
        })
    }

    /// Whether the run has ended (nothing will change it any more).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ImportStatus::Done | ImportStatus::Failed | ImportStatus::Interrupted
        )
    }
}

/// A value left out of an imported row (the row itself was imported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowNote {
    pub line: u64,
    pub message: String,
}

/// How far a run got and what it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportTally {
    /// Data rows read and resolved (good or rejected).
    pub processed_rows: u64,
    pub created: u64,
    /// Rows that matched one existing profile.
    pub matched: u64,
    /// Rows that joined several profiles into one.
    pub merged: u64,
    /// Rows imported before from this same file: left unchanged.
    pub unchanged: u64,
    pub rejected: u64,
    /// Profiles absorbed by the merges.
    pub absorbed: u64,
    pub linked: u64,
    /// Identifiers the rules left out (limits, blocklist).
    pub dropped: u64,
    pub warnings: u64,
    /// The first [`KEPT_ROWS`] rejected rows, by line.
    pub rejections: Vec<Rejection>,
    /// The first [`KEPT_ROWS`] values left out of imported rows.
    pub warning_notes: Vec<RowNote>,
}

impl ImportTally {
    /// Adds rejected rows, keeping the first [`KEPT_ROWS`] and counting all.
    pub fn reject(&mut self, rows: impl IntoIterator<Item = Rejection>) {
        for r in rows {
            self.rejected += 1;
            if self.rejections.len() < KEPT_ROWS {
                self.rejections.push(r);
            }
        }
    }

    /// Adds warnings, keeping the first [`KEPT_ROWS`] and counting all.
    pub fn warn(&mut self, notes: impl IntoIterator<Item = RowNote>) {
        for n in notes {
            self.warnings += 1;
            if self.warning_notes.len() < KEPT_ROWS {
                self.warning_notes.push(n);
            }
        }
    }
}

/// One import run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportRecord {
    pub org_id: Uuid,
    pub id: Uuid,
    pub file_name: String,
    /// Hex SHA-256 of the file: with a line number, each row's idempotency key.
    pub digest: String,
    /// Recorded on identity links and timeline entries.
    pub source: String,
    pub status: ImportStatus,
    /// Data rows in the file (the header not counted), counted at upload.
    pub total_rows: u64,
    pub tally: ImportTally,
    pub ignored_columns: Vec<String>,
    pub error: Option<String>,
    /// Who started it: a member's e-mail or `API key "name"`.
    pub started_by: String,
    pub user_id: Option<Uuid>,
    pub created_at: i64,
    /// Last progress or heartbeat of the task running it.
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl ImportRecord {
    /// Percent of the rows through, 0–100.
    pub fn percent(&self) -> u8 {
        if self.status == ImportStatus::Done {
            return 100;
        }
        (self.tally.processed_rows.min(self.total_rows) * 100)
            .checked_div(self.total_rows)
            .unwrap_or(0) as u8
    }
}

/// What a new run starts with.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub file_name: String,
    pub digest: String,
    pub source: String,
    pub total_rows: u64,
    pub ignored_columns: Vec<String>,
    pub started_by: String,
    pub user_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct Row {
    org_id: Uuid,
    id: Uuid,
    file_name: String,
    digest: String,
    source: String,
    status: String,
    total_rows: i64,
    processed_rows: i64,
    created_rows: i64,
    matched_rows: i64,
    merged_rows: i64,
    unchanged_rows: i64,
    rejected_rows: i64,
    absorbed_profiles: i64,
    linked_identifiers: i64,
    dropped_identifiers: i64,
    warning_count: i64,
    rejections: String,
    warnings: String,
    ignored_columns: String,
    error: Option<String>,
    started_by: String,
    user_id: Option<Uuid>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

const COLS: &str = "org_id, id, file_name, digest, source, status, total_rows, processed_rows, \
    created_rows, matched_rows, merged_rows, unchanged_rows, rejected_rows, absorbed_profiles, \
    linked_identifiers, dropped_identifiers, warning_count, rejections, warnings, ignored_columns, \
    error, started_by, user_id, created_at, updated_at, finished_at";

/// The list leaves the row lists out: up to a thousand rows each, per run.
const LIST_COLS: &str =
    "org_id, id, file_name, digest, source, status, total_rows, processed_rows, \
    created_rows, matched_rows, merged_rows, unchanged_rows, rejected_rows, absorbed_profiles, \
    linked_identifiers, dropped_identifiers, warning_count, '[]' as rejections, '[]' as warnings, \
    ignored_columns, error, started_by, user_id, created_at, updated_at, finished_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("corrupt {what} in imports: {e}"))
}

impl TryFrom<Row> for ImportRecord {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let n = |v: i64| v.max(0) as u64;
        Ok(ImportRecord {
            org_id: r.org_id,
            id: r.id,
            file_name: r.file_name,
            digest: r.digest,
            source: r.source,
            status: ImportStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            total_rows: n(r.total_rows),
            tally: ImportTally {
                processed_rows: n(r.processed_rows),
                created: n(r.created_rows),
                matched: n(r.matched_rows),
                merged: n(r.merged_rows),
                unchanged: n(r.unchanged_rows),
                rejected: n(r.rejected_rows),
                absorbed: n(r.absorbed_profiles),
                linked: n(r.linked_identifiers),
                dropped: n(r.dropped_identifiers),
                warnings: n(r.warning_count),
                rejections: serde_json::from_str(&r.rejections)
                    .map_err(|e| corrupt("rejections", e))?,
                warning_notes: serde_json::from_str(&r.warnings)
                    .map_err(|e| corrupt("warnings", e))?,
            },
            ignored_columns: serde_json::from_str(&r.ignored_columns)
                .map_err(|e| corrupt("ignored_columns", e))?,
            error: r.error,
            started_by: r.started_by,
            user_id: r.user_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        })
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl crate::Store {
    /// Records a new run, `queued`.
    pub async fn create_import(
        &self,
        org: Uuid,
        n: &NewImport,
        now: i64,
    ) -> Result<ImportRecord, StoreError> {
        let rec = ImportRecord {
            org_id: org,
            id: new_id(),
            file_name: n.file_name.clone(),
            digest: n.digest.clone(),
            source: n.source.clone(),
            status: ImportStatus::Queued,
            total_rows: n.total_rows,
            tally: ImportTally::default(),
            ignored_columns: n.ignored_columns.clone(),
            error: None,
            started_by: n.started_by.clone(),
            user_id: n.user_id,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        let r = rec.clone();
        write!(self, |c| {
            sqlx::query(
                "insert into imports (org_id, id, file_name, digest, source, status, total_rows, ignored_columns, \
                 started_by, user_id, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(r.org_id)
            .bind(r.id)
            .bind(&r.file_name)
            .bind(&r.digest)
            .bind(&r.source)
            .bind(r.status.as_str())
            .bind(r.total_rows as i64)
            .bind(json(&r.ignored_columns))
            .bind(&r.started_by)
            .bind(r.user_id)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(&mut *c)
            .await?;
            Ok(())
        })?;
        Ok(rec)
    }

    /// One run of `org`, with its kept rejected rows. NotFound for another
    /// organization's id.
    pub async fn import_record(&self, org: Uuid, id: Uuid) -> Result<ImportRecord, StoreError> {
        let sql = format!("select {COLS} from imports where org_id = $1 and id = $2");
        let row: Row = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(id)
                .fetch_one(&mut *c)
                .await?)
        })?;
        row.try_into()
    }

    /// The organization's runs, newest first (ids are time-ordered), without
    /// their row lists.
    pub async fn list_imports(
        &self,
        org: Uuid,
        limit: u32,
    ) -> Result<Vec<ImportRecord>, StoreError> {
        let sql = format!(
            "select {LIST_COLS} from imports where org_id = $1 order by id desc limit {}",
            limit.clamp(1, 500)
        );
        let rows: Vec<Row> = read!(self, |c| {
            Ok(sqlx::query_as(&sql).bind(org).fetch_all(&mut *c).await?)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// A queued or running import of the same file in `org`, if any: two
    /// runs of one file at once would only race each other.
    pub async fn active_import_of(
        &self,
        org: Uuid,
        digest: &str,
    ) -> Result<Option<ImportRecord>, StoreError> {
        let sql = format!(
            "select {LIST_COLS} from imports where org_id = $1 and digest = $2 \
             and status in ('queued', 'running') order by id limit 1"
        );
        let row: Option<Row> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(digest)
                .fetch_optional(&mut *c)
                .await?)
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// `queued` → `running`. False when the run is no longer queued.
    pub async fn start_import(&self, org: Uuid, id: Uuid, now: i64) -> Result<bool, StoreError> {
        write!(self, |c| {
            Ok(sqlx::query(
                "update imports set status = 'running', updated_at = $3 \
                 where org_id = $1 and id = $2 and status = 'queued'",
            )
            .bind(org)
            .bind(id)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Saves a running import's progress. False when the run is no longer
    /// `running` (it was declared interrupted): its task should stop.
    pub async fn update_import_progress(
        &self,
        org: Uuid,
        id: Uuid,
        tally: &ImportTally,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.save_tally(org, id, tally, None, now).await
    }

    /// Ends a running import: `done`, or `failed` with the reason. False
    /// when it was no longer running.
    pub async fn finish_import(
        &self,
        org: Uuid,
        id: Uuid,
        tally: &ImportTally,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let status = if error.is_some() {
            ImportStatus::Failed
        } else {
            ImportStatus::Done
        };
        self.save_tally(
            org,
            id,
            tally,
            Some((status, error.map(str::to_string))),
            now,
        )
        .await
    }

    async fn save_tally(
        &self,
        org: Uuid,
        id: Uuid,
        tally: &ImportTally,
        end: Option<(ImportStatus, Option<String>)>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let t = tally.clone();
        let (status, error, finished) = match end {
            Some((s, e)) => (s, e, Some(now)),
            None => (ImportStatus::Running, None, None),
        };
        let n = |v: u64| v as i64;
        write!(self, |c| {
            Ok(sqlx::query(
                "update imports set status = $3, processed_rows = $4, created_rows = $5, matched_rows = $6, \
                 merged_rows = $7, unchanged_rows = $8, rejected_rows = $9, absorbed_profiles = $10, \
                 linked_identifiers = $11, dropped_identifiers = $12, warning_count = $13, rejections = $14, \
                 warnings = $15, error = $16, updated_at = $17, finished_at = $18 \
                 where org_id = $1 and id = $2 and status = 'running'",
            )
            .bind(org)
            .bind(id)
            .bind(status.as_str())
            .bind(n(t.processed_rows))
            .bind(n(t.created))
            .bind(n(t.matched))
            .bind(n(t.merged))
            .bind(n(t.unchanged))
            .bind(n(t.rejected))
            .bind(n(t.absorbed))
            .bind(n(t.linked))
            .bind(n(t.dropped))
            .bind(n(t.warnings))
            .bind(json(&t.rejections))
            .bind(json(&t.warning_notes))
            .bind(error)
            .bind(now)
            .bind(finished)
            .execute(&mut *c)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Fails a queued or running import with the reason (its file could
    /// not be read back, its task panicked). False when it had already ended.
    pub async fn fail_import(
        &self,
        org: Uuid,
        id: Uuid,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let error = error.to_string();
        write!(self, |c| {
            Ok(sqlx::query(
                "update imports set status = 'failed', error = $3, updated_at = $4, finished_at = $4 \
                 where org_id = $1 and id = $2 and status in ('queued', 'running')",
            )
            .bind(org)
            .bind(id)
            .bind(&error)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Marks one queued or running import `interrupted` (its server is
    /// shutting down). False when it had already ended.
    pub async fn interrupt_import(
        &self,
        org: Uuid,
        id: Uuid,
        message: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let message = message.to_string();
        write!(self, |c| {
            Ok(sqlx::query(
                "update imports set status = 'interrupted', error = $3, updated_at = $4, finished_at = $4 \
                 where org_id = $1 and id = $2 and status in ('queued', 'running')",
            )
            .bind(org)
            .bind(id)
            .bind(&message)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Marks a running import as alive without other change.
    pub async fn heartbeat_import(&self, org: Uuid, id: Uuid, now: i64) -> Result<(), StoreError> {
        write!(self, |c| {
            sqlx::query(
                "update imports set updated_at = $3 where org_id = $1 and id = $2 and status = 'running'",
            )
            .bind(org)
            .bind(id)
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    /// Every queued or running import (of any organization) that has not
    /// been updated since `before` becomes `interrupted` with `message`:
    /// the server running it stopped. Returns how many. Runs report at
    /// least every few seconds, so `before` a minute back cannot catch a
    /// live one, even one that another replica runs.
    pub async fn interrupt_stale_imports(
        &self,
        before: i64,
        message: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let message = message.to_string();
        write!(self, |c| {
            Ok(sqlx::query(
                "update imports set status = 'interrupted', error = $2, finished_at = $3 \
                 where status in ('queued', 'running') and updated_at < $1",
            )
            .bind(before)
            .bind(&message)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected())
        })
    }

    /// The current profiles that rows of the file with `digest` went to, in
    /// line order, at most `limit`: the "customers from this file" links
    /// of an import's summary. One range scan of the timeline's event-key
    /// index (an imported row's key is the digest and the line).
    pub async fn import_profiles(
        &self,
        org: Uuid,
        digest: &str,
        limit: u32,
    ) -> Result<Vec<crate::identity::Profile>, StoreError> {
        let lo = super::bulk::import_key(digest, 0);
        let hi = super::bulk::import_key(digest, 9_999_999_999);
        let cols = crate::identity::profile_cols("p");
        // Several rows of a file can land on one customer: ask for more
        // entries than profiles wanted, then keep the first of each.
        let sql = format!(
            "select {cols} from timeline t join profiles p on p.org_id = t.org_id and p.id = t.root_id \
             where t.org_id = $1 and t.event_key >= $2 and t.event_key <= $3 order by t.event_key limit {}",
            limit.clamp(1, 200) * 4
        );
        let rows: Vec<crate::identity::Profile> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(&lo)
                .bind(&hi)
                .fetch_all(&mut *c)
                .await?)
        })?;
        let mut seen = std::collections::HashSet::new();
        Ok(rows
            .into_iter()
            .filter(|p| seen.insert(p.id))
            .take(limit as usize)
            .collect())
    }
}
