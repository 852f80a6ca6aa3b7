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

use crate::AppState;
use bos_engine::imports::driver::{ImportError, Importer, DEFAULT_BATCH};
use bos_engine::imports::spool::Spooled;
use bos_engine::BusEvent;
use bos_store::import::ImportSource;
use bos_store::import::{ImportRecord, ImportTally, RowNote};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
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

/// The import tasks of this process.
pub struct ImportJobs {
    /// Running imports → (organization, a receiver that sees the channel
    /// close when the task has ended: the task holds the sender).
    running: Mutex<HashMap<Uuid, (Uuid, watch::Receiver<()>)>>,
    /// Where uploads are spooled while they are imported.
    pub spool_dir: PathBuf,
}

impl ImportJobs {
    pub fn new(spool_dir: PathBuf) -> ImportJobs {
        ImportJobs {
            running: Mutex::new(HashMap::new()),
            spool_dir,
        }
    }

    /// import id → (organization, end receiver).
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Uuid, watch::Receiver<()>)>> {
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

    /// Starts importing the spooled file of `rec` (a `queued` row).
    pub(crate) fn spawn(&self, st: AppState, rec: ImportRecord, file: Spooled) {
        // The supervising task holds the sender, so waiters see the channel
        // close only once the row is final, even after a panic.
        let (keep, rx) = watch::channel(());
        self.map().insert(rec.id, (rec.org_id, rx));
        let (org, id) = (rec.org_id, rec.id);
        tokio::spawn(async move {
            let inner = tokio::spawn(run(st.clone(), rec, file));
            if let Err(e) = inner.await {
                // A panic in the run: say so on the row rather than leave it "running".
                tracing::error!(import = %id, error = %e, "import task failed");
                let _ = st
                    .store
                    .fail_import(
                        org,
                        id,
                        "The import stopped on an internal error (it was logged). Re-upload the file to resume.",
                        st.now(),
                    )
                    .await;
                st.bus.publish(BusEvent::import_progress(org, id));
            }
            st.imports.map().remove(&id);
            drop(keep);
        });
    }
}

impl ImportJobs {
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
    pub async fn interrupt_running(&self, st: &AppState) {
        let running: Vec<(Uuid, Uuid)> = self
            .map()
            .iter()
            .map(|(id, (org, _))| (*org, *id))
            .collect();
        for (org, id) in running {
            match st
                .store
                .interrupt_import(org, id, INTERRUPTED, st.now())
                .await
            {
                Ok(_) => tracing::info!(import = %id, "import interrupted by shutdown"),
                Err(e) => {
                    tracing::warn!(import = %id, error = %e, "could not mark an import interrupted")
                }
            }
        }
    }
}

/// Marks imports whose task is gone as interrupted. Returns how many.
pub async fn sweep(st: &AppState) -> Result<u64, bos_store::StoreError> {
    let now = st.now();
    let n = st
        .store
        .interrupt_stale_imports(now - STALE_MS, INTERRUPTED, now)
        .await?;
    if n > 0 {
        tracing::warn!(imports = n, "imports interrupted by a stopped server");
    }
    Ok(n)
}

/// At start-up: deletes the spool files a stopped server left behind
/// (their imports are interrupted; a re-upload brings the file again), then
/// sweeps now and every [`SWEEP`] until the process ends. The spool
/// directory belongs to this server (it is under its data directory).
pub fn start_sweeper(st: AppState) -> tokio::task::JoinHandle<()> {
    st.imports.clean_spool();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&st).await {
                tracing::warn!(error = %e, "sweeping interrupted imports failed");
            }
        }
    })
}

/// Rows per batch for an upload: about twenty progress steps for a large
/// file, never more than the CLI's batch (whose commit cost it amortizes),
/// never so small that commits dominate.
pub fn batch_for(rows: u64) -> usize {
    (rows / 20).clamp(1_000, DEFAULT_BATCH as u64) as usize
}

async fn run(st: AppState, rec: ImportRecord, file: Spooled) {
    let (org, id) = (rec.org_id, rec.id);
    let result = drive(&st, &rec, &file).await;
    file.remove();
    if let Err(msg) = result {
        tracing::warn!(import = %id, error = %msg, "import failed");
        if let Err(e) = st.store.fail_import(org, id, &msg, st.now()).await {
            tracing::error!(import = %id, error = %e, "could not record a failed import");
        }
    }
    // The row is final: its followers read it once more.
    st.bus.publish(BusEvent::import_progress(org, id));
}

/// Runs the import; an error is the message for the person.
async fn drive(st: &AppState, rec: &ImportRecord, file: &Spooled) -> Result<(), String> {
    let (org, id) = (rec.org_id, rec.id);
    let internal = |e: bos_store::StoreError| {
        tracing::error!(import = %id, error = %e, "import bookkeeping failed");
        "The import stopped on a database error (it was logged). Re-upload the same file to resume."
            .to_string()
    };
    if !st
        .store
        .start_import(org, id, st.now())
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
    let mut importer = Importer::start(&st.store, org, input, src, batch_for(rec.total_rows))
        .await
        .map_err(|e| describe(&e))?;

    // The heartbeat: a batch can take longer than the sweep's patience
    // allows between two progress saves.
    let beat = {
        let st = st.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = st.store.heartbeat_import(org, id, st.now()).await {
                    tracing::warn!(import = %id, error = %e, "import heartbeat failed");
                }
            }
        })
    };
    let mut tally = ImportTally::default();
    let mut failure = None;
    while let Some(step) = importer.step(st.now()).await {
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
        match st
            .store
            .update_import_progress(org, id, &tally, st.now())
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
        st.bus.publish(BusEvent::import_progress(org, id));
    }
    beat.abort();
    importer.finish();
    let ok = st
        .store
        .finish_import(org, id, &tally, failure.as_deref(), st.now())
        .await
        .map_err(internal)?;
    if !ok && failure.is_none() {
        tracing::warn!(import = %id, "import finished after it was declared interrupted");
    }
    Ok(())
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
