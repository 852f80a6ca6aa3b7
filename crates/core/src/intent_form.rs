//! Intent rules as a form edits them: one plain condition per row, as a
//! kind and up to two text values, and back. This module owns that mapping
//! (the kinds a form offers and their words, reading what a person typed
//! into a [`Condition`], showing a stored condition as text again), new
//! rule ids taken from names, and where a [`RuleError`] belongs on a form.
//! Groups (`all` / `any`) have no row shape: a form shows them read-only and
//! keeps them as they are. Validation stays [`IntentRules::validate`]; this
//! module only turns text into the shape that validation checks.

use crate::intent::{format_cents, Condition, RuleError, MAX_ID_CHARS};

/// The plain condition kinds in the order a form offers them:
/// (stored `type`, what the select says, what the value field holds).
pub const PLAIN_KINDS: [(&str, &str, &str); 9] = [
    (
        "event_type",
        "Event type is",
        "event type, e.g. checkout_started",
    ),
    (
        "event_name",
        "Tracked event named",
        "event name, e.g. Product Viewed",
    ),
    (
        "cart_value_at_least",
        "Cart value at least",
        "amount, e.g. 100.00",
    ),
    (
        "form_field",
        "Form field filled in",
        "field name, e.g. email",
    ),
    (
        "pages_viewed_at_least",
        "Pages viewed at least",
        "number of pages",
    ),
    ("visits_at_least", "Visits at least", "number of visits"),
    ("utm_source", "UTM source is", "source, e.g. google"),
    ("utm_medium", "UTM medium is", "medium, e.g. cpc"),
    ("ad_click", "Came from an ad click", "nothing to fill in"),
];

/// Event types the pipeline gives events, for a form's suggestions.
pub const EVENT_TYPES: [&str; 11] = [
    "identify",
    "track",
    "page",
    "alias",
    "form_started",
    "form_submitted",
    "checkout_started",
    "cart_updated",
    "order_placed",
    "customer_created",
    "webhook",
];

/// Why a row's text is not a condition; each message says what to type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("choose what the rule looks at")]
    UnknownKind,
    #[error("fill in the {0}")]
    Empty(&'static str),
    #[error("the number of {0} must be a whole number of 0 or more, like 5")]
    NotCount(&'static str),
    #[error("the cart value must be an amount of 0 or more, like 100 or 99.50")]
    NotAmount,
    #[error("points must be a whole number from -100 to 100, like 20 or -10")]
    NotPoints,
}

/// Which part of a rule set a [`RuleError`] is about, so a form can put the
/// message next to that field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulePart {
    /// The set as a whole (too many rules).
    RuleSet,
    Thresholds,
    Id,
    Name,
    Points,
    Condition,
}

impl RuleError {
    /// The rule the error names, when it names one by id.
    pub fn rule_id(&self) -> Option<&str> {
        match self {
            RuleError::BadId { id }
            | RuleError::DuplicateId { id }
            | RuleError::EmptyName { id }
            | RuleError::NameTooLong { id, .. }
            | RuleError::PointsOutOfRange { id, .. }
            | RuleError::NegativeCents { id }
            | RuleError::EmptyValue { id, .. }
            | RuleError::EmptyGroup { id }
            | RuleError::TooDeep { id, .. } => Some(id),
            RuleError::TooMany(_) | RuleError::EmptyId { .. } | RuleError::Thresholds { .. } => {
                None
            }
        }
    }

    /// The rule's 1-based position, when the error names it by position
    /// (a rule without an id has nothing else to name it by).
    pub fn position(&self) -> Option<usize> {
        match self {
            RuleError::EmptyId { position } => Some(*position),
            _ => None,
        }
    }

    pub fn part(&self) -> RulePart {
        match self {
            RuleError::TooMany(_) => RulePart::RuleSet,
            RuleError::Thresholds { .. } => RulePart::Thresholds,
            RuleError::EmptyId { .. } | RuleError::BadId { .. } | RuleError::DuplicateId { .. } => {
                RulePart::Id
            }
            RuleError::EmptyName { .. } | RuleError::NameTooLong { .. } => RulePart::Name,
            RuleError::PointsOutOfRange { .. } => RulePart::Points,
            RuleError::NegativeCents { .. }
            | RuleError::EmptyValue { .. }
            | RuleError::EmptyGroup { .. }
            | RuleError::TooDeep { .. } => RulePart::Condition,
        }
    }
}

