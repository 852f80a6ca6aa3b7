//! Public web forms over HTTP: a form source created through the
//! API, then posts as a landing page's browser sends them — urlencoded or
//! JSON, from any origin. Stored once per visit or exact body, a bot
//! filling the honeypot is answered like a person and nothing is stored, a
//! flood from one address is 429, and a database outage is 503.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

struct Form {
    org: Uuid,
    id: Uuid,
    key: String,
    endpoint: String,
    dto: Value,
}

async fn form_source(app: &TestApp, org_name: &str, thank_you_url: Option<&str>) -> Form {
    let org = app.org(org_name).await;
    let key = app.key(&org, "admin").await;
    let mut body = json!({"kind": "form", "name": "Landing page"});
    if let Some(u) = thank_you_url {
        body["thank_you_url"] = json!(u);
    }
    let res = app.send_json(Method::POST, "/sources", &key, &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    assert!(v.get("secret").is_none(), "a form key is not a secret: {v}");
    let dto = v["source"].clone();
    Form {
        org: org.id,
        id: dto["id"].as_str().unwrap().parse().unwrap(),
        key: dto["form_key"].as_str().unwrap().to_string(),
        endpoint: dto["endpoint"].as_str().unwrap().to_string(),
        dto,
    }
}

impl TestApp {
    async fn stored(&self, f: &Form) -> u64 {
        self.store().inbound_count(f.org, f.id).await.unwrap()
    }

    async fn events(&self, f: &Form) -> Vec<bos_store::intake::InboundEvent> {
        self.store().recent_inbound(f.org, f.id, 100).await.unwrap()
    }
}

/// A browser's classic form post.
async fn post_form(app: &TestApp, f: &Form, form: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(&f.endpoint)
        .header("origin", "https://landing.example")
        .header("referer", "https://landing.example/offer")
        .header("user-agent", "Mozilla/5.0 (test)")
        .form(form)
        .send()
        .await
        .unwrap()
}

/// A script's `fetch` with a JSON body.
async fn post_json(app: &TestApp, f: &Form, body: &Value) -> reqwest::Response {
    app.http
        .post(&f.endpoint)
        .header("origin", "https://landing.example")
        .header("accept", "application/json")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn cors(res: &reqwest::Response) -> bool {
    res.headers()
        .get("access-control-allow-origin")
        .is_some_and(|v| v == "*")
}

#[tokio::test]
async fn form_sources_get_a_public_key_endpoint_and_snippet() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Co", Some("https://landing.example/thanks")).await;
    assert!(f.key.starts_with("fk_"), "{}", f.key);
    assert_eq!(f.key.len(), 27);
    assert!(f.key[3..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(f.endpoint, format!("{}/f/{}", app.base, f.key));
    assert_eq!(f.dto["kind"], "form");
    assert_eq!(f.dto["thank_you_url"], "https://landing.example/thanks");
    let html = f.dto["html_snippet"].as_str().unwrap();
    assert!(html.contains(&format!("<form method=\"post\" action=\"{}\"", f.endpoint)));
    assert!(html.contains("name=\"_hp\""));
    assert!(html.contains("left:-10000px"));
    assert!(html.contains("_sid"));
    assert!(html.contains("_partial"));
    assert!(html.contains("mode: 'cors'"));
    // Stored in clear (it is public) and as a hash for the lookup.
    let src = app.store().source(f.org, f.id).await.unwrap();
    assert_eq!(src.secret.as_deref(), Some(f.key.as_str()));
    assert_eq!(
        src.thank_you_url().as_deref(),
        Some("https://landing.example/thanks")
    );
    // The list shows the key and snippet again: nothing there is secret.
    let org = app.store().org(f.org).await.unwrap();
    let key = app.key(&org, "admin").await;
    let listed: Value = app.read(Method::GET, "/sources", &key).await;
    assert_eq!(listed[0]["form_key"], f.key.as_str());

    // A thank-you page must be an http(s) URL, and only forms take one.
    for (body, field) in [
        (
            json!({"kind": "form", "name": "x", "thank_you_url": "/thanks"}),
            "thank_you_url",
        ),
        (
            json!({"kind": "form", "name": "x", "thank_you_url": "javascript:alert(1)"}),
            "thank_you_url",
        ),
        (
            json!({"kind": "segment", "name": "x", "thank_you_url": "https://a.b/"}),
            "thank_you_url",
        ),
    ] {
        let res = app.send_json(Method::POST, "/sources", &key, &body).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["field"], field);
    }
}

#[tokio::test]
async fn submissions_are_stored_in_the_pipeline_format() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Store", None).await;

    // A classic urlencoded post, no thank-you page: {"success": true}.
    let res = post_form(
        &app,
        &f,
        &[
            ("name", " Ada Lovelace "),
            ("email", "ada@example.com"),
            ("interest", "a"),
            ("interest", "b"),
            ("_hp", ""),
            ("_sid", "visit-1"),
            ("_referrer", "https://google.com/"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(cors(&res));
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"success": true}));
    let e = &app.events(&f).await[0];
    assert_eq!(e.kind, "form_submitted");
    assert_eq!(e.external_id, "submitted:visit-1");
    let p: Value = serde_json::from_str(&e.payload).unwrap();
    assert_eq!(
        p,
        json!({
            "type": "form_submitted",
            "fields": {"name": "Ada Lovelace", "email": "ada@example.com", "interest": "a, b"},
            "session_id": "visit-1",
            // No _page: the Referer of the post.
            "page_url": "https://landing.example/offer",
            "referrer": "https://google.com/",
            "ip": "127.0.0.1",
            "user_agent": "Mozilla/5.0 (test)",
        })
    );

    // JSON from a script, no sid: keyed by the body's hash.
    let res = post_json(
        &app,
        &f,
        &json!({"email": "grace@example.com", "age": 37, "_page": "https://landing.example/b"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(cors(&res));
    let events = app.events(&f).await;
    assert_eq!(events.len(), 2);
    let j = events
        .iter()
        .find(|e| e.external_id.starts_with("submitted:sha256:"))
        .unwrap();
    let p: Value = serde_json::from_str(&j.payload).unwrap();
    assert_eq!(
        p["fields"],
        json!({"email": "grace@example.com", "age": "37"})
    );
    assert_eq!(p["page_url"], "https://landing.example/b");
    assert_eq!(p["session_id"], Value::Null);
    assert_eq!(p["referrer"], Value::Null);
    assert_eq!(p["user_agent"], Value::Null);
}

#[tokio::test]
async fn duplicates_and_partial_saves_are_stored_once() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Dupes", None).await;
    // An exact double post (double click, reload) is one event.
    for _ in 0..2 {
        let res = post_form(&app, &f, &[("email", "a@example.com")]).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(app.stored(&f).await, 1);
    // "Form started" twice for one visit: one form_started.
    for email in ["b", "b@example.com"] {
        let res = post_json(
            &app,
            &f,
            &json!({"email": email, "_sid": "visit-2", "_partial": "1"}),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(app.stored(&f).await, 2);
    let started: Vec<_> = app
        .events(&f)
        .await
        .into_iter()
        .filter(|e| e.kind == "form_started")
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].external_id, "started:visit-2");
    let p: Value = serde_json::from_str(&started[0].payload).unwrap();
    assert_eq!(p["type"], "form_started");
    assert_eq!(p["fields"]["email"], "b", "a later partial changes nothing");
    // The final submission of that visit is its own event, once.
    for _ in 0..2 {
        let res = post_form(&app, &f, &[("email", "b@example.com"), ("_sid", "visit-2")]).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(app.stored(&f).await, 3);
}

#[tokio::test]
async fn honeypot_answers_like_success_and_stores_nothing() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Bots", Some("https://landing.example/thanks")).await;
    let res = post_form(
        &app,
        &f,
        &[("email", "bot@spam.test"), ("_hp", "http://spam")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "https://landing.example/thanks");
    let res = post_json(
        &app,
        &f,
        &json!({"email": "x", "_hp": "1", "junk": {"a": 1}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"success": true}));
    assert_eq!(app.stored(&f).await, 0);
}

#[tokio::test]
async fn classic_posts_are_sent_to_the_thank_you_page() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Thanks", Some("https://landing.example/thanks")).await;
    let res = post_form(&app, &f, &[("email", "a@example.com")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "https://landing.example/thanks");
    assert!(cors(&res));
    // The form's own _redirect wins.
    let res = post_form(
        &app,
        &f,
        &[
            ("email", "b@example.com"),
            ("_redirect", "https://landing.example/merci?x=1"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "https://landing.example/merci?x=1");
    // A script asking for JSON gets JSON, and a partial save never redirects.
    let res = post_json(&app, &f, &json!({"email": "c@example.com"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post_form(
        &app,
        &f,
        &[("email", "d"), ("_sid", "v9"), ("_partial", "true")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.stored(&f).await, 4);
    // A bad _redirect is refused with what to fix, and nothing stored.
    let res = post_form(
        &app,
        &f,
        &[("email", "e@example.com"), ("_redirect", "/thanks")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(cors(&res));
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["field"], "_redirect");
    assert!(v["detail"].as_str().unwrap().contains("https://"));
    assert_eq!(app.stored(&f).await, 4);
}

#[tokio::test]
async fn one_address_is_rate_limited_per_form() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Flood", None).await;
    let other = form_source(&app, "Form Calm", None).await;
    for i in 0..10 {
        let email = format!("p{i}@example.com");
        let res = post_form(&app, &f, &[("email", email.as_str())]).await;
        assert_eq!(res.status(), StatusCode::OK, "post {i}");
    }
    let res = post_form(&app, &f, &[("email", "p10@example.com")]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(cors(&res));
    assert_eq!(res.headers()["retry-after"], "6");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // A forged X-Forwarded-For changes nothing: only a trusted proxy's is read.
    let res = app
        .http
        .post(&f.endpoint)
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[("email", "p11@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.stored(&f).await, 10);
    // Another form is not affected.
    let res = post_form(&app, &other, &[("email", "q@example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    // 10 a minute: one more after 6 seconds, the whole burst after a minute.
    app.clock.advance_ms(6_000);
    let res = post_form(&app, &f, &[("email", "p12@example.com")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post_form(&app, &f, &[("email", "p13@example.com")]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance_ms(60_000);
    for i in 0..10 {
        let email = format!("r{i}@example.com");
        let res = post_form(&app, &f, &[("email", email.as_str())]).await;
        assert_eq!(res.status(), StatusCode::OK, "post {i} after a minute");
    }
}

#[tokio::test]
async fn unknown_keys_and_bad_bodies_say_what_to_fix() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Errors", None).await;
    let segment_key = {
        let org = app.store().org(f.org).await.unwrap();
        let key = app.key(&org, "admin").await;
        let v: Value = app
            .post_source(&key, "segment", "site")
            .await
            .json()
            .await
            .unwrap();
        v["secret"].as_str().unwrap().to_string()
    };
    for key in ["fk_doesnotexist000000000000", "nope", &segment_key] {
        let res = app
            .http
            .post(app.url(&format!("/f/{key}")))
            .form(&[("email", "a@example.com")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{key}");
        assert!(cors(&res));
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let v: Value = res.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("form key"), "{v}");
    }
    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            b"[1,2]".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            br#"{"a":{"b":1}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "multipart/form-data; boundary=x",
            b"--x--".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "application/x-www-form-urlencoded",
            b"_sid=x".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "application/x-www-form-urlencoded",
            vec![b'a'; 33 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (ct, body, status) in cases {
        let res = app
            .http
            .post(&f.endpoint)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{ct}");
        assert!(cors(&res));
        let v: Value = res.json().await.unwrap();
        assert!(!v["detail"].as_str().unwrap().is_empty());
    }
    assert_eq!(app.stored(&f).await, 0);
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Cors", None).await;
    let res = app
        .http
        .request(Method::OPTIONS, &f.endpoint)
        .header("origin", "https://landing.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(cors(&res));
    let h = |n: &str| res.headers()[n].to_str().unwrap().to_string();
    assert!(h("access-control-allow-methods").contains("POST"));
    assert!(h("access-control-allow-headers")
        .to_ascii_lowercase()
        .contains("content-type"));
}

#[tokio::test]
async fn database_down_is_503_with_retry_after() {
    let app = spawn_app().await;
    let f = form_source(&app, "Form Down", None).await;
    app.store().close().await;
    let res = post_form(&app, &f, &[("email", "a@example.com")]).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert!(cors(&res));
}
