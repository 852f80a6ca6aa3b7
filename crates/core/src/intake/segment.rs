//! The Segment-spec tracking API, so any Segment or
//! RudderStack SDK can feed BOS: the Basic write key, the size limits, and
//! the whole spec's calls — `identify`, `track`, `page`, `screen`, `group`,
//! `alias` — alone or in a `batch`, parsed from raw bytes into [`Message`]s
//! with their identity (userId / anonymousId), dedupe key, resolved
//! timestamp, campaign and ad click.
//!
//! Decisions worth knowing:
//! - **messageId** is the dedupe key. Every official SDK sets one; a caller
//!   that posts by hand may not. Then the key is derived: `derived:` plus the
//!   SHA-256 of the message with `sentAt`, `receivedAt` and `writeKey` removed
//!   (those change between retries of the same event), serialized with sorted
//!   keys. So a retried message dedupes, and the prefix keeps derived keys
//!   from ever equalling a sender's own id.
//! - **Timestamps**: `timestamp` if given; else `receivedAt − (sentAt −
//!   originalTimestamp)`, which corrects the device's clock skew; else
//!   `originalTimestamp`; else `receivedAt` (passed in by the caller).
//! - **Batches** fail as a whole only for the request's own faults (too large,
//!   not JSON, no `batch` array). A bad message inside is reported on its own,
//!   so one malformed event does not throw away the 99 good ones beside it.
//! - A call type outside the spec is [`Error::UnsupportedType`]: in a batch
//!   it is reported by index and counted by type (see [`Batch::unsupported`]),
//!   never dropped without a word.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::parse_rfc3339_millis;
use crate::Millis;

/// Segment's per-event limit.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Segment's per-request limit for `/v1/batch`.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the event is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes (32 KB) per event")]
    EventTooLarge { size: usize },
    #[error(
        "the batch is {size} bytes; the limit is {MAX_BATCH_BYTES} bytes (500 KB) per request"
    )]
    BatchTooLarge { size: usize },
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("a message must be a JSON object")]
    NotAnObject,
    #[error("a batch is {{\"batch\": [messages]}}")]
    NoBatchArray,
    #[error("the message has no \"type\"")]
    MissingType,
    #[error(
        "unsupported call type {0:?}; BOS takes identify, track, page, screen, group and alias"
    )]
    UnsupportedType(String),
    #[error("the message says type {body:?} but was posted to /v1/{endpoint}")]
    TypeMismatch {
        endpoint: &'static str,
        body: String,
    },
    #[error("a message needs a userId or an anonymousId")]
    MissingIdentity,
    #[error("a track call needs an \"event\" name")]
    MissingEvent,
    #[error("an alias call needs a \"previousId\"")]
    MissingPreviousId,
    #[error("a group call needs a \"groupId\"")]
    MissingGroupId,
    #[error("{0} has the wrong JSON type")]
    BadField(&'static str),
    #[error("{0} is not an ISO 8601 / RFC 3339 timestamp")]
    BadTimestamp(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteKeyError {
    #[error("the Authorization header is not \"Basic <base64>\"")]
    NotBasic,
    #[error("the Basic credentials are not base64 of \"writeKey:\"")]
    NotBase64,
    #[error("the write key is empty")]
    Empty,
}

/// The write key from `Authorization: Basic base64(writeKey + ":")`. The
/// password part is empty in every SDK and is ignored; a value without a
/// colon is taken whole, as some hand-written clients send it.
pub fn write_key_from_basic(header: &str) -> Result<String, WriteKeyError> {
    let (scheme, creds) = header
        .trim()
        .split_once(' ')
        .ok_or(WriteKeyError::NotBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(WriteKeyError::NotBasic);
    }
    let creds = creds.trim();
    let raw = STANDARD
        .decode(creds)
        .or_else(|_| STANDARD_NO_PAD.decode(creds))
        .map_err(|_| WriteKeyError::NotBase64)?;
    let text = String::from_utf8(raw).map_err(|_| WriteKeyError::NotBase64)?;
    let key = text.split_once(':').map_or(text.as_str(), |(k, _)| k);
    if key.is_empty() {
        return Err(WriteKeyError::Empty);
    }
    Ok(key.to_owned())
}

/// The single-call endpoints (`/v1/<type>`) and the `type` field values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallType {
    Identify,
    Track,
    Page,
    /// A mobile app's page view.
    Screen,
    /// The user belongs to a company or account (`groupId`).
    Group,
    Alias,
}

impl CallType {
    /// Every call of the spec, in the order the docs list them.
    pub const ALL: [CallType; 6] = [
        CallType::Identify,
        CallType::Track,
        CallType::Page,
        CallType::Screen,
        CallType::Group,
        CallType::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Identify => "identify",
            CallType::Track => "track",
            CallType::Page => "page",
            CallType::Screen => "screen",
            CallType::Group => "group",
            CallType::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Result<CallType, Error> {
        CallType::ALL
            .into_iter()
            .find(|t| s.eq_ignore_ascii_case(t.as_str()))
            .ok_or_else(|| Error::UnsupportedType(s.chars().take(64).collect()))
    }
}

/// What the call says, per type.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Identify {
        traits: Map<String, Value>,
    },
    Track {
        event: String,
        properties: Map<String, Value>,
    },
    Page {
        name: Option<String>,
        category: Option<String>,
        properties: Map<String, Value>,
    },
    /// The same fields as a page; `name` is the screen's.
    Screen {
        name: Option<String>,
        category: Option<String>,
        properties: Map<String, Value>,
    },
    Group {
        group_id: String,
        /// The group's own traits (its name, plan, employees…), not the user's.
        traits: Map<String, Value>,
    },
    Alias {
        previous_id: String,
    },
}

