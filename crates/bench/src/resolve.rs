//! `bos-bench resolve`: the resolution engine alone, as entity-resolution
//! tools are measured — a CSV already in memory turned into a partition of
//! its rows into people.
//!
//! Timed stages: parse + normalize (CSV fields into identifiers, on
//! `--threads` threads), sort (every identifier occurrence in the engine's
//! visiting order, grouped into distinct identifiers) and partition
//! (`bos_core::identity::batch::partition_sorted`), with the
//! identifier limits on, off, or both on the same parsed rows. Reading the
//! file is not timed; loading the phone-number metadata (once per process)
//! is timed and shown apart.
//!
//! It also writes what the side-by-side comparison needs: the partition of
//! each mode (`row,cluster`), the normalized identifiers as CSV (so that
//! Splink and DuckDB link exactly the identifiers BOS links), and, with a
//! truth file, pairwise precision and recall.

use anyhow::{bail, Context, Result};
use bos_core::identity::batch::{partition, partition_sorted, Partition};
use bos_core::identity::table::{RowsChunk, SortedIds};
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Limits {
    On,
    Off,
    Both,
}

pub struct Options {
    pub csv: PathBuf,
    pub limits: Limits,
    pub out_partition: Option<PathBuf>,
    pub truth: Option<PathBuf>,
    pub normalized: Option<PathBuf>,
    pub threads: usize,
    pub region: String,
    pub check_reference: bool,
    pub repeat: usize,
}

/// Splits the data (after the header) into `parts` slices of whole records.
/// A newline inside a quoted field is not a record end: a boundary is taken
/// only where the number of quotes before it is even (RFC 4180 escapes a
/// quote by doubling it, so the parity still tells inside from outside).
/// Quotes are counted on all threads at once.
fn split_records(data: &[u8], parts: usize) -> Vec<&[u8]> {
    let parts = parts.max(1);
    let step = data.len().div_ceil(parts).max(1);
    let quotes: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..parts)
            .map(|p| {
                let a = (p * step).min(data.len());
                let b = ((p + 1) * step).min(data.len());
                s.spawn(move || data[a..b].iter().filter(|&&c| c == b'"').count())
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("quote count"))
            .collect()
    });
    let mut cuts = vec![0usize];
    let mut parity = 0usize;
    for p in 1..parts {
        parity += quotes[p - 1];
        let mut i = (p * step).min(data.len());
        let mut odd = parity % 2 == 1;
        // Walk to the first newline outside quotes.
        while i < data.len() {
            match data[i] {
                b'"' => odd = !odd,
                b'\n' if !odd => break,
                _ => {}
            }
            i += 1;
        }
        let cut = (i + 1).min(data.len()).max(*cuts.last().expect("a cut"));
        cuts.push(cut);
    }
    cuts.push(data.len());
    cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// What one parser thread produced.
struct Parsed {
    chunk: RowsChunk,
    /// Values refused by normalization, per identifier column kind.
    rejected: Vec<u64>,
}

