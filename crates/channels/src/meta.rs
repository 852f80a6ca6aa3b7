//! Meta: Instagram Direct and Facebook Messenger. Owns the
//! `X-Hub-Signature-256` check of webhook deliveries, the GET subscription
//! handshake, the parsing of deliveries (messages with their attachments as
//! metadata, echoes of our own sends, reads and delivery receipts) into one
//! flat list of events, and the Send API client with Meta's answers mapped
//! onto retry classes, the closed 24-hour messaging window called out on
//! its own so the inbox can say why a reply did not go.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;

use crate::{BoxFuture, ParseError, SendError};

// ---------------------------------------------------------------- inbound

/// The header Meta signs deliveries with: `sha256=<lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// `sha256=<hex HMAC-SHA256(app secret, body)>`: what Meta sends in
/// [`SIGNATURE_HEADER`]. For the demo simulator and tests.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut m =
        Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
    m.update(body);
    let hex: String = m
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Checks `X-Hub-Signature-256` against the raw body, in constant time.
/// The MAC is over the bytes exactly as received: Meta escapes non-ASCII as
/// `\uXXXX`, so re-serialized JSON would not match.
pub fn verify_signature(app_secret: &str, body: &[u8], header: &str) -> bool {
    if app_secret.is_empty() {
        // An unconfigured secret must not make every signature "valid".
        return false;
    }
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = hex_decode(hex) else {
        return false;
    };
    if expected.len() != 32 {
        return false;
    }
    let mut m =
        Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
    m.update(body);
    m.verify_slice(&expected).is_ok()
}

/// Why a subscription handshake is refused (answer 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("hub.mode must be `subscribe`")]
    Mode,
    #[error("hub.verify_token does not match")]
    Token,
    #[error("hub.challenge is missing")]
    Challenge,
}

/// The GET handshake Meta makes when a webhook is subscribed: with
/// `hub.mode=subscribe` and our verify token, answer 200 with
/// `hub.challenge` as the plain body (the `Ok` value); otherwise 403.
/// `query` is the decoded query string's pairs.
pub fn verify_subscription(
    query: &[(String, String)],
    expected_token: &str,
) -> Result<String, HandshakeError> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("hub.mode") != Some("subscribe") {
        return Err(HandshakeError::Mode);
    }
    let token = get("hub.verify_token").unwrap_or("");
    if expected_token.is_empty() || !ct_eq(token.as_bytes(), expected_token.as_bytes()) {
        return Err(HandshakeError::Token);
    }
    match get("hub.challenge") {
        Some(c) if !c.is_empty() => Ok(c.to_string()),
        _ => Err(HandshakeError::Challenge),
    }
}

/// Equality whose time depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Which product a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// `object: "instagram"`; ids are Instagram-scoped (IGSID).
    Instagram,
    /// `object: "page"` (Messenger); ids are page-scoped (PSID).
    Messenger,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Instagram => "instagram",
            Platform::Messenger => "facebook",
        }
    }
}

/// An attachment, as metadata only (its content stays at Meta).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    /// `image`, `video`, `audio`, `file`, `share`, `story_mention`, …
    pub kind: String,
    pub url: Option<String>,
}

/// What one webhook event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A message; with `is_echo` it is one the business sent (from the inbox
    /// or from Meta's own apps), otherwise the customer's.
    Message {
        mid: String,
        text: Option<String>,
        attachments: Vec<Attachment>,
        is_echo: bool,
        /// The mid this message answers, when it is a reply.
        reply_to: Option<String>,
    },
    /// The customer read our messages: Messenger sends every message up to
    /// `watermark` (ms); Instagram names the message read.
    Read {
        watermark: Option<i64>,
        mid: Option<String>,
    },
    /// Messenger delivered our messages `mids` (or all up to `watermark`).
    Delivery {
        mids: Vec<String>,
        watermark: Option<i64>,
    },
}

/// One event of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub platform: Platform,
    /// The page or Instagram account the delivery is for (`entry.id`).
    pub account_id: String,
    pub sender_id: String,
    pub recipient_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub kind: EventKind,
}

impl Event {
    /// The customer's scoped id: the sender, or for an echo of our own
    /// message, its recipient.
    pub fn customer_id(&self) -> &str {
        match &self.kind {
            EventKind::Message { is_echo: true, .. } => &self.recipient_id,
            _ => &self.sender_id,
        }
    }
}

