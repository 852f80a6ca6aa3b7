//! Intent classification: the per-tenant rules that turn what an
//! intake event tells us ([`Signals`]) into a 0–100 score and a [`Category`],
//! and the list of rules that fired so the UI can show why. The rules are
//! plain data (stored as JSON per tenant and edited in the UI); this module
//! owns their shape, their validation, sensible defaults and the evaluation.
//! The pipeline fills [`Signals`] from the event and its profile.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the pipeline knows when one intake event arrives: facts about the
/// event itself plus a little profile-cumulative context (pages, visits).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Signals {
    /// `identify`, `track`, `page`, `alias`, `form_started`,
    /// `form_submitted`, `checkout_started`, `cart_updated`, `order_placed`,
    /// `customer_created` or `webhook`.
    pub event_type: String,
    /// A track event's name, e.g. `Product Viewed`.
    pub event_name: Option<String>,
    /// This event's cart, checkout or order value; else the profile's open
    /// cart; in the currency's minor unit.
    pub cart_value_cents: Option<i64>,
    /// Form fields carried by this event.
    pub form_fields: BTreeMap<String, String>,
    /// Pages the profile has viewed in total, this event included.
    pub pages_viewed: u32,
    /// Distinct visits (sessions) of the profile, this one included.
    pub visits: u32,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    /// The visit came from an ad click (gclid, fbclid and the like).
    pub ad_click: bool,
}

/// One test on [`Signals`], in the shape the UI edits. Text comparisons
/// ignore case and surrounding spaces: people type `Google` and `google`
/// interchangeably, and a rule that silently never fires is worse than a
/// lenient one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Condition {
    EventType {
        is: String,
    },
    EventName {
        is: String,
    },
    CartValueAtLeast {
        cents: i64,
    },
    /// Present and non-blank, or (with `equals`) equal to that value.
    FormField {
        field: String,
        #[serde(default)]
        equals: Option<String>,
    },
    PagesViewedAtLeast {
        count: u32,
    },
    VisitsAtLeast {
        count: u32,
    },
    UtmSource {
        is: String,
    },
    UtmMedium {
        is: String,
    },
    AdClick,
    /// Every condition holds.
    All {
        of: Vec<Condition>,
    },
    /// At least one condition holds. Needed so that one rule can say "paid
    /// ad click" or "left an email or phone" without scoring twice.
    Any {
        of: Vec<Condition>,
    },
}

fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

fn same_opt(a: &Option<String>, b: &str) -> bool {
    a.as_deref().is_some_and(|a| same(a, b))
}

/// Minor units as a plain decimal: 15000 → "150.00". Rules are per tenant
/// and the currency is the shop's, so no symbol is guessed.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn event_label(t: &str) -> Option<&'static str> {
    Some(match t.trim() {
        "identify" => "identified themselves",
        "track" => "tracked event",
        "page" => "viewed a page",
        "group" => "joined an account",
        "alias" => "linked another identity",
        "form_started" => "started a form",
        "form_submitted" => "submitted a form",
        "checkout_started" => "started a checkout",
        "cart_updated" => "updated their cart",
        "order_placed" => "placed an order",
        "customer_created" => "became a customer",
        "webhook" => "webhook received",
        _ => return None,
    })
}

impl Condition {
    /// Whether the condition holds for these signals.
    pub fn matches(&self, s: &Signals) -> bool {
        match self {
            Condition::EventType { is } => same(&s.event_type, is),
            Condition::EventName { is } => same_opt(&s.event_name, is),
            Condition::CartValueAtLeast { cents } => {
                s.cart_value_cents.is_some_and(|v| v >= *cents)
            }
            // `any` over keys that match case-insensitively: the answer does
            // not depend on which of `Email` and `email` comes first.
            Condition::FormField { field, equals } => s.form_fields.iter().any(|(k, v)| {
                same(k, field)
                    && match equals {
                        None => !v.trim().is_empty(),
                        Some(want) => same(v, want),
                    }
            }),
            Condition::PagesViewedAtLeast { count } => s.pages_viewed >= *count,
            Condition::VisitsAtLeast { count } => s.visits >= *count,
            Condition::UtmSource { is } => same_opt(&s.utm_source, is),
            Condition::UtmMedium { is } => same_opt(&s.utm_medium, is),
            Condition::AdClick => s.ad_click,
            Condition::All { of } => of.iter().all(|c| c.matches(s)),
            Condition::Any { of } => of.iter().any(|c| c.matches(s)),
        }
    }

