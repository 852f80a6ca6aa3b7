//! The input of the fast batch engine ([`super::batch::partition_sorted`]):
//! rows of normalized identifiers, and those identifiers sorted in the
//! engine's visiting order.
//!
//! A million rows carry a few million identifiers. As `Vec<Vec<Identifier>>`
//! that is a few million `String`s, and hashing or comparing them dominates
//! resolution. Here parser threads each fill a [`RowsChunk`] (normalizing
//! values into one buffer per thread, no allocation per value), and
//! [`SortedIds`] sorts every occurrence of an identifier by (priority, kind,
//! value) on fixed-size keys. Equal identifiers end up adjacent: each run
//! is one distinct identifier ("node"), in the order the engine visits
//! them, with the rows that carry it right there. This replaces a hash
//! table, whose every lookup missed the cache, and a second sort of the
//! distinct identifiers.

use super::kind::{Identifier, IdentifierKind};
use super::normalize::normalize_into;
use super::rules::IdentityRules;
use crate::ValueError;

/// One identifier of a chunk: its kind (an index into the kind catalogue),
/// and where its value lies in the chunk's buffer.
#[derive(Debug, Clone, Copy)]
struct ChunkId {
    start: u32,
    len: u32,
    kind: u16,
}

/// Rows of normalized identifiers as one parser thread writes them: values
/// back to back in one buffer, no allocation per value.
#[derive(Debug, Default)]
pub struct RowsChunk {
    arena: String,
    ids: Vec<ChunkId>,
    row_ends: Vec<u32>,
}

impl RowsChunk {
    pub fn new() -> RowsChunk {
        RowsChunk::default()
    }

    /// A chunk with room for about this many rows, identifiers and bytes of
    /// values, so that a large import does not keep doubling its buffers.
    pub fn with_capacity(rows: usize, ids: usize, bytes: usize) -> RowsChunk {
        RowsChunk {
            arena: String::with_capacity(bytes),
            ids: Vec::with_capacity(ids),
            row_ends: Vec::with_capacity(rows),
        }
    }

    /// Normalizes `raw` as a `kind` (see [`normalize_into`]) and adds it to
    /// the current row; on error the row is left as it was.
    pub fn push_raw(
        &mut self,
        kind: u16,
        kinds: &[IdentifierKind],
        raw: &str,
        region: &str,
    ) -> Result<(), ValueError> {
        let start = self.arena.len();
        normalize_into(&kinds[kind as usize], raw, region, &mut self.arena)?;
        self.record(kind, start);
        Ok(())
    }

    /// Adds an already normalized value to the current row.
    pub fn push(&mut self, kind: u16, value: &str) {
        let start = self.arena.len();
        self.arena.push_str(value);
        self.record(kind, start);
    }

    fn record(&mut self, kind: u16, start: usize) {
        let value = &self.arena[start..];
        assert!(
            value.len() <= MAX_VALUE_BYTES,
            "identifiers are at most {MAX_VALUE_BYTES} bytes once normalized"
        );
        // Offsets are kept in 28 bits to keep the sort key small.
        assert!(
            self.arena.len() < 1 << CHUNK_SHIFT,
            "a chunk holds at most 256 MiB of values: use more chunks"
        );
        self.ids.push(ChunkId {
            start: start as u32,
            len: value.len() as u32,
            kind,
        });
    }

    /// Closes the current row (a row may have no identifier at all).
    pub fn end_row(&mut self) {
        self.row_ends.push(self.ids.len() as u32);
    }

    pub fn rows(&self) -> usize {
        self.row_ends.len()
    }

    fn value(&self, id: &ChunkId) -> &str {
        &self.arena[id.start as usize..(id.start + id.len) as usize]
    }

