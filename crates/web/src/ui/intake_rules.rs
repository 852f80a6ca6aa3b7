//! Settings → Intake rules: the intent rules as a form (a row per rule;
//! groups read-only and kept as they are) with the whole set as JSON under
//! "Advanced", and the lead settings with the checkout abandonment window.
//! The form works as a plain post: "Add rule" and "Remove" submit it and
//! show it again with everything typed kept, until Save. Saving drops the pipeline's cached settings, so the
//! next event is scored with what was saved.

use super::{notice, Chrome, NoticeQuery};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::intent::{Condition, IntentRules, Rule, RuleError, Thresholds, MAX_RULES};
use bos_core::intent_form::{
    from_parts, new_id, parse_points, to_parts, RulePart, EVENT_TYPES, PLAIN_KINDS,
};
use bos_engine::rules::{self, sentence, LeadSettingsInput};
use bos_store::pipeline::PipelineSettings;
use serde::Deserialize;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// One rule row of the editor, as shown or as typed (kept on errors).
pub struct RuleRow {
    /// The stored id; empty for a row added in the form (it gets one from
    /// its name on save).
    id: String,
    name: String,
    /// A plain condition kind, or `compound` for an `all`/`any` group.
    kind: String,
    value: String,
    equals: String,
    points: String,
    /// A compound row's condition as JSON, posted back unchanged.
    group_json: String,
    /// The condition in words, for saved and compound rows.
    when: String,
    error: Option<String>,
    /// Which input the error is about: `name`, `value`, `points` or `row`.
    bad: &'static str,
}

impl RuleRow {
    fn blank() -> RuleRow {
        RuleRow {
            id: String::new(),
            name: String::new(),
            kind: "event_name".into(),
            value: String::new(),
            equals: String::new(),
            points: "10".into(),
            group_json: String::new(),
            when: String::new(),
            error: None,
            bad: "",
        }
    }

    fn of(r: &Rule) -> RuleRow {
        let (kind, value, equals, group_json) = match to_parts(&r.when) {
            Some((k, v, e)) => (k.to_string(), v, e, String::new()),
            None => (
                COMPOUND.to_string(),
                String::new(),
                String::new(),
                serde_json::to_string(&r.when).unwrap_or_default(),
            ),
        };
        RuleRow {
            id: r.id.clone(),
            name: r.name.clone(),
            kind,
            value,
            equals,
            points: r.points.to_string(),
            group_json,
            when: r.when.describe(),
            error: None,
            bad: "",
        }
    }

    pub fn compound(&self) -> bool {
        self.kind == COMPOUND
    }

    /// `aria-invalid` on the input the row's error is about.
    pub fn invalid(&self, field: &str) -> bool {
        self.error.is_some() && (self.bad == field || self.bad == "row")
    }

    /// The value field's placeholder for this row's kind.
    pub fn placeholder(&self) -> &'static str {
        PLAIN_KINDS
            .iter()
            .find(|(k, _, _)| *k == self.kind)
            .map(|(_, _, p)| *p)
            .unwrap_or("")
    }
}

const COMPOUND: &str = "compound";

/// The rules editor as shown or as typed.
pub struct RulesEditor {
    rows: Vec<RuleRow>,
    high_value: String,
    engaged: String,
    window_shopper: String,
    thresholds_error: Option<String>,
    /// Above the form: that nothing was saved, or a problem of the whole set.
    error: Option<String>,
    /// Rows were added or removed without JavaScript and not saved yet.
    unsaved: bool,
}

impl RulesEditor {
    fn of(r: &IntentRules) -> RulesEditor {
        RulesEditor {
            rows: r.rules.iter().map(RuleRow::of).collect(),
            high_value: r.thresholds.high_value.to_string(),
            engaged: r.thresholds.engaged.to_string(),
            window_shopper: r.thresholds.window_shopper.to_string(),
            thresholds_error: None,
            error: None,
            unsaved: false,
        }
    }