fn malformed(reason: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        format: "Meta webhook JSON",
        reason: reason.into(),
    }
}

fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Meta's timestamps are milliseconds; a few Instagram fields come in
/// seconds. Anything below 10^11 (March 1973 in ms) is taken as seconds.
fn to_millis(t: i64) -> i64 {
    if t.abs() < 100_000_000_000 {
        t.saturating_mul(1000)
    } else {
        t
    }
}

/// Parses a verified delivery into its events, in order. Event types the
/// inbox does not use (postbacks, reactions, referrals, …) are skipped, so
/// a new kind of event from Meta is acknowledged rather than retried for
/// 36 hours; a message without its id is an error (it could not be
/// deduplicated).
pub fn parse_delivery(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let platform = match root.get("object").and_then(Value::as_str) {
        Some("instagram") => Platform::Instagram,
        Some("page") => Platform::Messenger,
        Some(other) => {
            return Err(ParseError::Invalid {
                field: "object",
                reason: format!(
                    "{:?} is not instagram or page",
                    other.chars().take(40).collect::<String>()
                ),
            })
        }
        None => return Err(ParseError::Missing("object")),
    };
    let entries = root
        .get("entry")
        .and_then(Value::as_array)
        .ok_or(ParseError::Missing("entry"))?;
    let mut out = Vec::new();
    for entry in entries {
        let account_id = entry.get("id").and_then(str_of).unwrap_or_default();
        let entry_time = entry.get("time").and_then(int_of).map(to_millis);
        if let Some(items) = entry.get("messaging").and_then(Value::as_array) {
            for item in items {
                if let Some(ev) = parse_item(platform, &account_id, entry_time, item)? {
                    out.push(ev);
                }
            }
        }
        // Instagram's newer subscriptions put the same object under
        // `changes: [{field: "messages", value: {...}}]`.
        if let Some(changes) = entry.get("changes").and_then(Value::as_array) {
            for change in changes {
                let field = change.get("field").and_then(Value::as_str);
                if !matches!(field, Some("messages") | Some("message_echoes")) {
                    continue;
                }
                if let Some(value) = change.get("value") {
                    if let Some(ev) = parse_item(platform, &account_id, entry_time, value)? {
                        out.push(ev);
                    }
                }
            }
        }
    }
    Ok(out)
}

fn parse_item(
    platform: Platform,
    account_id: &str,
    entry_time: Option<i64>,
    item: &Value,
) -> Result<Option<Event>, ParseError> {
    let kind = if let Some(m) = item.get("message") {
        let mid = m
            .get("mid")
            .and_then(str_of)
            .ok_or(ParseError::Missing("message.mid"))?;
        let attachments = m
            .get("attachments")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|a| Attachment {
                        kind: a
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("file")
                            .to_string(),
                        url: a
                            .get("payload")
                            .and_then(|p| p.get("url"))
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        EventKind::Message {
            mid,
            text: m.get("text").and_then(Value::as_str).map(str::to_string),
            attachments,
            is_echo: m.get("is_echo").and_then(Value::as_bool).unwrap_or(false),
            reply_to: m
                .get("reply_to")
                .and_then(|r| r.get("mid"))
                .and_then(str_of),
        }
    } else if let Some(r) = item.get("read") {
        EventKind::Read {
            watermark: r.get("watermark").and_then(int_of),
            mid: r.get("mid").and_then(str_of),
        }
    } else if let Some(d) = item.get("delivery") {
        EventKind::Delivery {
            mids: d
                .get("mids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(str_of).collect())
                .unwrap_or_default(),
            watermark: d.get("watermark").and_then(int_of),
        }
    } else {
        return Ok(None);
    };
    let sender_id = item
        .get("sender")
        .and_then(|s| s.get("id"))
        .and_then(str_of)
        .ok_or(ParseError::Missing("sender.id"))?;
    let recipient_id = item
        .get("recipient")
        .and_then(|s| s.get("id"))
        .and_then(str_of)
        .ok_or(ParseError::Missing("recipient.id"))?;
    let timestamp = item
        .get("timestamp")
        .and_then(int_of)
        .map(to_millis)
        .or(entry_time)
        .ok_or(ParseError::Missing("timestamp"))?;
    Ok(Some(Event {
        platform,
        account_id: account_id.to_string(),
        sender_id,
        recipient_id,
        timestamp,
        kind,
    }))
}

// ---------------------------------------------------------------- outbound

/// One Page (Messenger) or Instagram account to send from.
#[derive(Clone)]
pub struct MetaConfig {
    /// `https://graph.facebook.com` in production; a fake's URL in tests.
    pub base_url: String,
    /// Graph API version, e.g. `v21.0`.
    pub version: String,
    pub page_access_token: String,
    /// Total request timeout; connecting gets half of it.
    pub timeout: Duration,
}

impl MetaConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://graph.facebook.com";
    pub const DEFAULT_VERSION: &'static str = "v21.0";
}

impl std::fmt::Debug for MetaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never goes to a log.
        f.debug_struct("MetaConfig")
            .field("base_url", &self.base_url)
            .field("version", &self.version)
            .field("page_access_token", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The longest text the Send API takes, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// One reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaOutgoing {
    /// The customer's page- or Instagram-scoped id.
    pub recipient_id: String,
    pub text: String,
    /// A person's reply past the 24-hour window: sent as
    /// `messaging_type: MESSAGE_TAG` with `tag: HUMAN_AGENT` (allowed for 7
    /// days after the customer's last message, with Meta's permission).
    pub human_agent: bool,
}

/// Why a Meta send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// Meta refused because the customer's last message is more than 24
    /// hours old. Final: only a new message from the customer reopens it.
    #[error("outside the 24-hour messaging window: {0}")]
    WindowClosed(String),
    #[error(transparent)]
    Send(#[from] SendError),
}

impl MetaError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, MetaError::Send(e) if e.is_retryable())
    }

    /// The error in the classes every channel shares (a closed window is final).
    pub fn into_send_error(self) -> SendError {
        match self {
            MetaError::WindowClosed(m) => {
                SendError::Permanent(format!("outside the 24-hour messaging window: {m}"))
            }
            MetaError::Send(e) => e,
        }
    }
}