    /// The identifiers of row `r` as (kind number, value).
    pub fn row(&self, r: usize) -> impl Iterator<Item = (u16, &str)> {
        let start = if r == 0 {
            0
        } else {
            self.row_ends[r - 1] as usize
        };
        self.ids[start..self.row_ends[r] as usize]
            .iter()
            .map(|id| (id.kind, self.value(id)))
    }

    /// Rows of identifiers from this chunk (for the reference engine).
    pub fn to_rows(&self, kinds: &[IdentifierKind]) -> Vec<Vec<Identifier>> {
        (0..self.rows())
            .map(|r| {
                self.row(r)
                    .map(|(k, v)| Identifier::new(kinds[k as usize].clone(), v))
                    .collect()
            })
            .collect()
    }
}

/// One occurrence of an identifier, keyed for sorting (24 bytes: the sort
/// moves 1.7 million of them per million rows). `hi` holds the kind's rank
/// (16 bits) and the value's first 6 bytes; `lo` the next 7 bytes and, in
/// its low byte, the value's length (all bytes big-endian, zero-padded, so
/// that integer order is byte order up to `KEY_BYTES` bytes).
#[derive(Debug, Clone, Copy)]
struct Occ {
    hi: u64,
    lo: u64,
    row: u32,
    /// Chunk (top 4 bits) and where the value starts in the chunk's
    /// buffer: with the length in `lo`, the value is one read away, not
    /// two (grouping reads values in sorted order, all over the buffer).
    at: u32,
}

/// How many bytes of a value the key holds.
const KEY_BYTES: usize = 13;
const CHUNK_SHIFT: u32 = 28;

impl Occ {
    fn key(&self) -> (u64, u64) {
        (self.hi, self.lo)
    }

    /// Same first `KEY_BYTES` bytes (and kind).
    fn same_prefix(&self, o: &Occ) -> bool {
        self.hi == o.hi && self.lo >> 8 == o.lo >> 8
    }

    /// Longer than the key holds.
    fn long(&self) -> bool {
        self.len() > KEY_BYTES
    }

    fn len(&self) -> usize {
        (self.lo & 0xff) as usize
    }
}

/// The longest identifier a chunk holds: normalization refuses longer
/// values of every kind (e-mail addresses stop at 254 bytes, ids at 255),
/// and a sort key keeps the length in one byte.
pub const MAX_VALUE_BYTES: usize = 255;

/// The value at `at` (chunk and offset, as in [`Occ`]) of `len` bytes.
fn chunk_value(chunks: &[RowsChunk], at: u32, len: usize) -> &str {
    let c = &chunks[(at >> CHUNK_SHIFT) as usize];
    let start = (at & ((1 << CHUNK_SHIFT) - 1)) as usize;
    &c.arena[start..start + len]
}

/// Sorts occurrences whose values agree on their first `from` bytes by
/// value, MSD-style: each value is read once per level into a fixed key
/// (its next 16 bytes and a length class), the keys are sorted, and only
/// groups still tied past those 16 bytes go one level deeper. Comparing
/// whole values instead would read two values (from anywhere in the input)
/// per comparison, which is what the sort otherwise spent its time on: many
/// different e-mails share their first 13 bytes (`elizabeth.mar…`).
fn sort_by_value<'v>(run: &mut [Occ], value: &impl Fn(&Occ) -> &'v str, from: usize) {
    let mut keyed: Vec<(u128, u8, Occ)> = run
        .iter()
        .map(|o| {
            let v = value(o).as_bytes();
            let tail = &v[from.min(v.len())..];
            let mut b = [0u8; 16];
            let m = tail.len().min(16);
            b[..m].copy_from_slice(&tail[..m]);
            (u128::from_be_bytes(b), tail.len().min(17) as u8, *o)
        })
        .collect();
    // Zero padding and the length class after the bytes keep value order,
    // as for the main key.
    keyed.sort_unstable_by_key(|&(k, c, _)| (k, c));
    for (slot, (_, _, o)) in run.iter_mut().zip(&keyed) {
        *slot = *o;
    }
    let mut i = 0;
    while i < keyed.len() {
        let mut j = i + 1;
        while j < keyed.len() && keyed[j].0 == keyed[i].0 {
            j += 1;
        }
        if j - i > 1 && keyed[i..j].iter().any(|e| e.1 > 16) {
            sort_by_value(&mut run[i..j], value, from + 16);
        }
        i = j;
    }
}

