//! Bulk import of contacts (the rows themselves): many rows per transaction, resolved
//! with exactly the semantics of streaming resolution (`Store::identify`).
//!
//! A batch is one transaction, so SQLite pays one fsync per batch instead
//! of one per row. Inside it the batch is split by what each row touches:
//!
//! - a row whose identifiers are all unknown to the database and carried by
//!   no other row of the batch cannot attach to or merge with anything. Its
//!   outcome is known without asking the database — the planner creates a
//!   profile — so its profile, links and timeline entry are written with
//!   multi-row inserts, a few hundred rows per statement;
//! - every other row goes through `identity::identify_tx`, the very code
//!   streaming resolution runs, in file order.
//!
//! The two kinds share no identifier, so the order in which their writes
//! reach the database cannot change any outcome. Ids are still drawn in
//! file order (UUIDv7 is monotonic), so which profile is "oldest" — the
//! merge survivor — is the same as if the rows had streamed in one by one.
//!
//! Every row gets an `import` timeline entry whose idempotency key is the
//! file's digest and the line number: importing the same file again finds
//! every key already present and changes nothing.
//!
//! What needs no database — keys, the plan of a row assumed new, names,
//! the timeline text, sort orders — is worked out by [`prepare`], which the
//! import driver runs on its reader thread while the single SQLite writer
//! resolves the previous batch (decision 0004).

use crate::engine::bulk_db;
use crate::identity::{
    display_name, identify_tx, name_key, IdentifyAction, IdentifyInput, NewEvent, Traits,
};
use crate::sql::{own_values, q, Db, Rows, Val};
use crate::{new_id, StoreError};
use bos_core::identity::import::Rejection;
use bos_core::identity::{plan, Identifier, IdentifierKind, IdentityRules};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// One contact to import: normalized identifiers (see
/// `bos_core::identity::import`) and the traits to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Line number in the file: part of the idempotency key, and how
    /// rejections name the row.
    pub line: u64,
    pub identifiers: Vec<Identifier>,
    pub traits: Traits,
}

/// Where the rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSource {
    /// Recorded on identity links and timeline entries (`import` by default).
    pub source: String,
    /// The file name shown on the timeline.
    pub file_name: String,
    /// Hex digest of the file's bytes; with the line number it keys each row.
    pub file_hash: String,
}

/// What a batch (or a whole import) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    /// Rows given to the store.
    pub rows: u64,
    /// Rows that made a new profile.
    pub created: u64,
    /// Rows that matched one existing profile (attached to it).
    pub attached: u64,
    /// Rows that joined several profiles into one.
    pub merged: u64,
    /// Profiles absorbed by those merges.
    pub absorbed: u64,
    /// Rows imported before (same file, same line): left unchanged.
    pub replayed: u64,
    /// Identifiers newly linked to profiles.
    pub linked: u64,
    /// Identifiers the rules left out (a per-profile limit, the blocklist).
    pub dropped: u64,
    /// Rows that could not be resolved at all.
    pub rejected: Vec<Rejection>,
}

impl ImportCounts {
    /// Adds another batch's counts to these.
    pub fn add(&mut self, o: ImportCounts) {
        self.rows += o.rows;
        self.created += o.created;
        self.attached += o.attached;
        self.merged += o.merged;
        self.absorbed += o.absorbed;
        self.replayed += o.replayed;
        self.linked += o.linked;
        self.dropped += o.dropped;
        self.rejected.extend(o.rejected);
    }
}

/// The idempotency key of one imported row: the file's digest and the line,
/// zero-padded so keys of one file sort (and index) in line order.
pub fn import_key(file_hash: &str, line: u64) -> String {
    let h: String = file_hash.chars().take(32).collect();
    format!("import:{h}:{line:010}")
}

impl ImportSource {
    /// The timeline entry an imported row leaves (the same on both paths,
    /// and what a streaming `identify` of the row would be given).
    pub fn event(&self, line: u64, now: i64) -> NewEvent {
        NewEvent {
            kind: "import".into(),
            summary: format!("Imported from {}, line {line}", self.file_name),
            occurred_at: now,
            data: serde_json::json!({ "file": self.file_name, "line": line }).to_string(),
            key: Some(import_key(&self.file_hash, line)),
            revenue_cents: 0,
            is_order: false,
        }
    }
}

