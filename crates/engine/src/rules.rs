//! An organization's intake rules, for every caller (Settings → Intake
//! rules and the API): the intent scoring rules and the lead state
//! machine's settings, checked with a sentence naming the field at fault,
//! stored, and the pipeline's cached copy dropped so the next event is
//! processed under them.

use crate::pipeline::Pipeline;
use bos_core::intent::{IntentRules, RuleError};
use bos_core::leads::{LeadSettings, LeadSettingsError};
use bos_store::{Store, StoreError};
use uuid::Uuid;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// Why rules or settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// An input is not acceptable; the text says what to change.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, detail: impl Into<String>) -> RulesError {
    RulesError::Invalid {
        field,
        detail: detail.into(),
    }
}

/// "rule x ..." → "Rule x ...".
pub fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => format!("{}{}.", f.to_uppercase(), c.as_str().trim_end_matches('.')),
        None => String::new(),
    }
}

/// Validates intent rules, with the first problem as a sentence.
pub fn check_intent_rules(r: &IntentRules) -> Result<(), RulesError> {
    r.validate().map_err(|e| {
        let field = match e {
            RuleError::Thresholds { .. } => "thresholds",
            _ => "rules",
        };
        invalid(field, sentence(&e.to_string()))
    })
}

/// Checks and saves intent rules; they apply to the next event processed.
pub async fn save_intent_rules(
    store: &Store,
    pipeline: &Pipeline,
    org: Uuid,
    r: &IntentRules,
    now: i64,
) -> Result<(), RulesError> {
    check_intent_rules(r)?;
    store.set_intent_rules(org, r, now).await?;
    pipeline.settings_changed(org);
    Ok(())
}

/// Lead settings as given, before they are checked: wide integers, so an
/// out-of-range number is reported rather than wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadSettingsInput {
    /// Silence after which an engaged lead is ghosting.
    pub ghost_after_ms: i64,
    /// Nudges a ghosting lead gets before it is lost.
    pub max_nudges: i64,
    /// Intent score that engages a new lead.
    pub engage_min_score: i64,
    /// A checkout not completed within this is abandoned.
    pub abandon_after_ms: i64,
}

/// Validates lead settings; the error names the field and the range.
pub fn lead_settings_from(d: &LeadSettingsInput) -> Result<(LeadSettings, i64), RulesError> {
    if !(0..=20).contains(&d.max_nudges) {
        return Err(invalid(
            "max_nudges",
            format!(
                "A ghosting lead may get 0 to 20 nudges before it is lost (it is set to {}); pick a number in that range.",
                d.max_nudges
            ),
        ));
    }
    if !(0..=100).contains(&d.engage_min_score) {
        return Err(invalid(
            "engage_min_score",
            format!(
                "The intent score that engages a new lead must be from 0 to 100 (it is set to {}); pick a score in that range.",
                d.engage_min_score
            ),
        ));
    }
    let s = LeadSettings {
        ghost_after_ms: d.ghost_after_ms,
        max_nudges: d.max_nudges as u32,
        engage_min_score: d.engage_min_score as u8,
    };
    s.validate().map_err(|e| {
        let field = match e {
            LeadSettingsError::GhostAfter { .. } => "ghost_after_ms",
            LeadSettingsError::MaxNudges(_) => "max_nudges",
            LeadSettingsError::EngageMinScore(_) => "engage_min_score",
        };
        invalid(field, sentence(&e.to_string()))
    })?;
    if !(MINUTE_MS..=7 * DAY_MS).contains(&d.abandon_after_ms) {
        return Err(invalid(
            "abandon_after_ms",
            format!(
                "A checkout should count as abandoned after between 1 minute and 7 days (it is set to {} ms); pick a period in that range.",
                d.abandon_after_ms
            ),
        ));
    }
    Ok((s, d.abandon_after_ms))
}

/// Checks and saves lead settings; they apply to the next event processed.
pub async fn save_lead_settings(
    store: &Store,
    pipeline: &Pipeline,
    org: Uuid,
    d: &LeadSettingsInput,
    now: i64,
) -> Result<(), RulesError> {
    let (s, abandon) = lead_settings_from(d)?;
    store.set_lead_settings(org, &s, abandon, now).await?;
    pipeline.settings_changed(org);
    Ok(())
}

/// The stored lead settings in the shape they are given in.
pub async fn lead_settings(store: &Store, org: Uuid) -> Result<LeadSettingsInput, StoreError> {
    let s = store.pipeline_settings(org).await?;
    Ok(LeadSettingsInput {
        ghost_after_ms: s.leads.ghost_after_ms,
        max_nudges: i64::from(s.leads.max_nudges),
        engage_min_score: i64::from(s.leads.engage_min_score),
        abandon_after_ms: s.abandon_after_ms,
    })
}