impl Call {
    pub fn call_type(&self) -> CallType {
        match self {
            Call::Identify { .. } => CallType::Identify,
            Call::Track { .. } => CallType::Track,
            Call::Page { .. } => CallType::Page,
            Call::Screen { .. } => CallType::Screen,
            Call::Group { .. } => CallType::Group,
            Call::Alias { .. } => CallType::Alias,
        }
    }
}

/// `context.campaign` (the UTM parameters), or the `utm_*` query parameters
/// of the page URL when the SDK did not fill it in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Campaign {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub name: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
}

impl Campaign {
    fn is_empty(&self) -> bool {
        self == &Campaign::default()
    }
}

/// The ad network a click id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdNetwork {
    /// `gclid`
    Google,
    /// `fbclid`
    Meta,
    /// `ttclid`
    TikTok,
    /// `msclkid`
    Microsoft,
}

impl AdNetwork {
    pub fn param(self) -> &'static str {
        match self {
            AdNetwork::Google => "gclid",
            AdNetwork::Meta => "fbclid",
            AdNetwork::TikTok => "ttclid",
            AdNetwork::Microsoft => "msclkid",
        }
    }

    fn from_param(p: &str) -> Option<AdNetwork> {
        [
            AdNetwork::Google,
            AdNetwork::Meta,
            AdNetwork::TikTok,
            AdNetwork::Microsoft,
        ]
        .into_iter()
        .find(|n| n.param() == p)
    }
}

/// A paid-ad click id found on the landing URL: the first one in the query
/// string of `context.page.url`, else of `context.page.search`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdClick {
    pub network: AdNetwork,
    pub click_id: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub page_url: Option<String>,
    pub page_path: Option<String>,
    pub page_referrer: Option<String>,
    pub page_search: Option<String>,
    pub campaign: Option<Campaign>,
    pub ad_click: Option<AdClick>,
    /// `context.traits`: what the SDK knows about the user on non-identify calls.
    pub traits: Map<String, Value>,
    /// `context.timezone`: the browser's IANA zone, e.g. `Europe/Paris`.
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub call: Call,
    /// The dedupe key: the sender's `messageId`, or `derived:<sha256>`.
    pub message_id: String,
    pub message_id_derived: bool,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// When it happened, resolved as the module docs say.
    pub timestamp: Millis,
    pub context: Context,
}

