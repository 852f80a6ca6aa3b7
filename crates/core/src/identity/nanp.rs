//! A fast path for North American (+1, NANP) phone numbers written in the
//! everyday shapes — `4155550101`, `(415) 555-0101`, `415.555.0101`,
//! `+1 415-555-0101`, `1-415-555-0101` — with the organization's default
//! region `US`.
//!
//! Why: the `phonenumber` crate takes ~9 µs per number, and every regular
//! expression it uses goes through one global `Mutex` and a 100-entry LRU
//! that the NANP metadata alone overflows, so it neither scales across
//! threads nor stays warm. An import of a million contacts would spend its
//! time there.
//!
//! Soundness: this path returns exactly what the slow path returns for a
//! valid number, and declines anything else to the slow path. It reads the digits only
//! from the shapes above, then checks validity with the crate's own
//! metadata (the same patterns, the same regex engine and flags) following
//! the crate's `validator::is_valid` step by step: pick the region of +1
//! (`source_for`), then ask whether the number has a known type
//! (`number_type != Unknown`). The property tests in `normalize.rs` compare
//! both paths on every area code and on random shapes.

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};
use std::sync::OnceLock;

/// One descriptor of the metadata: its possible lengths and its national
/// number pattern anchored at the start.
struct Desc {
    lengths: Vec<u16>,
    re: Regex,
}

impl Desc {
    /// `phonenumber::metadata::Descriptor::is_match`: a length check, then
    /// "the leftmost match starts at 0", which is exactly "a match starting
    /// at 0 exists", i.e. the pattern anchored with `^`.
    fn is_match(&self, v: &str) -> bool {
        if !self.lengths.is_empty() && !self.lengths.contains(&(v.len() as u16)) {
            return false;
        }
        self.re.is_match(v)
    }
}

struct Region {
    leading: Option<Regex>,
    general: Desc,
    /// Every descriptor that `number_type` checks after `general`. Any match
    /// makes the type known; which one does not matter for validity, so the
    /// most common (fixed line, mobile) come first.
    types: Vec<Desc>,
}

impl Region {
    /// `number_type(meta, v) != Type::Unknown`.
    fn known_type(&self, v: &str) -> bool {
        self.general.is_match(v) && self.types.iter().any(|d| d.is_match(v))
    }
}

struct Nanp {
    /// The regions of country code 1 in the crate's order (`source_for`
    /// walks them in that order), each compiled on first use: the US comes
    /// first and decides almost every number, and compiling all 25 regions
    /// up front costs ~90 ms.
    regions: Vec<(&'static Metadata, OnceLock<Option<Region>>)>,
}

/// Compiles a metadata pattern as the crate does (`ignore_whitespace`,
/// other flags at their defaults), anchored at the start. The newlines keep
/// a trailing `#` comment of the pattern from swallowing the parenthesis.
fn anchored(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:\n{pattern}\n)"))
        .ignore_whitespace(true)
        .size_limit(10 * (1 << 20))
        .dfa_size_limit(2 * (1 << 20))
        .build()
        .ok()
}

fn desc(d: &Descriptor) -> Option<Desc> {
    Some(Desc {
        lengths: d.possible_length().to_vec(),
        re: anchored(d.national_number().as_str())?,
    })
}

