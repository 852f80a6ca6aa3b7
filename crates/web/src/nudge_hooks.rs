//! The nudge engine's public endpoints: provider webhooks
//! (Twilio inbound SMS and status callbacks, Mailgun and Postmark inbound
//! email), the open pixel, click-through redirects and the unsubscribe page
//! with RFC 8058 one-click.
//!
//! None of them takes a session or an API key. A webhook URL carries the
//! channel's hook key (`/hooks/twilio/{hook_key}/sms`), which names the
//! tenant and channel and nothing else: the provider's own credential
//! authenticates the request (Twilio's signature with the tenant's Auth
//! Token, Mailgun's signature with the tenant's signing key, Postmark's
//! basic-auth password), checked over the raw body before anything is
//! written (a forged, stale or replayed delivery is 401 and stores
//! nothing; comparisons are constant-time). An unknown key is a bare 404. Tracking and
//! unsubscribe URLs carry an execution's 128-bit token (32 hex characters);
//! anything else is 404 without a database read. None of these POSTs uses
//! the session's CSRF token: they are not cookie-authenticated, and the
//! CSRF sweep (tests/http/sessions.rs) covers the UI route table only, where
//! these routes are not.
//!
//! Every inbound message is also written to the customer's conversation in
//! the Unified Inbox (after the nudge engine has recorded it as a reply,
//! which also wrote its timeline line), and Twilio's status callbacks move
//! the inbox copy of a sent nudge forward too.
//!
//! Errors are problem+json without tenant data; a bad body is never a 500.
//! Status codes follow each provider's retry rules: Mailgun does not retry a
//! 406, Postmark does not retry a 403.

use crate::auth::constant_time_eq;
use crate::error::AppError;
use crate::paths;
use crate::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use bos_channels::{
    keywords, mailgun, postmark, twilio, DeliveryStatus, EmailAttachment, InboundEmail, Keyword,
};
use bos_core::inbox::{Channel as InboxChannel, DeliveryStatus as InboxDelivery};
use bos_core::nudge::Channel;
use bos_engine::inbox::{Inbound, InboxError};
use bos_store::nudge::{ChannelConfig, ExecutionStatus, InboundMessage};
use uuid::Uuid;

/// Every public route of this module, for the router and the tenant matrix.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", paths::TWILIO_SMS),
    ("POST", paths::TWILIO_STATUS),
    ("POST", paths::MAILGUN_INBOUND),
    ("POST", paths::POSTMARK_INBOUND),
    ("GET", paths::OPEN_PIXEL),
    ("GET", paths::CLICK),
    ("GET", paths::UNSUBSCRIBE),
    ("POST", paths::UNSUBSCRIBE),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::TWILIO_SMS, post(twilio_sms))
        .route(paths::TWILIO_STATUS, post(twilio_status))
        .route(paths::MAILGUN_INBOUND, post(mailgun_inbound))
        .route(paths::POSTMARK_INBOUND, post(postmark_inbound))
        .route(paths::OPEN_PIXEL, get(open_pixel))
        .route(paths::CLICK, get(click))
        .route(
            paths::UNSUBSCRIBE,
            get(unsubscribe_page).post(unsubscribe_post),
        )
}

/// Mailgun signs a timestamp; older (or further in the future) than this
/// and the delivery is refused as a replay.
pub const MAILGUN_MAX_AGE_S: i64 = 5 * 60;

/// How long a used Mailgun token is remembered: twice the timestamp
/// tolerance, after which the timestamp check refuses it anyway.
pub const MAILGUN_TOKEN_TTL_MS: i64 = 2 * MAILGUN_MAX_AGE_S * 1000;

type Body = Result<Bytes, BytesRejection>;

