//! Public web forms: a landing page's `<form>` posts straight
//! from the visitor's browser to `/f/{form_key}`, either as
//! `application/x-www-form-urlencoded` (a classic form post, or `fetch` with
//! `URLSearchParams`) or as a JSON object.
//!
//! There is no signature to verify: the form key sits in the page's HTML,
//! so it names the tenant but proves nothing. What protects the tenant is
//! a honeypot (`_hp`, a field hidden from people that bots fill in), a rate
//! limit in the web shell, and the limits below.
//!
//! Field names starting with `_` are controls, never user data:
//!
//! | name        | meaning                                                     |
//! |-------------|-------------------------------------------------------------|
//! | `_hp`       | honeypot: must be empty                                     |
//! | `_redirect` | thank-you page (absolute `http`/`https` URL)                |
//! | `_sid`      | client-generated submission id, `[A-Za-z0-9_-]{1,100}`      |
//! | `_partial`  | `1`/`true`: "form started", a partial save                  |
//! | `_page`     | the URL of the page the form is on                          |
//! | `_referrer` | the page's own referrer                                     |
//!
//! Other `_` names (a site framework's `_csrf`, say) are dropped.

use serde_json::Value;
use std::collections::BTreeMap;

/// Largest accepted body, in bytes.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Most user fields in one submission.
pub const MAX_FIELDS: usize = 100;
/// Longest field name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest field value, in characters (after trimming).
pub const MAX_VALUE_CHARS: usize = 2000;
/// Longest `_sid`, in characters.
pub const MAX_SID_CHARS: usize = 100;
/// Longest `_redirect`, `_page` and `_referrer` kept, in characters.
pub const MAX_URL_CHARS: usize = 2000;

/// Why a submission was refused; each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the form submission is {size} bytes; the limit is {MAX_BODY_BYTES} bytes: send fewer or shorter fields")]
    TooLarge { size: usize },
    #[error("content type {0:?} is not supported: post the form as application/x-www-form-urlencoded (the default for <form method=\"post\">) or as a JSON object")]
    UnsupportedContentType(String),
    #[error("the body is not a JSON object of field names to values: {0}")]
    Json(String),
    #[error("field {name:?} is {what}: send only text, numbers, booleans or lists of them")]
    NotAScalar { name: String, what: &'static str },
    #[error("a field name is longer than {MAX_NAME_CHARS} characters (it starts {0:?}): use shorter names")]
    NameTooLong(String),
    #[error("field {0:?} is longer than {MAX_VALUE_CHARS} characters: shorten it")]
    ValueTooLong(String),
    #[error("the submission has more than {MAX_FIELDS} fields: send fewer")]
    TooManyFields,
    #[error("the submission has no fields: give the form's inputs a name attribute")]
    NoFields,
    #[error(
        "_redirect must be an absolute http:// or https:// URL, like https://example.com/thanks"
    )]
    BadRedirect,
    #[error("_sid must be 1 to {MAX_SID_CHARS} characters of A-Z, a-z, 0-9, '_' or '-'")]
    BadSessionId,
    #[error("_partial must be \"1\" or \"true\" (a partial save), or \"0\", \"false\" or empty")]
    BadPartial,
    #[error(
        "a partial save (_partial=1) needs a _sid, so later saves of the same form are recognised"
    )]
    PartialWithoutSid,
}

/// One parsed submission.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submission {
    /// The visitor's fields: names and values trimmed, empty values left
    /// out, a repeated name (checkbox group) joined with ", ".
    pub fields: BTreeMap<String, String>,
    /// A bot filled in `_hp`. Store nothing, answer as for a success; the
    /// other members are then empty except `redirect`.
    pub honeypot_tripped: bool,
    pub redirect: Option<String>,
    pub session_id: Option<String>,
    /// A "form started" save rather than the final submission.
    pub partial: bool,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
}

/// The encodings a browser posts a form in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    UrlEncoded,
    Json,
}

