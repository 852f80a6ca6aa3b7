//! Voice AI platforms: Vapi's and Retell's webhook signatures and their call
//! events, read into one [`VoiceReport`].
//!
//! Vapi posts `{"message": {"type": …}}`: `status-update` while a call
//! rings, runs and ends, `transcript` lines as they are spoken, and one
//! `end-of-call-report` with cost, the transcript, the analysis and the
//! call's times. It is signed by HMAC-SHA256 over `{timestamp}.{body}`
//! (headers `x-signature` and `x-timestamp`), or, in older set-ups, carries
//! the shared secret in `X-Vapi-Secret`. Retell posts `{event, call}`
//! (`call_started`, `call_ended`, `call_analyzed`) signed in
//! `X-Retell-Signature: v=<unix ms>,d=<hex HMAC-SHA256(api key, body + v)>`.
//!
//! Sentiment is on a 0–10 scale everywhere in BOS. Retell says
//! Positive / Neutral / Negative; Vapi has no field of its own, so a
//! `sentiment` in the assistant's structured data is used when present and
//! otherwise the customer's own words are scored with the inbox's lexicon.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::status::AgentProvider;
use crate::Millis;

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from our clock (both platforms: 5 min).
pub const RETELL_TOLERANCE_MS: Millis = 5 * 60_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceVerifyError {
    #[error("no signature: send x-signature and x-timestamp (Vapi HMAC), X-Vapi-Secret, or X-Retell-Signature")]
    Missing,
    #[error("the signature header is not in the provider's format")]
    Malformed,
    #[error("the signed timestamp is more than 5 minutes from now; check the sender's clock, or this is a replay")]
    Stale,
    #[error("the signature does not match this agent's secret")]
    Mismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceError {
    #[error("the body is not JSON: {0}")]
    Json(String),
    #[error("the payload has no {0}")]
    Missing(&'static str),
}

fn mac(secret: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new_from_slice(&[]).expect("empty key"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn ts_ms(raw: &str) -> Option<Millis> {
    let n: i64 = raw.trim().parse().ok()?;
    // Seconds or milliseconds: anything below 10^11 is seconds (year 5138).
    Some(if n < 100_000_000_000 { n * 1000 } else { n })
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a Vapi delivery carried for authentication.
#[derive(Debug, Clone, Copy, Default)]
pub struct VapiAuth<'a> {
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub legacy_secret: Option<&'a str>,
}

/// The `x-signature` Vapi sends for `body` at `timestamp` (hex).
pub fn vapi_sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    hex(&m.finalize().into_bytes())
}

/// Checks a Vapi delivery: the HMAC when present (hex or base64, with or
/// without a `sha256=` prefix), else the legacy shared secret.
pub fn vapi_verify(
    secret: &[u8],
    auth: VapiAuth<'_>,
    body: &[u8],
    now: Millis,
) -> Result<(), VoiceVerifyError> {
    if let Some(sig) = auth.signature {
        let ts = auth.timestamp.ok_or(VoiceVerifyError::Malformed)?;
        let at = ts_ms(ts).ok_or(VoiceVerifyError::Malformed)?;
        if (now - at).abs() > RETELL_TOLERANCE_MS {
            return Err(VoiceVerifyError::Stale);
        }
        let sig = sig.trim();
        let sig = sig.strip_prefix("sha256=").unwrap_or(sig);
        let tag = unhex(sig)
            .filter(|t| t.len() == 32)
            .or_else(|| STANDARD.decode(sig).ok().filter(|t| t.len() == 32))
            .ok_or(VoiceVerifyError::Malformed)?;
        let mut m = mac(secret);
        m.update(ts.as_bytes());
        m.update(b".");
        m.update(body);
        return m.verify_slice(&tag).map_err(|_| VoiceVerifyError::Mismatch);
    }
    match auth.legacy_secret {
        Some(s) if ct_eq(s.as_bytes(), secret) => Ok(()),
        Some(_) => Err(VoiceVerifyError::Mismatch),
        None => Err(VoiceVerifyError::Missing),
    }
}

/// The `X-Retell-Signature` Retell sends for `body` at `at` (unix ms).
pub fn retell_sign(api_key: &[u8], body: &[u8], at: Millis) -> String {
    let mut m = mac(api_key);
    m.update(body);
    m.update(at.to_string().as_bytes());
    format!("v={at},d={}", hex(&m.finalize().into_bytes()))
}

pub fn retell_verify(
    api_key: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: Millis,
) -> Result<(), VoiceVerifyError> {
    let header = header.ok_or(VoiceVerifyError::Missing)?;
    let (mut v, mut d) = (None, None);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("v", x)) => v = Some(x),
            Some(("d", x)) => d = Some(x),
            _ => {}
        }
    }
    let (v, d) = v.zip(d).ok_or(VoiceVerifyError::Malformed)?;
    let at: Millis = v.parse().map_err(|_| VoiceVerifyError::Malformed)?;
    let tag = unhex(d)
        .filter(|t| t.len() == 32)
        .ok_or(VoiceVerifyError::Malformed)?;
    if (now - at).abs() > RETELL_TOLERANCE_MS {
        return Err(VoiceVerifyError::Stale);
    }
    let mut m = mac(api_key);
    m.update(body);
    m.update(v.as_bytes());
    m.verify_slice(&tag).map_err(|_| VoiceVerifyError::Mismatch)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Agent,
    Customer,
}