/// A single-call body (`/v1/identify` etc.).
#[derive(Debug, Clone, PartialEq)]
pub struct Single {
    /// The body's `writeKey`, for clients that send no Authorization header.
    pub write_key: Option<String>,
    pub message: Message,
}

/// A `/v1/batch` body: one result per message, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub write_key: Option<String>,
    pub messages: Vec<Result<Message, Error>>,
}

impl Batch {
    /// The call types outside the spec, with how many messages had each
    /// (sorted by type): what a batch's answer reports beside `rejected`.
    pub fn unsupported(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for m in &self.messages {
            if let Err(Error::UnsupportedType(t)) = m {
                *out.entry(t.clone()).or_insert(0) += 1;
            }
        }
        out
    }
}

/// Parses a body posted to `/v1/<endpoint>`. Its `type`, when present, must
/// agree with the endpoint.
pub fn parse_call(endpoint: CallType, body: &[u8], received_at: Millis) -> Result<Single, Error> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(Error::EventTooLarge { size: body.len() });
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| Error::Json(e.to_string()))?;
    let Value::Object(obj) = v else {
        return Err(Error::NotAnObject);
    };
    if let Some(t) = obj.get("type") {
        let t = t.as_str().ok_or(Error::BadField("type"))?;
        if !t.eq_ignore_ascii_case(endpoint.as_str()) {
            return Err(Error::TypeMismatch {
                endpoint: endpoint.as_str(),
                body: t.chars().take(64).collect(),
            });
        }
    }
    let write_key = opt_string(&obj, "writeKey")?;
    let message = message(endpoint, obj, &Shared::default(), received_at)?;
    Ok(Single { write_key, message })
}

/// Parses a `/v1/batch` body. The top-level `context` is merged under each
/// message's own (the message wins key by key), and the top-level `sentAt`
/// applies to messages without one.
pub fn parse_batch(body: &[u8], received_at: Millis) -> Result<Batch, Error> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(Error::BatchTooLarge { size: body.len() });
    }
    #[derive(serde::Deserialize)]
    struct Wire<'a> {
        #[serde(borrow)]
        batch: Option<Vec<&'a RawValue>>,
        context: Option<Value>,
        #[serde(rename = "sentAt")]
        sent_at: Option<Value>,
        #[serde(rename = "writeKey")]
        write_key: Option<Value>,
    }
    let w: Wire<'_> = serde_json::from_slice(body).map_err(|e| Error::Json(e.to_string()))?;
    let shared = Shared {
        context: match w.context {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(Error::BadField("context")),
        },
        sent_at: match w.sent_at {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(parse_rfc3339_millis(&s).ok_or(Error::BadTimestamp("sentAt"))?)
            }
            Some(_) => return Err(Error::BadField("sentAt")),
        },
    };
    let write_key = match w.write_key {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(Error::BadField("writeKey")),
    };
    let raws = w.batch.ok_or(Error::NoBatchArray)?;
    let messages = raws
        .into_iter()
        .map(|raw| batch_message(raw, &shared, received_at))
        .collect();
    Ok(Batch {
        write_key,
        messages,
    })
}

fn batch_message(raw: &RawValue, shared: &Shared, received_at: Millis) -> Result<Message, Error> {
    let size = raw.get().len();
    if size > MAX_EVENT_BYTES {
        return Err(Error::EventTooLarge { size });
    }
    let Value::Object(obj) =
        serde_json::from_str::<Value>(raw.get()).map_err(|e| Error::Json(e.to_string()))?
    else {
        return Err(Error::NotAnObject);
    };
    let t = match obj.get("type") {
        None | Some(Value::Null) => return Err(Error::MissingType),
        Some(Value::String(s)) => CallType::parse(s)?,
        Some(_) => return Err(Error::BadField("type")),
    };
    message(t, obj, shared, received_at)
}

/// What a batch gives all its messages.
#[derive(Default)]
struct Shared {
    context: Map<String, Value>,
    sent_at: Option<Millis>,
}