/// Whether Meta refused a send for being outside the messaging window:
/// subcode 2018278 (Messenger) or 2534022 (Instagram), or code 10 ("no
/// permission") whose message says so. Code 10 alone also means other
/// missing permissions, which are not a window problem.
fn is_window_error(code: Option<i64>, subcode: Option<i64>, message: &str) -> bool {
    matches!(subcode, Some(2018278) | Some(2534022))
        || (code == Some(10)
            && message
                .to_ascii_lowercase()
                .contains("outside of allowed window"))
}

/// Codes that mean "slow down" or "temporarily unavailable".
fn is_transient_code(code: Option<i64>) -> bool {
    matches!(
        code,
        Some(1) | Some(2) | Some(4) | Some(17) | Some(32) | Some(613)
    )
}

/// Maps a non-2xx Send API answer onto a retry class.
pub fn classify_error(status: u16, body: &str) -> MetaError {
    let json: Value = serde_json::from_str(body).unwrap_or_default();
    let err = json.get("error");
    let code = err.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let subcode = err
        .and_then(|e| e.get("error_subcode"))
        .and_then(Value::as_i64);
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(300)
        .collect::<String>();
    let detail = match (code, subcode) {
        (Some(c), Some(s)) => format!("Meta HTTP {status}, code {c}/{s}: {message}"),
        (Some(c), None) => format!("Meta HTTP {status}, code {c}: {message}"),
        _ => format!("Meta HTTP {status}"),
    };
    if (400..500).contains(&status) && is_window_error(code, subcode, &message) {
        return MetaError::WindowClosed(detail);
    }
    MetaError::Send(
        if status >= 500 || status == 429 || status == 408 || is_transient_code(code) {
            SendError::Transient(detail)
        } else {
            SendError::Permanent(detail)
        },
    )
}

/// reqwest errors → retry class: before the request left, safe to retry;
/// after, it may have been delivered, so never retried.
fn classify_reqwest(e: reqwest::Error) -> MetaError {
    MetaError::Send(if e.is_builder() {
        SendError::Permanent(format!("invalid request: {e}"))
    } else if e.is_connect() {
        SendError::Transient(format!("cannot connect to Meta: {e}"))
    } else if e.is_timeout() {
        SendError::Ambiguous(format!("no answer from Meta in time: {e}"))
    } else {
        SendError::Ambiguous(format!("connection to Meta failed after sending: {e}"))
    })
}

