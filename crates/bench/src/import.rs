//! The import benchmark (`bos-bench import`) and its test-data generator
//! (`bos-bench gen-import`), next to the harness's own benchmarks in
//! `main.rs` without changing them: `BenchCli` parses either set.
//!
//! The generated file looks like a small business's contact export: mostly
//! distinct people, some listed twice (a second phone), some rows that
//! bridge two earlier ones (a merge), some invalid phones (warnings, and
//! rejections when nothing else identifies the row), and an Instagram id
//! here and there. Everything is derived from the row number and a seed, so
//! a run is repeatable. The benchmark imports it into a fresh database,
//! reports rows/s, then imports it again (every row a no-op replay) and
//! compares with the streaming path (`Store::identify`, one transaction per
//! row) on a sample of the same rows: the baseline, side by side.

use anyhow::{anyhow, Context, Result};
use bos::import::{import_file, Options};
use bos_store::identity::IdentifyInput;
use bos_store::import::ImportSource;
use clap::{ArgMatches, Args, FromArgMatches, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `bos-bench …`: the harness's benchmarks (`main.rs`) or this file's.
pub enum BenchCli {
    Harness(crate::BenchArgs),
    Import(ImportBench),
}

#[derive(Subcommand)]
pub enum ImportBench {
    /// Write a CSV of generated contacts for import measurements.
    GenImport {
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Generate contacts, import them into a fresh database and report
    /// rows/s; then re-import (all no-ops) and compare with streaming
    /// resolution on a sample.
    Import {
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Rows per transaction.
        #[arg(long, default_value_t = bos::import::DEFAULT_BATCH)]
        batch: usize,
        /// Rows resolved one by one through `identify` for the baseline.
        #[arg(long, default_value_t = 2000)]
        baseline_rows: u64,
        /// Database URL (default: a fresh temporary SQLite file, or a fresh
        /// PostgreSQL database when BOS_TEST_DATABASE_URL is set).
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

impl FromArgMatches for BenchCli {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        match m.subcommand_name() {
            Some(name) if ImportBench::has_subcommand(name) => {
                Ok(BenchCli::Import(ImportBench::from_arg_matches(m)?))
            }
            _ => Ok(BenchCli::Harness(crate::BenchArgs::from_arg_matches(m)?)),
        }
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for BenchCli {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        ImportBench::augment_subcommands(crate::BenchArgs::augment_args(cmd))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        ImportBench::augment_subcommands_for_update(crate::BenchArgs::augment_args_for_update(cmd))
    }
}

pub async fn run(b: BenchCli) -> Result<()> {
    match b {
        BenchCli::Harness(a) => crate::run(a).await,
        BenchCli::Import(ImportBench::GenImport { rows, out, seed }) => {
            let t = Instant::now();
            let g = generate(&out, rows, seed)?;
            println!(
                "Wrote {} contacts to {} in {:.1} s ({}).",
                rows,
                out.display(),
                t.elapsed().as_secs_f64(),
                g
            );
            Ok(())
        }
        BenchCli::Import(ImportBench::Import {
            rows,
            batch,
            baseline_rows,
            database_url,
            seed,
        }) => bench_import(rows, batch, baseline_rows, database_url, seed).await,
    }
}

/// What the generator put in a file, by intent.
#[derive(Debug, Default)]
pub struct Generated {
    pub new_people: u64,
    pub repeats: u64,
    pub bridges: u64,
    pub bad_phone_warnings: u64,
    pub bad_phone_only: u64,
}

impl std::fmt::Display for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} new people, {} repeats with another phone, {} rows bridging two earlier people, \
             {} invalid phones next to an e-mail, {} rows with only an invalid phone",
            self.new_people,
            self.repeats,
            self.bridges,
            self.bad_phone_warnings,
            self.bad_phone_only
        )
    }
}

const FIRST: [&str; 16] = [
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noor", "Omar", "Priya",
];
const LAST: [&str; 16] = [
    "Lovelace", "Okafor", "Martin", "Patel", "Rossi", "Haddad", "Hopper", "Tanaka", "Silva",
    "Berg", "Adeyemi", "Walsh", "Cohen", "Khan", "Nasser", "Iyer",
];
const COMPANIES: [&str; 6] = ["", "", "Acme", "Globex", "Initech", "Umbrella"];
/// Real US area codes: the generated numbers must be valid to the phone rules.
const AREAS: [u32; 16] = [
    212, 213, 305, 312, 415, 503, 512, 617, 646, 702, 713, 718, 804, 919, 206, 303,
];

