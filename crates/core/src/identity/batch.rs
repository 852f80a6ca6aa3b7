//! The batch resolution engine: a whole set of rows (each a list of
//! normalized identifiers) into a partition of rows into people, in memory,
//! as entity-resolution tools compute it.
//!
//! Identifiers are processed in a total order that depends only on the
//! identifiers themselves (priority, then kind, then value), never on row
//! order, so the same rows in any order give the same partition. An
//! identifier joins the clusters of all rows carrying it only if the joined
//! cluster stays within every per-kind limit; otherwise it is dropped (it
//! links nothing). With limits off this is exactly the transitive closure.
//!
//! [`partition`] is the reference, written to be read; [`partition_sorted`]
//! computes the same partition (property-tested) over identifiers sorted by
//! [`SortedIds`], fast enough for a million rows in a fraction of a second.
//! Decision record: `docs/decisions/0005-resolution-engine.md`.

use super::kind::{Identifier, IdentifierKind};
use super::rules::{IdentityRules, KindRule};
use super::table::SortedIds;
use rustc_hash::FxHashMap;

/// The partition: `cluster[row]` is a dense cluster number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub cluster: Vec<u32>,
    pub clusters: usize,
    /// Identifiers dropped because of a limit or the blocklist: they link nothing.
    pub dropped: Vec<Identifier>,
}

struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    /// Joins two roots; returns (new root, absorbed root).
    fn union_roots(&mut self, a: u32, b: u32) -> (u32, u32) {
        let (big, small) = if self.size[a as usize] >= self.size[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
        (big, small)
    }
}