/// Where the unquoted field starting at `i` ends: the next `,` or `\n`, or
/// the end. Eight bytes at a time (a byte loop here was the largest part
/// of parsing, and fields are too short for `memchr`'s setup to pay off).
fn field_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The lowest byte of `w` equal to `c` gets its high bit set in the
    // result, and no byte below it does (bits above may be false hits).
    let eq = |w: u64, c: u8| {
        let x = w ^ (ONES * c as u64);
        x.wrapping_sub(ONES) & !x & HIGH
    };
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let m = eq(w, b',') | eq(w, b'\n');
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i] != b',' && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Parses CSV records (RFC 4180: quoted fields with doubled quotes,
/// newlines inside quotes, CRLF or LF) and normalizes the identifier
/// columns into a chunk. Blank lines are skipped.
fn parse_chunk(
    data: &[u8],
    columns: &[Option<u16>],
    kinds: &[IdentifierKind],
    region: &str,
) -> Result<Parsed> {
    let text = std::str::from_utf8(data).context("the CSV is not UTF-8")?;
    let b = text.as_bytes();
    // Sized from the text: at most one row per 8 bytes and one identifier
    // per 12 (a value and its comma), values no longer than the text.
    // Untouched capacity costs address space only.
    let mut out = Parsed {
        chunk: RowsChunk::with_capacity(b.len() / 8, b.len() / 12, b.len()),
        rejected: vec![0; kinds.len()],
    };
    let mut scratch = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) == Some(&b'\n')) {
            i += if b[i] == b'\r' { 2 } else { 1 };
            continue;
        }
        let mut col = 0;
        loop {
            let field: &str;
            if b.get(i) == Some(&b'"') {
                // Quoted: up to the quote not followed by another quote.
                scratch.clear();
                let mut j = i + 1;
                let mut from = j;
                loop {
                    match b.get(j) {
                        None => bail!("unterminated quoted field"),
                        Some(b'"') if b.get(j + 1) == Some(&b'"') => {
                            scratch.push_str(&text[from..=j]);
                            j += 2;
                            from = j;
                        }
                        Some(b'"') => break,
                        _ => j += 1,
                    }
                }
                scratch.push_str(&text[from..j]);
                field = &scratch;
                i = j + 1;
            } else {
                let j = field_end(b, i);
                let end = if j > i && b[j - 1] == b'\r' && b.get(j) != Some(&b',') {
                    j - 1
                } else {
                    j
                };
                field = &text[i..end];
                i = j;
            }
            if let Some(Some(kind)) = columns.get(col) {
                if !field.is_empty() && out.chunk.push_raw(*kind, kinds, field, region).is_err() {
                    out.rejected[*kind as usize] += 1;
                }
            }
            col += 1;
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'\r') if b.get(i + 1) == Some(&b'\n') => {
                    i += 2;
                    break;
                }
                Some(b'\n') => {
                    i += 1;
                    break;
                }
                None => break,
                Some(_) => bail!("unexpected character after a quoted field"),
            }
        }
        out.chunk.end_row();
    }
    Ok(out)
}

/// The identifier columns of the header: each built-in kind named by a
/// column (other columns, such as names, are carried but not linked on).
fn header_columns(header: &str) -> (Vec<Option<u16>>, Vec<IdentifierKind>) {
    let mut kinds = Vec::new();
    let cols = header
        .trim_end_matches(['\r', '\n'])
        .split(',')
        .map(|name| {
            let name = name.trim().trim_matches('"');
            let kind = IdentifierKind::BUILT_IN
                .iter()
                .find(|k| k.as_str() == name)?;
            if kinds.contains(kind) {
                return None;
            }
            kinds.push(kind.clone());
            Some((kinds.len() - 1) as u16)
        })
        .collect();
    (cols, kinds)
}

/// Pairwise scores against the truth: of the row pairs put together, how
/// many are one person (precision); of the pairs that are one person, how
/// many were put together (recall).
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub true_pairs: u128,
    pub predicted_pairs: u128,
}

fn pairs(n: u64) -> u128 {
    n as u128 * n.saturating_sub(1) as u128 / 2
}

pub fn score(cluster: &[u32], truth: &[u32]) -> Scores {
    fn sizes(labels: &[u32]) -> u128 {
        let mut count = vec![0u64; labels.iter().max().map_or(0, |m| *m as usize + 1)];
        for &l in labels {
            count[l as usize] += 1;
        }
        count.iter().map(|&c| pairs(c)).sum()
    }
    let mut both: Vec<u64> = cluster
        .iter()
        .zip(truth)
        .map(|(&c, &t)| (c as u64) << 32 | t as u64)
        .collect();
    both.sort_unstable();
    let mut tp = 0u128;
    let mut i = 0;
    while i < both.len() {
        let j = i + both[i..].iter().take_while(|&&x| x == both[i]).count();
        tp += pairs((j - i) as u64);
        i = j;
    }
    let (predicted, real) = (sizes(cluster), sizes(truth));
    Scores {
        precision: if predicted == 0 {
            1.0
        } else {
            tp as f64 / predicted as f64
        },
        recall: if real == 0 {
            1.0
        } else {
            tp as f64 / real as f64
        },
        true_pairs: real,
        predicted_pairs: predicted,
    }
}

fn read_truth(path: &Path, rows: usize) -> Result<Vec<u32>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut truth = vec![u32::MAX; rows];
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let (r, p) = line.split_once(',').context("truth lines are row,person")?;
        let r: usize = r.parse()?;
        if r >= rows {
            bail!("truth names row {r}, the CSV has {rows} rows");
        }
        truth[r] = p.parse()?;
    }
    if truth.contains(&u32::MAX) {
        bail!("the truth file does not name every row");
    }
    Ok(truth)
}