/// Every identifier occurrence of some rows, sorted by (priority
/// descending, kind, value) — the order of
/// [`IdentityRules::order_key`] — and grouped into distinct identifiers.
#[derive(Debug)]
pub struct SortedIds<'a> {
    chunks: &'a [RowsChunk],
    kinds: Vec<IdentifierKind>,
    /// The priority of each kind when sorted: the order is valid only for
    /// rules with the same priorities.
    priorities: Vec<u32>,
    rows: usize,
    /// Node `n` is carried by `occ_rows[node_start[n]..node_start[n + 1]]`.
    node_start: Vec<u32>,
    occ_rows: Vec<u32>,
    node_kind: Vec<u16>,
    /// Where one occurrence of each node lies (its value), and its length.
    node_at: Vec<(u32, u8)>,
}

/// Per grouping thread: node starts, kinds, value locations.
type Nodes = (Vec<u32>, Vec<u16>, Vec<(u32, u8)>);

impl<'a> SortedIds<'a> {
    /// Sorts the identifiers of `chunks` (rows in chunk order) for `rules`,
    /// on `threads` threads. `kinds` is the catalogue the chunks' kind
    /// numbers index; its kinds must be distinct.
    pub fn build(
        rules: &IdentityRules,
        kinds: Vec<IdentifierKind>,
        chunks: &'a [RowsChunk],
        threads: usize,
    ) -> SortedIds<'a> {
        for (i, k) in kinds.iter().enumerate() {
            assert!(
                !kinds[..i].contains(k),
                "kind {k} appears twice in the catalogue"
            );
        }
        assert!(kinds.len() < u16::MAX as usize);
        assert!(chunks.len() <= 1 << (32 - CHUNK_SHIFT), "at most 16 chunks");
        let priorities: Vec<u32> = kinds.iter().map(|k| rules.rule(k).priority).collect();
        // Rank of each kind number in (priority descending, kind) order.
        let mut by_rank: Vec<usize> = (0..kinds.len()).collect();
        by_rank.sort_by(|&a, &b| {
            (std::cmp::Reverse(priorities[a]), &kinds[a])
                .cmp(&(std::cmp::Reverse(priorities[b]), &kinds[b]))
        });
        let mut rank = vec![0u64; kinds.len()];
        for (r, &kind) in by_rank.iter().enumerate() {
            rank[kind] = r as u64;
        }
        let mut row_base = Vec::with_capacity(chunks.len());
        let mut rows = 0usize;
        for c in chunks {
            row_base.push(rows as u32);
            rows += c.rows();
        }
        assert!(rows < u32::MAX as usize);