/// Resolves `rows` under `rules`. Row identifiers must be normalized.
pub fn partition(rules: &IdentityRules, rows: &[Vec<Identifier>]) -> Partition {
    // Intern identifiers and collect the rows that carry each.
    let mut index: FxHashMap<&Identifier, u32> = FxHashMap::default();
    let mut nodes: Vec<&Identifier> = Vec::new();
    let mut carriers: Vec<Vec<u32>> = Vec::new();
    for (r, ids) in rows.iter().enumerate() {
        for id in ids {
            let n = *index.entry(id).or_insert_with(|| {
                nodes.push(id);
                carriers.push(Vec::new());
                (nodes.len() - 1) as u32
            });
            let c = &mut carriers[n as usize];
            if c.last() != Some(&(r as u32)) {
                c.push(r as u32);
            }
        }
    }
    let mut order: Vec<u32> = (0..nodes.len() as u32).collect();
    order.sort_unstable_by(|a, b| {
        rules
            .order_key(nodes[*a as usize])
            .cmp(&rules.order_key(nodes[*b as usize]))
    });

    let limited = rules.kinds.values().any(|r| r.max_per_profile != u32::MAX)
        || rules.custom_default.max_per_profile != u32::MAX
        || !rules.blocklist.is_empty();
    let mut uf = UnionFind::new(rows.len());
    // Per cluster root: the identifiers it holds (only tracked when limits apply).
    let mut held: Vec<Vec<u32>> = if limited {
        vec![Vec::new(); rows.len()]
    } else {
        Vec::new()
    };
    let mut dropped: Vec<Identifier> = Vec::new();
    let mut roots: Vec<u32> = Vec::new();
    for n in order {
        let id = nodes[n as usize];
        let rs = &carriers[n as usize];
        if !limited {
            let mut acc = uf.find(rs[0]);
            for &r in &rs[1..] {
                let b = uf.find(r);
                if b != acc {
                    acc = uf.union_roots(acc, b).0;
                }
            }
            continue;
        }
        if rules.blocked(id) {
            dropped.push(id.clone());
            continue;
        }
        roots.clear();
        for &r in rs {
            let root = uf.find(r);
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        if within_limits(rules, &nodes, &held, &roots, n) {
            let mut acc = roots[0];
            for &other in &roots[1..] {
                let (keep, gone) = uf.union_roots(acc, other);
                let moved = std::mem::take(&mut held[gone as usize]);
                held[keep as usize].extend(moved);
                acc = keep;
            }
            held[acc as usize].push(n);
        } else {
            dropped.push(id.clone());
        }
    }
    // Dense cluster numbers in row order.
    let mut dense: FxHashMap<u32, u32> = FxHashMap::default();
    let mut cluster = Vec::with_capacity(rows.len());
    for r in 0..rows.len() as u32 {
        let root = uf.find(r);
        let next = dense.len() as u32;
        cluster.push(*dense.entry(root).or_insert(next));
    }
    Partition {
        clusters: dense.len(),
        cluster,
        dropped,
    }
}

fn within_limits(
    rules: &IdentityRules,
    nodes: &[&Identifier],
    held: &[Vec<u32>],
    roots: &[u32],
    new: u32,
) -> bool {
    let mut counts: FxHashMap<&IdentifierKind, u32> = FxHashMap::default();
    let new_id = nodes[new as usize];
    *counts.entry(&new_id.kind).or_default() += 1;
    for &root in roots {
        for &n in &held[root as usize] {
            if n != new {
                *counts.entry(&nodes[n as usize].kind).or_default() += 1;
            }
        }
    }
    counts
        .iter()
        .all(|(k, c)| *c as u64 <= rules.rule(k).max_per_profile as u64)
}

/// The same partition as [`partition`] (property-tested), over identifiers
/// already sorted in visiting order ([`SortedIds`]), for a million rows in a
/// fraction of a second.
///
/// Why it is faster: the sort did the work of interning and ordering (each
/// run of equal identifiers is one node, its rows laid out in visiting
/// order), so the sweep reads its input sequentially and touches only the
/// union-find and, for the limits, a small counter array per cluster root
/// (one byte per limited kind when the limits fit) instead of a list of
/// identifiers and a hash map per check. With no limit in force nothing is
/// counted at all.
///
/// # Panics
/// If `sorted` was sorted for rules with other priorities (the visiting
/// order would not be this rules' order).
pub fn partition_sorted(rules: &IdentityRules, sorted: &SortedIds<'_>) -> Partition {
    assert!(
        sorted.sorted_for(rules),
        "the identifiers were sorted for rules with other priorities"
    );
    let n = sorted.rows();
    let kinds = sorted.kinds();
    let k = kinds.len();
    let kind_rules: Vec<KindRule> = kinds.iter().map(|kind| rules.rule(kind)).collect();
    // The blocklisted identifiers that occur, found by binary search.
    let blocked: Vec<usize> = rules
        .blocklist
        .iter()
        .filter_map(|b| sorted.find(&b.kind, &b.value))
        .collect();
    let limited =
        kind_rules.iter().any(|r| r.max_per_profile != u32::MAX) || !rules.blocklist.is_empty();
    let mut uf = UnionFind::new(n);

    if !limited {
        // Closure: join the rows of each identifier; the order is irrelevant.
        for node in 0..sorted.nodes() {
            let rows = sorted.carriers(node);
            let mut acc = uf.find(rows[0]);
            for &r in &rows[1..] {
                let b = uf.find(r);
                if b != acc {
                    acc = uf.union_roots(acc, b).0;
                }
            }
        }
        return finish(&mut uf, Vec::new());
    }

    // Kind number per node, or u16::MAX for a blocklisted identifier.
    let mut seq_kind: Vec<u16> = (0..sorted.nodes()).map(|n| sorted.kind_of(n)).collect();
    for &n in &blocked {
        seq_kind[n] = u16::MAX;
    }

    // Counters per cluster root, only for the kinds that have a limit; one
    // byte each when every such limit fits (the usual rules: 1 to 50), which
    // keeps the counters of a million roots in a few MB of cache-friendly
    // memory, four bytes otherwise.
    let tracked: Vec<usize> = (0..k)
        .filter(|&j| kind_rules[j].max_per_profile != u32::MAX)
        .collect();
    let max: Vec<u32> = tracked
        .iter()
        .map(|&j| kind_rules[j].max_per_profile)
        .collect();
    let mut slot = vec![usize::MAX; k];
    for (t, &j) in tracked.iter().enumerate() {
        slot[j] = t;
    }
    let sweep = Sweep {
        seq_start: sorted.carrier_starts(),
        seq_rows: sorted.all_carriers(),
        seq_kind: &seq_kind,
        slot: &slot,
        max: &max,
    };
    let dropped_at = if max.len() <= 8 && max.iter().all(|&m| m < u8::MAX as u32) {
        sweep.run_packed(&mut uf)
    } else if max.iter().all(|&m| m < u8::MAX as u32) {
        sweep.run::<u8>(&mut uf)
    } else {
        sweep.run::<u32>(&mut uf)
    };
    let dropped = dropped_at
        .into_iter()
        .map(|p| sorted.identifier(p as usize))
        .collect();
    finish(&mut uf, dropped)
}

/// A per-kind counter: `u8` or `u32`.
trait Counter: Copy + Default + std::ops::AddAssign + Into<u64> {
    const ONE: Self;
}
impl Counter for u8 {
    const ONE: u8 = 1;
}
impl Counter for u32 {
    const ONE: u32 = 1;
}

/// The identifiers in visiting order (see [`partition_sorted`]).
struct Sweep<'a> {
    seq_start: &'a [u32],
    seq_rows: &'a [u32],
    seq_kind: &'a [u16],
    /// Kind number → counter slot (`usize::MAX`: the kind has no limit).
    slot: &'a [usize],
    /// Limit of each counter slot.
    max: &'a [u32],
}