/// Sends replies through the Send API.
#[derive(Debug, Clone)]
pub struct MetaSender {
    cfg: MetaConfig,
    http: reqwest::Client,
}

impl MetaSender {
    pub fn new(cfg: MetaConfig) -> Result<MetaSender, String> {
        let http = reqwest::Client::builder()
            .connect_timeout((cfg.timeout / 2).max(Duration::from_millis(1)))
            .timeout(cfg.timeout)
            // The Send API never redirects; following one could carry the
            // page token somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(MetaSender { cfg, http })
    }

    fn url(&self) -> String {
        format!(
            "{}/{}/me/messages",
            self.cfg.base_url.trim_end_matches('/'),
            self.cfg.version.trim_matches('/')
        )
    }

    /// Sends one text reply; returns Meta's message id (`mid`), which later
    /// echoes, deliveries and reads refer to.
    pub fn send<'a>(&'a self, m: &'a MetaOutgoing) -> BoxFuture<'a, Result<String, MetaError>> {
        Box::pin(self.send_text(m))
    }

    async fn send_text(&self, m: &MetaOutgoing) -> Result<String, MetaError> {
        if m.recipient_id.trim().is_empty() {
            return Err(SendError::Permanent("no recipient id".into()).into());
        }
        if m.text.trim().is_empty() {
            return Err(SendError::Permanent("empty message".into()).into());
        }
        if m.text.chars().count() > MAX_TEXT_CHARS {
            return Err(SendError::Permanent(format!(
                "Meta takes at most {MAX_TEXT_CHARS} characters per message"
            ))
            .into());
        }
        let body = if m.human_agent {
            serde_json::json!({
                "recipient": {"id": m.recipient_id},
                "messaging_type": "MESSAGE_TAG",
                "tag": "HUMAN_AGENT",
                "message": {"text": m.text},
            })
        } else {
            serde_json::json!({
                "recipient": {"id": m.recipient_id},
                "messaging_type": "RESPONSE",
                "message": {"text": m.text},
            })
        };
        let res = self
            .http
            .post(self.url())
            // In a header rather than `?access_token=`, so the token is not
            // part of a URL that proxies and error messages may log.
            .bearer_auth(&self.cfg.page_access_token)
            .json(&body)
            .send()
            .await
            .map_err(classify_reqwest)?;
        let status = res.status();
        if status.is_success() {
            // Accepted. A body we cannot read does not undo that; with no id
            // the echo will still arrive and name it.
            let json: Value = res.json().await.unwrap_or_default();
            return Ok(json
                .get("message_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string());
        }
        let text = res.text().await.unwrap_or_default();
        Err(classify_error(status.as_u16(), &text))
    }
}

// ---------------------------------------------------------------- fake

/// A local fake of the Send API for tests here and in other crates: axum on
/// 127.0.0.1, records every accepted message before answering, and can be
/// switched into failure modes.
#[cfg(feature = "fake")]
pub mod fake {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::MetaConfig;

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How the fake answers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum MetaFail {
        None,
        Status500,
        /// Code 4: application request limit reached.
        RateLimited,
        /// Code 10 / 2018278: outside the messaging window.
        WindowClosed,
        /// Read the request, never answer.
        Hang,
    }

    /// A message the fake accepted.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FakeMetaMessage {
        pub version: String,
        pub recipient_id: String,
        pub text: String,
        pub messaging_type: String,
        /// The message tag (`HUMAN_AGENT`), empty when none was sent.
        pub tag: String,
        pub mid: String,
    }

    struct MetaState {
        token: String,
        mode: Mutex<MetaFail>,
        messages: Mutex<Vec<FakeMetaMessage>>,
        attempts: AtomicUsize,
        next_id: AtomicU64,
    }

    /// A fake Send API. Dropping it stops the server.
    pub struct FakeMeta {
        addr: SocketAddr,
        pub page_access_token: String,
        state: Arc<MetaState>,
        task: JoinHandle<()>,
    }

    impl FakeMeta {
        pub async fn start() -> FakeMeta {
            let state = Arc::new(MetaState {
                token: "fake-page-access-token".to_string(),
                mode: Mutex::new(MetaFail::None),
                messages: Mutex::new(Vec::new()),
                attempts: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
            });
            let app = Router::new()
                .route("/{version}/me/messages", post(send))
                .with_state(state.clone());
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind fake Meta");
            let addr = listener.local_addr().expect("fake Meta address");
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            FakeMeta {
                addr,
                page_access_token: state.token.clone(),
                state,
                task,
            }
        }

        pub fn base_url(&self) -> String {
            format!("http://{}", self.addr)
        }

        pub fn config(&self, timeout: Duration) -> MetaConfig {
            MetaConfig {
                base_url: self.base_url(),
                version: MetaConfig::DEFAULT_VERSION.to_string(),
                page_access_token: self.page_access_token.clone(),
                timeout,
            }
        }

        pub fn set_failing(&self, mode: MetaFail) {
            *lock(&self.state.mode) = mode;
        }

        pub fn messages(&self) -> Vec<FakeMetaMessage> {
            lock(&self.state.messages).clone()
        }

        pub fn attempts(&self) -> usize {
            self.state.attempts.load(Ordering::SeqCst)
        }
    }

    impl Drop for FakeMeta {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn graph_error(status: StatusCode, code: i64, subcode: Option<i64>, message: &str) -> Response {
        let mut err = serde_json::json!({
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "Fake0000",
        });
        if let Some(s) = subcode {
            err["error_subcode"] = s.into();
        }
        (status, Json(serde_json::json!({ "error": err }))).into_response()
    }

    async fn send(
        State(st): State<Arc<MetaState>>,
        Path(version): Path<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        st.attempts.fetch_add(1, Ordering::SeqCst);
        let mode = *lock(&st.mode);
        match mode {
            MetaFail::None => {}
            MetaFail::Status500 => {
                return graph_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    2,
                    None,
                    "An unexpected error has occurred.",
                )
            }
            MetaFail::RateLimited => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    4,
                    None,
                    "Application request limit reached",
                )
            }
            MetaFail::WindowClosed => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    10,
                    Some(2018278),
                    "This message is sent outside of allowed window.",
                )
            }
            MetaFail::Hang => std::future::pending::<()>().await,
        }
        let auth_ok = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", st.token));
        if !auth_ok {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                190,
                None,
                "Invalid OAuth access token.",
            );
        }
        let json: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return graph_error(StatusCode::BAD_REQUEST, 100, None, "Invalid JSON"),
        };
        let recipient = json
            .pointer("/recipient/id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let text = json
            .pointer("/message/text")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        if recipient.is_empty() || text.is_empty() {
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                None,
                "(#100) The parameter recipient and message are required",
            );
        }
        let n = st.next_id.fetch_add(1, Ordering::SeqCst);
        let mid = format!("m_fake{n:020}");
        lock(&st.messages).push(FakeMetaMessage {
            version,
            recipient_id: recipient.clone(),
            text,
            messaging_type: json
                .get("messaging_type")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            tag: json
                .get("tag")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            mid: mid.clone(),
        });
        Json(serde_json::json!({ "recipient_id": recipient, "message_id": mid })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{FakeMeta, MetaFail};
    use super::*;

    const SECRET: &str = "app-secret-123";

    #[test]
    fn signature_is_checked_over_the_raw_bytes() {
        let body = br#"{"object":"page","entry":[{"id":"1","text":"caf\u00e9"}]}"#;
        let good = signature(SECRET, body);
        assert!(good.starts_with("sha256="));
        assert_eq!(good.len(), 7 + 64);
        assert!(verify_signature(SECRET, body, &good));
        assert!(verify_signature(SECRET, body, &format!("  {good} ")));
        // The same JSON re-serialized is different bytes.
        let reserialized =
            serde_json::to_vec(&serde_json::from_slice::<Value>(body).unwrap()).unwrap();
        assert!(!verify_signature(SECRET, &reserialized, &good));
        assert!(!verify_signature("other", body, &good));
        assert!(!verify_signature(SECRET, body, ""));
        assert!(!verify_signature(
            SECRET,
            body,
            &good.replace("sha256=", "sha1=")
        ));
        assert!(!verify_signature(SECRET, body, &good[..good.len() - 2]));
        assert!(!verify_signature(SECRET, body, "sha256=zz"));
        assert!(!verify_signature("", body, &signature("", body)));
        let upper = format!("sha256={}", good[7..].to_ascii_uppercase());
        assert!(verify_signature(SECRET, body, &upper));
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn handshake_echoes_the_challenge_only_for_our_token() {
        let ok = q(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "tok"),
            ("hub.challenge", "1158201444"),
        ]);
        assert_eq!(verify_subscription(&ok, "tok"), Ok("1158201444".into()));
        assert_eq!(
            verify_subscription(&ok, "other"),
            Err(HandshakeError::Token)
        );
        assert_eq!(verify_subscription(&ok, ""), Err(HandshakeError::Token));
        let bad_mode = q(&[
            ("hub.mode", "unsubscribe"),
            ("hub.verify_token", "tok"),
            ("hub.challenge", "1"),
        ]);
        assert_eq!(
            verify_subscription(&bad_mode, "tok"),
            Err(HandshakeError::Mode)
        );
        let no_challenge = q(&[("hub.mode", "subscribe"), ("hub.verify_token", "tok")]);
        assert_eq!(
            verify_subscription(&no_challenge, "tok"),
            Err(HandshakeError::Challenge)
        );
    }

    #[test]
    fn parses_an_instagram_message_with_an_attachment() {
        let body = br#"{
          "object": "instagram",
          "entry": [{
            "time": 1733580000000,
            "id": "17841400000000001",
            "messaging": [{
              "sender": {"id": "6402771539838017"},
              "recipient": {"id": "17841400000000001"},
              "timestamp": 1733579999123,
              "message": {
                "mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAw",
                "text": "Is the blue one in stock?",
                "attachments": [{"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"}}]
              }
            }]
          }]
        }"#;
        let evs = parse_delivery(body).unwrap();
        assert_eq!(evs.len(), 1);
        let e = &evs[0];
        assert_eq!(e.platform, Platform::Instagram);
        assert_eq!(e.account_id, "17841400000000001");
        assert_eq!(e.customer_id(), "6402771539838017");
        assert_eq!(e.timestamp, 1733579999123);
        match &e.kind {
            EventKind::Message {
                mid,
                text,
                attachments,
                is_echo,
                reply_to,
            } => {
                assert!(mid.starts_with("aWdf"));
                assert_eq!(text.as_deref(), Some("Is the blue one in stock?"));
                assert_eq!(attachments.len(), 1);
                assert_eq!(attachments[0].kind, "image");
                assert!(attachments[0]
                    .url
                    .as_deref()
                    .unwrap()
                    .starts_with("https://"));
                assert!(!is_echo);
                assert!(reply_to.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_messenger_batches_echoes_reads_and_deliveries() {
        let body = br#"{
          "object": "page",
          "entry": [
            {"id": "104000000000001", "time": 1733580000000, "messaging": [
              {"sender": {"id": "7012345678901234"}, "recipient": {"id": "104000000000001"},
               "timestamp": 1733580000001, "message": {"mid": "m_in1", "text": "Hi!", "reply_to": {"mid": "m_prev"}}},
              {"sender": {"id": "104000000000001"}, "recipient": {"id": "7012345678901234"},
               "timestamp": 1733580000002, "message": {"mid": "m_out1", "text": "Hello", "is_echo": true, "app_id": 1517776481860111}},
              {"sender": {"id": "7012345678901234"}, "recipient": {"id": "104000000000001"},
               "timestamp": 1733580000003, "delivery": {"mids": ["m_out1"], "watermark": 1733580000002}},
              {"sender": {"id": "7012345678901234"}, "recipient": {"id": "104000000000001"},
               "timestamp": 1733580000004, "read": {"watermark": 1733580000002}},
              {"sender": {"id": "7012345678901234"}, "recipient": {"id": "104000000000001"},
               "timestamp": 1733580000005, "postback": {"title": "Start", "payload": "GET_STARTED"}}
            ]},
            {"id": "104000000000001", "time": 1733580000100, "messaging": [
              {"sender": {"id": "7099999999999999"}, "recipient": {"id": "104000000000001"},
               "timestamp": 1733580000101, "message": {"mid": "m_in2", "attachments": [{"type": "file", "payload": {"url": "https://cdn.fbsbx.com/f.pdf"}}]}}
            ]}
          ]
        }"#;
        let evs = parse_delivery(body).unwrap();
        assert_eq!(evs.len(), 5, "the postback is skipped");
        assert!(evs.iter().all(|e| e.platform == Platform::Messenger));
        assert!(
            matches!(&evs[0].kind, EventKind::Message { reply_to: Some(r), is_echo: false, .. } if r == "m_prev")
        );
        assert!(matches!(
            &evs[1].kind,
            EventKind::Message { is_echo: true, .. }
        ));
        assert_eq!(evs[1].customer_id(), "7012345678901234");
        assert_eq!(
            evs[2].kind,
            EventKind::Delivery {
                mids: vec!["m_out1".into()],
                watermark: Some(1733580000002)
            }
        );
        assert_eq!(
            evs[3].kind,
            EventKind::Read {
                watermark: Some(1733580000002),
                mid: None
            }
        );
        assert!(
            matches!(&evs[4].kind, EventKind::Message { text: None, attachments, .. } if attachments.len() == 1)
        );
        assert_eq!(evs[4].customer_id(), "7099999999999999");
    }

    #[test]
    fn parses_instagram_changes_and_reads_by_mid() {
        let body = br#"{"object":"instagram","entry":[{"id":"178","time":1733580000,"changes":[
            {"field":"messages","value":{"sender":{"id":"55"},"recipient":{"id":"178"},"timestamp":"1733580000","message":{"mid":"m1","text":"hey"}}},
            {"field":"comments","value":{"id":"c1"}}
          ],"messaging":[{"sender":{"id":"55"},"recipient":{"id":"178"},"timestamp":1733580001000,"read":{"mid":"m_out"}}]}]}"#;
        let evs = parse_delivery(body).unwrap();
        assert_eq!(evs.len(), 2);
        // The read (under messaging) comes first, then the change.
        assert_eq!(
            evs[0].kind,
            EventKind::Read {
                watermark: None,
                mid: Some("m_out".into())
            }
        );
        assert_eq!(evs[1].timestamp, 1_733_580_000_000, "seconds become ms");
    }

    #[test]
    fn refuses_what_it_cannot_deduplicate_or_understand() {
        assert!(matches!(
            parse_delivery(b"not json"),
            Err(ParseError::Malformed { .. })
        ));
        assert_eq!(
            parse_delivery(br#"{"entry":[]}"#),
            Err(ParseError::Missing("object"))
        );
        assert!(matches!(
            parse_delivery(br#"{"object":"whatsapp_business_account","entry":[]}"#),
            Err(ParseError::Invalid {
                field: "object",
                ..
            })
        ));
        assert_eq!(
            parse_delivery(br#"{"object":"page"}"#),
            Err(ParseError::Missing("entry"))
        );
        assert_eq!(
            parse_delivery(
                br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1,"message":{"text":"no mid"}}]}]}"#
            ),
            Err(ParseError::Missing("message.mid"))
        );
        assert_eq!(
            parse_delivery(
                br#"{"object":"page","entry":[{"id":"1","messaging":[{"recipient":{"id":"1"},"timestamp":1,"message":{"mid":"m"}}]}]}"#
            ),
            Err(ParseError::Missing("sender.id"))
        );
        assert_eq!(
            parse_delivery(br#"{"object":"page","entry":[]}"#),
            Ok(vec![])
        );
    }

    #[test]
    fn errors_are_classified() {
        let window = r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"A"}}"#;
        let e = classify_error(400, window);
        assert!(matches!(e, MetaError::WindowClosed(_)), "{e:?}");
        assert!(!e.is_retryable());
        assert!(matches!(e.into_send_error(), SendError::Permanent(m) if m.contains("24-hour")));
        let ig_window =
            r#"{"error":{"message":"outside window","code":10,"error_subcode":2534022}}"#;
        assert!(matches!(
            classify_error(400, ig_window),
            MetaError::WindowClosed(_)
        ));
        let by_text = r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","code":10}}"#;
        assert!(matches!(
            classify_error(400, by_text),
            MetaError::WindowClosed(_)
        ));
        let other_10 =
            r#"{"error":{"message":"(#10) Application does not have permission","code":10}}"#;
        assert!(matches!(
            classify_error(403, other_10),
            MetaError::Send(SendError::Permanent(_))
        ));
        let rate = r#"{"error":{"message":"Application request limit reached","code":4}}"#;
        assert!(classify_error(400, rate).is_retryable());
        let token = r#"{"error":{"message":"Invalid OAuth access token.","code":190}}"#;
        assert!(matches!(
            classify_error(401, token),
            MetaError::Send(SendError::Permanent(_))
        ));
        let no_user =
            r#"{"error":{"message":"No matching user found","code":100,"error_subcode":2018001}}"#;
        assert!(!classify_error(400, no_user).is_retryable());
        assert!(classify_error(500, "").is_retryable());
        assert!(classify_error(503, "<html>").is_retryable());
        assert!(classify_error(429, "").is_retryable());
    }

    fn outgoing(text: &str) -> MetaOutgoing {
        MetaOutgoing {
            recipient_id: "7012345678901234".into(),
            text: text.into(),
            human_agent: false,
        }
    }

    #[tokio::test]
    async fn sends_through_the_send_api_with_the_page_token() {
        let fake = FakeMeta::start().await;
        let sender = MetaSender::new(fake.config(Duration::from_secs(5))).unwrap();
        let mid = sender
            .send(&outgoing("Thanks, it ships today"))
            .await
            .unwrap();
        assert!(mid.starts_with("m_fake"));
        let sent = fake.messages();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].recipient_id, "7012345678901234");
        assert_eq!(sent[0].text, "Thanks, it ships today");
        assert_eq!(sent[0].messaging_type, "RESPONSE");
        assert_eq!(sent[0].tag, "");
        assert_eq!(sent[0].version, MetaConfig::DEFAULT_VERSION);
        assert_eq!(sent[0].mid, mid);

        // A person's reply past the 24 hours carries the human agent tag.
        sender
            .send(&MetaOutgoing {
                human_agent: true,
                ..outgoing("Sorry for the wait")
            })
            .await
            .unwrap();
        let sent = fake.messages();
        assert_eq!(sent[1].messaging_type, "MESSAGE_TAG");
        assert_eq!(sent[1].tag, "HUMAN_AGENT");
    }

    #[tokio::test]
    async fn failures_are_classified_end_to_end() {
        let fake = FakeMeta::start().await;
        let sender = MetaSender::new(fake.config(Duration::from_millis(500))).unwrap();
        fake.set_failing(MetaFail::WindowClosed);
        let e = sender.send(&outgoing("hi")).await.unwrap_err();
        assert!(matches!(e, MetaError::WindowClosed(_)), "{e:?}");
        fake.set_failing(MetaFail::Status500);
        assert!(sender
            .send(&outgoing("hi"))
            .await
            .unwrap_err()
            .is_retryable());
        fake.set_failing(MetaFail::RateLimited);
        assert!(sender
            .send(&outgoing("hi"))
            .await
            .unwrap_err()
            .is_retryable());
        fake.set_failing(MetaFail::Hang);
        let e = sender.send(&outgoing("hi")).await.unwrap_err();
        assert!(
            matches!(e, MetaError::Send(SendError::Ambiguous(_))),
            "{e:?}"
        );
        assert_eq!(fake.messages().len(), 0);
        assert_eq!(fake.attempts(), 4);

        let mut cfg = fake.config(Duration::from_secs(1));
        cfg.page_access_token = "wrong".into();
        fake.set_failing(MetaFail::None);
        let e = MetaSender::new(cfg)
            .unwrap()
            .send(&outgoing("hi"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, MetaError::Send(SendError::Permanent(_))),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn refuses_before_calling_what_meta_would_refuse() {
        let fake = FakeMeta::start().await;
        let sender = MetaSender::new(fake.config(Duration::from_secs(1))).unwrap();
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert!(!sender
            .send(&outgoing(&long))
            .await
            .unwrap_err()
            .is_retryable());
        assert!(!sender
            .send(&outgoing("  "))
            .await
            .unwrap_err()
            .is_retryable());
        assert_eq!(fake.attempts(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_meta_is_safe_to_retry() {
        // A port nothing listens on: bind, note the port, drop.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sender = MetaSender::new(MetaConfig {
            base_url: format!("http://127.0.0.1:{port}"),
            version: "v21.0".into(),
            page_access_token: "t".into(),
            timeout: Duration::from_secs(2),
        })
        .unwrap();
        assert!(sender
            .send(&outgoing("hi"))
            .await
            .unwrap_err()
            .is_retryable());
    }

    #[test]
    fn the_token_never_reaches_debug_output() {
        let cfg = MetaConfig {
            base_url: "x".into(),
            version: "v1".into(),
            page_access_token: "SECRET-TOKEN".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{cfg:?}").contains("SECRET-TOKEN"));
    }
}
