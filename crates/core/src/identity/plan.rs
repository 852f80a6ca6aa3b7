//! The streaming merge planner: given the identifiers an incoming event
//! carries and the profiles those identifiers already point to, decide
//! whether to create a profile, attach the new identifiers to one, or merge
//! several — and which identifiers to drop because a per-profile limit would
//! be exceeded (lower priority loses) or because they are blocklisted.
//!
//! Identifiers are considered in priority order. A known identifier that
//! points to another profile joins that profile to the cluster only if the
//! combined cluster stays within every limit; otherwise that identifier is
//! dropped from this event and the profiles stay apart. This is what keeps a
//! shared family e-mail from gluing two shoppers with different Shopify ids
//! into one person.

use super::kind::{Identifier, IdentifierKind};
use super::rules::IdentityRules;
use crate::Millis;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the planner needs to know about an existing (root) profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileView<P> {
    pub id: P,
    pub created_at: Millis,
    /// Every identifier currently linked to the profile (its whole cluster).
    pub identifiers: Vec<Identifier>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DropReason {
    /// On the organization's blocklist: never used for matching.
    Blocklisted,
    /// The profile already holds the maximum number of this kind.
    Limit { kind: IdentifierKind, max: u32 },
    /// It points to another profile, and merging the two would exceed the
    /// maximum for `kind`.
    MergeLimit { kind: IdentifierKind, max: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub identifier: Identifier,
    #[serde(flatten)]
    pub reason: DropReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<P> {
    /// No identifier is known: a new profile.
    Create,
    /// Everything known points to one profile.
    Attach { profile: P },
    /// Identifiers point to several profiles: the oldest survives, each
    /// other one is absorbed through the identifier that joined it.
    Merge {
        survivor: P,
        absorbed: Vec<(P, Identifier)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<P> {
    pub decision: Decision<P>,
    /// New identifiers to link to the resulting profile.
    pub link: Vec<Identifier>,
    /// Accepted identifiers that are already linked (their last-seen moves).
    pub seen: Vec<Identifier>,
    pub dropped: Vec<Dropped>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the event carries no usable identifier: give at least one of email, phone, or a platform id")]
    NoIdentifiers { dropped: Vec<Dropped> },
}

/// Plans the resolution of one event. `owners` maps each known incoming
/// identifier to the (root) profile holding it; `profiles` describes those
/// profiles.
pub fn plan<P: Ord + Clone>(
    rules: &IdentityRules,
    incoming: &[Identifier],
    owners: &BTreeMap<Identifier, P>,
    profiles: &BTreeMap<P, ProfileView<P>>,
) -> Result<Plan<P>, PlanError> {
    let mut ids: Vec<&Identifier> = incoming
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    ids.sort_by(|a, b| rules.order_key(a).cmp(&rules.order_key(b)));

    let mut cluster: Vec<P> = Vec::new();
    let mut via: Vec<(P, Identifier)> = Vec::new();
    let mut held: BTreeMap<&IdentifierKind, BTreeSet<&str>> = BTreeMap::new();
    let mut link = Vec::new();
    let mut seen = Vec::new();
    let mut dropped = Vec::new();

    for id in ids {
        if rules.blocked(id) {
            dropped.push(Dropped {
                identifier: id.clone(),
                reason: DropReason::Blocklisted,
            });
            continue;
        }
        match owners.get(id) {
            Some(p) if cluster.contains(p) => seen.push(id.clone()),
            Some(p) => {
                let view = &profiles[p];
                let mut combined = held.clone();
                for other in &view.identifiers {
                    combined
                        .entry(&other.kind)
                        .or_default()
                        .insert(&other.value);
                }
                // The first profile is taken as it is when nothing else was
                // accepted yet: no merge is involved.
                let over = if cluster.is_empty() && link.is_empty() {
                    None
                } else {
                    combined.iter().find_map(|(k, vals)| {
                        let max = rules.rule(k).max_per_profile;
                        (vals.len() as u64 > max as u64).then(|| ((*k).clone(), max))
                    })
                };
                match over {
                    Some((kind, max)) => dropped.push(Dropped {
                        identifier: id.clone(),
                        reason: DropReason::MergeLimit { kind, max },
                    }),
                    None => {
                        held = combined;
                        if !cluster.is_empty() {
                            via.push((p.clone(), id.clone()));
                        }
                        cluster.push(p.clone());
                        seen.push(id.clone());
                    }
                }
            }
            None => {
                let max = rules.rule(&id.kind).max_per_profile;
                let vals = held.entry(&id.kind).or_default();
                if vals.len() as u64 + 1 > max as u64 {
                    dropped.push(Dropped {
                        identifier: id.clone(),
                        reason: DropReason::Limit {
                            kind: id.kind.clone(),
                            max,
                        },
                    });
                } else {
                    vals.insert(&id.value);
                    link.push(id.clone());
                }
            }
        }
    }

    let decision = match cluster.len() {
        0 if link.is_empty() => return Err(PlanError::NoIdentifiers { dropped }),
        0 => Decision::Create,
        1 => Decision::Attach {
            profile: cluster[0].clone(),
        },
        _ => {
            let survivor = cluster
                .iter()
                .min_by(|a, b| (profiles[*a].created_at, *a).cmp(&(profiles[*b].created_at, *b)))
                .cloned()
                .expect("cluster is not empty");
            // The first profile found joined nobody; if it is not the survivor,
            // it is absorbed through the identifier that found it.
            let first = cluster[0].clone();
            let mut absorbed: Vec<(P, Identifier)> =
                via.into_iter().filter(|(p, _)| *p != survivor).collect();
            if first != survivor {
                let found_by = owners
                    .iter()
                    .filter(|(_, p)| **p == first)
                    .map(|(i, _)| i.clone())
                    .find(|i| seen.contains(i))
                    .expect("the first profile was found by an identifier");
                absorbed.insert(0, (first, found_by));
            }
            Decision::Merge { survivor, absorbed }
        }
    };
    Ok(Plan {
        decision,
        link,
        seen,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use IdentifierKind::*;

    fn id(k: IdentifierKind, v: &str) -> Identifier {
        Identifier::new(k, v)
    }

    fn view(p: u32, created: i64, ids: &[Identifier]) -> ProfileView<u32> {
        ProfileView {
            id: p,
            created_at: created,
            identifiers: ids.to_vec(),
        }
    }

    #[test]
    fn create_attach_merge() {
        let r = IdentityRules::default();
        let none = BTreeMap::new();
        let p = plan::<u32>(&r, &[id(Email, "a@x.com")], &none, &BTreeMap::new()).unwrap();
        assert_eq!(p.decision, Decision::Create);
        assert_eq!(p.link, vec![id(Email, "a@x.com")]);

        let owners = BTreeMap::from([(id(Email, "a@x.com"), 1)]);
        let profiles = BTreeMap::from([(1, view(1, 10, &[id(Email, "a@x.com")]))]);
        let p = plan(
            &r,
            &[id(Email, "a@x.com"), id(Phone, "+14155552671")],
            &owners,
            &profiles,
        )
        .unwrap();
        assert_eq!(p.decision, Decision::Attach { profile: 1 });
        assert_eq!(p.link, vec![id(Phone, "+14155552671")]);
        assert_eq!(p.seen, vec![id(Email, "a@x.com")]);

        // Instagram DM (profile 2, older) and Shopify order (profile 1) share a phone.
        let owners = BTreeMap::from([(id(Phone, "+14155552671"), 1), (id(InstagramId, "77"), 2)]);
        let profiles = BTreeMap::from([
            (
                1,
                view(
                    1,
                    20,
                    &[id(Phone, "+14155552671"), id(ShopifyCustomerId, "9")],
                ),
            ),
            (2, view(2, 10, &[id(InstagramId, "77")])),
        ]);
        let p = plan(
            &r,
            &[id(InstagramId, "77"), id(Phone, "+14155552671")],
            &owners,
            &profiles,
        )
        .unwrap();
        assert_eq!(
            p.decision,
            Decision::Merge {
                survivor: 2,
                absorbed: vec![(1, id(Phone, "+14155552671"))]
            }
        );
    }

    #[test]
    fn a_shared_family_email_does_not_glue_two_shoppers() {
        let r = IdentityRules::default();
        let fam = id(Email, "family@x.com");
        let owners = BTreeMap::from([(id(ShopifyCustomerId, "1"), 1), (fam.clone(), 2)]);
        let profiles = BTreeMap::from([
            (1, view(1, 10, &[id(ShopifyCustomerId, "1")])),
            (2, view(2, 20, &[fam.clone(), id(ShopifyCustomerId, "2")])),
        ]);
        let p = plan(
            &r,
            &[id(ShopifyCustomerId, "1"), fam.clone()],
            &owners,
            &profiles,
        )
        .unwrap();
        assert_eq!(p.decision, Decision::Attach { profile: 1 });
        assert_eq!(
            p.dropped,
            vec![Dropped {
                identifier: fam,
                reason: DropReason::MergeLimit {
                    kind: ShopifyCustomerId,
                    max: 1
                }
            }]
        );
        // With limits off it is pure transitive closure.
        let p = plan(
            &IdentityRules::unlimited(),
            &[id(ShopifyCustomerId, "1"), id(Email, "family@x.com")],
            &owners,
            &profiles,
        )
        .unwrap();
        assert!(matches!(p.decision, Decision::Merge { survivor: 1, .. }));
    }

    #[test]
    fn a_new_platform_id_does_not_join_a_profile_that_has_another() {
        // Shopify customer 2 arrives with the family e-mail that profile 1
        // (Shopify customer 1) holds: customer 2 is someone else.
        let r = IdentityRules::default();
        let fam = id(Email, "family@x.com");
        let owners = BTreeMap::from([(fam.clone(), 1)]);
        let profiles =
            BTreeMap::from([(1, view(1, 10, &[fam.clone(), id(ShopifyCustomerId, "1")]))]);
        let p = plan(
            &r,
            &[id(ShopifyCustomerId, "2"), fam.clone()],
            &owners,
            &profiles,
        )
        .unwrap();
        assert_eq!(p.decision, Decision::Create);
        assert_eq!(p.link, vec![id(ShopifyCustomerId, "2")]);
        assert_eq!(p.dropped[0].identifier, fam);
    }

    #[test]
    fn limits_and_blocklist() {
        let r = IdentityRules::default();
        let owners = BTreeMap::from([(id(ShopifyCustomerId, "1"), 1)]);
        let profiles = BTreeMap::from([(1, view(1, 10, &[id(ShopifyCustomerId, "1")]))]);
        let p = plan(
            &r,
            &[
                id(ShopifyCustomerId, "1"),
                id(ShopifyCustomerId, "2"),
                id(Email, "test@test.com"),
            ],
            &owners,
            &profiles,
        )
        .unwrap();
        assert_eq!(p.link, vec![]);
        assert_eq!(p.dropped.len(), 2);
        assert!(matches!(
            plan::<u32>(
                &r,
                &[id(Email, "test@test.com")],
                &BTreeMap::new(),
                &BTreeMap::new()
            ),
            Err(PlanError::NoIdentifiers { .. })
        ));
        assert!(matches!(
            plan::<u32>(&r, &[], &BTreeMap::new(), &BTreeMap::new()),
            Err(PlanError::NoIdentifiers { .. })
        ));
    }

    // The store skips reading a profile's other identifiers when every
    // usable incoming identifier already belongs to that one profile
    // (`resolve_tx`): the plan must not depend on them then.
    proptest::proptest! {
        #[test]
        fn known_identifiers_of_one_profile_plan_the_same_without_its_others(
            known in proptest::collection::vec((0u8..4, 0u8..6), 1..5),
            others in proptest::collection::vec((0u8..4, 0u8..9), 0..12),
            blocked in proptest::bool::ANY,
        ) {
            let kinds = [Email, Phone, AnonymousId, ShopifyCustomerId];
            let mk = |(k, v): (u8, u8)| {
                let kind = kinds[k as usize].clone();
                let value = match kind {
                    Email => format!("p{v}@x.com"),
                    Phone => format!("+1415555{:04}", v),
                    _ => format!("v{v}"),
                };
                id(kind, &value)
            };
            let mut incoming: Vec<Identifier> = known.into_iter().map(mk).collect();
            let mut held: Vec<Identifier> = incoming.clone();
            held.extend(others.into_iter().map(mk));
            held.sort();
            held.dedup();
            let owners: BTreeMap<Identifier, u32> =
                incoming.iter().map(|i| (i.clone(), 1)).collect();
            if blocked {
                incoming.push(id(Email, "test@test.com"));
            }
            let r = IdentityRules::default();
            let full = BTreeMap::from([(1, view(1, 10, &held))]);
            let bare = BTreeMap::from([(1, view(1, 10, &[]))]);
            let a = plan(&r, &incoming, &owners, &full);
            let b = plan(&r, &incoming, &owners, &bare);
            proptest::prop_assert_eq!(a, b);
        }
    }
}
