//! The `/api/v1` API: problem+json errors, limits, scopes, the OpenAPI
//! document, keys at rest, and the operational endpoints.

use crate::support::*;
use bos_core::Role;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn problem(res: reqwest::Response, status: StatusCode, slug: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["type"], format!("urn:bos:problem:{slug}"));
    assert_eq!(v["status"], status.as_u16());
    assert!(
        v["detail"].as_str().unwrap().len() > 10,
        "an actionable detail"
    );
    v
}

#[tokio::test]
async fn me_and_errors() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let key = app.key(&org, "ingest").await;
    let res = app.call(Method::GET, "/me", &key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["organization"]["name"], "Acme");
    assert_eq!(v["principal"], "api_key");
    assert_eq!(v["key"]["scopes"], json!(["ingest"]));

    let res = app.http.get(app.url("/api/v1/me")).send().await.unwrap();
    problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let res = app.call(Method::GET, "/me", "bos_not-a-real-key").await;
    problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let res = app.call(Method::GET, "/nothing/here", &key).await;
    problem(res, StatusCode::NOT_FOUND, "not-found").await;
    // An ingest key cannot administer.
    let res = app.call(Method::GET, "/members", &key).await;
    let v = problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(v["detail"].as_str().unwrap().contains("'admin' scope"));
}

