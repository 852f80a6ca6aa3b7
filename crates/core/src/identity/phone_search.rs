//! What a phone number typed into a search box means, as ranges of stored
//! values. Phones are stored in E.164 (`+14155552671`), so every number
//! that starts with some digits is a contiguous range of the identity
//! links' primary key (org, kind, value): a search reads that range instead
//! of scanning every phone of the organization for a substring.
//!
//! People type numbers the way they dial them: nationally with the
//! organization's default region (`(415) 555-26`, `020 7946` in Great
//! Britain, where the leading 0 is the trunk prefix), or internationally
//! (`+44 20 7946`, `0044 20…`, or digits without the plus). A complete
//! number is normalized exactly as stored values are. A partial one stands
//! for the numbers that start with it, read both ways when it could be
//! either. Only digits that could be the *end* of a number (`2671`) are not
//! a range; the store falls back to a suffix match for them when the ranges
//! find nothing.

use super::kind::IdentifierKind;
use super::normalize::normalize;

/// The stored values a phone search covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneSearch {
    /// E.164 prefixes (`+1415555`), most likely first, without duplicates:
    /// a value matches when it starts with one of them.
    pub prefixes: Vec<String>,
    /// Digits to look for at the end of a number when no prefix matches
    /// anything (a number typed without its area code); `None` for
    /// international input, whose meaning is certain.
    pub suffix: Option<String>,
}

/// The shortest input read as a phone search: fewer digits match too much
/// to be useful (and look like a name or a year).
pub const MIN_DIGITS: usize = 3;

/// Whether `term` looks like a phone number rather than a name or e-mail:
/// only digits and dialing punctuation, and at least [`MIN_DIGITS`] digits.
pub fn looks_like_phone(term: &str) -> bool {
    let t = term.trim();
    t.chars().filter(char::is_ascii_digit).count() >= MIN_DIGITS
        && t.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

/// The country calling code and national (trunk) prefix of a region, from
/// the phone metadata: `US` → (1, "1"), `GB` → (44, "0").
fn region_codes(region: &str) -> Option<(u16, String)> {
    let id = region.trim().to_ascii_uppercase();
    let meta = phonenumber::metadata::DATABASE.by_id(id.as_str())?;
    Some((
        meta.country_code(),
        meta.national_prefix().unwrap_or("").to_string(),
    ))
}

/// Reads `term` (see [`looks_like_phone`]) as a phone search with the
/// organization's default `region`. `None` when it is not phone-like.
pub fn phone_search(term: &str, region: &str) -> Option<PhoneSearch> {
    if !looks_like_phone(term) {
        return None;
    }
    let t = term.trim();
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    let mut prefixes = Vec::new();
    let mut push = |p: String| {
        if !prefixes.contains(&p) {
            prefixes.push(p);
        }
    };
    // International, certain: `+…` or the international dialing prefix `00`.
    if t.starts_with('+') || digits.starts_with("00") {
        let d = if t.starts_with('+') {
            digits.as_str()
        } else {
            &digits[2..]
        };
        if d.is_empty() {
            return None;
        }
        push(format!("+{d}"));
        return Some(PhoneSearch {
            prefixes,
            suffix: None,
        });
    }
    // A whole number, exactly as it would be stored.
    if let Ok(id) = normalize(&IdentifierKind::Phone, t, region) {
        push(id.value);
        return Some(PhoneSearch {
            prefixes,
            suffix: None,
        });
    }
    // The start of a national number, with or without its trunk prefix.
    if let Some((cc, trunk)) = region_codes(region) {
        let national = if !trunk.is_empty() && digits.starts_with(&trunk) {
            &digits[trunk.len()..]
        } else {
            digits.as_str()
        };
        if !national.is_empty() {
            push(format!("+{cc}{national}"));
        }
    }
    // The start of an international number typed without its plus
    // (country codes never start with 0).
    if !digits.starts_with('0') {
        push(format!("+{digits}"));
    }
    Some(PhoneSearch {
        prefixes,
        suffix: Some(digits),
    })
}

/// The smallest string above every value that starts with `prefix` (a `+`
/// and digits), for a range `value >= prefix and value < upper`: the prefix
/// with its last digit raised, carrying over nines (`+1419` → `+142`).
/// Comparing digits with digits keeps the range right under any collation.
/// `None` when every value from `prefix` on starts with it (`+99`).
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(&last) = b.last() {
        if last.is_ascii_digit() && last < b'9' {
            *b.last_mut()? += 1;
            return String::from_utf8(b).ok();
        }
        b.pop();
        if b.last() == Some(&b'+') || b.is_empty() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(term: &str, region: &str) -> (Vec<String>, Option<String>) {
        let p = phone_search(term, region).expect("a phone search");
        (p.prefixes, p.suffix)
    }

    #[test]
    fn national_input_uses_the_default_region() {
        assert_eq!(
            s("(415) 555", "US"),
            (
                vec!["+1415555".into(), "+415555".into()],
                Some("415555".into())
            )
        );
        // The NANP trunk prefix 1 is dropped.
        assert_eq!(s("1-415-55", "US").0[0], "+141555");
        // Great Britain dials nationally with a leading 0, which is not part of E.164.
        assert_eq!(
            s("020 7946", "GB"),
            (vec!["+44207946".into()], Some("0207946".into()))
        );
        assert_eq!(s("5552671", "US").1.as_deref(), Some("5552671"));
    }

    #[test]
    fn whole_and_international_numbers_are_exact() {
        assert_eq!(
            s("(415) 555-2671", "US"),
            (vec!["+14155552671".into()], None)
        );
        assert_eq!(
            s("020 7946 0958", "GB"),
            (vec!["+442079460958".into()], None)
        );
        assert_eq!(s("+44 20 79", "US"), (vec!["+442079".into()], None));
        assert_eq!(s("0044 20 79", "US"), (vec!["+442079".into()], None));
    }

    #[test]
    fn only_phone_like_input() {
        for t in ["ann", "12", "ann 415", "a@b.co", "", "+", "1 2"] {
            assert_eq!(phone_search(t, "US"), None, "{t:?}");
        }
        assert!(looks_like_phone(" +1 (415) 555-2671 "));
        // An unknown region still searches internationally.
        assert_eq!(s("4155", "ZZ").0, vec!["+4155".to_string()]);
    }

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound("+1415").as_deref(), Some("+1416"));
        assert_eq!(prefix_upper_bound("+1419").as_deref(), Some("+142"));
        assert_eq!(prefix_upper_bound("+1999").as_deref(), Some("+2"));
        assert_eq!(prefix_upper_bound("+99"), None);
        // Every value that starts with the prefix is inside [prefix, upper);
        // every other value is outside.
        let prefix = "+1419";
        let up = prefix_upper_bound(prefix).unwrap();
        for v in ["+1419", "+14190000000", "+14199999999"] {
            assert!(v >= prefix && v < up.as_str(), "{v}");
        }
        for v in ["+1418999", "+142", "+14200000000", "+2"] {
            assert!(!(v >= prefix && v < up.as_str()), "{v}");
        }
    }
}
