//! Twilio SMS: the outbound Messages API sender, the
//! `X-Twilio-Signature` check for inbound webhooks, and parsing of inbound
//! messages and delivery status callbacks. Owns the mapping of Twilio's HTTP
//! answers onto `SendError` and the forward-only order of delivery statuses.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Digest as _;

use crate::{BoxFuture, Medium, Outgoing, ParseError, Receipt, SendError, Sender};

/// One Twilio account (or subaccount) to send from.
#[derive(Clone)]
pub struct TwilioConfig {
    /// `https://api.twilio.com` in production; a fake server's URL in tests.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// Total request timeout; connecting gets half of it.
    pub timeout: Duration,
}

impl std::fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The auth token never goes to a log.
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TwilioConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.twilio.com";
}

/// Sends SMS through the Messages API.
#[derive(Debug, Clone)]
pub struct TwilioSender {
    cfg: TwilioConfig,
    http: reqwest::Client,
}

impl TwilioSender {
    pub fn new(cfg: TwilioConfig) -> Result<TwilioSender, String> {
        let http = reqwest::Client::builder()
            // A connect timeout of its own so "never reached Twilio" (safe to
            // retry) shows as a connect error, distinct from a total timeout
            // after the request went out (ambiguous). Half the budget, so a
            // slow connect cannot race the total timeout and look ambiguous.
            .connect_timeout((cfg.timeout / 2).max(Duration::from_millis(1)))
            .timeout(cfg.timeout)
            // Twilio never redirects the Messages API; following one could
            // send credentials somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(TwilioSender { cfg, http })
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.cfg.base_url.trim_end_matches('/'),
            self.cfg.account_sid
        )
    }

    async fn send_sms(&self, m: &Outgoing) -> Result<Receipt, SendError> {
        if m.medium != Medium::Sms {
            return Err(SendError::Permanent(
                "the Twilio sender only sends SMS".to_string(),
            ));
        }
        let mut form: Vec<(&str, &str)> = vec![("To", m.to.as_str())];
        if m.from.starts_with("MG") {
            form.push(("MessagingServiceSid", m.from.as_str()));
        } else {
            form.push(("From", m.from.as_str()));
        }
        form.push(("Body", m.text.as_str()));
        if let Some(cb) = &m.status_callback {
            form.push(("StatusCallback", cb.as_str()));
        }
        let body = serde_urlencoded::to_string(&form)
            .map_err(|e| SendError::Permanent(format!("cannot encode the form: {e}")))?;
        let res = self
            .http
            .post(self.messages_url())
            .basic_auth(&self.cfg.account_sid, Some(&self.cfg.auth_token))
            .header("I-Twilio-Idempotency-Token", &m.idempotency_key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(classify_reqwest)?;
        let status = res.status();
        if status.is_success() {
            // Accepted. A body we cannot read does not undo that: report it
            // sent without an id rather than invite a duplicate retry.
            let json: serde_json::Value = res.json().await.unwrap_or_default();
            let sid = json.get("sid").and_then(|v| v.as_str()).map(str::to_string);
            let st = json
                .get("status")
                .and_then(|v| v.as_str())
                .unwrap_or("accepted")
                .to_string();
            return Ok(Receipt {
                provider: "twilio",
                provider_id: sid,
                status: st,
            });
        }
        let text = res.text().await.unwrap_or_default();
        let detail = twilio_error_detail(status.as_u16(), &text);
        Err(match status.as_u16() {
            // 408: the server says it gave up reading the request, so it
            // cannot have acted on it.
            408 | 429 => SendError::Transient(detail),
            s if s >= 500 => SendError::Transient(detail),
            _ => SendError::Permanent(detail),
        })
    }
}

fn twilio_error_detail(status: u16, body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let code = json.get("code").map(|c| c.to_string());
    let msg = json.get("message").and_then(|m| m.as_str());
    match (code, msg) {
        (Some(c), Some(m)) => format!("Twilio HTTP {status}, code {c}: {m}"),
        (None, Some(m)) => format!("Twilio HTTP {status}: {m}"),
        _ => format!("Twilio HTTP {status}"),
    }
}

/// reqwest errors → retry class. Connect errors (refused, DNS, TLS handshake,
/// connect timeout) happen before a byte of the request reached Twilio.
/// Anything later (a total timeout, a reset while waiting) may have reached
/// it, so it is ambiguous.
fn classify_reqwest(e: reqwest::Error) -> SendError {
    if e.is_builder() {
        SendError::Permanent(format!("invalid request: {e}"))
    } else if e.is_connect() {
        SendError::Transient(format!("cannot connect to Twilio: {e}"))
    } else if e.is_timeout() {
        SendError::Ambiguous(format!("no answer from Twilio in time: {e}"))
    } else {
        SendError::Ambiguous(format!("connection to Twilio failed after sending: {e}"))
    }
}