fn region(meta: &Metadata) -> Option<Region> {
    let d = meta.descriptors();
    let mut types = Vec::new();
    for t in [
        d.fixed_line(),
        d.mobile(),
        d.premium_rate(),
        d.toll_free(),
        d.shared_cost(),
        d.voip(),
        d.personal_number(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
    .into_iter()
    .flatten()
    {
        types.push(desc(t)?);
    }
    Some(Region {
        leading: match meta.leading_digits() {
            Some(re) => Some(anchored(re.as_str())?),
            None => None,
        },
        general: desc(d.general())?,
        types,
    })
}

fn build() -> Option<Nanp> {
    let ids = DATABASE.region(&1)?;
    // With a single region `source_for` takes it without any check; the
    // walk below assumes several (as NANP has), so decline otherwise.
    if ids.len() < 2 {
        return None;
    }
    let regions = ids
        .iter()
        .map(|id| Some((DATABASE.by_id(*id)?, OnceLock::new())))
        .collect::<Option<Vec<_>>>()?;
    Some(Nanp { regions })
}

fn nanp() -> Option<&'static Nanp> {
    // `DATABASE` is a lazily built static, so the metadata lives forever.
    static NANP: OnceLock<Option<Nanp>> = OnceLock::new();
    NANP.get_or_init(build).as_ref()
}

impl Nanp {
    /// `phonenumber::is_valid` for country code 1 and this national number;
    /// `None` if a region's metadata does not compile here (then the slow
    /// path decides).
    fn is_valid(&self, national: &str) -> Option<bool> {
        for (meta, compiled) in &self.regions {
            let r = compiled.get_or_init(|| region(meta)).as_ref()?;
            match &r.leading {
                Some(re) => {
                    if re.is_match(national) {
                        return Some(r.known_type(national));
                    }
                }
                None => {
                    if r.known_type(national) {
                        return Some(true);
                    }
                }
            }
        }
        Some(false)
    }
}

/// The ten national digits of `v` if it has one of the shapes this path
/// knows and an area code that starts with 2–9; `None` otherwise.
///
/// ```text
/// [ "+1" | "1" ] [sep]  ( "(" ddd ")" [" "] | ddd [sep] )  ddd [sep] dddd
/// sep = " " | "-" | "."
/// ```
///
/// except that "+1" with no separator after it takes digits only.
fn digits(v: &[u8]) -> Option<[u8; 10]> {
    let sep = |c: Option<&u8>| matches!(c, Some(b' ' | b'-' | b'.'));
    let mut out = [0u8; 10];
    let mut i = 0;
    if v.first() == Some(&b'+') {
        if v.get(1) != Some(&b'1') {
            return None;
        }
        i = 2;
        if sep(v.get(i)) {
            i += 1;
        } else if !v[i..].iter().all(u8::is_ascii_digit) {
            // The crate's parser refuses "+1415-555-0101" and
            // "+1415.555.0101" (yet reads "+1415 555 0101"): with nothing
            // after "+1", only the plain "+14155550101" is taken here.
            return None;
        }
    } else if v.first() == Some(&b'1') {
        i = 1;
        if sep(v.get(i)) {
            i += 1;
        }
    }
    let mut take = |i: &mut usize, n: usize, at: usize| -> Option<()> {
        for k in 0..n {
            let c = *v.get(*i + k)?;
            if !c.is_ascii_digit() {
                return None;
            }
            out[at + k] = c;
        }
        *i += n;
        Some(())
    };
    if v.get(i) == Some(&b'(') {
        i += 1;
        take(&mut i, 3, 0)?;
        if v.get(i) != Some(&b')') {
            return None;
        }
        i += 1;
        if v.get(i) == Some(&b' ') {
            i += 1;
        }
    } else {
        take(&mut i, 3, 0)?;
        if sep(v.get(i)) {
            i += 1;
        }
    }
    take(&mut i, 3, 3)?;
    if sep(v.get(i)) {
        i += 1;
    }
    take(&mut i, 4, 6)?;
    if i != v.len() || !(b'2'..=b'9').contains(&out[0]) {
        return None;
    }
    Some(out)
}

/// The fast path: appends the E.164 form of `v` (trimmed) to `out` and
/// returns true when it is a valid number in a shape this path reads;
/// returns false, leaving `out` alone, when the slow path must decide. An
/// invalid number goes to the slow path too: they are rare, and it words
/// the error (its parser and its validator reject different inputs).
pub(crate) fn phone(v: &str, region: &str, out: &mut String) -> bool {
    if !region.trim().eq_ignore_ascii_case("US") {
        return false;
    }
    let Some(d) = digits(v.as_bytes()) else {
        return false;
    };
    let Ok(national) = std::str::from_utf8(&d) else {
        return false;
    };
    if nanp().and_then(|n| n.is_valid(national)) == Some(true) {
        out.push_str("+1");
        out.push_str(national);
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let d = |s: &str| digits(s.as_bytes()).map(|d| String::from_utf8(d.to_vec()).unwrap());
        for s in [
            "4155550101",
            "(415) 555-0101",
            "(415)555-0101",
            "415-555-0101",
            "415.555.0101",
            "415 555 0101",
            "+1 415-555-0101",
            "+14155550101",
            "+1 (415) 555-0101",
            "+1-415-555-0101",
            "1-415-555-0101",
            "14155550101",
        ] {
            assert_eq!(d(s).as_deref(), Some("4155550101"), "{s}");
        }
        for s in [
            "415555010",
            "41555501011",
            "+2 415 555 0101",
            "+44 20 7946 0958",
            "+1415-555-0101",
            "+1(415) 555-0101",
            "(415 555-0101",
            "415--555-0101",
            "1234567890",
            "0155550101",
            "415-555-0101 x12",
            "",
        ] {
            assert_eq!(d(s), None, "{s}");
        }
    }

    #[test]
    fn metadata_is_understood() {
        assert!(nanp().is_some(), "the +1 metadata compiles");
        let mut out = String::new();
        // The path decides valid numbers and leaves the rest to the slow
        // path; the agreement itself is tested in `normalize.rs`.
        assert!(phone("(415) 555-2671", "US", &mut out));
        assert_eq!(out, "+14155552671");
        assert!(phone("+1 604 555 2671", "us", &mut out), "Canada");
        assert!(!phone("(211) 555-2671", "US", &mut out));
        assert!(!phone("(415) 555-2671", "GB", &mut out));
        assert_eq!(out, "+14155552671+16045552671");
    }
}