fn message(
    t: CallType,
    obj: Map<String, Value>,
    shared: &Shared,
    received_at: Millis,
) -> Result<Message, Error> {
    let user_id = opt_id(&obj, "userId")?;
    let anonymous_id = opt_id(&obj, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Error::MissingIdentity);
    }
    let call = match t {
        CallType::Identify => Call::Identify {
            traits: opt_object(&obj, "traits")?,
        },
        CallType::Track => Call::Track {
            event: opt_string(&obj, "event")?
                .filter(|e| !e.is_empty())
                .ok_or(Error::MissingEvent)?,
            properties: opt_object(&obj, "properties")?,
        },
        CallType::Page => Call::Page {
            name: opt_string(&obj, "name")?,
            category: opt_string(&obj, "category")?,
            properties: opt_object(&obj, "properties")?,
        },
        CallType::Screen => Call::Screen {
            name: opt_string(&obj, "name")?,
            category: opt_string(&obj, "category")?,
            properties: opt_object(&obj, "properties")?,
        },
        CallType::Group => Call::Group {
            group_id: opt_id(&obj, "groupId")?.ok_or(Error::MissingGroupId)?,
            traits: opt_object(&obj, "traits")?,
        },
        CallType::Alias => Call::Alias {
            previous_id: opt_id(&obj, "previousId")?.ok_or(Error::MissingPreviousId)?,
        },
    };
    let (message_id, message_id_derived) = match opt_id(&obj, "messageId")? {
        Some(id) => (id, false),
        None => (derived_id(&obj), true),
    };
    let timestamp = resolve_timestamp(&obj, shared.sent_at, received_at)?;
    let mut ctx = shared.context.clone();
    ctx.extend(opt_object(&obj, "context")?);
    Ok(Message {
        call,
        message_id,
        message_id_derived,
        user_id,
        anonymous_id,
        timestamp,
        context: context(&ctx)?,
    })
}

fn derived_id(obj: &Map<String, Value>) -> String {
    let mut m = obj.clone();
    for volatile in ["sentAt", "receivedAt", "writeKey"] {
        m.remove(volatile);
    }
    // Sorted keys at every level, so the key depends on neither the sender's
    // key order nor whitespace (and not on whether some crate in the build
    // turned on serde_json's `preserve_order`).
    let bytes = serde_json::to_vec(&sorted(Value::Object(m))).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut out = String::with_capacity(8 + 64);
    out.push_str("derived:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn resolve_timestamp(
    obj: &Map<String, Value>,
    batch_sent_at: Option<Millis>,
    received_at: Millis,
) -> Result<Millis, Error> {
    let get = |k: &'static str| -> Result<Option<Millis>, Error> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_rfc3339_millis(s)
                .map(Some)
                .ok_or(Error::BadTimestamp(k)),
            Some(_) => Err(Error::BadField(k)),
        }
    };
    if let Some(t) = get("timestamp")? {
        return Ok(t);
    }
    let original = get("originalTimestamp")?;
    let sent_at = get("sentAt")?.or(batch_sent_at);
    Ok(match (original, sent_at) {
        (Some(o), Some(s)) => received_at.saturating_sub(s.saturating_sub(o)),
        (Some(o), None) => o,
        _ => received_at,
    })
}