#[tokio::test]
async fn a_browser_session_never_opens_the_api() {
    let app = spawn_app().await;
    let (org, b) = app.owner_of("Acme", "ann@example.com").await;
    let res = app
        .http
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("__Host-bos_session={}", b.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // And a key never opens the UI.
    let key = app.key(&org, "admin").await;
    let res = app
        .http
        .get(app.url("/settings/members"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn bad_input_is_4xx_with_guidance() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let key = app.key(&org, "admin").await;
    let post = |body: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.api(Method::POST, "/keys", &key)
                .await
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    problem(
        post("{not json").await,
        StatusCode::BAD_REQUEST,
        "bad-request",
    )
    .await;
    problem(
        post(r#"{"name":"x"}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
    )
    .await;
    let v = problem(
        post(r#"{"name":"x","scopes":["root"]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
    )
    .await;
    assert_eq!(v["field"], "scopes");
    problem(
        post(r#"{"name":"","scopes":["ingest"]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
    )
    .await;
    let res = app
        .api(Method::POST, "/keys", &key)
        .await
        .body(r#"{"name":"x","scopes":["ingest"]}"#)
        .send()
        .await
        .unwrap();
    problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    let res = app.call(Method::GET, "/keys/not-a-uuid", &key).await;
    problem(res, StatusCode::NOT_FOUND, "not-found").await;
    let res = app
        .send_json(
            Method::POST,
            "/members",
            &key,
            &json!({"email": "not an email", "role": "member"}),
        )
        .await;
    let v = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input").await;
    assert_eq!(v["field"], "email");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_with(|c| c.body_limit_bytes = 4096).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, "admin").await;
    let big = json!({"name": "x".repeat(10_000), "scopes": ["ingest"]});
    let res = app.send_json(Method::POST, "/keys", &key, &big).await;
    problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
}

#[tokio::test]
async fn keys_lifecycle_and_revocation_is_immediate() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let admin = app.key(&org, "admin").await;
    let res = app
        .send_json(
            Method::POST,
            "/keys",
            &admin,
            &json!({"name": "Shopify sync", "scopes": ["ingest", "agent"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    let secret = v["secret"].as_str().unwrap().to_string();
    let id = v["key"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("bos_") && secret.len() == 44);
    assert_eq!(
        app.call(Method::GET, "/me", &secret).await.status(),
        StatusCode::OK
    );
    // Listing never shows secrets.
    let list = app
        .call(Method::GET, "/keys", &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&secret));
    assert!(list.contains("Shopify sync"));
    let res = app
        .call(Method::DELETE, &format!("/keys/{id}"), &admin)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.call(Method::GET, "/me", &secret).await;
    problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let v: Value = app.read(Method::GET, &format!("/keys/{id}"), &admin).await;
    assert!(v["revoked_at"].is_string());
}

#[tokio::test]
async fn no_api_key_or_password_is_stored_in_plaintext() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    app.user("ann@example.com", &org, Role::Owner).await;
    let admin = app.key(&org, "admin").await;
    let mut secrets = vec![admin.clone()];
    for i in 0..5 {
        let v: Value = app
            .send_json(
                Method::POST,
                "/keys",
                &admin,
                &json!({"name": format!("k{i}"), "scopes": ["ingest"]}),
            )
            .await
            .json()
            .await
            .unwrap();
        secrets.push(v["secret"].as_str().unwrap().to_string());
    }
    let b = app.login("ann@example.com").await;
    // Every credential column holds hashes only.
    let dump = app.store().dump_credential_columns().await.unwrap();
    let hay: Vec<u8> = dump.concat();
    for needle in secrets
        .iter()
        .map(|s| s.as_bytes())
        .chain([PASSWORD.as_bytes(), b.cookie.as_bytes()])
    {
        let body = &needle[4.min(needle.len())..];
        assert!(
            !hay.windows(body.len()).any(|w| w == body),
            "a secret is stored in plaintext"
        );
    }
    // On SQLite, scan the database files themselves, WAL included.
    if let Some(path) = app.store().sqlite_path() {
        let mut bytes = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
            bytes.extend(wal);
        }
        for s in &secrets {
            let body = &s.as_bytes()[4..];
            assert!(
                !bytes.windows(body.len()).any(|w| w == body),
                "secret found in the database file"
            );
        }
    }
}

/// Every provider secret BOS keeps (it must, to sign and verify): none is
/// readable in the database, on either engine; the application still uses
/// each; and a database written by an older release (plaintext) is sealed
/// at start without losing a value.
#[tokio::test]
async fn no_provider_secret_is_stored_in_plaintext() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let admin = app.key(&org, "admin").await;
    let post = |path: &'static str, body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let res = app.send_json(Method::POST, path, &admin, &body).await;
            assert!(res.status().is_success(), "{path}: {}", res.status());
            res.json::<Value>().await.unwrap()
        }
    };
    let put = |path: &'static str, body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let res = app.send_json(Method::PUT, path, &admin, &body).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
        }
    };
    // The Standard Webhooks signing key (generated) and a Shopify secret.
    let webhook = post("/sources", json!({"kind": "webhook", "name": "Hooks"})).await;
    let whsec = webhook["secret"].as_str().unwrap().to_string();
    let shopify_secret = "shpss_Shopify-Client-Secret-0001";
    let shop = post(
        "/sources",
        json!({"kind": "shopify", "name": "Shop", "secret": shopify_secret}),
    )
    .await;
    // SMTP password, Mailgun signing key, Postmark password.
    let (smtp_pw, mg_key, pm_pw) = (
        "Sm7p-Password-At-Rest-01",
        "Mailgun-Signing-At-Rest-02",
        "Postmark-Password-At-Rest-03",
    );
    put(
        "/settings/channels/email",
        json!({"provider": "smtp", "host": "203.0.113.10", "port": 587, "username": "postmaster@acme.example",
               "password": smtp_pw, "from": "Acme <shop@acme.example>",
               "mailgun_signing_key": mg_key, "postmark_password": pm_pw}),
    )
    .await;
    // Twilio Auth Token and a Webhooks Rule shared key.
    let (twilio_token, shared_key) = (
        "0123456789abcdef0123456789abcdef",
        "Twilio-Shared-Key-At-Rest-04",
    );
    put(
        "/settings/channels/sms",
        json!({"provider": "twilio", "account_sid": "AC0123456789abcdef0123456789abcdef",
               "auth_token": twilio_token, "from": "+14155550100", "webhook_shared_key": shared_key}),
    )
    .await;
    let secrets = [
        whsec.as_str(),
        // The key without its `whsec_` prefix is what signs.
        whsec.trim_start_matches("whsec_"),
        shopify_secret,
        smtp_pw,
        mg_key,
        pm_pw,
        twilio_token,
        shared_key,
    ];
    let assert_sealed = |dump: &[String], when: &str| {
        let hay = dump.concat();
        assert!(dump.len() >= 4, "{when}: {dump:?}");
        for s in secrets {
            assert!(!hay.contains(s), "{when}: {s} is stored in plaintext");
        }
        for v in dump {
            assert!(v.starts_with("bos1:"), "{when}: {v} is not sealed");
        }
    };
    let dump = app.store().dump_provider_secret_columns().await.unwrap();
    assert_sealed(&dump, "after saving");
    if let Some(path) = app.store().sqlite_path() {
        let mut bytes = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
            bytes.extend(wal);
        }
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s} found in the database file"
            );
        }
    }
    // The application reads them back for its own use.
    let shop_id: uuid::Uuid = shop["source"]["id"].as_str().unwrap().parse().unwrap();
    let s = app.store().source(org.id, shop_id).await.unwrap();
    assert_eq!(s.secret.as_deref(), Some(shopify_secret));
    let email = app
        .store()
        .channel_config(org.id, bos_core::nudge::Channel::Email)
        .await
        .unwrap();
    match &email {
        bos_store::nudge::ChannelConfig::Smtp {
            password,
            mailgun_signing_key,
            postmark_password,
            ..
        } => {
            assert_eq!(password.as_deref(), Some(smtp_pw));
            assert_eq!(mailgun_signing_key.as_deref(), Some(mg_key));
            assert_eq!(postmark_password.as_deref(), Some(pm_pw));
        }
        other => panic!("{other:?}"),
    }
    // An upgrade: values an older release stored in plaintext are sealed
    // by the start-up reseal, and read back the same.
    let email_json = serde_json::to_string(&email).unwrap();
    app.store()
        .put_plaintext_channel_config_for_test(org.id, "email", &email_json)
        .await
        .unwrap();
    app.store()
        .put_plaintext_source_secret_for_test(org.id, shop_id, shopify_secret)
        .await
        .unwrap();
    let dump = app.store().dump_provider_secret_columns().await.unwrap();
    assert!(dump.concat().contains(smtp_pw), "the old release's row");
    assert_eq!(
        app.store()
            .channel_config(org.id, bos_core::nudge::Channel::Email)
            .await
            .unwrap(),
        email,
        "plaintext rows still read before the reseal"
    );
    assert_eq!(app.store().reseal_secrets().await.unwrap(), 2);
    assert_sealed(
        &app.store().dump_provider_secret_columns().await.unwrap(),
        "after the reseal",
    );
    assert_eq!(
        app.store()
            .channel_config(org.id, bos_core::nudge::Channel::Email)
            .await
            .unwrap(),
        email
    );
    assert_eq!(
        app.store()
            .source(org.id, shop_id)
            .await
            .unwrap()
            .secret
            .as_deref(),
        Some(shopify_secret)
    );
    // Rotation: a new key seals everything; the old one is not needed after.
    let old = bos_store::secrets::SecretKey::generate();
    let new = bos_store::secrets::SecretKey::generate();
    app.store()
        .set_secret_keys(bos_store::secrets::Keyring::new(old.clone(), vec![]));
    // (Values sealed by the test's own random key are not readable under
    // `old`: seal them afresh first, as a deployment's first start does.)
    app.store()
        .put_plaintext_channel_config_for_test(org.id, "email", &email_json)
        .await
        .unwrap();
    app.store()
        .put_plaintext_source_secret_for_test(org.id, shop_id, shopify_secret)
        .await
        .unwrap();
    let webhook_id: uuid::Uuid = webhook["source"]["id"].as_str().unwrap().parse().unwrap();
    app.store()
        .put_plaintext_source_secret_for_test(org.id, webhook_id, &whsec)
        .await
        .unwrap();
    let sms = bos_store::nudge::ChannelConfig::Twilio {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: twilio_token.into(),
        from: "+14155550100".into(),
        webhook_shared_key: Some(shared_key.into()),
    };
    app.store()
        .put_plaintext_channel_config_for_test(org.id, "sms", &serde_json::to_string(&sms).unwrap())
        .await
        .unwrap();
    assert_eq!(app.store().reseal_secrets().await.unwrap(), 4);
    app.store()
        .set_secret_keys(bos_store::secrets::Keyring::new(new.clone(), vec![old]));
    assert_eq!(app.store().reseal_secrets().await.unwrap(), 4);
    app.store()
        .set_secret_keys(bos_store::secrets::Keyring::new(new.clone(), vec![]));
    assert_eq!(app.store().reseal_secrets().await.unwrap(), 0);
    let dump = app.store().dump_provider_secret_columns().await.unwrap();
    assert_sealed(&dump, "after the rotation");
    assert!(dump
        .iter()
        .all(|v| v.starts_with(&format!("bos1:{}:", new.id()))));
    assert_eq!(
        app.store()
            .channel_config(org.id, bos_core::nudge::Channel::Sms)
            .await
            .unwrap(),
        sms
    );
    assert_eq!(
        app.store()
            .source(org.id, webhook_id)
            .await
            .unwrap()
            .secret
            .as_deref(),
        Some(whsec.as_str())
    );
}