/// A 32-character lowercase hex token (hook keys, tracking tokens).
fn is_token(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A problem+json answer with a status AppError has no variant for.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:bos:problem:{}", title.to_lowercase().replace(' ', "-")),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

/// Unknown hook key: nothing to say.
fn bare_not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn unauthorized(detail: &str) -> Response {
    AppError::Unauthorized(detail.to_string()).into_response()
}

/// The raw body, or 413 when it is over the server's body limit.
#[allow(clippy::result_large_err)]
fn body(b: Body) -> Result<Bytes, Response> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::body_too_large().into_response()
        } else {
            AppError::BadRequest(e.body_text()).into_response()
        }
    })
}

/// The tenant and settings a webhook's key names, for the expected channel.
/// (The error is the finished answer; a boxed one would only add noise.)
#[allow(clippy::result_large_err)]
async fn hook(
    st: &AppState,
    key: &str,
    channel: Channel,
) -> Result<(Uuid, ChannelConfig), Response> {
    if !is_token(key) {
        return Err(bare_not_found());
    }
    match st.store.channel_by_hook(key.to_string()).await {
        Ok(Some((org, ch, cfg))) if ch == channel => Ok((org, cfg)),
        Ok(_) => Err(bare_not_found()),
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

/// A store failure while handling a webhook: 503 for an outage (the
/// provider retries), a sentence for a message we cannot store.
fn store_failure(e: bos_store::StoreError, invalid_status: StatusCode) -> Response {
    match AppError::from(e) {
        AppError::Invalid { detail, .. } => problem(invalid_status, "Invalid message", &detail),
        other => other.into_response(),
    }
}

/// Writes an inbound message to the customer's conversation. The nudge
/// engine has recorded it already (and written its timeline line), so a
/// provider's retry after a failure here stores it in the inbox then.
#[allow(clippy::result_large_err)]
async fn to_inbox(
    st: &AppState,
    org: Uuid,
    m: Inbound,
    invalid_status: StatusCode,
) -> Result<(), Response> {
    match st.inbox.record_inbound(org, m, st.now()).await {
        Ok(_) => Ok(()),
        Err(InboxError::Invalid { detail, .. }) => {
            Err(problem(invalid_status, "Invalid message", &detail))
        }
        Err(e) => Err(AppError::from(e).into_response()),
    }
}

/// An inbound e-mail as the inbox keeps it: threading headers, subject,
/// the HTML (sanitized by the inbox) and the attachments as metadata.
fn email_inbound(profile_id: Uuid, mail: &InboundEmail) -> Inbound {
    Inbound {
        provider_message_id: Some(mail.provider_message_id.clone()),
        author_name: mail.from_name.clone(),
        html: mail.html.clone(),
        subject: Some(mail.subject.clone()).filter(|s| !s.trim().is_empty()),
        attachments: serde_json::to_value(&mail.attachments)
            .unwrap_or_else(|_| serde_json::Value::Array(Vec::new())),
        email_message_id: mail.message_id.clone(),
        in_reply_to: mail.in_reply_to.clone(),
        references: mail.references.clone(),
        on_timeline_already: true,
        ..Inbound::text(profile_id, InboxChannel::Email, mail.text.clone())
    }
}

// ------------------------------------------------------------------ Twilio

/// The URL Twilio signed: the public URL plus the path and query called.
/// Only this URL (and its default-port variant) is accepted; a proxy that
/// rewrites the host does not change what is checked.
fn signed_url(st: &AppState, uri: &Uri) -> String {
    let base = st.config.public_url.trim_end_matches('/');
    let pq = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| uri.path());
    format!("{base}{pq}")
}

/// Checks `X-Twilio-Signature` and returns the form's parameters.
#[allow(clippy::result_large_err)]
fn twilio_verified(
    st: &AppState,
    cfg: &ChannelConfig,
    uri: &Uri,
    headers: &HeaderMap,
    b: &[u8],
) -> Result<Vec<(String, String)>, Response> {
    const HOW: &str = "Twilio signs every webhook with the account's Auth Token; \
                       save that Auth Token under Settings → Channels → SMS.";
    let ChannelConfig::Twilio {
        auth_token,
        webhook_shared_key,
        ..
    } = cfg
    else {
        return Err(unauthorized(&format!(
            "The request did not verify: this channel does not use Twilio. {HOW}"
        )));
    };
    let Some(sig) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return Err(unauthorized(&format!(
            "The request did not verify: the X-Twilio-Signature header is missing. {HOW}"
        )));
    };
    // A Webhooks Rule signs with its own shared key and algorithm, and says
    // so in this header; without it, the Auth Token and HMAC-SHA1.
    let by_rule = headers.contains_key(twilio::SIGNATURE_SETTINGS_HEADER);
    let (alg, key) = match headers.get(twilio::SIGNATURE_SETTINGS_HEADER) {
        None => (twilio::SignatureAlgorithm::HmacSha1, auth_token.as_str()),
        Some(v) => {
            let alg = v
                .to_str()
                .map_err(|_| "the signature settings are not text".to_string())
                .and_then(twilio::SignatureAlgorithm::from_settings)
                .map_err(|why| {
                    unauthorized(&format!(
                        "The request did not verify: {why}. Set the Webhooks Rule to HMAC_SHA256."
                    ))
                })?;
            match webhook_shared_key.as_deref().filter(|k| !k.is_empty()) {
                Some(k) => (alg, k),
                None => {
                    return Err(unauthorized(
                        "The request did not verify: it is signed by a Twilio Webhooks Rule's shared key \
                         (X-Twilio-Webhooks-Signature-Settings), and none is saved. Paste the rule's \
                         shared key under Settings → Channels → SMS.",
                    ))
                }
            }
        }
    };
    let params = twilio::parse_form(b);
    if !twilio::verify_with(alg, key, &signed_url(st, uri), &params, sig) {
        // Say which secret it was checked against: a rule's shared key is
        // easy to confuse with the Auth Token.
        let how = if by_rule {
            "It was checked with the Webhooks Rule's shared key saved under Settings → Channels → SMS."
        } else {
            HOW
        };
        return Err(unauthorized(&format!(
            "The request did not verify: X-Twilio-Signature does not match. {how}"
        )));
    }
    Ok(params)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// TwiML: `<Response/>` (no reply), or one message back.
fn twiml(reply: Option<String>) -> Response {
    let body = match reply {
        None => r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#.to_string(),
        Some(text) => format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>"#,
            xml_escape(&text)
        ),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"))],
        body,
    )
        .into_response()
}

