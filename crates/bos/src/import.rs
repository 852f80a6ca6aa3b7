//! `bos import FILE --org SLUG`: backfill contacts from a CSV file through
//! the same identity rules as live events (SPEC ID9).
//!
//! The file is read and mapped on a thread of its own (CSV parsing and
//! phone normalization are CPU work) while the store resolves the previous
//! batch, so the two overlap on a two-core machine. Each batch is one
//! transaction: an interrupted import keeps every finished batch, and
//! running the same command again skips the rows already imported (their
//! idempotency key is the file's digest and the line number).

use anyhow::{anyhow, bail, Context, Result};
use bos_core::identity::import::{HeaderError, HeaderMap, Rejection};
use bos_core::identity::IdentityRules;
use bos_store::identity::Traits;
use bos_store::import::{ImportCounts, ImportRow, ImportSource};
use bos_store::Store;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ImportArgs {
    /// CSV file with a header row. Identifier columns: email, phone,
    /// shopify_customer_id, instagram_id (igsid), facebook_psid (psid),
    /// segment_user_id (user_id), anonymous_id; traits: first_name,
    /// last_name, name, company. Other columns are ignored.
    pub file: PathBuf,
    /// Organization slug to import into.
    #[arg(long)]
    pub org: String,
    /// Print the summary as JSON (every rejected row listed) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Source recorded on each identity and timeline entry.
    #[arg(long, default_value = "import", value_name = "NAME")]
    pub source: String,
    /// Rows per transaction (one fsync each on SQLite).
    #[arg(long, default_value_t = DEFAULT_BATCH, value_name = "ROWS")]
    pub batch: usize,
}

/// Rows per transaction. Measured with `bos bench import`: 5,000 pays
/// for a commit (WAL write, fsync, checkpoint) too often; past 20,000 the
/// gain is within noise while memory and the work lost to an interruption grow.
pub const DEFAULT_BATCH: usize = 20_000;

/// How an import runs.
pub struct Options {
    pub source: String,
    pub batch: usize,
    pub progress: bool,
}

/// A value left out of an imported row.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub line: u64,
    pub message: String,
}

/// What `bos import` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub file: String,
    pub org: String,
    /// Data rows in the file (the header not counted).
    pub rows: u64,
    pub created: u64,
    /// Rows that matched one existing profile.
    pub attached: u64,
    /// Rows that joined several profiles into one.
    pub merged: u64,
    pub absorbed: u64,
    /// Rows imported before from this very file: unchanged.
    pub replayed: u64,
    pub linked: u64,
    pub dropped: u64,
    pub rejected: Vec<Rejection>,
    pub warnings: Vec<Warning>,
    pub ignored_columns: Vec<String>,
    pub elapsed_s: f64,
    pub rows_per_s: f64,
}

/// Rejected rows (and warnings) listed in the text summary; `--json` lists all.
const LISTED: usize = 20;

pub async fn run(cfg: Option<&PathBuf>, a: ImportArgs) -> Result<()> {
    let source = a.source.trim().to_string();
    if source.is_empty()
        || source.len() > 64
        || !source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        bail!("--source must be 1-64 letters, digits, '_', '-' or '.', e.g. hubspot-export");
    }
    if a.batch == 0 || a.batch > 100_000 {
        bail!("--batch must be between 1 and 100000 rows");
    }
    // Check the file before touching the database: the commonest mistake.
    check_file(&a.file)?;
    let c = crate::load(cfg, None)?;
    let store = crate::open(&c).await?;
    let org = crate::org_by_slug(&store, &a.org).await?;
    let opts = Options {
        source,
        batch: a.batch,
        progress: !a.json,
    };
    let s = import_file(&store, &org, &a.file, &opts, crate::now()).await?;
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        print!("{}", render(&s));
    }
    store.close().await;
    Ok(())
}

