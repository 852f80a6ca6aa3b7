//! Normalization of identifier values. Invalid values are rejected with a
//! reason, never guessed: a wrong guess would glue two people together.

use super::kind::{Identifier, IdentifierKind};
use crate::{Email, ValueError};

fn err(msg: String) -> ValueError {
    ValueError(msg)
}

/// Normalizes `raw` as a value of `kind`. `region` is the organization's
/// default phone region (ISO 3166 alpha-2, e.g. "US") for numbers written
/// without a country code.
pub fn normalize(kind: &IdentifierKind, raw: &str, region: &str) -> Result<Identifier, ValueError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(err(format!("{kind} is empty")));
    }
    if v.chars().any(char::is_control) {
        return Err(err(format!("{kind} contains control characters")));
    }
    let value = match kind {
        IdentifierKind::Email => Email::parse(v)?.as_str().to_string(),
        IdentifierKind::Phone => phone(v, region)?,
        IdentifierKind::ShopifyCustomerId => {
            // Shopify ids are numeric; the Admin GraphQL API writes them as gids.
            let id = v.strip_prefix("gid://shopify/Customer/").unwrap_or(v);
            numeric(kind, id)?
        }
        IdentifierKind::InstagramId | IdentifierKind::FacebookPsid => numeric(kind, v)?,
        IdentifierKind::SegmentUserId | IdentifierKind::AnonymousId | IdentifierKind::Custom(_) => {
            if v.len() > 255 {
                return Err(err(format!("{kind} is longer than 255 characters")));
            }
            v.to_string()
        }
    };
    Ok(Identifier::new(kind.clone(), value))
}

fn numeric(kind: &IdentifierKind, v: &str) -> Result<String, ValueError> {
    if v.len() > 32 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("{kind} '{v}' is not a numeric id")));
    }
    let t = v.trim_start_matches('0');
    if t.is_empty() {
        return Err(err(format!("{kind} '{v}' is zero")));
    }
    Ok(t.to_string())
}

fn phone(v: &str, region: &str) -> Result<String, ValueError> {
    use phonenumber::country::Id;
    let region: Option<Id> = region.trim().to_ascii_uppercase().parse().ok();
    let n = phonenumber::parse(region, v).map_err(|_| {
        err(format!(
            "phone '{v}' is not a phone number (give it with a +country code)"
        ))
    })?;
    if !phonenumber::is_valid(&n) {
        return Err(err(format!(
            "phone '{v}' is not a valid number for its country"
        )));
    }
    Ok(n.format().mode(phonenumber::Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(kind: IdentifierKind, raw: &str) -> Result<String, ValueError> {
        normalize(&kind, raw, "US").map(|i| i.value)
    }

    #[test]
    fn emails_and_phones() {
        assert_eq!(
            n(IdentifierKind::Email, " John.Doe@Example.COM ").unwrap(),
            "john.doe@example.com"
        );
        assert!(n(IdentifierKind::Email, "john@").is_err());
        assert_eq!(
            n(IdentifierKind::Phone, "(415) 555-2671").unwrap(),
            "+14155552671"
        );
        assert_eq!(
            n(IdentifierKind::Phone, "+44 20 7946 0958").unwrap(),
            "+442079460958"
        );
        assert_eq!(
            normalize(&IdentifierKind::Phone, "020 7946 0958", "GB")
                .unwrap()
                .value,
            "+442079460958"
        );
        assert!(n(IdentifierKind::Phone, "12").is_err());
        assert!(n(IdentifierKind::Phone, "call me").is_err());
    }

    #[test]
    fn platform_ids() {
        assert_eq!(
            n(
                IdentifierKind::ShopifyCustomerId,
                "gid://shopify/Customer/0042"
            )
            .unwrap(),
            "42"
        );
        assert!(n(IdentifierKind::ShopifyCustomerId, "abc").is_err());
        assert!(n(IdentifierKind::InstagramId, "0").is_err());
        assert_eq!(n(IdentifierKind::AnonymousId, " a-b-c ").unwrap(), "a-b-c");
        assert!(n(IdentifierKind::SegmentUserId, "").is_err());
    }

    proptest! {
        #[test]
        fn normalization_is_idempotent(raw in "[ -~]{0,24}", k in 0usize..7) {
            let kind = IdentifierKind::BUILT_IN[k].clone();
            if let Ok(id) = normalize(&kind, &raw, "US") {
                prop_assert_eq!(normalize(&kind, &id.value, "US").unwrap(), id);
            }
        }

        #[test]
        fn us_numbers_in_any_format_agree(area in 201u32..990, line in 2_000_000u32..9_999_999) {
            let plain = format!("{area}{line}");
            let a = n(IdentifierKind::Phone, &plain);
            let b = n(IdentifierKind::Phone, &format!("+1 ({area}) {:03}-{:04}", line / 10_000, line % 10_000));
            if let (Ok(a), Ok(b)) = (a, b) {
                prop_assert_eq!(a, b);
            }
        }
    }
}
