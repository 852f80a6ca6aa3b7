//! Identifier kinds: the built-in platforms and custom kinds a tenant adds.

use crate::ValueError;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentifierKind {
    Email,
    Phone,
    ShopifyCustomerId,
    /// Instagram-scoped id (IGSID).
    InstagramId,
    /// Facebook page-scoped id (PSID).
    FacebookPsid,
    /// Segment `userId`.
    SegmentUserId,
    /// Segment `anonymousId` (a browser or device).
    AnonymousId,
    /// A tenant's own kind, e.g. `loyalty_id`.
    Custom(String),
}

impl IdentifierKind {
    pub const BUILT_IN: [IdentifierKind; 7] = [
        IdentifierKind::Email,
        IdentifierKind::Phone,
        IdentifierKind::ShopifyCustomerId,
        IdentifierKind::InstagramId,
        IdentifierKind::FacebookPsid,
        IdentifierKind::SegmentUserId,
        IdentifierKind::AnonymousId,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::ShopifyCustomerId => "shopify_customer_id",
            IdentifierKind::InstagramId => "instagram_id",
            IdentifierKind::FacebookPsid => "facebook_psid",
            IdentifierKind::SegmentUserId => "segment_user_id",
            IdentifierKind::AnonymousId => "anonymous_id",
            IdentifierKind::Custom(s) => s,
        }
    }

    /// Parses a kind name: a built-in one, or a custom name of 2–32
    /// lowercase letters, digits and underscores starting with a letter.
    pub fn parse(s: &str) -> Result<IdentifierKind, ValueError> {
        let s = s.trim().to_ascii_lowercase();
        for k in Self::BUILT_IN {
            if k.as_str() == s {
                return Ok(k);
            }
        }
        let ok = (2..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(IdentifierKind::Custom(s))
        } else {
            Err(ValueError(format!(
                "'{s}' is not an identifier kind: use email, phone, shopify_customer_id, instagram_id, facebook_psid, \
                 segment_user_id, anonymous_id, or a custom name of lowercase letters, digits and underscores"
            )))
        }
    }

    /// The platform a badge shows for this kind (colors live in the CSS).
    pub fn platform(&self) -> &'static str {
        match self {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::ShopifyCustomerId => "shopify",
            IdentifierKind::InstagramId => "instagram",
            IdentifierKind::FacebookPsid => "facebook",
            IdentifierKind::SegmentUserId | IdentifierKind::AnonymousId => "web",
            IdentifierKind::Custom(_) => "custom",
        }
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for IdentifierKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IdentifierKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IdentifierKind::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A normalized identifier: a kind and a value in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identifier {
    pub kind: IdentifierKind,
    pub value: String,
}

impl Identifier {
    pub fn new(kind: IdentifierKind, value: impl Into<String>) -> Identifier {
        Identifier {
            kind,
            value: value.into(),
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_roundtrip() {
        for k in IdentifierKind::BUILT_IN {
            assert_eq!(IdentifierKind::parse(k.as_str()).unwrap(), k);
        }
        assert_eq!(
            IdentifierKind::parse("Loyalty_ID").unwrap(),
            IdentifierKind::Custom("loyalty_id".into())
        );
        assert!(IdentifierKind::parse("9lives").is_err());
        assert!(IdentifierKind::parse("a-b").is_err());
    }
}
