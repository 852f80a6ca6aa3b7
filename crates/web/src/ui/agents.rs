//! Settings → Agents (admins): the registry of the organization's AI
//! agents (name, kind, provider, status now, the prefix of its key),
//! registering one (its key of scope `agent`, bound to it, is shown once,
//! as Settings → API keys shows a new key), replacing a lost key, and the
//! pause and resume the Command Center also offers.

use super::{fmt_time, notice, Chrome, NoticeQuery, PathId};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bos_core::agents::{AgentKind, AgentProvider};
use bos_engine::agents::CreateAgent;
use serde::Deserialize;

pub struct Row {
    id: String,
    name: String,
    kind: &'static str,
    provider: &'static str,
    platform: String,
    /// Where Vapi or Retell posts this agent's call reports.
    hook: String,
    key: &'static str,
    label: String,
    prefix: String,
    paused: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "agents_settings.html")]
struct AgentsPage {
    c: Chrome,
    rows: Vec<Row>,
    kinds: Vec<(&'static str, &'static str)>,
    providers: Vec<&'static str>,
    /// The agent's name and its key, right after it was made.
    created: Option<(String, String)>,
    error: Option<String>,
    form: AgentForm,
    css: &'static str,
}

#[derive(Deserialize, Default, Clone)]
pub struct AgentForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    platform_agent_id: String,
    /// Never rendered back into the form.
    #[serde(default)]
    webhook_secret: String,
}

async fn render_page(
    st: &AppState,
    s: &Session,
    c: Chrome,
    created: Option<(String, String)>,
    error: Option<String>,
    form: AgentForm,
) -> PageResult<Response> {
    s.require_admin()?;
    let now = st.now();
    let urls = st.urls();
    let rows = st
        .agents
        .list(s.org.id, now)
        .await?
        .into_iter()
        .map(|v| Row {
            id: v.agent.id.to_string(),
            kind: v.agent.kind.label(),
            provider: v.agent.provider.as_str(),
            platform: v.agent.platform_agent_id.clone().unwrap_or_default(),
            hook: urls
                .voice_hook(v.agent.provider, v.agent.id)
                .unwrap_or_default(),
            key: v.status.key(),
            label: match v.status {
                bos_core::agents::LiveStatus::Talking { .. } => "talking".into(),
                ref other => other.label(),
            },
            prefix: v.agent.key_prefix.clone().unwrap_or_default(),
            paused: v.agent.paused,
            created: fmt_time(v.agent.created_at),
            name: v.agent.name,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = AgentsPage {
        c,
        rows,
        kinds: AgentKind::ALL
            .iter()
            .map(|k| (k.as_str(), k.label()))
            .collect(),
        providers: AgentProvider::ALL.iter().map(|p| p.as_str()).collect(),
        created,
        error,
        form,
        css: crate::assets::url("agents.css"),
    };
    Ok((status, super::render(&page)).into_response())
}

fn local_notice(code: Option<&str>) -> Option<String> {
    match code? {
        "paused" => Some("Paused: the agent's writes are refused until it is resumed.".into()),
        "resumed" => Some("Resumed: the agent may write again.".into()),
        other => notice(Some(other)),
    }
}

/// `GET /settings/agents`.
pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let mut c = Chrome::new(&s, "Agents", "agents");
    c.notice = local_notice(q.done.as_deref());
    render_page(&st, &s, c, None, None, AgentForm::default()).await
}

/// `POST /settings/agents`: registers an agent and shows its key once.
pub async fn create(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<AgentForm>,
) -> PageResult<Response> {
    s.require_admin()?;
    let c = Chrome::new(&s, "Agents", "agents");
    let made = st
        .agents
        .create(
            s.org.id,
            Some(s.user.id),
            CreateAgent {
                name: f.name.clone(),
                kind: f.kind.clone(),
                provider: f.provider.clone(),
                platform_agent_id: Some(f.platform_agent_id.clone()),
                webhook_secret: Some(f.webhook_secret.clone()).filter(|w| !w.trim().is_empty()),
            },
            st.now(),
        )
        .await
        .map_err(AppError::from);
    match made {
        Ok((v, key)) => {
            render_page(
                &st,
                &s,
                c,
                Some((v.agent.name, key.secret)),
                None,
                AgentForm::default(),
            )
            .await
        }
        Err(e @ (AppError::Invalid { .. } | AppError::Conflict(_))) => {
            render_page(&st, &s, c, None, Some(e.detail()), f).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

/// `POST /settings/agents/{agent_id}/key`: a new key for the agent, shown
/// once; its previous keys stop working at once.
pub async fn rekey(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    // Another organization's agent is "not found", whoever asks.
    let agent = st.agents.get(s.org.id, id, st.now()).await?;
    s.require_admin()?;
    let key = st
        .agents
        .rekey(s.org.id, id, Some(s.user.id), st.now())
        .await?;
    let c = Chrome::new(&s, "Agents", "agents");
    render_page(
        &st,
        &s,
        c,
        Some((agent.agent.name, key.secret)),
        None,
        AgentForm::default(),
    )
    .await
}