fn encoding(content_type: Option<&str>, body: &[u8]) -> Result<Encoding, Error> {
    let sniff = || {
        if body.trim_ascii_start().first() == Some(&b'{') {
            Encoding::Json
        } else {
            Encoding::UrlEncoded
        }
    };
    let Some(ct) = content_type else {
        return Ok(sniff());
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Ok(Encoding::UrlEncoded),
        "application/json" => Ok(Encoding::Json),
        m if m.starts_with("application/") && m.ends_with("+json") => Ok(Encoding::Json),
        // navigator.sendBeacon and no-cors fetch send strings as text/plain.
        "text/plain" | "" => Ok(sniff()),
        _ => Err(Error::UnsupportedContentType(ct.chars().take(80).collect())),
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value, as
/// browsers do it (WHATWG URL, "urlencoded parser"): `+` is a space, `%XX`
/// a byte, a `%` not followed by two hex digits stays as it is, and bytes
/// that are not UTF-8 become U+FFFD. So no body is refused for encoding.
fn url_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = s.get(i + 1).copied().and_then(hex_val);
                let lo = s.get(i + 2).copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pairs_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in body.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (n, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        out.push((url_decode(n), url_decode(v)));
    }
    out
}

fn scalar(name: &str, v: &Value) -> Result<Option<String>, Error> {
    Ok(match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(_) => {
            return Err(Error::NotAScalar {
                name: short(name),
                what: "a list inside a list",
            })
        }
        Value::Object(_) => {
            return Err(Error::NotAScalar {
                name: short(name),
                what: "an object",
            })
        }
    })
}

/// The pairs of a JSON object, and the first value that is not a scalar
/// (reported after the honeypot is checked, so a bot learns nothing).
type Pairs = (Vec<(String, String)>, Option<Error>);

fn pairs_json(body: &[u8]) -> Result<Pairs, Error> {
    let v: Value = serde_json::from_slice(body).map_err(|e| Error::Json(e.to_string()))?;
    let Value::Object(map) = v else {
        return Err(Error::Json("the top level is not an object".into()));
    };
    let mut out = Vec::new();
    let mut first_err = None;
    for (name, v) in &map {
        let items = match v {
            Value::Array(items) => items.as_slice(),
            other => std::slice::from_ref(other),
        };
        for item in items {
            match scalar(name, item) {
                Ok(Some(s)) => out.push((name.clone(), s)),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    Ok((out, first_err))
}

/// The first characters of a name, for an error message.
fn short(s: &str) -> String {
    s.chars().take(MAX_NAME_CHARS).collect()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `Some(url)` when `s` is an absolute `http`/`https` URL with a host and
/// nothing a `Location` header could not carry.
pub fn valid_redirect(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_URL_CHARS {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return None;
    };
    // Printable ASCII only (a browser percent-encodes the rest), no spaces.
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') || authority.contains('\\') {
        return None;
    }
    Some(s.to_owned())
}

fn valid_sid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SID_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// Parses a form body. `content_type` is the request's `Content-Type`
/// header; without one (or as `text/plain`) a body starting with `{` is
/// read as JSON, anything else as URL encoding.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Submission, Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::TooLarge { size: body.len() });
    }
    let (pairs, deferred) = match encoding(content_type, body)? {
        Encoding::UrlEncoded => (pairs_urlencoded(body), None),
        Encoding::Json => pairs_json(body)?,
    };
    let control = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim())
    };
    // The honeypot first: a bot gets the success answer whatever else it
    // sent, so it learns nothing from an error.
    if control("_hp").is_some_and(|v| !v.is_empty()) {
        return Ok(Submission {
            honeypot_tripped: true,
            redirect: control("_redirect").and_then(valid_redirect),
            ..Submission::default()
        });
    }
    if let Some(e) = deferred {
        return Err(e);
    }
    let redirect = match control("_redirect").and_then(non_empty) {
        None => None,
        Some(r) => Some(valid_redirect(r).ok_or(Error::BadRedirect)?),
    };
    let session_id = match control("_sid").and_then(non_empty) {
        None => None,
        Some(s) if valid_sid(s) => Some(s.to_owned()),
        Some(_) => return Err(Error::BadSessionId),
    };
    let partial = match control("_partial").map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(Error::BadPartial),
    };
    if partial && session_id.is_none() {
        return Err(Error::PartialWithoutSid);
    }
    let page_url = control("_page")
        .and_then(non_empty)
        .map(|s| truncate(s, MAX_URL_CHARS));
    let referrer = control("_referrer")
        .and_then(non_empty)
        .map(|s| truncate(s, MAX_URL_CHARS));

    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &pairs {
        let name = name.trim();
        if name.is_empty() || name.starts_with('_') {
            continue;
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::NameTooLong(short(name)));
        }
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let len = value.chars().count();
        let joined_len = fields
            .get(name)
            .map_or(len, |v| v.chars().count() + 2 + len);
        if joined_len > MAX_VALUE_CHARS {
            return Err(Error::ValueTooLong(name.to_owned()));
        }
        match fields.get_mut(name) {
            Some(v) => {
                v.push_str(", ");
                v.push_str(value);
            }
            None => {
                if fields.len() == MAX_FIELDS {
                    return Err(Error::TooManyFields);
                }
                fields.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    if fields.is_empty() && !partial {
        return Err(Error::NoFields);
    }
    Ok(Submission {
        fields,
        honeypot_tripped: false,
        redirect,
        session_id,
        partial,
        page_url,
        referrer,
    })
}

/// Lowercase hex SHA-256 of a body, for [`dedupe_key`].
pub fn body_sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The event kind stored for a submission.
pub fn event_kind(s: &Submission) -> &'static str {
    if s.partial {
        "form_started"
    } else {
        "form_submitted"
    }
}

