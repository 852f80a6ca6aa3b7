//! The public intake endpoints (SPEC IN1, IN2): Segment-compatible tracking
//! (`/v1/identify|track|page|alias|batch`, write key as HTTP Basic) and
//! Standard Webhooks (`/hooks/{source_id}`, HMAC over the raw body), and
//! Shopify webhooks (`/hooks/shopify/{source_id}`, PROVIDERS.md §1). They
//! need no session or API key: the source's own credential is the
//! authentication, and it also tells us the tenant.
//!
//! Each handler takes the body as raw bytes (a signature covers the bytes
//! as sent, PROVIDERS.md §0), checks the credential before anything is
//! written, and answers 2xx only after the events' transaction committed —
//! so a 2xx always means "stored", and a database outage answers 503 with
//! `Retry-After` for the sender to retry (RELIABILITY R6). Retries are safe:
//! every event is stored under its provider's key, once (R4). What happens
//! to a stored event is the pipeline's work (`bos_engine::pipeline`), which
//! every handler wakes after its commit.

use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bos_core::intake::segment::{self, CallType};
use bos_core::intake::shopify;
use bos_core::intake::standard_webhooks::{self, Secret};
use bos_store::intake::{NewInbound, Source, SourceKind};
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Every public intake route, for the router and the tenant matrix.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/identify"),
    ("POST", "/v1/track"),
    ("POST", "/v1/page"),
    ("POST", "/v1/alias"),
    ("POST", "/v1/batch"),
    ("POST", "/hooks/{source_id}"),
    ("POST", "/hooks/shopify/{source_id}"),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/identify", post(identify))
        .route("/v1/track", post(track))
        .route("/v1/page", post(page))
        .route("/v1/alias", post(alias))
        .route("/v1/batch", post(batch))
        .route("/hooks/{source_id}", post(webhook))
        .route("/hooks/shopify/{source_id}", post(shopify_webhook))
}

type Body = Result<Bytes, BytesRejection>;

async fn identify(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    basic_challenge(single(st, h, b, CallType::Identify).await)
}

async fn track(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    basic_challenge(single(st, h, b, CallType::Track).await)
}

async fn page(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    basic_challenge(single(st, h, b, CallType::Page).await)
}

async fn alias(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    basic_challenge(single(st, h, b, CallType::Alias).await)
}

async fn batch(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    basic_challenge(batch_call(st, h, b).await)
}

/// A refused write key asks for HTTP Basic, the scheme Segment clients use
/// (the API's own 401 asks for a bearer key).
fn basic_challenge(r: ApiResult<Json<Value>>) -> Response {
    match r {
        Ok(j) => j.into_response(),
        Err(e) => {
            let unauthorized = matches!(e, AppError::Unauthorized(_));
            let mut res = e.into_response();
            if unauthorized {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"bos\""),
                );
            }
            res
        }
    }
}

/// The body, or 413 problem+json when it is over the server's body limit.
fn body(b: Body) -> ApiResult<Bytes> {
    b.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::body_too_large()
        } else {
            AppError::BadRequest(e.body_text())
        }
    })
}

fn unauthorized_key() -> AppError {
    AppError::Unauthorized(
        "Send the source's write key as HTTP Basic: 'Authorization: Basic base64(writeKey:)'. \
         The key is shown once when the source is created (POST /api/v1/sources)."
            .into(),
    )
}