/// Rows per multi-row insert statement: large enough that per-statement
/// overhead vanishes, small enough to stay far below both engines' limits
/// on bound parameters (32,766 on SQLite, 65,535 on PostgreSQL).
const INSERT_CHUNK: usize = 500;
/// Values per `in (…)` lookup.
const LOOKUP_CHUNK: usize = 1000;

/// How bound parameters are written: `?N` on SQLite, `$N` on PostgreSQL
/// (see [`tuples`]).
fn mark<D: Db>() -> char {
    if D::SQLITE {
        '?'
    } else {
        '$'
    }
}

/// Parameter `n`.
fn param(mark: char, n: usize) -> String {
    format!("{mark}{n}")
}

/// `in (p, p, …)` for `n` values numbered from `first`.
fn list(mark: char, first: usize, n: usize) -> String {
    format!("in {}", tuples(mark, first - 1, 1, &vec![None; n]))
}

/// What a row writes if it makes a new profile, worked out before the
/// batch reaches the writer.
struct Fresh {
    first: String,
    last: String,
    company: String,
    email: String,
    phone: String,
    display: String,
    name_lc: String,
    name_key: String,
    links: Vec<Identifier>,
    dropped: u64,
    summary: String,
    data: String,
}

/// A row as [`prepare`] leaves it.
// Nearly every row is `Fresh`: boxing it would only add an allocation each.
#[allow(clippy::large_enum_variant)]
enum Prep {
    /// No identifier survives the blocklist: the row is rejected.
    Unusable,
    /// Imported before, as far as the caller knew: not worked out. Should
    /// the row turn out not to be (its person was erased since), it goes
    /// through `identify_tx`, which needs nothing prepared.
    Skipped,
    /// The planner refused the row.
    Refused(String),
    /// The new profile, should its identifiers all turn out to be new.
    Fresh(Fresh),
}

/// A batch made ready for the store: everything about its rows that does
/// not depend on the database, computed by [`prepare`] on the caller's
/// thread. The store's writer is the one thread all writes of a SQLite
/// file share, and an import keeps it busy; the import driver prepares the
/// next batch on its reader thread, on the other core, meanwhile. What is
/// left for the writer is to ask the database what it knows and write.
pub struct PreparedBatch {
    rows: Vec<ImportRow>,
    /// Each row's idempotency key.
    keys: Vec<String>,
    /// What each row would write as a new profile.
    fresh: Vec<Prep>,
    /// How many rows of the batch carry each usable identifier.
    carriers: HashMap<Identifier, u32>,
    /// Row indexes in the order of the busiest random profile index.
    by_name: Vec<u32>,
    /// (row, link) pairs in identity-link key order.
    by_link: Vec<(u32, u32)>,
    /// The batch's identifiers by kind, each list sorted: the lookups.
    lookups: Vec<(IdentifierKind, Vec<String>)>,
}

impl PreparedBatch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Line of the batch's first row.
    pub fn first_line(&self) -> Option<u64> {
        self.rows.first().map(|r| r.line)
    }
}