fn context(ctx: &Map<String, Value>) -> Result<Context, Error> {
    let page = opt_object(ctx, "page")?;
    let page_url = opt_string(&page, "url")?;
    let page_search = opt_string(&page, "search")?;
    let queries: Vec<Vec<(String, String)>> = [page_url.as_deref(), page_search.as_deref()]
        .into_iter()
        .flatten()
        .map(query_pairs)
        .collect();

    let c = opt_object(ctx, "campaign")?;
    let mut campaign = Campaign {
        source: opt_string(&c, "source")?,
        medium: opt_string(&c, "medium")?,
        name: opt_string(&c, "name")?,
        term: opt_string(&c, "term")?,
        content: opt_string(&c, "content")?,
    };
    if campaign.is_empty() {
        let utm = |k: &str| {
            queries
                .iter()
                .flatten()
                .find(|(n, v)| n == k && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        campaign = Campaign {
            source: utm("utm_source"),
            medium: utm("utm_medium"),
            name: utm("utm_campaign"),
            term: utm("utm_term"),
            content: utm("utm_content"),
        };
    }
    let ad_click = queries.iter().flatten().find_map(|(n, v)| {
        let network = AdNetwork::from_param(n)?;
        (!v.is_empty()).then(|| AdClick {
            network,
            click_id: v.clone(),
        })
    });
    Ok(Context {
        ip: opt_string(ctx, "ip")?,
        user_agent: opt_string(ctx, "userAgent")?,
        page_path: opt_string(&page, "path")?,
        page_referrer: opt_string(&page, "referrer")?,
        page_url,
        page_search,
        campaign: (!campaign.is_empty()).then_some(campaign),
        ad_click,
        traits: opt_object(ctx, "traits")?,
        timezone: opt_string(ctx, "timezone")?,
    })
}

/// The decoded `name=value` pairs of a URL's query string (after `?`, before
/// `#`), or of a bare `?a=b` search string.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let Some((_, rest)) = url.split_once('?') else {
        return Vec::new();
    };
    let query = rest.split_once('#').map_or(rest, |(q, _)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n), percent_decode(v))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding; a malformed escape is kept
/// as written rather than refused (it is a landing URL, not a credential).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would take "+1".
                let hex = b
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn opt_string(obj: &Map<String, Value>, k: &'static str) -> Result<Option<String>, Error> {
    match obj.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
        Some(_) => Err(Error::BadField(k)),
    }
}

/// Ids are strings in the spec, but some SDKs send numeric user ids.
fn opt_id(obj: &Map<String, Value>, k: &'static str) -> Result<Option<String>, Error> {
    match obj.get(k) {
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        _ => opt_string(obj, k).map(|s| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())),
    }
}

