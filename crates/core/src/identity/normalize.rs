//! Normalization of identifier values. Invalid values are rejected with a
//! reason, never guessed: a wrong guess would glue two people together.

use super::kind::{Identifier, IdentifierKind};
use super::phone_fast;
use crate::tenancy::check_email;
use crate::{Email, ValueError};

fn err(msg: String) -> ValueError {
    ValueError(msg)
}

/// Normalizes `raw` as a value of `kind`. `region` is the organization's
/// default phone region (ISO 3166 alpha-2, e.g. "US") for numbers written
/// without a country code.
pub fn normalize(kind: &IdentifierKind, raw: &str, region: &str) -> Result<Identifier, ValueError> {
    let mut value = String::new();
    normalize_into(kind, raw, region, &mut value)?;
    Ok(Identifier::new(kind.clone(), value))
}

/// [`normalize`] appending the canonical value to `out` (left as it was on
/// error). Bulk paths (imports, the batch engine) normalize millions of
/// values into one buffer this way instead of allocating a `String` each;
/// ASCII e-mails, numeric ids and common North American phone shapes take
/// no allocation at all.
pub fn normalize_into(
    kind: &IdentifierKind,
    raw: &str,
    region: &str,
    out: &mut String,
) -> Result<(), ValueError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(err(format!("{kind} is empty")));
    }
    if *kind == IdentifierKind::Email && email_fast(v, out) {
        return Ok(());
    }
    let control = if v.is_ascii() {
        v.bytes().any(|b| b < b' ' || b == 0x7f)
    } else {
        v.chars().any(char::is_control)
    };
    if control {
        return Err(err(format!("{kind} contains control characters")));
    }
    match kind {
        IdentifierKind::Email => {
            if v.is_ascii() {
                // Same as `Email::parse`: for ASCII, `to_lowercase` is
                // `to_ascii_lowercase`, so lowercase in place and check.
                let start = out.len();
                out.push_str(v);
                out[start..].make_ascii_lowercase();
                if let Err(e) = check_email(&out[start..]) {
                    out.truncate(start);
                    return Err(e);
                }
            } else {
                out.push_str(Email::parse(v)?.as_str());
            }
        }
        IdentifierKind::Phone => {
            if !phone_fast::phone(v, region, out) {
                out.push_str(&phone(v, region)?)
            }
        }
        IdentifierKind::ShopifyCustomerId => {
            // Shopify ids are numeric; the Admin GraphQL API writes them as gids.
            let id = v.strip_prefix("gid://shopify/Customer/").unwrap_or(v);
            numeric(kind, id, out)?
        }
        IdentifierKind::InstagramId | IdentifierKind::FacebookPsid => numeric(kind, v, out)?,
        IdentifierKind::SegmentUserId | IdentifierKind::AnonymousId | IdentifierKind::Custom(_) => {
            if v.len() > 255 {
                return Err(err(format!("{kind} is longer than 255 characters")));
            }
            out.push_str(v)
        }
    }
    Ok(())
}

/// A plain ASCII address that the checks below would accept, lowercased
/// into `out` in one pass over its bytes instead of one per check (imports
/// normalize millions of addresses). Anything else returns false, writes
/// nothing, and goes the general way, which also words the errors.
fn email_fast(v: &str, out: &mut String) -> bool {
    let b = v.as_bytes();
    if b.len() > 254 {
        return false;
    }
    let (mut ats, mut at, mut bad) = (0, 0, false);
    for (i, &c) in b.iter().enumerate() {
        // Non-ASCII, whitespace, control characters, specials.
        bad |= c >= 128 || crate::tenancy::BAD[(c & 0x7f) as usize];
        if c == b'@' {
            ats += 1;
            at = i;
        }
    }
    let domain = &b[(at + 1).min(b.len())..];
    let ok = !bad
        && ats == 1
        && at > 0
        && domain.len() > 2
        && domain.contains(&b'.')
        && domain[0] != b'.'
        && domain[domain.len() - 1] != b'.';
    if ok {
        let start = out.len();
        out.push_str(v);
        out[start..].make_ascii_lowercase();
    }
    ok
}

fn numeric(kind: &IdentifierKind, v: &str, out: &mut String) -> Result<(), ValueError> {
    if v.len() > 32 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("{kind} '{v}' is not a numeric id")));
    }
    let t = v.trim_start_matches('0');
    if t.is_empty() {
        return Err(err(format!("{kind} '{v}' is zero")));
    }
    out.push_str(t);
    Ok(())
}