/// Prepares rows for [`crate::Store::import_prepared`]; pure CPU work, for
/// any thread. Rows for which `imported` says yes (lines of this file
/// imported before, see [`crate::Store::imported_lines`]) are not worked
/// out: preparing a row costs more than finding it imported, and importing
/// a file again would otherwise take five times as long.
pub fn prepare(
    rules: &IdentityRules,
    src: &ImportSource,
    rows: Vec<ImportRow>,
    imported: impl Fn(u64) -> bool,
) -> PreparedBatch {
    let keys: Vec<String> = rows
        .iter()
        .map(|r| import_key(&src.file_hash, r.line))
        .collect();
    let mut carriers: HashMap<Identifier, u32> = HashMap::with_capacity(rows.len() * 2);
    let mut fresh = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut mine: Vec<&Identifier> = r
            .identifiers
            .iter()
            .filter(|id| !rules.blocked(id))
            .collect();
        if mine.is_empty() {
            fresh.push(Prep::Unusable);
            continue;
        }
        mine.sort();
        mine.dedup();
        // Counted for skipped rows too: should one not be imported after
        // all, no row sharing its identifiers may pass for independent.
        for id in mine {
            *carriers.entry(id.clone()).or_default() += 1;
        }
        if imported(r.line) {
            fresh.push(Prep::Skipped);
            continue;
        }
        // What the planner does when nothing is known: create.
        let f = match plan::<Uuid>(
            rules,
            &r.identifiers,
            &Default::default(),
            &Default::default(),
        ) {
            Err(e) => Prep::Refused(format!("import planned nothing: {e}")),
            Ok(p) => {
                let first_of = |k: IdentifierKind| {
                    p.link
                        .iter()
                        .find(|i| i.kind == k)
                        .map(|i| i.value.clone())
                        .unwrap_or_default()
                };
                let (first, last, company) = (
                    r.traits.first_name.trim().to_string(),
                    r.traits.last_name.trim().to_string(),
                    r.traits.company.trim().to_string(),
                );
                let (email, phone) = (
                    first_of(IdentifierKind::Email),
                    first_of(IdentifierKind::Phone),
                );
                let display = display_name(&first, &last, &email, &phone);
                let e = src.event(r.line, 0);
                Prep::Fresh(Fresh {
                    name_lc: display.to_lowercase(),
                    name_key: name_key(&first, &last, &company),
                    display,
                    first,
                    last,
                    company,
                    email,
                    phone,
                    dropped: p.dropped.len() as u64,
                    links: p.link,
                    summary: e.summary,
                    data: e.data,
                })
            }
        };
        fresh.push(f);
    }
    let name_of = |i: u32| match &fresh[i as usize] {
        Prep::Fresh(f) => f.name_lc.as_str(),
        _ => "",
    };
    let mut by_name: Vec<u32> = (0..rows.len() as u32)
        .filter(|&i| matches!(fresh[i as usize], Prep::Fresh(_)))
        .collect();
    by_name.sort_by(|&a, &b| name_of(a).cmp(name_of(b)));
    let mut by_link: Vec<(u32, u32)> = Vec::with_capacity(rows.len() * 2);
    for (i, f) in fresh.iter().enumerate() {
        if let Prep::Fresh(f) = f {
            by_link.extend((0..f.links.len() as u32).map(|j| (i as u32, j)));
        }
    }
    let link_of = |&(i, j): &(u32, u32)| match &fresh[i as usize] {
        Prep::Fresh(f) => Some(&f.links[j as usize]),
        _ => None,
    };
    by_link.sort_unstable_by(|a, b| link_of(a).cmp(&link_of(b)));
    let mut by_kind: HashMap<&IdentifierKind, Vec<String>> = HashMap::new();
    for id in carriers.keys() {
        by_kind.entry(&id.kind).or_default().push(id.value.clone());
    }
    let mut lookups: Vec<(IdentifierKind, Vec<String>)> = by_kind
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            (k.clone(), v)
        })
        .collect();
    lookups.sort_by(|a, b| a.0.cmp(&b.0));
    PreparedBatch {
        rows,
        keys,
        fresh,
        carriers,
        by_name,
        by_link,
        lookups,
    }
}

/// The SQLite page cache the writer uses while an import runs. A batch
/// touches pages all over the identity indexes, which at a million rows
/// are several hundred MiB: with less, most of them are read back from the
/// file several times. Measured (`bos-bench import`, 1,000,000 rows, idle
/// machine, one run each, ±15 % between runs): 256 MiB restored after each
/// batch 70 s; 1 GiB 51–64 s (decision 0004). The writer thread shrinks the
/// cache back after two idle seconds. Pages are allocated as they are used,
/// so an import holds up to this much memory while it runs.
const SQLITE_BULK_CACHE_KIB: i64 = 1024 * 1024;