fn check_file(path: &Path) -> Result<u64> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory: give a CSV file", path.display());
    }
    if meta.len() == 0 {
        bail!(
            "{} is empty: a contacts file starts with a header row such as email,phone,first_name,last_name",
            path.display()
        );
    }
    Ok(meta.len())
}

/// Hex SHA-256 of the file: with a line number, the idempotency key of a row.
pub fn file_digest(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// One batch as the reader thread hands it over.
struct Batch {
    rows: Vec<ImportRow>,
    rejected: Vec<Rejection>,
    warnings: Vec<Warning>,
    /// Data rows read for this batch, good or not.
    read: u64,
    /// Byte offset reached in the file (for the progress bar).
    pos: u64,
    last_line: u64,
}

/// Imports `path` into `org`: the CLI command and `bos bench import` both
/// run this.
pub async fn import_file(
    store: &Store,
    org: &bos_store::Org,
    path: &Path,
    opts: &Options,
    now: i64,
) -> Result<Summary> {
    let started = Instant::now();
    let size = check_file(path)?;
    let digest = file_digest(path)?;
    let rules = store.identity_rules(org.id).await?;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        // Rows with the wrong number of cells are rejected one by one (with
        // their line), not as an error for the whole file.
        .flexible(true)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
    let headers: Vec<String> = reader
        .byte_headers()
        .with_context(|| format!("cannot read the header row of {}", path.display()))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let map = HeaderMap::new(&headers).map_err(|e| match e {
        HeaderError::Empty => anyhow!(
            "{} has no header row: the first line names the columns, e.g. email,phone,first_name,last_name",
            path.display()
        ),
        e => anyhow!("{}: {e}", path.display()),
    })?;
    let src = ImportSource {
        source: opts.source.clone(),
        file_name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
        file_hash: digest,
    };

    // Two batches in flight at most: one being resolved, one being read.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Batch>>(1);
    let batch = opts.batch;
    let reader_rules = rules.clone();
    let reader_thread =
        std::thread::spawn(move || read_batches(reader, map, reader_rules, batch, tx));

    let pb = if opts.progress {
        ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} · ETA {eta}",
        )
        .map_err(|e| anyhow!(e))?,
    );
    pb.enable_steady_tick(Duration::from_millis(200));

    let mut total = ImportCounts::default();
    let mut rows = 0u64;
    let mut rejected = Vec::new();
    let mut warnings = Vec::new();
    let mut failure = None;
    while let Some(b) = rx.recv().await {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        rows += b.read;
        rejected.extend(b.rejected);
        warnings.extend(b.warnings);
        if !b.rows.is_empty() {
            let first_line = b.rows[0].line;
            match store.import_rows(org.id, &rules, b.rows, &src, now).await {
                Ok(c) => total.add(c),
                Err(e) => {
                    failure = Some(anyhow!(e).context(format!(
                        "the import stopped in the batch of lines {first_line}–{}; every earlier batch is saved, \
                         and running the same command again continues where it stopped",
                        b.last_line
                    )));
                    break;
                }
            }
        }
        pb.set_position(b.pos);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        pb.set_message(format!("{rows} rows · {:.0} rows/s", rows as f64 / secs));
    }
    // Dropping the receiver stops the reader at its next send.
    drop(rx);
    pb.finish_and_clear();
    let _ = reader_thread.join();
    if let Some(e) = failure {
        return Err(e);
    }
    if rows == 0 {
        bail!(
            "{} has a header row but no contacts under it",
            path.display()
        );
    }
    rejected.append(&mut total.rejected);
    rejected.sort_by_key(|r| r.line);
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Summary {
        file: path.display().to_string(),
        org: org.slug.clone(),
        rows,
        created: total.created,
        attached: total.attached,
        merged: total.merged,
        absorbed: total.absorbed,
        replayed: total.replayed,
        linked: total.linked,
        dropped: total.dropped,
        rejected,
        warnings,
        ignored_columns: unknown_columns(&headers),
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        rows_per_s: (rows as f64 / elapsed.max(1e-9)).round(),
    })
}

