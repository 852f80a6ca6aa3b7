//! Uploaded files imported in the background: each upload becomes an
//! `imports` row and a tokio task that runs the driver over the spooled
//! file, saving its progress after every batch (the page and the API read
//! that row), and its summary at the end.
//!
//! A running task also touches its row every few seconds, so a row that
//! stops changing means its server died: the sweep (at start-up, then every
//! half minute) marks such runs `interrupted`. Uploading the same file again
//! resumes: the rows already imported are keyed by file digest and line, and
//! come back as unchanged.
//!
//! A run publishes its progress on the live bus after every batch and at
//! its end (a page follows it live, from any server). The tasks are
//! tracked here so that shutdown can mark them and tests can await the end
//! of a run instead of sleeping.
//!
//! [`ImportRuns`] takes only what a run needs (the store, the bus, a clock,
//! the spool directory and the size limit), so the server and any other
//! process can run uploads without HTTP.

use super::driver::{ImportError, Importer, DEFAULT_BATCH};
use super::spool::{Spooled, Spooler, UploadError};
use crate::{Bus, BusEvent, Clock};
use bos_store::import::ImportSource;
use bos_store::import::{ImportRecord, ImportTally, NewImport, RowNote};
use bos_store::{Store, StoreError};
use futures_util::{Stream, StreamExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// How often a running import touches its row when no batch ends.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A queued or running import not updated for this long has lost its task.
pub const STALE_MS: i64 = 60_000;
/// How often the sweep looks for such imports.
pub const SWEEP: Duration = Duration::from_secs(30);

/// What an interrupted import says to the person reading it.
pub const INTERRUPTED: &str = "The server stopped while this file was being imported. \
    Every finished batch is saved: re-upload the same file to resume — rows already imported are skipped.";

/// Why an upload was not queued.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The file was refused while it was received (too large, cut, not a
    /// contacts CSV) or could not be spooled.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The same file (by digest) is being imported in this organization.
    #[error(
        "This file is already being imported (import {id}, started by {started_by}). Wait for it to finish; \
         uploading it again afterwards changes nothing."
    )]
    AlreadyRunning { id: Uuid, started_by: String },
    /// The spool task itself failed (a panic while finishing the file).
    #[error("import spool task: {0}")]
    Spool(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who uploads what.
pub struct UploadMeta {
    pub file_name: String,
    pub source: String,
    pub started_by: String,
    pub user_id: Option<Uuid>,
}

/// A file name as people see it: the last path segment, printable, short.
pub fn clean_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let s: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if s.is_empty() {
        "upload.csv".into()
    } else {
        s
    }
}

type Running = HashMap<Uuid, (Uuid, watch::Receiver<()>)>;

/// The import runs of this process.
pub struct ImportRuns {
    store: Store,
    bus: Bus,
    clock: Arc<dyn Clock>,
    /// Where uploads are spooled while they are imported.
    spool_dir: PathBuf,
    /// Largest file accepted, in bytes.
    limit_bytes: u64,
    /// Running imports → (organization, a receiver that sees the channel
    /// close when the task has ended: the task holds the sender).
    running: Mutex<Running>,
}