/// A deterministic mix of the row number and the seed (splitmix64).
fn mix(i: u64, seed: u64) -> u64 {
    let mut z = i
        .wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Person `p`'s e-mail and phone (distinct for every `p`).
fn email(p: u64) -> String {
    format!(
        "{}.{}{p}@example{}.com",
        FIRST[(p % 16) as usize].to_lowercase(),
        LAST[(p / 16 % 16) as usize].to_lowercase(),
        p % 7
    )
}

fn phone(k: u64) -> String {
    // Exchanges 220–989 and all four-digit lines: unique up to ~120 million.
    let area = AREAS[(k % 16) as usize];
    let rest = k / 16;
    format!(
        "({area}) {}-{:04}",
        220 + (rest / 10_000) % 770,
        rest % 10_000
    )
}

/// Writes `rows` generated contacts to `out`.
pub fn generate(out: &Path, rows: u64, seed: u64) -> Result<Generated> {
    let f =
        std::fs::File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, f));
    w.write_record([
        "Email",
        "Phone Number",
        "First Name",
        "Last Name",
        "Company",
        "IGSID",
        "Notes",
    ])?;
    let mut g = Generated::default();
    // Person p's own phone is phone(2p); extra phones take the odd numbers.
    let mut extra = 0u64;
    let mut people = 0u64;
    for i in 0..rows {
        let r = mix(i, seed);
        let pick = r % 1000;
        let earlier = |salt: u64| mix(i ^ salt, seed) % people.max(1);
        let (mut e, mut ph, mut ig) = (String::new(), String::new(), String::new());
        if pick < 30 && people > 10 {
            // The same person again, with a second phone: attaches.
            e = email(earlier(0x51));
            ph = phone(2 * extra + 1);
            extra += 1;
            g.repeats += 1;
        } else if pick < 45 && people > 10 {
            // One earlier person's e-mail with another's phone: a merge
            // (an attach when the second person gave no phone).
            e = email(earlier(0xa1));
            ph = phone(2 * earlier(0xb2));
            g.bridges += 1;
        } else if pick < 55 {
            e = email(people);
            ph = "12".into();
            people += 1;
            g.bad_phone_warnings += 1;
        } else if pick < 58 {
            ph = format!("call {}", r % 100);
            g.bad_phone_only += 1;
        } else {
            let p = people;
            people += 1;
            g.new_people += 1;
            if pick % 10 < 8 {
                e = email(p);
            }
            if pick % 10 >= 3 {
                ph = phone(2 * p);
            }
            if pick % 17 == 3 {
                ig = format!("{}", 17_841_400_000_000_000 + p);
            }
        }
        let first = FIRST[(r >> 12) as usize % 16];
        let last = LAST[(r >> 20) as usize % 16];
        let company = COMPANIES[(r >> 28) as usize % COMPANIES.len()];
        w.write_record([
            e.as_str(),
            ph.as_str(),
            first,
            last,
            company,
            ig.as_str(),
            "",
        ])?;
    }
    w.flush()?;
    Ok(g)
}