/// A plain condition as a form shows it: (kind, value, equals). `None` for
/// a group, which has no row shape.
pub fn to_parts(c: &Condition) -> Option<(&'static str, String, String)> {
    Some(match c {
        Condition::EventType { is } => ("event_type", is.clone(), String::new()),
        Condition::EventName { is } => ("event_name", is.clone(), String::new()),
        Condition::CartValueAtLeast { cents } => {
            ("cart_value_at_least", amount_text(*cents), String::new())
        }
        Condition::FormField { field, equals } => (
            "form_field",
            field.clone(),
            equals.clone().unwrap_or_default(),
        ),
        Condition::PagesViewedAtLeast { count } => {
            ("pages_viewed_at_least", count.to_string(), String::new())
        }
        Condition::VisitsAtLeast { count } => ("visits_at_least", count.to_string(), String::new()),
        Condition::UtmSource { is } => ("utm_source", is.clone(), String::new()),
        Condition::UtmMedium { is } => ("utm_medium", is.clone(), String::new()),
        Condition::AdClick => ("ad_click", String::new(), String::new()),
        Condition::All { .. } | Condition::Any { .. } => return None,
    })
}

/// "100" for whole amounts, "99.50" otherwise: what a person would type.
fn amount_text(cents: i64) -> String {
    if cents % 100 == 0 {
        (cents / 100).to_string()
    } else {
        format_cents(cents)
    }
}

/// Reads "100", "100.5" or "99.50" as minor units; at most two decimals,
/// no sign (a negative cart value never holds).
fn parse_amount(v: &str) -> Option<i64> {
    let v = v.trim();
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 2 {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

fn parse_count(v: &str, what: &'static str) -> Result<u32, InputError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(InputError::Empty(what));
    }
    v.parse::<u32>().map_err(|_| InputError::NotCount(what))
}

/// A plain condition from what a form row holds. Text values are kept as
/// typed (trimmed); emptiness is reported here, in words for the row, and
/// the rule set's validation still runs on the result.
pub fn from_parts(kind: &str, value: &str, equals: &str) -> Result<Condition, InputError> {
    let text = |what: &'static str| {
        let v = value.trim();
        if v.is_empty() {
            Err(InputError::Empty(what))
        } else {
            Ok(v.to_string())
        }
    };
    Ok(match kind.trim() {
        "event_type" => Condition::EventType {
            is: text("event type")?,
        },
        "event_name" => Condition::EventName {
            is: text("event name")?,
        },
        "cart_value_at_least" => {
            if value.trim().is_empty() {
                return Err(InputError::Empty("cart value"));
            }
            Condition::CartValueAtLeast {
                cents: parse_amount(value).ok_or(InputError::NotAmount)?,
            }
        }
        "form_field" => Condition::FormField {
            field: text("form field name")?,
            equals: Some(equals.trim())
                .filter(|e| !e.is_empty())
                .map(str::to_string),
        },
        "pages_viewed_at_least" => Condition::PagesViewedAtLeast {
            count: parse_count(value, "pages")?,
        },
        "visits_at_least" => Condition::VisitsAtLeast {
            count: parse_count(value, "visits")?,
        },
        "utm_source" => Condition::UtmSource {
            is: text("UTM source")?,
        },
        "utm_medium" => Condition::UtmMedium {
            is: text("UTM medium")?,
        },
        "ad_click" => Condition::AdClick,
        _ => return Err(InputError::UnknownKind),
    })
}

/// Points as typed; the range is the rule set's validation's to check, so
/// the message is the same as for JSON.
pub fn parse_points(v: &str) -> Result<i32, InputError> {
    let v = v.trim().replace('\u{2212}', "-");
    v.strip_prefix('+')
        .unwrap_or(&v)
        .parse::<i32>()
        .map_err(|_| InputError::NotPoints)
}

