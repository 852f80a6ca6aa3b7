//! How urgent a customer's message is, from three things the inbox knows
//! without asking anyone over the network: the message's sentiment (a small
//! lexicon scorer in the style of VADER: word valences, negation, intensifiers,
//! capitals, exclamation marks and "but"), whether the customer is a VIP
//! (lifetime value over the organization's threshold, or tagged `vip`), and
//! the customer's intent category. The answer is a priority with a short
//! reason the thread list can show.

use serde::{Deserialize, Serialize};

use crate::intent::Category;

/// How soon a conversation wants an answer, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Urgent,
    High,
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Urgent,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// A number that sorts most urgent first in either storage engine
    /// (0 = urgent … 3 = low).
    pub fn rank(self) -> i64 {
        self as i64
    }
}

/// Word valences on VADER's scale (−4 very negative … +4 very positive),
/// for the words customers use in support and sales messages. Small on
/// purpose: every entry is reviewable, and an unknown word scores 0.
const LEXICON: &[(&str, f64)] = &[
    // negative
    ("angry", -2.3),
    ("annoyed", -1.6),
    ("annoying", -1.8),
    ("awful", -2.5),
    ("bad", -2.5),
    ("broken", -1.8),
    ("cancel", -1.0),
    ("chargeback", -2.0),
    ("cheated", -2.6),
    ("complaint", -1.7),
    ("damaged", -1.9),
    ("defective", -1.9),
    ("disappointed", -1.9),
    ("disappointing", -2.2),
    ("disgusting", -2.9),
    ("dissatisfied", -1.8),
    ("fail", -2.1),
    ("failed", -2.1),
    ("frustrated", -2.1),
    ("frustrating", -2.1),
    ("furious", -2.7),
    ("garbage", -2.0),
    ("hate", -2.7),
    ("horrible", -2.5),
    ("lawyer", -1.5),
    ("late", -0.8),
    ("lied", -2.4),
    ("lost", -1.3),
    ("missing", -1.2),
    ("never", -0.5),
    ("poor", -2.1),
    ("problem", -1.7),
    ("refund", -0.8),
    ("ridiculous", -2.1),
    ("rude", -2.0),
    ("sad", -2.1),
    ("scam", -2.9),
    ("sucks", -1.5),
    ("terrible", -2.5),
    ("unacceptable", -2.0),
    ("unhappy", -1.8),
    ("upset", -1.6),
    ("useless", -1.8),
    ("waiting", -0.6),
    ("worse", -2.1),
    ("worst", -3.1),
    ("wrong", -2.1),
    // positive
    ("amazing", 2.8),
    ("appreciate", 1.9),
    ("awesome", 3.1),
    ("beautiful", 2.9),
    ("best", 3.2),
    ("excellent", 2.7),
    ("fantastic", 2.6),
    ("glad", 2.0),
    ("good", 1.9),
    ("great", 3.1),
    ("happy", 2.7),
    ("helpful", 1.8),
    ("love", 3.2),
    ("lovely", 2.8),
    ("nice", 1.8),
    ("perfect", 2.7),
    ("pleased", 1.9),
    ("recommend", 1.5),
    ("thank", 1.5),
    ("thanks", 1.9),
    ("wonderful", 2.7),
];

/// Words that turn the next few words' valence around.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot",
    "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent", "wont", "cant", "couldnt",
    "shouldnt", "wouldnt", "havent", "hasnt", "hadnt",
];

/// Words that strengthen (positive) or soften (negative) the next word.
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", 0.293),
    ("completely", 0.293),
    ("extremely", 0.293),
    ("incredibly", 0.293),
    ("really", 0.293),
    ("so", 0.293),
    ("totally", 0.293),
    ("very", 0.293),
    ("barely", -0.293),
    ("slightly", -0.293),
    ("somewhat", -0.293),
    ("kinda", -0.293),
];

/// Words that ask for speed whatever the tone.
const URGENT_WORDS: &[&str] = &[
    "urgent",
    "urgently",
    "asap",
    "emergency",
    "immediately",
    "chargeback",
    "lawyer",
    "fraud",
];

// VADER's constants.
const NEGATION_SCALAR: f64 = -0.74;
const CAPS_INCREMENT: f64 = 0.733;
const EXCLAMATION_INCREMENT: f64 = 0.292;
const NORMALIZE_ALPHA: f64 = 15.0;