/// One batch, atomically, inside the transaction `bulk_db!` opened.
async fn import_atomic<D: Db>(
    db: &mut D,
    org: Uuid,
    rules: &IdentityRules,
    batch: &PreparedBatch,
    src: &ImportSource,
    now: i64,
) -> Result<ImportCounts, StoreError> {
    // On SQLite the batch runs with foreign keys off (`bulk_db!`): this is
    // their check, and the writer being single, nothing can delete the
    // organization before the batch commits.
    let exists = q("select 1 from organizations where id = $1").bind(org);
    if db.rows(exists).await?.is_empty() {
        return Err(StoreError::NotFound);
    }
    if D::SQLITE {
        // Kept across the batches of an import (a batch re-reading the
        // pages the previous one cached cost a third of the time); the
        // writer thread shrinks the cache back once writes pause.
        db.exec(q(format!("pragma cache_size = -{SQLITE_BULK_CACHE_KIB}")))
            .await?;
        // Sorter spills in memory, not temp files.
        db.exec(q("pragma temp_store = memory")).await?;
        import_batch(db, org, rules, batch, src, now).await
    } else {
        // sqlx keeps statements prepared; after five runs PostgreSQL may
        // settle on a generic plan costed when the tables were nearly empty
        // (a bulk load outruns autoanalyze), and such a plan scans where it
        // should seek. Custom plans see the tables' real size.
        db.exec(q("set local plan_cache_mode = force_custom_plan"))
            .await?;
        import_batch(db, org, rules, batch, src, now).await
    }
}