    /// A human sentence fragment for the UI's "why", e.g. "cart value ≥ 100.00".
    pub fn describe(&self) -> String {
        match self {
            Condition::EventType { is } => match event_label(is) {
                Some(label) => label.to_string(),
                None => format!("event type is “{}”", is.trim()),
            },
            Condition::EventName { is } => format!("tracked “{}”", is.trim()),
            Condition::CartValueAtLeast { cents } => {
                format!("cart value ≥ {}", format_cents(*cents))
            }
            Condition::FormField {
                field,
                equals: None,
            } => {
                format!("form field “{}” filled in", field.trim())
            }
            Condition::FormField {
                field,
                equals: Some(v),
            } => format!("form field “{}” is “{}”", field.trim(), v.trim()),
            Condition::PagesViewedAtLeast { count } => {
                format!("viewed at least {}", plural(*count, "page", "pages"))
            }
            Condition::VisitsAtLeast { count } => {
                format!("at least {}", plural(*count, "visit", "visits"))
            }
            Condition::UtmSource { is } => format!("UTM source is “{}”", is.trim()),
            Condition::UtmMedium { is } => format!("UTM medium is “{}”", is.trim()),
            Condition::AdClick => "came from an ad click".to_string(),
            Condition::All { of } => join(of, " and ", "always"),
            Condition::Any { of } => join(of, " or ", "never"),
        }
    }

    /// 1 for a plain condition, one more per level of `all`/`any`.
    pub fn depth(&self) -> usize {
        match self {
            Condition::All { of } | Condition::Any { of } => {
                1 + of.iter().map(Condition::depth).max().unwrap_or(0)
            }
            _ => 1,
        }
    }
}

fn join(of: &[Condition], sep: &str, empty: &str) -> String {
    if of.is_empty() {
        return empty.to_string();
    }
    of.iter()
        .map(|c| match c {
            // Parenthesize nested groups so "a and (b or c)" stays unambiguous.
            Condition::All { of } | Condition::Any { of } if of.len() > 1 => {
                format!("({})", c.describe())
            }
            _ => c.describe(),
        })
        .collect::<Vec<_>>()
        .join(sep)
}

/// One scoring rule: when `when` holds, add `points` (negative to subtract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Stable slug; what fired-rule history refers to.
    pub id: String,
    /// What people see in the UI.
    pub name: String,
    pub when: Condition,
    pub points: i32,
}

/// Score cut-offs: a score at or above `high_value` is high value, and so
/// on down; below `window_shopper` is browsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    pub high_value: u8,
    pub engaged: u8,
    pub window_shopper: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            high_value: 70,
            engaged: 40,
            window_shopper: 15,
        }
    }
}

impl Thresholds {
    pub fn category(&self, score: u8) -> Category {
        if score >= self.high_value {
            Category::HighValue
        } else if score >= self.engaged {
            Category::Engaged
        } else if score >= self.window_shopper {
            Category::WindowShopper
        } else {
            Category::Browsing
        }
    }
}

/// A tenant's intent rules, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRules {
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub thresholds: Thresholds,
}

