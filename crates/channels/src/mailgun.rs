//! Mailgun inbound routes: the signature carried in the
//! form fields (`timestamp`, `token`, `signature`) and the url-encoded
//! `forward()` payload. Remembering tokens so each is used once is the
//! caller's job (it has the database).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::address::{bare_id, id_list, plus_token, split_mailbox};
use crate::{InboundEmail, ParseError};

/// The signature fields of a delivery, for `verify` and replay protection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailgunAuth {
    pub timestamp: String,
    pub token: String,
    pub signature: String,
}

/// `signature_hex == hex(HMAC-SHA256(signing_key, timestamp + token))`, in
/// constant time, and the timestamp within `max_age_s` of now either way (a
/// future timestamp is as suspicious as an old one).
pub fn verify(
    signing_key: &str,
    timestamp: &str,
    token: &str,
    signature_hex: &str,
    now_unix_s: i64,
    max_age_s: i64,
) -> bool {
    let Ok(ts) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if now_unix_s.abs_diff(ts) > max_age_s.unsigned_abs() {
        return false;
    }
    let Some(expected) = decode_hex(signature_hex.trim()) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 == 1 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Parses a `forward()` delivery. Only `application/x-www-form-urlencoded`:
/// multipart (sent when the mail has attachments) is refused here; the web
/// hook turns its text fields into this form first.
pub fn parse(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(InboundEmail, MailgunAuth), ParseError> {
    let ct = content_type.unwrap_or("").trim();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" | "" => {}
        "multipart/form-data" => return Err(ParseError::Multipart),
        _ => return Err(ParseError::UnsupportedContentType(ct.to_string())),
    }
    let fields: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    let required = |name: &'static str| get(name).ok_or(ParseError::Missing(name));

    let auth = MailgunAuth {
        timestamp: required("timestamp")?.to_string(),
        token: required("token")?.to_string(),
        signature: required("signature")?.to_string(),
    };

    // `message-headers` is a JSON array of [name, value] pairs, order kept.
    let headers: Vec<(String, String)> = match get("message-headers") {
        None => Vec::new(),
        Some(raw) => {
            let pairs: Vec<Vec<serde_json::Value>> =
                serde_json::from_str(raw).map_err(|e| ParseError::Invalid {
                    field: "message-headers",
                    reason: format!("not a JSON array of [name, value]: {e}"),
                })?;
            pairs
                .into_iter()
                .filter_map(|pair| match pair.as_slice() {
                    [serde_json::Value::String(n), serde_json::Value::String(v)] => {
                        Some((n.clone(), v.clone()))
                    }
                    _ => None,
                })
                .collect()
        }
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };

    let (from_name, from) = split_mailbox(
        get("from")
            .or(get("sender"))
            .ok_or(ParseError::Missing("from"))?,
    );
    if from.is_empty() {
        return Err(ParseError::Missing("from"));
    }
    let (_, to) = split_mailbox(
        get("recipient")
            .or(get("To"))
            .ok_or(ParseError::Missing("recipient"))?,
    );
    let message_id = header("Message-Id").and_then(bare_id);
    let text = get("stripped-text")
        .or(get("body-plain"))
        .unwrap_or("")
        .to_string();
    Ok((
        InboundEmail {
            // Mailgun's dedup key is the Message-Id; a mail without one (rare,
            // broken senders) falls back to the delivery token, which at least
            // dedupes the same POST.
            provider_message_id: message_id
                .clone()
                .unwrap_or_else(|| format!("token:{}", auth.token)),
            message_id,
            mailbox_hash: plus_token(&to),
            from,
            from_name,
            to,
            subject: get("subject").unwrap_or("").to_string(),
            text,
            in_reply_to: header("In-Reply-To").and_then(bare_id),
            references: header("References").map(id_list).unwrap_or_default(),
            html: get("stripped-html")
                .or(get("body-html"))
                .map(str::to_string),
            // Filled by the caller from a multipart post's file parts: a
            // url-encoded post carries none.
            attachments: Vec::new(),
        },
        auth,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sign(key: &str, ts: &str, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(ts.as_bytes());
        mac.update(token.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn verify_accepts_fresh_and_rejects_the_rest() {
        let ts = NOW.to_string();
        let sig = sign("key-1", &ts, "tok123");
        assert!(verify("key-1", &ts, "tok123", &sig, NOW, 300));
        assert!(verify(
            "key-1",
            &ts,
            "tok123",
            &sig.to_uppercase(),
            NOW + 300,
            300
        ));
        // Stale and from the future.
        assert!(!verify("key-1", &ts, "tok123", &sig, NOW + 301, 300));
        assert!(!verify("key-1", &ts, "tok123", &sig, NOW - 301, 300));
        // Another tenant's key, a changed token, a changed signature byte.
        assert!(!verify("key-2", &ts, "tok123", &sig, NOW, 300));
        assert!(!verify("key-1", &ts, "tok124", &sig, NOW, 300));
        let mut bad = sig.clone();
        bad.replace_range(0..1, if &sig[0..1] == "0" { "1" } else { "0" });
        assert!(!verify("key-1", &ts, "tok123", &bad, NOW, 300));
        // Missing / malformed.
        assert!(!verify("key-1", &ts, "tok123", "", NOW, 300));
        assert!(!verify("key-1", &ts, "tok123", "zz", NOW, 300));
        assert!(!verify("key-1", "", "tok123", &sig, NOW, 300));
        assert!(!verify("key-1", "17e8", "tok123", &sig, NOW, 300));
        assert!(!verify("key-1", &ts, "tok123", &sig[..62], NOW, 300));
    }

    // The fields Mailgun documents for a url-encoded forward().
    fn sample() -> String {
        let headers = serde_json::json!([
            ["Received", "by mx.example.com"],
            ["Message-Id", "<CAF=abc@mail.gmail.com>"],
            ["In-Reply-To", "<m1@bos.local>"],
            ["References", "<m0@bos.local> <m1@bos.local>"],
            ["Subject", "Re: Your order"]
        ]);
        form_urlencoded::Serializer::new(String::new())
            .append_pair("recipient", "reply+conv42@in.shop.example")
            .append_pair("sender", "jane@example.com")
            .append_pair("from", "Jane Doe <Jane@Example.com>")
            .append_pair("subject", "Re: Your order")
            .append_pair(
                "body-plain",
                "Yes please!\n\nOn Mon, BOS wrote:\n> Your order",
            )
            .append_pair("stripped-text", "Yes please!")
            .append_pair("body-html", "<p>Yes please!</p>")
            .append_pair("message-headers", &headers.to_string())
            .append_pair("timestamp", "1700000000")
            .append_pair("token", "tok123")
            .append_pair("signature", "abc")
            .finish()
    }

    #[test]
    fn parses_a_forward() {
        let (mail, auth) = parse(
            Some("application/x-www-form-urlencoded"),
            sample().as_bytes(),
        )
        .unwrap();
        assert_eq!(mail.provider_message_id, "CAF=abc@mail.gmail.com");
        assert_eq!(mail.message_id.as_deref(), Some("CAF=abc@mail.gmail.com"));
        assert_eq!(mail.from, "jane@example.com");
        assert_eq!(mail.from_name.as_deref(), Some("Jane Doe"));
        assert_eq!(mail.to, "reply+conv42@in.shop.example");
        assert_eq!(mail.mailbox_hash.as_deref(), Some("conv42"));
        assert_eq!(mail.subject, "Re: Your order");
        assert_eq!(mail.text, "Yes please!");
        assert_eq!(mail.in_reply_to.as_deref(), Some("m1@bos.local"));
        assert_eq!(mail.references, vec!["m0@bos.local", "m1@bos.local"]);
        assert_eq!(auth.timestamp, "1700000000");
        assert_eq!(auth.token, "tok123");
        assert_eq!(auth.signature, "abc");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            parse(Some("multipart/form-data; boundary=x"), b"--x--"),
            Err(ParseError::Multipart)
        );
        assert!(ParseError::Multipart
            .to_string()
            .contains("without attachments"));
        assert!(matches!(
            parse(Some("application/json"), b"{}"),
            Err(ParseError::UnsupportedContentType(_))
        ));
        assert_eq!(
            parse(None, b"from=a%40b"),
            Err(ParseError::Missing("timestamp"))
        );
        let no_from = sample().replace("from=", "x=").replace("sender=", "y=");
        assert_eq!(
            parse(None, no_from.as_bytes()),
            Err(ParseError::Missing("from"))
        );
        let bad_headers = sample().replace("message-headers=%5B", "message-headers=%7B");
        assert!(matches!(
            parse(None, bad_headers.as_bytes()),
            Err(ParseError::Invalid {
                field: "message-headers",
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..512), ct in proptest::option::of(".{0,40}"), sig in ".{0,70}", ts in ".{0,12}", now in any::<i64>(), age in any::<i64>()) {
            let _ = parse(ct.as_deref(), &body);
            let _ = verify("k", &ts, "t", &sig, now, age);
        }
    }
}
