//! The pure half of webhook and tracking intake: signature
//! verification over raw bytes, and parsing of provider payloads into typed
//! values with the identity fields, money in integer minor units and the
//! dedupe key each provider documents. No HTTP, no clock, no
//! database: the web shell hands in header values, the raw body and `now`,
//! and stores what comes back.
//!
//! Every function here takes hostile input. None of them panics on any bytes
//! (the fuzz targets in `fuzz/` and the no-panic property
//! tests below drive them with arbitrary input).

use crate::Millis;
use std::borrow::Cow;

/// Public web forms: urlencoded or JSON bodies, honeypot, dedupe keys.
pub mod form;
/// What a stored event means: identifiers, timeline entries, signals.
pub mod interpret;
/// Segment-spec tracking calls (identify, track, page, alias, batch).
pub mod segment;
/// Shopify webhooks: HMAC over the raw body, topics, typed payloads.
pub mod shopify;
/// Standard Webhooks: our default signed intake format.
pub mod standard_webhooks;

/// Arbitrary input into every parser: none may panic.
#[cfg(test)]
mod no_panic_tests;

/// JSON text with every `\u0000` escape taken out of its strings, keys
/// included; anything else is left byte for byte. U+0000 is the one
/// character PostgreSQL's `text` cannot hold, and SDKs send it now and then
/// (a C string's terminator in a name, a fuzzed form), so intake removes it
/// before a payload is parsed or stored: the event is kept, minus the NUL,
/// on both engines alike. Raw NUL bytes need nothing: JSON refuses them.
///
/// Borrowed, after one scan, when there is no NUL (nearly always). Not a
/// parser: on text that is not JSON the result is as invalid as the input.
pub fn without_nul(json: &[u8]) -> Cow<'_, [u8]> {
    const NUL: &[u8] = b"\\u0000";
    if !json.windows(NUL.len()).any(|w| w == NUL) {
        return Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(json.len());
    let mut in_string = false;
    let mut i = 0;
    while i < json.len() {
        let b = json[i];
        if !in_string {
            in_string = b == b'"';
            out.push(b);
            i += 1;
            continue;
        }
        match b {
            b'\\' if json[i..].starts_with(NUL) => i += NUL.len(),
            // An escape is two bytes: `\\` and `\"` must not end the
            // string or start another escape.
            b'\\' => {
                out.extend_from_slice(&json[i..(i + 2).min(json.len())]);
                i += 2;
            }
            _ => {
                in_string = b != b'"';
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// A string with its U+0000 characters removed (see [`without_nul`]).
pub fn strip_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// Why a money string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("money amount {0:?} is not a plain decimal number like \"19.99\"")]
    NotDecimal(String),
    #[error("money amount {0:?} has more decimal places than the currency's minor unit")]
    TooPrecise(String),
    #[error("money amount {0:?} is negative")]
    Negative(String),
    #[error("money amount {0:?} is too large")]
    TooLarge(String),
}

/// Decimal places of a currency's minor unit (ISO 4217). Most currencies use
/// two; the exceptions are listed so that "1500" JPY is 1500 yen, not 150000.
pub fn currency_exponent(code: &str) -> u32 {
    match code.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Parses a decimal money string ("19.99") into integer minor units with
/// `exponent` decimal places (2 → cents). Exact: goes through `rust_decimal`,
/// never `f64`, and refuses amounts that would need rounding.
///
/// Only plain `digits[.digits]` is accepted: no sign, exponent, spaces or
/// digit separators, which `Decimal`'s own parser would partly let through.
pub fn parse_minor_units(s: &str, exponent: u32) -> Result<i64, MoneyError> {
    use rust_decimal::prelude::ToPrimitive;
    use rust_decimal::Decimal;

    if s.starts_with('-') {
        return Err(MoneyError::Negative(s.to_owned()));
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) {
        return Err(MoneyError::NotDecimal(s.to_owned()));
    }
    // Strip trailing zeros of the fraction ourselves: "19.990" is exact in
    // cents, and long zero tails would otherwise overflow Decimal's 28 digits.
    let frac = frac.map(|f| f.trim_end_matches('0')).unwrap_or("");
    if frac.len() > exponent as usize {
        return Err(MoneyError::TooPrecise(s.to_owned()));
    }
    let int = int.trim_start_matches('0');
    let normalized = format!("{}.{}", if int.is_empty() { "0" } else { int }, frac);
    let too_large = || MoneyError::TooLarge(s.to_owned());
    let d = Decimal::from_str_exact(normalized.trim_end_matches('.')).map_err(|_| too_large())?;
    let factor = 10i64.checked_pow(exponent).ok_or_else(too_large)?;
    let scaled = d.checked_mul(Decimal::from(factor)).ok_or_else(too_large)?;
    if !scaled.fract().is_zero() {
        return Err(MoneyError::TooPrecise(s.to_owned()));
    }
    scaled.to_i64().ok_or_else(too_large)
}

/// Parses an RFC 3339 timestamp ("2024-03-05T10:12:33-05:00") to Millis.
/// `None` when it is not one; the caller names the field in its error.
pub(crate) fn parse_rfc3339_millis(s: &str) -> Option<Millis> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn money_parses_exactly() {
        assert_eq!(parse_minor_units("19.99", 2), Ok(1999));
        assert_eq!(parse_minor_units("0.10", 2), Ok(10));
        assert_eq!(parse_minor_units("1234567.5", 2), Ok(123456750));
        assert_eq!(parse_minor_units("0", 2), Ok(0));
        assert_eq!(
            parse_minor_units("19.990000000000000000000000000000000", 2),
            Ok(1999)
        );
        assert_eq!(
            parse_minor_units("000000000000000000000000000000001.00", 2),
            Ok(100)
        );
        assert_eq!(parse_minor_units("1500", 0), Ok(1500));
        assert_eq!(parse_minor_units("1.234", 3), Ok(1234));
        assert_eq!(parse_minor_units("92233720368547758.07", 2), Ok(i64::MAX));
    }

    #[test]
    fn money_rejects_garbage() {
        for bad in [
            "", ".", "1.", ".5", "abc", "1,00", "1e3", "1_000", " 1.00", "1.00 ", "+1", "NaN",
            "1.2.3", "١٢", "0x10",
        ] {
            assert!(
                matches!(parse_minor_units(bad, 2), Err(MoneyError::NotDecimal(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_minor_units("-1.00", 2),
            Err(MoneyError::Negative(_))
        ));
        assert!(matches!(
            parse_minor_units("19.999", 2),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_minor_units("1.5", 0),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_minor_units("92233720368547758.08", 2),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            parse_minor_units("99999999999999999999999999999999999", 2),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn currency_exponents() {
        assert_eq!(currency_exponent("USD"), 2);
        assert_eq!(currency_exponent("jpy"), 0);
        assert_eq!(currency_exponent("KWD"), 3);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_rfc3339_millis("2024-03-05T10:12:33-05:00"),
            Some(1_709_651_553_000)
        );
        assert_eq!(parse_rfc3339_millis("yesterday"), None);
    }

    #[test]
    fn nul_escapes_are_removed_from_strings_only() {
        let s = |b: &[u8]| String::from_utf8(without_nul(b).into_owned()).unwrap();
        assert_eq!(
            s(br#"{"na\u0000me":"A\u0000da","n":"\\u0000","q":"\"\u0000"}"#),
            r#"{"name":"Ada","n":"\\u0000","q":"\""}"#
        );
        assert!(matches!(without_nul(br#"{"a":"b"}"#), Cow::Borrowed(_)));
        // Outside a string it is not JSON either way: left as it was.
        assert_eq!(s(br#"[1, \u0000]"#), r#"[1, \u0000]"#);
        assert_eq!(strip_nul("a\0b\0"), "ab");
    }

    /// Every string of `v`, keys included, without U+0000.
    fn nul_free(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(s.replace('\0', "")),
            Value::Array(a) => Value::Array(a.into_iter().map(nul_free).collect()),
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| (k.replace('\0', ""), nul_free(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let text = "[a\\\\\"\0u0\\x{1}é]{0,8}";
        let leaf = prop_oneof![
            text.prop_map(Value::String),
            any::<i32>().prop_map(Value::from),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((text, inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn without_nul_is_the_same_json_minus_nul(v in json_value()) {
            let text = serde_json::to_vec(&v).unwrap();
            let clean = without_nul(&text);
            let back: serde_json::Value = serde_json::from_slice(&clean).unwrap();
            prop_assert_eq!(back, nul_free(v));
        }

        #[test]
        fn without_nul_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = without_nul(&b);
        }

        #[test]
        fn money_round_trips(units in 0i64..=i64::MAX) {
            let s = format!("{}.{:02}", units / 100, units % 100);
            prop_assert_eq!(parse_minor_units(&s, 2), Ok(units));
        }

        #[test]
        fn money_never_panics(s in ".{0,64}", exp in 0u32..4) {
            let _ = parse_minor_units(&s, exp);
        }
    }
}