fn unknown_columns(headers: &[String]) -> Vec<String> {
    HeaderMap::new(headers)
        .map(|m| m.unknown)
        .unwrap_or_default()
}

/// The reader thread: CSV records → mapped rows, in batches.
fn read_batches<R: Read>(
    mut reader: csv::Reader<R>,
    map: HeaderMap,
    rules: IdentityRules,
    batch: usize,
    tx: tokio::sync::mpsc::Sender<Result<Batch>>,
) {
    let new_batch = || Batch {
        rows: Vec::with_capacity(batch),
        rejected: Vec::new(),
        warnings: Vec::new(),
        read: 0,
        pos: 0,
        last_line: 0,
    };
    let mut b = new_batch();
    let mut rec = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let _ = tx.blocking_send(Err(anyhow!("cannot read the file: {e}")));
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
                            first_name: m.first_name,
                            last_name: m.last_name,
                            company: m.company,
                        },
                    });
                }
                Err(r) => b.rejected.push(r),
            }
        }
        if b.read as usize >= batch {
            let full = std::mem::replace(&mut b, new_batch());
            if tx.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if b.read > 0 {
        let _ = tx.blocking_send(Ok(b));
    }
}

/// Thousands separators for the text summary.
fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        // A separator before every group of three digits from the right.
        let from_right = s.len() - i;
        if i > 0 && from_right / 3 * 3 == from_right {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The text summary.
pub fn render(s: &Summary) -> String {
    let mut o = format!(
        "Imported {} into {} in {:.1} s ({} rows/s).\n",
        s.file,
        s.org,
        s.elapsed_s,
        n(s.rows_per_s as u64)
    );
    let rows: [(&str, u64, String); 6] = [
        ("rows", s.rows, "data rows in the file".into()),
        ("created", s.created, "new profiles".into()),
        (
            "matched",
            s.attached,
            "attached to one existing profile".into(),
        ),
        (
            "merged",
            s.merged,
            format!(
                "joined profiles into one ({} profiles absorbed)",
                n(s.absorbed)
            ),
        ),
        (
            "unchanged",
            s.replayed,
            "imported before from this same file".into(),
        ),
        (
            "rejected",
            s.rejected.len() as u64,
            "not imported (reasons below)".into(),
        ),
    ];
    let width = rows.iter().map(|r| n(r.1).len()).max().unwrap_or(1);
    for (label, v, what) in rows {
        o.push_str(&format!("  {label:<10} {:>width$}  {what}\n", n(v)));
    }
    o.push_str(&format!(
        "  identifiers: {} linked, {} left out by the organization's identity rules (limits, blocklist)\n",
        n(s.linked),
        n(s.dropped)
    ));
    if !s.rejected.is_empty() {
        o.push_str(&format!(
            "Rejected rows{}:\n",
            if s.rejected.len() > LISTED {
                format!(
                    " (first {LISTED} of {}; --json lists all)",
                    n(s.rejected.len() as u64)
                )
            } else {
                String::new()
            }
        ));
        for r in s.rejected.iter().take(LISTED) {
            o.push_str(&format!("  {r}\n"));
        }
    }
    if !s.warnings.is_empty() {
        o.push_str(&format!(
            "Values left out of imported rows{}:\n",
            if s.warnings.len() > LISTED {
                format!(
                    " (first {LISTED} of {}; --json lists all)",
                    n(s.warnings.len() as u64)
                )
            } else {
                String::new()
            }
        ));
        for w in s.warnings.iter().take(LISTED) {
            o.push_str(&format!("  line {}: {}\n", w.line, w.message));
        }
    }
    if !s.ignored_columns.is_empty() {
        o.push_str(&format!(
            "Ignored columns: {}\n",
            s.ignored_columns.join(", ")
        ));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands() {
        assert_eq!(n(0), "0");
        assert_eq!(n(999), "999");
        assert_eq!(n(1000), "1,000");
        assert_eq!(n(1_234_567), "1,234,567");
    }
}
