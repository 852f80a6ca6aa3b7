//! What SDKs send as they ship (issue: every Segment and RudderStack SDK
//! works with its defaults): gzip and deflate bodies on every intake
//! endpoint with the limits on the decompressed size (a zip bomb is a 413,
//! and memory stays flat), the whole Segment spec (`screen`, `group`, alone
//! and in batches, unknown call types counted and reported), error bodies
//! with the `code` and `message` SDKs read, and U+0000 in payloads made
//! harmless at the edge so the pipeline never fails on it (PostgreSQL's
//! text cannot hold it).

use crate::intake::{basic, shopify_headers, shopify_source, source, Src};
use crate::pipeline::{at, segment};
use crate::support::*;
use bos_core::intake::standard_webhooks::{self, Secret};
use bos_store::pipeline::LeadFilter;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use uuid::Uuid;

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(b: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// `n` zero bytes, gzipped without ever holding them.
fn gzip_zeros(n: usize) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        e.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
    e.finish().unwrap()
}

fn track(id: &str, user: &str) -> Value {
    json!({"type": "track", "event": "Signed Up", "messageId": id, "userId": user,
           "timestamp": "2026-05-28T21:00:00.000Z"})
}

async fn post(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    app.post_raw(path, headers, body).await
}

fn auth(s: &Src) -> (&'static str, String) {
    ("authorization", basic(&s.secret))
}

/// Problem+json with the members SDKs read: `code` (the slug of `type`)
/// and `message` (the same text as `detail`).
async fn sdk_problem(res: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let v: Value = res.json().await.unwrap();
    let code = v["code"].as_str().unwrap_or_else(|| panic!("no code: {v}"));
    assert_eq!(v["type"], format!("urn:bos:problem:{code}"), "{v}");
    assert_eq!(v["status"], status.as_u16());
    assert!(!v["title"].as_str().unwrap().is_empty());
    assert_eq!(v["message"], v["detail"], "{v}");
    assert!(v["message"].as_str().unwrap().len() > 20, "{v}");
    v
}

async fn stored(app: &TestApp, s: &Src) -> Vec<bos_store::intake::InboundEvent> {
    app.store().recent_inbound(s.org, s.id, 100).await.unwrap()
}

