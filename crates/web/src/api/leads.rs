//! Leads over the API: the feed, one lead with its state
//! history, and the quick actions the dashboard offers.

use super::{rfc3339, ApiJson, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::extract::{Query, State};
use axum::Json;
use bos_core::intent::Category;
use bos_core::leads::LeadState;
use bos_core::Scope;
use bos_engine::leads::{self, Action, Done};
use bos_store::pipeline::{Lead, LeadFilter, LeadTransitionRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

fn require_read(p: &ApiPrincipal) -> Result<(), AppError> {
    if p.has(Scope::Admin) || p.has(Scope::Agent) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Reading leads needs an API key with the 'agent' or 'admin' scope.".into(),
        ))
    }
}

fn require_act(p: &ApiPrincipal) -> Result<(), AppError> {
    if p.has(Scope::Admin) || p.has(Scope::Agent) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Acting on leads needs an API key with the 'agent' or 'admin' scope.".into(),
        ))
    }
}

#[derive(Serialize, ToSchema)]
pub struct FiredDto {
    pub rule_id: String,
    pub name: String,
    pub points: i32,
    /// The rule's condition in words.
    pub why: String,
}

#[derive(Serialize, ToSchema)]
pub struct LeadDto {
    pub profile_id: Uuid,
    pub display_name: String,
    pub email: String,
    pub phone: String,
    pub ltv_cents: i64,
    /// `new`, `engaged`, `ghosting`, `converted` or `lost`.
    pub state: String,
    pub state_at: String,
    /// 0–100, from the latest event.
    pub score: i64,
    /// `high_value`, `engaged`, `window_shopper` or `browsing`.
    pub category: String,
    /// The intent rules that fired on the latest event, with their points.
    pub fired: Vec<FiredDto>,
    pub last_event: String,
    pub pages_viewed: i64,
    pub visits: i64,
    pub open_cart_cents: Option<i64>,
    /// The member (email) working the lead.
    pub assignee: Option<String>,
    pub tags: Vec<String>,
    pub last_seen_at: String,
    pub created_at: String,
    /// The feed's order and cursor: pass it back as `before` (milliseconds).
    pub updated_at: String,
    pub updated_at_ms: i64,
}

