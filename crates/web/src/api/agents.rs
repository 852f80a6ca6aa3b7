//! AI agents over the API: register an agent (its key of scope `agent`,
//! bound to it, shown once), list agents and read one with the status
//! derived now and today's metrics, heartbeats, pause and resume,
//! interactions, and the metrics of any period against the one before.
//! Handlers parse, check who may act, call the agents service and render;
//! its refusals become problem+json in one place (`From<AgentError>`).
//!
//! Who may act: an admin key on every agent; an agent's own key on that
//! agent only (another agent's is 403, decision 0039). Pausing and
//! resuming are for admins (and members, from the Command Center).
//!
//! An agent follows its own event stream (`GET /agents/{id}/events`,
//! server-sent events): a customer's new message on a conversation it may
//! answer, with the text and the customer, and word of a pause, a resume,
//! a hand-off, a takeover and a hand-back, each numbered so a reconnect
//! with `Last-Event-ID` resumes where it left off (decision 0041).

use super::{rfc3339, ApiJson, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::params::parse_time;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bos_core::agents::{Compared, Metrics, Trend, TrendDirection};
use bos_core::Scope;
use bos_engine::agents::{
    AgentError, AgentMetrics, AgentView, CreateAgent, HeartbeatInput, InteractionInput, PausedBy,
    StreamEvent,
};
use bos_engine::{Live, Received, Subscription};
use bos_store::agents::TranscriptLine;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::convert::Infallible;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

impl From<AgentError> for AppError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Invalid { field, detail } => AppError::invalid(field, detail),
            AgentError::NotFound => AppError::NotFound,
            AgentError::Paused { name, by, since } => AppError::Conflict(format!(
                "The agent \"{name}\" is paused: {by} paused it at {}. It may send heartbeats, \
                 but nothing else until a member resumes it.",
                rfc3339(since)
            )),
            AgentError::Conflict(c) => AppError::Conflict(c),
            AgentError::Store(s) => s.into(),
        }
    }
}

/// Reads: an admin key, or a key of scope `agent` (a bound key only for
/// its own agent).
fn may_read(p: &ApiPrincipal, agent: Option<Uuid>) -> Result<(), AppError> {
    if p.has(Scope::Admin) {
        return Ok(());
    }
    if !p.has(Scope::Agent) {
        return Err(AppError::Forbidden(
            "Reading agents needs an API key with the 'agent' or 'admin' scope.".into(),
        ));
    }
    match (p.key.agent_id, agent) {
        (Some(own), Some(a)) if own != a => Err(other_agent()),
        _ => Ok(()),
    }
}

fn other_agent() -> AppError {
    AppError::Forbidden(
        "This key belongs to another agent: each agent reports with the key made for it.".into(),
    )
}

/// Writes for an agent: its own key, or an admin key.
fn may_act_for(p: &ApiPrincipal, agent: Uuid) -> Result<(), AppError> {
    if p.has(Scope::Admin) {
        return Ok(());
    }
    match p.key.agent_id {
        Some(own) if own == agent => Ok(()),
        Some(_) => Err(other_agent()),
        None => Err(AppError::Forbidden(
            "An agent reports with the key made when it was registered (or an admin key).".into(),
        )),
    }
}

#[derive(Serialize, ToSchema)]
pub struct TrendDto {
    /// `up`, `down`, `flat` or `new` (nothing to compare with).
    pub direction: String,
    /// Relative change against the previous period (0.1 = 10 %).
    pub change: Option<f64>,
    /// Whether the move is good news (lower cost is, higher CSAT is).
    pub good: bool,
    /// ▲, ▼ or –.
    pub arrow: String,
}