/// The one lead of a tenant (each test's tenant has one customer).
async fn only_lead(app: &TestApp, org: Uuid) -> bos_store::pipeline::Lead {
    let feed = app
        .store()
        .lead_feed(
            org,
            &LeadFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(feed.len(), 1, "one customer: {feed:?}");
    feed.into_iter().next().unwrap()
}

async fn timeline(
    app: &TestApp,
    org: Uuid,
    profile: Uuid,
) -> Vec<bos_store::identity::TimelineEntry> {
    app.timeline(org, profile).await
}

fn count(entries: &[bos_store::identity::TimelineEntry], kind: &str) -> usize {
    entries.iter().filter(|e| e.kind == kind).count()
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_read_on_every_intake_endpoint() {
    let app = spawn_app().await;
    let s = source(&app, "Gzip Seg", "segment").await;
    let h = [auth(&s)];
    let enc = |e: &str| ("content-encoding", e.to_string());

    // A batch gzipped as rudder-sdk-python sends it by default.
    let batch =
        serde_json::to_vec(&json!({"batch": [track("g-1", "u-1"), track("g-2", "u-1")]})).unwrap();
    let res = post(
        &app,
        "/v1/batch",
        &[h[0].clone(), enc("gzip")],
        gzip(&batch),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"success": true}));
    // Single calls: zlib deflate (HTTP's), raw deflate, and gzip.
    let one = |id: &str| serde_json::to_vec(&track(id, "u-1")).unwrap();
    for (path, e, body) in [
        ("/v1/track", "deflate", zlib(&one("d-1"))),
        ("/v1/track", "deflate", raw_deflate(&one("d-2"))),
        ("/v1/track", "gzip", gzip(&one("d-3"))),
    ] {
        let res = post(&app, path, &[h[0].clone(), enc(e)], body).await;
        assert_eq!(res.status(), StatusCode::OK, "{e}");
    }
    let mut ids: Vec<String> = stored(&app, &s)
        .await
        .into_iter()
        .map(|e| e.external_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["d-1", "d-2", "d-3", "g-1", "g-2"]);
    // What is stored is the JSON, not the compressed bytes.
    let e = stored(&app, &s)
        .await
        .into_iter()
        .find(|e| e.external_id == "d-1")
        .unwrap();
    assert_eq!(e.payload.as_bytes(), &one("d-1")[..]);

    // A Standard Webhooks delivery, signed over the JSON, sent gzipped.
    let hook = source(&app, "Gzip Hook", "webhook").await;
    let secret = Secret::parse(&hook.secret).unwrap();
    let body = br#"{"type":"lead.created","data":{"email":"gz@example.com"}}"#;
    let ts = T0 / 1000;
    let res = post(
        &app,
        &format!("/hooks/{}", hook.id),
        &[
            ("webhook-id", "msg_gz".into()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                standard_webhooks::sign(&secret, "msg_gz", ts, body),
            ),
            enc("gzip"),
        ],
        gzip(body),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    assert_eq!(stored(&app, &hook).await[0].payload.as_bytes(), body);

    // Shopify, HMAC over the JSON, deflated.
    let shop = shopify_source(&app, "Gzip Shop", "shpss_gz").await;
    let order = br#"{"id": 9, "email": "shop@example.com", "currency": "USD", "total_price": "5.00", "line_items": []}"#;
    let mut sh = shopify_headers("customers/create", "ev-gz", &shop.secret, order);
    sh.push(enc("deflate"));
    let res = post(
        &app,
        &format!("/hooks/shopify/{}", shop.id),
        &sh,
        zlib(order),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    assert_eq!(stored(&app, &shop).await.len(), 1);

    // A web form posted by a script that gzips.
    let org = app.org("Gzip Form").await;
    let key = app.key(&org, "admin").await;
    let v: Value = app
        .post_source(&key, "form", "Landing")
        .await
        .json()
        .await
        .unwrap();
    let endpoint = v["source"]["endpoint"].as_str().unwrap().to_string();
    let form_id: Uuid = v["source"]["id"].as_str().unwrap().parse().unwrap();
    let res = app
        .http
        .post(&endpoint)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(br#"{"email":"form@example.com","name":"Gz"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    assert_eq!(app.store().inbound_count(org.id, form_id).await.unwrap(), 1);

    // Garbage that says it is gzip: 400, with what to do.
    let res = post(
        &app,
        "/v1/batch",
        &[h[0].clone(), enc("gzip")],
        batch.clone(),
    )
    .await;
    let p = sdk_problem(res, StatusCode::BAD_REQUEST).await;
    assert!(p["detail"].as_str().unwrap().contains("gzip"), "{p}");
    assert_eq!(stored(&app, &s).await.len(), 5);
}

#[tokio::test]
async fn an_unknown_content_encoding_is_415_with_what_to_send() {
    let app = spawn_app().await;
    let s = source(&app, "Brotli Seg", "segment").await;
    let body = serde_json::to_vec(&track("b-1", "u")).unwrap();
    for path in ["/v1/track", "/v1/batch"] {
        let res = post(
            &app,
            path,
            &[auth(&s), ("content-encoding", "br".into())],
            body.clone(),
        )
        .await;
        let p = sdk_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        let d = p["detail"].as_str().unwrap();
        assert!(
            d.contains("\"br\"") && d.contains("gzip") && d.contains("deflate"),
            "{d}"
        );
    }
    let hook = source(&app, "Brotli Hook", "webhook").await;
    let res = post(
        &app,
        &format!("/hooks/{}", hook.id),
        &[("content-encoding", "zstd".into())],
        body,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(stored(&app, &s).await.is_empty());
}

/// Peak resident memory of this process so far, in KB, after resetting
/// the peak to the current size where the kernel allows it.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

#[tokio::test]
async fn a_gzip_bomb_is_413_and_memory_stays_flat() {
    let app = spawn_app().await;
    let s = source(&app, "Bomb Seg", "segment").await;
    let h = |e: &str| vec![auth(&s), ("content-encoding", e.to_string())];

    // 10 MB of zeros: about 10 KB on the wire, far over the 500 KB batch
    // limit once inflated.
    let ten = gzip_zeros(10 << 20);
    assert!(ten.len() < 64 * 1024, "{}", ten.len());
    let res = post(&app, "/v1/batch", &h("gzip"), ten.clone()).await;
    let p = sdk_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(p["code"], "payload-too-large");
    assert!(
        p["detail"].as_str().unwrap().contains("decompressed"),
        "{p}"
    );
    // And on a single call (32 KB limit), a webhook and a form.
    let res = post(&app, "/v1/track", &h("gzip"), ten.clone()).await;
    sdk_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    let hook = source(&app, "Bomb Hook", "webhook").await;
    let res = post(
        &app,
        &format!("/hooks/{}", hook.id),
        &h("gzip")[1..],
        ten.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // 512 MB of zeros fits under the 1 MB body limit compressed. Inflated
    // whole it would take half a gigabyte; eight at once, four. The peak
    // resident size may grow by the buffers (limit + 1 each), not by that.
    let big = gzip_zeros(512 << 20);
    assert!(big.len() < app.config.body_limit_bytes, "{}", big.len());
    reset_peak_rss();
    let before = status_kb("VmRSS:");
    let gz = h("gzip");
    let sends = (0..8).map(|_| post(&app, "/v1/batch", &gz, big.clone()));
    for res in futures_util::future::join_all(sends).await {
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let peak = status_kb("VmHWM:");
    let grown_mb = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mb < 256,
        "peak memory grew by {grown_mb} MB while refusing 8 bombs"
    );
    assert!(stored(&app, &s).await.is_empty());
    assert!(stored(&app, &hook).await.is_empty());
}

#[tokio::test]
async fn screen_and_group_calls_land_on_the_customer_alone_and_in_batches() {
    let app = spawn_app().await;
    let s = source(&app, "Spec Seg", "segment").await;
    let t = T0 - 60 * 60_000;
    segment(
        &app,
        &s.secret,
        "/v1/identify",
        json!({
            "userId": "u-9", "messageId": "s-1", "timestamp": at(t),
            "traits": {"email": "ann@acme.test", "firstName": "Ann"}
        }),
    )
    .await;
    segment(
        &app,
        &s.secret,
        "/v1/screen",
        json!({
            "userId": "u-9", "messageId": "s-2", "timestamp": at(t + 1_000), "name": "Cart",
            "properties": {"items": 2}
        }),
    )
    .await;
    segment(
        &app,
        &s.secret,
        "/v1/group",
        json!({
            "userId": "u-9", "messageId": "s-3", "timestamp": at(t + 2_000), "groupId": "acct-1",
            "traits": {"name": "Acme Inc", "plan": "pro", "employees": 40}
        }),
    )
    .await;
    // The same calls inside a batch, as analytics-node sends them.
    segment(&app, &s.secret, "/v1/batch", json!({"batch": [
        {"type": "screen", "userId": "u-9", "messageId": "s-4", "timestamp": at(t + 3_000), "name": "Home"},
        {"type": "group", "userId": "u-9", "messageId": "s-5", "timestamp": at(t + 4_000), "groupId": "acct-1",
         "traits": {"plan": "enterprise", "industry": "retail"}}
    ]}))
    .await;
    // A retried batch stores nothing new.
    segment(&app, &s.secret, "/v1/batch", json!({"batch": [
        {"type": "screen", "userId": "u-9", "messageId": "s-4", "timestamp": at(t + 3_000), "name": "Home"}
    ]}))
    .await;
    let pass = app.state.pipeline.drain().await.unwrap();
    assert_eq!((pass.taken, pass.failed), (5, 0));

    let lead = only_lead(&app, s.org).await;
    assert_eq!(lead.pages_viewed, 2, "a screen counts as a page view");
    let tl = timeline(&app, s.org, lead.profile_id).await;
    assert_eq!(count(&tl, "screen_view"), 2);
    assert_eq!(count(&tl, "group"), 2);
    assert!(
        tl.iter().any(|e| e.summary == "Viewed the Cart screen"),
        "{tl:?}"
    );
    assert!(tl
        .iter()
        .any(|e| e.summary == "Belongs to the account Acme Inc"));
    let screen = tl.iter().find(|e| e.kind == "screen_view").unwrap();
    let data: Value = serde_json::from_str(&screen.data).unwrap();
    let fired = data["intent"]["fired"].as_array().unwrap();
    assert!(fired.iter().any(|f| f["rule_id"] == "page-view"), "{data}");

    let p = app.store().profile(s.org, lead.profile_id).await.unwrap();
    let traits: Value = serde_json::from_str(&p.traits).unwrap();
    assert_eq!(traits["group_id"], "acct-1");
    assert_eq!(p.company, "Acme Inc");
    assert_eq!(p.first_name, "Ann");
    // The account's own traits, kept per organization: the later call's
    // names win, the rest stay.
    let g = app
        .store()
        .customer_group(s.org, "acct-1")
        .await
        .unwrap()
        .expect("group row");
    assert_eq!(
        g.traits,
        json!({"name": "Acme Inc", "plan": "enterprise", "employees": 40, "industry": "retail"})
    );
    assert_eq!(g.last_profile_id, Some(lead.profile_id));
    // And through the API, to this organization only.
    let org = app.store().org(s.org).await.unwrap();
    let key = app.key(&org, "agent").await;
    let res = app.call(Method::GET, "/groups/acct-1", &key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["traits"]["plan"], "enterprise");
    assert_eq!(v["last_profile_id"], lead.profile_id.to_string());
    let res = app.call(Method::GET, "/groups/acct-404", &key).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let other = app.org("Spec Other").await;
    assert_eq!(
        app.store()
            .customer_group(other.id, "acct-1")
            .await
            .unwrap(),
        None
    );

    // A group call without a groupId: 422 naming it, with code and message.
    let res = post(
        &app,
        "/v1/group",
        &[auth(&s)],
        serde_json::to_vec(&json!({"userId": "u-9", "messageId": "s-9"})).unwrap(),
    )
    .await;
    let p = sdk_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("groupId"), "{p}");
}

#[tokio::test]
async fn a_batch_of_only_group_calls_is_accepted() {
    let app = spawn_app().await;
    let s = source(&app, "Groups Seg", "segment").await;
    let batch: Vec<Value> = (0..3)
        .map(|i| {
            json!({"type": "group", "userId": format!("u-{i}"), "messageId": format!("g-{i}"),
                        "groupId": "acct-7", "traits": {"name": "Seven"}})
        })
        .collect();
    let res = post(
        &app,
        "/v1/batch",
        &[auth(&s)],
        serde_json::to_vec(&json!({"batch": batch})).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"success": true}));
    assert_eq!(stored(&app, &s).await.len(), 3);
    let pass = app.state.pipeline.drain().await.unwrap();
    assert_eq!((pass.taken, pass.failed), (3, 0));
    let g = app
        .store()
        .customer_group(s.org, "acct-7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.traits, json!({"name": "Seven"}));
}

#[tokio::test]
async fn unknown_call_types_in_a_batch_are_counted_and_reported() {
    let app = spawn_app().await;
    let s = source(&app, "Unknown Seg", "segment").await;
    let body = json!({"batch": [
        track("k-1", "u"),
        {"type": "hologram", "userId": "u", "messageId": "k-2"},
        {"type": "group", "userId": "u", "messageId": "k-3", "groupId": "a"},
        {"type": "hologram", "userId": "u", "messageId": "k-4"},
        {"type": "teleport", "userId": "u", "messageId": "k-5"},
        {"type": "track", "userId": "u", "messageId": "k-6"}
    ]});
    let res = post(
        &app,
        "/v1/batch",
        &[auth(&s)],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(v["stored"], 2);
    assert_eq!(v["unsupported"], json!({"hologram": 2, "teleport": 1}));
    let idx: Vec<u64> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [1, 3, 4, 5]);
    assert!(
        v["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("hologram"),
        "{v}"
    );
    assert!(
        v["rejected"][3]["error"]
            .as_str()
            .unwrap()
            .contains("event"),
        "{v}"
    );
    let mut ids: Vec<String> = stored(&app, &s)
        .await
        .into_iter()
        .map(|e| e.external_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["k-1", "k-3"]);

    // Only unknown types: nothing to store, a 422 that says why.
    let body = json!({"batch": [{"type": "hologram", "userId": "u", "messageId": "k-7"}]});
    let res = post(
        &app,
        "/v1/batch",
        &[auth(&s)],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    let p = sdk_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("hologram"), "{p}");
    assert_eq!(stored(&app, &s).await.len(), 2);
}

#[tokio::test]
async fn segment_error_bodies_carry_code_and_message() {
    let app = spawn_app().await;
    let s = source(&app, "Errors Seg", "segment").await;
    let ok = serde_json::to_vec(&json!({"batch": [track("e-1", "u")]})).unwrap();
    // 401 (wrong key), 400 (not JSON), 422 (invalid), 413 (too large).
    let res = post(
        &app,
        "/v1/batch",
        &[("authorization", basic("wk_nope"))],
        ok,
    )
    .await;
    let p = sdk_problem(res, StatusCode::UNAUTHORIZED).await;
    assert_eq!(p["code"], "unauthorized");
    let res = post(&app, "/v1/batch", &[auth(&s)], b"{not json".to_vec()).await;
    assert_eq!(
        sdk_problem(res, StatusCode::BAD_REQUEST).await["code"],
        "bad-request"
    );
    let res = post(
        &app,
        "/v1/identify",
        &[auth(&s)],
        br#"{"traits":{}}"#.to_vec(),
    )
    .await;
    assert_eq!(
        sdk_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "invalid-input"
    );
    let pad = "x".repeat(40 * 1024);
    let big = serde_json::to_vec(&json!({"userId": "u", "event": "E", "properties": {"pad": pad}}))
        .unwrap();
    let res = post(&app, "/v1/track", &[auth(&s)], big).await;
    assert_eq!(
        sdk_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await["code"],
        "payload-too-large"
    );
    // The API's own problems are unchanged: no SDK members there.
    let org = app.store().org(s.org).await.unwrap();
    let key = app.key(&org, "admin").await;
    let res = app.post_source(&key, "carrier-pigeon", "x").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    assert!(v.get("code").is_none() && v.get("detail").is_some(), "{v}");
}

#[tokio::test]
async fn nul_in_intake_payloads_is_stripped_and_the_pipeline_never_fails_on_it() {
    let app = spawn_app().await;
    let s = source(&app, "Nul Seg", "segment").await;
    let h = [auth(&s)];
    // Escaped NUL in a messageId, ids, an event name, a page name and traits.
    let single = br#"{"userId":"u-\u00001","messageId":"n\u0000-1","event":"Sign\u0000ed Up","properties":{"k\u0000":"v\u0000"}}"#;
    let res = post(&app, "/v1/track", &h, single.to_vec()).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let batch = br#"{"batch":[
        {"type":"identify","userId":"u-\u00001","messageId":"n-2","traits":{"email":"nul@example.com","name":"Ada\u0000 Lovelace","plan":"p\u0000ro"}},
        {"type":"page","userId":"u-1","messageId":"n-3","name":"Pri\u0000cing"},
        {"type":"group","userId":"u-1","messageId":"n-4","groupId":"acct\u0000-1","traits":{"name":"Ac\u0000me"}}
    ]}"#;
    let res = post(&app, "/v1/batch", &h, batch.to_vec()).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    // Gzipped, the NUL is stripped after decompression.
    let gz = gzip(br#"{"userId":"u-1","messageId":"n-5","name":"Ho\u0000me"}"#);
    let res = post(
        &app,
        "/v1/screen",
        &[h[0].clone(), ("content-encoding", "gzip".into())],
        gz,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    let events = stored(&app, &s).await;
    assert_eq!(events.len(), 5);
    for e in &events {
        assert!(
            !e.payload.contains("\\u0000") && !e.external_id.contains('\0'),
            "{e:?}"
        );
    }
    assert!(events.iter().any(|e| e.external_id == "n-1"));

    // A signed webhook (verified over the bytes as signed, then cleaned).
    let hook = source(&app, "Nul Hook", "webhook").await;
    let secret = Secret::parse(&hook.secret).unwrap();
    let body = br#"{"type":"lead.\u0000created","data":{"email":"hook@example.com","summary":"Asked\u0000 for a quote","first_name":"Bo\u0000b"}}"#;
    let ts = T0 / 1000;
    let res = post(
        &app,
        &format!("/hooks/{}", hook.id),
        &[
            ("webhook-id", "msg_nul".into()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                standard_webhooks::sign(&secret, "msg_nul", ts, body),
            ),
        ],
        body.to_vec(),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let e = &stored(&app, &hook).await[0];
    assert_eq!(e.kind, "lead.created");
    assert!(!e.payload.contains("\\u0000"));

    // Shopify.
    let shop = shopify_source(&app, "Nul Shop", "shpss_nul").await;
    let cust = br#"{"id": 77, "email": "shop-nul@example.com", "first_name": "Jo\u0000", "last_name": "D\u0000oe"}"#;
    let res = post(
        &app,
        &format!("/hooks/shopify/{}", shop.id),
        &shopify_headers("customers/create", "ev-nul", &shop.secret, cust),
        cust.to_vec(),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );

    // A form field with %00.
    let org = app.org("Nul Form").await;
    let key = app.key(&org, "admin").await;
    let v: Value = app
        .post_source(&key, "form", "Landing")
        .await
        .json()
        .await
        .unwrap();
    let endpoint = v["source"]["endpoint"].as_str().unwrap().to_string();
    let res = app
        .http
        .post(&endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body("email=form-nul%40example.com&name=Ma%00ry&message=hi%00there")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );

    let pass = app.state.pipeline.drain().await.unwrap();
    assert_eq!((pass.taken, pass.failed), (8, 0), "{pass:?}");
    for org in [s.org, hook.org, shop.org, org.id] {
        let counts = app.store().inbound_status_counts(org).await.unwrap();
        assert_eq!(counts.get("parked"), None, "{counts:?}");
        assert_eq!(counts.get("pending"), None, "{counts:?}");
    }
    let lead = only_lead(&app, s.org).await;
    let tl = timeline(&app, s.org, lead.profile_id).await;
    for e in &tl {
        assert!(
            !e.summary.contains('\0') && !e.data.contains("\\u0000"),
            "{e:?}"
        );
    }
    assert!(tl.iter().any(|e| e.summary == "Signed Up"), "{tl:?}");
    let p = app.store().profile(s.org, lead.profile_id).await.unwrap();
    assert_eq!(
        (p.first_name.as_str(), p.last_name.as_str()),
        ("Ada", "Lovelace")
    );
    assert!(app
        .store()
        .customer_group(s.org, "acct-1")
        .await
        .unwrap()
        .is_some());
    let hook_lead = only_lead(&app, hook.org).await;
    assert_eq!(hook_lead.display_name, "Bob");
}