/// What both Twilio webhooks check first: the body within limits, the hook
/// key naming a tenant's SMS channel, and the signature over the public URL.
/// Returns the tenant and the signed form parameters.
async fn twilio_request(
    st: &AppState,
    key: &str,
    uri: &Uri,
    headers: &HeaderMap,
    b: Body,
) -> Result<(Uuid, Vec<(String, String)>), Response> {
    let b = body(b)?;
    let (org, cfg) = hook(st, key, Channel::Sms).await?;
    let params = twilio_verified(st, &cfg, uri, headers, &b)?;
    Ok((org, params))
}

/// `POST /hooks/twilio/{hook_key}/sms`: an inbound SMS. Stored once per
/// `MessageSid` on the sender's timeline (found or created by phone); STOP
/// opts the number out of SMS, START opts it back in, HELP is answered.
/// STOP and START get no reply of ours: Twilio confirms them itself.
async fn twilio_sms(
    State(st): State<AppState>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (org, params) = match twilio_request(&st, &key, &uri, &headers, b).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let sms = match twilio::inbound_sms(&params) {
        Ok(s) => s,
        Err(e) => {
            return AppError::BadRequest(format!("The inbound SMS could not be read: {e}."))
                .into_response()
        }
    };
    let kw = keywords::keyword(&sms.body);
    let opt = match kw {
        Some(Keyword::Stop) => Some(true),
        Some(Keyword::Start) => Some(false),
        _ => None,
    };
    let (text, sid) = (sms.body.clone(), sms.message_sid.clone());
    let msg = InboundMessage {
        channel: Channel::Sms,
        from: sms.from,
        to: sms.to,
        subject: None,
        text: sms.body,
        provider_id: sms.message_sid,
        provider: "twilio".into(),
        in_reply_to: Vec::new(),
        opt,
    };
    let outcome = match st.store.inbound_message(org, msg, st.now()).await {
        Ok(o) => o,
        Err(e) => return store_failure(e, StatusCode::UNPROCESSABLE_ENTITY),
    };
    let m = Inbound {
        provider_message_id: Some(sid),
        on_timeline_already: true,
        ..Inbound::text(outcome.profile_id, InboxChannel::Sms, text)
    };
    if let Err(r) = to_inbox(&st, org, m, StatusCode::UNPROCESSABLE_ENTITY).await {
        return r;
    }
    if kw == Some(Keyword::Help) {
        let name = st.store.org(org).await.map(|o| o.name).unwrap_or_default();
        let who = if name.is_empty() {
            String::new()
        } else {
            format!("{name}: ")
        };
        return twiml(Some(format!(
            "{who}reply STOP to unsubscribe, START to subscribe again."
        )));
    }
    twiml(None)
}

