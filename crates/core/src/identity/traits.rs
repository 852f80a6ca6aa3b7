//! Custom profile traits: which of the properties an event or a caller
//! sends about a person are kept on the profile (`profiles.traits`), where
//! nudge templates read them as `{{ traits.<name> }}` and the sender reads
//! `timezone` and `preferred_channel`.
//!
//! The rules are the ones a template engine and a merge can live with:
//! - names are identifiers (`[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes), so
//!   `traits.<name>` is always a valid template path;
//! - values are scalars (string, number, boolean); objects and arrays
//!   (Segment's `address`, `company` objects) are not flattened, because a
//!   guessed flattening is a name nobody chose;
//! - strings are trimmed and at most [`MAX_VALUE_CHARS`] characters; an
//!   empty string means "not given", never "erase";
//! - the identity and name fields (`email`, `firstName`, …) are not traits:
//!   they are identifiers and profile columns, handled elsewhere;
//! - at most [`MAX_TRAITS`] per call, the first in name order, and at most
//!   [`MAX_TRAITS_BYTES`] of names and values together;
//! - a person's first name, last name and company are at most
//!   [`MAX_PERSON_NAME_CHARS`] characters each, without control characters:
//!   the API refuses longer ones ([`check_person_name`]), data from
//!   providers is cut to fit ([`clip_person_name`]). Every page shows them.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const MAX_TRAITS: usize = 64;
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_VALUE_CHARS: usize = 500;
/// Names and values of one call's traits together, in bytes.
pub const MAX_TRAITS_BYTES: usize = 16 * 1024;
/// A first name, last name or company.
pub const MAX_PERSON_NAME_CHARS: usize = 200;

/// A name field as given to the API: trimmed, or why it is refused.
pub fn check_person_name(value: &str) -> Result<String, String> {
    let t = value.trim();
    if t.chars().count() > MAX_PERSON_NAME_CHARS {
        return Err(format!(
            "at most {MAX_PERSON_NAME_CHARS} characters (this one has {})",
            t.chars().count()
        ));
    }
    if t.chars().any(char::is_control) {
        return Err("no control characters (tabs, line breaks, NUL)".into());
    }
    Ok(t.to_string())
}

/// A name field from a provider, made to fit: control characters become
/// spaces, and it is cut at [`MAX_PERSON_NAME_CHARS`] characters.
pub fn clip_person_name(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_PERSON_NAME_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Keys that are identifiers or profile columns, in the spellings the
/// intake and the API accept (Segment's spec names and snake/camel variants).
const RESERVED: &[&str] = &[
    "email",
    "Email",
    "e-mail",
    "phone",
    "Phone",
    "phone_number",
    "mobile",
    "name",
    "first_name",
    "firstName",
    "last_name",
    "lastName",
    "company",
    "id",
    "userId",
    "user_id",
    "anonymousId",
    "anonymous_id",
];

/// One property that was not kept, and why (the API reports these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraitProblem {
    pub name: String,
    pub reason: &'static str,
}

/// The custom traits in `m`, and the properties that were not kept.
/// Reserved keys are neither kept nor reported: they are read elsewhere.
pub fn custom_traits(m: &Map<String, Value>) -> (BTreeMap<String, Value>, Vec<TraitProblem>) {
    let mut kept = BTreeMap::new();
    let mut problems = Vec::new();
    let mut bytes = 0usize;
    for (k, v) in m {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        let problem = |reason| TraitProblem {
            name: k.chars().take(MAX_NAME_BYTES).collect(),
            reason,
        };
        if !valid_name(k) {
            problems.push(problem(
                "a trait name is letters, digits and _ (not first), at most 64 long",
            ));
            continue;
        }
        let value = match v {
            Value::String(s) => {
                let t = s.trim();
                if t.is_empty() {
                    continue;
                }
                Value::from(t.chars().take(MAX_VALUE_CHARS).collect::<String>())
            }
            Value::Number(_) | Value::Bool(_) => v.clone(),
            Value::Null => continue,
            Value::Array(_) | Value::Object(_) => {
                problems.push(problem(
                    "a trait is a string, number or boolean; lists and objects are not kept",
                ));
                continue;
            }
        };
        if kept.len() == MAX_TRAITS {
            problems.push(problem("more than 64 traits in one call"));
            continue;
        }
        let size = k.len() + value.to_string().len();
        if bytes + size > MAX_TRAITS_BYTES {
            problems.push(problem(
                "the traits of one call total more than 16 KiB: send fewer or shorter ones",
            ));
            continue;
        }
        bytes += size;
        kept.insert(k.clone(), value);
    }
    (kept, problems)
}

/// Whether `name` is an identifier or a profile column rather than a trait.
pub fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

/// Whether `name` can be a trait (and so a `traits.<name>` template path).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_BYTES
}