pub const MAX_RULES: usize = 100;
pub const MAX_NAME_CHARS: usize = 80;
pub const MAX_ID_CHARS: usize = 64;
pub const MAX_DEPTH: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("there are {0} intent rules; remove or combine some to keep at most 100")]
    TooMany(usize),
    #[error("rule {position} has no id; give it a short id such as \"checkout-started\"")]
    EmptyId { position: usize },
    #[error(
        "rule id {id:?} is not a valid id; use at most 64 lowercase letters, digits, '-' or '_'"
    )]
    BadId { id: String },
    #[error("more than one rule has the id {id:?}; give each rule its own id")]
    DuplicateId { id: String },
    #[error("rule {id:?} has no name; give it a short name people will recognise, such as \"Started checkout\"")]
    EmptyName { id: String },
    #[error("rule {id:?} has a name of {chars} characters; shorten it to 80 or fewer")]
    NameTooLong { id: String, chars: usize },
    #[error("rule {id:?} gives {points} points; use a number from -100 to 100")]
    PointsOutOfRange { id: String, points: i32 },
    #[error("rule {id:?} compares against a negative cart value; use 0.00 or more")]
    NegativeCents { id: String },
    #[error(
        "rule {id:?} has a condition with an empty {what}; fill it in or remove the condition"
    )]
    EmptyValue { id: String, what: &'static str },
    #[error(
        "rule {id:?} has an \"all\"/\"any\" group with no conditions; add one or remove the group"
    )]
    EmptyGroup { id: String },
    #[error("rule {id:?} nests conditions {depth} levels deep; flatten it to at most 3")]
    TooDeep { id: String, depth: usize },
    #[error("intent thresholds must go down from high value to engaged to window shopper and stay at most 100 (they are {high_value}, {engaged}, {window_shopper}); adjust them")]
    Thresholds {
        high_value: u8,
        engaged: u8,
        window_shopper: u8,
    },
}