/// Our execution status for a Twilio delivery status, or `None` for the
/// ones before `sent` (not stored: the row is `sent` once Twilio took it).
fn our_status(s: DeliveryStatus) -> Option<ExecutionStatus> {
    match s {
        DeliveryStatus::Sent => Some(ExecutionStatus::Sent),
        DeliveryStatus::Delivered | DeliveryStatus::Read => Some(ExecutionStatus::Delivered),
        DeliveryStatus::Undelivered => Some(ExecutionStatus::Undelivered),
        DeliveryStatus::Failed | DeliveryStatus::Canceled => Some(ExecutionStatus::Failed),
        DeliveryStatus::Queued
        | DeliveryStatus::Sending
        | DeliveryStatus::Accepted
        | DeliveryStatus::Scheduled => None,
    }
}

/// The inbox's delivery status for a Twilio status (the same steps as
/// [`our_status`]: nothing before `sent`).
fn inbox_status(s: DeliveryStatus) -> Option<InboxDelivery> {
    match s {
        DeliveryStatus::Sent => Some(InboxDelivery::Sent),
        DeliveryStatus::Delivered => Some(InboxDelivery::Delivered),
        DeliveryStatus::Read => Some(InboxDelivery::Read),
        DeliveryStatus::Undelivered | DeliveryStatus::Failed | DeliveryStatus::Canceled => {
            Some(InboxDelivery::Failed)
        }
        DeliveryStatus::Queued
        | DeliveryStatus::Sending
        | DeliveryStatus::Accepted
        | DeliveryStatus::Scheduled => None,
    }
}

/// `POST /hooks/twilio/{hook_key}/status`: a delivery status callback,
/// applied forward only (a late `sent` after `delivered` changes nothing).
async fn twilio_status(
    State(st): State<AppState>,
    Path(key): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let (org, params) = match twilio_request(&st, &key, &uri, &headers, b).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let update = match twilio::status_update(&params) {
        Ok(u) => u,
        Err(e) => {
            return AppError::BadRequest(format!("The status callback could not be read: {e}."))
                .into_response()
        }
    };
    if let Some(status) = our_status(update.status) {
        let error = match (update.status, update.error_code) {
            (_, Some(code)) => Some(format!("Twilio error {code}")),
            (DeliveryStatus::Canceled, None) => Some("canceled".to_string()),
            _ => None,
        };
        let sid = update.message_sid.clone();
        if let Err(e) = st
            .store
            .delivery_status(org, update.message_sid, status, error, st.now())
            .await
        {
            return store_failure(e, StatusCode::UNPROCESSABLE_ENTITY);
        }
        if let Some(s) = inbox_status(update.status) {
            if let Err(e) = st
                .inbox
                .delivery_receipt(org, InboxChannel::Sms, &sid, s, st.now())
                .await
            {
                return AppError::from(e).into_response();
            }
        }
    }
    StatusCode::OK.into_response()
}