async fn bench_import(
    rows: u64,
    batch: usize,
    baseline_rows: u64,
    database_url: Option<String>,
    seed: u64,
) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "bos-bench-import-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveDir(dir.clone());
    let file = dir.join("contacts.csv");
    let t = Instant::now();
    let g = generate(&file, rows, seed)?;
    let gen_s = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&file)?.len();

    let (url, _guard) = match database_url {
        Some(u) => (u, None),
        None => {
            let (u, g) = bos_store::testing::fresh_url().await?;
            (u, Some(g))
        }
    };
    let store = bos_store::Store::open(&bos_store::StoreOptions {
        url,
        max_connections: 4,
    })
    .await?;
    let org = |name: &str| {
        let store = store.clone();
        let name = name.to_string();
        async move {
            let slug = format!("{name}-{}", uuid::Uuid::new_v4().simple());
            store
                .create_org(
                    &bos_core::OrgName::parse(&name).map_err(|e| anyhow!(e))?,
                    &bos_core::Slug::parse(&slug).map_err(|e| anyhow!(e))?,
                    bos::now(),
                )
                .await
                .map_err(anyhow::Error::from)
        }
    };
    println!(
        "bos import: {rows} generated rows ({:.1} MB, generated in {gen_s:.1} s), batch {batch}, engine {:?}",
        bytes as f64 / 1e6,
        store.kind()
    );
    println!("  data: {g}");

    let bulk_org = org("bench-import").await?;
    let opts = Options {
        source: "import".into(),
        batch,
        progress: true,
    };
    let s = import_file(&store, &bulk_org, &file, &opts, bos::now()).await?;
    let profiles = store.count_profiles(bulk_org.id).await?;
    println!(
        "  import:    {:>7.2} s  {:>9.0} rows/s   created {}, matched {}, merged {} ({} absorbed), rejected {}, \
         warnings {}; {} current profiles, {} identifiers linked",
        s.elapsed_s,
        s.rows_per_s,
        s.created,
        s.attached,
        s.merged,
        s.absorbed,
        s.rejected.len(),
        s.warnings.len(),
        profiles,
        s.linked
    );
    let again = import_file(&store, &bulk_org, &file, &opts, bos::now()).await?;
    println!(
        "  re-import: {:>7.2} s  {:>9.0} rows/s   unchanged {} (no-op replay), created {}",
        again.elapsed_s, again.rows_per_s, again.replayed, again.created
    );

    // Baseline: the streaming path, one `identify` (one transaction) per row.
    let base_org = org("bench-stream").await?;
    let rules = store.identity_rules(base_org.id).await?;
    let sample = dir.join("sample.csv");
    generate(&sample, baseline_rows.min(rows), seed)?;
    let src = ImportSource {
        source: "import".into(),
        file_name: "sample.csv".into(),
        file_hash: bos::import::file_digest(&sample)?,
    };
    let mut reader = csv::Reader::from_path(&sample)?;
    let headers: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let map = bos_core::identity::import::HeaderMap::new(&headers).map_err(|e| anyhow!(e))?;
    let mut mapped = Vec::new();
    for rec in reader.records() {
        let rec = rec?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let cells: Vec<&str> = rec.iter().collect();
        if let Ok(m) = map.map_row(line, &cells, &rules) {
            mapped.push(m);
        }
    }
    let now = bos::now();
    let t = Instant::now();
    for m in &mapped {
        store
            .identify(
                base_org.id,
                &rules,
                &IdentifyInput {
                    identifiers: m.identifiers.clone(),
                    traits: bos_store::identity::Traits {
                        first_name: m.first_name.clone(),
                        last_name: m.last_name.clone(),
                        company: m.company.clone(),
                        custom: Default::default(),
                    },
                    source: src.source.clone(),
                    event: Some(src.event(m.line, now)),
                    now,
                },
            )
            .await?;
    }
    let stream_rps = mapped.len() as f64 / t.elapsed().as_secs_f64().max(1e-9);
    println!(
        "  baseline:  streaming identify, one transaction per row, {} rows: {:>9.0} rows/s",
        mapped.len(),
        stream_rps
    );
    println!(
        "  ratio import/streaming: {:.1}x   budget: 1,000,000 rows persisted in ≤ 30 s on SQLite",
        s.rows_per_s / stream_rps.max(1e-9)
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "import", "engine": format!("{:?}", store.kind()), "rows": rows, "batch": batch,
            "import_s": s.elapsed_s, "import_rows_per_s": s.rows_per_s, "reimport_s": again.elapsed_s,
            "created": s.created, "attached": s.attached, "merged": s.merged, "rejected": s.rejected.len(),
            "profiles": profiles, "streaming_rows_per_s": stream_rps.round(),
            "ratio": ((s.rows_per_s / stream_rps.max(1e-9)) * 10.0).round() / 10.0
        })
    );
    store.close().await;
    Ok(())
}

/// Removes the benchmark's temporary directory when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_phones_and_emails_are_valid_and_distinct() {
        let rules = bos_core::identity::IdentityRules::default();
        let mut seen = std::collections::HashSet::new();
        for k in (0..2_000_000u64).step_by(9973) {
            let p = bos_core::identity::normalize(
                &bos_core::identity::IdentifierKind::Phone,
                &phone(k),
                &rules.default_region,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", phone(k)));
            assert!(seen.insert(p.value));
            bos_core::Email::parse(&email(k)).unwrap();
        }
    }
}
