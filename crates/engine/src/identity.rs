//! Customer identity (the God View) for every caller: turning raw
//! identifiers into normalized ones under the organization's rules,
//! resolving them through the store, explaining the outcome in words, and
//! the timeline's vocabulary of event kinds.

use bos_core::identity::{
    normalize, DropReason, Dropped, Identifier, IdentifierKind, IdentityRules, KindRule,
};
use bos_store::identity::{IdentifyAction, IdentifyInput, IdentifyOutcome, NewEvent, Traits};
use bos_store::{Store, StoreError};
use uuid::Uuid;

/// Why identifiers could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No identifier is usable; the text lists each one's problem.
    #[error("{0}")]
    NoUsableIdentifier(String),
    /// A merge of a profile with itself (or with one already merged into it).
    #[error("these are already one customer")]
    SameProfile,
    /// The merge cannot be undone; the text says why.
    #[error("this merge cannot be undone: {0}")]
    CannotUnmerge(String),
    /// Identity rules that cannot be used; the text says what to change.
    #[error("{field}: {detail}")]
    InvalidRules { field: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A raw identifier that could not be used, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub kind: String,
    pub value: String,
    pub reason: String,
}

/// Normalizes raw `(kind, value)` pairs; invalid ones are rejected with a
/// reason (never guessed).
pub fn normalize_all(
    rules: &IdentityRules,
    raw: &[(String, String)],
) -> (Vec<Identifier>, Vec<Rejected>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (k, v) in raw {
        let res = IdentifierKind::parse(k)
            .and_then(|kind| match kind {
                // Custom kinds exist once a person adds them to the rules.
                IdentifierKind::Custom(ref c) if !rules.kinds.contains_key(&kind) => Err(bos_core::ValueError(format!(
                    "'{c}' is not an identifier kind of this organization: use a built-in kind or add it in Settings → Identity rules"
                ))),
                _ => Ok(kind),
            })
            .and_then(|kind| normalize(&kind, v, &rules.default_region));
        match res {
            Ok(id) => {
                if !ok.contains(&id) {
                    ok.push(id)
                }
            }
            Err(e) => bad.push(Rejected {
                kind: k.clone(),
                value: v.clone(),
                reason: e.0,
            }),
        }
    }
    (ok, bad)
}

pub struct Resolved {
    pub outcome: IdentifyOutcome,
    pub rejected: Vec<Rejected>,
    pub explanation: String,
}

/// Resolves one event's identifiers for `org`.
pub async fn resolve(
    store: &Store,
    org: Uuid,
    raw: &[(String, String)],
    traits: Traits,
    source: &str,
    event: Option<NewEvent>,
    now: i64,
) -> Result<Resolved, IdentityError> {
    let rules = store.identity_rules(org).await?;
    let (identifiers, rejected) = normalize_all(&rules, raw);
    if identifiers.iter().all(|i| rules.blocked(i)) {
        let why = if rejected.is_empty() && identifiers.is_empty() {
            "Give at least one identifier: email, phone, shopify_customer_id, instagram_id, facebook_psid, segment_user_id or anonymous_id.".to_string()
        } else {
            let mut parts: Vec<String> = rejected
                .iter()
                .map(|r| format!("{} '{}': {}", r.kind, r.value, r.reason))
                .collect();
            parts.extend(
                identifiers
                    .iter()
                    .map(|i| format!("{i} is on the blocklist")),
            );
            format!("No usable identifier: {}.", parts.join("; "))
        };
        return Err(IdentityError::NoUsableIdentifier(why));
    }
    let input = IdentifyInput {
        identifiers,
        traits,
        source: source.to_string(),
        event,
        now,
    };
    let outcome = store.identify(org, &rules, &input).await?;
    let explanation = explain(&outcome);
    Ok(Resolved {
        outcome,
        rejected,
        explanation,
    })
}

