//! Nudge campaigns over the API: list, create, read, edit,
//! change status, the per-step funnel and previews; the development sink's
//! outbox; the tenant's nudge settings; a customer's enrollments and
//! executions, and taking a customer out of a campaign. Reading needs the
//! `agent` or `admin` scope, changing campaigns and settings `admin`.
//! Another tenant's ids are 404 whatever the key's scopes: every handler
//! looks up before it checks permissions, and bodies are read after that.

use super::{rfc3339, ApiJson, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use bos_core::nudge::{Campaign, FrequencyCap, Windows};
use bos_core::Scope;
use bos_engine::campaigns;
use bos_engine::rules::sentence;
use bos_store::nudge::{CampaignStatus, NudgeSettings, StepFunnel};
use bos_store::nudge_admin::{
    CampaignRow, CampaignStats, EnrollmentRow, ExecutionRow, Preview, VariantStat,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

fn require_read(p: &ApiPrincipal) -> Result<(), AppError> {
    if p.has(Scope::Admin) || p.has(Scope::Agent) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Reading campaigns needs an API key with the 'agent' or 'admin' scope.".into(),
        ))
    }
}

fn require_admin(p: &ApiPrincipal) -> Result<(), AppError> {
    p.require(Scope::Admin)
}

/// A campaign: the core definition (`name`, `trigger`, `steps`, `stop`,
/// `quiet_hours`, `max_attempts`, `reentry_cooldown_ms`) plus its status.
#[derive(Serialize, ToSchema)]
pub struct CampaignDto {
    pub id: Uuid,
    /// `draft`, `active`, `paused` or `archived`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    /// Live figures (in lists and for one campaign), with the customers
    /// its trigger caught but it did not enroll, by reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub stats: Option<CampaignStats>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub campaign: Campaign,
}

impl CampaignDto {
    fn new(r: CampaignRow, stats: Option<CampaignStats>) -> CampaignDto {
        CampaignDto {
            id: r.id,
            status: r.status.as_str().into(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            stats,
            campaign: r.campaign,
        }
    }
}

/// Splits a body into the campaign and its optional status.
fn campaign_body(mut v: Value) -> Result<(Campaign, Option<CampaignStatus>), AppError> {
    let status = match v.as_object_mut().and_then(|o| o.remove("status")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(campaigns::parse_status(&s)?),
        Some(_) => return Err(campaigns::parse_status("").unwrap_err().into()),
    };
    if let Some(o) = v.as_object_mut() {
        for k in ["id", "created_at", "updated_at", "stats"] {
            o.remove(k);
        }
    }
    let c = serde_json::from_value::<Campaign>(v).map_err(|e| {
        AppError::invalid(
            "campaign",
            format!(
                "The campaign could not be read: {}. Send name, trigger, steps, stop, quiet_hours, max_attempts and reentry_cooldown_ms.",
                e.to_string().trim_end_matches('.')
            ),
        )
    })?;
    Ok((c, status))
}

/// The organization's campaigns with their live figures.
#[utoipa::path(get, path = "/campaigns", tag = "campaigns",
    responses((status = 200, body = Vec<CampaignDto>)))]
pub async fn list(
    State(st): State<AppState>,
    p: ApiPrincipal,
) -> ApiResult<Json<Vec<CampaignDto>>> {
    require_read(&p)?;
    let rows = st.store.campaigns(p.org.id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|s| CampaignDto::new(s.row, Some(s.stats)))
            .collect(),
    ))
}

/// Creates a campaign. `status` is `draft` (the default), `active` or `paused`.
#[utoipa::path(post, path = "/campaigns", tag = "campaigns",
    request_body(content = Object, description = "The campaign definition plus an optional `status`"),
    responses((status = 201, body = CampaignDto), (status = 422, body = crate::error::Problem)))]