fn lookup<'a>(table: &'a [(&'a str, f64)], word: &str) -> Option<f64> {
    table.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
}

/// Lowercased words with apostrophes removed ("don't" → "dont"), each with
/// whether it was written in capitals.
fn words(text: &str) -> Vec<(String, bool)> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .map(|w| {
            let shouting = w.chars().filter(|c| c.is_alphabetic()).count() > 1
                && w.chars().all(|c| !c.is_lowercase());
            let lower: String = w
                .chars()
                .filter(|c| *c != '\'' && *c != '’')
                .flat_map(char::to_lowercase)
                .collect();
            (lower, shouting)
        })
        .filter(|(w, _)| !w.is_empty())
        .collect()
}

/// The sentiment of `text` in −1 (very negative) … +1 (very positive),
/// 0 for neutral or unknown words.
pub fn sentiment(text: &str) -> f64 {
    let ws = words(text);
    // Capitals only count as shouting when not everything is in capitals.
    let mixed_case = ws.iter().any(|(_, caps)| !caps);
    let but_at = ws.iter().position(|(w, _)| w == "but");
    let mut sum = 0.0;
    for (i, (w, caps)) in ws.iter().enumerate() {
        let Some(mut v) = lookup(LEXICON, w) else {
            continue;
        };
        if *caps && mixed_case {
            v += CAPS_INCREMENT * v.signum();
        }
        // The three words before: boosters scale, a negation flips.
        for back in 1..=3 {
            let Some(j) = i.checked_sub(back) else { break };
            let prev = &ws[j].0;
            if let Some(b) = lookup(BOOSTERS, prev) {
                let damp = [1.0, 0.95, 0.9][back - 1];
                v += b * v.signum() * damp;
            }
            if NEGATIONS.contains(&prev.as_str()) {
                v *= NEGATION_SCALAR;
            }
        }
        // "but" shifts the weight to what follows it.
        if let Some(b) = but_at {
            if i < b {
                v *= 0.5;
            } else if i > b {
                v *= 1.5;
            }
        }
        sum += v;
    }
    if sum != 0.0 {
        let bangs = text.chars().filter(|c| *c == '!').count().min(4) as f64;
        sum += bangs * EXCLAMATION_INCREMENT * sum.signum();
    }
    let score = sum / (sum * sum + NORMALIZE_ALPHA).sqrt();
    score.clamp(-1.0, 1.0)
}

/// At or below this the message reads as clearly negative.
pub const NEGATIVE: f64 = -0.5;
/// At or above this the message reads as clearly positive.
pub const POSITIVE: f64 = 0.5;

/// What the priority is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorityInputs<'a> {
    /// The customer's latest message.
    pub text: &'a str,
    /// Lifetime value in cents.
    pub lifetime_value_cents: i64,
    /// The organization's VIP threshold in cents; `None` when it has none.
    pub vip_threshold_cents: Option<i64>,
    pub tags: &'a [String],
    pub intent: Option<Category>,
}

/// The priority with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub priority: Priority,
    /// A short reason for the thread list ("negative tone, VIP").
    pub reason: String,
    pub sentiment: f64,
}

/// Whether the customer is a VIP: tagged `vip` (any case), or worth at
/// least the organization's threshold.
pub fn is_vip(lifetime_value_cents: i64, threshold: Option<i64>, tags: &[String]) -> bool {
    tags.iter().any(|t| t.trim().eq_ignore_ascii_case("vip"))
        || threshold.is_some_and(|t| t > 0 && lifetime_value_cents >= t)
}