/// The Segment source named by the write key: from the Authorization
/// header, or else from the body's `writeKey` (some clients send it there).
async fn segment_source(
    st: &AppState,
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> ApiResult<Source> {
    let key = match headers.get(axum::http::header::AUTHORIZATION) {
        Some(h) => {
            let h = h.to_str().map_err(|_| unauthorized_key())?;
            segment::write_key_from_basic(h).map_err(|e| {
                AppError::Unauthorized(format!(
                    "{e}. Send 'Authorization: Basic base64(writeKey:)'."
                ))
            })?
        }
        None => body_key.ok_or_else(unauthorized_key)?.to_owned(),
    };
    // Hashed like it is stored: the key is random, so a fast hash is right,
    // and the lookup by hash reveals nothing through timing.
    match st
        .store
        .source_by_key_hash(&crate::auth::sha256(&key))
        .await?
    {
        Some(s) if s.kind == SourceKind::Segment => Ok(s),
        _ => Err(unauthorized_key()),
    }
}

fn segment_error(e: segment::Error) -> AppError {
    match e {
        segment::Error::EventTooLarge { .. } | segment::Error::BatchTooLarge { .. } => {
            AppError::PayloadTooLarge(format!("{e}."))
        }
        segment::Error::Json(_) | segment::Error::NotAnObject | segment::Error::NoBatchArray => {
            AppError::BadRequest(format!("{e}."))
        }
        other => AppError::Invalid {
            field: None,
            detail: format!("{other}."),
        },
    }
}

/// Segment's own answer, which its SDKs expect.
fn success() -> Json<Value> {
    Json(json!({ "success": true }))
}

/// `/v1/identify`, `/v1/track`, `/v1/page`, `/v1/alias`: one call.
async fn single(
    State(st): State<AppState>,
    headers: HeaderMap,
    b: Body,
    call: CallType,
) -> ApiResult<Json<Value>> {
    let b = body(b)?;
    // The size limit first: it costs nothing and tells an honest client
    // what to fix, whoever it is.
    if b.len() > segment::MAX_EVENT_BYTES {
        return Err(segment_error(segment::Error::EventTooLarge {
            size: b.len(),
        }));
    }
    let now = st.now();
    let parsed = segment::parse_call(call, &b, now);
    let body_key = parsed.as_ref().ok().and_then(|p| p.write_key.as_deref());
    let src = segment_source(&st, &headers, body_key).await?;
    let msg = parsed.map_err(segment_error)?.message;
    // Valid JSON is valid UTF-8, so this is the body exactly as sent.
    let payload = String::from_utf8_lossy(&b).into_owned();
    st.store
        .ingest(
            src.org_id,
            src.id,
            vec![NewInbound {
                external_id: msg.message_id,
                kind: call.as_str().into(),
                payload,
            }],
            now,
        )
        .await?;
    st.pipeline.notify();
    Ok(success())
}

/// `/v1/batch`: every valid message is stored, in one transaction; an
/// invalid one is named in the answer (`rejected`) and not stored, so one
/// bad event does not cost the good ones beside it.
async fn batch_call(
    State(st): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Json<Value>> {
    let b = body(b)?;
    if b.len() > segment::MAX_BATCH_BYTES {
        return Err(segment_error(segment::Error::BatchTooLarge {
            size: b.len(),
        }));
    }
    let now = st.now();
    let parsed = segment::parse_batch(&b, now);
    let body_key = parsed.as_ref().ok().and_then(|p| p.write_key.as_deref());
    let src = segment_source(&st, &headers, body_key).await?;
    let parsed = parsed.map_err(segment_error)?;
    // Each message's own bytes, in the same order as the parsed messages
    // (parse_batch succeeded, so this parse of the same bytes does too).
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        batch: Vec<&'a RawValue>,
    }
    let raw: Raw<'_> = serde_json::from_slice(&b)
        .map_err(|e| AppError::BadRequest(format!("The body is not valid JSON: {e}.")))?;
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for (i, (m, r)) in parsed.messages.into_iter().zip(raw.batch).enumerate() {
        match m {
            Ok(m) => {
                if r.get().len() > segment::MAX_EVENT_BYTES {
                    rejected.push(json!({"index": i, "error": format!("{}", segment::Error::EventTooLarge { size: r.get().len() })}));
                    continue;
                }
                events.push(NewInbound {
                    external_id: m.message_id,
                    kind: m.call.call_type().as_str().into(),
                    payload: r.get().to_owned(),
                });
            }
            Err(e) => rejected.push(json!({"index": i, "error": e.to_string()})),
        }
    }
    if events.is_empty() && !rejected.is_empty() {
        return Err(AppError::Invalid {
            field: Some("batch"),
            detail: format!(
                "No message in the batch is valid; the first problem: {}.",
                rejected[0]["error"].as_str().unwrap_or("invalid")
            ),
        });
    }
    st.store.ingest(src.org_id, src.id, events, now).await?;
    st.pipeline.notify();
    if rejected.is_empty() {
        Ok(success())
    } else {
        Ok(Json(json!({ "success": true, "rejected": rejected })))
    }
}

/// `/hooks/{source_id}`: a Standard Webhooks delivery. Anything that does
/// not verify is 401 and writes nothing; an unknown source looks the same,
/// so ids cannot be probed.
async fn webhook(
    State(st): State<AppState>,
    Path(source_id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Json<Value>> {
    let b = body(b)?;
    let refused = |why: String| {
        AppError::Unauthorized(format!(
            "The delivery did not verify: {why}. Sign it with the source's whsec_ secret (Standard Webhooks v1)."
        ))
    };
    let src = match uuid::Uuid::parse_str(&source_id) {
        Ok(id) => st.store.source_by_id(id).await?,
        Err(_) => None,
    };
    let Some(src) = src.filter(|s| s.kind == SourceKind::Webhook) else {
        return Err(refused("unknown source".into()));
    };
    let secret = src
        .secret
        .as_deref()
        .and_then(|s| Secret::parse(s).ok())
        .ok_or_else(|| AppError::Internal(format!("source {} has no usable secret", src.id)))?;
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = standard_webhooks::verify(
        &[secret],
        standard_webhooks::Headers {
            id: h("webhook-id"),
            timestamp: h("webhook-timestamp"),
            signature: h("webhook-signature"),
        },
        &b,
        st.now(),
    )
    .map_err(|e| refused(e.to_string()))?;
    // The payload is stored as JSON text; the event type, when the sender
    // follows the spec's {type, timestamp, data} shape, is kept beside it.
    let v: Value = serde_json::from_slice(&b).map_err(|e| {
        AppError::BadRequest(format!(
            "The body is not valid JSON: {e}. Send a JSON payload."
        ))
    })?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .map(|t| t.chars().take(128).collect())
        .unwrap_or_else(|| "webhook".to_string());
    let payload = String::from_utf8_lossy(&b).into_owned();
    let r = st
        .store
        .ingest(
            src.org_id,
            src.id,
            vec![NewInbound {
                external_id: verified.id,
                kind,
                payload,
            }],
            st.now(),
        )
        .await?;
    st.pipeline.notify();
    Ok(Json(
        json!({ "success": true, "duplicate": r.duplicates > 0 }),
    ))
}

/// `/hooks/shopify/{source_id}`: a Shopify webhook delivery, signed with the
/// app's client secret (`X-Shopify-Hmac-Sha256` over the raw body). As for
/// `/hooks/{source_id}`, anything that does not verify — an unknown source
/// included, so ids cannot be probed — is 401 and writes nothing.
async fn shopify_webhook(
    State(st): State<AppState>,
    Path(source_id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Json<Value>> {
    let b = body(b)?;
    let refused = |why: String| {
        AppError::Unauthorized(format!(
            "The delivery did not verify: {why}. Shopify signs with the app's client secret; \
             create the source with that secret."
        ))
    };
    let src = match uuid::Uuid::parse_str(&source_id) {
        Ok(id) => st.store.source_by_id(id).await?,
        Err(_) => None,
    };
    let Some(src) = src.filter(|s| s.kind == SourceKind::Shopify) else {
        return Err(refused("unknown source".into()));
    };
    let secret = src
        .secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::Internal(format!("source {} has no secret", src.id)))?;
    // HeaderMap lookups are case-insensitive, as HTTP header names are.
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    shopify::verify(&[secret.as_bytes()], h("x-shopify-hmac-sha256"), &b)
        .map_err(|e| refused(e.to_string()))?;
    let topic = shopify::Topic::parse(h("x-shopify-topic").unwrap_or("")).map_err(|_| {
        AppError::invalid(
            "X-Shopify-Topic",
            format!(
                "Unsupported Shopify topic; subscribe only {}.",
                shopify::Topic::ALL.map(|t| t.as_str()).join(", ")
            ),
        )
    })?;
    let external_id =
        shopify::dedupe_key(topic, h("x-shopify-event-id"), h("x-shopify-webhook-id"))
            .map_err(|e| AppError::BadRequest(format!("{e}.")))?;
    // Parsed only to refuse a payload the pipeline could not read; what is
    // stored is the raw body.
    shopify::parse(topic, &b).map_err(|e| AppError::BadRequest(parse_reason(topic, &e)))?;
    let payload = String::from_utf8_lossy(&b).into_owned();
    let r = st
        .store
        .ingest(
            src.org_id,
            src.id,
            vec![NewInbound {
                external_id,
                kind: topic.as_str().into(),
                payload,
            }],
            st.now(),
        )
        .await?;
    st.pipeline.notify();
    Ok(Json(
        json!({ "success": true, "duplicate": r.duplicates > 0 }),
    ))
}

/// Why a verified Shopify body was refused, naming the field but never
/// quoting the payload: core's messages may carry its values (customer data),
/// and answers end up in senders' logs.
fn parse_reason(topic: shopify::Topic, e: &shopify::ParseError) -> String {
    use shopify::ParseError as E;
    let t = topic.as_str();
    match e {
        E::Json(_) => {
            format!("The body is not a {t} payload (malformed JSON or a field of the wrong type).")
        }
        E::MissingField(f) => format!("The {t} payload has no {f}."),
        E::Money { field, .. } => {
            format!("The {t} payload's {field} is not a non-negative decimal amount in the currency's minor unit.")
        }
        E::Timestamp(f) => format!("The {t} payload's {f} is not an RFC 3339 timestamp."),
        E::UnknownTopic(_) | E::MissingDeliveryId => format!("The {t} payload could not be read."),
    }
}
