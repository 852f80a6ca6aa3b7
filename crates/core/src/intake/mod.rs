//! The pure half of webhook and tracking intake (SPEC IN1, IN2): signature
//! verification over raw bytes, and parsing of provider payloads into typed
//! values with the identity fields, money in integer minor units and the
//! dedupe key each provider documents (PROVIDERS.md). No HTTP, no clock, no
//! database: the web shell hands in header values, the raw body and `now`,
//! and stores what comes back.
//!
//! Every function here takes hostile input. None of them panics on any bytes
//! (RELIABILITY S13: the fuzz targets in `fuzz/` and the no-panic property
//! tests below drive them with arbitrary input).

use crate::Millis;

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

/// Arbitrary input into every parser: none may panic (RELIABILITY S13).
#[cfg(test)]
mod no_panic_tests;

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

    proptest! {
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