fn slug_ok(id: &str) -> bool {
    id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_condition(id: &str, c: &Condition) -> Result<(), RuleError> {
    let empty = |what| RuleError::EmptyValue {
        id: id.to_string(),
        what,
    };
    match c {
        Condition::EventType { is } if is.trim().is_empty() => Err(empty("event type")),
        Condition::EventName { is } if is.trim().is_empty() => Err(empty("event name")),
        Condition::UtmSource { is } if is.trim().is_empty() => Err(empty("UTM source")),
        Condition::UtmMedium { is } if is.trim().is_empty() => Err(empty("UTM medium")),
        Condition::FormField { field, .. } if field.trim().is_empty() => {
            Err(empty("form field name"))
        }
        Condition::CartValueAtLeast { cents } if *cents < 0 => {
            Err(RuleError::NegativeCents { id: id.to_string() })
        }
        Condition::All { of } | Condition::Any { of } if of.is_empty() => {
            Err(RuleError::EmptyGroup { id: id.to_string() })
        }
        Condition::All { of } | Condition::Any { of } => {
            of.iter().try_for_each(|c| check_condition(id, c))
        }
        _ => Ok(()),
    }
}

impl IntentRules {
    /// Checks what the UI lets people edit; the first problem found is
    /// returned, naming the rule.
    pub fn validate(&self) -> Result<(), RuleError> {
        let t = self.thresholds;
        if !(t.high_value <= 100 && t.high_value > t.engaged && t.engaged > t.window_shopper) {
            return Err(RuleError::Thresholds {
                high_value: t.high_value,
                engaged: t.engaged,
                window_shopper: t.window_shopper,
            });
        }
        if self.rules.len() > MAX_RULES {
            return Err(RuleError::TooMany(self.rules.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let id = r.id.clone();
            if r.id.is_empty() {
                return Err(RuleError::EmptyId { position: i + 1 });
            }
            if !slug_ok(&r.id) {
                return Err(RuleError::BadId { id });
            }
            if !seen.insert(r.id.as_str()) {
                return Err(RuleError::DuplicateId { id });
            }
            if r.name.trim().is_empty() {
                return Err(RuleError::EmptyName { id });
            }
            let chars = r.name.chars().count();
            if chars > MAX_NAME_CHARS {
                return Err(RuleError::NameTooLong { id, chars });
            }
            if !(-100..=100).contains(&r.points) {
                return Err(RuleError::PointsOutOfRange {
                    id,
                    points: r.points,
                });
            }
            let depth = r.when.depth();
            if depth > MAX_DEPTH {
                return Err(RuleError::TooDeep { id, depth });
            }
            check_condition(&r.id, &r.when)?;
        }
        Ok(())
    }
}

fn rule(id: &str, name: &str, when: Condition, points: i32) -> Rule {
    Rule {
        id: id.to_string(),
        name: name.to_string(),
        when,
        points,
    }
}

fn event(t: &str) -> Condition {
    Condition::EventType { is: t.to_string() }
}

fn named(n: &str) -> Condition {
    Condition::EventName { is: n.to_string() }
}

fn either(of: Vec<Condition>) -> Condition {
    Condition::Any { of }
}

impl Default for IntentRules {
    /// What a small shop wants before it has tuned anything. Shopify events
    /// arrive as their own event types, Segment's e-commerce spec as track
    /// events, so the buying steps accept either. Ids are stable: stored
    /// fired-rule history refers to them.
    fn default() -> Self {
        let medium = |m: &str| Condition::UtmMedium { is: m.to_string() };
        let field = |f: &str| Condition::FormField {
            field: f.to_string(),
            equals: None,
        };
        IntentRules {
            rules: vec![
                rule(
                    "order-placed",
                    "Placed an order",
                    either(vec![event("order_placed"), named("Order Completed")]),
                    60,
                ),
                rule(
                    "checkout-started",
                    "Started checkout",
                    either(vec![event("checkout_started"), named("Checkout Started")]),
                    50,
                ),
                rule(
                    "form-submitted",
                    "Submitted a form",
                    event("form_submitted"),
                    40,
                ),
                rule(
                    "big-cart",
                    "Cart worth 100.00 or more",
                    Condition::CartValueAtLeast { cents: 10_000 },
                    20,
                ),
                rule(
                    "cart-updated",
                    "Added to cart",
                    either(vec![event("cart_updated"), named("Product Added")]),
                    15,
                ),
                rule(
                    "many-pages",
                    "Viewed 5 or more pages",
                    Condition::PagesViewedAtLeast { count: 5 },
                    15,
                ),
                rule(
                    "returning-visitor",
                    "Came back 3 or more times",
                    Condition::VisitsAtLeast { count: 3 },
                    15,
                ),
                rule("form-started", "Started a form", event("form_started"), 10),
                rule(
                    "left-contact",
                    "Left an email or phone",
                    either(vec![field("email"), field("phone")]),
                    10,
                ),
                rule(
                    "paid-ad",
                    "Came from a paid ad",
                    either(vec![
                        medium("cpc"),
                        medium("ppc"),
                        medium("paid"),
                        Condition::AdClick,
                    ]),
                    10,
                ),
                rule(
                    "product-viewed",
                    "Viewed a product",
                    named("Product Viewed"),
                    5,
                ),
                rule("page-view", "Viewed a page", event("page"), 2),
            ],
            thresholds: Thresholds::default(),
        }
    }
}

/// Intent categories, ordered from least to most intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Browsing,
    WindowShopper,
    Engaged,
    HighValue,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::HighValue,
        Category::Engaged,
        Category::WindowShopper,
        Category::Browsing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::HighValue => "high_value",
            Category::Engaged => "engaged",
            Category::WindowShopper => "window_shopper",
            Category::Browsing => "browsing",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Category::HighValue => "High value",
            Category::Engaged => "Engaged",
            Category::WindowShopper => "Window shopper",
            Category::Browsing => "Browsing",
        }
    }
}

/// A category equals its stored name (`Category::HighValue == "high_value"`).
impl PartialEq<&str> for Category {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A rule that fired, with what the UI shows for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    pub rule_id: String,
    pub name: String,
    pub points: i32,
    /// The rule's condition in words.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The fired rules' points summed and clamped to 0..=100.
    pub score: u8,
    pub category: Category,
    /// In rule order.
    pub fired: Vec<Fired>,
}