/// One spoken turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
    /// From the start of the call.
    pub offset_ms: Option<Millis>,
}

/// What a delivery says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// The call is live (Vapi `in-progress`, Retell `call_started`).
    Started,
    /// A final transcript line spoken during the call.
    Line(Turn),
    /// The call is over; the report carries what is known.
    Ended,
    /// Retell's analysis of an ended call (summary, sentiment, success).
    Analyzed,
    /// Anything else (ringing, partial transcripts, tool calls): acknowledged, not stored.
    Other(String),
}

/// One voice-platform delivery in BOS's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceReport {
    pub provider: AgentProvider,
    pub call_id: String,
    pub event: CallEvent,
    /// The provider's name for this delivery's kind; with `call_id` it
    /// identifies a delivery, so repeats are stored once.
    pub delivery: String,
    /// The platform's id of the assistant/agent that took the call.
    pub platform_agent_id: Option<String>,
    /// The customer's number (E.164 as sent).
    pub customer_phone: Option<String>,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub cost_micros: Option<i64>,
    pub success: Option<bool>,
    /// 0–10.
    pub sentiment: Option<f64>,
    pub summary: Option<String>,
    pub ended_reason: Option<String>,
    pub transcript: Vec<Turn>,
}

impl VoiceReport {
    fn new(provider: AgentProvider, call_id: String, event: CallEvent, delivery: &str) -> Self {
        VoiceReport {
            provider,
            call_id,
            event,
            delivery: delivery.to_string(),
            platform_agent_id: None,
            customer_phone: None,
            started_at: None,
            ended_at: None,
            cost_micros: None,
            success: None,
            sentiment: None,
            summary: None,
            ended_reason: None,
            transcript: Vec::new(),
        }
    }

    pub fn duration_ms(&self) -> Option<Millis> {
        Some((self.ended_at? - self.started_at?).max(0))
    }
}

fn s(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::String(x) if !x.trim().is_empty() => Some(x.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn iso(v: &Value, key: &str) -> Option<Millis> {
    crate::intake::parse_rfc3339_millis(v.get(key)?.as_str()?)
}

fn words_sentiment(turns: &[Turn]) -> Option<f64> {
    let said: Vec<&str> = turns
        .iter()
        .filter(|t| t.speaker == Speaker::Customer)
        .map(|t| t.text.as_str())
        .collect();
    if said.is_empty() {
        return None;
    }
    let score = crate::inbox::sentiment(&said.join(" "));
    Some(round1((score.clamp(-1.0, 1.0) + 1.0) * 5.0))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn labelled_sentiment(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| (0.0..=10.0).contains(x)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "positive" | "very positive" => Some(8.0),
            "neutral" => Some(5.0),
            "negative" | "very negative" => Some(2.0),
            _ => None,
        },
        _ => None,
    }
}

fn success_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        // Vapi's rubrics: pass/fail, a 0–10 (or 1–10) scale, or a percentage.
        Value::Number(n) => n
            .as_f64()
            .map(|x| if x > 10.0 { x >= 60.0 } else { x >= 6.0 }),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "pass" | "passed" | "success" | "successful" | "yes" => Some(true),
            "false" | "fail" | "failed" | "failure" | "unsuccessful" | "no" => Some(false),
            other => other
                .parse::<f64>()
                .ok()
                .and_then(|x| success_of(&Value::from(x))),
        },
        _ => None,
    }
}

