//! Settings → Identity rules: per kind a priority and a maximum per
//! profile, the blocklist, and the default phone region.

use super::{Chrome, NoticeQuery};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::identity::IdentityRules;
use bos_engine::identity::{self, KindRuleInput, RulesInput};

pub struct KindRow {
    kind: String,
    priority: u32,
    max: u32,
}

#[derive(Template)]
#[template(path = "identity_rules.html")]
struct RulesPage {
    c: Chrome,
    rows: Vec<KindRow>,
    blocklist: String,
    region: String,
    error: Option<String>,
}

fn page_for(
    s: &Session,
    rules: &IdentityRules,
    error: Option<String>,
    notice: Option<String>,
) -> RulesPage {
    let mut rows: Vec<KindRow> = rules
        .kinds
        .iter()
        .map(|(k, r)| KindRow {
            kind: k.to_string(),
            priority: r.priority,
            max: r.max_per_profile,
        })
        .collect();
    rows.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.kind.cmp(&b.kind)));
    let mut c = Chrome::new(s, "Identity rules", "identity");
    c.notice = notice;
    RulesPage {
        c,
        rows,
        blocklist: rules
            .blocklist
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        region: rules.default_region.clone(),
        error,
    }
}

pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let rules = st.store.identity_rules(s.org.id).await?;
    Ok(super::render(&page_for(
        &s,
        &rules,
        None,
        super::notice(q.done.as_deref()),
    )))
}

pub async fn save(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<Vec<(String, String)>>,
) -> PageResult<Response> {
    s.require_admin()?;
    let get = |k: &str| {
        f.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let mut kinds = Vec::new();
    let mut bad = None;
    for (k, v) in &f {
        if let Some(kind) = k.strip_prefix("priority_") {
            let max = get(&format!("max_{kind}"));
            match (v.trim().parse::<u32>(), max.parse::<u32>()) {
                (Ok(priority), Ok(max_per_profile)) => kinds.push(KindRuleInput {
                    kind: kind.to_string(),
                    priority,
                    max_per_profile,
                }),
                _ => {
                    bad = Some(format!(
                        "Priority and maximum for {kind} must be whole numbers."
                    ))
                }
            }
        }
    }
    let new_kind = get("new_kind");
    if !new_kind.is_empty() {
        match (
            get("new_priority").parse::<u32>(),
            get("new_max").parse::<u32>(),
        ) {
            (Ok(priority), Ok(max_per_profile)) => kinds.push(KindRuleInput {
                kind: new_kind,
                priority,
                max_per_profile,
            }),
            _ => bad = Some("Give the new kind a priority and a maximum (whole numbers).".into()),
        }
    }
    let input = RulesInput {
        kinds,
        blocklist: get("blocklist").lines().map(str::to_string).collect(),
        default_region: get("default_region"),
    };
    let result = match bad {
        Some(msg) => Err(AppError::invalid("kinds", msg)),
        None => identity::save_rules(&st.store, s.org.id, &input, st.now())
            .await
            .map_err(AppError::from),
    };
    match result {
        Ok(_) => Ok(Redirect::to("/settings/identity?done=rules").into_response()),
        Err(e @ AppError::Invalid { .. }) => {
            let current = st.store.identity_rules(s.org.id).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                super::render(&page_for(&s, &current, Some(e.detail()), None)),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}