        // Keys per chunk, each chunk sorted on its own thread, then merged.
        let key_and_sort = |ci: usize| -> Vec<Occ> {
            // `RowsChunk::record` keeps every offset within CHUNK_SHIFT bits.
            let c = &chunks[ci];
            let mut v = Vec::with_capacity(c.ids.len());
            let mut row = row_base[ci];
            let mut next_end = 0;
            for (i, id) in c.ids.iter().enumerate() {
                while c.row_ends[next_end] as usize <= i {
                    next_end += 1;
                    row += 1;
                }
                // The value's first KEY_BYTES bytes, zero-padded, then its
                // length: as one big-endian integer, read in one load where
                // the arena holds 16 bytes from the value's start (the
                // bytes past the value are masked off). Assembling it from
                // a byte copy made the load wait on the stores: the
                // hottest instruction of the keying in perf.
                let len = id.len as usize;
                let m = len.min(KEY_BYTES);
                let at = id.start as usize;
                let head = match c.arena.as_bytes().get(at..at + 16) {
                    Some(w) => {
                        let w = u128::from_be_bytes(w.try_into().expect("16 bytes"));
                        // Keep the top m bytes (m <= 13, so the shift is < 128).
                        w & !(u128::MAX >> (8 * m))
                    }
                    None => {
                        let mut b = [0u8; 16];
                        b[..m].copy_from_slice(&c.arena.as_bytes()[at..at + m]);
                        u128::from_be_bytes(b)
                    }
                };
                let head = head | ((len as u128) << (8 * (15 - KEY_BYTES)));
                v.push(Occ {
                    hi: rank[id.kind as usize] << 48 | (head >> 80) as u64,
                    lo: (head >> 16) as u64,
                    row,
                    at: (ci as u32) << CHUNK_SHIFT | id.start,
                });
            }
            v.sort_unstable_by_key(Occ::key);
            v
        };
        let runs: Vec<Vec<Occ>> = if chunks.len() <= 1 || threads <= 1 {
            (0..chunks.len()).map(key_and_sort).collect()
        } else {
            std::thread::scope(|scope| {
                let hs: Vec<_> = (0..chunks.len())
                    .map(|ci| scope.spawn(move || key_and_sort(ci)))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("sorting thread panicked"))
                    .collect()
            })
        };
        // Group into nodes. Equal keys with values of at most KEY_BYTES are
        // equal values; and with equal KEY_BYTES prefixes, a value of at most
        // KEY_BYTES is a prefix of a longer one (its padding zeros are the
        // other's bytes), so (prefix, length) order is value order there.
        // Only a run of equal prefixes holding a longer value must look at
        // whole values: usually it is one identifier repeated (same length,
        // checked), otherwise it is sorted by value and split.
        let value = |o: &Occ| -> &str { chunk_value(chunks, o.at, o.len()) };
        let group = |occ: &mut [Occ], base: usize| -> Nodes {
            let n = occ.len();
            // At most one node per occurrence: reserved once, since growing
            // them copied and faulted in fresh memory again and again.
            let (mut starts, mut node_kind, mut node_at) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let same_len = |occ: &[Occ]| occ.iter().all(|o| o.len() == occ[0].len());
            let mut i = 0;
            while i < n {
                let mut j = i + 1;
                while j < n && occ[j].same_prefix(&occ[i]) {
                    j += 1;
                }
                let long = j - i > 1 && occ[i..j].iter().any(Occ::long);
                let one = long && same_len(&occ[i..j]) && {
                    let first = value(&occ[i]);
                    occ[i + 1..j].iter().all(|o| value(o) == first)
                };
                if long && !one {
                    sort_by_value(&mut occ[i..j], &value, KEY_BYTES);
                }
                for k in i..j {
                    let new_node = k == i
                        || if one {
                            false
                        } else if long {
                            value(&occ[k]) != value(&occ[k - 1])
                        } else {
                            occ[k].lo != occ[k - 1].lo
                        };
                    if new_node {
                        starts.push((base + k) as u32);
                        node_kind.push(by_rank[(occ[k].hi >> 48) as usize] as u16);
                        node_at.push((occ[k].at, occ[k].len() as u8));
                    }
                }
                i = j;
            }
            (starts, node_kind, node_at)
        };
        // Merge and group on all threads at once: splitters (prefixes taken
        // at quantiles of the largest run) cut every run into key ranges;
        // a prefix never straddles two ranges, so each thread merges its
        // range of every run and groups it on its own.
        let prefix = |o: &Occ| (o.hi, o.lo >> 8);
        let parts = threads.clamp(1, 16);
        let largest = runs
            .iter()
            .max_by_key(|r| r.len())
            .map_or(&[][..], |r| &r[..]);
        let mut bounds: Vec<Vec<usize>> = runs.iter().map(|_| vec![0]).collect();
        for p in 1..parts {
            if largest.is_empty() {
                break;
            }
            let splitter = prefix(&largest[largest.len() * p / parts]);
            for (r, run) in runs.iter().enumerate() {
                let at = run.partition_point(|o| prefix(o) < splitter);
                bounds[r].push(at);
            }
        }
        for (r, run) in runs.iter().enumerate() {
            bounds[r].push(run.len());
        }
        let ranges = bounds.first().map_or(0, |b| b.len() - 1);
        let mut base = vec![0usize; ranges + 1];
        for p in 0..ranges {
            base[p + 1] = base[p] + bounds.iter().map(|b| b[p + 1] - b[p]).sum::<usize>();
        }
        let merge_and_group = |p: usize| -> (Nodes, Vec<u32>) {
            let merge = |a: &[Occ], b: &[Occ]| -> Vec<Occ> {
                let mut out = Vec::with_capacity(a.len() + b.len());
                let (mut i, mut j) = (0, 0);
                while i < a.len() && j < b.len() {
                    if a[i].key() <= b[j].key() {
                        out.push(a[i]);
                        i += 1;
                    } else {
                        out.push(b[j]);
                        j += 1;
                    }
                }
                out.extend_from_slice(&a[i..]);
                out.extend_from_slice(&b[j..]);
                out
            };
            let pieces: Vec<&[Occ]> = runs
                .iter()
                .enumerate()
                .map(|(r, run)| &run[bounds[r][p]..bounds[r][p + 1]])
                .collect();
            // The first two pieces merge straight from the runs: copying
            // the first one out beforehand moved every occurrence twice.
            let mut merged: Vec<Occ> = match pieces[..] {
                [] => Vec::new(),
                [one] => one.to_vec(),
                [a, b, ..] => merge(a, b),
            };
            for piece in pieces.iter().skip(2) {
                merged = merge(&merged, piece);
            }
            let nodes = group(&mut merged, base[p]);
            (nodes, merged.iter().map(|o| o.row).collect())
        };
        let grouped: Vec<(Nodes, Vec<u32>)> = if ranges <= 1 {
            (0..ranges).map(merge_and_group).collect()
        } else {
            std::thread::scope(|scope| {
                let hs: Vec<_> = (0..ranges)
                    .map(|p| scope.spawn(move || merge_and_group(p)))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("grouping thread panicked"))
                    .collect()
            })
        };
        drop(runs);
        let n = base[ranges];
        let nodes: usize = grouped.iter().map(|((s, _, _), _)| s.len()).sum();
        let mut node_start = Vec::with_capacity(nodes + 1);
        let mut node_kind = Vec::with_capacity(nodes);
        let mut node_at = Vec::with_capacity(nodes);
        let mut occ_rows = Vec::with_capacity(n);
        for ((s, k, a), rows) in grouped {
            node_start.extend(s);
            node_kind.extend(k);
            node_at.extend(a);
            occ_rows.extend(rows);
        }
        node_start.push(n as u32);
        SortedIds {
            chunks,
            kinds,
            priorities,
            rows,
            node_start,
            occ_rows,
            node_kind,
            node_at,
        }
    }

    pub fn kinds(&self) -> &[IdentifierKind] {
        &self.kinds
    }

    /// Whether `rules` order identifiers as these were sorted.
    pub fn sorted_for(&self, rules: &IdentityRules) -> bool {
        self.kinds
            .iter()
            .zip(&self.priorities)
            .all(|(k, p)| rules.rule(k).priority == *p)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Distinct identifiers.
    pub fn nodes(&self) -> usize {
        self.node_kind.len()
    }

    /// Identifiers over all rows (with repeats).
    pub fn occurrences(&self) -> usize {
        self.occ_rows.len()
    }

    /// The rows carrying node `n` (nodes are numbered in visiting order).
    pub fn carriers(&self, n: usize) -> &[u32] {
        &self.occ_rows[self.node_start[n] as usize..self.node_start[n + 1] as usize]
    }

    /// Where the carriers of every node start in [`SortedIds::all_carriers`].
    pub fn carrier_starts(&self) -> &[u32] {
        &self.node_start
    }

    pub fn all_carriers(&self) -> &[u32] {
        &self.occ_rows
    }

    /// The kind number (index into [`SortedIds::kinds`]) of a node.
    pub fn kind_of(&self, n: usize) -> u16 {
        self.node_kind[n]
    }

    /// The node of `kind` and `value`, if some row carries it: a binary
    /// search, since nodes are in (priority, kind, value) order.
    pub fn find(&self, kind: &IdentifierKind, value: &str) -> Option<usize> {
        let k = self.kinds.iter().position(|x| x == kind)?;
        let key = |n: usize| {
            let kn = self.kind_of(n) as usize;
            (
                std::cmp::Reverse(self.priorities[kn]),
                &self.kinds[kn],
                self.value(n),
            )
        };
        let target = (std::cmp::Reverse(self.priorities[k]), kind, value);
        let (mut lo, mut hi) = (0, self.nodes());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(mid) < target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo < self.nodes() && key(lo) == target).then_some(lo)
    }

    pub fn value(&self, n: usize) -> &'a str {
        let (at, len) = self.node_at[n];
        chunk_value(self.chunks, at, len as usize)
    }

    pub fn identifier(&self, n: usize) -> Identifier {
        Identifier::new(self.kinds[self.kind_of(n) as usize].clone(), self.value(n))
    }
}

