//! Per-organization identity rules (as Segment Unify has them): for each
//! identifier kind a priority and a maximum per profile, plus a blocklist of
//! values never used for matching (shared inboxes, front-desk numbers, test
//! addresses) and the default phone region.

use super::kind::{Identifier, IdentifierKind};
use crate::ValueError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindRule {
    /// Higher wins: when a limit would be exceeded, lower-priority identifiers are dropped.
    pub priority: u32,
    /// How many distinct values of this kind one profile may hold.
    pub max_per_profile: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRules {
    pub kinds: BTreeMap<IdentifierKind, KindRule>,
    /// Values never used for matching, as `kind:value` after normalization.
    pub blocklist: BTreeSet<Identifier>,
    /// ISO 3166 alpha-2 region for phone numbers written without a country code.
    pub default_region: String,
    /// Applied to custom kinds the table does not list.
    pub custom_default: KindRule,
}

impl Default for IdentityRules {
    fn default() -> Self {
        use IdentifierKind::*;
        let r = |priority, max_per_profile| KindRule {
            priority,
            max_per_profile,
        };
        let kinds = BTreeMap::from([
            (ShopifyCustomerId, r(100, 1)),
            (SegmentUserId, r(90, 1)),
            (InstagramId, r(80, 2)),
            (FacebookPsid, r(80, 3)),
            (Email, r(60, 5)),
            (Phone, r(50, 3)),
            (AnonymousId, r(10, 50)),
        ]);
        let blocklist = [
            (Email, "test@test.com"),
            (Email, "test@example.com"),
            (Email, "noreply@example.com"),
            (Email, "none@none.com"),
        ]
        .into_iter()
        .map(|(k, v)| Identifier::new(k, v))
        .collect();
        IdentityRules {
            kinds,
            blocklist,
            default_region: "US".into(),
            custom_default: r(40, 1),
        }
    }
}

impl IdentityRules {
    /// Rules with no limits at all: pure transitive closure.
    pub fn unlimited() -> IdentityRules {
        let mut r = IdentityRules::default();
        for rule in r.kinds.values_mut() {
            rule.max_per_profile = u32::MAX;
        }
        r.custom_default.max_per_profile = u32::MAX;
        r.blocklist.clear();
        r
    }

    pub fn rule(&self, kind: &IdentifierKind) -> KindRule {
        self.kinds.get(kind).copied().unwrap_or(self.custom_default)
    }

    pub fn blocked(&self, id: &Identifier) -> bool {
        self.blocklist.contains(id)
    }

    pub fn validate(&self) -> Result<(), ValueError> {
        for (k, r) in &self.kinds {
            if r.max_per_profile == 0 {
                return Err(ValueError(format!(
                    "the maximum per profile for {k} must be at least 1"
                )));
            }
            if r.priority > 1000 {
                return Err(ValueError(format!(
                    "the priority of {k} must be between 0 and 1000"
                )));
            }
        }
        if self.default_region.len() != 2
            || !self.default_region.chars().all(|c| c.is_ascii_uppercase())
        {
            return Err(ValueError(format!(
                "default region '{}' must be a two-letter country code such as US or GB",
                self.default_region
            )));
        }
        Ok(())
    }

    /// Sort key putting higher-priority identifiers first, then a stable order.
    pub fn order_key<'a>(
        &self,
        id: &'a Identifier,
    ) -> (std::cmp::Reverse<u32>, &'a IdentifierKind, &'a str) {
        (
            std::cmp::Reverse(self.rule(&id.kind).priority),
            &id.kind,
            id.value.as_str(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_sensible() {
        let r = IdentityRules::default();
        r.validate().unwrap();
        assert_eq!(r.rule(&IdentifierKind::Email).max_per_profile, 5);
        assert_eq!(r.rule(&IdentifierKind::Phone).max_per_profile, 3);
        assert_eq!(
            r.rule(&IdentifierKind::Custom("loyalty".into())),
            r.custom_default
        );
        assert!(r.blocked(&Identifier::new(IdentifierKind::Email, "test@test.com")));
        let json = serde_json_like(&r);
        assert!(json.contains("shopify_customer_id"));
    }

    fn serde_json_like(r: &IdentityRules) -> String {
        format!(
            "{:?}",
            r.kinds.keys().map(|k| k.as_str()).collect::<Vec<_>>()
        )
    }
}