impl Sweep<'_> {
    /// Joins the rows of each identifier in order, unless that would put a
    /// cluster over a limit; returns the positions of the refused ones.
    fn run<C: Counter>(&self, uf: &mut UnionFind) -> Vec<u32> {
        let t = self.max.len();
        let mut counts: Vec<C> = vec![C::default(); uf.parent.len() * t];
        let mut roots: Vec<u32> = Vec::new();
        let mut dropped = Vec::new();
        for p in 0..self.seq_kind.len() {
            let kind = self.seq_kind[p];
            if kind == u16::MAX {
                dropped.push(p as u32);
                continue;
            }
            let s = self.slot[kind as usize];
            let rows = &self.seq_rows[self.seq_start[p] as usize..self.seq_start[p + 1] as usize];
            if let [r] = rows {
                // Carried by one row (most identifiers): nothing to join,
                // only this kind's count can go over.
                if s != usize::MAX {
                    let root = uf.find(*r) as usize;
                    let c = &mut counts[root * t + s];
                    if (*c).into() + 1 > self.max[s] as u64 {
                        dropped.push(p as u32);
                    } else {
                        *c += C::ONE;
                    }
                }
                continue;
            }
            roots.clear();
            for &r in rows {
                let root = uf.find(r);
                if !roots.contains(&root) {
                    roots.push(root);
                }
            }
            let fits = (0..t).all(|j| {
                let held: u64 = roots
                    .iter()
                    .map(|&r| counts[r as usize * t + j].into())
                    .sum();
                held + u64::from(j == s) <= self.max[j] as u64
            });
            if !fits {
                dropped.push(p as u32);
                continue;
            }
            let mut acc = roots[0];
            for &other in &roots[1..] {
                let (keep, gone) = uf.union_roots(acc, other);
                for j in 0..t {
                    let g = counts[gone as usize * t + j];
                    counts[keep as usize * t + j] += g;
                }
                acc = keep;
            }
            if s != usize::MAX {
                counts[acc as usize * t + s] += C::ONE;
            }
        }
        dropped
    }
}

/// A row's union-find entry and, while the row is a root, its cluster's
/// per-kind counters, in 16 bytes: the sweep's two lookups per identifier
/// (the root, then its counters) cost one cache miss instead of two.
#[derive(Clone, Copy)]
struct Cell {
    parent: u32,
    size: u32,
    counts: [u8; 8],
}

