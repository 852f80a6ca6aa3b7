//! The fuzzing of `fuzz/` in plain `cargo test`: every intake parser is fed
//! arbitrary bytes, and JSON built from the field names the parsers look for
//! (random bytes are almost never JSON, so they alone would only exercise the
//! first `serde_json` error). Passing means no panic; results are ignored.
//! The cargo-fuzz targets in `fuzz/` do the same with coverage guidance.

use proptest::prelude::*;
use serde_json::Value;

use super::{form, interpret, parse_minor_units, segment, shopify, standard_webhooks as sw};

/// The names the parsers read, so generated objects hit real code paths.
const KEYS: &[&str] = &[
    "id",
    "token",
    "cart_token",
    "checkout_token",
    "email",
    "contact_email",
    "phone",
    "customer",
    "billing_address",
    "shipping_address",
    "first_name",
    "last_name",
    "total_price",
    "subtotal_price",
    "currency",
    "line_items",
    "price",
    "quantity",
    "product_id",
    "variant_id",
    "sku",
    "title",
    "abandoned_checkout_url",
    "completed_at",
    "created_at",
    "updated_at",
    "processed_at",
    "name",
    "order_number",
    "financial_status",
    "note",
    "email_marketing_consent",
    "sms_marketing_consent",
    "state",
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "traits",
    "properties",
    "event",
    "previousId",
    "category",
    "context",
    "page",
    "url",
    "search",
    "path",
    "referrer",
    "campaign",
    "source",
    "medium",
    "term",
    "content",
    "ip",
    "userAgent",
    "batch",
    "writeKey",
    "_hp",
    "_redirect",
    "_sid",
    "_partial",
    "_page",
    "_referrer",
    "fields",
    "session_id",
    "page_url",
    "data",
    "identifiers",
    "summary",
    "amount",
    "revenue",
    "total",
    "value",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
        "[0-9]{1,30}(\\.[0-9]{0,30})?".prop_map(Value::from),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])"
            .prop_map(Value::from),
        "https://x\\.test/\\?([a-z_]{1,8}=[%0-9A-Za-z+]{0,8}&?){0,4}".prop_map(Value::from),
        prop::sample::select(&["identify", "track", "page", "alias", "screen"][..])
            .prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn exercise_all(body: &[u8], text: &str) {
    let now = 1_700_000_000_000;
    for t in shopify::Topic::ALL {
        let _ = shopify::parse(t, body);
        let _ = shopify::dedupe_key(t, Some(text), None);
    }
    let _ = shopify::Topic::parse(text);
    let _ = shopify::verify(&[b"secret"], Some(text), body);
    for t in segment::CallType::ALL {
        let _ = segment::parse_call(t, body, now);
    }
    let _ = super::without_nul(body);
    let _ = segment::parse_batch(body, now);
    let _ = segment::parse_batch(body, i64::MIN);
    let _ = segment::parse_call(segment::CallType::Track, body, i64::MAX);
    let _ = segment::write_key_from_basic(text);
    let _ = sw::Secret::parse(text);
    if let Ok(secret) = sw::Secret::from_bytes(vec![1; 32]) {
        let headers = sw::Headers {
            id: Some(text),
            timestamp: Some(text),
            signature: Some(text),
        };
        let _ = sw::verify(std::slice::from_ref(&secret), headers, body, now);
        let _ = sw::verify(&[secret], headers, body, i64::MIN);
    }
    for exp in 0..4 {
        let _ = parse_minor_units(text, exp);
    }
    exercise_form(body, text);
    // The pipeline's reader of stored payloads, for every source and kind.
    for (src, kinds) in [
        (
            "segment",
            &["identify", "track", "page", "alias", "screen", "group"][..],
        ),
        (
            "shopify",
            &[
                "checkouts/create",
                "carts/update",
                "orders/paid",
                "customers/create",
                "x",
            ][..],
        ),
        ("form", &["form_started", "form_submitted"][..]),
        ("webhook", &["lead.created", ""][..]),
        ("other", &["x"][..]),
    ] {
        for k in kinds.iter().copied().chain([text]) {
            let _ = interpret::interpret(src, k, body, now);
        }
    }
}

fn exercise_form(body: &[u8], text: &str) {
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("application/json"),
        Some("text/plain"),
        Some(text),
    ] {
        if let Ok(s) = form::parse(ct, body) {
            let _ = form::dedupe_key(&s, &form::body_sha256_hex(body));
            let _ = form::event_kind(&s);
        }
    }
    let _ = form::valid_redirect(text);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&body).into_owned();
        exercise_all(&body, &text);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json(), text in ".{0,40}") {
        let body = serde_json::to_vec(&v).unwrap_or_default();
        exercise_all(&body, &text);
        // Also wrapped as a batch, so every generated value is a batch message.
        let batch = serde_json::json!({ "batch": [v.clone(), v], "sentAt": text });
        let _ = segment::parse_batch(&serde_json::to_vec(&batch).unwrap_or_default(), 0);
    }

    #[test]
    fn standard_webhook_headers_never_panic(
        id in ".{0,300}",
        ts in "[-+0-9 ]{0,20}",
        sig in "((v1|v1a|v2)?,?[A-Za-z0-9+/=]{0,50} ?){0,20}",
        now in any::<i64>(),
    ) {
        let secret = sw::Secret::from_bytes(vec![7; 24]).expect("24 bytes");
        let headers = sw::Headers { id: Some(&id), timestamp: Some(&ts), signature: Some(&sig) };
        let _ = sw::verify(&[secret], headers, b"{}", now);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Form bodies built from control names, percent signs and separators,
    /// so the decoder's edge cases come up often.
    #[test]
    fn form_bodies_never_panic(
        parts in prop::collection::vec(
            (
                prop::sample::select(&["_hp", "_redirect", "_sid", "_partial", "_page", "_referrer", "email", "", "_", "n%"][..]),
                "[-%=&+0-9a-fA-F:/._ é]{0,12}",
            ),
            0..12,
        ),
    ) {
        let body: Vec<String> = parts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let body = body.join("&");
        exercise_form(body.as_bytes(), &body);
    }
}

#[test]
fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    exercise_all(deep.as_bytes(), "");
    let deep_obj = format!(
        r#"{{"userId":"u","event":"E","properties":{}1{}}}"#,
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    exercise_all(deep_obj.as_bytes(), "");
}

/// Amounts and quantities at and past the edges of i64 cents: the generator
/// found `"amount": "1e27"` overflowing a multiplication once, so the edges
/// are pinned here rather than left to chance.
#[test]
fn extreme_amounts_and_quantities_never_panic() {
    let huge = [
        "1000000000000000000000000000",
        "79228162514264337593543950335",
        "92233720368547758.07",
        "92233720368547758.08",
        "-1",
        "0.005",
        "1e400",
    ];
    for a in huge {
        for key in [
            "amount",
            "value",
            "revenue",
            "total",
            "price",
            "total_price",
        ] {
            let body = serde_json::json!({ key: a, "properties": { key: a }, "email": "a@b.co" });
            exercise_all(&serde_json::to_vec(&body).unwrap(), a);
        }
        let cart = serde_json::json!({
            "id": "c1", "token": "t1",
            "line_items": [
                { "quantity": 4294967295u32, "price": a, "title": "x" },
                { "quantity": 4294967295u32, "price": "92233720368547758.07", "title": "y" }
            ]
        });
        exercise_all(&serde_json::to_vec(&cart).unwrap(), a);
    }
}
