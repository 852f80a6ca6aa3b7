//! Settings → Intake rules: the intent rules in words and as an
//! editable JSON document, and the lead settings with the checkout
//! abandonment window. Saving drops the pipeline's cached settings, so the
//! next event is scored with what was saved.

use super::{notice, Chrome, NoticeQuery};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::intent::{IntentRules, Thresholds};
use bos_engine::rules::{self, sentence, LeadSettingsInput};
use bos_store::pipeline::PipelineSettings;
use serde::Deserialize;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

pub struct RuleRow {
    id: String,
    name: String,
    when: String,
    points: i32,
}

/// The lead form as typed (kept on errors).
pub struct LeadForm {
    ghost_hours: String,
    max_nudges: String,
    engage_min_score: String,
    abandon_minutes: String,
}

#[derive(Template)]
#[template(path = "intake_rules.html")]
struct IntakePage {
    c: Chrome,
    rows: Vec<RuleRow>,
    thresholds: Thresholds,
    rules_json: String,
    rules_error: Option<String>,
    leads: LeadForm,
    leads_error: Option<String>,
    ghost_words: String,
    abandon_words: String,
}

/// "72" for whole numbers, "1.5" otherwise.
fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn page_for(
    c: Chrome,
    s: &PipelineSettings,
    rules_json: Option<String>,
    rules_error: Option<String>,
    leads: Option<LeadForm>,
    leads_error: Option<String>,
) -> IntakePage {
    let rows = s
        .intent
        .rules
        .iter()
        .map(|r| RuleRow {
            id: r.id.clone(),
            name: r.name.clone(),
            when: r.when.describe(),
            points: r.points,
        })
        .collect();
    let leads = leads.unwrap_or_else(|| LeadForm {
        ghost_hours: num(s.leads.ghost_after_ms as f64 / HOUR_MS as f64),
        max_nudges: s.leads.max_nudges.to_string(),
        engage_min_score: s.leads.engage_min_score.to_string(),
        abandon_minutes: num(s.abandon_after_ms as f64 / MINUTE_MS as f64),
    });
    IntakePage {
        c,
        rows,
        thresholds: s.intent.thresholds,
        rules_json: rules_json
            .unwrap_or_else(|| serde_json::to_string_pretty(&s.intent).unwrap_or_default()),
        rules_error,
        leads,
        leads_error,
        ghost_words: bos_core::leads::human_duration(s.leads.ghost_after_ms),
        abandon_words: bos_core::leads::human_duration(s.abandon_after_ms),
    }
}

pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    s.require_admin()?;
    let settings = st.store.pipeline_settings(s.org.id).await?;
    let mut c = Chrome::new(&s, "Intake rules", "intake_rules");
    c.notice = notice(q.done.as_deref());
    Ok(super::render(&page_for(
        c, &settings, None, None, None, None,
    )))
}

#[derive(Deserialize)]
pub struct RulesForm {
    #[serde(default)]
    rules_json: String,
}

pub async fn save(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<RulesForm>,
) -> PageResult<Response> {
    s.require_admin()?;
    let parsed = serde_json::from_str::<IntentRules>(&f.rules_json).map_err(|e| {
        AppError::invalid(
            "rules",
            format!(
                "The rules are not valid: {}. Fix the JSON below, or reset to the defaults.",
                sentence(&e.to_string()).trim_end_matches('.')
            ),
        )
    });
    let result = match parsed {
        Ok(r) => rules::save_intent_rules(&st.store, &st.pipeline, s.org.id, &r, st.now())
            .await
            .map_err(AppError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/settings/intake?done=intent").into_response()),
        Err(e @ AppError::Invalid { .. }) => {
            let settings = st.store.pipeline_settings(s.org.id).await?;
            let c = Chrome::new(&s, "Intake rules", "intake_rules");
            let page = page_for(
                c,
                &settings,
                Some(f.rules_json),
                Some(e.detail()),
                None,
                None,
            );
            Ok((StatusCode::UNPROCESSABLE_ENTITY, super::render(&page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn reset(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    s.require_admin()?;
    rules::save_intent_rules(
        &st.store,
        &st.pipeline,
        s.org.id,
        &IntentRules::default(),
        st.now(),
    )
    .await?;
    Ok(Redirect::to("/settings/intake?done=intent_reset").into_response())
}

#[derive(Deserialize)]
pub struct LeadsForm {
    #[serde(default)]
    ghost_hours: String,
    #[serde(default)]
    max_nudges: String,
    #[serde(default)]
    engage_min_score: String,
    #[serde(default)]
    abandon_minutes: String,
}

fn parse_num(v: &str, what: &str) -> Result<f64, AppError> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| AppError::invalid("leads", format!("{what} must be a number.")))
}

fn leads_input(f: &LeadsForm) -> Result<LeadSettingsInput, AppError> {
    let ghost = parse_num(&f.ghost_hours, "Ghosting after (hours)")?;
    let nudges = parse_num(&f.max_nudges, "Nudges before lost")?;
    let score = parse_num(&f.engage_min_score, "Minimum score to engage")?;
    let abandon = parse_num(&f.abandon_minutes, "Checkout abandoned after (minutes)")?;
    if nudges.fract() != 0.0 || score.fract() != 0.0 {
        return Err(AppError::invalid(
            "leads",
            "Nudges and the minimum score are whole numbers.",
        ));
    }
    let clamp = |v: f64| v.clamp(i64::MIN as f64, i64::MAX as f64).round() as i64;
    Ok(LeadSettingsInput {
        ghost_after_ms: clamp(ghost * HOUR_MS as f64),
        max_nudges: clamp(nudges),
        engage_min_score: clamp(score),
        abandon_after_ms: clamp(abandon * MINUTE_MS as f64),
    })
}

pub async fn save_lead_settings(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<LeadsForm>,
) -> PageResult<Response> {
    s.require_admin()?;
    let result = match leads_input(&f) {
        Ok(d) => rules::save_lead_settings(&st.store, &st.pipeline, s.org.id, &d, st.now())
            .await
            .map_err(AppError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/settings/intake?done=leads").into_response()),
        Err(e @ AppError::Invalid { .. }) => {
            let settings = st.store.pipeline_settings(s.org.id).await?;
            let c = Chrome::new(&s, "Intake rules", "intake_rules");
            let form = LeadForm {
                ghost_hours: f.ghost_hours,
                max_nudges: f.max_nudges,
                engage_min_score: f.engage_min_score,
                abandon_minutes: f.abandon_minutes,
            };
            // The API's messages speak in milliseconds; the form in hours
            // and minutes.
            let msg = match e {
                AppError::Invalid {
                    field: Some("ghost_after_ms"),
                    ..
                } => "A lead should count as ghosting after between 1 minute and 90 days (2160 hours) of silence; pick a number of hours in that range.".to_string(),
                AppError::Invalid {
                    field: Some("abandon_after_ms"),
                    ..
                } => "A checkout should count as abandoned after between 1 and 10080 minutes (7 days); pick a number of minutes in that range.".to_string(),
                e => e.detail(),
            };
            let page = page_for(c, &settings, None, None, Some(form), Some(msg));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, super::render(&page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