// ------------------------------------------------------------------- email

/// An inbound email as the store takes it.
fn email_message(mail: &InboundEmail, provider: &str) -> InboundMessage {
    let opt = keywords::is_email_unsubscribe(&mail.subject, &mail.text).then_some(true);
    let mut in_reply_to: Vec<String> = mail.in_reply_to.iter().cloned().collect();
    // The nearest ancestors first: References lists the oldest first.
    in_reply_to.extend(mail.references.iter().rev().cloned());
    InboundMessage {
        channel: Channel::Email,
        from: mail.from.clone(),
        to: mail.to.clone(),
        subject: Some(mail.subject.clone()),
        text: mail.text.clone(),
        provider_id: mail.provider_message_id.clone(),
        provider: provider.into(),
        in_reply_to,
        opt,
    }
}

fn not_acceptable(detail: &str) -> Response {
    problem(StatusCode::NOT_ACCEPTABLE, "Not acceptable", detail)
}

/// `POST /hooks/mailgun/{hook_key}`: a Mailgun inbound route's `forward()`.
/// The signature (HMAC of timestamp + token with the signing key) must
/// verify, the timestamp be within 5 minutes of the app clock, and the
/// token unused. 406 (not retried) for a body that cannot be used.
async fn mailgun_inbound(
    State(st): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let b = match body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (org, cfg) = match hook(&st, &key, Channel::Email).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let signing_key = match &cfg {
        ChannelConfig::Smtp {
            mailgun_signing_key: Some(k),
            ..
        } if !k.is_empty() => k.clone(),
        _ => return not_acceptable(
            "This channel has no Mailgun signing key. Save it under Settings → Channels → Email.",
        ),
    };
    let mut ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut b = b;
    let mut attachments = Vec::new();
    if let Some(c) = ct.filter(|c| c.trim().to_ascii_lowercase().starts_with("multipart/")) {
        b = match multipart_as_form(c, b).await {
            Ok((form, files)) => {
                attachments = files;
                form
            }
            Err(why) => {
                return not_acceptable(&format!("The inbound email could not be read: {why}."))
            }
        };
        ct = Some("application/x-www-form-urlencoded");
    }
    const HOW: &str = "Mailgun signs timestamp + token with the HTTP webhook signing key; \
                       save that key under Settings → Channels → Email.";
    let fields = twilio::parse_form(&b);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    let (Some(ts), Some(token), Some(sig)) =
        (field("timestamp"), field("token"), field("signature"))
    else {
        return unauthorized(&format!(
            "The request did not verify: timestamp, token and signature are required. {HOW}"
        ));
    };
    let now = st.now();
    if !mailgun::verify(&signing_key, ts, token, sig, now / 1000, MAILGUN_MAX_AGE_S) {
        return unauthorized(&format!(
            "The request did not verify: the signature does not match or the timestamp is more \
             than 5 minutes from now. {HOW}"
        ));
    }
    // Parsed before the token is claimed: a signed post that cannot be
    // read is refused without leaving anything behind, so it cannot use up
    // the token of the genuine delivery or fill the table.
    let mail = match mailgun::parse(ct, &b) {
        Ok((mut mail, _)) => {
            mail.attachments = attachments;
            mail
        }
        Err(e) => return not_acceptable(&format!("The inbound email could not be read: {e}.")),
    };
    // Per tenant and in the database: one tenant's deliveries only ever
    // fill its own rows, and every replica sees the same used tokens.
    match st
        .store
        .claim_hook_token(org, "mailgun", token, now, now + MAILGUN_TOKEN_TTL_MS)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return unauthorized("The request did not verify: this token was used already.")
        }
        Err(e) => return AppError::from(e).into_response(),
    }
    match st
        .store
        .inbound_message(org, email_message(&mail, "mailgun"), now)
        .await
    {
        Ok(outcome) => {
            let m = email_inbound(outcome.profile_id, &mail);
            match to_inbox(&st, org, m, StatusCode::NOT_ACCEPTABLE).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(r) => {
                    // Mailgun's retry (same token) must be accepted, to
                    // put the message in the inbox then.
                    if r.status() != StatusCode::NOT_ACCEPTABLE {
                        let _ = st.store.release_hook_token(org, "mailgun", token).await;
                    }
                    r
                }
            }
        }
        Err(bos_store::StoreError::Invalid(detail)) => not_acceptable(&detail),
        Err(e) => {
            // Not stored: Mailgun's retry (same token) must be accepted.
            // If the release fails too, the token expires by itself.
            let _ = st.store.release_hook_token(org, "mailgun", token).await;
            AppError::from(e).into_response()
        }
    }
}