/// The key a submission is stored under, unique per form source (the store
/// scopes keys by source, so the key need not name the form):
///
/// - a partial save: `started:{sid}` — one "form started" per visit, later
///   partial saves of the same visit change nothing;
/// - a submission with a `_sid`: `submitted:{sid}`;
/// - without one: `submitted:sha256:{hex}` of the body, so an exact
///   double post (a double click, a reload) is one event.
pub fn dedupe_key(s: &Submission, body_sha256_hex: &str) -> String {
    match (&s.session_id, s.partial) {
        (Some(sid), true) => format!("started:{sid}"),
        (Some(sid), false) => format!("submitted:{sid}"),
        // parse refuses a partial without a sid; keep the key total anyway.
        (None, true) => format!("started:sha256:{body_sha256_hex}"),
        (None, false) => format!("submitted:sha256:{body_sha256_hex}"),
    }
}

/// The contact fields a form source's snippet offers: the names the
/// intake pipeline reads as a person's name, company and identifiers (see
/// `intake::interpret`), as (name, label, input type, autocomplete).
pub const SNIPPET_FIELDS: [(&str, &str, &str, &str); 6] = [
    ("first_name", "First name", "text", "given-name"),
    ("last_name", "Last name", "text", "family-name"),
    ("email", "Email", "email", "email"),
    ("phone", "Phone", "tel", "tel"),
    ("company", "Company", "text", "organization"),
    ("message", "Message", "textarea", "off"),
];

fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A ready-to-paste HTML form that posts to `action` (a form source's
/// public URL): the contact fields above and the honeypot, hidden from
/// people. `thank_you` says whether the source already sends visitors to
/// a thank-you page; when it does not, the snippet shows how to name one.
pub fn snippet(action: &str, thank_you: bool) -> String {
    let mut out = format!("<form action=\"{}\" method=\"post\">\n", attr(action));
    for (name, label, kind, auto) in SNIPPET_FIELDS {
        let input = if kind == "textarea" {
            format!("<textarea name=\"{name}\" rows=\"4\"></textarea>")
        } else {
            let required = if name == "email" { " required" } else { "" };
            format!("<input type=\"{kind}\" name=\"{name}\" autocomplete=\"{auto}\"{required}>")
        };
        out.push_str(&format!("  <label>{label} {input}</label>\n"));
    }
    out.push_str(
        "  <!-- Leave this field empty and hidden: bots fill it in and are ignored. -->\n  \
         <input type=\"text\" name=\"_hp\" value=\"\" tabindex=\"-1\" autocomplete=\"off\" \
         aria-hidden=\"true\" style=\"position:absolute;left:-9999px\">\n",
    );
    if !thank_you {
        out.push_str(
            "  <!-- Optional: where visitors land after sending.\n  \
             <input type=\"hidden\" name=\"_redirect\" value=\"https://example.com/thanks\"> -->\n",
        );
    }
    out.push_str("  <button type=\"submit\">Send</button>\n</form>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snippet_posts_what_the_pipeline_reads() {
        let html = snippet("https://bos.example/f/fk_abc\"x", false);
        assert!(html
            .starts_with("<form action=\"https://bos.example/f/fk_abc&quot;x\" method=\"post\">"));
        for (name, ..) in SNIPPET_FIELDS {
            assert!(html.contains(&format!("name=\"{name}\"")), "{name}");
        }
        assert!(html.contains("name=\"_hp\" value=\"\""));
        assert!(html.contains("_redirect"), "how to name a thank-you page");
        assert!(!snippet("https://bos.example/f/fk_abc", true).contains("_redirect"));
        // Filled in by a visitor as a browser would post it: the fields
        // arrive, the (empty) honeypot does not trip.
        let body = b"first_name=Ada&last_name=Lovelace&email=ada%40example.com&phone=&company=&message=Hi&_hp=";
        let s = parse(Some("application/x-www-form-urlencoded"), body).unwrap();
        assert!(!s.honeypot_tripped);
        assert_eq!(s.fields["email"], "ada@example.com");
        assert_eq!(s.fields["first_name"], "Ada");
    }

    const URLENC: Option<&str> = Some("application/x-www-form-urlencoded");
    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    fn ok(ct: Option<&str>, body: &str) -> Submission {
        parse(ct, body.as_bytes()).expect(body)
    }

    #[test]
    fn urlencoded_fields_are_decoded_and_trimmed() {
        let s = ok(
            URLENC,
            "name=+Ada%20Lovelace+&email=ada%40example.com&msg=caf%C3%A9&empty=&=x&&flag",
        );
        assert_eq!(s.fields.len(), 3);
        assert_eq!(s.fields["name"], "Ada Lovelace");
        assert_eq!(s.fields["email"], "ada@example.com");
        assert_eq!(s.fields["msg"], "café");
        assert!(!s.partial && !s.honeypot_tripped);
        assert_eq!(s.session_id, None);
    }

    #[test]
    fn urlencoding_is_decoded_like_browsers_do() {
        let s = ok(URLENC, "a=100%&b=%zz%4&c=%ff&d=%E2%82%AC");
        assert_eq!(s.fields["a"], "100%");
        assert_eq!(s.fields["b"], "%zz%4");
        assert_eq!(s.fields["c"], "\u{fffd}");
        assert_eq!(s.fields["d"], "€");
    }

    #[test]
    fn repeated_names_are_joined() {
        let s = ok(URLENC, "i=a&i=b&i=&x=1");
        assert_eq!(s.fields["i"], "a, b");
        let j = ok(JSON, r#"{"i":["a","b",null,3],"x":true,"y":null,"z":1.5}"#);
        assert_eq!(j.fields["i"], "a, b, 3");
        assert_eq!(j.fields["x"], "true");
        assert_eq!(j.fields["z"], "1.5");
        assert!(!j.fields.contains_key("y"));
    }

    #[test]
    fn controls_are_read_and_not_fields() {
        let s = ok(
            URLENC,
            "email=a%40b.c&_hp=&_redirect=https%3A%2F%2Fex.com%2Fthanks%3Fa%3D1&_sid=abc-123_X\
             &_partial=1&_page=https%3A%2F%2Fex.com%2Flp&_referrer=https%3A%2F%2Fgoogle.com%2F&_csrf=zz",
        );
        assert_eq!(s.fields.keys().collect::<Vec<_>>(), ["email"]);
        assert_eq!(s.redirect.as_deref(), Some("https://ex.com/thanks?a=1"));
        assert_eq!(s.session_id.as_deref(), Some("abc-123_X"));
        assert!(s.partial);
        assert_eq!(s.page_url.as_deref(), Some("https://ex.com/lp"));
        assert_eq!(s.referrer.as_deref(), Some("https://google.com/"));
        let j = ok(JSON, r#"{"email":"a@b.c","_partial":true,"_sid":"s1"}"#);
        assert!(j.partial);
        assert_eq!(j.session_id.as_deref(), Some("s1"));
    }

    #[test]
    fn honeypot_wins_over_everything() {
        let s = ok(
            URLENC,
            "_hp=buy+pills&email=x&_sid=%%%bad&_redirect=https%3A%2F%2Fa.b%2F",
        );
        assert!(s.honeypot_tripped);
        assert!(s.fields.is_empty());
        assert_eq!(s.redirect.as_deref(), Some("https://a.b/"));
        let s = ok(JSON, r#"{"_hp":"x","n":{"deep":1}}"#);
        assert!(s.honeypot_tripped);
    }

    #[test]
    fn bad_input_says_what_to_fix() {
        let e = |ct, b: &str| parse(ct, b.as_bytes()).unwrap_err();
        assert!(matches!(e(JSON, "[1]"), Error::Json(_)));
        assert!(matches!(e(JSON, "{"), Error::Json(_)));
        assert!(matches!(
            e(JSON, r#"{"a":{"b":1}}"#),
            Error::NotAScalar { .. }
        ));
        assert!(matches!(
            e(JSON, r#"{"a":[[1]]}"#),
            Error::NotAScalar { .. }
        ));
        assert!(matches!(
            e(Some("multipart/form-data; boundary=x"), "a=1"),
            Error::UnsupportedContentType(_)
        ));
        assert_eq!(
            e(URLENC, &format!("{}=1", "n".repeat(65))),
            Error::NameTooLong("n".repeat(64))
        );
        assert_eq!(
            e(URLENC, &format!("v={}", "é".repeat(2001))),
            Error::ValueTooLong("v".into())
        );
        assert_eq!(
            e(URLENC, &format!("v={0}&v={0}", "x".repeat(1000))),
            Error::ValueTooLong("v".into())
        );
        let many: Vec<String> = (0..101).map(|i| format!("f{i}=1")).collect();
        assert_eq!(e(URLENC, &many.join("&")), Error::TooManyFields);
        assert_eq!(e(URLENC, "_sid=x"), Error::NoFields);
        assert_eq!(
            e(URLENC, "a=1&_redirect=javascript:alert(1)"),
            Error::BadRedirect
        );
        assert_eq!(e(URLENC, "a=1&_redirect=%2Fthanks"), Error::BadRedirect);
        assert_eq!(e(URLENC, "a=1&_sid=a%20b"), Error::BadSessionId);
        assert_eq!(
            e(URLENC, &format!("a=1&_sid={}", "s".repeat(101))),
            Error::BadSessionId
        );
        assert_eq!(e(URLENC, "a=1&_partial=yes"), Error::BadPartial);
        assert_eq!(e(URLENC, "a=1&_partial=1"), Error::PartialWithoutSid);
        let big = vec![b'a'; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse(URLENC, &big),
            Err(Error::TooLarge {
                size: MAX_BODY_BYTES + 1
            })
        );
        // Every message is a sentence the sender can act on.
        assert!(Error::TooManyFields.to_string().contains("send fewer"));
    }

    #[test]
    fn exactly_at_the_limits_is_fine() {
        let many: Vec<String> = (0..100).map(|i| format!("f{i}=1")).collect();
        assert_eq!(ok(URLENC, &many.join("&")).fields.len(), 100);
        let s = ok(URLENC, &format!("{}={}", "n".repeat(64), "v".repeat(2000)));
        assert_eq!(s.fields.len(), 1);
        let s = ok(URLENC, &format!("a=1&_sid={}", "s".repeat(100)));
        assert_eq!(s.session_id.map(|s| s.len()), Some(100));
        // Page and referrer are kept, cut to the limit, never refused.
        let s = ok(
            URLENC,
            &format!("a=1&_page=https://x.y/{}", "p".repeat(3000)),
        );
        assert_eq!(s.page_url.map(|p| p.chars().count()), Some(MAX_URL_CHARS));
    }

    #[test]
    fn content_type_is_sniffed_when_absent_or_plain() {
        assert_eq!(ok(None, r#"{"a":"1"}"#).fields["a"], "1");
        assert_eq!(ok(None, "a=1").fields["a"], "1");
        assert_eq!(
            ok(Some("text/plain;charset=UTF-8"), " {\"a\":2}").fields["a"],
            "2"
        );
        assert_eq!(
            ok(Some("application/vnd.api+json"), r#"{"a":3}"#).fields["a"],
            "3"
        );
        assert_eq!(
            ok(
                Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
                "a=4"
            )
            .fields["a"],
            "4"
        );
    }

    #[test]
    fn redirects() {
        assert!(valid_redirect("https://example.com").is_some());
        assert!(valid_redirect("HTTP://example.com:8080/a?b#c").is_some());
        for bad in [
            "",
            "example.com/thanks",
            "//evil.com",
            "ftp://x.y/",
            "https://",
            "https:///path",
            "https://:80/",
            "https://a b.com/",
            "https://x.y/\r\nSet-Cookie:a",
            "https://ex\\ample.com/",
            "javascript://x.y/%0aalert(1)x",
        ] {
            assert_eq!(valid_redirect(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dedupe_keys() {
        let hex = body_sha256_hex(b"a=1");
        assert_eq!(hex.len(), 64);
        assert_eq!(
            body_sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let full = ok(URLENC, "a=1");
        assert_eq!(dedupe_key(&full, &hex), format!("submitted:sha256:{hex}"));
        assert_eq!(event_kind(&full), "form_submitted");
        let sid = ok(URLENC, "a=1&_sid=s-1");
        assert_eq!(dedupe_key(&sid, &hex), "submitted:s-1");
        let started = ok(URLENC, "_sid=s-1&_partial=true");
        assert_eq!(dedupe_key(&started, &hex), "started:s-1");
        assert_eq!(event_kind(&started), "form_started");
        // Two partial saves of one visit share a key; the final one differs.
        let later = ok(URLENC, "a=12&_sid=s-1&_partial=1");
        assert_eq!(dedupe_key(&later, "other"), dedupe_key(&started, &hex));
    }
}