pub async fn create_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<Value>, AppError>,
) -> ApiResult<(StatusCode, Json<CampaignDto>)> {
    require_admin(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let (c, status) = campaign_body(body)?;
    let id = campaigns::create(
        &st.store,
        p.org.id,
        &c,
        status.unwrap_or(CampaignStatus::Draft),
        st.now(),
    )
    .await?;
    let row = campaigns::find(&st.store, p.org.id, id).await?;
    Ok((StatusCode::CREATED, Json(CampaignDto::new(row, None))))
}

/// One campaign.
#[utoipa::path(get, path = "/campaigns/{campaign_id}", tag = "campaigns",
    params(("campaign_id" = Uuid, Path, description = "The campaign's id")),
    responses((status = 200, body = CampaignDto), (status = 404, body = crate::error::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<CampaignDto>> {
    let row = campaigns::find(&st.store, p.org.id, id).await?;
    require_read(&p)?;
    let stats = st.store.campaign_stats(p.org.id, id).await?;
    Ok(Json(CampaignDto::new(row, Some(stats))))
}

/// Replaces a campaign's definition; a `status` in the body changes it too.
#[utoipa::path(put, path = "/campaigns/{campaign_id}", tag = "campaigns",
    params(("campaign_id" = Uuid, Path, description = "The campaign's id")),
    request_body(content = Object, description = "The campaign definition plus an optional `status`"),
    responses((status = 200, body = CampaignDto), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn put_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    body: Result<ApiJson<Value>, AppError>,
) -> ApiResult<Json<CampaignDto>> {
    let row = campaigns::find(&st.store, p.org.id, id).await?;
    require_admin(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let (c, status) = campaign_body(body)?;
    campaigns::update(&st.store, p.org.id, id, &c, st.now()).await?;
    if let Some(s) = status.filter(|s| *s != row.status) {
        campaigns::change_status(&st.store, &st.scheduler, p.org.id, &row, s, st.now()).await?;
    }
    Ok(Json(CampaignDto::new(
        campaigns::find(&st.store, p.org.id, id).await?,
        None,
    )))
}

#[derive(Deserialize, ToSchema)]
pub struct StatusBody {
    /// `draft`, `active`, `paused` or `archived`. Archiving ends every
    /// customer's run through the campaign.
    pub status: String,
}

/// Activates, pauses or archives a campaign.
#[utoipa::path(post, path = "/campaigns/{campaign_id}/status", tag = "campaigns",
    params(("campaign_id" = Uuid, Path, description = "The campaign's id")),
    request_body = StatusBody,
    responses((status = 200, body = CampaignDto), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn set_status(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    body: Result<ApiJson<Value>, AppError>,
) -> ApiResult<Json<CampaignDto>> {
    let row = campaigns::find(&st.store, p.org.id, id).await?;
    require_admin(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let body: StatusBody = serde_json::from_value(body).map_err(|_| {
        AppError::invalid(
            "status",
            "Send {\"status\": \"active\"} (or draft, paused, archived).",
        )
    })?;
    let to = campaigns::parse_status(&body.status)?;
    campaigns::change_status(&st.store, &st.scheduler, p.org.id, &row, to, st.now()).await?;
    Ok(Json(CampaignDto::new(
        campaigns::find(&st.store, p.org.id, id).await?,
        None,
    )))
}

#[derive(Serialize, ToSchema)]
pub struct FunnelDto {
    /// One row per step (numbered from 0), zeros before anything was sent.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepFunnel>,
    /// Sends and conversions per step and A/B variant.
    #[schema(value_type = Vec<Object>)]
    pub variants: Vec<VariantStat>,
}

/// Per-step sent, delivered, opened, clicked, replied, converted, and the A/B comparison.
#[utoipa::path(get, path = "/campaigns/{campaign_id}/funnel", tag = "campaigns",
    params(("campaign_id" = Uuid, Path, description = "The campaign's id")),
    responses((status = 200, body = FunnelDto), (status = 404, body = crate::error::Problem)))]
pub async fn funnel(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<FunnelDto>> {
    campaigns::find(&st.store, p.org.id, id).await?;
    require_read(&p)?;
    Ok(Json(FunnelDto {
        steps: st.store.campaign_funnel(p.org.id, id).await?,
        variants: st.store.variant_stats(p.org.id, id).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct PreviewBody {
    /// The step, from 1 (as the builder numbers them).
    pub step: usize,
    /// The variant, from 1.
    #[serde(default = "one")]
    pub variant: usize,
    /// The customer to render for.
    pub profile_id: Uuid,
}

fn one() -> usize {
    1
}

#[derive(Serialize, ToSchema)]
pub struct PreviewDto {
    /// `email` or `sms` (a `preferred` step resolved for this customer).
    pub channel: String,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
}

impl From<Preview> for PreviewDto {
    fn from(p: Preview) -> Self {
        PreviewDto {
            channel: p.channel,
            to: p.to,
            subject: p.subject,
            text: p.text,
            html: p.html,
        }
    }
}

/// Renders a step for a real customer without sending it. A value the
/// message needs and the customer lacks (say a first name) is a 422 with
/// the sentence.
#[utoipa::path(post, path = "/campaigns/{campaign_id}/preview", tag = "campaigns",
    params(("campaign_id" = Uuid, Path, description = "The campaign's id")),
    request_body = PreviewBody,
    responses((status = 200, body = PreviewDto), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn preview(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    body: Result<ApiJson<Value>, AppError>,
) -> ApiResult<Json<PreviewDto>> {
    let row = campaigns::find(&st.store, p.org.id, id).await?;
    require_read(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let body: PreviewBody = serde_json::from_value(body).map_err(|_| {
        AppError::invalid(
            "preview",
            "Send {\"step\": 1, \"variant\": 1, \"profile_id\": \"…\"}: the step and variant from 1, and a customer's id.",
        )
    })?;
    let r = st
        .store
        .preview(
            p.org.id,
            Some(id),
            &row.campaign,
            body.step.saturating_sub(1),
            body.variant.saturating_sub(1),
            body.profile_id,
            &st.urls(),
        )
        .await?;
    match r {
        Ok(p) => Ok(Json(p.into())),
        Err(e) => Err(AppError::invalid("preview", sentence(&e))),
    }
}

/// A message as stored: the outbox, a campaign's or a customer's sends.
#[derive(Serialize, ToSchema)]
pub struct ExecutionDto {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub campaign_name: String,
    pub enrollment_id: Uuid,
    pub profile_id: Uuid,
    /// From 1.
    pub step: i64,
    pub variant: String,
    /// `email` or `sms`.
    pub channel: String,
    /// `sending`, `retrying`, `sent`, `delivered`, `undelivered`, `failed`
    /// or `unknown` (may have been sent; not retried).
    pub status: String,
    pub provider: Option<String>,
    pub error: Option<String>,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub opened_at: Option<String>,
    pub clicked_at: Option<String>,
    pub replied_at: Option<String>,
    pub converted_at: Option<String>,
    pub converted_cents: Option<i64>,
}

impl From<ExecutionRow> for ExecutionDto {
    fn from(x: ExecutionRow) -> Self {
        ExecutionDto {
            id: x.id,
            campaign_id: x.campaign_id,
            campaign_name: x.campaign_name,
            enrollment_id: x.enrollment_id,
            profile_id: x.profile_id,
            step: x.step + 1,
            variant: x.variant,
            channel: x.channel,
            status: x.status,
            provider: x.provider,
            error: x.error,
            to: x.to,
            subject: x.subject,
            body: x.body,
            created_at: rfc3339(x.created_at),
            sent_at: x.sent_at.map(rfc3339),
            opened_at: x.opened_at.map(rfc3339),
            clicked_at: x.clicked_at.map(rfc3339),
            replied_at: x.replied_at.map(rfc3339),
            converted_at: x.converted_at.map(rfc3339),
            converted_cents: x.converted_cents,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

/// The development sink: messages "sent" while no provider is configured.
#[utoipa::path(get, path = "/outbox", tag = "campaigns", params(OutboxQuery),
    responses((status = 200, body = Vec<ExecutionDto>), (status = 422, body = crate::error::Problem)))]
pub async fn outbox(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Query(q): Query<OutboxQuery>,
) -> ApiResult<Json<Vec<ExecutionDto>>> {
    require_read(&p)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::invalid("limit", "Ask for 1 to 500 messages."));
    }
    let rows = st.store.outbox(p.org.id, limit).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// The tenant's nudge settings.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct NudgeSettingsDto {
    /// IANA time zone for quiet hours of customers without their own.
    pub timezone: String,
    /// A conversion this long after an email (1–30 days) is credited to it.
    pub email_window_ms: i64,
    /// A conversion this long after an SMS (1–168 hours) is credited to it.
    pub sms_window_ms: i64,
    /// At most this many e-mails per customer in any 24 hours, across all
    /// campaigns (1–50; default 2). A step over it waits, and is counted
    /// as "cap". Left out of a PUT, it stays as it is.
    #[serde(default)]
    pub email_cap_per_day: Option<u32>,
    /// At most this many texts per customer in any 24 hours (1–50;
    /// default 1). Left out of a PUT, it stays as it is.
    #[serde(default)]
    pub sms_cap_per_day: Option<u32>,
}

impl From<NudgeSettings> for NudgeSettingsDto {
    fn from(s: NudgeSettings) -> Self {
        NudgeSettingsDto {
            timezone: s.timezone,
            email_window_ms: s.windows.email_ms,
            sms_window_ms: s.windows.sms_ms,
            email_cap_per_day: Some(s.cap.email_per_day),
            sms_cap_per_day: Some(s.cap.sms_per_day),
        }
    }
}

/// Time zone, attribution windows and the daily message cap.
#[utoipa::path(get, path = "/settings/nudges", tag = "campaigns",
    responses((status = 200, body = NudgeSettingsDto)))]
pub async fn get_settings(
    State(st): State<AppState>,
    p: ApiPrincipal,
) -> ApiResult<Json<NudgeSettingsDto>> {
    require_read(&p)?;
    Ok(Json(st.store.nudge_settings(p.org.id).await?.into()))
}

/// Replaces the time zone, attribution windows and daily message cap.
#[utoipa::path(put, path = "/settings/nudges", tag = "campaigns",
    request_body = NudgeSettingsDto,
    responses((status = 200, body = NudgeSettingsDto), (status = 422, body = crate::error::Problem)))]
pub async fn put_settings(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<NudgeSettingsDto>, AppError>,
) -> ApiResult<Json<NudgeSettingsDto>> {
    require_admin(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let current = st.store.nudge_settings(p.org.id).await?.cap;
    let s = NudgeSettings {
        timezone: body.timezone.trim().to_string(),
        windows: Windows {
            email_ms: body.email_window_ms,
            sms_ms: body.sms_window_ms,
        },
        cap: FrequencyCap {
            email_per_day: body.email_cap_per_day.unwrap_or(current.email_per_day),
            sms_per_day: body.sms_cap_per_day.unwrap_or(current.sms_per_day),
        },
    };
    campaigns::save_settings(&st.store, p.org.id, &s, st.now()).await?;
    Ok(Json(st.store.nudge_settings(p.org.id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct EnrollmentDto {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub campaign_name: String,
    pub profile_id: Uuid,
    /// `active` or `stopped`.
    pub status: String,
    /// `completed`, `converted`, `replied`, `opted_out`, `removed`, `lost`
    /// or `form_finished`.
    pub stop_reason: Option<String>,
    /// Why it ended, in words a person reads ("stopped: finished the
    /// form"); null while it runs.
    pub ended_why: Option<String>,
    /// The next step to send, from 1.
    pub next_step: i64,
    pub next_due: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
}

impl From<EnrollmentRow> for EnrollmentDto {
    fn from(e: EnrollmentRow) -> Self {
        EnrollmentDto {
            id: e.id,
            campaign_id: e.campaign_id,
            campaign_name: e.campaign_name,
            profile_id: e.profile_id,
            status: e.status,
            stop_reason: e.stop_reason,
            ended_why: e.ended_why,
            next_step: e.step_index + 1,
            next_due: e.next_due.map(rfc3339),
            started_at: rfc3339(e.started_at),
            ended_at: e.ended_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CustomerNudgesDto {
    pub enrollments: Vec<EnrollmentDto>,
    pub executions: Vec<ExecutionDto>,
}

/// A customer's campaigns and the messages sent to them (merged profiles included).
#[utoipa::path(get, path = "/customers/{customer_id}/nudges", tag = "campaigns",
    params(("customer_id" = Uuid, Path, description = "The customer's id")),
    responses((status = 200, body = CustomerNudgesDto), (status = 404, body = crate::error::Problem)))]
pub async fn customer_nudges(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<CustomerNudgesDto>> {
    let enrollments = st.store.enrollments_for_profile(p.org.id, id).await?;
    require_read(&p)?;
    let executions = st.store.executions_for_profile(p.org.id, id).await?;
    Ok(Json(CustomerNudgesDto {
        enrollments: enrollments.into_iter().map(Into::into).collect(),
        executions: executions.into_iter().map(Into::into).collect(),
    }))
}

/// Takes a customer out of a campaign now (nothing more is sent).
#[utoipa::path(delete, path = "/enrollments/{enrollment_id}", tag = "campaigns",
    params(("enrollment_id" = Uuid, Path, description = "The enrollment's id")),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub async fn remove_enrollment(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    st.store
        .enrollment_owner(p.org.id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !(p.has(Scope::Admin) || p.has(Scope::Agent)) {
        return Err(AppError::Forbidden(
            "Removing a customer from a campaign needs the 'agent' or 'admin' scope.".into(),
        ));
    }
    st.store.remove_enrollment(p.org.id, id, st.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