/// Mailgun posts `multipart/form-data` when the mail has attachments: its
/// text fields, url-encoded, so one reading (and one signature check)
/// serves both. Attachments are kept as metadata only (name, type, size).
async fn multipart_as_form(
    content_type: &str,
    body: Bytes,
) -> Result<(Bytes, Vec<EmailAttachment>), String> {
    use axum::extract::FromRequest;
    let req = axum::http::Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body))
        .map_err(|e| e.to_string())?;
    let mut parts = axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|e| e.body_text())?;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut files = Vec::new();
    while let Some(field) = parts.next_field().await.map_err(|e| e.body_text())? {
        if let Some(name) = field.file_name().map(str::to_string) {
            let content_type = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_string();
            let size = field.bytes().await.map_err(|e| e.body_text())?.len() as u64;
            files.push(EmailAttachment {
                name,
                content_type,
                size: Some(size),
            });
            continue;
        }
        let Some(name) = field.name().map(str::to_string) else {
            continue;
        };
        let value = field.text().await.map_err(|e| e.body_text())?;
        fields.push((name, value));
    }
    let form = serde_urlencoded::to_string(&fields)
        .map(Bytes::from)
        .map_err(|e| e.to_string())?;
    Ok((form, files))
}

/// `user:password` from an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<Vec<u8>> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
}

/// `POST /hooks/postmark/{hook_key}`: Postmark inbound JSON, authenticated
/// by the basic-auth credentials in the webhook URL
/// (`postmark:{password}`), compared in constant time.
async fn postmark_inbound(
    State(st): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    let b = match body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (org, cfg) = match hook(&st, &key, Channel::Email).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let password = match &cfg {
        ChannelConfig::Smtp {
            postmark_password: Some(p),
            ..
        } if !p.is_empty() => p.clone(),
        _ => {
            // 403: Postmark stops retrying.
            return AppError::Forbidden(
                "This channel has no Postmark password. Save one under Settings → Channels → Email."
                    .into(),
            )
            .into_response();
        }
    };
    let expected = format!("postmark:{password}");
    let ok =
        basic_credentials(&headers).is_some_and(|got| constant_time_eq(&got, expected.as_bytes()));
    if !ok {
        let mut res = unauthorized(
            "The request did not verify. Use the webhook URL shown under Settings → Channels → \
             Email, with postmark:PASSWORD@ in it.",
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"bos\""),
        );
        return res;
    }
    let mail = match postmark::parse(&b) {
        Ok(m) => m,
        Err(e) => {
            return AppError::BadRequest(format!("The inbound email could not be read: {e}."))
                .into_response()
        }
    };
    match st
        .store
        .inbound_message(org, email_message(&mail, "postmark"), st.now())
        .await
    {
        Ok(outcome) => {
            let m = email_inbound(outcome.profile_id, &mail);
            match to_inbox(&st, org, m, StatusCode::UNPROCESSABLE_ENTITY).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(r) => r,
            }
        }
        Err(e) => store_failure(e, StatusCode::UNPROCESSABLE_ENTITY),
    }
}

// ------------------------------------------------------ tracking, unsubscribe

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn page_not_found() -> Response {
    crate::ui::error_page(&AppError::NotFound)
}