/// The outcome in one or two plain sentences.
pub fn explain(o: &IdentifyOutcome) -> String {
    let list = |ids: &[Identifier]| {
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = match o.action {
        IdentifyAction::Created => format!(
            "No identifier was known, so a new profile was created with {}.",
            list(&o.linked)
        ),
        IdentifyAction::Attached if o.linked.is_empty() => {
            "Every identifier was already linked to this profile.".to_string()
        }
        IdentifyAction::Attached => {
            format!("Matched an existing profile; linked {}.", list(&o.linked))
        }
        IdentifyAction::Merged => {
            // `profile_id` is the survivor; `merged` lists the absorbed.
            let joins: Vec<String> = o
                .merged
                .iter()
                .map(|(p, via)| format!("{p} (same {via})"))
                .collect();
            format!(
                "The identifiers belonged to several profiles, so they were merged into the oldest, {}, which absorbed {}.",
                o.profile_id,
                joins.join("; ")
            )
        }
        IdentifyAction::Replayed => "This event was seen before; nothing changed.".to_string(),
    };
    for d in &o.dropped {
        s.push(' ');
        s.push_str(&dropped_text(d));
    }
    s
}

pub fn dropped_text(d: &Dropped) -> String {
    match &d.reason {
        DropReason::Blocklisted => format!("{} is on the blocklist and was not used.", d.identifier),
        DropReason::Limit { kind, max } => {
            format!("{} was not linked: a profile holds at most {max} {kind}.", d.identifier)
        }
        DropReason::MergeLimit { kind, max } => format!(
            "{} points to another customer, but merging them would exceed {max} {kind} per customer, so they stay apart.",
            d.identifier
        ),
    }
}

/// Human label of a timeline kind.
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "ad_click" => "Ad click",
        "page_view" => "Page view",
        "screen_view" => "Screen view",
        "group" => "Account",
        "form_submit" => "Form submitted",
        "form_started" => "Form started",
        "cart_add" => "Added to cart",
        "cart_abandoned" => "Cart abandoned",
        "checkout_abandoned" => "Checkout abandoned",
        "checkout_started" => "Checkout started",
        "purchase" => "Purchase",
        "message_in" => "Message received",
        "message_out" => "Message sent",
        // Entered a campaign, or a step sent: the store's kind for both.
        "nudge" => "Nudge",
        // Not entered, or a step held back or skipped, with the reason.
        "nudge_skipped" => "Not nudged",
        "nudge_opened" => "Nudge opened",
        "nudge_clicked" => "Nudge clicked",
        "agent_interaction" => "AI agent",
        "handoff" => "Handoff",
        "lead_state" => "Lead state",
        "merge" => "Merged",
        "unmerge" => "Unmerged",
        "import" => "Imported",
        "identify" => "Identified",
        "track" => "Tracked event",
        _ => "Event",
    }
}

/// Timeline kinds a person can filter by, in display order.
pub const TIMELINE_KINDS: &[&str] = &[
    "ad_click",
    "page_view",
    "screen_view",
    "track",
    "group",
    "form_started",
    "form_submit",
    "cart_add",
    "checkout_started",
    "checkout_abandoned",
    "purchase",
    "message_in",
    "message_out",
    "nudge",
    "nudge_skipped",
    "agent_interaction",
    "lead_state",
    "merge",
    "unmerge",
    "import",
    "identify",
];

pub fn is_known_kind(k: &str) -> bool {
    TIMELINE_KINDS.contains(&k) || kind_label(k) != "Event"
}

/// One identifier kind's rule as given: its name, matching priority and
/// the most a profile may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindRuleInput {
    pub kind: String,
    pub priority: u32,
    pub max_per_profile: u32,
}

/// Identity rules as a person or a script gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesInput {
    pub kinds: Vec<KindRuleInput>,
    /// `kind:value` entries never used for matching; blank lines ignored.
    pub blocklist: Vec<String>,
    /// Two-letter region for phone numbers without a country code.
    pub default_region: String,
}

