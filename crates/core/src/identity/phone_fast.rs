//! A fast path for phone numbers in the shapes people and exports write
//! most, with the organization's default region `US`:
//!
//! - North American (+1, NANP): `4155550101`, `(415) 555-0101`,
//!   `415.555.0101`, `+1 415-555-0101`, `1-415-555-0101`, …
//! - international, with a `+` and digits in space-separated groups:
//!   `+44 20 7946 0958`, `+442079460958`.
//!
//! Why: the `phonenumber` crate takes ~9 µs per North American number and
//! ~14 µs per British one, and every regular expression it uses goes through
//! one global `Mutex` (with an LRU keyed by the pattern text), so it does
//! not scale across threads either. An import of a million contacts would
//! spend its time there.
//!
//! Soundness: this path returns exactly what the slow path returns for a
//! valid number, and declines anything else to the slow path. It reads the
//! digits only from the shapes above, then checks validity with the crate's
//! own metadata (the same patterns, the same regex engine and flags)
//! following the crate's `validator::is_valid` step by step: pick the region
//! of the country code (`source_for`), then ask whether the number has a
//! known type (`number_type != Unknown`). The tests in `normalize.rs`
//! compare both paths on every area code, every country's example numbers,
//! and random shapes.

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

/// One descriptor of the metadata: its possible lengths and its national
/// number pattern anchored at the start.
#[derive(Clone)]
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

#[derive(Clone)]
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

/// The regions of one country code, in the crate's order (`source_for`
/// walks them in that order), each compiled on first use: for +1 the US
/// comes first and decides almost every number, and compiling all 25 NANP
/// regions up front would cost ~90 ms.
struct Code {
    regions: Vec<(&'static Metadata, OnceLock<Option<Region>>)>,
}

fn build(code: u16) -> Option<Code> {
    let ids = DATABASE.region(&code)?;
    let regions = if let [id] = ids.as_slice() {
        // One region: `source_for` takes it without any check, through the
        // code for non-geographic entities ("001") and by id otherwise.
        let meta = if *id == "001" {
            *DATABASE.by_code(&code)?.first()?
        } else {
            id.parse::<phonenumber::country::Id>().ok()?;
            DATABASE.by_id(*id)?
        };
        vec![(meta, OnceLock::new())]
    } else {
        ids.iter()
            .map(|id| Some((DATABASE.by_id(*id)?, OnceLock::new())))
            .collect::<Option<Vec<_>>>()?
    };
    Some(Code { regions })
}

fn code(code: u16) -> Option<&'static Code> {
    // `DATABASE` is a lazily built static, so the metadata lives forever.
    static CODES: OnceLock<Vec<OnceLock<Option<Code>>>> = OnceLock::new();
    let codes = CODES.get_or_init(|| (0..1000).map(|_| OnceLock::new()).collect());
    codes
        .get(code as usize)?
        .get_or_init(|| build(code))
        .as_ref()
}

/// This thread's copy of region `index` of country code `cc` (compiled
/// once per process, on first use). A `Regex` keeps its scratch space in a
/// pool that is fast only for the first thread using it; the others take a
/// mutex on every match, which showed in profiles of two parser threads. A
/// clone gets its own pool, so each thread uses its own clone.
fn local_region(cc: u16, index: usize) -> Option<Rc<Region>> {
    /// (country code, region index) and this thread's clone of the region.
    type LocalRegion = ((u16, usize), Option<Rc<Region>>);
    thread_local! {
        static LOCAL: RefCell<Vec<LocalRegion>> = const { RefCell::new(Vec::new()) };
    }
    LOCAL.with(|local| {
        if let Some((_, r)) = local.borrow().iter().find(|(key, _)| *key == (cc, index)) {
            return r.clone();
        }
        let (meta, compiled) = code(cc)?.regions.get(index)?;
        let r = compiled
            .get_or_init(|| region(meta))
            .as_ref()
            .map(|r| Rc::new(r.clone()));
        local.borrow_mut().push(((cc, index), r.clone()));
        r
    })
}