fn opt_object(obj: &Map<String, Value>, k: &'static str) -> Result<Map<String, Value>, Error> {
    match obj.get(k) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(Error::BadField(k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RECEIVED: Millis = 1_709_651_600_000; // 2024-03-05T15:13:20Z

    const TRACK: &str = r#"{
      "type": "track",
      "event": "Checkout Started",
      "userId": "u_42",
      "anonymousId": "507f191e810c19729de860ea",
      "messageId": "ajs-next-1709651553000-4f1a",
      "timestamp": "2024-03-05T15:12:33.000Z",
      "sentAt": "2024-03-05T15:12:34.000Z",
      "properties": {"revenue": 43.18, "currency": "USD", "order_id": "1001"},
      "context": {
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0",
        "library": {"name": "analytics.js", "version": "next-1.64.0"},
        "campaign": {"source": "google", "medium": "cpc", "name": "spring_sale", "term": "tee", "content": "ad1"},
        "page": {
          "url": "https://shop.example.com/products/tee?utm_source=google&gclid=Cj0KCQiA%2Bxyz&x=1#top",
          "path": "/products/tee", "referrer": "https://www.google.com/", "search": "?utm_source=google&gclid=Cj0KCQiA%2Bxyz&x=1"
        },
        "traits": {"email": "jane@example.com"}
      },
      "integrations": {}
    }"#;

    #[test]
    fn track_fixture() {
        let s = parse_call(CallType::Track, TRACK.as_bytes(), RECEIVED).expect("parses");
        let m = s.message;
        assert_eq!(s.write_key, None);
        let Call::Track { event, properties } = &m.call else {
            panic!("a track call");
        };
        assert_eq!(event, "Checkout Started");
        assert_eq!(properties.get("order_id"), Some(&Value::from("1001")));
        assert_eq!(m.message_id, "ajs-next-1709651553000-4f1a");
        assert!(!m.message_id_derived);
        assert_eq!(m.user_id.as_deref(), Some("u_42"));
        assert_eq!(m.anonymous_id.as_deref(), Some("507f191e810c19729de860ea"));
        assert_eq!(m.timestamp, 1_709_651_553_000);
        assert_eq!(m.context.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(m.context.page_path.as_deref(), Some("/products/tee"));
        assert_eq!(
            m.context.campaign,
            Some(Campaign {
                source: Some("google".into()),
                medium: Some("cpc".into()),
                name: Some("spring_sale".into()),
                term: Some("tee".into()),
                content: Some("ad1".into()),
            })
        );
        assert_eq!(
            m.context.ad_click,
            Some(AdClick {
                network: AdNetwork::Google,
                click_id: "Cj0KCQiA+xyz".into()
            })
        );
        assert_eq!(
            m.context.traits.get("email"),
            Some(&Value::from("jane@example.com"))
        );
    }

    #[test]
    fn identify_page_alias() {
        let id = br#"{"userId": 97980, "traits": {"email": "a@b.co", "firstName": "Ann"}, "messageId": "m1",
                      "writeKey": "wk_1"}"#;
        let s = parse_call(CallType::Identify, id, RECEIVED).expect("identify");
        assert_eq!(s.write_key.as_deref(), Some("wk_1"));
        assert_eq!(s.message.user_id.as_deref(), Some("97980"));
        assert_eq!(s.message.timestamp, RECEIVED);
        let Call::Identify { traits } = &s.message.call else {
            panic!("identify");
        };
        assert_eq!(traits.get("firstName"), Some(&Value::from("Ann")));

        let page = br#"{"type":"page","anonymousId":"a1","name":"Home","messageId":"m2",
          "context":{"page":{"url":"https://x.test/?fbclid=IwAR0&utm_source=facebook&utm_campaign=Spring%20Sale"}}}"#;
        let m = parse_call(CallType::Page, page, RECEIVED)
            .expect("page")
            .message;
        assert!(matches!(&m.call, Call::Page { name: Some(n), .. } if n == "Home"));
        assert_eq!(
            m.context.ad_click,
            Some(AdClick {
                network: AdNetwork::Meta,
                click_id: "IwAR0".into()
            })
        );
        let c = m.context.campaign.expect("utm fallback");
        assert_eq!(c.source.as_deref(), Some("facebook"));
        assert_eq!(c.name.as_deref(), Some("Spring Sale"));

        let alias = br#"{"previousId":"anon-1","userId":"u_1","messageId":"m3"}"#;
        let m = parse_call(CallType::Alias, alias, RECEIVED)
            .expect("alias")
            .message;
        assert_eq!(
            m.call,
            Call::Alias {
                previous_id: "anon-1".into()
            }
        );
    }

    #[test]
    fn ad_clicks_from_search_and_other_networks() {
        for (param, network) in [
            ("ttclid", AdNetwork::TikTok),
            ("msclkid", AdNetwork::Microsoft),
            ("gclid", AdNetwork::Google),
        ] {
            let body = format!(
                r#"{{"anonymousId":"a","messageId":"m","context":{{"page":{{"url":"https://x.test/p","search":"?a=&{param}=ID-1"}}}}}}"#
            );
            let m = parse_call(CallType::Page, body.as_bytes(), RECEIVED)
                .expect("page")
                .message;
            assert_eq!(
                m.context.ad_click,
                Some(AdClick {
                    network,
                    click_id: "ID-1".into()
                })
            );
        }
        let m = parse_call(
            CallType::Page,
            br#"{"anonymousId":"a","messageId":"m"}"#,
            RECEIVED,
        )
        .expect("page")
        .message;
        assert_eq!(m.context.ad_click, None);
        assert_eq!(m.context.campaign, None);
    }

    #[test]
    fn timestamp_resolution() {
        // No timestamp: receivedAt - (sentAt - originalTimestamp) = skew-corrected.
        let b = br#"{"anonymousId":"a","messageId":"m","event":"E",
            "originalTimestamp":"2024-03-05T15:00:00Z","sentAt":"2024-03-05T15:00:10Z"}"#;
        let m = parse_call(CallType::Track, b, RECEIVED)
            .expect("track")
            .message;
        assert_eq!(m.timestamp, RECEIVED - 10_000);
        let b = br#"{"anonymousId":"a","messageId":"m","event":"E","originalTimestamp":"2024-03-05T15:00:00Z"}"#;
        let m = parse_call(CallType::Track, b, RECEIVED)
            .expect("track")
            .message;
        assert_eq!(m.timestamp, 1_709_650_800_000);
        let b = br#"{"anonymousId":"a","messageId":"m","event":"E","timestamp":"soon"}"#;
        assert_eq!(
            parse_call(CallType::Track, b, RECEIVED),
            Err(Error::BadTimestamp("timestamp"))
        );
    }

    #[test]
    fn errors_are_specific() {
        let p = |t, b: &[u8]| parse_call(t, b, RECEIVED).map(|_| ());
        assert_eq!(
            p(CallType::Track, br#"{"event":"E","messageId":"m"}"#),
            Err(Error::MissingIdentity)
        );
        assert_eq!(
            p(
                CallType::Track,
                br#"{"userId":"","anonymousId":null,"event":"E"}"#
            ),
            Err(Error::MissingIdentity)
        );
        assert_eq!(
            p(CallType::Track, br#"{"userId":"u"}"#),
            Err(Error::MissingEvent)
        );
        assert_eq!(
            p(CallType::Alias, br#"{"userId":"u"}"#),
            Err(Error::MissingPreviousId)
        );
        assert_eq!(p(CallType::Track, b"[1]"), Err(Error::NotAnObject));
        assert!(matches!(p(CallType::Track, b"{"), Err(Error::Json(_))));
        assert_eq!(
            p(
                CallType::Track,
                br#"{"userId":"u","event":"E","properties":[]}"#
            ),
            Err(Error::BadField("properties"))
        );
        assert_eq!(
            p(CallType::Track, br#"{"type":"identify","userId":"u"}"#),
            Err(Error::TypeMismatch {
                endpoint: "track",
                body: "identify".into()
            })
        );
    }

    #[test]
    fn missing_message_id_is_derived_stably() {
        let a = br#"{"userId":"u","event":"E","properties":{"a":1,"b":2},"sentAt":"2024-03-05T15:00:00Z"}"#;
        let b = br#"{ "properties":{"b":2, "a":1}, "event":"E","userId":"u","sentAt":"2024-03-05T15:00:09Z"}"#;
        let c = br#"{"userId":"u","event":"F","properties":{"a":1,"b":2}}"#;
        let id = |x: &[u8]| {
            parse_call(CallType::Track, x, RECEIVED)
                .expect("track")
                .message
        };
        let (ma, mb, mc) = (id(a), id(b), id(c));
        assert!(ma.message_id_derived);
        assert!(ma.message_id.starts_with("derived:"));
        assert_eq!(ma.message_id.len(), "derived:".len() + 64);
        assert_eq!(ma.message_id, mb.message_id);
        assert_ne!(ma.message_id, mc.message_id);
    }

    #[test]
    fn batch_keeps_good_messages_and_reports_bad_ones() {
        let body = br#"{"writeKey":"wk","sentAt":"2024-03-05T15:00:10Z",
          "context":{"ip":"198.51.100.1","library":{"name":"analytics-node"}},
          "batch":[
            {"type":"identify","userId":"u","messageId":"m1","traits":{"email":"a@b.co"}},
            {"type":"track","anonymousId":"a","messageId":"m2","event":"Viewed",
             "originalTimestamp":"2024-03-05T15:00:00Z","context":{"ip":"192.0.2.9"}},
            {"type":"screen","userId":"u","name":"Home"},
            {"userId":"u"},
            {"type":"track","event":"E"},
            {"type":"group","userId":"u","groupId":42,"traits":{"name":"Acme","employees":12}},
            {"type":"Hologram","userId":"u"},
            {"type":"group","userId":"u"},
            {"type":"hologram","userId":"u"}
          ]}"#;
        let b = parse_batch(body, RECEIVED).expect("batch");
        assert_eq!(b.write_key.as_deref(), Some("wk"));
        assert_eq!(b.messages.len(), 9);
        let m1 = b.messages[0].as_ref().expect("identify");
        assert_eq!(m1.context.ip.as_deref(), Some("198.51.100.1"));
        let m2 = b.messages[1].as_ref().expect("track");
        assert_eq!(m2.context.ip.as_deref(), Some("192.0.2.9"));
        assert_eq!(m2.timestamp, RECEIVED - 10_000);
        let screen = b.messages[2].as_ref().expect("screen");
        assert!(matches!(&screen.call, Call::Screen { name: Some(n), .. } if n == "Home"));
        assert_eq!(b.messages[3], Err(Error::MissingType));
        assert_eq!(b.messages[4], Err(Error::MissingIdentity));
        let group = b.messages[5].as_ref().expect("group");
        let Call::Group { group_id, traits } = &group.call else {
            panic!("a group call");
        };
        assert_eq!(
            group_id, "42",
            "a numeric groupId is an id like a numeric userId"
        );
        assert_eq!(traits.get("name"), Some(&Value::from("Acme")));
        assert_eq!(b.messages[7], Err(Error::MissingGroupId));
        assert_eq!(
            b.unsupported(),
            std::collections::BTreeMap::from([
                ("Hologram".to_string(), 1),
                ("hologram".to_string(), 1)
            ])
        );
        assert_eq!(
            parse_batch(br#"{"context":{}}"#, RECEIVED),
            Err(Error::NoBatchArray)
        );
    }

    #[test]
    fn size_limits() {
        let pad = "x".repeat(MAX_EVENT_BYTES);
        let big = format!(r#"{{"userId":"u","event":"E","properties":{{"p":"{pad}"}}}}"#);
        assert_eq!(
            parse_call(CallType::Track, big.as_bytes(), RECEIVED),
            Err(Error::EventTooLarge { size: big.len() })
        );
        let batch = format!(r#"{{"batch":[{big},{{"type":"track","userId":"u","event":"E"}}]}}"#);
        let b = parse_batch(batch.as_bytes(), RECEIVED).expect("batch under 500 KB");
        assert_eq!(b.messages[0], Err(Error::EventTooLarge { size: big.len() }));
        assert!(b.messages[1].is_ok());
        let huge = vec![b' '; MAX_BATCH_BYTES + 1];
        assert_eq!(
            parse_batch(&huge, RECEIVED),
            Err(Error::BatchTooLarge {
                size: MAX_BATCH_BYTES + 1
            })
        );
        assert!(Error::BatchTooLarge { size: 1 }
            .to_string()
            .contains("500 KB"));
        assert!(Error::EventTooLarge { size: 1 }
            .to_string()
            .contains("32 KB"));
    }

    #[test]
    fn write_key() {
        let h = format!("Basic {}", STANDARD.encode("wk_live_123:"));
        assert_eq!(write_key_from_basic(&h).as_deref(), Ok("wk_live_123"));
        let h = format!("basic {}", STANDARD.encode("wk_live_123"));
        assert_eq!(write_key_from_basic(&h).as_deref(), Ok("wk_live_123"));
        assert_eq!(
            write_key_from_basic("Bearer abc"),
            Err(WriteKeyError::NotBasic)
        );
        assert_eq!(write_key_from_basic("Basic"), Err(WriteKeyError::NotBasic));
        assert_eq!(
            write_key_from_basic("Basic ***"),
            Err(WriteKeyError::NotBase64)
        );
        let h = format!("Basic {}", STANDARD.encode(":"));
        assert_eq!(write_key_from_basic(&h), Err(WriteKeyError::Empty));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%zz%4%+1"), "a b c%zz%4% 1");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
    }

    proptest! {
        #[test]
        fn any_message_id_round_trips(id in prop_oneof!["[ -~]{1,64}", " {0,3}"]) {
            let body = serde_json::json!({"userId": "u", "event": "E", "messageId": id}).to_string();
            let m = parse_call(CallType::Track, body.as_bytes(), RECEIVED)
                .expect("valid track")
                .message;
            let want = id.trim();
            if want.is_empty() {
                prop_assert!(m.message_id_derived);
            } else {
                prop_assert_eq!(m.message_id.as_str(), want);
            }
        }
    }
}