fn parse_json(body: &[u8]) -> Result<Value, VoiceError> {
    serde_json::from_slice(body).map_err(|e| VoiceError::Json(e.to_string()))
}

/// Reads a Vapi server message.
pub fn parse_vapi(body: &[u8]) -> Result<VoiceReport, VoiceError> {
    let root = parse_json(body)?;
    let m = root.get("message").ok_or(VoiceError::Missing("message"))?;
    let kind = s(m, &["type"]).ok_or(VoiceError::Missing("message.type"))?;
    let call_id = s(m, &["call", "id"]).ok_or(VoiceError::Missing("message.call.id"))?;
    let event = match kind.as_str() {
        "end-of-call-report" => CallEvent::Ended,
        "status-update" => match s(m, &["status"]).as_deref() {
            Some("in-progress") => CallEvent::Started,
            Some("ended") => CallEvent::Ended,
            Some(other) => CallEvent::Other(other.to_string()),
            None => return Err(VoiceError::Missing("message.status")),
        },
        "transcript" if s(m, &["transcriptType"]).as_deref() != Some("partial") => {
            let speaker = match s(m, &["role"]).as_deref() {
                Some("user") => Speaker::Customer,
                _ => Speaker::Agent,
            };
            let text = s(m, &["transcript"]).ok_or(VoiceError::Missing("message.transcript"))?;
            CallEvent::Line(Turn {
                speaker,
                text,
                offset_ms: None,
            })
        }
        other => CallEvent::Other(other.to_string()),
    };
    // A status-update is sent for each status; its status names the delivery.
    let delivery = match (&event, s(m, &["status"])) {
        (CallEvent::Started | CallEvent::Ended, Some(st)) if kind == "status-update" => {
            format!("status-update:{st}")
        }
        _ => kind.clone(),
    };
    let mut r = VoiceReport::new(AgentProvider::Vapi, call_id, event, &delivery);
    r.platform_agent_id = s(m, &["assistant", "id"]).or_else(|| s(m, &["call", "assistantId"]));
    r.customer_phone =
        s(m, &["customer", "number"]).or_else(|| s(m, &["call", "customer", "number"]));
    r.started_at = iso(m, "startedAt");
    r.ended_at = iso(m, "endedAt");
    r.ended_reason = s(m, &["endedReason"]);
    r.cost_micros = m
        .get("cost")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && *c >= 0.0)
        .map(|c| (c * 1_000_000.0).round() as i64);
    if let Some(a) = m.get("analysis") {
        r.summary = s(a, &["summary"]);
        r.success = a.get("successEvaluation").and_then(success_of);
        r.sentiment = a
            .get("structuredData")
            .and_then(|d| d.get("sentiment"))
            .and_then(labelled_sentiment);
    }
    if let Some(msgs) = m.pointer("/artifact/messages").and_then(Value::as_array) {
        for x in msgs {
            let speaker = match x.get("role").and_then(Value::as_str) {
                Some("user") => Speaker::Customer,
                Some("bot" | "assistant") => Speaker::Agent,
                _ => continue,
            };
            let Some(text) = s(x, &["message"]) else {
                continue;
            };
            let offset_ms = x
                .get("secondsFromStart")
                .and_then(Value::as_f64)
                .map(|sec| (sec * 1000.0).round() as Millis);
            r.transcript.push(Turn {
                speaker,
                text,
                offset_ms,
            });
        }
    }
    if r.sentiment.is_none() && r.event == CallEvent::Ended {
        r.sentiment = words_sentiment(&r.transcript);
    }
    Ok(r)
}