/// Combines tone, VIP and intent into a priority:
/// - urgent: an urgent word ("asap", "chargeback", …) with a negative tone,
///   or a negative tone from a VIP or high-value customer;
/// - high: a negative tone, an urgent word, a VIP or a high-value intent;
/// - low: a clearly positive message (a thank-you) from someone none of the
///   above applies to;
/// - normal: everything else.
pub fn assess(input: &PriorityInputs<'_>) -> Assessment {
    let s = sentiment(input.text);
    let negative = s <= NEGATIVE;
    let urgent_word = words(input.text)
        .iter()
        .any(|(w, _)| URGENT_WORDS.contains(&w.as_str()));
    let vip = is_vip(
        input.lifetime_value_cents,
        input.vip_threshold_cents,
        input.tags,
    );
    let high_value = input.intent == Some(Category::HighValue);

    let mut why = Vec::new();
    if negative {
        why.push("negative tone");
    }
    if urgent_word {
        why.push("asks for urgency");
    }
    if vip {
        why.push("VIP");
    }
    if high_value {
        why.push("high-value intent");
    }
    let priority = if negative && (urgent_word || vip || high_value) {
        Priority::Urgent
    } else if !why.is_empty() {
        Priority::High
    } else if s >= POSITIVE {
        why.push("positive tone");
        Priority::Low
    } else {
        why.push("no urgency signals");
        Priority::Normal
    };
    Assessment {
        priority,
        reason: why.join(", "),
        sentiment: s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tone_in_the_expected_direction() {
        assert!(sentiment("This is great, thank you!") > POSITIVE);
        assert!(sentiment("This is terrible, the worst service ever") < NEGATIVE);
        assert_eq!(sentiment("Where is my order 1234?"), 0.0);
        assert_eq!(sentiment(""), 0.0);
    }

    #[test]
    fn negation_boosters_caps_and_but() {
        let good = sentiment("the product is good");
        assert!(sentiment("the product is not good") < 0.0);
        assert!(sentiment("the product is very good") > good);
        assert!(sentiment("the product is GOOD") > good);
        assert!(sentiment("the product is good!!!") > good);
        assert!(sentiment("it's good but the delivery was terrible") < 0.0);
        assert!(sentiment("I don't hate it") > sentiment("I hate it"));
    }

    #[test]
    fn priority_combines_tone_vip_and_intent() {
        let tags = vec!["VIP".to_string()];
        let none: Vec<String> = vec![];
        let base = PriorityInputs {
            text: "Where is my order?",
            lifetime_value_cents: 0,
            vip_threshold_cents: Some(100_000),
            tags: &none,
            intent: None,
        };
        let a = assess(&base);
        assert_eq!(a.priority, Priority::Normal);
        assert_eq!(a.reason, "no urgency signals");

        let angry = PriorityInputs {
            text: "This is terrible, I am furious",
            ..base.clone()
        };
        assert_eq!(assess(&angry).priority, Priority::High);
        let angry_vip = PriorityInputs {
            tags: &tags,
            ..angry.clone()
        };
        let a = assess(&angry_vip);
        assert_eq!(a.priority, Priority::Urgent);
        assert_eq!(a.reason, "negative tone, VIP");
        let angry_rich = PriorityInputs {
            lifetime_value_cents: 100_000,
            ..angry.clone()
        };
        assert_eq!(assess(&angry_rich).priority, Priority::Urgent);
        let angry_asap = PriorityInputs {
            text: "This is terrible, fix it ASAP",
            ..base.clone()
        };
        assert_eq!(assess(&angry_asap).priority, Priority::Urgent);
        let hot = PriorityInputs {
            intent: Some(Category::HighValue),
            ..base.clone()
        };
        assert_eq!(assess(&hot).priority, Priority::High);
        let thanks = PriorityInputs {
            text: "Thanks so much, you were wonderful!",
            ..base.clone()
        };
        assert_eq!(assess(&thanks).priority, Priority::Low);
    }

    #[test]
    fn vip_by_tag_or_value() {
        assert!(is_vip(0, None, &[" vip ".to_string()]));
        assert!(is_vip(500, Some(500), &[]));
        assert!(!is_vip(499, Some(500), &[]));
        assert!(!is_vip(10_000, None, &[]));
        // A zero threshold would make everyone a VIP; it means "none".
        assert!(!is_vip(0, Some(0), &[]));
    }

    #[test]
    fn priority_strings_round_trip_and_rank() {
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
        assert!(Priority::Urgent.rank() < Priority::Low.rank());
    }

    proptest! {
        #[test]
        fn sentiment_is_bounded_for_any_text(text in "\\PC{0,200}") {
            let s = sentiment(&text);
            prop_assert!((-1.0..=1.0).contains(&s), "{s}");
            prop_assert!(!s.is_nan());
        }

        #[test]
        fn assess_always_gives_a_reason(text in "\\PC{0,80}", ltv in any::<i64>(), th in proptest::option::of(any::<i64>())) {
            let tags: Vec<String> = vec![];
            let a = assess(&PriorityInputs { text: &text, lifetime_value_cents: ltv, vip_threshold_cents: th, tags: &tags, intent: None });
            prop_assert!(!a.reason.is_empty());
        }
    }
}
