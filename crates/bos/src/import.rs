//! `bos import FILE --org SLUG`: backfill contacts from a CSV file through
//! the same identity rules as live events, with a progress bar
//! and a summary.
//!
//! The driver (reading on a thread of its own, batching, the idempotency
//! key from the file's digest) lives in `bos_engine::imports::driver`, shared
//! with uploads in the UI and the API; this module opens the file, moves
//! the bar between batches and prints the summary. Running the same command
//! again skips the rows already imported, so an interrupted import resumes.

use anyhow::{anyhow, bail, Context, Result};
use bos_core::identity::import::Rejection;
use bos_engine::imports::driver::{self, ImportError, Importer};
use bos_store::import::{ImportCounts, ImportSource};
use bos_store::Store;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use bos_engine::imports::driver::{Warning, DEFAULT_BATCH};

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

/// How an import runs.
pub struct Options {
    pub source: String,
    pub batch: usize,
    pub progress: bool,
}

/// What `bos import` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub file: String,
    pub org: String,
    /// Data rows in the file (the header not counted).
    pub rows: u64,
    pub created: u64,
    /// Rows that matched one existing customer.
    pub attached: u64,
    /// Rows that joined several customers into one.
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
    let source = driver::check_source(&a.source).map_err(|e| anyhow!("--source {e}"))?;
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
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    driver::digest_of(f).with_context(|| format!("cannot read {}", path.display()))
}

/// Imports `path` into `org`: the CLI command and `bos-bench import` both
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
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let src = ImportSource {
        source: opts.source.clone(),
        file_name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
        file_hash: digest,
    };
    let mut importer = Importer::start(store, org.id, file, src, opts.batch)
        .await
        .map_err(|e| match e {
            ImportError::Header(e) => anyhow::Error::new(e)
                .context(format!("cannot read the header row of {}", path.display())),
            ImportError::NoHeader => anyhow!(
                "{} has no header row: the first line names the columns, e.g. email,phone,first_name,last_name",
                path.display()
            ),
            ImportError::Columns(e) => anyhow!("{}: {e}", path.display()),
            e => anyhow!(e),
        })?;
    let ignored_columns = importer.ignored_columns().to_vec();

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
    let mut rejected = Vec::new();
    let mut warnings = Vec::new();
    let mut failure = None;
    while let Some(step) = importer.step(now).await {
        let step = match step {
            Ok(s) => s,
            Err(ImportError::Batch {
                first_line,
                last_line,
                source,
            }) => {
                failure = Some(anyhow!(source).context(format!(
                    "the import stopped in the batch of lines {first_line}–{last_line}; every earlier batch is saved, \
                     and running the same command again continues where it stopped"
                )));
                break;
            }
            Err(e) => {
                failure = Some(anyhow!(e));
                break;
            }
        };
        rejected.extend(step.rejected);
        warnings.extend(step.warnings);
        total.add(step.counts);
        pb.set_position(step.pos);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let rows = importer.rows();
        pb.set_message(format!("{rows} rows · {:.0} rows/s", rows as f64 / secs));
    }
    let rows = importer.rows();
    importer.finish();
    pb.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    if rows == 0 {
        bail!(
            "{} has a header row but no contacts under it",
            path.display()
        );
    }
    // Imported customers with orders are converted leads, the others new
    // ones, so Intake and the customers list count the same people.
    store
        .sync_lead_states(org.id, "import", now)
        .await
        .context("the contacts were imported, but their lead states could not be set; run `bos leads backfill`")?;
    rejected.sort_by_key(|r: &Rejection| r.line);
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
        ignored_columns,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        rows_per_s: (rows as f64 / elapsed.max(1e-9)).round(),
    })
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
        ("created", s.created, "new customers".into()),
        (
            "matched",
            s.attached,
            "attached to one existing customer".into(),
        ),
        (
            "merged",
            s.merged,
            format!(
                "joined customers into one ({} customers absorbed)",
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

    /// The command's import on a real file and store: counts, rejected and
    /// ignored columns as the summary prints them, a second run unchanged,
    /// and the errors worded with the file's path.
    #[tokio::test]
    async fn imports_a_file_and_words_its_errors() {
        let db = bos_store::testing::TestDb::new().await.unwrap();
        let org = db
            .store
            .create_org(
                &bos_core::OrgName::parse("Acme").unwrap(),
                &bos_core::Slug::parse("acme").unwrap(),
                1,
            )
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!("bos-cli-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.csv");
        std::fs::write(
            &file,
            "email,phone,first_name,notes\nann@example.com,(415) 555-2671,Ann,x\nbad,12,,\n,+14155552671,,\n",
        )
        .unwrap();
        let opts = Options {
            source: "import".into(),
            batch: 1,
            progress: false,
        };
        let s = import_file(&db.store, &org, &file, &opts, 5).await.unwrap();
        assert_eq!((s.rows, s.created, s.attached, s.replayed), (3, 1, 1, 0));
        assert_eq!(s.rejected.len(), 1);
        assert_eq!(s.rejected[0].line, 3);
        assert_eq!(s.ignored_columns, vec!["notes".to_string()]);
        let text = render(&s);
        assert!(
            text.contains("  rejected   1  not imported (reasons below)"),
            "{text}"
        );
        assert!(text.contains("Ignored columns: notes"), "{text}");
        let again = import_file(&db.store, &org, &file, &opts, 6).await.unwrap();
        assert_eq!((again.created, again.replayed), (0, 2));

        std::fs::write(&file, "name\nAnn\n").unwrap();
        let e = import_file(&db.store, &org, &file, &opts, 7)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{}: no identifier column", file.display())),
            "{e}"
        );
        std::fs::write(&file, "email\n").unwrap();
        let e = import_file(&db.store, &org, &file, &opts, 7)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{} has a header row but no contacts under it",
                file.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn thousands() {
        assert_eq!(n(0), "0");
        assert_eq!(n(999), "999");
        assert_eq!(n(1000), "1,000");
        assert_eq!(n(1_234_567), "1,234,567");
    }
}
