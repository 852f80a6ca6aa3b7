//! Intake administration (admin scope): a source's delivery log, one
//! delivery with its raw payload, replay; the intent rules and the
//! lead settings. Another tenant's ids are 404 whatever the key's
//! scopes: every handler looks up before it checks permissions.

use super::{admin_actor, rfc3339, ApiJson, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::params::status_filter;
use crate::views::payload_value;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use bos_core::intent::{IntentRules, Rule, Thresholds};
use bos_engine::rules::{self, LeadSettingsInput};
use bos_engine::sources;
use bos_store::pipeline::Delivery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct DeliveryDto {
    pub id: uuid::Uuid,
    pub source_id: uuid::Uuid,
    /// The provider's event id (deduplication key).
    pub external_id: String,
    /// The event kind: `track`, `identify`, `checkouts/create`, ...
    pub kind: String,
    pub received_at: String,
    /// `pending`, `processed`, `skipped` or `parked`.
    pub status: String,
    pub attempts: i64,
    /// Why it was skipped or parked, or the last failure.
    pub error: Option<String>,
    pub processed_at: Option<String>,
    /// The customer it resolved to.
    pub profile_id: Option<uuid::Uuid>,
}

impl From<&Delivery> for DeliveryDto {
    fn from(d: &Delivery) -> Self {
        DeliveryDto {
            id: d.id,
            source_id: d.source_id,
            external_id: d.external_id.clone(),
            kind: d.kind.clone(),
            received_at: rfc3339(d.received_at),
            status: d.status.clone(),
            attempts: d.attempts,
            error: d.error.clone(),
            processed_at: d.processed_at.map(rfc3339),
            profile_id: d.profile_id,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryDto,
    /// The raw payload as received: JSON when it parses, else a string.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only deliveries with this status: pending, processed, skipped, parked.
    pub status: Option<String>,
    /// At most this many, newest first (1–500, default 50).
    pub limit: Option<u32>,
}

/// A source's recent deliveries, newest first.
#[utoipa::path(get, path = "/sources/{source_id}/deliveries", tag = "sources",
    params(("source_id" = uuid::Uuid, Path, description = "The source's id"), DeliveriesQuery),
    responses((status = 200, body = Vec<DeliveryDto>), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn deliveries(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<Vec<DeliveryDto>>> {
    st.store.source(p.org.id, id).await?;
    let a = admin_actor(&p)?;
    let status = status_filter(q.status.as_deref())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::invalid("limit", "Ask for 1 to 500 deliveries."));
    }
    let rows = st
        .store
        .deliveries(a.org_id, Some(id), status, limit)
        .await?;
    Ok(Json(rows.iter().map(DeliveryDto::from).collect()))
}

/// One delivery with its raw payload.
#[utoipa::path(get, path = "/deliveries/{delivery_id}", tag = "sources",
    params(("delivery_id" = uuid::Uuid, Path, description = "The delivery's id")),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = crate::error::Problem)))]
pub async fn delivery(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<DeliveryDetail>> {
    let (d, raw) = st.store.delivery_payload(p.org.id, id).await?;
    admin_actor(&p)?;
    Ok(Json(DeliveryDetail {
        delivery: (&d).into(),
        payload: payload_value(&raw),
    }))
}

/// Puts a delivery back in the queue: replays a processed one (its effects
/// are idempotent) or retries a parked one.
#[utoipa::path(post, path = "/deliveries/{delivery_id}/replay", tag = "sources",
    params(("delivery_id" = uuid::Uuid, Path, description = "The delivery's id")),
    responses((status = 202, body = DeliveryDto), (status = 404, body = crate::error::Problem)))]
pub async fn replay(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<(StatusCode, Json<DeliveryDto>)> {
    st.store.delivery_payload(p.org.id, id).await?;
    let a = admin_actor(&p)?;
    let d = sources::replay_delivery(&st.store, &st.pipeline, a.org_id, id, st.now()).await?;
    Ok((StatusCode::ACCEPTED, Json((&d).into())))
}

/// The intent rules: scoring rules and category thresholds.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct IntentRulesDto {
    /// `{id, name, when, points}`; `when` is a condition such as
    /// `{"type": "event_name", "is": "Checkout Started"}` or
    /// `{"type": "any", "of": [...]}`.
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<Rule>,
    /// `{high_value, engaged, window_shopper}` score cut-offs.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub thresholds: Thresholds,
}