/// `phonenumber::is_valid` for country code `cc` and this national number;
/// `None` if the code is unknown or a region's metadata does not compile
/// here (then the slow path decides).
fn is_valid(cc: u16, national: &str) -> Option<bool> {
    let regions = code(cc)?.regions.len();
    if regions == 1 {
        return Some(local_region(cc, 0)?.known_type(national));
    }
    for index in 0..regions {
        let r = local_region(cc, index)?;
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

/// The ten national digits of `v` if it has one of the shapes this path
/// knows and an area code that starts with 2–9; `None` otherwise.
///
/// ```text
/// [ "+1" | "1" ] [sep]  ( "(" ddd ")" [" "] | ddd [sep] )  ddd [sep] dddd
/// sep = " " | "-" | "."
/// ```
///
/// except that "+1" with no separator after it takes digits only.
fn nanp_digits(v: &[u8]) -> Option<[u8; 10]> {
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

/// `+` then digits, in groups separated by single spaces: the country code
/// (the first of 1–3 leading digits that is one, as the crate takes it), the
/// length of that code and the number of digits, all written to `buf`. Declines a national number that starts with 0 (the
/// crate keeps such zeros apart) or 1 (the US national prefix, which the
/// crate strips from any number parsed with region US), or whose length the
/// crate rejects on its own.
fn international(v: &[u8], buf: &mut [u8; 17]) -> Option<(u16, usize, usize)> {
    let rest = v.strip_prefix(b"+")?;
    let mut n = 0;
    let mut prev_space = true;
    for &c in rest {
        if c.is_ascii_digit() {
            *buf.get_mut(n)? = c;
            n += 1;
            prev_space = false;
        } else if c == b' ' && !prev_space {
            prev_space = true;
        } else {
            return None;
        }
    }
    if prev_space {
        return None;
    }
    let digits = &buf[..n];
    if digits.first() == Some(&b'0') {
        return None;
    }
    let len = (1..=3.min(n)).find(|&len| {
        std::str::from_utf8(&digits[..len])
            .ok()
            .and_then(|c| c.parse::<u16>().ok())
            .is_some_and(|c| DATABASE.by_code(&c).is_some())
    })?;
    let code: u16 = std::str::from_utf8(&digits[..len]).ok()?.parse().ok()?;
    let national = &digits[len..];
    if !(4..=15).contains(&national.len()) || matches!(national[0], b'0' | b'1') {
        return None;
    }
    Some((code, len, n))
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
    let b = v.as_bytes();
    let mut buf = [0u8; 17];
    let (cc, national): (u16, &[u8]) = if let Some(d) = nanp_digits(b) {
        buf[..10].copy_from_slice(&d);
        (1, &buf[..10])
    } else if let Some((cc, len, n)) = international(b, &mut buf) {
        (cc, &buf[len..n])
    } else {
        return false;
    };
    let Ok(national) = std::str::from_utf8(national) else {
        return false;
    };
    if is_valid(cc, national) == Some(true) {
        out.push('+');
        out.push_str(&cc.to_string());
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
        let d = |s: &str| nanp_digits(s.as_bytes()).map(|d| String::from_utf8(d.to_vec()).unwrap());
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
        assert!(
            code(1).is_some() && code(44).is_some(),
            "the metadata compiles"
        );
        let mut out = String::new();
        // The path decides valid numbers and leaves the rest to the slow
        // path; the agreement itself is tested in `normalize.rs`.
        assert!(phone("(415) 555-2671", "US", &mut out));
        assert_eq!(out, "+14155552671");
        assert!(phone("+1 604 555 2671", "us", &mut out), "Canada");
        assert!(!phone("(211) 555-2671", "US", &mut out));
        assert!(!phone("(415) 555-2671", "GB", &mut out));
        assert_eq!(out, "+14155552671+16045552671");
        out.clear();
        assert!(phone("+44 20 7946 0958", "US", &mut out));
        assert!(phone("+442079460958", "US", &mut out));
        assert_eq!(out, "+442079460958+442079460958");
        assert!(!phone("+44 020 7946 0958", "US", &mut out), "leading zero");
        assert!(!phone("+44  20 7946 0958", "US", &mut out), "double space");
    }
}