impl Sender for TwilioSender {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn send<'a>(&'a self, m: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.send_sms(m))
    }
}

// ---------------------------------------------------------------- inbound

/// The header a Twilio Webhooks Rule adds when it signs with its own
/// shared key: `key=<key sid>,algorithm=HMAC_SHA256`.
pub const SIGNATURE_SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

/// The MAC a Twilio signature is made with. By default HMAC-SHA1 keyed with
/// the account's Auth Token; when a Webhooks Rule matches the URL, Twilio
/// signs with the rule's shared key and the algorithm that
/// [`SIGNATURE_SETTINGS_HEADER`] names. Only the MAC changes: the signed
/// string is the same URL and sorted parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    HmacSha1,
    HmacSha256,
}

impl SignatureAlgorithm {
    /// The algorithm a settings header value names, or why it cannot be used.
    pub fn from_settings(value: &str) -> Result<SignatureAlgorithm, String> {
        let alg = value
            .split(',')
            .filter_map(|part| part.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("algorithm"))
            .map(|(_, v)| v.trim())
            .ok_or_else(|| "the signature settings name no algorithm".to_string())?;
        match alg.to_ascii_uppercase().as_str() {
            "HMAC_SHA256" => Ok(SignatureAlgorithm::HmacSha256),
            "HMAC_SHA1" => Ok(SignatureAlgorithm::HmacSha1),
            _ => Err(format!(
                "the signature algorithm {:?} is not supported (HMAC_SHA1 or HMAC_SHA256)",
                alg.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// `url + name1 + value1 + …` with the POST params sorted by name (and, for
/// repeated names, by value), as Twilio's SDKs build it.
fn signed_string(url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // The SDKs build the string from a set of values per name.
    sorted.dedup();
    let mut out = url.as_bytes().to_vec();
    for (k, v) in sorted {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn mac_bytes(alg: SignatureAlgorithm, key: &str, msg: &[u8]) -> Vec<u8> {
    match alg {
        SignatureAlgorithm::HmacSha1 => {
            let mut m =
                Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        SignatureAlgorithm::HmacSha256 => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
                .expect("HMAC takes any key length");
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn mac_matches(alg: SignatureAlgorithm, key: &str, msg: &[u8], expected: &[u8]) -> bool {
    match alg {
        SignatureAlgorithm::HmacSha1 => {
            let mut m =
                Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
            m.update(msg);
            m.verify_slice(expected).is_ok()
        }
        SignatureAlgorithm::HmacSha256 => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
                .expect("HMAC takes any key length");
            m.update(msg);
            m.verify_slice(expected).is_ok()
        }
    }
}

/// `base64(HMAC-SHA1(auth_token, url + name1 + value1 + …))`: the default
/// `X-Twilio-Signature`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    signature_with(SignatureAlgorithm::HmacSha1, auth_token, url, params)
}

/// The signature made with `alg` and `key` (a Webhooks Rule's shared key
/// for SHA-256).
pub fn signature_with(
    alg: SignatureAlgorithm,
    key: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac_bytes(
        alg,
        key,
        &signed_string(url, params),
    ))
}

/// Checks `X-Twilio-Signature` in constant time, for `url` as Twilio called
/// it and also with the default port added or removed (Twilio's SDKs do the
/// same, since a proxy may have changed how the URL looks).
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    verify_with(
        SignatureAlgorithm::HmacSha1,
        auth_token,
        url,
        params,
        header,
    )
}

/// [`verify`] with the MAC and key a Webhooks Rule's settings name.
pub fn verify_with(
    alg: SignatureAlgorithm,
    key: &str,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    if expected.is_empty() {
        return false;
    }
    let mut ok = false;
    for candidate in url_variants(url) {
        // No early return: every variant costs the same.
        ok |= mac_matches(alg, key, &signed_string(&candidate, params), &expected);
    }
    ok
}

/// Checks a JSON-bodied Twilio webhook: the URL carries
/// `bodySHA256=<hex sha256(body)>`, the signature covers the URL alone
/// (no params), and the body must hash to that value.
pub fn verify_body_sha256(auth_token: &str, url: &str, body: &[u8], header: &str) -> bool {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let query = query.split('#').next().unwrap_or("");
    let Some(claimed) = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
    else {
        return false;
    };
    let digest = sha2::Sha256::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    // Both checks always run, so timing says nothing about which failed.
    let hash_ok = hex.len() == claimed.len()
        && hex
            .bytes()
            .zip(claimed.to_ascii_lowercase().bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    let sig_ok = verify(auth_token, url, &[], header);
    hash_ok & sig_ok
}

/// The URL as given, plus the form with the scheme's default port toggled.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let (scheme, rest, default) = if let Some(r) = url.strip_prefix("https://") {
        ("https://", r, "443")
    } else if let Some(r) = url.strip_prefix("http://") {
        ("http://", r, "80")
    } else {
        return out;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    // The port is after the last ':' unless that is inside an IPv6 literal.
    let port_at = hostport
        .rfind(':')
        .filter(|&i| !hostport[i..].contains(']'));
    let variant = match port_at {
        Some(i) if &hostport[i + 1..] == default => {
            format!("{scheme}{userinfo}{}{tail}", &hostport[..i])
        }
        Some(_) => return out,
        None => format!("{scheme}{userinfo}{hostport}:{default}{tail}"),
    };
    out.push(variant);
    out
}

/// Parses an `application/x-www-form-urlencoded` body, keeping repeated keys
/// and their order (needed for the signature).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn get<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn required<'p>(params: &'p [(String, String)], name: &'static str) -> Result<&'p str, ParseError> {
    match get(params, name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ParseError::Missing(name)),
    }
}

/// An inbound SMS/MMS webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    pub message_sid: String,
    pub from: String,
    pub to: String,
    /// May be empty (an MMS with only media).
    pub body: String,
    pub num_media: u32,
    pub account_sid: String,
}

pub fn inbound_sms(params: &[(String, String)]) -> Result<InboundSms, ParseError> {
    let num_media = match get(params, "NumMedia").map(str::trim) {
        None | Some("") => 0,
        Some(n) => n.parse().map_err(|_| ParseError::Invalid {
            field: "NumMedia",
            reason: format!("`{n}` is not a count"),
        })?,
    };
    Ok(InboundSms {
        message_sid: required(params, "MessageSid")?.to_string(),
        from: required(params, "From")?.to_string(),
        to: required(params, "To")?.to_string(),
        body: get(params, "Body").unwrap_or("").to_string(),
        num_media,
        account_sid: required(params, "AccountSid")?.to_string(),
    })
}

/// A message's delivery status as Twilio reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Read,
    Canceled,
    Accepted,
    Scheduled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 10] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Undelivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Read,
        DeliveryStatus::Canceled,
        DeliveryStatus::Accepted,
        DeliveryStatus::Scheduled,
    ];