    /// The editor as posted: rows are the `r{i}_…` fields, in index order
    /// (a script may leave gaps when it removes rows).
    fn from_pairs(p: &Pairs) -> RulesEditor {
        let get = |k: &str| {
            p.iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut idx: Vec<usize> = p
            .iter()
            .filter_map(|(k, _)| k.strip_prefix('r')?.strip_suffix("_kind")?.parse().ok())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        // More rows than a rule set may hold are refused by validation;
        // reading a few past that keeps the message honest and bounded.
        idx.truncate(MAX_RULES + 1);
        let rows = idx
            .into_iter()
            .map(|i| {
                let f = |k: &str| get(&format!("r{i}_{k}"));
                let group_json = f("group");
                let when = serde_json::from_str::<Condition>(&group_json)
                    .map(|c| c.describe())
                    .unwrap_or_default();
                RuleRow {
                    id: f("id"),
                    name: f("name"),
                    kind: f("kind"),
                    value: f("value"),
                    equals: f("equals"),
                    points: f("points"),
                    group_json,
                    when,
                    error: None,
                    bad: "",
                }
            })
            .collect();
        RulesEditor {
            rows,
            high_value: get("high_value"),
            engaged: get("engaged"),
            window_shopper: get("window_shopper"),
            thresholds_error: None,
            error: None,
            unsaved: false,
        }
    }

    /// The rule set the form describes, or the form with each problem put
    /// next to its field. Text is read here; the checks are the rule set's
    /// own validation, the same the JSON view and the API get.
    fn read_rules(&mut self) -> Option<IntentRules> {
        let mut rules = Vec::with_capacity(self.rows.len());
        let mut failed = false;
        let mut taken: Vec<String> = self
            .rows
            .iter()
            .filter(|r| !r.id.is_empty())
            .map(|r| r.id.clone())
            .collect();
        for row in &mut self.rows {
            let when = if row.compound() {
                serde_json::from_str::<Condition>(&row.group_json).map_err(|_| {
                    (
                        "row",
                        "This compound condition could not be read; edit it in the JSON view."
                            .to_string(),
                    )
                })
            } else {
                from_parts(&row.kind, &row.value, &row.equals)
                    .map_err(|e| ("value", sentence(&e.to_string())))
            };
            let points =
                parse_points(&row.points).map_err(|e| ("points", sentence(&e.to_string())));
            let (when, points) = match (when, points) {
                (Ok(w), Ok(p)) => (w, p),
                (Err((bad, e)), _) | (_, Err((bad, e))) => {
                    row.error = Some(e);
                    row.bad = bad;
                    failed = true;
                    continue;
                }
            };
            let id = if row.id.is_empty() {
                let refs: Vec<&str> = taken.iter().map(String::as_str).collect();
                let id = new_id(&row.name, &refs);
                taken.push(id.clone());
                id
            } else {
                row.id.clone()
            };
            rules.push(Rule {
                id,
                name: row.name.trim().to_string(),
                when,
                points,
            });
        }
        let th = |v: &str| v.trim().parse::<u8>().ok().filter(|n| *n <= 100);
        let thresholds = match (
            th(&self.high_value),
            th(&self.engaged),
            th(&self.window_shopper),
        ) {
            (Some(high_value), Some(engaged), Some(window_shopper)) => Some(Thresholds {
                high_value,
                engaged,
                window_shopper,
            }),
            _ => {
                self.thresholds_error =
                    Some("Each threshold is a whole number from 0 to 100.".into());
                None
            }
        };
        let (Some(thresholds), false) = (thresholds, failed) else {
            self.error = Some(NOT_SAVED.into());
            return None;
        };
        let set = IntentRules { rules, thresholds };
        if let Err(e) = set.validate() {
            self.place(&set, &e);
            return None;
        }
        Some(set)
    }

    /// Puts a validation error next to the field it is about.
    fn place(&mut self, set: &IntentRules, e: &RuleError) {
        let msg = sentence(&e.to_string());
        // Rows that failed to read are not in `set`, but then validation
        // never ran; so the set's rules and the rows line up one to one.
        let row = e
            .rule_id()
            .and_then(|id| set.rules.iter().position(|r| r.id == id))
            .or_else(|| e.position().map(|p| p - 1))
            .and_then(|i| self.rows.get_mut(i));
        match (e.part(), row) {
            (RulePart::Thresholds, _) => self.thresholds_error = Some(msg),
            (RulePart::RuleSet, _) | (_, None) => {
                self.error = Some(msg);
                return;
            }
            (part, Some(row)) => {
                row.bad = match part {
                    RulePart::Name | RulePart::Id => "name",
                    RulePart::Points => "points",
                    RulePart::Condition if row.compound() => "row",
                    _ => "value",
                };
                // A new rule's id comes from its name: say so in its words.
                row.error = Some(match e {
                    RuleError::EmptyId { .. } => {
                        "Give the rule a name with letters or digits; its id is made from it."
                            .into()
                    }
                    _ => msg,
                });
            }
        }
        self.error = Some(NOT_SAVED.into());
    }
}

const NOT_SAVED: &str = "The rules were not saved: fix what is marked below.";

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
    editor: RulesEditor,
    kinds: &'static [(&'static str, &'static str, &'static str)],
    event_types: &'static [&'static str],
    thresholds: Thresholds,
    rules_json: String,
    /// An error of the JSON view: it then opens with the text kept.
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

