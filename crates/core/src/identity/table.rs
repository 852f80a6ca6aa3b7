//! Interned identifier tables: the input of the fast batch engine
//! ([`super::batch::partition_table`]).
//!
//! A million rows carry a few million identifiers. As `Vec<Vec<Identifier>>`
//! that is a few million `String`s, and comparing or hashing them dominates
//! resolution. Here every value lives in one buffer, every distinct
//! identifier (kind and value) is a dense `u32` node, and a row is a slice of
//! nodes.
//!
//! Building is parallel without locks: parser threads each fill a
//! [`RowsChunk`] (normalizing into the chunk's buffer and hashing each value
//! once), then interning splits the identifiers by hash into one shard per
//! thread, so each thread owns its hash table outright. Node numbers depend
//! on the thread count; the partition computed from them does not (it orders
//! identifiers by kind and value, never by node number).

use super::kind::{Identifier, IdentifierKind};
use super::normalize::normalize_into;
use crate::ValueError;
use rustc_hash::FxHasher;
use std::hash::Hasher;

/// One identifier of a chunk: its kind (an index into the kind catalogue),
/// where its value lies in the chunk's buffer, and its hash.
#[derive(Debug, Clone, Copy)]
struct ChunkId {
    hash: u64,
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

fn hash(kind: u16, value: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write_u16(kind);
    h.write(value.as_bytes());
    h.finish()
}

impl RowsChunk {
    pub fn new() -> RowsChunk {
        RowsChunk::default()
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
        // Offsets are u32 to keep the per-identifier record small.
        assert!(
            self.arena.len() <= u32::MAX as usize,
            "a chunk holds at most 4 GiB of values: use more chunks"
        );
        self.ids.push(ChunkId {
            hash: hash(kind, value),
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
}

/// Distinct identifiers as dense nodes, and rows as slices of nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTable {
    kinds: Vec<IdentifierKind>,
    node_kind: Vec<u16>,
    /// `(start, end)` of each node's value in `arena`.
    node_span: Vec<(u32, u32)>,
    arena: String,
    /// Row `r` is `row_nodes[row_start[r]..row_start[r + 1]]`.
    row_start: Vec<u32>,
    row_nodes: Vec<u32>,
}

/// One thread's share of the interning: the identifiers whose hash falls in
/// its shard.
struct Shard {
    node_kind: Vec<u16>,
    node_span: Vec<(u32, u32)>,
    arena: String,
    /// The shard-local node of each of its identifiers, in input order.
    local: Vec<u32>,
}

/// Which shard a hash belongs to: from the high half, so that the low bits
/// (the hash table's slots) stay spread within a shard.
fn shard_of(hash: u64, shards: usize) -> usize {
    (((hash >> 32) * shards as u64) >> 32) as usize
}

fn intern_shard(chunks: &[RowsChunk], shard: usize, shards: usize) -> Shard {
    let mine: Vec<(&RowsChunk, &ChunkId)> = chunks
        .iter()
        .flat_map(|c| c.ids.iter().map(move |id| (c, id)))
        .filter(|(_, id)| shard_of(id.hash, shards) == shard)
        .collect();
    // Open addressing, linear probing. A slot holds the hash's high half (a
    // fingerprint that spares most string comparisons) and node + 1 (0 is
    // empty); at most half full.
    let cap = (mine.len() * 2).next_power_of_two().max(16);
    let mask = cap - 1;
    let mut slots = vec![0u64; cap];
    let mut s = Shard {
        node_kind: Vec::new(),
        node_span: Vec::new(),
        arena: String::new(),
        local: Vec::with_capacity(mine.len()),
    };
    // Every lookup misses the cache (the table is tens of MB) and a hit then
    // misses again on the node's value. Lookups are independent, so touch
    // the slot of the identifier AHEAD places on, and the value that slot
    // points to half as far on: by the time the loop gets there both are in
    // cache. (`black_box` keeps the loads the optimizer would drop.)
    const AHEAD: usize = 16;
    for i in 0..mine.len() {
        if let Some((_, id)) = mine.get(i + AHEAD) {
            std::hint::black_box(slots[id.hash as usize & mask]);
        }
        if let Some((_, id)) = mine.get(i + AHEAD / 2) {
            let slot = slots[id.hash as usize & mask];
            if slot != 0 && slot >> 32 == id.hash >> 32 {
                let node = (slot as u32 - 1) as usize;
                if let Some(&(a, _)) = s.node_span.get(node) {
                    std::hint::black_box(s.arena.as_bytes().get(a as usize));
                }
            }
        }
        let (c, id) = mine[i];
        let value = c.value(id);
        let fp = id.hash >> 32;
        let mut j = id.hash as usize & mask;
        let node = loop {
            let slot = slots[j];
            if slot == 0 {
                let node = s.node_kind.len() as u32;
                let start = s.arena.len() as u32;
                s.arena.push_str(value);
                s.node_kind.push(id.kind);
                s.node_span.push((start, s.arena.len() as u32));
                slots[j] = fp << 32 | (node as u64 + 1);
                break node;
            }
            if slot >> 32 == fp {
                let node = (slot as u32) - 1;
                let (a, b) = s.node_span[node as usize];
                if s.node_kind[node as usize] == id.kind
                    && &s.arena[a as usize..b as usize] == value
                {
                    break node;
                }
            }
            j = (j + 1) & mask;
        };
        s.local.push(node);
    }
    s
}

impl IdTable {
    /// Interns `chunks` (rows in chunk order) on `threads` threads. `kinds`
    /// is the catalogue the chunks' kind numbers index; its kinds must be
    /// distinct.
    pub fn intern(kinds: Vec<IdentifierKind>, chunks: &[RowsChunk], threads: usize) -> IdTable {
        for (i, k) in kinds.iter().enumerate() {
            assert!(
                !kinds[..i].contains(k),
                "kind {k} appears twice in the catalogue"
            );
        }
        assert!(kinds.len() <= u16::MAX as usize);
        let shards = threads.max(1);
        let parts: Vec<Shard> = if shards == 1 {
            vec![intern_shard(chunks, 0, 1)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..shards)
                    .map(|s| scope.spawn(move || intern_shard(chunks, s, shards)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("interning thread panicked"))
                    .collect()
            })
        };

        // Concatenate the shards: shard s's nodes come after shard s-1's.
        let mut base = Vec::with_capacity(shards);
        let mut t = IdTable {
            kinds,
            node_kind: Vec::new(),
            node_span: Vec::new(),
            arena: String::new(),
            row_start: Vec::new(),
            row_nodes: Vec::new(),
        };
        let nodes: usize = parts.iter().map(|p| p.node_kind.len()).sum();
        let bytes: usize = parts.iter().map(|p| p.arena.len()).sum();
        assert!(
            nodes < u32::MAX as usize && bytes <= u32::MAX as usize,
            "at most 4 billion identifiers and 4 GiB of values"
        );
        t.node_kind.reserve(nodes);
        t.node_span.reserve(nodes);
        t.arena.reserve(bytes);
        for p in &parts {
            base.push(t.node_kind.len() as u32);
            let off = t.arena.len() as u32;
            t.arena.push_str(&p.arena);
            t.node_kind.extend_from_slice(&p.node_kind);
            t.node_span
                .extend(p.node_span.iter().map(|&(a, b)| (a + off, b + off)));
        }

        // Rows: each identifier's node, taken from its shard in input order.
        let total: usize = chunks.iter().map(|c| c.ids.len()).sum();
        let rows: usize = chunks.iter().map(RowsChunk::rows).sum();
        t.row_nodes.reserve(total);
        t.row_start.reserve(rows + 1);
        t.row_start.push(0);
        let mut cursor = vec![0usize; shards];
        for c in chunks {
            let offset = t.row_nodes.len() as u32;
            for id in &c.ids {
                let s = shard_of(id.hash, shards);
                t.row_nodes.push(base[s] + parts[s].local[cursor[s]]);
                cursor[s] += 1;
            }
            t.row_start.extend(c.row_ends.iter().map(|e| offset + e));
        }
        t
    }

    /// Interns rows of identifiers (kinds catalogued in order of first
    /// appearance), on one thread.
    pub fn from_rows(rows: &[Vec<Identifier>]) -> IdTable {
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
        IdTable::intern(kinds, std::slice::from_ref(&chunk), 1)
    }

    pub fn kinds(&self) -> &[IdentifierKind] {
        &self.kinds
    }

    pub fn rows(&self) -> usize {
        self.row_start.len() - 1
    }

    /// Distinct identifiers.
    pub fn nodes(&self) -> usize {
        self.node_kind.len()
    }

    /// Identifiers over all rows (with repeats).
    pub fn occurrences(&self) -> usize {
        self.row_nodes.len()
    }

    /// The nodes of row `r`.
    pub fn row(&self, r: usize) -> &[u32] {
        &self.row_nodes[self.row_start[r] as usize..self.row_start[r + 1] as usize]
    }

    /// The kind number (index into [`IdTable::kinds`]) of a node.
    pub fn kind_of(&self, node: u32) -> u16 {
        self.node_kind[node as usize]
    }

    pub fn value(&self, node: u32) -> &str {
        let (a, b) = self.node_span[node as usize];
        &self.arena[a as usize..b as usize]
    }

    pub fn identifier(&self, node: u32) -> Identifier {
        Identifier::new(
            self.kinds[self.kind_of(node) as usize].clone(),
            self.value(node),
        )
    }

    /// Back to rows of identifiers (for the reference engine).
    pub fn to_rows(&self) -> Vec<Vec<Identifier>> {
        (0..self.rows())
            .map(|r| self.row(r).iter().map(|&n| self.identifier(n)).collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use IdentifierKind::*;

    fn arb_rows() -> impl Strategy<Value = Vec<Vec<Identifier>>> {
        let ident = (0usize..4, 0u8..30).prop_map(|(k, v)| {
            let kind = [Email, Phone, ShopifyCustomerId, Custom("loyalty".into())][k].clone();
            Identifier::new(kind, format!("v{v}"))
        });
        proptest::collection::vec(proptest::collection::vec(ident, 0..4), 0..60)
    }

    proptest! {
        #[test]
        fn interning_keeps_rows_whatever_the_threads(rows in arb_rows(), threads in 1usize..4, split in 0usize..60) {
            let t = IdTable::from_rows(&rows);
            prop_assert_eq!(t.to_rows(), rows.clone());
            // The same rows cut into two chunks, interned on several threads.
            let split = split.min(rows.len());
            let mut chunks = vec![RowsChunk::new(), RowsChunk::new()];
            for (i, row) in rows.iter().enumerate() {
                let c = &mut chunks[usize::from(i >= split)];
                for id in row {
                    let k = t.kinds().iter().position(|k| *k == id.kind).unwrap();
                    c.push(k as u16, &id.value);
                }
                c.end_row();
            }
            let p = IdTable::intern(t.kinds().to_vec(), &chunks, threads);
            prop_assert_eq!(p.to_rows(), rows.clone());
            prop_assert_eq!(p.nodes(), t.nodes());
            let distinct: std::collections::BTreeSet<&Identifier> = rows.iter().flatten().collect();
            prop_assert_eq!(p.nodes(), distinct.len());
        }
    }

    #[test]
    fn raw_values_are_normalized_and_rejects_leave_the_row_alone() {
        let kinds = vec![Email, Phone];
        let mut c = RowsChunk::new();
        c.push_raw(0, &kinds, " Ann@Example.COM ", "US").unwrap();
        assert!(c.push_raw(1, &kinds, "call me", "US").is_err());
        c.push_raw(1, &kinds, "(415) 555-2671", "US").unwrap();
        c.end_row();
        let t = IdTable::intern(kinds, &[c], 2);
        assert_eq!(
            t.to_rows(),
            vec![vec![
                Identifier::new(Email, "ann@example.com"),
                Identifier::new(Phone, "+14155552671")
            ]]
        );
    }
}