/// `GET /t/o/{token}`: the open pixel. Always the GIF (an unknown token
/// too, so mail clients show nothing broken); the open is recorded once.
async fn open_pixel(State(st): State<AppState>, Path(token): Path<String>) -> Response {
    if !is_token(&token) {
        return page_not_found();
    }
    if let Err(e) = st.store.track_open(token, st.now()).await {
        tracing::warn!(error = %e, "open pixel not recorded");
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/gif")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        PIXEL,
    )
        .into_response()
}

/// `GET /t/c/{token}`: records the click and redirects to the link stored
/// with that token, never anywhere else (no open redirect).
async fn click(State(st): State<AppState>, Path(token): Path<String>) -> Response {
    if !is_token(&token) {
        return page_not_found();
    }
    let url = match st.store.track_click(token, st.now()).await {
        Ok(Some(url)) => url,
        Ok(None) => return page_not_found(),
        Err(e) => return crate::error::PageError(e.into()).into_response(),
    };
    let lower = url.to_ascii_lowercase();
    let Ok(location) = HeaderValue::from_str(&url) else {
        return page_not_found();
    };
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return page_not_found();
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage {
    css: &'static str,
    org_name: String,
    address: String,
    channel: &'static str,
    token: String,
    /// `ask`, `already` or `done`.
    state: &'static str,
}

/// `j•••@example.com`, `+•••••••0123`: enough for a person to recognise
/// their address, not enough to learn someone else's from a forwarded link.
pub use bos_core::inbox::mask_address;

async fn unsubscribe_response(st: &AppState, token: String, post: bool) -> Response {
    if !is_token(&token) {
        return page_not_found();
    }
    let target = match st.store.unsubscribe_target(token.clone()).await {
        Ok(Some(t)) => t,
        Ok(None) => return page_not_found(),
        Err(e) => return crate::error::PageError(e.into()).into_response(),
    };
    let (_, org_name, channel, address, already) = target;
    let state = if post {
        match st.store.unsubscribe(token.clone(), st.now()).await {
            Ok(true) => "done",
            Ok(false) => return page_not_found(),
            Err(e) => return crate::error::PageError(e.into()).into_response(),
        }
    } else if already {
        "already"
    } else {
        "ask"
    };
    crate::ui::render(&UnsubscribePage {
        css: crate::assets::url("app.css"),
        org_name,
        address: mask_address(&address),
        channel: if channel == Channel::Sms {
            "text messages"
        } else {
            "emails"
        },
        token,
        state,
    })
}

/// `GET /u/{token}`: the unsubscribe page, one button.
async fn unsubscribe_page(State(st): State<AppState>, Path(token): Path<String>) -> Response {
    unsubscribe_response(&st, token, false).await
}

/// `POST /u/{token}`: the page's button, or an RFC 8058 one-click POST
/// (`List-Unsubscribe=One-Click`) from a mail provider, with no cookie and
/// no CSRF token: the token in the URL is the credential. Idempotent.
async fn unsubscribe_post(State(st): State<AppState>, Path(token): Path<String>) -> Response {
    unsubscribe_response(&st, token, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("0123456789abcdef0123456789abcdef"));
        assert!(!is_token("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_token("0123456789abcdef0123456789abcde"));
        assert!(!is_token("../../etc/passwd"));
    }

    #[test]
    fn masks() {
        assert_eq!(mask_address("jane@example.com"), "j•••@example.com");
        assert_eq!(mask_address("+14155550123"), "+•••••••0123");
        assert_eq!(mask_address("12"), "12");
    }

    #[test]
    fn statuses_map_forward() {
        assert_eq!(
            our_status(DeliveryStatus::Read),
            Some(ExecutionStatus::Delivered)
        );
        assert_eq!(our_status(DeliveryStatus::Queued), None);
        assert_eq!(
            our_status(DeliveryStatus::Sent),
            Some(ExecutionStatus::Sent)
        );
    }
}