#[tokio::test]
async fn members_over_the_api() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let owner = app.user("ann@example.com", &org, Role::Owner).await;
    let admin = app.key(&org, "admin").await;
    // Inviting answers a link, never an account; Bob joins by accepting
    // (tests/http/invitations.rs covers the accept page).
    let res = app
        .send_json(
            Method::POST,
            "/members",
            &admin,
            &json!({"email": "bob@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    assert!(v["accept_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/invitations/", app.base)));
    assert!(v.get("member").is_none() && v.get("one_time_password").is_none());
    assert_eq!(app.store().members(org.id).await.unwrap().len(), 1);
    let bob = app
        .user("bob@example.com", &app.org("Elsewhere").await, Role::Member)
        .await;
    app.store()
        .upsert_membership(org.id, bob.id, Role::Member, T0)
        .await
        .unwrap();
    let bob = bob.id.to_string();
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/members/{bob}"),
            &admin,
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A key acts as an admin at most: it cannot touch owners or make one.
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/members/{bob}"),
            &admin,
            &json!({"role": "owner"}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app
        .call(Method::DELETE, &format!("/members/{}", owner.id), &admin)
        .await;
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app
        .call(Method::DELETE, &format!("/members/{bob}"), &admin)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .call(Method::GET, &format!("/members/{bob}"), &admin)
        .await;
    problem(res, StatusCode::NOT_FOUND, "not-found").await;
    let res = app
        .send_json(
            Method::POST,
            "/members",
            &admin,
            &json!({"email": "ann@example.com", "role": "member"}),
        )
        .await;
    problem(res, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn the_last_owner_stays() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let owner = app.user("ann@example.com", &org, Role::Owner).await;
    let b = app.login("ann@example.com").await;
    let res = app
        .post_signed(
            &format!("/settings/members/{}/role", owner.id),
            &b,
            &[("role", "admin")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("at least one owner"));
    assert_eq!(
        app.store().membership(org.id, owner.id).await.unwrap(),
        Some(Role::Owner)
    );
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/me",
        "/organization",
        "/members",
        "/members/{user_id}",
        "/invitations",
        "/invitations/{invitation_id}",
        "/keys",
        "/keys/{key_id}",
    ] {
        assert!(v["paths"].get(p).is_some(), "{p} documented");
    }
    assert!(v["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn operations_endpoints_and_headers() {
    let app = spawn_app().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let login = app.http.get(app.url("/login")).send().await.unwrap();
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
    );
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    let html = login.text().await.unwrap();
    let css = html
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let res = app.http.get(app.url(&css)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("bos_http_requests_total{method=\"GET\",route=\"/login\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "bos_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"+Inf\"} 1"
    ));
    // UI 404s are pages that help.
    let res = app.http.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.unwrap().contains("Go to the overview"));
}

#[tokio::test]
async fn readyz_fails_with_retry_after_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.store().close().await;
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    let org_key = "bos_0123456789012345678901234567890123456789";
    let res = app.call(Method::GET, "/me", org_key).await;
    let v = problem(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(v["detail"].as_str().unwrap().contains("Retry"));
}