async fn import_batch<D: Db>(
    db: &mut D,
    org: Uuid,
    rules: &IdentityRules,
    b: &PreparedBatch,
    src: &ImportSource,
    now: i64,
) -> Result<ImportCounts, StoreError> {
    let mark = mark::<D>();
    let rows = &b.rows;
    let mut counts = ImportCounts {
        rows: rows.len() as u64,
        ..Default::default()
    };
    if rows.is_empty() {
        return Ok(counts);
    }

    // Rows imported before. Keys of one file sort by line, so
    // one range scan of the key index finds them all.
    let lo = b.keys.iter().min().cloned().unwrap_or_default();
    let hi = b.keys.iter().max().cloned().unwrap_or_default();
    let sql = format!(
        "select event_key from timeline where org_id = {} and event_key >= {} and event_key <= {}",
        param(mark, 1),
        param(mark, 2),
        param(mark, 3)
    );
    let mut done: HashSet<String> = HashSet::new();
    for row in db.rows(q(sql).bind(org).bind(lo).bind(hi)).await? {
        done.insert(row.text("event_key")?);
    }

    // Rows to resolve: not imported before, and not a second copy of the
    // same line in this batch (a replay, as in streaming).
    let mut live = vec![false; rows.len()];
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, k) in b.keys.iter().enumerate() {
        live[i] = !done.contains(k) && seen.insert(k.as_str());
    }
    let all_live = live.iter().all(|&l| l);
    // Identifiers of rows imported before are not looked up: a file
    // imported again asks nothing of the identity index.
    let mut wanted: HashSet<&Identifier> = HashSet::new();
    if !all_live {
        for (i, r) in rows.iter().enumerate() {
            if live[i] {
                wanted.extend(r.identifiers.iter());
            }
        }
    }

    // Which of the batch's identifiers the database knows. Per kind, so
    // the primary key (org_id, kind, value) answers each value with one
    // seek (a bare `value in (…)` lets SQLite's planner scan every link of
    // the organization); sorted, so the seeks walk the index in order.
    let mut known: HashSet<Identifier> = HashSet::new();
    for (kind, all) in &b.lookups {
        let values: Vec<&String> = all
            .iter()
            .filter(|v| all_live || wanted.contains(&Identifier::new(kind.clone(), v.as_str())))
            .collect();
        for chunk in values.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "select value from identity_links where org_id = {} and kind = {} and value {}",
                param(mark, 1),
                param(mark, 2),
                list(mark, 3, chunk.len())
            );
            let mut query = q(sql).bind(org).bind(kind.as_str());
            for v in chunk {
                query = query.bind(v.as_str());
            }
            for row in db.rows(query).await? {
                known.insert(Identifier::new(kind.clone(), row.text("value")?));
            }
        }
    }

    // Rows whose outcome needs no question to the database: a new
    // profile each, with the ids drawn now, in file order, as streaming
    // would draw them (UUIDv7 is monotonic).
    let mut new_ids: Vec<Option<(Uuid, Uuid)>> = vec![None; rows.len()];
    for (i, r) in rows.iter().enumerate() {
        if !live[i] {
            counts.replayed += 1;
            continue;
        }
        let fresh = match &b.fresh[i] {
            Prep::Unusable => {
                counts.rejected.push(Rejection {
                    line: r.line,
                    reason: if r.identifiers.is_empty() {
                        "no identifier".into()
                    } else {
                        "every identifier is on the organization's blocklist".into()
                    },
                });
                continue;
            }
            Prep::Skipped => None,
            Prep::Refused(e) => Some(Err(e)),
            Prep::Fresh(f) => Some(Ok(f)),
        };
        // A plain loop, not an iterator chain: a closure held
        // across the awaits below trips the `Send` check.
        let mut independent = true;
        for id in &r.identifiers {
            if !rules.blocked(id) {
                independent &= b.carriers.get(id) == Some(&1) && !known.contains(id);
            }
        }
        if let (true, Some(f)) = (independent, fresh) {
            let f = f.map_err(|e| StoreError::Other(e.clone()))?;
            counts.created += 1;
            counts.linked += f.links.len() as u64;
            counts.dropped += f.dropped;
            new_ids[i] = Some((new_id(), new_id()));
        } else {
            let input = IdentifyInput {
                identifiers: r.identifiers.clone(),
                traits: r.traits.clone(),
                source: src.source.clone(),
                event: Some(src.event(r.line, now)),
                now,
            };
            let out = identify_tx(db, org, rules, &input).await?;
            match out.action {
                IdentifyAction::Created => counts.created += 1,
                IdentifyAction::Attached => counts.attached += 1,
                IdentifyAction::Merged => counts.merged += 1,
                IdentifyAction::Replayed => counts.replayed += 1,
            }
            counts.absorbed += out.merged.len() as u64;
            counts.linked += out.linked.len() as u64;
            counts.dropped += out.dropped.len() as u64;
        }
    }
    if !D::SQLITE {
        // Inserts need no custom plan, and planning one for a
        // statement with thousands of parameters is not free.
        db.exec(q("set local plan_cache_mode = auto")).await?;
    }
    insert_new(db, org, b, &new_ids, src, now).await?;
    Ok(counts)
}

/// `(…), (…)` for `rows` tuples shaped by `cols`: a shared column
/// (`Some(n)`) names parameter `n`, bound once per statement; each row's
/// own values (`None`) are numbered on after the `shared` parameters.
/// Numbered on both engines (`?N`, `$N`): SQLite binds `?N` by position,
/// and finds a repeated `?N` in its list of parameters by a scan from the
/// first — immediate for the shared ones, which come first.
fn tuples(mark: char, shared: usize, rows: usize, cols: &[Option<usize>]) -> String {
    let mut s = String::with_capacity(rows * cols.len() * 7);
    let mut n = shared;
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for (c, col) in cols.iter().enumerate() {
            if c > 0 {
                s.push_str(", ");
            }
            s.push(mark);
            let p = col.unwrap_or_else(|| {
                n += 1;
                n
            });
            s.push_str(&p.to_string());
        }
        s.push(')');
    }
    s
}