impl ImportRuns {
    pub fn new(
        store: Store,
        bus: Bus,
        clock: Arc<dyn Clock>,
        spool_dir: PathBuf,
        limit_bytes: u64,
    ) -> ImportRuns {
        ImportRuns {
            store,
            bus,
            clock,
            spool_dir,
            limit_bytes,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// import id → (organization, end receiver).
    fn map(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once the run `id` has ended here (at once if it is not running).
    pub async fn wait(&self, id: Uuid) {
        let rx = self.map().get(&id).map(|(_, rx)| rx.clone());
        if let Some(mut rx) = rx {
            while rx.changed().await.is_ok() {}
        }
    }

    /// Returns once every run of this process has ended.
    pub async fn wait_all(&self) {
        let all: Vec<watch::Receiver<()>> = self.map().values().map(|(_, rx)| rx.clone()).collect();
        for mut rx in all {
            while rx.changed().await.is_ok() {}
        }
    }

    /// Receives `body` into a spool file, checks it, records the import and
    /// starts its run. Returns the `queued` import. The file is spooled and
    /// checked completely before anything is recorded, so a refused file
    /// leaves no trace but its error.
    pub async fn receive<S, B, E>(
        self: &Arc<Self>,
        org: Uuid,
        mut body: S,
        meta: UploadMeta,
    ) -> Result<ImportRecord, RunError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let mut spool = Spooler::create(
            &self.spool_dir,
            &Uuid::new_v4().simple().to_string(),
            self.limit_bytes,
        )?;
        while let Some(chunk) = body.next().await {
            // A chunk is small and its write lands in the page cache: inline,
            // not worth a trip to the blocking pool.
            let res = match chunk {
                Ok(c) => spool.push(c.as_ref()),
                Err(e) => Err(UploadError::Cut(e.to_string())),
            };
            if let Err(e) = res {
                spool.abandon();
                return Err(e.into());
            }
        }
        // Flushing, syncing and reading the header back are blocking file work.
        let file = tokio::task::spawn_blocking(move || spool.finish())
            .await
            .map_err(|e| RunError::Spool(e.to_string()))??;
        if let Some(active) = self.store.active_import_of(org, &file.digest).await? {
            file.remove();
            return Err(RunError::AlreadyRunning {
                id: active.id,
                started_by: active.started_by,
            });
        }
        let rec = self
            .store
            .create_import(
                org,
                &NewImport {
                    file_name: meta.file_name,
                    digest: file.digest.clone(),
                    source: meta.source,
                    total_rows: file.rows,
                    ignored_columns: file.ignored_columns.clone(),
                    started_by: meta.started_by,
                    user_id: meta.user_id,
                },
                self.now(),
            )
            .await
            .inspect_err(|_| file.remove())?;
        tracing::info!(org = %org, import = %rec.id, rows = rec.total_rows, bytes = file.bytes, "import queued");
        self.spawn(rec.clone(), file);
        Ok(rec)
    }

    /// Starts importing the spooled file of `rec` (a `queued` row).
    fn spawn(self: &Arc<Self>, rec: ImportRecord, file: Spooled) {
        // The supervising task holds the sender, so waiters see the channel
        // close only once the row is final, even after a panic.
        let (keep, rx) = watch::channel(());
        self.map().insert(rec.id, (rec.org_id, rx));
        let (org, id) = (rec.org_id, rec.id);
        let runs = self.clone();
        tokio::spawn(async move {
            let inner = tokio::spawn({
                let runs = runs.clone();
                async move { runs.run(rec, file).await }
            });
            if let Err(e) = inner.await {
                // A panic in the run: say so on the row rather than leave it "running".
                tracing::error!(import = %id, error = %e, "import task failed");
                let _ = runs
                    .store
                    .fail_import(
                        org,
                        id,
                        "The import stopped on an internal error (it was logged). Re-upload the file to resume.",
                        runs.now(),
                    )
                    .await;
                runs.bus.publish(BusEvent::import_progress(org, id));
            }
            runs.map().remove(&id);
            drop(keep);
        });
    }

    /// Deletes every spool file: for start-up, before any import runs here.
    pub fn clean_spool(&self) {
        let Ok(dir) = std::fs::read_dir(&self.spool_dir) else {
            return;
        };
        let mut removed = 0;
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("bos-import-") && name.ends_with(".csv") {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "cannot remove a stale import spool file")
                    }
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                files = removed,
                "removed import uploads a stopped server left behind"
            );
        }
    }

    /// At shutdown: marks this process's unfinished imports `interrupted`
    /// at once (rather than when the sweep notices), so their pages say how
    /// to resume. Their tasks stop at their next batch.
    pub async fn interrupt_running(&self) {
        let running: Vec<(Uuid, Uuid)> = self
            .map()
            .iter()
            .map(|(id, (org, _))| (*org, *id))
            .collect();
        for (org, id) in running {
            match self
                .store
                .interrupt_import(org, id, INTERRUPTED, self.now())
                .await
            {
                Ok(_) => tracing::info!(import = %id, "import interrupted by shutdown"),
                Err(e) => {
                    tracing::warn!(import = %id, error = %e, "could not mark an import interrupted")
                }
            }
        }
    }

    /// Marks imports whose task is gone as interrupted. Returns how many.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let now = self.now();
        let n = self
            .store
            .interrupt_stale_imports(now - STALE_MS, INTERRUPTED, now)
            .await?;
        if n > 0 {
            tracing::warn!(imports = n, "imports interrupted by a stopped server");
        }
        Ok(n)
    }

    /// At start-up: deletes the spool files a stopped server left behind
    /// (their imports are interrupted; a re-upload brings the file again),
    /// then sweeps now and every [`SWEEP`] until the process ends. The
    /// spool directory belongs to this server (it is under its data
    /// directory).
    pub fn start_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        self.clean_spool();
        let runs = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            loop {
                tick.tick().await;
                if let Err(e) = runs.sweep().await {
                    tracing::warn!(error = %e, "sweeping interrupted imports failed");
                }
            }
        })
    }

    async fn run(self: Arc<Self>, rec: ImportRecord, file: Spooled) {
        let (org, id) = (rec.org_id, rec.id);
        let result = self.drive(&rec, &file).await;
        file.remove();
        if let Err(msg) = result {
            tracing::warn!(import = %id, error = %msg, "import failed");
            if let Err(e) = self.store.fail_import(org, id, &msg, self.now()).await {
                tracing::error!(import = %id, error = %e, "could not record a failed import");
            }
        }
        // The row is final: its followers read it once more.
        self.bus.publish(BusEvent::import_progress(org, id));
    }

    /// Runs the import; an error is the message for the person.
    async fn drive(self: &Arc<Self>, rec: &ImportRecord, file: &Spooled) -> Result<(), String> {
        let (org, id) = (rec.org_id, rec.id);
        let internal = |e: StoreError| {
            tracing::error!(import = %id, error = %e, "import bookkeeping failed");
            "The import stopped on a database error (it was logged). Re-upload the same file to resume."
                .to_string()
        };
        if !self
            .store
            .start_import(org, id, self.now())
            .await
            .map_err(internal)?
        {
            return Ok(());
        }
        let input = std::fs::File::open(&file.path).map_err(|e| {
            tracing::error!(import = %id, error = %e, "cannot open the spooled upload");
            "The uploaded file could not be read back (it was logged). Upload it again.".to_string()
        })?;
        let src = ImportSource {
            source: rec.source.clone(),
            file_name: rec.file_name.clone(),
            file_hash: rec.digest.clone(),
        };
        let mut importer = Importer::start(&self.store, org, input, src, batch_for(rec.total_rows))
            .await
            .map_err(|e| describe(&e))?;

        // The heartbeat: a batch can take longer than the sweep's patience
        // allows between two progress saves.
        let beat = {
            let runs = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = runs.store.heartbeat_import(org, id, runs.now()).await {
                        tracing::warn!(import = %id, error = %e, "import heartbeat failed");
                    }
                }
            })
        };
        let mut tally = ImportTally::default();
        let mut failure = None;
        while let Some(step) = importer.step(self.now()).await {
            let step = match step {
                Ok(s) => s,
                Err(e) => {
                    failure = Some(describe(&e));
                    break;
                }
            };
            let c = &step.counts;
            tally.processed_rows += step.read;
            tally.created += c.created;
            tally.matched += c.attached;
            tally.merged += c.merged;
            tally.unchanged += c.replayed;
            tally.absorbed += c.absorbed;
            tally.linked += c.linked;
            tally.dropped += c.dropped;
            tally.reject(step.rejected);
            tally.warn(step.warnings.into_iter().map(|w| RowNote {
                line: w.line,
                message: w.message,
            }));
            match self
                .store
                .update_import_progress(org, id, &tally, self.now())
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Declared interrupted meanwhile (this server looked dead):
                    // stop; a re-upload resumes.
                    failure = Some(INTERRUPTED.into());
                    break;
                }
                Err(e) => {
                    failure = Some(internal(e));
                    break;
                }
            }
            self.bus.publish(BusEvent::import_progress(org, id));
        }
        beat.abort();
        importer.finish();
        let ok = self
            .store
            .finish_import(org, id, &tally, failure.as_deref(), self.now())
            .await
            .map_err(internal)?;
        if !ok && failure.is_none() {
            tracing::warn!(import = %id, "import finished after it was declared interrupted");
        }
        // Imported customers with orders are converted leads, the others
        // new ones (also after a partial import: what was imported counts).
        if let Err(e) = self.store.sync_lead_states(org, "import", self.now()).await {
            tracing::error!(import = %id, error = %e, "setting imported customers' lead states failed; `bos leads backfill` repairs it");
        }
        Ok(())
    }
}

/// Rows per batch for an upload: about twenty progress steps for a large
/// file, never more than the CLI's batch (whose commit cost it amortizes),
/// never so small that commits dominate.
pub fn batch_for(rows: u64) -> usize {
    (rows / 20).clamp(1_000, DEFAULT_BATCH as u64) as usize
}

/// An import error in words for the person who uploaded the file.
pub fn describe(e: &ImportError) -> String {
    match e {
        ImportError::Batch {
            first_line,
            last_line,
            source,
        } => {
            tracing::error!(error = %source, "import batch failed");
            format!(
                "The import stopped in the batch of lines {first_line}–{last_line} on a database error (it was logged). \
                 Every earlier batch is saved: re-upload the same file to continue where it stopped."
            )
        }
        ImportError::Store(source) => {
            tracing::error!(error = %source, "import failed");
            "The import stopped on a database error (it was logged). Re-upload the same file to resume.".into()
        }
        other => {
            let s = other.to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => format!("{}{}.", f.to_uppercase(), c.as_str().trim_end_matches('.')),
                None => s,
            }
        }
    }
}