/// Scores one event. Total for any rules, valid or not: the sum is taken in
/// `i64`, so even unvalidated points cannot overflow.
pub fn evaluate(rules: &IntentRules, s: &Signals) -> Intent {
    let fired: Vec<Fired> = rules
        .rules
        .iter()
        .filter(|r| r.when.matches(s))
        .map(|r| Fired {
            rule_id: r.id.clone(),
            name: r.name.clone(),
            points: r.points,
            why: r.when.describe(),
        })
        .collect();
    let sum: i64 = fired.iter().map(|f| i64::from(f.points)).sum();
    let score = sum.clamp(0, 100) as u8;
    Intent {
        score,
        category: rules.thresholds.category(score),
        fired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sig(event_type: &str) -> Signals {
        Signals {
            event_type: event_type.to_string(),
            pages_viewed: 1,
            visits: 1,
            ..Signals::default()
        }
    }

    fn ids(i: &Intent) -> Vec<&str> {
        i.fired.iter().map(|f| f.rule_id.as_str()).collect()
    }

    #[test]
    fn event_type_and_name_ignore_case() {
        let c = event("checkout_started");
        assert!(c.matches(&sig("checkout_started")));
        assert!(c.matches(&sig(" Checkout_Started ")));
        assert!(!c.matches(&sig("cart_updated")));
        let n = named("Product Viewed");
        let mut s = sig("track");
        assert!(!n.matches(&s));
        s.event_name = Some("product viewed".into());
        assert!(n.matches(&s));
        s.event_name = Some("Product Added".into());
        assert!(!n.matches(&s));
    }

    #[test]
    fn cart_value_is_inclusive_and_needs_a_cart() {
        let c = Condition::CartValueAtLeast { cents: 10_000 };
        let mut s = sig("page");
        assert!(!c.matches(&s));
        s.cart_value_cents = Some(9_999);
        assert!(!c.matches(&s));
        s.cart_value_cents = Some(10_000);
        assert!(c.matches(&s));
        assert_eq!(c.describe(), "cart value ≥ 100.00");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(-150), "-1.50");
        assert_eq!(format_cents(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn form_field_present_or_equal() {
        let present = Condition::FormField {
            field: "email".into(),
            equals: None,
        };
        let equal = Condition::FormField {
            field: "plan".into(),
            equals: Some("Pro".into()),
        };
        let mut s = sig("form_submitted");
        assert!(!present.matches(&s));
        s.form_fields.insert("Email".into(), "   ".into());
        assert!(!present.matches(&s), "blank is not filled in");
        s.form_fields.insert("email".into(), "a@b.co".into());
        assert!(present.matches(&s), "any case-insensitive key may match");
        s.form_fields.insert("plan".into(), "basic".into());
        assert!(!equal.matches(&s));
        s.form_fields.insert("plan".into(), " pro ".into());
        assert!(equal.matches(&s));
        assert_eq!(present.describe(), "form field “email” filled in");
        assert_eq!(equal.describe(), "form field “plan” is “Pro”");
    }

    #[test]
    fn pages_and_visits_are_at_least() {
        let p = Condition::PagesViewedAtLeast { count: 5 };
        let v = Condition::VisitsAtLeast { count: 3 };
        let mut s = sig("page");
        s.pages_viewed = 4;
        s.visits = 2;
        assert!(!p.matches(&s) && !v.matches(&s));
        s.pages_viewed = 5;
        s.visits = 3;
        assert!(p.matches(&s) && v.matches(&s));
        assert_eq!(p.describe(), "viewed at least 5 pages");
        assert_eq!(
            Condition::VisitsAtLeast { count: 1 }.describe(),
            "at least 1 visit"
        );
    }

    #[test]
    fn utm_and_ad_click() {
        let src = Condition::UtmSource {
            is: "google".into(),
        };
        let med = Condition::UtmMedium { is: "cpc".into() };
        let mut s = sig("page");
        assert!(!src.matches(&s) && !med.matches(&s) && !Condition::AdClick.matches(&s));
        s.utm_source = Some("Google".into());
        s.utm_medium = Some("CPC".into());
        s.ad_click = true;
        assert!(src.matches(&s) && med.matches(&s) && Condition::AdClick.matches(&s));
        assert_eq!(src.describe(), "UTM source is “google”");
    }

    #[test]
    fn all_and_any_combine_and_describe() {
        let c = Condition::All {
            of: vec![
                event("page"),
                either(vec![
                    Condition::AdClick,
                    Condition::UtmSource { is: "x".into() },
                ]),
            ],
        };
        let mut s = sig("page");
        assert!(!c.matches(&s));
        s.ad_click = true;
        assert!(c.matches(&s));
        assert_eq!(
            c.describe(),
            "viewed a page and (came from an ad click or UTM source is “x”)"
        );
        assert_eq!(c.depth(), 3);
        assert!(Condition::All { of: vec![] }.matches(&s));
        assert!(!Condition::Any { of: vec![] }.matches(&s));
    }

    #[test]
    fn abandoned_150_checkout_from_a_paid_ad_is_high_value() {
        let mut s = sig("checkout_started");
        s.cart_value_cents = Some(15_000);
        s.utm_medium = Some("cpc".into());
        s.pages_viewed = 3;
        let i = evaluate(&IntentRules::default(), &s);
        assert_eq!(i.category, Category::HighValue, "{i:?}");
        assert_eq!(i.score, 80);
        assert_eq!(ids(&i), ["checkout-started", "big-cart", "paid-ad"]);
        assert_eq!(i.fired[1].why, "cart value ≥ 100.00");
    }

    #[test]
    fn one_page_view_is_browsing() {
        let i = evaluate(&IntentRules::default(), &sig("page"));
        assert_eq!((i.score, i.category), (2, Category::Browsing));
        assert_eq!(ids(&i), ["page-view"]);
    }

    #[test]
    fn default_scenarios_land_where_a_shop_expects() {
        let r = IntentRules::default();
        let mut form = sig("form_submitted");
        form.form_fields.insert("email".into(), "a@b.co".into());
        let i = evaluate(&r, &form);
        assert_eq!((i.score, i.category), (50, Category::Engaged));

        let mut browser = sig("page");
        browser.pages_viewed = 6;
        browser.visits = 3;
        let i = evaluate(&r, &browser);
        assert_eq!((i.score, i.category), (32, Category::WindowShopper));

        let mut segment = sig("track");
        segment.event_name = Some("Order Completed".into());
        assert_eq!(ids(&evaluate(&r, &segment)), ["order-placed"]);
    }

    #[test]
    fn score_clamps_both_ways() {
        let r = IntentRules {
            rules: vec![
                rule("a", "A", event("page"), -100),
                rule("b", "B", Condition::AdClick, 100),
                rule("c", "C", Condition::AdClick, 100),
            ],
            thresholds: Thresholds::default(),
        };
        assert_eq!(evaluate(&r, &sig("page")).score, 0);
        let mut s = sig("identify");
        s.ad_click = true;
        assert_eq!(evaluate(&r, &s).score, 100);
    }

    #[test]
    fn category_names_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert_eq!(Category::parse("High value"), None);
        assert_eq!(Category::HighValue.label(), "High value");
    }

    #[test]
    fn validate_accepts_the_defaults() {
        assert_eq!(IntentRules::default().validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_rule_and_the_fix() {
        let base = IntentRules::default();
        let with = |f: &dyn Fn(&mut IntentRules)| {
            let mut r = base.clone();
            f(&mut r);
            r.validate().unwrap_err()
        };
        assert_eq!(
            with(&|r| r.rules[0].id.clear()),
            RuleError::EmptyId { position: 1 }
        );
        assert!(matches!(
            with(&|r| r.rules[0].id = "Big Cart".into()),
            RuleError::BadId { .. }
        ));
        assert!(matches!(
            with(&|r| r.rules[0].id = "x".repeat(65)),
            RuleError::BadId { .. }
        ));
        let dup = with(&|r| r.rules[1].id = "order-placed".into());
        assert_eq!(
            dup,
            RuleError::DuplicateId {
                id: "order-placed".into()
            }
        );
        assert!(dup.to_string().contains("its own id"));
        assert!(matches!(
            with(&|r| r.rules[2].name = " ".into()),
            RuleError::EmptyName { .. }
        ));
        let long = with(&|r| r.rules[2].name = "é".repeat(81));
        assert!(long.to_string().contains("\"form-submitted\""), "{long}");
        let mut r = base.clone();
        r.rules[2].name = "é".repeat(80);
        assert_eq!(r.validate(), Ok(()));
        let pts = with(&|r| r.rules[3].points = 101);
        assert_eq!(
            pts.to_string(),
            "rule \"big-cart\" gives 101 points; use a number from -100 to 100"
        );
        assert!(matches!(
            with(&|r| r.rules[3].when = Condition::CartValueAtLeast { cents: -1 }),
            RuleError::NegativeCents { .. }
        ));
        assert!(matches!(
            with(&|r| r.rules[3].when = event(" ")),
            RuleError::EmptyValue {
                what: "event type",
                ..
            }
        ));
        assert!(matches!(
            with(&|r| r.rules[3].when = either(vec![])),
            RuleError::EmptyGroup { .. }
        ));
        let deep = either(vec![either(vec![either(vec![Condition::AdClick])])]);
        assert_eq!(
            with(&|r| r.rules[3].when = deep.clone()),
            RuleError::TooDeep {
                id: "big-cart".into(),
                depth: 4
            }
        );
        let mut many = base.clone();
        many.rules = (0..101)
            .map(|i| rule(&format!("r{i}"), "R", Condition::AdClick, 1))
            .collect();
        assert_eq!(many.validate(), Err(RuleError::TooMany(101)));
        many.rules.pop();
        assert_eq!(many.validate(), Ok(()));
        for (h, e, w) in [(70, 70, 15), (70, 40, 40), (101, 40, 15), (10, 40, 70)] {
            let err = with(&|r| {
                r.thresholds = Thresholds {
                    high_value: h,
                    engaged: e,
                    window_shopper: w,
                }
            });
            assert!(matches!(err, RuleError::Thresholds { .. }));
        }
        let ok = |r: &mut IntentRules| {
            r.thresholds = Thresholds {
                high_value: 100,
                engaged: 1,
                window_shopper: 0,
            }
        };
        let mut r = base.clone();
        ok(&mut r);
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn stored_json_shape_is_what_the_ui_edits() {
        let c: Condition =
            serde_json::from_str(r#"{"type":"form_field","field":"email"}"#).unwrap();
        assert_eq!(
            c,
            Condition::FormField {
                field: "email".into(),
                equals: None
            }
        );
        let c: Condition = serde_json::from_str(r#"{"type":"ad_click"}"#).unwrap();
        assert_eq!(c, Condition::AdClick);
        let r: IntentRules = serde_json::from_str(r#"{"rules":[]}"#).unwrap();
        assert_eq!(r.thresholds, Thresholds::default());
        let json = serde_json::to_value(Condition::CartValueAtLeast { cents: 5 }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type":"cart_value_at_least","cents":5})
        );
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("page".to_string()),
            Just("checkout_started".to_string()),
            Just("Google".to_string()),
            Just("cpc".to_string()),
            Just("email".to_string()),
            "[a-zA-Z_ ]{0,8}",
        ]
    }

    fn leaf() -> impl Strategy<Value = Condition> {
        prop_oneof![
            text().prop_map(|is| Condition::EventType { is }),
            text().prop_map(|is| Condition::EventName { is }),
            (-10_000i64..100_000).prop_map(|cents| Condition::CartValueAtLeast { cents }),
            (text(), proptest::option::of(text()))
                .prop_map(|(field, equals)| Condition::FormField { field, equals }),
            (0u32..20).prop_map(|count| Condition::PagesViewedAtLeast { count }),
            (0u32..10).prop_map(|count| Condition::VisitsAtLeast { count }),
            text().prop_map(|is| Condition::UtmSource { is }),
            text().prop_map(|is| Condition::UtmMedium { is }),
            Just(Condition::AdClick),
        ]
    }

    fn condition() -> impl Strategy<Value = Condition> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|of| Condition::All { of }),
                prop::collection::vec(inner, 0..4).prop_map(|of| Condition::Any { of }),
            ]
        })
    }

    fn thresholds() -> impl Strategy<Value = Thresholds> {
        (0u8..=98)
            .prop_flat_map(|w| (Just(w), w + 1..=99))
            .prop_flat_map(|(w, e)| (Just(w), Just(e), e + 1..=100))
            .prop_map(|(window_shopper, engaged, high_value)| Thresholds {
                high_value,
                engaged,
                window_shopper,
            })
    }

    fn intent_rules() -> impl Strategy<Value = IntentRules> {
        (
            prop::collection::vec(("[A-Za-z ]{0,10}", condition(), -150i32..150), 0..12),
            thresholds(),
        )
            .prop_map(|(rules, thresholds)| IntentRules {
                rules: rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, when, points))| Rule {
                        id: format!("r{i}"),
                        name,
                        when,
                        points,
                    })
                    .collect(),
                thresholds,
            })
    }

    fn fields() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (
                prop_oneof![Just("email"), Just("Email"), Just("phone"), Just("plan")],
                prop_oneof![Just(""), Just(" "), Just("a@b.co"), Just("Pro")],
            )
                .prop_map(|(k, v)| (k.to_string(), v.to_string())),
            0..6,
        )
    }

    /// Distinct keys, so that insertion order is the only difference.
    fn distinct_fields() -> impl Strategy<Value = Vec<(String, String)>> {
        fields().prop_map(|v| {
            let mut seen = std::collections::BTreeSet::new();
            v.into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .collect()
        })
    }

    fn signals() -> impl Strategy<Value = Signals> {
        (
            text(),
            proptest::option::of(text()),
            proptest::option::of(-100i64..200_000),
            fields(),
            (0u32..30, 0u32..10),
            (proptest::option::of(text()), proptest::option::of(text())),
            any::<bool>(),
        )
            .prop_map(
                |(event_type, event_name, cart, fields, (pages, visits), (src, med), ad)| Signals {
                    event_type,
                    event_name,
                    cart_value_cents: cart,
                    form_fields: fields.into_iter().collect(),
                    pages_viewed: pages,
                    visits,
                    utm_source: src,
                    utm_medium: med,
                    utm_campaign: None,
                    ad_click: ad,
                },
            )
    }

    proptest! {
        #[test]
        fn score_is_the_clamped_sum_of_what_fired(r in intent_rules(), s in signals()) {
            let i = evaluate(&r, &s);
            prop_assert!(i.score <= 100);
            let sum: i64 = i.fired.iter().map(|f| i64::from(f.points)).sum();
            prop_assert_eq!(i64::from(i.score), sum.clamp(0, 100));
            prop_assert_eq!(i.category, r.thresholds.category(i.score));
            // Fired rules appear in rule order.
            let order: Vec<usize> = i.fired.iter().map(|f| r.rules.iter().position(|x| x.id == f.rule_id).unwrap()).collect();
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]));
        }

        #[test]
        fn category_is_monotonic_in_score(t in thresholds(), a in 0u8..=100, b in 0u8..=100) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(t.category(lo) <= t.category(hi));
            prop_assert_eq!(t.category(100), Category::HighValue);
        }

        #[test]
        fn evaluation_is_deterministic_and_ignores_field_order(
            r in intent_rules(),
            s in signals(),
            (f, shuffled) in distinct_fields().prop_flat_map(|f| (Just(f.clone()), Just(f).prop_shuffle())),
        ) {
            let mut a = s.clone();
            a.form_fields = f.into_iter().collect();
            let mut b = s;
            b.form_fields = shuffled.into_iter().collect();
            prop_assert_eq!(evaluate(&r, &a), evaluate(&r, &b));
            prop_assert_eq!(evaluate(&r, &a), evaluate(&r, &a.clone()));
        }

        #[test]
        fn rules_and_intents_round_trip_through_json(r in intent_rules(), s in signals()) {
            let back: IntentRules = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            prop_assert_eq!(&back, &r);
            let i = evaluate(&r, &s);
            let back: Intent = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
            prop_assert_eq!(back, i);
            let back: Signals = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn depth_limit_matches_validate(c in condition()) {
            let r = IntentRules { rules: vec![rule("r", "R", c.clone(), 1)], thresholds: Thresholds::default() };
            let too_deep = matches!(r.validate(), Err(RuleError::TooDeep { .. }));
            prop_assert_eq!(too_deep, c.depth() > MAX_DEPTH);
        }
    }
}