/// The slow path, through the `phonenumber` crate: any shape, any region.
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

    /// The normalization as it was before the fast paths: trim, reject
    /// empty and control characters, then `Email::parse` / `phonenumber`.
    fn reference(kind: &IdentifierKind, raw: &str, region: &str) -> Result<String, ValueError> {
        let v = raw.trim();
        if v.is_empty() {
            return Err(err(format!("{kind} is empty")));
        }
        if v.chars().any(char::is_control) {
            return Err(err(format!("{kind} contains control characters")));
        }
        match kind {
            IdentifierKind::Email => Ok(Email::parse(v)?.as_str().to_string()),
            IdentifierKind::Phone => phone(v, region),
            _ => unreachable!("only the kinds with a fast path"),
        }
    }

    fn agree(kind: IdentifierKind, raw: &str, region: &str) {
        let fast = normalize(&kind, raw, region).map(|i| i.value);
        assert_eq!(
            fast,
            reference(&kind, raw, region),
            "{kind} {raw:?} in {region}"
        );
    }

    #[test]
    fn phone_fast_path_agrees_on_every_area_code() {
        // Every area code, in the shapes the fast path reads, with exchanges
        // and lines that hit the special cases of the metadata (N11, 555,
        // 0/1 exchanges, toll-free and Caribbean/Canadian area codes).
        for area in 0..1000u32 {
            for (i, (exch, line)) in [(555, 101), (211, 9999), (2, 1234), (867, 5309), (100, 0)]
                .into_iter()
                .enumerate()
            {
                let shapes = [
                    format!("{area:03}{exch:03}{line:04}"),
                    format!("({area:03}) {exch:03}-{line:04}"),
                    format!("+1 {area:03}-{exch:03}-{line:04}"),
                    format!("1.{area:03}.{exch:03}.{line:04}"),
                ];
                agree(
                    IdentifierKind::Phone,
                    &shapes[(area as usize + i) % shapes.len()],
                    "US",
                );
            }
        }
    }

    #[test]
    fn phone_fast_path_agrees_on_every_country() {
        // Each country's example numbers from the metadata, written as
        // +CC NNNN…, +CCNNNN… and in groups, then with a digit changed,
        // dropped or added (mostly invalid: the fast path must decline).
        use phonenumber::metadata::DATABASE;
        let mut checked = 0;
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            let cc = meta.country_code();
            for desc in [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.voip(),
                d.premium_rate(),
            ]
            .into_iter()
            .flatten()
            {
                let Some(ex) = desc.example() else { continue };
                let last = ex.len() - 1;
                let changed = format!("{}{}", &ex[..last], (ex.as_bytes()[last] - b'0' + 1) % 10);
                for n in [
                    ex.to_string(),
                    changed,
                    ex[..last].to_string(),
                    format!("{ex}7"),
                ] {
                    let groups: Vec<&str> = n
                        .as_bytes()
                        .chunks(3)
                        .map(|c| std::str::from_utf8(c).unwrap())
                        .collect();
                    for raw in [
                        format!("+{cc}{n}"),
                        format!("+{cc} {n}"),
                        format!("+{cc} {}", groups.join(" ")),
                    ] {
                        agree(IdentifierKind::Phone, &raw, "US");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    fn nanp_shape() -> impl Strategy<Value = String> {
        let sep = prop_oneof![
            Just(""),
            Just(" "),
            Just("-"),
            Just("."),
            Just("--"),
            Just("/")
        ];
        (
            prop_oneof![
                Just(""),
                Just("1"),
                Just("+1"),
                Just("+"),
                Just("+44"),
                Just("11")
            ],
            sep.clone(),
            0u32..1000,
            any::<bool>(),
            sep.clone(),
            0u32..1000,
            sep,
            0u32..10000,
            prop_oneof![Just(""), Just(" "), Just(" x12"), Just("0")],
        )
            .prop_map(|(pre, s1, area, paren, s2, exch, s3, line, tail)| {
                let area = if paren {
                    format!("({area:03})")
                } else {
                    format!("{area:03}")
                };
                format!(" {pre}{s1}{area}{s2}{exch:03}{s3}{line:04}{tail}")
            })
    }

    proptest! {
        #[test]
        fn phone_fast_path_agrees_on_shapes(raw in nanp_shape(), region in prop_oneof![Just("US"), Just("us "), Just("CA"), Just("GB")]) {
            agree(IdentifierKind::Phone, &raw, region);
        }

        #[test]
        fn phone_fast_path_agrees_on_noise(raw in "[0-9+() .-]{0,16}") {
            agree(IdentifierKind::Phone, &raw, "US");
        }

        #[test]
        fn phone_fast_path_agrees_on_international_shapes(
            cc in prop_oneof![Just("1"), Just("7"), Just("33"), Just("44"), Just("49"), Just("52"), Just("55"), Just("61"), Just("81"), Just("86"), Just("91"), Just("353"), Just("971"), Just("800"), Just("882"), Just("999"), Just("0"), Just("")],
            digits in "[0-9]{2,16}",
            cuts in proptest::collection::vec(0usize..16, 0..4),
            sep in prop_oneof![Just(" "), Just("  "), Just("-")],
        ) {
            let mut n = digits.clone();
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c > 0 && c < digits.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            for c in cuts.into_iter().rev() {
                n.insert_str(c, sep);
            }
            agree(IdentifierKind::Phone, &format!("+{cc}{n}"), "US");
            agree(IdentifierKind::Phone, &format!("+{cc} {n}"), "US");
        }

        #[test]
        fn email_fast_path_agrees(raw in "[ -~\t]{0,12}(@[ -~]{0,10})?", upper in any::<bool>(), accent in any::<bool>()) {
            let mut raw = if upper { raw.to_uppercase() } else { raw };
            if accent {
                raw.push('É');
            }
            agree(IdentifierKind::Email, &raw, "US");
            agree(IdentifierKind::Email, &format!("  Jo.{raw}@Example.COM "), "US");
        }

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