fn write_partition(path: &Path, p: &Partition) -> Result<()> {
    let mut w = BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    writeln!(w, "row,cluster")?;
    for (r, c) in p.cluster.iter().enumerate() {
        writeln!(w, "{r},{c}")?;
    }
    w.flush()?;
    Ok(())
}

/// The normalized identifiers, one column per kind, with `unique_id` = row.
fn write_normalized(path: &Path, kinds: &[IdentifierKind], chunks: &[RowsChunk]) -> Result<()> {
    let mut w = BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    write!(w, "unique_id")?;
    for kind in kinds {
        write!(w, ",{kind}")?;
    }
    writeln!(w)?;
    let mut cells: Vec<Option<&str>> = vec![None; kinds.len()];
    let mut line = String::new();
    let mut row = 0usize;
    for c in chunks {
        for r in 0..c.rows() {
            cells.iter_mut().for_each(|c| *c = None);
            for (k, v) in c.row(r) {
                let slot = &mut cells[k as usize];
                if slot.is_some() {
                    bail!("row {row} has two values of one kind: the normalized CSV holds one per column");
                }
                *slot = Some(v);
            }
            line.clear();
            line.push_str(&row.to_string());
            for v in &cells {
                line.push(',');
                if let Some(v) = v {
                    crate::gen::csv_field(&mut line, v);
                }
            }
            writeln!(w, "{line}")?;
            row += 1;
        }
    }
    w.flush()?;
    Ok(())
}

fn median(runs: &mut [f64]) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn thousands(n: u128) -> String {
    let s = n.to_string();
    let mut groups: Vec<&str> = Vec::new();
    let mut end = s.len();
    while end > 3 {
        groups.push(&s[end - 3..end]);
        end -= 3;
    }
    groups.push(&s[..end]);
    groups.reverse();
    groups.join(",")
}