impl Sweep<'_> {
    /// [`Sweep::run`] for at most 8 limited kinds whose limits fit a byte
    /// (the usual rules), on packed cells; same joins, same drops.
    fn run_packed(&self, uf: &mut UnionFind) -> Vec<u32> {
        fn find(cells: &mut [Cell], mut x: u32) -> u32 {
            while cells[x as usize].parent != x {
                let p = cells[x as usize].parent;
                cells[x as usize].parent = cells[p as usize].parent;
                x = p;
            }
            x
        }
        let t = self.max.len();
        let mut cells: Vec<Cell> = (0..uf.parent.len() as u32)
            .map(|r| Cell {
                parent: r,
                size: 1,
                counts: [0; 8],
            })
            .collect();
        let mut roots: Vec<u32> = Vec::new();
        let mut dropped = Vec::new();
        for p in 0..self.seq_kind.len() {
            let kind = self.seq_kind[p];
            if kind == u16::MAX {
                dropped.push(p as u32);
                continue;
            }
            let s = self.slot[kind as usize];
            let rows = &self.seq_rows[self.seq_start[p] as usize..self.seq_start[p + 1] as usize];
            if let [r] = rows {
                if s != usize::MAX {
                    let root = find(&mut cells, *r) as usize;
                    let c = &mut cells[root].counts[s];
                    if *c as u32 + 1 > self.max[s] {
                        dropped.push(p as u32);
                    } else {
                        *c += 1;
                    }
                }
                continue;
            }
            roots.clear();
            for &r in rows {
                let root = find(&mut cells, r);
                if !roots.contains(&root) {
                    roots.push(root);
                }
            }
            let fits = (0..t).all(|j| {
                let held: u32 = roots
                    .iter()
                    .map(|&r| cells[r as usize].counts[j] as u32)
                    .sum();
                held + u32::from(j == s) <= self.max[j]
            });
            if !fits {
                dropped.push(p as u32);
                continue;
            }
            let mut acc = roots[0];
            for &other in &roots[1..] {
                // Union by size, as `UnionFind::union_roots`.
                let (keep, gone) = if cells[acc as usize].size >= cells[other as usize].size {
                    (acc, other)
                } else {
                    (other, acc)
                };
                let g = cells[gone as usize];
                let k = &mut cells[keep as usize];
                k.size += g.size;
                for j in 0..t {
                    k.counts[j] += g.counts[j];
                }
                cells[gone as usize].parent = keep;
                acc = keep;
            }
            if s != usize::MAX {
                cells[acc as usize].counts[s] += 1;
            }
        }
        for (r, c) in cells.iter().enumerate() {
            uf.parent[r] = c.parent;
            uf.size[r] = c.size;
        }
        dropped
    }
}

/// Dense cluster numbers in row order, as [`partition`] numbers them.
fn finish(uf: &mut UnionFind, dropped: Vec<Identifier>) -> Partition {
    let n = uf.parent.len();
    let mut dense = vec![u32::MAX; n];
    let mut clusters = 0u32;
    let mut cluster = Vec::with_capacity(n);
    for r in 0..n as u32 {
        let root = uf.find(r) as usize;
        if dense[root] == u32::MAX {
            dense[root] = clusters;
            clusters += 1;
        }
        cluster.push(dense[root]);
    }
    Partition {
        cluster,
        clusters: clusters as usize,
        dropped,
    }
}

