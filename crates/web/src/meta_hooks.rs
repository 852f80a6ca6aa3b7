//! Meta's webhook for a connected page or Instagram account
//! (`/hooks/meta/{source_id}`): the GET subscription handshake and the
//! POST deliveries of Instagram Direct and Messenger messages, echoes,
//! reads and delivery receipts.
//!
//! No session or API key: the source id in the URL names the tenant and
//! nothing else. The handshake must echo the source's verify token (403
//! otherwise); a delivery must carry `X-Hub-Signature-256`, the HMAC of
//! the raw body with the source's app secret, checked in constant time
//! before anything is parsed or written (401 and nothing stored when it is
//! missing or wrong). An unknown or malformed source id is a bare 404.
//! The events are then applied by the inbox service; Meta delivers at
//! least once, and a message it delivers again is stored once.

use crate::error::AppError;
use crate::paths;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bos_channels::meta;
use bos_store::inbox::MetaSource;
use uuid::Uuid;

/// Every public route of this module, for the router and the tenant matrix.
pub const ROUTES: &[(&str, &str)] = &[("GET", paths::META_HOOK), ("POST", paths::META_HOOK)];

pub fn router() -> Router<AppState> {
    Router::new().route(paths::META_HOOK, get(handshake).post(delivery))
}

/// The source the URL names, or the finished answer (404, or 503 when the
/// database is away so Meta retries).
async fn source(st: &AppState, id: &str) -> Result<MetaSource, Response> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(StatusCode::NOT_FOUND.into_response());
    };
    match st.store.meta_source_by_id(id).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(StatusCode::NOT_FOUND.into_response()),
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

/// `GET /hooks/meta/{source_id}`: with `hub.mode=subscribe` and the
/// source's verify token, the `hub.challenge` as a plain body; else 403.
async fn handshake(State(st): State<AppState>, Path(id): Path<String>, uri: Uri) -> Response {
    let src = match source(&st, &id).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    match meta::verify_subscription(&query, &src.credentials.verify_token) {
        Ok(challenge) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            challenge,
        )
            .into_response(),
        Err(why) => AppError::Forbidden(format!(
            "The subscription was refused: {why}. Use the verify token given when the Meta source was created."
        ))
        .into_response(),
    }
}

/// `POST /hooks/meta/{source_id}`: a signed delivery, applied to the inbox.
async fn delivery(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let b = match b {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return AppError::body_too_large().into_response()
        }
        Err(e) => return AppError::BadRequest(e.body_text()).into_response(),
    };
    let src = match source(&st, &id).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    const HOW: &str = "Meta signs every delivery with the app secret; it must be the one \
                       given when the Meta source was created.";
    let Some(sig) = headers
        .get(meta::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return AppError::Unauthorized(format!(
            "The request did not verify: the X-Hub-Signature-256 header is missing. {HOW}"
        ))
        .into_response();
    };
    if !meta::verify_signature(&src.credentials.app_secret, &b, sig) {
        return AppError::Unauthorized(format!(
            "The request did not verify: X-Hub-Signature-256 does not match the body. {HOW}"
        ))
        .into_response();
    }
    let events = match meta::parse_delivery(&b) {
        Ok(e) => e,
        Err(e) => {
            return AppError::BadRequest(format!("The delivery could not be read: {e}."))
                .into_response()
        }
    };
    match st.inbox.receive_meta(src.org_id, &events, st.now()).await {
        Ok(applied) => {
            tracing::debug!(org = %src.org_id, ?applied, "meta delivery applied");
            StatusCode::OK.into_response()
        }
        Err(e) => AppError::from(e).into_response(),
    }
}