/// Per-kind counts as "email 12, phone 3".
fn by_kind(kinds: &[IdentifierKind], counts: &[u64]) -> String {
    let parts: Vec<String> = kinds
        .iter()
        .zip(counts)
        .filter(|(_, c)| **c > 0)
        .map(|(k, c)| format!("{k} {}", thousands(*c as u128)))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

pub fn run(o: Options) -> Result<()> {
    let t = Instant::now();
    let data = std::fs::read(&o.csv).with_context(|| format!("reading {}", o.csv.display()))?;
    let read_s = secs(t);
    let threads = o.threads.max(1);

    // The phone-number metadata loads on first use, once per process.
    let t = Instant::now();
    let _ = bos_core::identity::normalize(&IdentifierKind::Phone, "(415) 555-2671", &o.region);
    let metadata_s = secs(t);

    let header_end = data
        .iter()
        .position(|&c| c == b'\n')
        .map_or(data.len(), |i| i + 1);
    let header = std::str::from_utf8(&data[..header_end]).context("the CSV header is not UTF-8")?;
    let (columns, kinds) = header_columns(header);
    if kinds.is_empty() {
        bail!("no identifier column in the header (expected some of email, phone, shopify_customer_id, …)");
    }
    let body = &data[header_end..];

    // (a) parse + normalize, and (b) sort, `repeat` times from scratch (the
    // median is reported: the machine is shared, single runs are noisy).
    // Both limit modes share the kinds' priorities, so one sort serves both.
    let order_rules = IdentityRules::default();
    let mut parse_runs = Vec::new();
    let mut sort_runs = Vec::new();
    let mut last = None;
    for _ in 0..o.repeat.max(1) {
        drop(last.take());
        let t = Instant::now();
        let slices = split_records(body, threads);
        let parsed: Vec<Parsed> = std::thread::scope(|s| {
            let hs: Vec<_> = slices
                .iter()
                .map(|slice| {
                    let (columns, kinds, region) = (&columns, &kinds, o.region.as_str());
                    s.spawn(move || parse_chunk(slice, columns, kinds, region))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("parser thread panicked"))
                .collect::<Result<Vec<_>>>()
        })?;
        parse_runs.push(secs(t));
        let mut rejected = vec![0u64; kinds.len()];
        for p in &parsed {
            for (r, x) in rejected.iter_mut().zip(&p.rejected) {
                *r += x;
            }
        }
        let chunks: Vec<RowsChunk> = parsed.into_iter().map(|p| p.chunk).collect();
        let t = Instant::now();
        let sorted = SortedIds::build(&order_rules, kinds.clone(), &chunks, threads);
        sort_runs.push(secs(t));
        drop(sorted);
        last = Some((chunks, rejected));
    }
    let (chunks, rejected) = last.expect("at least one run");
    let (parse_s, sort_s) = (median(&mut parse_runs), median(&mut sort_runs));
    let table = SortedIds::build(&order_rules, kinds.clone(), &chunks, threads);

    let rows = table.rows();
    println!(
        "resolve: {} rows, {} threads, median of {} runs, {} ({:.1} MB read in {read_s:.2} s, not timed)",
        thousands(rows as u128),
        threads,
        o.repeat.max(1),
        o.csv.display(),
        data.len() as f64 / 1e6
    );
    println!(
        "  {:<44} {metadata_s:>7.3} s  (once per process, not in totals)",
        "phone metadata load"
    );
    println!(
        "  {:<44} {parse_s:>7.3} s  ({} identifiers; rejected: {})",
        "(a) parse + normalize",
        thousands(table.occurrences() as u128),
        by_kind(&kinds, &rejected)
    );
    println!(
        "  {:<44} {sort_s:>7.3} s  ({} distinct identifiers)",
        "(b) sort identifiers (priority, kind, value)",
        thousands(table.nodes() as u128)
    );

    let truth = match o.truth.clone().or_else(|| {
        let p = crate::gen::truth_path(&o.csv);
        p.exists().then_some(p)
    }) {
        Some(p) => Some(read_truth(&p, rows)?),
        None => None,
    };

    let modes: &[bool] = match o.limits {
        Limits::On => &[true],
        Limits::Off => &[false],
        Limits::Both => &[false, true],
    };
    let mut json_modes = Vec::new();
    for &on in modes {
        let rules = if on {
            IdentityRules::default()
        } else {
            IdentityRules::unlimited()
        };
        let name = if on { "on" } else { "off" };
        let mut runs = Vec::new();
        let mut p = None;
        for _ in 0..o.repeat.max(1) {
            drop(p.take());
            let t = Instant::now();
            p = Some(partition_sorted(&rules, &table));
            runs.push(secs(t));
        }
        let p = p.expect("at least one run");
        let part_s = median(&mut runs);
        let total = parse_s + sort_s + part_s;
        let mut sizes = vec![0u32; p.clusters];
        for &c in &p.cluster {
            sizes[c as usize] += 1;
        }
        let largest = sizes.iter().max().copied().unwrap_or(0);
        let mut dropped = vec![0u64; kinds.len()];
        for d in &p.dropped {
            if let Some(i) = kinds.iter().position(|k| *k == d.kind) {
                dropped[i] += 1;
            }
        }
        println!(
            "  {:<44} {part_s:>7.3} s  → {} clusters, largest {} rows; dropped: {}",
            format!("(c) partition, limits {name}"),
            thousands(p.clusters as u128),
            thousands(largest as u128),
            by_kind(&kinds, &dropped)
        );
        println!(
            "  {:<44} {total:>7.3} s",
            format!("total (a)+(b)+(c), limits {name}")
        );
        let mut j = serde_json::json!({
            "limits": name, "partition_s": part_s, "total_s": total,
            "clusters": p.clusters, "largest": largest, "dropped": p.dropped.len(),
        });
        if let Some(truth) = &truth {
            let s = score(&p.cluster, truth);
            println!(
                "  {:<44} precision {:.4}  recall {:.4}  ({} pairs put together, {} true pairs)",
                format!("vs truth, limits {name}"),
                s.precision,
                s.recall,
                thousands(s.predicted_pairs),
                thousands(s.true_pairs)
            );
            j["precision"] = s.precision.into();
            j["recall"] = s.recall.into();
        }
        if o.check_reference {
            let rows_ids: Vec<Vec<Identifier>> =
                chunks.iter().flat_map(|c| c.to_rows(&kinds)).collect();
            let t = Instant::now();
            let r = partition(&rules, &rows_ids);
            let ref_s = secs(t);
            let same = r == p;
            println!(
                "  {:<44} {ref_s:>7.3} s  same partition and drops as (c): {}",
                format!("reference engine (batch::partition), limits {name}"),
                if same { "yes" } else { "NO" }
            );
            j["reference_s"] = ref_s.into();
            j["reference_equal"] = same.into();
            if !same {
                bail!("the fast engine and the reference disagree with limits {name}");
            }
        }
        if let Some(prefix) = &o.out_partition {
            let path = partition_path(prefix, name);
            write_partition(&path, &p)?;
            println!("  {:<44} {}", "partition written to", path.display());
        }
        json_modes.push(j);
    }
    if let Some(path) = &o.normalized {
        write_normalized(path, &kinds, &chunks)?;
        println!(
            "  {:<44} {}",
            "normalized identifiers written to",
            path.display()
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "resolve", "rows": rows, "threads": threads, "repeat": o.repeat.max(1),
            "identifiers": table.occurrences(), "distinct": table.nodes(),
            "rejected": rejected.iter().sum::<u64>(),
            "metadata_s": metadata_s, "parse_s": parse_s, "sort_s": sort_s,
            "modes": json_modes,
        })
    );
    Ok(())
}

/// `PREFIX.limits-on.csv` / `PREFIX.limits-off.csv`.
pub fn partition_path(prefix: &Path, mode: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!(".limits-{mode}.csv"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_end_finds_the_first_comma_or_newline() {
        use rand::{Rng, SeedableRng};
        // Every string of up to 19 bytes over an alphabet with both
        // delimiters, bytes next to them in value (`+`, `-`, `\t`, `\x0b`)
        // and bytes with the high bit set, from every start.
        let alphabet = [b'a', b',', b'\n', b'+', b'-', b'\t', 0x0b, 0xac, 0xff, 0x80];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..20);
            let b: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            for i in 0..=b.len() {
                let naive = (i..b.len())
                    .find(|&j| b[j] == b',' || b[j] == b'\n')
                    .unwrap_or(b.len());
                assert_eq!(field_end(&b, i), naive, "{b:?} from {i}");
            }
        }
    }

    fn parse(csv: &str, threads: usize) -> (Vec<IdentifierKind>, Vec<RowsChunk>) {
        let end = csv.find('\n').unwrap() + 1;
        let (cols, kinds) = header_columns(&csv[..end]);
        let chunks: Vec<RowsChunk> = split_records(&csv.as_bytes()[end..], threads)
            .into_iter()
            .map(|s| parse_chunk(s, &cols, &kinds, "US").unwrap().chunk)
            .collect();
        (kinds, chunks)
    }

    fn rows_of(kinds: &[IdentifierKind], chunks: &[RowsChunk]) -> Vec<Vec<Identifier>> {
        chunks.iter().flat_map(|c| c.to_rows(kinds)).collect()
    }

    #[test]
    fn csv_quotes_crlf_and_splits() {
        let csv = "first_name,email,company,phone\r\n\
                   Ann,ANN@x.com,\"Acme, \"\"Inc\"\"\nsecond line\",(415) 555-2671\r\n\
                   \r\n\
                   Bob,,\"x\",\n\
                   \"Cy\",cy@x.com,,bad phone\n";
        for threads in 1..5 {
            let (kinds, chunks) = parse(csv, threads);
            let rows: Vec<Vec<String>> = rows_of(&kinds, &chunks)
                .iter()
                .map(|r| r.iter().map(|i| i.to_string()).collect())
                .collect();
            assert_eq!(
                rows,
                vec![
                    vec!["email:ann@x.com".to_string(), "phone:+14155552671".into()],
                    vec![],
                    vec!["email:cy@x.com".into()],
                ],
                "{threads} threads"
            );
        }
    }

    #[test]
    fn scores() {
        let s = score(&[0, 0, 1, 1], &[5, 5, 5, 6]);
        assert_eq!((s.predicted_pairs, s.true_pairs), (2, 3));
        assert_eq!(s.precision, 0.5);
        assert!((s.recall - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn generated_contacts_resolve_like_the_reference() {
        let (lines, truth, _) = crate::gen::generate(3000, 1);
        let csv = format!("{}\n{}\n", crate::gen::HEADER, lines.join("\n"));
        let (kinds, chunks) = parse(&csv, 2);
        let rows = rows_of(&kinds, &chunks);
        assert_eq!(rows.len(), 3000);
        let sorted = SortedIds::build(&IdentityRules::default(), kinds, &chunks, 2);
        for rules in [IdentityRules::default(), IdentityRules::unlimited()] {
            let p = partition_sorted(&rules, &sorted);
            assert_eq!(p, partition(&rules, &rows));
            let s = score(&p.cluster, &truth);
            assert!(
                s.recall > 0.5 && s.precision > 0.3,
                "{} {}",
                s.precision,
                s.recall
            );
        }
    }
}
