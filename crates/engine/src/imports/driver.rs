//! The import driver: a contacts CSV through the organization's identity
//! rules, batch by batch. `bos import` and uploads in the UI and
//! the API all run this, so a file imports the same way wherever it comes
//! from.
//!
//! The file is read and mapped on a thread of its own (CSV parsing and
//! phone normalization are CPU work) while the store resolves the previous
//! batch, so the two overlap on a two-core machine. Each batch is one
//! transaction: an interrupted import keeps every finished batch, and
//! importing the same file again skips the rows already imported (their
//! idempotency key is the file's digest and the line number).
//!
//! The caller drives it one batch at a time ([`Importer::step`]) and does
//! what it needs between batches: the CLI moves its progress bar, an upload
//! saves its progress for the page that follows it.

use bos_core::identity::import::{HeaderError, HeaderMap, Rejection};
use bos_core::identity::{traits, IdentityRules};
use bos_store::identity::Traits;
use bos_store::import::{prepare, ImportCounts, ImportRow, ImportSource, PreparedBatch};
use bos_store::{Store, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use uuid::Uuid;

/// Rows per transaction for `bos import`. Measured with `bos-bench import`:
/// 5,000 pays for a commit (WAL write, fsync, checkpoint) too often; past
/// 20,000 the gain is within noise while memory and the work lost to an
/// interruption grow.
pub const DEFAULT_BATCH: usize = 20_000;

/// A value left out of an imported row.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The first line could not be read as CSV at all.
    #[error("cannot read the header row: {0}")]
    Header(#[source] csv::Error),
    #[error(
        "the file has no header row: the first line names the columns, e.g. email,phone,first_name,last_name"
    )]
    NoHeader,
    /// No identifier column, or another problem with the columns.
    #[error("{0}")]
    Columns(HeaderError),
    #[error("cannot read the file: {0}")]
    Read(String),
    /// A batch failed; every earlier batch is saved.
    #[error("the import stopped in the batch of lines {first_line}–{last_line}: {source}")]
    Batch {
        first_line: u64,
        last_line: u64,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hex SHA-256 of a file's bytes: with a line number, a row's idempotency key.
pub fn digest_of(mut r: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks an import source name (recorded on links and timeline entries).
/// The error completes "the source …" / "--source …".
pub fn check_source(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err("must be 1-64 letters, digits, '_', '-' or '.', e.g. hubspot-export".into());
    }
    Ok(s.to_string())
}

/// One batch as the reader thread hands it over.
struct Batch {
    /// The good rows, prepared for the store on the reader thread.
    rows: PreparedBatch,
    rejected: Vec<Rejection>,
    warnings: Vec<Warning>,
    /// Data rows read for this batch, good or not.
    read: u64,
    /// Byte offset reached in the file.
    pos: u64,
    last_line: u64,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct Step {
    /// Data rows read for this batch, good or rejected.
    pub read: u64,
    /// Byte offset reached in the file (for a progress bar by bytes).
    pub pos: u64,
    /// The batch's counts; its rejections are in `rejected`.
    pub counts: ImportCounts,
    /// Rows not imported, from the mapping and from the store, by line.
    pub rejected: Vec<Rejection>,
    pub warnings: Vec<Warning>,
}

/// An import in progress. Dropping it stops the reader thread at its next
/// batch.
pub struct Importer {
    store: Store,
    org: Uuid,
    rules: IdentityRules,
    src: ImportSource,
    rx: tokio::sync::mpsc::Receiver<Result<Batch, ImportError>>,
    reader: Option<std::thread::JoinHandle<()>>,
    ignored: Vec<String>,
    rows: u64,
    done: bool,
}

impl Importer {
    /// Reads and maps the header row, then starts the reader thread.
    /// Fails (before touching any data) when the header has no identifier
    /// column.
    pub async fn start<R: Read + Send + 'static>(
        store: &Store,
        org: Uuid,
        input: R,
        src: ImportSource,
        batch: usize,
    ) -> Result<Importer, ImportError> {
        let rules = store.identity_rules(org).await?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            // Rows with the wrong number of cells are rejected one by one
            // (with their line), not as an error for the whole file.
            .flexible(true)
            .from_reader(std::io::BufReader::with_capacity(1 << 20, input));
        let headers: Vec<String> = reader
            .byte_headers()
            .map_err(ImportError::Header)?
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        let map = HeaderMap::new(&headers).map_err(|e| match e {
            HeaderError::Empty => ImportError::NoHeader,
            e => ImportError::Columns(e),
        })?;
        let ignored = map.unknown.clone();
        // Two batches in flight at most: one being resolved, one being read.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let reader_rules = rules.clone();
        let reader_src = src.clone();
        // Lines imported before (a file imported again, an import resumed):
        // the reader does not prepare them.
        let imported = store.imported_lines(org, &src.file_hash).await?;
        let batch = batch.max(1);
        let reader = std::thread::spawn(move || {
            read_batches(reader, map, reader_rules, reader_src, imported, batch, tx)
        });
        Ok(Importer {
            store: store.clone(),
            org,
            rules,
            src,
            rx,
            reader: Some(reader),
            ignored,
            rows: 0,
            done: false,
        })
    }

    /// Headers that name nothing known: their columns are ignored.
    pub fn ignored_columns(&self) -> &[String] {
        &self.ignored
    }

    /// Data rows read so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Resolves the next batch; `None` at the end of the file. After an
    /// error the import is over (every earlier batch is saved).
    pub async fn step(&mut self, now: i64) -> Option<Result<Step, ImportError>> {
        if self.done {
            return None;
        }
        let b = match self.rx.recv().await {
            None => {
                self.done = true;
                // Batches are committed, not yet all durable: the file's
                // end is where the import says it is done.
                return match self.store.flush().await {
                    Ok(()) => None,
                    Err(e) => Some(Err(e.into())),
                };
            }
            Some(Err(e)) => {
                self.done = true;
                let _ = self.store.flush().await;
                return Some(Err(e));
            }
            Some(Ok(b)) => b,
        };
        self.rows += b.read;
        let mut step = Step {
            read: b.read,
            pos: b.pos,
            counts: ImportCounts::default(),
            rejected: b.rejected,
            warnings: b.warnings,
        };
        if let Some(first_line) = b.rows.first_line() {
            match self
                .store
                .import_prepared(self.org, &self.rules, b.rows, &self.src, now)
                .await
            {
                Ok(mut c) => {
                    step.rejected.append(&mut c.rejected);
                    step.counts = c;
                }
                Err(source) => {
                    self.done = true;
                    // Every earlier batch is saved, as the error says.
                    let _ = self.store.flush().await;
                    return Some(Err(ImportError::Batch {
                        first_line,
                        last_line: b.last_line,
                        source,
                    }));
                }
            }
        }
        step.rejected.sort_by_key(|r| r.line);
        Some(Ok(step))
    }

    /// Stops the reader (if still going) and waits for its thread.
    pub fn finish(mut self) {
        self.rx.close();
        // Let a reader blocked on a full channel see the closed end.
        while self.rx.try_recv().is_ok() {}
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}

/// The reader thread: CSV records → mapped rows, in batches.
fn read_batches<R: Read>(
    mut reader: csv::Reader<R>,
    map: HeaderMap,
    rules: IdentityRules,
    src: ImportSource,
    imported: std::collections::HashSet<u64>,
    batch: usize,
    tx: tokio::sync::mpsc::Sender<Result<Batch, ImportError>>,
) {
    /// A batch being read: its rows are prepared when it is full.
    struct Reading {
        rows: Vec<ImportRow>,
        rejected: Vec<Rejection>,
        warnings: Vec<Warning>,
        read: u64,
        pos: u64,
        last_line: u64,
    }
    let new_batch = || Reading {
        rows: Vec::with_capacity(batch.min(DEFAULT_BATCH)),
        rejected: Vec::new(),
        warnings: Vec::new(),
        read: 0,
        pos: 0,
        last_line: 0,
    };
    // The store's single writer is the import's bottleneck: everything
    // about the rows that needs no database is worked out here, on the
    // other core, while the writer resolves the previous batch.
    let ready = |b: Reading| Batch {
        rows: prepare(&rules, &src, b.rows, |line| imported.contains(&line)),
        rejected: b.rejected,
        warnings: b.warnings,
        read: b.read,
        pos: b.pos,
        last_line: b.last_line,
    };
    let mut b = new_batch();
    let mut rec = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let _ = tx.blocking_send(Err(ImportError::Read(e.to_string())));
                return;
            }
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        b.read += 1;
        b.last_line = line;
        b.pos = rec.position().map(|p| p.byte()).unwrap_or(0);
        let mut cells: Vec<&str> = Vec::with_capacity(map.columns.len());
        let mut utf8 = true;
        for f in rec.iter() {
            match std::str::from_utf8(f) {
                Ok(s) => cells.push(s),
                Err(_) => {
                    utf8 = false;
                    break;
                }
            }
        }
        if !utf8 {
            b.rejected.push(Rejection {
                line,
                reason: "not valid UTF-8 text (save the file as CSV UTF-8)".into(),
            });
        } else {
            match map.map_row(line, &cells, &rules) {
                Ok(m) => {
                    b.warnings.extend(
                        m.warnings
                            .into_iter()
                            .map(|message| Warning { line, message }),
                    );
                    b.rows.push(ImportRow {
                        line,
                        identifiers: m.identifiers,
                        traits: Traits {
                            first_name: traits::clip_person_name(&m.first_name),
                            last_name: traits::clip_person_name(&m.last_name),
                            company: m.company,
                            custom: Default::default(),
                        },
                    });
                }
                Err(r) => b.rejected.push(r),
            }
        }
        if b.read as usize >= batch {
            let full = std::mem::replace(&mut b, new_batch());
            if tx.blocking_send(Ok(ready(full))).is_err() {
                return;
            }
        }
    }
    if b.read > 0 {
        let _ = tx.blocking_send(Ok(ready(b)));
    }
}