    /// Position in the lifecycle. Callbacks arrive out of order, so callers
    /// apply an update only when its rank is greater than the stored one.
    /// Final outcomes share a rank: the first one recorded wins.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Queued | DeliveryStatus::Accepted | DeliveryStatus::Scheduled => 0,
            DeliveryStatus::Sending => 1,
            DeliveryStatus::Sent => 2,
            DeliveryStatus::Delivered
            | DeliveryStatus::Undelivered
            | DeliveryStatus::Failed
            | DeliveryStatus::Canceled => 3,
            DeliveryStatus::Read => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Undelivered => "undelivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Canceled => "canceled",
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::Scheduled => "scheduled",
        }
    }

    /// Case-insensitive; `None` for a status Twilio may add later.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        let s = s.trim();
        DeliveryStatus::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
    }
}

/// A status callback (`StatusCallback` URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub message_sid: String,
    pub status: DeliveryStatus,
    pub error_code: Option<String>,
    pub account_sid: String,
}

pub fn status_update(params: &[(String, String)]) -> Result<StatusUpdate, ParseError> {
    let raw = required(params, "MessageStatus")?;
    let status = DeliveryStatus::parse(raw).ok_or_else(|| ParseError::Invalid {
        field: "MessageStatus",
        reason: format!("unknown status `{raw}`"),
    })?;
    Ok(StatusUpdate {
        message_sid: required(params, "MessageSid")?.to_string(),
        status,
        error_code: get(params, "ErrorCode")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        account_sid: required(params, "AccountSid")?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Twilio's documented example (webhooks-security; twilio-node
    // examples/WebhookSignatureValidation.md).
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXPECTED: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    fn doc_params() -> Vec<(String, String)> {
        // Deliberately not in sorted order.
        p(&[
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
        ])
    }

    #[test]
    fn signature_matches_twilio_docs_example() {
        assert_eq!(signature(TOKEN, URL, &doc_params()), EXPECTED);
        assert!(verify(TOKEN, URL, &doc_params(), EXPECTED));
    }

    /// The same example as it appears in TwilioDevEd/api-snippets
    /// (security/signature_validation), with another Caller/From number.
    #[test]
    fn signature_matches_api_snippets_example() {
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signature(TOKEN, URL, &params),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert!(verify(TOKEN, URL, &params, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
    }

    /// A Webhooks Rule's HMAC-SHA256 over the same string (the expected
    /// value computed independently with Python's `hmac` module).
    #[test]
    fn sha256_signature_with_a_shared_key() {
        const KEY: &str = "shared-secret-of-the-rule";
        const SHA256: &str = "rXV+jfuijDXhSoFOQkZmWaeXtOClPVQp2utzhMNANnc=";
        let alg = SignatureAlgorithm::HmacSha256;
        assert_eq!(signature_with(alg, KEY, URL, &doc_params()), SHA256);
        assert!(verify_with(alg, KEY, URL, &doc_params(), SHA256));
        // Not with the Auth Token, not as SHA-1, not with another key.
        assert!(!verify_with(alg, TOKEN, URL, &doc_params(), SHA256));
        assert!(!verify(KEY, URL, &doc_params(), SHA256));
        assert!(!verify_with(alg, KEY, URL, &doc_params(), EXPECTED));
        assert!(!verify_with(alg, "other", URL, &doc_params(), SHA256));
    }

    #[test]
    fn signature_settings_name_the_algorithm() {
        use SignatureAlgorithm::*;
        for (v, want) in [
            ("key=KS0123,algorithm=HMAC_SHA256", Ok(HmacSha256)),
            (" algorithm = hmac_sha256 , key=KS1", Ok(HmacSha256)),
            ("key=KS1,algorithm=HMAC_SHA1", Ok(HmacSha1)),
        ] {
            assert_eq!(SignatureAlgorithm::from_settings(v), want, "{v}");
        }
        assert!(SignatureAlgorithm::from_settings("key=KS1")
            .unwrap_err()
            .contains("no algorithm"));
        assert!(SignatureAlgorithm::from_settings("algorithm=MD5")
            .unwrap_err()
            .contains("not supported"));
    }

    #[test]
    fn signature_rejections() {
        let params = doc_params();
        // Wrong token (another tenant's secret).
        assert!(!verify("54321", URL, &params, EXPECTED));
        // Missing / empty / garbage header.
        assert!(!verify(TOKEN, URL, &params, ""));
        assert!(!verify(TOKEN, URL, &params, "not base64!"));
        // One changed byte in a value, a name, the URL, the signature.
        let mut changed = params.clone();
        changed[2].1 = "1235".into();
        assert!(!verify(TOKEN, URL, &changed, EXPECTED));
        let mut renamed = params.clone();
        renamed[0].0 = "Tp".into();
        assert!(!verify(TOKEN, URL, &renamed, EXPECTED));
        assert!(!verify(
            TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            EXPECTED
        ));
        assert!(!verify(TOKEN, URL, &params, "1/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        // An extra parameter.
        let mut extra = params.clone();
        extra.push(("Body".into(), "x".into()));
        assert!(!verify(TOKEN, URL, &extra, EXPECTED));
    }

    #[test]
    fn signature_default_port_variants() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(verify(TOKEN, with_port, &doc_params(), EXPECTED));
        // Signed with the port, checked without.
        let sig = signature(TOKEN, with_port, &doc_params());
        assert!(verify(TOKEN, URL, &doc_params(), &sig));
        // A non-default port is not stripped.
        assert!(!verify(
            TOKEN,
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &doc_params(),
            EXPECTED
        ));
        assert_eq!(
            url_variants("http://u:p@h/x"),
            vec![
                "http://u:p@h/x".to_string(),
                "http://u:p@h:80/x".to_string()
            ]
        );
        assert_eq!(
            url_variants("https://[::1]:443"),
            vec!["https://[::1]:443", "https://[::1]"]
        );
    }

    #[test]
    fn repeated_keys_are_kept_and_sorted() {
        let body = b"MediaUrl=b&To=%2B1&MediaUrl=a&Body=hi+there";
        let params = parse_form(body);
        assert_eq!(params.len(), 4);
        assert_eq!(params[3], ("Body".into(), "hi there".into()));
        let reordered = p(&[
            ("Body", "hi there"),
            ("MediaUrl", "a"),
            ("MediaUrl", "b"),
            ("To", "+1"),
        ]);
        assert_eq!(
            signature("t", "u", &params),
            signature("t", "u", &reordered)
        );
    }

    #[test]
    fn json_webhook_body_hash() {
        let body = br#"{"hello":"world"}"#;
        let hex: String = sha2::Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let url = format!("https://bos.example/hooks/twilio?bodySHA256={hex}");
        let sig = signature(TOKEN, &url, &[]);
        assert!(verify_body_sha256(TOKEN, &url, body, &sig));
        // A changed body, a wrong token, a URL without the hash.
        assert!(!verify_body_sha256(
            TOKEN,
            &url,
            br#"{"hello":"world!"}"#,
            &sig
        ));
        assert!(!verify_body_sha256("54321", &url, body, &sig));
        let bare = "https://bos.example/hooks/twilio";
        assert!(!verify_body_sha256(
            TOKEN,
            bare,
            body,
            &signature(TOKEN, bare, &[])
        ));
    }

    #[test]
    fn debug_hides_the_token() {
        let cfg = TwilioConfig {
            base_url: TwilioConfig::DEFAULT_BASE_URL.into(),
            account_sid: "AC1".into(),
            auth_token: "s3cret-token".into(),
            timeout: Duration::from_secs(5),
        };
        assert!(!format!("{cfg:?}").contains("s3cret"));
        assert!(!format!("{:?}", TwilioSender::new(cfg).unwrap()).contains("s3cret"));
    }

    #[test]
    fn inbound_sms_parses() {
        let params = parse_form(
            b"MessageSid=SM1&SmsSid=SM1&AccountSid=AC1&From=%2B15550001&To=%2B15550002&Body=STOP&NumMedia=0&NumSegments=1",
        );
        let sms = inbound_sms(&params).unwrap();
        assert_eq!(sms.message_sid, "SM1");
        assert_eq!(sms.from, "+15550001");
        assert_eq!(sms.body, "STOP");
        assert_eq!(sms.num_media, 0);
        assert_eq!(
            inbound_sms(&p(&[("From", "+1")])),
            Err(ParseError::Missing("MessageSid"))
        );
        let bad = p(&[
            ("MessageSid", "SM1"),
            ("From", "a"),
            ("To", "b"),
            ("AccountSid", "AC"),
            ("NumMedia", "x"),
        ]);
        assert!(matches!(
            inbound_sms(&bad),
            Err(ParseError::Invalid {
                field: "NumMedia",
                ..
            })
        ));
    }

    #[test]
    fn status_update_parses() {
        let params =
            parse_form(b"MessageSid=SM1&MessageStatus=undelivered&AccountSid=AC1&ErrorCode=30003");
        let u = status_update(&params).unwrap();
        assert_eq!(u.status, DeliveryStatus::Undelivered);
        assert_eq!(u.error_code.as_deref(), Some("30003"));
        let unknown = parse_form(b"MessageSid=SM1&MessageStatus=teleported&AccountSid=AC1");
        assert!(matches!(
            status_update(&unknown),
            Err(ParseError::Invalid { .. })
        ));
    }

    #[test]
    fn status_rank_is_forward_only() {
        use DeliveryStatus::*;
        // (stored, incoming, apply?)
        let table = [
            (Queued, Sending, true),
            (Accepted, Queued, false),
            (Scheduled, Sending, true),
            (Sending, Sent, true),
            (Sent, Sending, false),
            (Sent, Delivered, true),
            (Delivered, Sent, false),
            (Delivered, Queued, false),
            (Sent, Undelivered, true),
            (Sent, Failed, true),
            (Failed, Delivered, false),
            (Delivered, Failed, false),
            (Queued, Canceled, true),
            (Canceled, Sent, false),
            (Delivered, Read, true),
            (Read, Delivered, false),
            (Queued, Delivered, true),
        ];
        for (stored, incoming, apply) in table {
            assert_eq!(
                incoming.rank() > stored.rank(),
                apply,
                "{stored:?} -> {incoming:?}"
            );
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(DeliveryStatus::parse(&s.as_str().to_uppercase()), Some(s));
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), header in ".{0,64}", url in ".{0,64}") {
            let params = parse_form(&body);
            let _ = inbound_sms(&params);
            let _ = status_update(&params);
            let _ = verify("tok", &url, &params, &header);
            let _ = verify_body_sha256("tok", &url, &body, &header);
            let _ = url_variants(&url);
        }

        #[test]
        fn signature_round_trips(pairs in proptest::collection::vec(("[A-Za-z]{1,8}", ".{0,16}"), 0..8), url in "https://[a-z]{1,10}(:443)?/[a-z?=&]{0,12}") {
            let sig = signature("secret", &url, &pairs);
            prop_assert!(verify("secret", &url, &pairs, &sig));
            prop_assert!(!verify("other", &url, &pairs, &sig));
        }
    }
}
