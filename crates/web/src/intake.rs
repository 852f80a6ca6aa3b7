//! The public intake endpoints: Segment-compatible tracking
//! (`/v1/identify|track|page|screen|group|alias|batch`, write key as HTTP
//! Basic) and
//! Standard Webhooks (`/hooks/{source_id}`, HMAC over the raw body), and
//! Shopify webhooks (`/hooks/shopify/{source_id}`), and
//! public web forms (`/f/{form_key}`, posted from a visitor's browser). They
//! need no session or API key: the source's own credential is the
//! authentication, and it also tells us the tenant. (A form key is public,
//! so forms are protected by a honeypot and a per-address rate limit.)
//!
//! Each handler takes the body as raw bytes, undoes its `Content-Encoding`
//! (gzip or deflate, within the endpoint's limits: [`crate::intake_body`]),
//! checks the credential before anything is written — a signature covers
//! the decoded bytes, the payload the sender signed — then removes any
//! U+0000 from the payload's strings (PostgreSQL's text cannot hold it, and
//! an SDK would retry a 500 for ever), and answers 2xx only after the
//! events' transaction committed —
//! so a 2xx always means "stored", and a database outage answers 503 with
//! `Retry-After` for the sender to retry, and nothing is lost. Retries are
//! safe: every event is stored under its provider's dedupe key, once. What happens
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
use bos_core::intake::form;
use bos_core::intake::segment::{self, CallType};
use bos_core::intake::shopify;
use bos_core::intake::standard_webhooks::{self, Secret};
use bos_store::intake::{NewInbound, Source, SourceKind};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::net::IpAddr;

/// Every public intake route, for the router and the tenant matrix.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/identify"),
    ("POST", "/v1/track"),
    ("POST", "/v1/page"),
    ("POST", "/v1/screen"),
    ("POST", "/v1/group"),
    ("POST", "/v1/alias"),
    ("POST", "/v1/batch"),
    ("POST", "/hooks/{source_id}"),
    ("POST", "/hooks/shopify/{source_id}"),
    ("POST", "/f/{form_key}"),
    ("OPTIONS", "/f/{form_key}"),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/identify", post(identify))
        .route("/v1/track", post(track))
        .route("/v1/page", post(page))
        .route("/v1/screen", post(screen))
        .route("/v1/group", post(group))
        .route("/v1/alias", post(alias))
        .route("/v1/batch", post(batch))
        .route("/hooks/{source_id}", post(webhook))
        .route("/hooks/shopify/{source_id}", post(shopify_webhook))
        .route("/f/{form_key}", post(form_submit).options(form_preflight))
}

type Body = Result<Bytes, BytesRejection>;

async fn identify(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    sdk_answer(single(st, h, b, CallType::Identify).await)
}

async fn track(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    sdk_answer(single(st, h, b, CallType::Track).await)
}

async fn page(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    sdk_answer(single(st, h, b, CallType::Page).await)
}

async fn screen(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    sdk_answer(single(st, h, b, CallType::Screen).await)
}

async fn group(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    sdk_answer(single(st, h, b, CallType::Group).await)
}

async fn alias(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    sdk_answer(single(st, h, b, CallType::Alias).await)
}

async fn batch(st: State<AppState>, h: HeaderMap, b: Body) -> Response {
    sdk_answer(batch_call(st, h, b).await)
}