/// Rows of identifiers as one chunk, with the kinds catalogued in order of
/// first appearance (for tests and small inputs).
pub fn chunk_rows(rows: &[Vec<Identifier>]) -> (Vec<IdentifierKind>, RowsChunk) {
    let mut kinds: Vec<IdentifierKind> = Vec::new();
    let mut chunk = RowsChunk::new();
    for row in rows {
        for id in row {
            let k = match kinds.iter().position(|k| *k == id.kind) {
                Some(k) => k,
                None => {
                    kinds.push(id.kind.clone());
                    kinds.len() - 1
                }
            };
            chunk.push(k as u16, &id.value);
        }
        chunk.end_row();
    }
    (kinds, chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use IdentifierKind::*;

    fn arb_rows() -> impl Strategy<Value = Vec<Vec<Identifier>>> {
        let ident = (0usize..4, 0u8..30, 0usize..4).prop_map(|(k, v, pad)| {
            let kind = [Email, Phone, ShopifyCustomerId, Custom("loyalty".into())][k].clone();
            // Values around the 13-byte key and the 16-byte refinement
            // levels: equal prefixes, longer tails.
            Identifier::new(kind, format!("{}v{v}", "x".repeat(pad * 11)))
        });
        proptest::collection::vec(proptest::collection::vec(ident, 0..4), 0..60)
    }

    proptest! {
        #[test]
        fn sorted_nodes_are_the_distinct_identifiers_in_order(rows in arb_rows(), threads in 1usize..4, split in 0usize..60) {
            let rules = IdentityRules::default();
            let (kinds, one) = chunk_rows(&rows);
            // The same rows cut into two chunks.
            let split = split.min(rows.len());
            let mut chunks = vec![RowsChunk::new(), RowsChunk::new()];
            for (i, row) in rows.iter().enumerate() {
                let c = &mut chunks[usize::from(i >= split)];
                for id in row {
                    let k = kinds.iter().position(|k| *k == id.kind).unwrap();
                    c.push(k as u16, &id.value);
                }
                c.end_row();
            }
            for (s, chunks) in [
                (SortedIds::build(&rules, kinds.clone(), std::slice::from_ref(&one), threads), 1),
                (SortedIds::build(&rules, kinds.clone(), &chunks, threads), 2),
            ] {
                let _ = chunks;
                // Nodes: every distinct identifier once, in the reference order.
                let mut expected: Vec<&Identifier> = rows.iter().flatten().collect();
                expected.sort_by(|a, b| rules.order_key(a).cmp(&rules.order_key(b)));
                expected.dedup();
                let got: Vec<Identifier> = (0..s.nodes()).map(|n| s.identifier(n)).collect();
                prop_assert_eq!(got.iter().collect::<Vec<_>>(), expected);
                // Carriers: exactly the rows holding each identifier.
                for n in 0..s.nodes() {
                    let id = s.identifier(n);
                    let mut carriers = s.carriers(n).to_vec();
                    carriers.sort_unstable();
                    let want: Vec<u32> = rows.iter().enumerate().flat_map(|(r, row)| {
                        row.iter().filter(|i| **i == id).map(move |_| r as u32)
                    }).collect();
                    prop_assert_eq!(carriers, want);
                }
                prop_assert_eq!(s.rows(), rows.len());
            }
        }
    }

    #[test]
    fn long_values_with_long_common_prefixes_sort_by_value() {
        let long = "x".repeat(40);
        let values = ["v3", "v12", "v20", "v1", "w", "v3", "", "v12x"];
        let rows: Vec<Vec<Identifier>> = values
            .iter()
            .map(|v| vec![Identifier::new(Email, format!("{long}{v}"))])
            .collect();
        let (kinds, chunk) = chunk_rows(&rows);
        let chunks = [chunk];
        let s = SortedIds::build(&IdentityRules::default(), kinds, &chunks, 1);
        let got: Vec<String> = (0..s.nodes())
            .map(|n| s.value(n)[40..].to_string())
            .collect();
        assert_eq!(got, ["", "v1", "v12", "v12x", "v20", "v3", "w"]);
    }

    #[test]
    fn no_rows_no_nodes() {
        let s = SortedIds::build(&IdentityRules::default(), vec![Email], &[], 2);
        assert_eq!((s.rows(), s.nodes(), s.occurrences()), (0, 0, 0));
        let chunks = [RowsChunk::new(), RowsChunk::new()];
        let s = SortedIds::build(&IdentityRules::default(), vec![Email], &chunks, 2);
        assert_eq!((s.rows(), s.nodes()), (0, 0));
    }

    #[test]
    fn find_locates_every_node_and_nothing_else() {
        let rows: Vec<Vec<Identifier>> = (0..50)
            .map(|i| {
                vec![
                    Identifier::new(Email, format!("{}{i}@x.com", "a".repeat(i % 20))),
                    Identifier::new(Phone, format!("+1415555{:04}", i % 7)),
                ]
            })
            .collect();
        let (kinds, chunk) = chunk_rows(&rows);
        let chunks = [chunk];
        let s = SortedIds::build(&IdentityRules::default(), kinds, &chunks, 2);
        for n in 0..s.nodes() {
            let id = s.identifier(n);
            assert_eq!(s.find(&id.kind, &id.value), Some(n));
        }
        assert_eq!(s.find(&Email, "nobody@x.com"), None);
        assert_eq!(s.find(&ShopifyCustomerId, "1"), None);
    }

    #[test]
    fn raw_values_are_normalized_and_rejects_leave_the_row_alone() {
        let kinds = vec![Email, Phone];
        let mut c = RowsChunk::new();
        c.push_raw(0, &kinds, " Ann@Example.COM ", "US").unwrap();
        assert!(c.push_raw(1, &kinds, "call me", "US").is_err());
        c.push_raw(1, &kinds, "(415) 555-2671", "US").unwrap();
        c.end_row();
        assert_eq!(
            c.to_rows(&kinds),
            vec![vec![
                Identifier::new(Email, "ann@example.com"),
                Identifier::new(Phone, "+14155552671")
            ]]
        );
    }
}
