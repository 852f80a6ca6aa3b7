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

use super::kind::{Identifier, IdentifierKind};
use super::rules::IdentityRules;
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

    let limited =
        rules.kinds.values().any(|r| r.max_per_profile != u32::MAX) || !rules.blocklist.is_empty();
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

    proptest! {
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