/// Canonical form of a partition for comparisons: the sorted list of sorted
/// row groups.
pub fn canonical(p: &[u32]) -> Vec<Vec<usize>> {
    let mut groups: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
    for (row, c) in p.iter().enumerate() {
        groups.entry(*c).or_default().push(row);
    }
    let mut out: Vec<Vec<usize>> = groups.into_values().collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::table::chunk_rows;
    use proptest::prelude::*;
    use IdentifierKind::*;

    fn id(k: IdentifierKind, v: &str) -> Identifier {
        Identifier::new(k, v)
    }

    #[test]
    fn closure_and_limits() {
        let rows = vec![
            vec![id(ShopifyCustomerId, "1"), id(Email, "family@x.com")],
            vec![id(ShopifyCustomerId, "2"), id(Email, "family@x.com")],
            vec![id(Email, "family@x.com"), id(Phone, "+14155552671")],
            vec![id(Phone, "+14155552671")],
        ];
        let open = partition(&IdentityRules::unlimited(), &rows);
        assert_eq!(
            open.clusters, 1,
            "pure closure glues everyone through the family e-mail"
        );
        let limited = partition(&IdentityRules::default(), &rows);
        assert_eq!(limited.clusters, 3, "{limited:?}");
        assert_eq!(limited.dropped, vec![id(Email, "family@x.com")]);
        assert_ne!(
            limited.cluster[0], limited.cluster[1],
            "two shoppers stay two people"
        );
    }

    fn arb_rows() -> impl Strategy<Value = Vec<Vec<Identifier>>> {
        let ident = (0usize..4, 0u8..12).prop_map(|(k, v)| {
            let kind = [Email, Phone, ShopifyCustomerId, AnonymousId][k].clone();
            Identifier::new(kind, format!("v{v}"))
        });
        proptest::collection::vec(proptest::collection::vec(ident, 1..4), 1..40)
    }

    fn relabel(p: &[u32], perm: &[usize]) -> Vec<Vec<usize>> {
        // Map the permuted rows' clusters back to original row numbers.
        let mut orig = vec![0u32; p.len()];
        for (new_pos, &old_row) in perm.iter().enumerate() {
            orig[old_row] = p[new_pos];
        }
        canonical(&orig)
    }

    /// Rules with random priorities, limits and blocklist, so that the
    /// order of kinds and the limits of every kind get exercised.
    fn arb_rules() -> impl Strategy<Value = IdentityRules> {
        (
            proptest::collection::vec(
                (0u32..4, prop_oneof![Just(u32::MAX), 1u32..4, Just(300)]),
                5,
            ),
            proptest::collection::vec(0u8..12, 0..3),
            any::<bool>(),
        )
            .prop_map(|(limits, blocked, open)| {
                if open {
                    return IdentityRules::unlimited();
                }
                let mut r = IdentityRules::default();
                r.kinds.clear();
                for (kind, (priority, max)) in [Email, Phone, ShopifyCustomerId, AnonymousId]
                    .into_iter()
                    .zip(&limits)
                {
                    r.kinds.insert(
                        kind,
                        KindRule {
                            priority: *priority,
                            max_per_profile: *max,
                        },
                    );
                }
                r.custom_default = KindRule {
                    priority: limits[4].0,
                    max_per_profile: limits[4].1,
                };
                r.blocklist = blocked
                    .into_iter()
                    .map(|v| id(Email, &format!("v{v}")))
                    .collect();
                r
            })
    }

    fn arb_rows_with_custom() -> impl Strategy<Value = Vec<Vec<Identifier>>> {
        let ident = (0usize..6, 0u8..12, 0usize..3).prop_map(|(k, v, pad)| {
            let kind = [
                Email,
                Phone,
                ShopifyCustomerId,
                AnonymousId,
                Custom("loyalty".into()),
                Custom("crm".into()),
            ][k]
                .clone();
            // Long shared prefixes so the sort must look past its 14-byte keys.
            Identifier::new(kind, format!("{}v{v}", "x".repeat(pad * 13)))
        });
        proptest::collection::vec(proptest::collection::vec(ident, 0..4), 0..50)
    }

    /// More limited kinds than the packed cells hold (8), so the sweep
    /// takes its general paths (byte counters, then four-byte counters).
    #[test]
    fn sorted_engine_with_many_limited_kinds() {
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let rows: Vec<Vec<Identifier>> = (0..400)
            .map(|_| {
                (0..1 + next(3))
                    .map(|_| id(Custom(format!("k{}", next(11))), &format!("v{}", next(25))))
                    .collect()
            })
            .collect();
        for max in [1, 2, 300] {
            let rules = IdentityRules {
                custom_default: KindRule {
                    priority: 40,
                    max_per_profile: max,
                },
                ..IdentityRules::default()
            };
            let (kinds, chunk) = chunk_rows(&rows);
            let chunks = [chunk];
            let fast = partition_sorted(&rules, &SortedIds::build(&rules, kinds, &chunks, 2));
            assert_eq!(fast, partition(&rules, &rows), "limit {max}");
        }
    }

    proptest! {
        #[test]
        fn sorted_engine_equals_the_reference(rows in arb_rows_with_custom(), rules in arb_rules(), threads in 1usize..4) {
            let reference = partition(&rules, &rows);
            let (kinds, chunk) = chunk_rows(&rows);
            let chunks = [chunk];
            let fast = partition_sorted(&rules, &SortedIds::build(&rules, kinds, &chunks, threads));
            prop_assert_eq!(fast, reference);
        }

        #[test]
        fn sorted_engine_equals_the_reference_on_default_rules(rows in arb_rows(), limits in any::<bool>()) {
            let rules = if limits { IdentityRules::default() } else { IdentityRules::unlimited() };
            let (kinds, chunk) = chunk_rows(&rows);
            let chunks = [chunk];
            prop_assert_eq!(partition_sorted(&rules, &SortedIds::build(&rules, kinds, &chunks, 2)), partition(&rules, &rows));
        }

        #[test]
        fn same_partition_in_any_row_order(rows in arb_rows(), seed in any::<u64>(), limits in any::<bool>()) {
            let rules = if limits { IdentityRules::default() } else { IdentityRules::unlimited() };
            let base = canonical(&partition(&rules, &rows).cluster);
            let mut perm: Vec<usize> = (0..rows.len()).collect();
            let mut s = seed;
            for i in (1..perm.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                perm.swap(i, (s >> 33) as usize % (i + 1));
            }
            let shuffled: Vec<_> = perm.iter().map(|&i| rows[i].clone()).collect();
            prop_assert_eq!(relabel(&partition(&rules, &shuffled).cluster, &perm), base);
        }

        #[test]
        fn limits_hold_in_every_cluster(rows in arb_rows()) {
            let rules = IdentityRules::default();
            let p = partition(&rules, &rows);
            // Limits only ever split what closure would join.
            prop_assert!(p.clusters >= partition(&IdentityRules::unlimited(), &rows).clusters);
            for g in canonical(&p.cluster) {
                let mut linked: std::collections::BTreeSet<&Identifier> = Default::default();
                for r in &g {
                    linked.extend(rows[*r].iter().filter(|i| !p.dropped.contains(i)));
                }
                for kind in [Email, Phone, ShopifyCustomerId, AnonymousId] {
                    let n = linked.iter().filter(|i| i.kind == kind).count() as u32;
                    prop_assert!(n <= rules.rule(&kind).max_per_profile, "{kind}: {n} in {g:?}");
                }
            }
        }

        #[test]
        fn replaying_rows_changes_nothing(rows in arb_rows()) {
            let rules = IdentityRules::default();
            let once = canonical(&partition(&rules, &rows).cluster);
            let mut twice = rows.clone();
            twice.extend(rows.iter().cloned());
            let p = partition(&rules, &twice).cluster;
            // The replayed copy of each row lands with its original (rows
            // whose every identifier was dropped link to nothing: they are
            // the rejected rows, reported as such by import).
            let dropped = partition(&rules, &twice).dropped;
            for i in 0..rows.len() {
                if rows[i].iter().any(|id| !dropped.contains(id)) {
                    prop_assert_eq!(p[i], p[i + rows.len()]);
                }
            }
            prop_assert_eq!(canonical(&p[..rows.len()]), once);
        }
    }
}