impl From<Trend> for TrendDto {
    fn from(t: Trend) -> Self {
        TrendDto {
            direction: match t.direction {
                TrendDirection::Up => "up",
                TrendDirection::Down => "down",
                TrendDirection::Flat => "flat",
                TrendDirection::New => "new",
            }
            .into(),
            change: t.change,
            good: t.good,
            arrow: t.arrow().into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MetricsDto {
    pub interactions: i64,
    /// 0–1; null with no interactions.
    pub success_rate: Option<f64>,
    pub avg_first_response_ms: Option<f64>,
    pub cost_per_interaction_usd: Option<f64>,
    pub cost_total_usd: f64,
    /// 0–10.
    pub csat: Option<f64>,
    /// 0–1: a human stepped in or the agent handed off.
    pub intervention_rate: Option<f64>,
}

impl From<Metrics> for MetricsDto {
    fn from(m: Metrics) -> Self {
        MetricsDto {
            interactions: m.interactions,
            success_rate: m.success_rate,
            avg_first_response_ms: m.avg_first_response_ms,
            cost_per_interaction_usd: m.cost_per_interaction_micros.map(|c| c / 1e6),
            cost_total_usd: m.cost_total_micros as f64 / 1e6,
            csat: m.csat,
            intervention_rate: m.intervention_rate,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TrendsDto {
    pub success_rate: TrendDto,
    pub avg_first_response_ms: TrendDto,
    pub cost_per_interaction: TrendDto,
    pub csat: TrendDto,
    pub intervention_rate: TrendDto,
}

#[derive(Serialize, ToSchema)]
pub struct ComparedDto {
    pub current: MetricsDto,
    /// The period of the same length just before.
    pub previous: MetricsDto,
    pub trends: TrendsDto,
}

impl From<Compared> for ComparedDto {
    fn from(c: Compared) -> Self {
        ComparedDto {
            current: c.current.into(),
            previous: c.previous.into(),
            trends: TrendsDto {
                success_rate: c.success.into(),
                avg_first_response_ms: c.response.into(),
                cost_per_interaction: c.cost.into(),
                csat: c.csat.into(),
                intervention_rate: c.intervention.into(),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AgentDto {
    pub id: Uuid,
    pub name: String,
    /// `chat`, `voice`, `sms`, `email` or `sdr`.
    pub kind: String,
    pub kind_label: String,
    /// `api`, `builtin`, `vapi` or `retell`.
    pub provider: String,
    pub platform_agent_id: Option<String>,
    /// `paused`, `offline`, `error`, `talking`, `working` or `idle`.
    pub status: String,
    /// The status with its context: `talking · 2:34`, `handling 3 conversations`.
    pub status_label: String,
    pub online: bool,
    pub paused: bool,
    pub paused_at: Option<String>,
    pub paused_by: Option<String>,
    pub last_heartbeat_at: Option<String>,
    /// What the agent last said it was doing.
    pub activity: Option<String>,
    pub heartbeat_interval_seconds: Option<i64>,
    pub open_conversations: u32,
    /// The first characters of the agent's key, to recognise it.
    pub key_prefix: Option<String>,
    pub created_at: String,
    /// Today's metrics in the organization's zone, against yesterday.
    pub today: Option<ComparedDto>,
}

fn agent_dto(v: &AgentView, today: Option<Compared>) -> AgentDto {
    let a = &v.agent;
    AgentDto {
        id: a.id,
        name: a.name.clone(),
        kind: a.kind.as_str().into(),
        kind_label: a.kind.label().into(),
        provider: a.provider.as_str().into(),
        platform_agent_id: a.platform_agent_id.clone(),
        status: v.status.key().into(),
        status_label: v.status.label(),
        online: v.status.is_online(),
        paused: a.paused,
        paused_at: a.paused_at.map(rfc3339),
        paused_by: a.paused_by_name.clone(),
        last_heartbeat_at: a.last_heartbeat_at.map(rfc3339),
        activity: a.last.as_ref().and_then(|h| h.activity.clone()),
        heartbeat_interval_seconds: a.last.as_ref().map(|h| h.interval_ms / 1000),
        open_conversations: a.open_conversations,
        key_prefix: a.key_prefix.clone(),
        created_at: rfc3339(a.created_at),
        today: today.map(Into::into),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    pub name: String,
    /// `chat`, `voice`, `sms`, `email` or `sdr`.
    pub kind: String,
    /// `api` (an external program), `builtin`, `vapi` or `retell`.
    pub provider: String,
    /// Vapi's assistant id or Retell's agent id (voice platforms only).
    pub platform_agent_id: Option<String>,
    /// Voice platforms only, and required for them: what the platform
    /// signs its call reports with (Vapi: the server secret; Retell: the
    /// API key). Kept sealed and never shown again.
    pub webhook_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedAgent {
    pub agent: AgentDto,
    /// The agent's API key (scope `agent`, bound to this agent). Store it
    /// now: it is never shown again.
    pub key: String,
    /// Vapi and Retell agents: the URL to give the platform (Vapi: the
    /// assistant's server URL; Retell: the agent's webhook URL).
    pub hook_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentDto>,
}

async fn today(st: &AppState, org: Uuid, agent: Option<Uuid>) -> ApiResult<AgentMetrics> {
    let now = st.now();
    let period = st.agents.period(org, None, None, now).await?;
    Ok(st.agents.metrics(org, agent, period).await?)
}

/// Registers an agent. The answer holds its key, once.
#[utoipa::path(post, path = "/agents", tag = "agents", request_body = CreateAgentRequest,
    responses((status = 201, body = CreatedAgent), (status = 409, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<CreateAgentRequest>, AppError>,
) -> ApiResult<(StatusCode, Json<CreatedAgent>)> {
    p.require(Scope::Admin)?;
    let ApiJson(b) = body?;
    let (view, key) = st
        .agents
        .create(
            p.org.id,
            p.key.created_by,
            CreateAgent {
                name: b.name,
                kind: b.kind,
                provider: b.provider,
                platform_agent_id: b.platform_agent_id,
                webhook_secret: b.webhook_secret,
            },
            st.now(),
        )
        .await?;
    let hook_url = st.urls().voice_hook(view.agent.provider, view.agent.id);
    Ok((
        StatusCode::CREATED,
        Json(CreatedAgent {
            agent: agent_dto(&view, None),
            key: key.secret,
            hook_url,
        }),
    ))
}

/// The organization's agents by name, each with its status now and
/// today's metrics.
#[utoipa::path(get, path = "/agents", tag = "agents",
    responses((status = 200, body = AgentList), (status = 403, body = crate::error::Problem)))]
pub async fn list(State(st): State<AppState>, p: ApiPrincipal) -> ApiResult<Json<AgentList>> {
    may_read(&p, None)?;
    let org = p.org.id;
    let views = st.agents.list(org, st.now()).await?;
    let m = today(&st, org, None).await?;
    let agents = views
        .iter()
        .map(|v| {
            let t = m
                .per_agent
                .iter()
                .find(|(a, _)| a.id == v.agent.id)
                .map(|(_, c)| *c);
            agent_dto(v, t)
        })
        .collect();
    Ok(Json(AgentList { agents }))
}

/// One agent with its status now and today's metrics.
#[utoipa::path(get, path = "/agents/{agent_id}", tag = "agents",
    params(("agent_id" = Uuid, Path, description = "The agent's id")),
    responses((status = 200, body = AgentDto)))]
pub async fn get_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<AgentDto>> {
    let org = p.org.id;
    let view = st.agents.get(org, id, st.now()).await?;
    may_read(&p, Some(id))?;
    let m = today(&st, org, Some(id)).await?;
    Ok(Json(agent_dto(&view, Some(m.overall))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// `idle`, `working`, `talking` or `error`.
    pub status: String,
    /// What it is doing, in words ("Handling refund request #1234").
    pub activity: Option<String>,
    /// What went wrong, with status `error` ("API timeout").
    pub error: Option<String>,
    /// When the live call started (RFC 3339), with status `talking`.
    pub call_started_at: Option<String>,
    /// How often it will report (1–3600, default 30); three missed
    /// intervals read "offline".
    pub interval_seconds: Option<i64>,
}

/// An agent reports it is alive and what it is doing. A paused agent may.
#[utoipa::path(post, path = "/agents/{agent_id}/heartbeat", tag = "agents", request_body = HeartbeatRequest,
    params(("agent_id" = Uuid, Path, description = "The agent's id")),
    responses((status = 200, body = AgentDto), (status = 422, body = crate::error::Problem)))]
pub async fn heartbeat(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    body: Result<ApiJson<HeartbeatRequest>, AppError>,
) -> ApiResult<Json<AgentDto>> {
    let org = p.org.id;
    st.agents.get(org, id, st.now()).await?;
    may_act_for(&p, id)?;
    let ApiJson(b) = body?;
    let call_started_at = b
        .call_started_at
        .as_deref()
        .map(|t| parse_time("call_started_at", t))
        .transpose()?;
    let view = st
        .agents
        .heartbeat(
            org,
            id,
            HeartbeatInput {
                status: b.status,
                activity: b.activity,
                error: b.error,
                call_started_at,
                interval_seconds: b.interval_seconds,
            },
            st.now(),
        )
        .await?;
    Ok(Json(agent_dto(&view, None)))
}

/// Pauses an agent: its interactions and messages are refused (409) until
/// it is resumed. Pausing a paused agent changes nothing.
#[utoipa::path(post, path = "/agents/{agent_id}/pause", tag = "agents",
    params(("agent_id" = Uuid, Path, description = "The agent's id")),
    responses((status = 200, body = AgentDto)))]
pub async fn pause(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<AgentDto>> {
    let org = p.org.id;
    st.agents.get(org, id, st.now()).await?;
    p.require(Scope::Admin)?;
    let by = PausedBy {
        user_id: p.key.created_by,
        name: format!("{} (API key)", p.key.name),
    };
    let view = st.agents.pause(org, id, &by, st.now()).await?;
    Ok(Json(agent_dto(&view, None)))
}

/// Resumes a paused agent.
#[utoipa::path(post, path = "/agents/{agent_id}/resume", tag = "agents",
    params(("agent_id" = Uuid, Path, description = "The agent's id")),
    responses((status = 200, body = AgentDto)))]
pub async fn resume(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<AgentDto>> {
    let org = p.org.id;
    st.agents.get(org, id, st.now()).await?;
    p.require(Scope::Admin)?;
    let view = st.agents.resume(org, id, st.now()).await?;
    Ok(Json(agent_dto(&view, None)))
}

#[derive(Deserialize, ToSchema)]
pub struct TranscriptLineDto {
    /// `agent`, `customer` or `human`.
    pub role: String,
    pub text: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionRequest {
    /// The customer (a customer id); taken from the conversation when omitted.
    pub customer_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    /// `success`, `failure` or `handed_off`.
    pub outcome: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub ended_at: Option<String>,
    /// From the customer's first message to the agent's first answer.
    pub first_response_ms: Option<i64>,
    /// In US dollars.
    pub cost_usd: Option<f64>,
    pub tokens: Option<i64>,
    /// Customer satisfaction, 0–10.
    pub csat: Option<i64>,
    /// 0 (negative) – 10 (positive).
    pub sentiment: Option<f64>,
    /// A human stepped in (always so for `handed_off`).
    pub human_intervened: Option<bool>,
    pub summary: Option<String>,
    pub transcript: Option<Vec<TranscriptLineDto>>,
    /// The agent's own id for this interaction: sending it again stores nothing new.
    pub external_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InteractionRecorded {
    pub id: Uuid,
    /// False when `external_id` was already recorded (the answer is 200).
    pub created: bool,
}

/// Records what an agent did for a customer: 201, or 200 with the first
/// one's id when its `external_id` was recorded before. A paused agent
/// gets 409.
#[utoipa::path(post, path = "/agents/{agent_id}/interactions", tag = "agents", request_body = InteractionRequest,
    params(("agent_id" = Uuid, Path, description = "The agent's id")),
    responses((status = 201, body = InteractionRecorded), (status = 200, body = InteractionRecorded),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn interactions(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    body: Result<ApiJson<InteractionRequest>, AppError>,
) -> ApiResult<(StatusCode, Json<InteractionRecorded>)> {
    let org = p.org.id;
    st.agents.get(org, id, st.now()).await?;
    may_act_for(&p, id)?;
    let ApiJson(b) = body?;
    let started_at = parse_time("started_at", &b.started_at)?;
    let ended_at = b
        .ended_at
        .as_deref()
        .map(|t| parse_time("ended_at", t))
        .transpose()?;
    let (rid, created) = st
        .agents
        .record(
            org,
            id,
            InteractionInput {
                customer_id: b.customer_id,
                conversation_id: b.conversation_id,
                outcome: b.outcome,
                started_at,
                ended_at,
                first_response_ms: b.first_response_ms,
                cost_usd: b.cost_usd,
                tokens: b.tokens,
                csat: b.csat,
                sentiment: b.sentiment,
                human_intervened: b.human_intervened,
                summary: b.summary,
                transcript: b
                    .transcript
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| TranscriptLine {
                        role: l.role,
                        text: l.text,
                    })
                    .collect(),
                external_id: b.external_id,
            },
            st.now(),
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(InteractionRecorded { id: rid, created })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// First day, YYYY-MM-DD in the organization's zone (default today).
    pub from: Option<String>,
    /// Last day, inclusive (default `from`).
    pub to: Option<String>,
    /// One agent's id (default all).
    pub agent: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AgentMetricsRow {
    pub agent_id: Uuid,
    pub name: String,
    pub metrics: ComparedDto,
}

#[derive(Serialize, ToSchema)]
pub struct MetricsResponse {
    /// The period's first instant (RFC 3339).
    pub from: String,
    /// The instant after its end.
    pub to: String,
    pub previous_from: String,
    pub overall: ComparedDto,
    pub agents: Vec<AgentMetricsRow>,
}

/// Success rate, first response, cost, CSAT and human intervention for a
/// period (whole days in the organization's zone, default today), overall
/// and per agent, each with its trend against the period just before.
#[utoipa::path(get, path = "/agents/metrics", tag = "agents", params(MetricsQuery),
    responses((status = 200, body = MetricsResponse), (status = 422, body = crate::error::Problem)))]
pub async fn metrics(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<Json<MetricsResponse>> {
    let org = p.org.id;
    let agent = match q.agent.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(a) => Some(
            Uuid::parse_str(a)
                .map_err(|_| AppError::invalid("agent", format!("'{a}' is not an agent id")))?,
        ),
        None => None,
    };
    if let Some(a) = agent {
        st.agents.get(org, a, st.now()).await?;
    }
    may_read(&p, agent)?;
    let period = st
        .agents
        .period(org, q.from.as_deref(), q.to.as_deref(), st.now())
        .await?;
    let m = st.agents.metrics(org, agent, period).await?;
    Ok(Json(MetricsResponse {
        from: rfc3339(m.period.from),
        to: rfc3339(m.period.to),
        previous_from: rfc3339(m.period.previous().from),
        overall: m.overall.into(),
        agents: m
            .per_agent
            .into_iter()
            .map(|(a, c)| AgentMetricsRow {
                agent_id: a.id,
                name: a.name,
                metrics: c.into(),
            })
            .collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Resume after this event number (what `Last-Event-ID` says; the
    /// header wins when both are sent). Left out: only events from now on.
    pub after: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct StreamReady {
    pub agent_id: Uuid,
    pub name: String,
    /// Paused: its writes get 409 until a member resumes it (`resumed`).
    pub paused: bool,
    pub paused_by: Option<String>,
    pub paused_at: Option<String>,
    /// The stream goes on after this event number.
    pub last_event_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct StreamMessageDto {
    pub id: Uuid,
    /// The channel it came on, and the one to answer on: `sms`, `email`,
    /// `instagram`, `facebook` or `form` (a form cannot be answered).
    pub channel: String,
    pub text: String,
    pub subject: Option<String>,
    pub author_name: String,
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct StreamCustomerDto {
    /// The customer's id (for `customer_id` in interactions).
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: String,
}

/// One event of an agent's stream: the SSE `data`, its `event` being
/// `kind` and its `id` being `id`.
#[derive(Serialize, ToSchema)]
pub struct StreamEventDto {
    /// The event's number: send it as `Last-Event-ID` to resume after it.
    pub id: i64,
    /// `message` (a customer wrote on a conversation this agent may
    /// answer), `paused`, `resumed`, `handed_off`, `takeover` (a member
    /// took the conversation over: stop answering it) or `handed_back`
    /// (a member gave it back: answer it again).
    pub kind: String,
    pub at: String,
    pub conversation_id: Option<Uuid>,
    /// The hand-off's reason, or who paused, took over or handed back.
    pub detail: Option<String>,
    /// With `message`: the customer's message.
    pub message: Option<StreamMessageDto>,
    pub customer: Option<StreamCustomerDto>,
    /// With a conversation: whether it is this agent's already (false:
    /// nobody has claimed it; the first agent to answer does).
    pub claimed: bool,
    /// With `message`: where to answer (`POST`, with the message's channel).
    pub reply_path: Option<String>,
}

fn stream_dto(agent: Uuid, e: &StreamEvent) -> StreamEventDto {
    StreamEventDto {
        id: e.seq,
        kind: e.kind.as_str().into(),
        at: rfc3339(e.at),
        conversation_id: e.conversation_id,
        detail: e.detail.clone(),
        message: match (&e.message, e.message_id) {
            (Some(m), Some(id)) => Some(StreamMessageDto {
                id,
                channel: m.channel.as_str().into(),
                text: m.text.clone(),
                subject: m.subject.clone(),
                author_name: m.author_name.clone(),
                at: rfc3339(m.at),
            }),
            _ => None,
        },
        customer: e.customer.as_ref().map(|c| StreamCustomerDto {
            id: c.id,
            name: c.name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
        }),
        claimed: e.conversation_agent_id == Some(agent),
        reply_path: match (e.kind, e.conversation_id) {
            (bos_engine::agents::StreamKind::Message, Some(c)) => {
                Some(format!("/api/v1/conversations/{c}/messages"))
            }
            _ => None,
        },
    }
}

/// The event number a reconnect resumes after: `Last-Event-ID`, else `after`.
fn resume_after(headers: &HeaderMap, q: &EventsQuery) -> Result<Option<i64>, AppError> {
    let bad = || {
        AppError::invalid(
            "Last-Event-ID",
            "Send the id of the last event received (a whole number), or leave it out to start from now.",
        )
    };
    match headers.get("last-event-id") {
        Some(v) => {
            let n: i64 = v
                .to_str()
                .map_err(|_| bad())?
                .trim()
                .parse()
                .map_err(|_| bad())?;
            if n < 0 {
                return Err(bad());
            }
            Ok(Some(n))
        }
        None => match q.after {
            Some(n) if n < 0 => Err(AppError::invalid(
                "after",
                "after is the id of the last event received: a whole number from 0",
            )),
            other => Ok(other),
        },
    }
}

/// An agent's stream while it is open.
struct Follow {
    st: AppState,
    org: Uuid,
    agent: Uuid,
    key_id: Uuid,
    key_hash: Vec<u8>,
    sub: Subscription,
    cursor: i64,
    queue: VecDeque<Event>,
}

impl Follow {
    /// Whether the key that opened the stream is still good: a revoked key
    /// ends it before anything more is sent.
    async fn key_still_good(&self) -> bool {
        matches!(
            self.st.store.api_key_with_org_by_hash(&self.key_hash).await,
            Ok(Some((k, o))) if k.id == self.key_id && o.id == self.org
        )
    }

    /// Waits for something that may have added to the agent's events: its
    /// own change, any conversation's, or word that events were missed.
    /// Whatever else is already waiting is taken too, so a burst costs one
    /// read. `false` once the bus is gone.
    async fn wait(&mut self) -> bool {
        loop {
            match self.sub.recv().await {
                None => return false,
                Some(r) if self.relevant(r) => break,
                Some(_) => {}
            }
        }
        while self.sub.try_recv().is_some() {}
        true
    }

    fn relevant(&self, r: Received) -> bool {
        match r {
            Received::Missed => true,
            Received::Event(Live::Agent { agent_id }) => agent_id == self.agent,
            Received::Event(Live::Conversation { .. }) => true,
            Received::Event(_) => false,
        }
    }
}

/// An agent's own events as server-sent events, so an external agent can
/// run from this stream alone. First `ready` (the agent's state and the
/// number the stream goes on after), then every event in order: `message`
/// (a customer wrote on a conversation this agent handles, or one nobody
/// has claimed yet: the text, the channel, the customer and where to
/// answer), `paused`, `resumed`, `handed_off`, `takeover` and
/// `handed_back`. Each event's `id` is its number: reconnect with
/// `Last-Event-ID` (or `?after=`) to get what came since, kept for seven
/// days. Comments keep a quiet stream open. The agent's own key or an
/// admin key.
#[utoipa::path(get, path = "/agents/{agent_id}/events", tag = "agents", params(
        ("agent_id" = Uuid, Path, description = "The agent's id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "The id of the last event received: the stream resumes after it"),
        EventsQuery),
    responses((status = 200, content_type = "text/event-stream", body = StreamEventDto,
        description = "A stream of server-sent events: `ready` (data: StreamReady), then events whose data is a StreamEventDto")))]
pub async fn events(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let org = p.org.id;
    let now = st.now();
    st.agents.get(org, id, now).await?;
    may_act_for(&p, id)?;
    let after = resume_after(&headers, &q)?;
    // Subscribed before the agent is read, so nothing between is missed.
    let sub = st.bus.subscribe(org);
    let view = st.agents.get(org, id, now).await?;
    let cursor = match after {
        Some(n) => n,
        None => st.agents.events_head(org, id).await?,
    };
    if let Err(e) = st.agents.prune_events(org, now).await {
        tracing::debug!(error = ?e, "old agent events not pruned");
    }
    let key_hash = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| crate::auth::sha256(t.trim()))
        .unwrap_or_default();
    let a = &view.agent;
    let ready = StreamReady {
        agent_id: a.id,
        name: a.name.clone(),
        paused: a.paused,
        paused_by: a.paused_by_name.clone(),
        paused_at: a.paused_at.map(rfc3339),
        last_event_id: cursor,
    };
    let first = Event::default()
        .event("ready")
        .json_data(&ready)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let follow = Follow {
        st,
        org,
        agent: id,
        key_id: p.key.id,
        key_hash,
        sub,
        cursor,
        queue: VecDeque::from([first]),
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(ev) = f.queue.pop_front() {
                return Some((Ok::<Event, Infallible>(ev), f));
            }
            let events = match f.st.agents.events(f.org, f.agent, f.cursor).await {
                Ok(evs) => evs,
                Err(e) => {
                    // The agent reconnects with Last-Event-ID and misses nothing.
                    tracing::warn!(error = ?e, agent = %f.agent, "agent stream ended: events unreadable");
                    return None;
                }
            };
            if events.is_empty() {
                if !f.wait().await {
                    return None;
                }
                continue;
            }
            if !f.key_still_good().await {
                return None;
            }
            for e in &events {
                f.cursor = e.seq;
                match Event::default()
                    .event(e.kind.as_str())
                    .id(e.seq.to_string())
                    .json_data(stream_dto(f.agent, e))
                {
                    Ok(ev) => f.queue.push_back(ev),
                    Err(err) => tracing::warn!(error = %err, "agent event not encoded"),
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(crate::live::KEEP_ALIVE)
                .text("keep-alive"),
        )
        .into_response())
}