/// What differs from the saved settings when a page is shown again.
#[derive(Default)]
struct Typed {
    editor: Option<RulesEditor>,
    rules_json: Option<String>,
    rules_error: Option<String>,
    leads: Option<LeadForm>,
    leads_error: Option<String>,
}

fn page_for(c: Chrome, s: &PipelineSettings, t: Typed) -> IntakePage {
    let leads = t.leads.unwrap_or_else(|| LeadForm {
        ghost_hours: num(s.leads.ghost_after_ms as f64 / HOUR_MS as f64),
        max_nudges: s.leads.max_nudges.to_string(),
        engage_min_score: s.leads.engage_min_score.to_string(),
        abandon_minutes: num(s.abandon_after_ms as f64 / MINUTE_MS as f64),
    });
    IntakePage {
        c,
        editor: t.editor.unwrap_or_else(|| RulesEditor::of(&s.intent)),
        kinds: &PLAIN_KINDS,
        event_types: &EVENT_TYPES,
        thresholds: s.intent.thresholds,
        rules_json: t
            .rules_json
            .unwrap_or_else(|| serde_json::to_string_pretty(&s.intent).unwrap_or_default()),
        rules_error: t.rules_error,
        leads,
        leads_error: t.leads_error,
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
    Ok(super::render(&page_for(c, &settings, Typed::default())))
}

type Pairs = Vec<(String, String)>;

/// `POST /settings/intake`: the rules form (rows; `op` adds or removes a
/// row without saving, for browsers without JavaScript), or the JSON view
/// when `rules_json` is posted.
pub async fn save(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(p): CsrfForm<Pairs>,
) -> PageResult<Response> {
    s.require_admin()?;
    if let Some((_, json)) = p.iter().find(|(k, _)| k == "rules_json") {
        return save_json(&st, &s, json.clone()).await;
    }
    let mut editor = RulesEditor::from_pairs(&p);
    let op = p
        .iter()
        .find(|(k, _)| k == "op")
        .map(|(_, v)| v.as_str())
        .unwrap_or("save");
    let settings = || st.store.pipeline_settings(s.org.id);
    let again = |editor: RulesEditor, status: StatusCode, settings: PipelineSettings| {
        let c = Chrome::new(&s, "Intake rules", "intake_rules");
        let typed = Typed {
            editor: Some(editor),
            ..Typed::default()
        };
        (status, super::render(&page_for(c, &settings, typed))).into_response()
    };
    if op == "add" || op.starts_with("remove-") {
        if op == "add" {
            editor.rows.push(RuleRow::blank());
        } else if let Ok(i) = op["remove-".len()..].parse::<usize>() {
            if i < editor.rows.len() {
                editor.rows.remove(i);
            }
        }
        editor.unsaved = true;
        return Ok(again(editor, StatusCode::OK, settings().await?));
    }
    let Some(rules) = editor.read_rules() else {
        return Ok(again(
            editor,
            StatusCode::UNPROCESSABLE_ENTITY,
            settings().await?,
        ));
    };
    match rules::save_intent_rules(&st.store, &st.pipeline, s.org.id, &rules, st.now()).await {
        Ok(()) => Ok(Redirect::to("/settings/intake?done=intent").into_response()),
        Err(e) => match AppError::from(e) {
            e @ AppError::Invalid { .. } => {
                editor.error = Some(e.detail());
                Ok(again(
                    editor,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    settings().await?,
                ))
            }
            e => Err(e.into()),
        },
    }
}

/// The "Advanced: JSON" view's save: the whole rule set as one document.
async fn save_json(st: &AppState, s: &Session, json: String) -> PageResult<Response> {
    let parsed = serde_json::from_str::<IntentRules>(&json).map_err(|e| {
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
            let c = Chrome::new(s, "Intake rules", "intake_rules");
            let typed = Typed {
                rules_json: Some(json),
                rules_error: Some(e.detail()),
                ..Typed::default()
            };
            let page = page_for(c, &settings, typed);
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
            let typed = Typed {
                leads: Some(form),
                leads_error: Some(msg),
                ..Typed::default()
            };
            let page = page_for(c, &settings, typed);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, super::render(&page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