impl From<IntentRules> for IntentRulesDto {
    fn from(r: IntentRules) -> Self {
        IntentRulesDto {
            rules: r.rules,
            thresholds: r.thresholds,
        }
    }
}

/// The organization's intent rules (defaults until saved).
#[utoipa::path(get, path = "/settings/intent-rules", tag = "sources",
    responses((status = 200, body = IntentRulesDto), (status = 403, body = crate::error::Problem)))]
pub async fn get_intent_rules(
    State(st): State<AppState>,
    p: ApiPrincipal,
) -> ApiResult<Json<IntentRulesDto>> {
    let a = admin_actor(&p)?;
    Ok(Json(
        st.store.pipeline_settings(a.org_id).await?.intent.into(),
    ))
}

/// Replaces the intent rules; they apply to the next event processed.
#[utoipa::path(put, path = "/settings/intent-rules", tag = "sources", request_body = IntentRulesDto,
    responses((status = 200, body = IntentRulesDto), (status = 422, body = crate::error::Problem)))]
pub async fn put_intent_rules(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<IntentRulesDto>, AppError>,
) -> ApiResult<Json<IntentRulesDto>> {
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let rules = IntentRules {
        rules: body.rules,
        thresholds: body.thresholds,
    };
    rules::save_intent_rules(&st.store, &st.pipeline, a.org_id, &rules, st.now()).await?;
    Ok(Json(rules.into()))
}

/// Lead state machine thresholds and the checkout abandonment window.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadSettingsDto {
    /// Silence after which an engaged lead is ghosting (1 minute to 90 days).
    pub ghost_after_ms: i64,
    /// Nudges a ghosting lead gets before it is lost (0–20).
    pub max_nudges: i64,
    /// Intent score that engages a new lead (0–100).
    pub engage_min_score: i64,
    /// A checkout not completed within this is abandoned (1 minute to 7 days).
    pub abandon_after_ms: i64,
}

impl From<LeadSettingsDto> for LeadSettingsInput {
    fn from(d: LeadSettingsDto) -> Self {
        LeadSettingsInput {
            ghost_after_ms: d.ghost_after_ms,
            max_nudges: d.max_nudges,
            engage_min_score: d.engage_min_score,
            abandon_after_ms: d.abandon_after_ms,
        }
    }
}

impl From<LeadSettingsInput> for LeadSettingsDto {
    fn from(d: LeadSettingsInput) -> Self {
        LeadSettingsDto {
            ghost_after_ms: d.ghost_after_ms,
            max_nudges: d.max_nudges,
            engage_min_score: d.engage_min_score,
            abandon_after_ms: d.abandon_after_ms,
        }
    }
}

/// The organization's lead settings (defaults until saved).
#[utoipa::path(get, path = "/settings/leads", tag = "sources",
    responses((status = 200, body = LeadSettingsDto), (status = 403, body = crate::error::Problem)))]
pub async fn get_leads(
    State(st): State<AppState>,
    p: ApiPrincipal,
) -> ApiResult<Json<LeadSettingsDto>> {
    let a = admin_actor(&p)?;
    Ok(Json(
        rules::lead_settings(&st.store, a.org_id).await?.into(),
    ))
}

/// Replaces the lead settings; they apply to the next event processed.
#[utoipa::path(put, path = "/settings/leads", tag = "sources", request_body = LeadSettingsDto,
    responses((status = 200, body = LeadSettingsDto), (status = 422, body = crate::error::Problem)))]
pub async fn put_leads(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<LeadSettingsDto>, AppError>,
) -> ApiResult<Json<LeadSettingsDto>> {
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    rules::save_lead_settings(&st.store, &st.pipeline, a.org_id, &body.into(), st.now()).await?;
    Ok(Json(
        rules::lead_settings(&st.store, a.org_id).await?.into(),
    ))
}
