//! Money strings: arbitrary text at every exponent. Must never panic, and
//! whatever parses must print back to the same amount.
#![no_main]

use bos_core::intake::parse_minor_units;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u8)| {
    let (s, exp) = input;
    let exp = u32::from(exp % 4);
    if let Ok(units) = parse_minor_units(s, exp) {
        // Round trip through the canonical form: "{int}.{frac}".
        let scale = 10i64.pow(exp);
        let canonical = if exp == 0 {
            units.to_string()
        } else {
            format!(
                "{}.{:0width$}",
                units / scale,
                units % scale,
                width = exp as usize
            )
        };
        assert_eq!(parse_minor_units(&canonical, exp), Ok(units));
    }
});