fn bad_rules(field: &'static str, detail: impl Into<String>) -> IdentityError {
    IdentityError::InvalidRules {
        field,
        detail: detail.into(),
    }
}

/// Parses and validates identity rules given by a person or a script.
pub fn rules_from(input: &RulesInput) -> Result<IdentityRules, IdentityError> {
    let mut r = IdentityRules::default();
    for k in &input.kinds {
        let kind = IdentifierKind::parse(&k.kind).map_err(|e| bad_rules("kinds", e.0))?;
        r.kinds.insert(
            kind,
            KindRule {
                priority: k.priority,
                max_per_profile: k.max_per_profile,
            },
        );
    }
    r.default_region = input.default_region.trim().to_ascii_uppercase();
    r.blocklist.clear();
    for entry in &input.blocklist {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (k, v) = entry.split_once(':').ok_or_else(|| {
            bad_rules(
                "blocklist",
                format!("'{entry}' should be kind:value, e.g. email:front-desk@shop.com"),
            )
        })?;
        let kind = IdentifierKind::parse(k).map_err(|e| bad_rules("blocklist", e.0))?;
        let id = normalize(&kind, v, &r.default_region)
            .map_err(|e| bad_rules("blocklist", format!("'{entry}': {}", e.0)))?;
        r.blocklist.insert(id);
    }
    r.validate().map_err(|e| bad_rules("kinds", e.0))?;
    Ok(r)
}

/// Checks and saves `org`'s identity rules (they apply to new events);
/// returns them as stored.
pub async fn save_rules(
    store: &Store,
    org: Uuid,
    input: &RulesInput,
    now: i64,
) -> Result<IdentityRules, IdentityError> {
    let rules = rules_from(input)?;
    store.set_identity_rules(org, &rules, now).await?;
    Ok(rules)
}

/// Merges two of `org`'s profiles (by any of their ids) by hand; returns
/// the merge's id. Both must exist in `org` and be different profiles.
pub async fn merge(
    store: &Store,
    org: Uuid,
    a: Uuid,
    b: Uuid,
    actor: &str,
    now: i64,
) -> Result<Uuid, IdentityError> {
    let a = store.profile(org, a).await?;
    let b = store.profile(org, b).await?;
    if a.id == b.id {
        return Err(IdentityError::SameProfile);
    }
    Ok(store.merge_profiles(org, a.id, b.id, actor, now).await?)
}

/// Undoes a merge of `org`'s: both profiles come back with their own
/// identities and events.
pub async fn unmerge(
    store: &Store,
    org: Uuid,
    merge: Uuid,
    actor: &str,
    now: i64,
) -> Result<(), IdentityError> {
    store
        .unmerge(org, merge, actor, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => IdentityError::CannotUnmerge(m),
            other => other.into(),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bos_core::identity::IdentifierKind;

    /// The merged explanation names the survivor as the one merged into,
    /// and the absorbed profile as absorbed (it once read as if the
    /// absorbed one were the oldest).
    #[test]
    fn a_merge_names_the_survivor_and_the_absorbed() {
        let survivor = Uuid::from_u128(1);
        let absorbed = Uuid::from_u128(2);
        let o = IdentifyOutcome {
            profile_id: survivor,
            action: IdentifyAction::Merged,
            merged: vec![(
                absorbed,
                Identifier::new(IdentifierKind::Phone, "+14155550100"),
            )],
            linked: vec![],
            dropped: vec![],
        };
        let s = explain(&o);
        let into = s.find("into the oldest, ").expect(&s) + "into the oldest, ".len();
        assert!(s[into..].starts_with(&survivor.to_string()), "{s}");
        let abs = s.find("absorbed ").expect(&s) + "absorbed ".len();
        assert!(s[abs..].starts_with(&absorbed.to_string()), "{s}");
        assert_eq!(s.matches(&absorbed.to_string()).count(), 1, "{s}");
    }
}