impl From<&Lead> for LeadDto {
    fn from(l: &Lead) -> Self {
        LeadDto {
            profile_id: l.profile_id,
            display_name: l.display_name.clone(),
            email: l.email.clone(),
            phone: l.phone.clone(),
            ltv_cents: l.ltv_cents,
            state: l.state.as_str().to_string(),
            state_at: rfc3339(l.state_at),
            score: l.score,
            category: l.category.as_str().to_string(),
            fired: leads::fired_rules(&l.fired)
                .into_iter()
                .map(|f| FiredDto {
                    rule_id: f.rule_id,
                    name: f.name,
                    points: f.points,
                    why: f.why,
                })
                .collect(),
            last_event: l.last_event.clone(),
            pages_viewed: l.pages_viewed,
            visits: l.visits,
            open_cart_cents: l.open_cart_cents,
            assignee: l.assignee.clone(),
            tags: leads::tags_of(&l.tags),
            last_seen_at: rfc3339(l.last_seen_at),
            created_at: rfc3339(l.created_at),
            updated_at: rfc3339(l.updated_at),
            updated_at_ms: l.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TransitionDto {
    pub from: String,
    pub to: String,
    pub reason: String,
    /// `system`, or the person or key that moved it.
    pub actor: String,
    pub at: String,
}

impl From<LeadTransitionRow> for TransitionDto {
    fn from(t: LeadTransitionRow) -> Self {
        TransitionDto {
            from: t.from_state.as_str().to_string(),
            to: t.to_state.as_str().to_string(),
            reason: t.reason,
            actor: t.actor,
            at: rfc3339(t.at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LeadPage {
    pub leads: Vec<LeadDto>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LeadDetail {
    pub lead: LeadDto,
    /// State moves, oldest first.
    pub history: Vec<TransitionDto>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadParams {
    /// Only leads in this state: `new`, `engaged`, `ghosting`, `converted`, `lost`.
    state: Option<String>,
    /// Only leads of this intent category: `high_value`, `engaged`, `window_shopper`, `browsing`.
    category: Option<String>,
    /// The `next_before` cursor of the previous page.
    before: Option<String>,
    /// 1–200, default 50.
    limit: Option<u32>,
}

/// Leads, most recently updated first.
#[utoipa::path(get, path = "/leads", tag = "leads", params(LeadParams),
    responses((status = 200, body = LeadPage), (status = 422, body = crate::error::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Query(q): Query<LeadParams>,
) -> ApiResult<Json<LeadPage>> {
    require_read(&p)?;
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(LeadState::parse(s).ok_or_else(|| {
            AppError::invalid(
                "state",
                format!("unknown state '{s}': use new, engaged, ghosting, converted or lost"),
            )
        })?),
    };
    let category = match q.category.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(c) => Some(Category::parse(c).ok_or_else(|| {
            AppError::invalid(
                "category",
                format!(
                    "unknown category '{c}': use high_value, engaged, window_shopper or browsing"
                ),
            )
        })?),
    };
    let (before, before_id) = match q.before.as_deref().filter(|s| !s.is_empty()) {
        None => (None, None),
        Some(b) => leads::parse_feed_cursor(b).ok_or_else(|| {
            AppError::invalid(
                "before",
                "send the `next_before` cursor of the previous page as is",
            )
        })?,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let rows = st
        .store
        .lead_feed(
            p.org.id,
            &LeadFilter {
                state,
                category,
                before,
                before_id,
                limit,
            },
        )
        .await?;
    let next_before = (rows.len() as u32 == limit)
        .then(|| rows.last().map(leads::feed_cursor))
        .flatten();
    Ok(Json(LeadPage {
        leads: rows.iter().map(Into::into).collect(),
        next_before,
    }))
}

async fn detail(st: &AppState, org: Uuid, id: Uuid) -> Result<LeadDetail, AppError> {
    let lead = st.store.lead(org, id).await?.ok_or(AppError::NotFound)?;
    let history = st.store.lead_history(org, lead.profile_id).await?;
    Ok(LeadDetail {
        lead: (&lead).into(),
        history: history.into_iter().map(Into::into).collect(),
    })
}

/// One lead (by any of its profile ids) with its state history.
#[utoipa::path(get, path = "/leads/{customer_id}", tag = "leads",
    params(("customer_id" = Uuid, Path, description = "The customer's id")),
    responses((status = 200, body = LeadDetail), (status = 404, body = crate::error::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<LeadDetail>> {
    let d = detail(&st, p.org.id, id).await?;
    require_read(&p)?;
    Ok(Json(d))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadActionRequest {
    /// `mark_converted`, `mark_lost`, `reopen`, `assign` or `tag`.
    pub action: String,
    /// For `assign`: a member's email; null or empty unassigns.
    pub assignee: Option<String>,
    /// For `tag`: the tag to add (1–40 characters).
    pub tag: Option<String>,
}

/// A quick action on a lead: mark converted or lost, reopen, assign, tag.
/// Answers the lead as it is afterwards; a move that does not apply to the
/// lead's state is 409.
#[utoipa::path(post, path = "/leads/{customer_id}/actions", tag = "leads", request_body = LeadActionRequest,
    params(("customer_id" = Uuid, Path, description = "The customer's id")),
    responses((status = 200, body = LeadDetail), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn act(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    raw: Result<ApiJson<serde_json::Value>, AppError>,
) -> ApiResult<Json<LeadDetail>> {
    let org = p.org.id;
    // Look up first: another organization's lead is 404 whatever the body.
    let lead = st.store.lead(org, id).await?.ok_or(AppError::NotFound)?;
    require_act(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(raw) = raw?;
    let body: LeadActionRequest = serde_json::from_value(raw).map_err(|e| AppError::Invalid {
        field: None,
        detail: format!(
            "{e}. Send {{\"action\": \"mark_converted\" | \"mark_lost\" | \"reopen\" | \"assign\" | \"tag\", \"assignee\"?: \"member@example.com\", \"tag\"?: \"vip\"}}."
        ),
    })?;
    let action = match body.action.as_str() {
        "mark_converted" => Action::MarkConverted,
        "mark_lost" => Action::MarkLost,
        "reopen" => Action::Reopen,
        "assign" => Action::Assign(
            leads::assignee(&st.store, org, body.assignee.as_deref().unwrap_or("")).await?,
        ),
        "tag" => {
            let raw = body.tag.as_deref().ok_or_else(|| {
                AppError::invalid("tag", "send {\"action\": \"tag\", \"tag\": \"vip\"}")
            })?;
            leads::tag(raw)?
        }
        other => {
            return Err(AppError::invalid(
                "action",
                format!("unknown action '{other}': send one of mark_converted, mark_lost, reopen, assign (with \"assignee\": a member's email) or tag (with \"tag\")"),
            ))
        }
    };
    let actor = format!("api key {}", p.key.name);
    match leads::act(
        &st.lead_deps(),
        org,
        lead.profile_id,
        action,
        &actor,
        st.now(),
    )
    .await?
    {
        Done::Moved(_) => {}
        Done::Unchanged => {
            return Err(AppError::Conflict(format!(
                "The lead is {}; '{}' does not apply to it.",
                lead.state.as_str(),
                body.action
            )))
        }
    }
    Ok(Json(detail(&st, org, lead.profile_id).await?))
}