/// The answer of a Segment-compatible endpoint. An error is problem+json
/// with the `code` and `message` SDKs read; a refused write key asks for
/// HTTP Basic, the scheme Segment clients use (the API's own 401 asks for
/// a bearer key).
fn sdk_answer(r: ApiResult<Json<Value>>) -> Response {
    match r {
        Ok(j) => j.into_response(),
        Err(e) => {
            let unauthorized = matches!(e, AppError::Unauthorized(_));
            let mut res = e.into_sdk_response();
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

/// The body with its `Content-Encoding` undone, at most `limit` bytes once
/// decompressed (a body sent as is keeps its size; the caller checks it).
fn decoded(b: Body, headers: &HeaderMap, limit: usize) -> ApiResult<Bytes> {
    use crate::intake_body::{decode, DecodeError};
    decode(headers, body(b)?, limit).map_err(|e| match e {
        DecodeError::Unsupported(c) => AppError::UnsupportedMediaType(format!(
            "Content-Encoding {c:?} is not supported. Send the body as is, or compressed with gzip or deflate."
        )),
        DecodeError::TooLarge { limit } => AppError::PayloadTooLarge(format!(
            "The body is over {limit} bytes once decompressed; that is this endpoint's limit. \
             Send fewer or smaller events per request."
        )),
        DecodeError::Corrupt { coding, why } => AppError::BadRequest(format!(
            "The body is not valid {coding} ({why}). Compress it as Content-Encoding says, or send it as is without that header."
        )),
    })
}

/// `b` without U+0000 in its JSON strings (see `bos_core::intake::without_nul`).
fn nul_free(b: Bytes) -> Bytes {
    match bos_core::intake::without_nul(&b) {
        std::borrow::Cow::Borrowed(_) => b,
        std::borrow::Cow::Owned(v) => Bytes::from(v),
    }
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

/// `/v1/identify`, `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/group`,
/// `/v1/alias`: one call.
async fn single(
    State(st): State<AppState>,
    headers: HeaderMap,
    b: Body,
    call: CallType,
) -> ApiResult<Json<Value>> {
    let b = nul_free(decoded(b, &headers, segment::MAX_EVENT_BYTES)?);
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
/// invalid one is named in the answer (`rejected`, by index) and not
/// stored, so one bad event does not cost the good ones beside it. Calls of
/// a type outside the spec are among the rejected, and also counted by type
/// (`unsupported`): the answer keeps Segment's `"success": true` when
/// anything was stored, and says what was not.
async fn batch_call(
    State(st): State<AppState>,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Json<Value>> {
    let b = nul_free(decoded(b, &headers, segment::MAX_BATCH_BYTES)?);
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
    let unsupported = parsed.unsupported();
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
        let unsupported_n: usize = unsupported.values().sum();
        let also = if unsupported_n > 0 && unsupported_n < rejected.len() {
            format!(" ({unsupported_n} of them of an unsupported call type)")
        } else {
            String::new()
        };
        return Err(AppError::Invalid {
            field: Some("batch"),
            detail: format!(
                "No message in the batch is valid{also}; the first problem: {}.",
                rejected[0]["error"].as_str().unwrap_or("invalid")
            ),
        });
    }
    let stored = events.len();
    st.store.ingest(src.org_id, src.id, events, now).await?;
    st.pipeline.notify();
    if rejected.is_empty() {
        Ok(success())
    } else {
        if !unsupported.is_empty() {
            tracing::info!(source = %src.id, ?unsupported, "batch had calls of unsupported types");
        }
        Ok(Json(json!({
            "success": true,
            "stored": stored,
            "rejected": rejected,
            "unsupported": unsupported,
        })))
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
    let b = decoded(b, &headers, st.config.body_limit_bytes)?;
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
    let b = nul_free(b);
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
    let b = decoded(b, &headers, st.config.body_limit_bytes)?;
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
    let b = nul_free(b);
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

// ---------------------------------------------------------------------------
// Public web forms: `/f/{form_key}`.

/// A form post is refused after this many posts in a burst, per form and
/// client address...
const FORM_BURST: f64 = 10.0;
/// ...and allowed again at this pace: 10 a minute.
const FORM_REFILL_MS: f64 = 6_000.0;
/// Buckets kept before idle ones are dropped.
const FORM_BUCKETS_MAX: usize = 10_000;

/// Per-(form source, client address) token buckets, in memory: a form key
/// is public, so this is what keeps one sender from flooding a tenant's
/// inbox. Time comes from the app's clock, so tests need no sleeping.
#[derive(Default)]
pub struct FormLimiter {
    buckets: std::sync::Mutex<std::collections::HashMap<(uuid::Uuid, Option<IpAddr>), Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: i64,
}

impl FormLimiter {
    /// Takes one token; `Err(seconds)` to wait when there is none.
    pub fn take(&self, source: uuid::Uuid, ip: Option<IpAddr>, now: i64) -> Result<(), u64> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= FORM_BUCKETS_MAX && !map.contains_key(&(source, ip)) {
            // Drop buckets that have refilled: they hold nothing.
            let full_after = (FORM_BURST * FORM_REFILL_MS) as i64;
            map.retain(|_, b| now.saturating_sub(b.at) < full_after);
            if map.len() >= FORM_BUCKETS_MAX {
                map.clear();
            }
        }
        let b = map.entry((source, ip)).or_insert(Bucket {
            tokens: FORM_BURST,
            at: now,
        });
        // A clock that went back refills nothing and takes nothing extra.
        let elapsed = now.saturating_sub(b.at).max(0) as f64;
        b.tokens = (b.tokens + elapsed / FORM_REFILL_MS).min(FORM_BURST);
        b.at = b.at.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - b.tokens) * FORM_REFILL_MS;
            Err(((wait_ms / 1000.0).ceil() as u64).max(1))
        }
    }
}

/// The client's address as the edge worked it out: the TCP peer, or the
/// `X-Forwarded-For` hop a trusted proxy appended (see [`crate::edge`]);
/// a forged header from anyone else changes nothing.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(crate::edge::client_of(parts)))
    }
}

/// Every answer of `/f/…` may be read by any page: the key is public and
/// nothing secret is ever returned.
fn with_cors(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
    res
}

/// `OPTIONS /f/{form_key}`: the CORS preflight of a `fetch` that sends
/// JSON.
async fn form_preflight() -> Response {
    let mut res = axum::http::StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Accept"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    with_cors(res)
}

/// `POST /f/{form_key}`.
async fn form_submit(
    st: State<AppState>,
    Path(form_key): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    b: Body,
) -> Response {
    with_cors(match form_call(st, form_key, ip, headers, b).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    })
}

fn unknown_form() -> Response {
    let status = axum::http::StatusCode::NOT_FOUND;
    let body = crate::error::Problem {
        kind: "urn:bos:problem:not-found".into(),
        title: "Unknown form".into(),
        status: status.as_u16(),
        detail: "No form has this key. Check the form key in the form's action URL \
                 (/f/fk_…): copy it again from the form source in BOS."
            .into(),
        field: None,
    };
    let mut res = (status, serde_json::to_string(&body).unwrap_or_default()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

fn form_error(e: form::Error) -> AppError {
    use form::Error as E;
    // core's messages are sentence tails; make each a sentence.
    let msg = e.to_string();
    let mut chars = msg.chars();
    let detail = match chars.next() {
        Some(c) => format!("{}{}.", c.to_uppercase(), chars.as_str()),
        None => "The form submission was refused.".into(),
    };
    match e {
        E::TooLarge { .. } => AppError::PayloadTooLarge(detail),
        E::UnsupportedContentType(_) => AppError::UnsupportedMediaType(detail),
        E::Json(_) => AppError::BadRequest(detail),
        E::BadRedirect => AppError::invalid("_redirect", detail),
        E::BadSessionId => AppError::invalid("_sid", detail),
        E::BadPartial | E::PartialWithoutSid => AppError::invalid("_partial", detail),
        E::NotAScalar { .. }
        | E::NameTooLong(_)
        | E::ValueTooLong(_)
        | E::TooManyFields
        | E::NoFields => AppError::Invalid {
            field: None,
            detail,
        },
    }
}

/// The answer to a stored (or honeypot-swallowed) submission: a browser's
/// classic form post goes to the thank-you page when there is one; a
/// script (`Accept: application/json`) or a form without one gets
/// `{"success": true}`.
fn form_success(headers: &HeaderMap, redirect: Option<String>) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("application/json"));
    match redirect.and_then(|r| HeaderValue::from_str(&r).ok()) {
        Some(location) if !wants_json => {
            let mut res = axum::http::StatusCode::SEE_OTHER.into_response();
            res.headers_mut().insert(header::LOCATION, location);
            res
        }
        _ => success().into_response(),
    }
}

async fn form_call(
    State(st): State<AppState>,
    form_key: String,
    ip: Option<IpAddr>,
    headers: HeaderMap,
    b: Body,
) -> ApiResult<Response> {
    let b = decoded(b, &headers, form::MAX_BODY_BYTES)?;
    if b.len() > form::MAX_BODY_BYTES {
        return Err(form_error(form::Error::TooLarge { size: b.len() }));
    }
    // A key that cannot be one is not looked up.
    if !form_key.starts_with("fk_") || form_key.len() > 64 {
        return Ok(unknown_form());
    }
    let src = match st
        .store
        .source_by_key_hash(&crate::auth::sha256(&form_key))
        .await?
    {
        Some(s) if s.kind == SourceKind::Form => s,
        _ => return Ok(unknown_form()),
    };
    let now = st.now();
    if let Err(retry_after_s) = st.form_limiter.take(src.id, ip, now) {
        return Err(AppError::TooManyRequests {
            retry_after_s,
            detail: format!(
                "Too many submissions of this form from your address. Wait {retry_after_s} seconds and send it again."
            ),
        });
    }
    let h = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let sub = form::parse(h(header::CONTENT_TYPE), &b).map_err(form_error)?;
    let redirect = if sub.partial {
        None
    } else {
        sub.redirect.clone().or_else(|| src.thank_you_url())
    };
    if sub.honeypot_tripped {
        // Exactly the answer a person gets, and nothing stored.
        return Ok(form_success(&headers, redirect));
    }
    let kind = form::event_kind(&sub);
    let external_id = form::dedupe_key(&sub, &form::body_sha256_hex(&b));
    let clip = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    // The page is the form's `_page`, else the Referer a classic post sends.
    let page_url = sub
        .page_url
        .clone()
        .or_else(|| h(header::REFERER).map(|r| clip(r, form::MAX_URL_CHARS)));
    // The format the pipeline reads; keep it in step with it.
    let payload = json!({
        "type": kind,
        "fields": sub.fields,
        "session_id": sub.session_id,
        "page_url": page_url,
        "referrer": sub.referrer,
        "ip": ip.map(|i| i.to_string()),
        "user_agent": h(header::USER_AGENT).map(|u| clip(u, 512)),
    })
    .to_string();
    // A urlencoded `%00` is a NUL in a field; serialized, it is `\u0000`.
    let payload = match bos_core::intake::without_nul(payload.as_bytes()) {
        std::borrow::Cow::Borrowed(_) => payload,
        std::borrow::Cow::Owned(v) => String::from_utf8_lossy(&v).into_owned(),
    };
    let external_id = bos_core::intake::strip_nul(&external_id).into_owned();
    st.store
        .ingest(
            src.org_id,
            src.id,
            vec![NewInbound {
                external_id,
                kind: kind.into(),
                payload,
            }],
            now,
        )
        .await?;
    st.pipeline.notify();
    Ok(form_success(&headers, redirect))
}