/// Reads a Retell webhook.
pub fn parse_retell(body: &[u8]) -> Result<VoiceReport, VoiceError> {
    let root = parse_json(body)?;
    let kind = s(&root, &["event"]).ok_or(VoiceError::Missing("event"))?;
    let c = root.get("call").ok_or(VoiceError::Missing("call"))?;
    let call_id = s(c, &["call_id"]).ok_or(VoiceError::Missing("call.call_id"))?;
    let event = match kind.as_str() {
        "call_started" => CallEvent::Started,
        "call_ended" => CallEvent::Ended,
        "call_analyzed" => CallEvent::Analyzed,
        other => CallEvent::Other(other.to_string()),
    };
    let mut r = VoiceReport::new(AgentProvider::Retell, call_id, event, &kind);
    r.platform_agent_id = s(c, &["agent_id"]);
    // The customer is the caller on an inbound call and the callee otherwise.
    r.customer_phone = match s(c, &["direction"]).as_deref() {
        Some("outbound") => s(c, &["to_number"]),
        _ => s(c, &["from_number"]),
    };
    r.started_at = c.get("start_timestamp").and_then(Value::as_i64);
    r.ended_at = c.get("end_timestamp").and_then(Value::as_i64);
    if let (Some(st), None, Some(d)) = (
        r.started_at,
        r.ended_at,
        c.get("duration_ms").and_then(Value::as_i64),
    ) {
        r.ended_at = Some(st + d);
    }
    r.ended_reason = s(c, &["disconnection_reason"]);
    // combined_cost is in cents.
    r.cost_micros = c
        .pointer("/call_cost/combined_cost")
        .and_then(Value::as_f64)
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|cents| (cents * 10_000.0).round() as i64);
    if let Some(a) = c.get("call_analysis") {
        r.summary = s(a, &["call_summary"]);
        r.success = a.get("call_successful").and_then(success_of);
        r.sentiment = a.get("user_sentiment").and_then(labelled_sentiment);
    }
    if let Some(turns) = c.get("transcript_object").and_then(Value::as_array) {
        for t in turns {
            let speaker = match t.get("role").and_then(Value::as_str) {
                Some("user") => Speaker::Customer,
                Some("agent") => Speaker::Agent,
                _ => continue,
            };
            let Some(text) = s(t, &["content"]) else {
                continue;
            };
            let offset_ms = t
                .pointer("/words/0/start")
                .and_then(Value::as_f64)
                .map(|sec| (sec * 1000.0).round() as Millis);
            r.transcript.push(Turn {
                speaker,
                text,
                offset_ms,
            });
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_800_000_000_000;

    #[test]
    fn vapi_hmac_and_legacy_secret_are_checked() {
        let body = br#"{"message":{"type":"status-update"}}"#;
        let ts = (NOW / 1000).to_string();
        let sig = vapi_sign(b"k", &ts, body);
        let ok = VapiAuth {
            signature: Some(&sig),
            timestamp: Some(&ts),
            legacy_secret: None,
        };
        assert_eq!(vapi_verify(b"k", ok, body, NOW), Ok(()));
        let prefixed = format!("sha256={sig}");
        assert_eq!(
            vapi_verify(
                b"k",
                VapiAuth {
                    signature: Some(&prefixed),
                    ..ok
                },
                body,
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            vapi_verify(b"other", ok, body, NOW),
            Err(VoiceVerifyError::Mismatch)
        );
        assert_eq!(
            vapi_verify(b"k", ok, b"{}", NOW),
            Err(VoiceVerifyError::Mismatch)
        );
        assert_eq!(
            vapi_verify(b"k", ok, body, NOW + RETELL_TOLERANCE_MS + 1000),
            Err(VoiceVerifyError::Stale)
        );
        let legacy = VapiAuth {
            legacy_secret: Some("k"),
            ..Default::default()
        };
        assert_eq!(vapi_verify(b"k", legacy, body, NOW), Ok(()));
        assert_eq!(
            vapi_verify(b"kk", legacy, body, NOW),
            Err(VoiceVerifyError::Mismatch)
        );
        assert_eq!(
            vapi_verify(b"k", VapiAuth::default(), body, NOW),
            Err(VoiceVerifyError::Missing)
        );
    }

    #[test]
    fn retell_signatures_bind_body_and_time() {
        let body = br#"{"event":"call_ended"}"#;
        let h = retell_sign(b"key", body, NOW);
        assert_eq!(retell_verify(b"key", Some(&h), body, NOW + 1000), Ok(()));
        assert_eq!(
            retell_verify(b"key", Some(&h), b"{}", NOW),
            Err(VoiceVerifyError::Mismatch)
        );
        assert_eq!(
            retell_verify(b"key", Some(&h), body, NOW + 6 * 60_000),
            Err(VoiceVerifyError::Stale)
        );
        assert_eq!(
            retell_verify(b"key", Some("v=1,d=zz"), body, NOW),
            Err(VoiceVerifyError::Malformed)
        );
        assert_eq!(
            retell_verify(b"key", None, body, NOW),
            Err(VoiceVerifyError::Missing)
        );
    }

    #[test]
    fn a_vapi_end_of_call_report_reads_in_full() {
        let body = serde_json::json!({"message": {
            "type": "end-of-call-report", "endedReason": "customer-ended-call",
            "cost": 0.1234, "startedAt": "2026-12-07T10:00:00.000Z", "endedAt": "2026-12-07T10:02:34.000Z",
            "call": {"id": "call_1", "type": "inboundPhoneCall"},
            "customer": {"number": "+14155550100"}, "assistant": {"id": "asst_9"},
            "analysis": {"summary": "Refund agreed.", "successEvaluation": "true"},
            "artifact": {"transcript": "AI: Hi\nUser: I love it, thanks", "messages": [
                {"role": "system", "message": "You are…"},
                {"role": "bot", "message": "Hi, how can I help?", "secondsFromStart": 0.5},
                {"role": "user", "message": "I love it, thanks, great help", "secondsFromStart": 3.25}
            ]}
        }});
        let r = parse_vapi(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.event, CallEvent::Ended);
        assert_eq!(
            (r.call_id.as_str(), r.delivery.as_str()),
            ("call_1", "end-of-call-report")
        );
        assert_eq!(r.cost_micros, Some(123_400));
        assert_eq!(r.duration_ms(), Some(154_000));
        assert_eq!(r.success, Some(true));
        assert_eq!(r.customer_phone.as_deref(), Some("+14155550100"));
        assert_eq!(r.platform_agent_id.as_deref(), Some("asst_9"));
        assert_eq!(r.transcript.len(), 2);
        assert_eq!(r.transcript[1].offset_ms, Some(3_250));
        assert!(r.sentiment.unwrap() > 5.0, "warm words score above neutral");
        let live = serde_json::json!({"message": {"type": "status-update", "status": "in-progress", "call": {"id": "call_1"}}});
        let l = parse_vapi(live.to_string().as_bytes()).unwrap();
        assert_eq!(
            (l.event, l.delivery.as_str()),
            (CallEvent::Started, "status-update:in-progress")
        );
        assert_eq!(parse_vapi(b"{}"), Err(VoiceError::Missing("message")));
        assert!(matches!(parse_vapi(b"not json"), Err(VoiceError::Json(_))));
    }

    #[test]
    fn a_retell_call_analyzed_reads_in_full() {
        let body = serde_json::json!({"event": "call_analyzed", "call": {
            "call_id": "c_77", "agent_id": "ag_1", "call_type": "phone_call", "direction": "outbound",
            "from_number": "+14155550000", "to_number": "+14155550111",
            "start_timestamp": NOW, "end_timestamp": NOW + 61_000, "duration_ms": 61_000,
            "disconnection_reason": "user_hangup",
            "call_cost": {"combined_cost": 12.5, "total_duration_seconds": 61},
            "transcript_object": [
                {"role": "agent", "content": "Hello!", "words": [{"word": "Hello", "start": 0.2, "end": 0.5}]},
                {"role": "user", "content": "Not interested."}
            ],
            "call_analysis": {"call_summary": "Declined.", "user_sentiment": "Negative", "call_successful": false}
        }});
        let r = parse_retell(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.event, CallEvent::Analyzed);
        assert_eq!(r.customer_phone.as_deref(), Some("+14155550111"));
        assert_eq!(r.cost_micros, Some(125_000));
        assert_eq!((r.success, r.sentiment), (Some(false), Some(2.0)));
        assert_eq!(r.duration_ms(), Some(61_000));
        assert_eq!(r.transcript[0].offset_ms, Some(200));
        assert_eq!(
            parse_retell(br#"{"event":"call_ended"}"#),
            Err(VoiceError::Missing("call"))
        );
    }
}