/// Writes the new profiles, their links and their timeline entries with
/// multi-row inserts, each table's rows in the order of its busiest random
/// index, so consecutive inserts land on neighbouring pages. Values are
/// bound from the prepared batch, not copied.
async fn insert_new<D: Db>(
    db: &mut D,
    org: Uuid,
    b: &PreparedBatch,
    new_ids: &[Option<(Uuid, Uuid)>],
    src: &ImportSource,
    now: i64,
) -> Result<(), StoreError> {
    let mark = mark::<D>();
    // `or fail` on SQLite: a unique index that refuses a row stops the
    // statement without undoing its earlier rows, so SQLite needs no
    // statement journal to undo them with (foreign keys, the other reason
    // for one, are off in a bulk write). Any error fails the whole batch,
    // whose transaction is then rolled back: nothing half-written stays.
    let insert = if D::SQLITE {
        "insert or fail"
    } else {
        "insert"
    };
    // Only rows given ids are new, and only those have a profile ready.
    let new = |i: u32| -> Option<(&Fresh, &Uuid, &Uuid)> {
        let (id, tl) = new_ids[i as usize].as_ref()?;
        match &b.fresh[i as usize] {
            Prep::Fresh(f) => Some((f, id, tl)),
            _ => None,
        }
    };
    const OWN: Option<usize> = None;
    let (s_org, s_now, s_source, s_kind) = (Some(1), Some(2), Some(3), Some(4));

    let profiles: Vec<(&Fresh, &Uuid)> = b
        .by_name
        .iter()
        .filter_map(|&i| new(i).map(|(f, id, _)| (f, id)))
        .collect();
    // The same columns identify_tx leaves on a created profile.
    let cols = [
        s_org, OWN, OWN, OWN, OWN, OWN, OWN, OWN, OWN, OWN, OWN, s_now, s_now, s_now,
    ];
    let sql = |n: usize| {
        format!(
            "{insert} into profiles (org_id, id, root_id, first_name, last_name, display_name, company, \
             primary_email, primary_phone, name_lc, name_key, last_active_at, created_at, updated_at) values {}",
            tuples(mark, 2, n, &cols)
        )
    };
    let own = own_values(|i, out| {
        let (f, id) = profiles[i];
        out.extend([
            Val::Uuid(id),
            Val::Uuid(id),
            Val::Str(&f.first),
            Val::Str(&f.last),
            Val::Str(&f.display),
            Val::Str(&f.company),
            Val::Str(&f.email),
            Val::Str(&f.phone),
            Val::Str(&f.name_lc),
            Val::Str(&f.name_key),
        ]);
    });
    db.exec_rows(Rows {
        sql: &sql,
        shared: &[Val::Uuid(&org), Val::I64(now)],
        rows: profiles.len(),
        chunk: INSERT_CHUNK,
        own: &own,
    })
    .await?;

    let links: Vec<(&Identifier, &Uuid)> = b
        .by_link
        .iter()
        .filter_map(|&(i, j)| new(i).map(|(f, id, _)| (&f.links[j as usize], id)))
        .collect();
    let cols = [s_org, OWN, OWN, OWN, OWN, s_now, s_now, s_source];
    let sql = |n: usize| {
        format!(
            "{insert} into identity_links (org_id, kind, value, profile_id, root_id, first_seen_at, \
             last_seen_at, source) values {}",
            tuples(mark, 3, n, &cols)
        )
    };
    let own = own_values(|i, out| {
        let (l, id) = links[i];
        out.extend([
            Val::Str(l.kind.as_str()),
            Val::Str(&l.value),
            Val::Uuid(id),
            Val::Uuid(id),
        ]);
    });
    db.exec_rows(Rows {
        sql: &sql,
        shared: &[Val::Uuid(&org), Val::I64(now), Val::Str(&src.source)],
        rows: links.len(),
        chunk: INSERT_CHUNK,
        own: &own,
    })
    .await?;

    // Timeline ids and keys both grow with the line: file order.
    let entries: Vec<(u32, &Fresh, &Uuid, &Uuid)> = (0..b.rows.len() as u32)
        .filter_map(|i| new(i).map(|(f, id, tl)| (i, f, id, tl)))
        .collect();
    let cols = [s_org, OWN, OWN, OWN, s_now, s_kind, s_source, OWN, OWN, OWN];
    let sql = |n: usize| {
        format!(
            "{insert} into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, \
             data, event_key) values {}",
            tuples(mark, 4, n, &cols)
        )
    };
    let own = own_values(|i, out| {
        let (line, f, id, tl) = entries[i];
        out.extend([
            Val::Uuid(tl),
            Val::Uuid(id),
            Val::Uuid(id),
            Val::Str(&f.summary),
            Val::Str(&f.data),
            Val::Str(&b.keys[line as usize]),
        ]);
    });
    db.exec_rows(Rows {
        sql: &sql,
        shared: &[
            Val::Uuid(&org),
            Val::I64(now),
            Val::Str(&src.source),
            Val::Str("import"),
        ],
        rows: entries.len(),
        chunk: INSERT_CHUNK,
        own: &own,
    })
    .await?;
    Ok(())
}