/// A new rule's id from its name ("Big cart!" → "big-cart"), unique among
/// `taken` by a numeric suffix. Empty when the name has no letters or
/// digits, so validation asks for a name.
pub fn new_id(name: &str, taken: &[&str]) -> String {
    let mut slug = String::new();
    for ch in name.trim().chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(48).collect();
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() || !taken.contains(&slug.as_str()) {
        return slug;
    }
    (2..)
        .map(|n| format!("{slug}-{n}"))
        .find(|c| !taken.contains(&c.as_str()))
        .filter(|c| c.len() <= MAX_ID_CHARS)
        .unwrap_or(slug)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{IntentRules, Rule};
    use proptest::prelude::*;

    #[test]
    fn amounts_read_as_people_type_them() {
        assert_eq!(parse_amount("100"), Some(10_000));
        assert_eq!(parse_amount("99.5"), Some(9_950));
        assert_eq!(parse_amount(" 0.07 "), Some(7));
        assert_eq!(parse_amount(".5"), Some(50));
        for bad in [
            "",
            ".",
            "-5",
            "1.234",
            "1,000",
            "abc",
            "1e3",
            "99999999999999999999",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
        assert_eq!(amount_text(10_000), "100");
        assert_eq!(amount_text(9_950), "99.50");
    }

    #[test]
    fn rows_become_conditions_or_say_what_to_type() {
        assert_eq!(
            from_parts("cart_value_at_least", "150", ""),
            Ok(Condition::CartValueAtLeast { cents: 15_000 })
        );
        assert_eq!(
            from_parts("form_field", " email ", " "),
            Ok(Condition::FormField {
                field: "email".into(),
                equals: None
            })
        );
        assert_eq!(
            from_parts("ad_click", "ignored", ""),
            Ok(Condition::AdClick)
        );
        assert_eq!(
            from_parts("event_name", "  ", ""),
            Err(InputError::Empty("event name"))
        );
        assert_eq!(
            from_parts("visits_at_least", "-1", ""),
            Err(InputError::NotCount("visits"))
        );
        assert_eq!(
            from_parts("cart_value_at_least", "lots", ""),
            Err(InputError::NotAmount)
        );
        assert_eq!(from_parts("all", "", ""), Err(InputError::UnknownKind));
        assert_eq!(
            InputError::NotCount("pages").to_string(),
            "the number of pages must be a whole number of 0 or more, like 5"
        );
    }

    #[test]
    fn points_accept_signs_and_refuse_words() {
        assert_eq!(parse_points("+20"), Ok(20));
        assert_eq!(parse_points("−10"), Ok(-10));
        assert_eq!(parse_points("500"), Ok(500), "the range is validation's");
        assert_eq!(parse_points("ten"), Err(InputError::NotPoints));
        assert_eq!(parse_points("1.5"), Err(InputError::NotPoints));
    }

    #[test]
    fn ids_come_from_names_and_stay_unique() {
        assert_eq!(new_id("Big cart!", &[]), "big-cart");
        assert_eq!(new_id("  Came from Google  ", &[]), "came-from-google");
        assert_eq!(
            new_id("Big cart", &["big-cart", "big-cart-2"]),
            "big-cart-3"
        );
        assert_eq!(new_id("!!!", &[]), "");
        let long = "x".repeat(200);
        assert!(new_id(&long, &[]).len() <= MAX_ID_CHARS);
    }

    #[test]
    fn every_validation_error_has_a_place_on_the_form() {
        let rule = |id: &str, name: &str, points| Rule {
            id: id.into(),
            name: name.into(),
            when: Condition::AdClick,
            points,
        };
        let set = |rules| IntentRules {
            rules,
            thresholds: Default::default(),
        };
        let e = set(vec![rule("a", "A", 500)]).validate().unwrap_err();
        assert_eq!((e.rule_id(), e.part()), (Some("a"), RulePart::Points));
        let e = set(vec![rule("a", "A", 1), rule("", "B", 1)])
            .validate()
            .unwrap_err();
        assert_eq!((e.position(), e.part()), (Some(2), RulePart::Id));
        let e = set(vec![rule("a", " ", 1)]).validate().unwrap_err();
        assert_eq!((e.rule_id(), e.part()), (Some("a"), RulePart::Name));
        let mut bad = set(vec![]);
        bad.thresholds.engaged = 90;
        assert_eq!(bad.validate().unwrap_err().part(), RulePart::Thresholds);
    }

    fn plain() -> impl Strategy<Value = Condition> {
        let text = "[A-Za-z][A-Za-z _]{0,8}[A-Za-z]";
        prop_oneof![
            text.prop_map(|is| Condition::EventType { is }),
            text.prop_map(|is| Condition::EventName { is }),
            (0i64..10_000_000).prop_map(|cents| Condition::CartValueAtLeast { cents }),
            (text, proptest::option::of(text))
                .prop_map(|(field, equals)| Condition::FormField { field, equals }),
            any::<u32>().prop_map(|count| Condition::PagesViewedAtLeast { count }),
            any::<u32>().prop_map(|count| Condition::VisitsAtLeast { count }),
            text.prop_map(|is| Condition::UtmSource { is }),
            text.prop_map(|is| Condition::UtmMedium { is }),
            Just(Condition::AdClick),
        ]
    }

    proptest! {
        /// What the form shows for a plain condition reads back as the
        /// same condition, so saving an untouched form changes nothing.
        #[test]
        fn plain_conditions_round_trip_through_the_form(c in plain()) {
            let (kind, value, equals) = to_parts(&c).expect("plain");
            prop_assert!(PLAIN_KINDS.iter().any(|(k, _, _)| *k == kind));
            prop_assert_eq!(from_parts(kind, &value, &equals), Ok(c));
        }

        /// Any text at all is a condition or an error, never a panic.
        #[test]
        fn any_text_reads_without_panicking(kind in ".{0,24}", value in ".{0,24}", equals in ".{0,8}") {
            let _ = from_parts(&kind, &value, &equals);
            let _ = parse_points(&value);
            let id = new_id(&value, &[]);
            prop_assert!(id.len() <= MAX_ID_CHARS);
            prop_assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
    }
}
