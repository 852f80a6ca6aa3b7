//! The voice platforms' webhooks for a voice agent: Vapi's server messages
//! (`/hooks/vapi/{agent_id}`) and Retell's call events
//! (`/hooks/retell/{agent_id}`).
//!
//! No session or API key: the signature is the authentication. The agent
//! id in the URL names the agent, and the delivery must be signed with
//! that agent's webhook secret in its platform's scheme (Vapi: HMAC-SHA256
//! of `{x-timestamp}.{body}` in `x-signature`, or the legacy shared secret
//! in `X-Vapi-Secret`; Retell: `X-Retell-Signature`, the HMAC of the body
//! and its timestamp with the API key), checked in constant time before
//! anything is parsed or written. A missing, stale or wrong signature, an
//! unknown agent and an agent of the other platform all answer the same
//! 401 and store nothing, so the URL reveals no more than a guess would.
//! A verified delivery is applied by the voice service; the platforms
//! deliver at least once, and what a repeat carries is stored once.

use crate::error::AppError;
use crate::paths;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bos_core::agents::{
    parse_retell, parse_vapi, retell_verify, vapi_verify, AgentProvider, VapiAuth, VoiceVerifyError,
};
use bos_engine::voice::{Voice, VoiceError};
use bos_store::agents::AgentHook;
use uuid::Uuid;

/// Every public route of this module, for the router and the tenant matrix.
pub const ROUTES: &[(&str, &str)] = &[("POST", paths::VAPI_HOOK), ("POST", paths::RETELL_HOOK)];

pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::VAPI_HOOK, post(vapi))
        .route(paths::RETELL_HOOK, post(retell))
}

/// `POST /hooks/vapi/{agent_id}`: a Vapi server message.
async fn vapi(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    delivery(&st, AgentProvider::Vapi, &id, &headers, b).await
}

/// `POST /hooks/retell/{agent_id}`: a Retell webhook event.
async fn retell(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    delivery(&st, AgentProvider::Retell, &id, &headers, b).await
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
}

/// What the sender should check, per platform.
fn how(provider: AgentProvider) -> &'static str {
    match provider {
        AgentProvider::Vapi => {
            "Vapi signs each server message with the agent's server secret (x-signature and \
             x-timestamp, or X-Vapi-Secret); it must be the webhook_secret given when the agent \
             was registered, and the URL this agent's hook URL."
        }
        _ => {
            "Retell signs each webhook with the API key (X-Retell-Signature); it must be the \
             webhook_secret given when the agent was registered, and the URL this agent's hook URL."
        }
    }
}

fn refused(provider: AgentProvider, why: &str) -> Response {
    AppError::Unauthorized(format!(
        "The request did not verify: {why}. {}",
        how(provider)
    ))
    .into_response()
}

/// The agent the URL names, when it reports through `provider`'s hook;
/// else the finished answer (401 for none, 503 when the database is away
/// so the platform retries).
async fn agent(st: &AppState, provider: AgentProvider, id: &str) -> Result<AgentHook, Response> {
    let unknown = || {
        refused(
            provider,
            "no voice agent of this platform has this hook URL",
        )
    };
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(unknown());
    };
    match st.store.agent_hook(id).await {
        Ok(Some(a)) if a.provider == provider => Ok(a),
        Ok(_) => Err(unknown()),
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

async fn delivery(
    st: &AppState,
    provider: AgentProvider,
    id: &str,
    headers: &HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let b = match b {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return AppError::body_too_large().into_response()
        }
        Err(e) => return AppError::BadRequest(e.body_text()).into_response(),
    };
    let hook = match agent(st, provider, id).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = st.now();
    let secret = hook.secret.as_bytes();
    let verified = match provider {
        AgentProvider::Vapi => vapi_verify(
            secret,
            VapiAuth {
                signature: header(headers, "x-signature"),
                timestamp: header(headers, "x-timestamp"),
                legacy_secret: header(headers, "x-vapi-secret"),
            },
            &b,
            now,
        ),
        _ => retell_verify(secret, header(headers, "x-retell-signature"), &b, now),
    };
    if let Err(e) = verified {
        let why = match e {
            VoiceVerifyError::Missing => "the signature header is missing".to_string(),
            other => other.to_string(),
        };
        return refused(provider, &why);
    }
    let parsed = match provider {
        AgentProvider::Vapi => parse_vapi(&b),
        _ => parse_retell(&b),
    };
    let report = match parsed {
        Ok(r) => r,
        Err(e) => {
            return AppError::BadRequest(format!("The call event could not be read: {e}."))
                .into_response()
        }
    };
    let voice = Voice::new(st.agents.clone(), st.inbox.clone(), st.bus.clone());
    match voice.receive(hook.org_id, hook.id, &report, now).await {
        Ok(applied) => {
            tracing::debug!(org = %hook.org_id, agent = %hook.id, call = %report.call_id,
                delivery = %report.delivery, ?applied, "voice delivery applied");
            StatusCode::OK.into_response()
        }
        Err(VoiceError::Agent(e)) => AppError::from(e).into_response(),
        Err(VoiceError::Inbox(e)) => AppError::from(e).into_response(),
    }
}