impl crate::Store {
    /// Imports one batch of rows in one transaction: each row is resolved
    /// as `identify` would resolve it (create, attach or merge) and gets an
    /// `import` timeline entry keyed by file digest and line, so a second
    /// import of the same file changes nothing. Callers batch (a few
    /// thousand rows per call), report progress between calls, and call
    /// [`crate::Store::flush`] at the end (see [`crate::Store::import_prepared`]).
    pub async fn import_rows(
        &self,
        org: Uuid,
        rules: &IdentityRules,
        rows: Vec<ImportRow>,
        source: &ImportSource,
        now: i64,
    ) -> Result<ImportCounts, StoreError> {
        let batch = prepare(rules, source, rows, |_| false);
        self.import_prepared(org, rules, batch, source, now).await
    }

    /// Lines of the file with this digest already imported into `org`
    /// (their timeline entries), read beside the writer: what the caller
    /// may pass to [`prepare`] so as not to work out those rows again.
    pub async fn imported_lines(
        &self,
        org: Uuid,
        file_hash: &str,
    ) -> Result<HashSet<u64>, StoreError> {
        let prefix = import_key(file_hash, 0);
        let prefix = &prefix[..prefix.len() - 10];
        // Keys of one file: from `import:<hash>:` up to, not including,
        // `import:<hash>;` (the next character after the colon).
        let hi = format!("{};", &prefix[..prefix.len() - 1]);
        let rows = crate::sql::read_rows(
            self,
            q("select event_key from timeline where org_id = $1 and event_key >= $2 and event_key < $3")
                .bind(org)
                .bind(prefix)
                .bind(hi),
        )
        .await?;
        let mut lines = HashSet::with_capacity(rows.len());
        for r in rows {
            if let Ok(line) = r.text("event_key")?[prefix.len()..].parse::<u64>() {
                lines.insert(line);
            }
        }
        Ok(lines)
    }

    /// [`crate::Store::import_rows`] for a batch [`prepare`]d elsewhere
    /// (with the same rules and source).
    ///
    /// On SQLite the batch returns once committed, and is durable once a
    /// later write commits or [`crate::Store::flush`] returns: power loss
    /// before then may undo it, and running the import again restores it.
    ///
    /// On PostgreSQL a concurrent writer can claim an identifier between the
    /// lookup and the insert; the batch then rolls back and is retried, and
    /// the retry sees that identifier as known.
    pub async fn import_prepared(
        &self,
        org: Uuid,
        rules: &IdentityRules,
        batch: PreparedBatch,
        source: &ImportSource,
        now: i64,
    ) -> Result<ImportCounts, StoreError> {
        rules
            .validate()
            .map_err(|e| StoreError::Other(format!("invalid identity rules: {e}")))?;
        let batch = Arc::new(batch);
        let mut attempt = 0;
        loop {
            let (rules_c, batch_c, src_c) = (rules.clone(), batch.clone(), source.clone());
            let started = std::time::Instant::now();
            let r = bulk_db!(self, |db| import_atomic(
                db, org, &rules_c, &batch_c, &src_c, now
            ));
            tracing::debug!(
                rows = batch.len(),
                ms = started.elapsed().as_millis() as u64,
                ok = r.is_ok(),
                "import batch"
            );
            match r {
                Err(StoreError::Conflict(_)) if attempt < 4 => attempt += 1,
                other => return other,
            }
        }
    }
}