/// `given` laid over `current`: given values win, the rest stay. Returns
/// the result and whether it differs from `current`.
pub fn overlay(
    current: &Map<String, Value>,
    given: &BTreeMap<String, Value>,
) -> (Map<String, Value>, bool) {
    let mut out = current.clone();
    let mut changed = false;
    for (k, v) in given {
        if out.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    (out, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn person_names_are_capped() {
        assert_eq!(check_person_name("  Ann ").unwrap(), "Ann");
        assert!(check_person_name(&"é".repeat(MAX_PERSON_NAME_CHARS)).is_ok());
        let long = "x".repeat(1_000_000);
        assert!(check_person_name(&long)
            .unwrap_err()
            .contains("at most 200"));
        assert!(check_person_name("a\nb").is_err());
        assert_eq!(clip_person_name(&long).len(), MAX_PERSON_NAME_CHARS);
        assert_eq!(clip_person_name(" Ann\tLee\u{0} "), "Ann Lee");
        assert_eq!(
            clip_person_name(&"é".repeat(300)).chars().count(),
            MAX_PERSON_NAME_CHARS
        );
    }

    #[test]
    fn traits_total_at_most_16_kib() {
        let mut m = Map::new();
        for i in 0..60 {
            m.insert(format!("t{i:02}"), Value::from("v".repeat(MAX_VALUE_CHARS)));
        }
        let (kept, problems) = custom_traits(&m);
        let total: usize = kept
            .iter()
            .map(|(k, v)| k.len() + v.to_string().len())
            .sum();
        assert!(total <= MAX_TRAITS_BYTES, "{total}");
        assert!(kept.len() < 60 && !kept.is_empty());
        assert_eq!(problems.len(), 60 - kept.len());
        assert!(problems[0].reason.contains("16 KiB"));
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn scalars_are_kept_and_identity_fields_are_not_traits() {
        let (kept, problems) = custom_traits(&obj(json!({
            "email": "a@b.co", "firstName": "Ann", "company": "Acme",
            "plan": " gold ", "seats": 12, "vip": true, "empty": "  ", "gone": null
        })));
        assert_eq!(
            kept,
            BTreeMap::from([
                ("plan".to_string(), json!("gold")),
                ("seats".to_string(), json!(12)),
                ("vip".to_string(), json!(true)),
            ])
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn objects_lists_and_bad_names_are_reported_not_kept() {
        let (kept, problems) = custom_traits(&obj(json!({
            "address": {"city": "Paris"}, "tags": ["a"], "favourite colour": "red", "9lives": "x"
        })));
        assert!(kept.is_empty());
        let names: Vec<&str> = problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["9lives", "address", "favourite colour", "tags"]);
    }

    #[test]
    fn long_values_are_clipped_and_the_count_is_bounded() {
        let mut m = Map::new();
        m.insert("note".into(), Value::from("é".repeat(2_000)));
        for i in 0..100 {
            m.insert(format!("t{i:03}"), Value::from(i));
        }
        let (kept, problems) = custom_traits(&m);
        assert_eq!(kept.len(), MAX_TRAITS);
        assert_eq!(problems.len(), 101 - MAX_TRAITS);
        assert_eq!(
            kept.get("note")
                .and_then(Value::as_str)
                .map(|s| s.chars().count()),
            Some(MAX_VALUE_CHARS)
        );
    }

    #[test]
    fn overlay_says_whether_anything_changed() {
        let cur = obj(json!({"plan": "gold", "tz": "UTC"}));
        let (out, changed) = overlay(&cur, &BTreeMap::from([("plan".into(), json!("gold"))]));
        assert!(!changed);
        assert_eq!(out, cur);
        let (out, changed) = overlay(&cur, &BTreeMap::from([("plan".into(), json!("silver"))]));
        assert!(changed);
        assert_eq!(out, obj(json!({"plan": "silver", "tz": "UTC"})));
    }

    proptest! {
        #[test]
        fn every_kept_name_is_a_template_path(keys in proptest::collection::vec(".{0,80}", 0..20)) {
            let m: Map<String, Value> = keys.iter().map(|k| (k.clone(), Value::from("v"))).collect();
            let (kept, problems) = custom_traits(&m);
            prop_assert!(kept.len() + problems.len() <= m.len());
            for k in kept.keys() {
                prop_assert!(valid_name(k));
                prop_assert!(!RESERVED.contains(&k.as_str()));
            }
        }

        #[test]
        fn overlaying_twice_changes_nothing_the_second_time(
            given in proptest::collection::btree_map("[a-z]{1,4}", 0i64..5, 0..6)
        ) {
            let given: BTreeMap<String, Value> = given.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
            let (once, _) = overlay(&Map::new(), &given);
            let (twice, changed) = overlay(&once, &given);
            prop_assert!(!changed);
            prop_assert_eq!(once, twice);
        }
    }
}
