//! Nudge webhooks, tracking, unsubscribe and Settings → Channels
//! (with CSRF on its forms and internal SMTP hosts refused): forged Twilio, Mailgun and
//! Postmark deliveries are 401 and write nothing; inbound SMS lands on the
//! customer's timeline once; STOP/START opt out and in; status callbacks
//! apply forward only; the open pixel, click redirect and unsubscribe
//! (page and RFC 8058 one-click, without cookies) work by token only;
//! channel settings refuse internal SMTP hosts and never echo secrets.

use crate::support::*;
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::nudge::Channel;
use bos_core::Role;
use bos_store::nudge::ChannelConfig;
use bos_store::nudge_hooks::TestExecution;
use hmac::{Hmac, Mac};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN_A: &str = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb";
const TOKEN_B: &str = "ccccccccccccccccdddddddddddddddd";
const PHONE: &str = "+14155550123";

async fn twilio_tenant(app: &TestApp, name: &str, token: &str) -> (bos_store::Org, String) {
    let org = app.org(name).await;
    let hook = app
        .store()
        .put_channel_config(
            org.id,
            Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: SID.into(),
                auth_token: token.into(),
                from: "+15005550006".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap();
    (org, hook)
}

fn form(params: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(params).unwrap()
}

fn sms_body(sid: &str, from: &str, text: &str) -> String {
    form(&[
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("AccountSid", SID),
        ("From", from),
        ("To", "+15005550006"),
        ("Body", text),
        ("NumMedia", "0"),
    ])
}

fn twilio_sign(token: &str, url: &str, body: &str) -> String {
    bos_channels::twilio::signature(
        token,
        url,
        &bos_channels::twilio::parse_form(body.as_bytes()),
    )
}

async fn post_twilio(
    app: &TestApp,
    path: &str,
    body: &str,
    sig: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url(path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(s) = sig {
        req = req.header("X-Twilio-Signature", s);
    }
    req.send().await.unwrap()
}

/// Signs with `token` over the public URL of `path` and posts.
async fn signed_twilio(app: &TestApp, path: &str, token: &str, body: &str) -> reqwest::Response {
    let sig = twilio_sign(token, &app.url(path), body);
    post_twilio(app, path, body, Some(&sig)).await
}

async fn counts(app: &TestApp, org: Uuid) -> (i64, i64, i64) {
    app.store().hook_row_counts(org).await.unwrap()
}

async fn messages_in(app: &TestApp, org: Uuid, profile: Uuid) -> usize {
    app.timeline(org, profile)
        .await
        .iter()
        .filter(|e| e.kind == "message_in")
        .count()
}

async fn customer(app: &TestApp, org: Uuid, kind: IdentifierKind, value: &str) -> Uuid {
    app.store()
        .identify(
            org,
            &IdentityRules::default(),
            &bos_store::identity::IdentifyInput {
                identifiers: vec![Identifier::new(kind, value)],
                traits: Default::default(),
                source: "test".into(),
                event: None,
                now: T0,
            },
        )
        .await
        .unwrap()
        .profile_id
}

#[tokio::test]
async fn twilio_webhooks_refuse_forgeries_and_write_nothing() {
    let app = spawn_app().await;
    let (a, hook) = twilio_tenant(&app, "Alpha Shop", TOKEN_A).await;
    let (_b, _) = twilio_tenant(&app, "Beta Shop", TOKEN_B).await;
    let path = format!("/hooks/twilio/{hook}/sms");
    let body = sms_body("SM0001", PHONE, "Hello there");
    let good = twilio_sign(TOKEN_A, &app.url(&path), &body);
    let before = counts(&app, a.id).await;

    // Missing signature.
    let res = post_twilio(&app, &path, &body, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let text = res.text().await.unwrap();
    assert!(text.contains("X-Twilio-Signature"), "{text}");
    assert!(!text.contains("Alpha"), "no tenant data in errors: {text}");
    // Another tenant's auth token.
    let other = twilio_sign(TOKEN_B, &app.url(&path), &body);
    let res = post_twilio(&app, &path, &body, Some(&other)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // One changed byte in the body.
    let changed = body.replace("Hello+there", "Hello+therf");
    assert_ne!(changed, body);
    let res = post_twilio(&app, &path, &changed, Some(&good)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Re-encoded: `+` for `%2B` turns the number's plus into a space.
    let reencoded = body.replace("%2B1415", "+1415");
    assert_ne!(reencoded, body);
    let res = post_twilio(&app, &path, &reencoded, Some(&good)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Signed for another URL: another host, and the status path.
    let elsewhere = twilio_sign(TOKEN_A, &format!("https://evil.example{path}"), &body);
    let res = post_twilio(&app, &path, &body, Some(&elsewhere)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let status_url = app.url(&format!("/hooks/twilio/{hook}/status"));
    let res = post_twilio(
        &app,
        &path,
        &body,
        Some(&twilio_sign(TOKEN_A, &status_url, &body)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Garbage signature.
    let res = post_twilio(&app, &path, &body, Some("not base64!")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The status callback checks the same way.
    let cb = form(&[
        ("MessageSid", "SM9"),
        ("MessageStatus", "delivered"),
        ("AccountSid", SID),
    ]);
    let res = post_twilio(&app, &format!("/hooks/twilio/{hook}/status"), &cb, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Unknown or malformed hook keys: a bare 404.
    for p in [
        "/hooks/twilio/00000000000000000000000000000000/sms".to_string(),
        "/hooks/twilio/not-a-key/sms".to_string(),
        format!("/hooks/twilio/{}/sms", hook.to_uppercase()),
    ] {
        let res = signed_twilio(&app, &p, TOKEN_A, &body).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{p}");
        assert!(res.text().await.unwrap().is_empty());
    }
    // Over the body limit: 413, not 500.
    let huge = format!("{body}&Pad={}", "x".repeat(app.config.body_limit_bytes + 1));
    let res = signed_twilio(&app, &path, TOKEN_A, &huge).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        counts(&app, a.id).await,
        before,
        "refused requests wrote rows"
    );

    // The genuine delivery is accepted.
    let res = post_twilio(&app, &path, &body, Some(&good)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    assert!(res.text().await.unwrap().contains("<Response/>"));
    let after = counts(&app, a.id).await;
    assert_eq!(after.0, before.0 + 1);
    // The same parameters in another order carry the same signature (it is
    // over the sorted, decoded parameters): the same message, stored once.
    let reordered = form(&[
        ("Body", "Hello there"),
        ("To", "+15005550006"),
        ("From", PHONE),
        ("NumMedia", "0"),
        ("AccountSid", SID),
        ("SmsSid", "SM0001"),
        ("MessageSid", "SM0001"),
    ]);
    let res = post_twilio(&app, &path, &reordered, Some(&good)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(counts(&app, a.id).await, after);
}

/// A Twilio Webhooks Rule signs with its own shared key and HMAC-SHA256
/// and says so in `X-Twilio-Webhooks-Signature-Settings`: such a webhook
/// verifies against the saved shared key, and only against it.
#[tokio::test]
async fn a_webhooks_rule_signs_with_its_shared_key_and_sha256() {
    use bos_channels::twilio::{signature_with, SignatureAlgorithm::*, SIGNATURE_SETTINGS_HEADER};
    const RULE_KEY: &str = "Rule-Shared-Key-0042";
    let app = spawn_app().await;
    let a = admin(&app, "Rule Shop", "rule@shop.example").await;
    let put = |body: Value| {
        let (app, key) = (&app, a.key.clone());
        async move {
            app.send_json(Method::PUT, "/settings/channels/sms", &key, &body)
                .await
        }
    };
    let res = put(json!({"provider": "twilio", "account_sid": SID, "auth_token": TOKEN_A, "from": "+15005550006"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let hook = app.store().channel_settings(a.org.id).await.unwrap()[1]
        .hook_key
        .clone()
        .unwrap();
    let path = format!("/hooks/twilio/{hook}/sms");
    let url = app.url(&path);
    let post = |body: String, sig: String, settings: Option<&'static str>| {
        let (app, path) = (&app, path.clone());
        async move {
            let mut req = app
                .http
                .post(app.url(&path))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("X-Twilio-Signature", sig)
                .body(body);
            if let Some(v) = settings {
                req = req.header(SIGNATURE_SETTINGS_HEADER, v);
            }
            req.send().await.unwrap()
        }
    };
    let body = sms_body("SM7001", PHONE, "Signed by a rule");
    let params = bos_channels::twilio::parse_form(body.as_bytes());
    let by_rule = signature_with(HmacSha256, RULE_KEY, &url, &params);
    let settings = Some("key=KS0123456789abcdef0123456789abcdef,algorithm=HMAC_SHA256");
    let before = counts(&app, a.org.id).await;
    // No shared key saved yet: refused, saying where to put it.
    let res = post(body.clone(), by_rule.clone(), settings).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let text = res.text().await.unwrap();
    assert!(text.contains("shared key"), "{text}");
    // Saved over the API (the token is kept); shown as a boolean only.
    let res = put(
        json!({"provider": "twilio", "account_sid": SID, "from": "+15005550006",
                         "webhook_shared_key": RULE_KEY}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(!text.contains(RULE_KEY));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            v["has_auth_token"].clone(),
            v["has_webhook_shared_key"].clone()
        ),
        (json!(true), json!(true))
    );
    // The rule's header with the Auth Token's SHA-1, an unknown algorithm,
    // or SHA-256 keyed with the Auth Token: all refused, nothing written.
    let sha1 = twilio_sign(TOKEN_A, &url, &body);
    for (sig, set) in [
        (sha1.clone(), settings),
        (by_rule.clone(), Some("key=KS1,algorithm=HMAC_MD5")),
        (signature_with(HmacSha256, TOKEN_A, &url, &params), settings),
    ] {
        let res = post(body.clone(), sig, set).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        counts(&app, a.org.id).await,
        before,
        "refused requests wrote rows"
    );
    // The rule's signature is accepted, once.
    for _ in 0..2 {
        let res = post(body.clone(), by_rule.clone(), settings).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(counts(&app, a.org.id).await.0, before.0 + 1);
    // Without the header, the Auth Token and SHA-1 still verify.
    let plain = sms_body("SM7002", PHONE, "Signed by the account");
    let res = post(plain.clone(), twilio_sign(TOKEN_A, &url, &plain), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Removing the key: the rule's webhooks are refused again.
    let res = put(
        json!({"provider": "twilio", "account_sid": SID, "from": "+15005550006",
                         "remove_webhook_shared_key": true}),
    )
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["has_webhook_shared_key"],
        false
    );
    let next = sms_body("SM7003", PHONE, "After removal");
    let p3 = bos_channels::twilio::parse_form(next.as_bytes());
    let res = post(
        next,
        signature_with(HmacSha256, RULE_KEY, &url, &p3),
        settings,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn inbound_sms_lands_on_the_customers_timeline_once() {
    let app = spawn_app().await;
    let (a, hook) = twilio_tenant(&app, "Alpha Shop", TOKEN_A).await;
    let known = customer(&app, a.id, IdentifierKind::Phone, PHONE).await;
    let path = format!("/hooks/twilio/{hook}/sms");
    let (_, _, profiles) = counts(&app, a.id).await;
    let body = sms_body("SM1000", PHONE, "Is the blue one still in stock?");
    for _ in 0..2 {
        let res = signed_twilio(&app, &path, TOKEN_A, &body).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(messages_in(&app, a.id, known).await, 1);
    assert_eq!(
        counts(&app, a.id).await.2,
        profiles,
        "attached, not created"
    );
    // A number nobody knows becomes a customer.
    let res = signed_twilio(
        &app,
        &path,
        TOKEN_A,
        &sms_body("SM1001", "+14155550999", "hi"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(counts(&app, a.id).await.2, profiles + 1);
    // A body Twilio would never send: 400, not 500.
    let res = signed_twilio(&app, &path, TOKEN_A, &form(&[("Body", "x")])).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stop_opts_out_and_start_opts_back_in() {
    let app = spawn_app().await;
    let (a, hook) = twilio_tenant(&app, "Alpha Shop", TOKEN_A).await;
    let path = format!("/hooks/twilio/{hook}/sms");
    let res = signed_twilio(&app, &path, TOKEN_A, &sms_body("SM2000", PHONE, "STOP")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(app
        .store()
        .is_opted_out(a.id, Channel::Sms, PHONE)
        .await
        .unwrap());
    let outs = app.store().opt_outs(a.id, 10).await.unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].channel, Channel::Sms);
    assert_eq!(outs[0].address, PHONE);
    let res = signed_twilio(&app, &path, TOKEN_A, &sms_body("SM2001", PHONE, "start")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!app
        .store()
        .is_opted_out(a.id, Channel::Sms, PHONE)
        .await
        .unwrap());
    // HELP is answered.
    let res = signed_twilio(&app, &path, TOKEN_A, &sms_body("SM2002", PHONE, "Help")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let xml = res.text().await.unwrap();
    assert!(xml.contains("<Message>") && xml.contains("STOP"), "{xml}");
    assert!(!app
        .store()
        .is_opted_out(a.id, Channel::Sms, PHONE)
        .await
        .unwrap());
}

async fn execution(
    app: &TestApp,
    org: Uuid,
    channel: Channel,
    to: &str,
    provider_id: Option<&str>,
    link: Option<&str>,
) -> (Uuid, String) {
    let token = format!("{:032x}", Uuid::new_v4().as_u128());
    let id = app
        .store()
        .insert_test_execution(
            org,
            TestExecution {
                profile_id: Uuid::new_v4(),
                channel,
                to: to.into(),
                status: "sent".into(),
                provider_id: provider_id.map(str::to_string),
                token: token.clone(),
                link_url: link.map(str::to_string),
                message_id: format!("{}@bos.test", Uuid::new_v4()),
            },
            T0,
        )
        .await
        .unwrap();
    (id, token)
}

#[tokio::test]
async fn status_callbacks_apply_forward_only() {
    let app = spawn_app().await;
    let (a, hook) = twilio_tenant(&app, "Alpha Shop", TOKEN_A).await;
    let (b, hook_b) = twilio_tenant(&app, "Beta Shop", TOKEN_B).await;
    let (x, _) = execution(&app, a.id, Channel::Sms, PHONE, Some("SM3000"), None).await;
    let (y, _) = execution(&app, b.id, Channel::Sms, PHONE, Some("SM3000"), None).await;
    let path = format!("/hooks/twilio/{hook}/status");
    let cb = |status: &str| {
        form(&[
            ("MessageSid", "SM3000"),
            ("MessageStatus", status),
            ("AccountSid", SID),
        ])
    };
    let state = |id| {
        let app = &app;
        async move {
            let org = if id == x { a.id } else { b.id };
            app.store()
                .test_execution_state(org, id)
                .await
                .unwrap()
                .unwrap()
        }
    };
    // Before `sent`: ignored.
    let res = signed_twilio(&app, &path, TOKEN_A, &cb("queued")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(state(x).await.status, "sent");
    let res = signed_twilio(&app, &path, TOKEN_A, &cb("delivered")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(state(x).await.status, "delivered");
    assert!(state(x).await.delivered_at.is_some());
    // Late and out of order: nothing moves back.
    for late in ["sent", "sending", "undelivered"] {
        let res = signed_twilio(&app, &path, TOKEN_A, &cb(late)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(state(x).await.status, "delivered", "after {late}");
    }
    // Tenant B's message with the same sid is B's alone.
    assert_eq!(state(y).await.status, "sent");
    let res = signed_twilio(
        &app,
        &format!("/hooks/twilio/{hook_b}/status"),
        TOKEN_B,
        &form(&[
            ("MessageSid", "SM3000"),
            ("MessageStatus", "failed"),
            ("AccountSid", SID),
            ("ErrorCode", "30003"),
        ]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let yb = state(y).await;
    assert_eq!(yb.status, "failed");
    assert_eq!(yb.error.as_deref(), Some("Twilio error 30003"));
    assert_eq!(state(x).await.status, "delivered");
    // An unknown status: 400, nothing changes.
    let res = signed_twilio(&app, &path, TOKEN_A, &cb("teleported")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

const MG_KEY: &str = "key-mailgun-signing-0001";
const PM_PASSWORD: &str = "pm-inbound-secret-0001";

async fn email_tenant(
    app: &TestApp,
    name: &str,
    mailgun: Option<&str>,
    postmark: Option<&str>,
) -> (bos_store::Org, String) {
    let org = app.org(name).await;
    let hook = app
        .store()
        .put_channel_config(
            org.id,
            Channel::Email,
            &ChannelConfig::Smtp {
                host: "203.0.113.10".into(),
                port: 587,
                tls: "starttls".into(),
                username: None,
                password: None,
                from: "Shop <shop@example.com>".into(),
                mailgun_signing_key: mailgun.map(str::to_string),
                postmark_password: postmark.map(str::to_string),
            },
            T0,
        )
        .await
        .unwrap();
    (org, hook)
}

fn mg_sign(key: &str, ts: &str, token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(token.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mailgun_body(key: &str, ts: i64, token: &str, message_id: &str, subject: &str) -> String {
    let ts = ts.to_string();
    let sig = mg_sign(key, &ts, token);
    let headers = json!([
        ["Message-Id", format!("<{message_id}>")],
        ["Subject", subject]
    ])
    .to_string();
    form(&[
        ("recipient", "reply@in.shop.example"),
        ("sender", "jane@example.com"),
        ("from", "Jane Doe <jane@example.com>"),
        ("subject", subject),
        ("body-plain", "Thanks, I will think about it."),
        ("message-headers", &headers),
        ("timestamp", &ts),
        ("token", token),
        ("signature", &sig),
    ])
}

async fn post_mailgun(app: &TestApp, hook: &str, body: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/hooks/mailgun/{hook}")))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn mailgun_inbound_verifies_and_refuses_replays() {
    let app = spawn_app().await;
    let (a, hook) = email_tenant(&app, "Alpha Shop", Some(MG_KEY), None).await;
    let (_b, hook_b) = email_tenant(&app, "Beta Shop", None, None).await;
    let jane = customer(&app, a.id, IdentifierKind::Email, "jane@example.com").await;
    let now_s = T0 / 1000;
    let before = counts(&app, a.id).await;

    // Missing signature fields.
    let unsigned = form(&[
        ("recipient", "reply@in.shop.example"),
        ("from", "jane@example.com"),
        ("subject", "hi"),
    ]);
    assert_eq!(
        post_mailgun(&app, &hook, &unsigned).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Another key.
    let wrong = mailgun_body(
        "key-someone-else",
        now_s,
        "tok-1",
        "m1@mail.example",
        "Re: cart",
    );
    assert_eq!(
        post_mailgun(&app, &hook, &wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Correctly signed, but stale (and too far in the future).
    for ts in [now_s - 301, now_s + 301] {
        let stale = mailgun_body(MG_KEY, ts, "tok-2", "m1@mail.example", "Re: cart");
        assert_eq!(
            post_mailgun(&app, &hook, &stale).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // One changed byte in the signature.
    let good = mailgun_body(MG_KEY, now_s, "tok-3", "m1@mail.example", "Re: cart");
    let sig = mg_sign(MG_KEY, &now_s.to_string(), "tok-3");
    let flipped = format!(
        "{}{}",
        &sig[..63],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let tampered = good.replace(&sig, &flipped);
    assert_eq!(
        post_mailgun(&app, &hook, &tampered).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A channel without a Mailgun key refuses without retries.
    assert_eq!(
        post_mailgun(&app, &hook_b, &good).await.status(),
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(counts(&app, a.id).await, before);

    // Genuine: stored on Jane's timeline.
    let res = post_mailgun(&app, &hook, &good).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(messages_in(&app, a.id, jane).await, 1);
    let after = counts(&app, a.id).await;
    // The same delivery again (same token): refused as a replay.
    assert_eq!(
        post_mailgun(&app, &hook, &good).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A retry with a fresh token is accepted but stored once (Message-Id).
    let retry = mailgun_body(MG_KEY, now_s, "tok-4", "m1@mail.example", "Re: cart");
    assert_eq!(
        post_mailgun(&app, &hook, &retry).await.status(),
        StatusCode::OK
    );
    assert_eq!(counts(&app, a.id).await, after);
    assert_eq!(messages_in(&app, a.id, jane).await, 1);
    // Signed but unusable: 406 (Mailgun does not retry).
    let ts = now_s.to_string();
    let no_from = form(&[
        ("recipient", "reply@in.shop.example"),
        ("timestamp", &ts),
        ("token", "tok-5"),
        ("signature", &mg_sign(MG_KEY, &ts, "tok-5")),
    ]);
    assert_eq!(
        post_mailgun(&app, &hook, &no_from).await.status(),
        StatusCode::NOT_ACCEPTABLE
    );
    // Multipart (a mail with attachments) is read the same way: an empty
    // one carries no signature, a broken one is unreadable.
    let res = app
        .http
        .post(app.url(&format!("/hooks/mailgun/{hook}")))
        .header(CONTENT_TYPE, "multipart/form-data; boundary=x")
        .body("--x--")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .http
        .post(app.url(&format!("/hooks/mailgun/{hook}")))
        .header(CONTENT_TYPE, "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    // "unsubscribe" as the reply opts the address out of email.
    let unsub = mailgun_body(MG_KEY, now_s, "tok-6", "m2@mail.example", "Re: unsubscribe");
    assert_eq!(
        post_mailgun(&app, &hook, &unsub).await.status(),
        StatusCode::OK
    );
    assert!(app
        .store()
        .is_opted_out(a.id, Channel::Email, "jane@example.com")
        .await
        .unwrap());
}

fn postmark_json(message_id: &str) -> String {
    json!({
        "MessageID": message_id,
        "From": "jane@example.com",
        "FromFull": {"Email": "jane@example.com", "Name": "Jane Doe"},
        "To": "reply@in.shop.example",
        "OriginalRecipient": "reply@in.shop.example",
        "Subject": "Re: your cart",
        "TextBody": "Yes please",
        "Headers": [{"Name": "Message-ID", "Value": "<pm1@mail.example>"}]
    })
    .to_string()
}

async fn post_postmark(
    app: &TestApp,
    hook: &str,
    auth: Option<(&str, &str)>,
    body: &str,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url(&format!("/hooks/postmark/{hook}")))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn postmark_inbound_needs_its_password() {
    let app = spawn_app().await;
    let (a, hook) = email_tenant(&app, "Alpha Shop", None, Some(PM_PASSWORD)).await;
    let (_b, hook_b) = email_tenant(&app, "Beta Shop", None, None).await;
    let jane = customer(&app, a.id, IdentifierKind::Email, "jane@example.com").await;
    let body = postmark_json("pm-0001");
    let before = counts(&app, a.id).await;
    let res = post_postmark(&app, &hook, None, &body).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    for (u, p) in [
        ("postmark", "wrong"),
        ("postmark", "pm-inbound-secret-000"),
        ("admin", PM_PASSWORD),
        ("postmark", ""),
    ] {
        let res = post_postmark(&app, &hook, Some((u, p)), &body).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{u}:{p}");
    }
    // No Postmark password configured: 403, which Postmark does not retry.
    let res = post_postmark(&app, &hook_b, Some(("postmark", PM_PASSWORD)), &body).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(counts(&app, a.id).await, before);
    for _ in 0..2 {
        let res = post_postmark(&app, &hook, Some(("postmark", PM_PASSWORD)), &body).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(messages_in(&app, a.id, jane).await, 1);
    let res = post_postmark(&app, &hook, Some(("postmark", PM_PASSWORD)), "{not json").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn open_pixel_and_click_redirect_by_token_only() {
    let app = spawn_app().await;
    let a = app.org("Alpha Shop").await;
    let cart = "https://shop.example/cart/42?utm_source=bos";
    let (x, tok) = execution(
        &app,
        a.id,
        Channel::Email,
        "jane@example.com",
        None,
        Some(cart),
    )
    .await;
    let (_, no_link) = execution(&app, a.id, Channel::Email, "bob@example.com", None, None).await;

    let res = app
        .http
        .get(app.url(&format!("/t/o/{tok}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "image/gif");
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let gif = res.bytes().await.unwrap();
    assert!(gif.starts_with(b"GIF89a"));
    let s = app
        .store()
        .test_execution_state(a.id, x)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.opened_at, Some(T0));
    assert_eq!(s.clicked_at, None);
    // An unknown token still gets the pixel; a malformed one is 404.
    let res = app
        .http
        .get(app.url("/t/o/00000000000000000000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "image/gif");
    let res = app.http.get(app.url("/t/o/1234")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    app.clock.advance_ms(60_000);
    // The click goes to the stored link, whatever the query says.
    let res = app
        .http
        .get(app.url(&format!("/t/c/{tok}?url=https://evil.example/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), cart);
    let s = app
        .store()
        .test_execution_state(a.id, x)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.clicked_at, Some(T0 + 60_000));
    assert_eq!(s.opened_at, Some(T0), "the first open is kept");
    for bad in [
        "/t/c/00000000000000000000000000000000".to_string(),
        format!("/t/c/{no_link}"),
        "/t/c/https%3A%2F%2Fevil.example".to_string(),
        format!("/t/c/{}", tok.to_uppercase()),
    ] {
        let res = app.http.get(app.url(&bad)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
        assert!(res.headers().get("location").is_none());
    }
}

#[tokio::test]
async fn unsubscribe_page_and_one_click_without_cookies() {
    let app = spawn_app().await;
    let a = app.org("Alpha Shop").await;
    let (_, tok) = execution(&app, a.id, Channel::Email, "jane@example.com", None, None).await;
    let url = app.url(&format!("/u/{tok}"));

    let res = app.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Alpha Shop"), "{html}");
    assert!(html.contains("j•••@example.com"), "{html}");
    assert!(!html.contains("jane@example.com"), "the address is masked");
    assert!(html.contains(&format!("action=\"/u/{tok}\"")));
    assert!(!html.contains("_csrf"));
    assert!(!app
        .store()
        .is_opted_out(a.id, Channel::Email, "jane@example.com")
        .await
        .unwrap());

    // RFC 8058 one-click, as a mail provider sends it: no cookie, no CSRF
    // token, a cross-site Origin. Twice is fine.
    for _ in 0..2 {
        let res = app
            .http
            .post(&url)
            .header("origin", "https://mail.provider.example")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.unwrap().contains("You are unsubscribed"));
    }
    assert!(app
        .store()
        .is_opted_out(a.id, Channel::Email, "jane@example.com")
        .await
        .unwrap());
    let outs = app.store().opt_outs(a.id, 10).await.unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].source, "unsubscribe link");
    let html = app
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("already unsubscribed"), "{html}");

    for bad in [
        "/u/00000000000000000000000000000000",
        "/u/../../etc",
        "/u/zz",
    ] {
        for m in [Method::GET, Method::POST] {
            let res = app
                .http
                .request(m.clone(), app.url(bad))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{m} {bad}");
        }
    }
}

async fn admin(app: &TestApp, name: &str, email: &str) -> Tenant {
    app.tenant_with(name, email, Role::Admin).await
}

fn smtp_form<'a>(csrf: &'a str, host: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("_csrf", csrf),
        ("provider", "smtp"),
        ("host", host),
        ("port", "587"),
        ("tls", "starttls"),
        ("username", "postmaster@shop.example"),
        ("password", password),
        ("from", "Alpha Shop <shop@alpha.example>"),
        ("mailgun_signing_key", ""),
        ("postmark_password", ""),
    ]
}

#[tokio::test]
async fn channel_settings_refuse_internal_hosts_and_hide_secrets() {
    let app = spawn_app().await;
    let a = admin(&app, "Alpha Shop", "admin@alpha.example").await;
    let b = admin(&app, "Beta Shop", "admin@beta.example").await;

    let res = app.get("/settings/channels", &a.browser.cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("development sink") && html.contains("/outbox"),
        "{html}"
    );
    assert!(html.contains("href=\"/settings/channels\""), "nav link");

    // SSRF: internal SMTP hosts are refused with a sentence.
    for (host, why) in [
        ("127.0.0.1", "loopback"),
        ("localhost", "internal host name"),
        ("10.1.2.3", "private network"),
        ("169.254.169.254", "metadata"),
        ("[::1]", "loopback"),
    ] {
        let res = app
            .post_form(
                "/settings/channels/email",
                &a.browser.cookie,
                &smtp_form(&a.browser.csrf, host, "pw"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{host}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("The SMTP host is refused") && html.contains(why),
            "{host}: {html}"
        );
    }
    assert_eq!(
        app.store()
            .channel_config(a.org.id, Channel::Email)
            .await
            .unwrap(),
        ChannelConfig::Dev
    );
    // Other sentences.
    let mut bad_port = smtp_form(&a.browser.csrf, "203.0.113.10", "pw");
    bad_port[3] = ("port", "70000");
    let res = app
        .post_form("/settings/channels/email", &a.browser.cookie, &bad_port)
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("from 1 to 65535"));
    let mut bad_from = smtp_form(&a.browser.csrf, "203.0.113.10", "pw");
    bad_from[7] = ("from", "Alpha <not-an-address>");
    let res = app
        .post_form("/settings/channels/email", &a.browser.cookie, &bad_from)
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Shop Name &lt;shop@example.com&gt;"));

    // A public host saves; the secrets are never shown again.
    let mut good = smtp_form(&a.browser.csrf, "203.0.113.10", "Sm7p-Secret-Pw");
    good[8] = ("mailgun_signing_key", "Mg-Signing-Secret-77");
    good[9] = ("postmark_password", "Pm-Inbound-Secret-88");
    let res = app
        .post_form("/settings/channels/email", &a.browser.cookie, &good)
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/settings/channels?done=email");
    let settings = app.store().channel_settings(a.org.id).await.unwrap();
    let hook = settings[0].hook_key.clone().unwrap();
    let html = app
        .get("/settings/channels?done=email", &a.browser.cookie)
        .await
        .text()
        .await
        .unwrap();
    for secret in [
        "Sm7p-Secret-Pw",
        "Mg-Signing-Secret-77",
        "Pm-Inbound-Secret-88",
    ] {
        assert!(!html.contains(secret), "{secret} echoed in the page");
    }
    assert!(html.contains("set ••••"));
    assert!(html.contains("Email settings saved"));
    assert!(html.contains(&format!("{}/hooks/mailgun/{hook}", app.base)));
    assert!(html.contains(&format!(
        "http://postmark:PASSWORD@{}/hooks/postmark/{hook}",
        app.base.trim_start_matches("http://")
    )));
    // Saving again with the secret fields empty keeps them.
    let res = app
        .post_form(
            "/settings/channels/email",
            &a.browser.cookie,
            &smtp_form(&a.browser.csrf, "203.0.113.10", ""),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    match app
        .store()
        .channel_config(a.org.id, Channel::Email)
        .await
        .unwrap()
    {
        ChannelConfig::Smtp {
            password,
            mailgun_signing_key,
            postmark_password,
            ..
        } => {
            assert_eq!(password.as_deref(), Some("Sm7p-Secret-Pw"));
            assert_eq!(mailgun_signing_key.as_deref(), Some("Mg-Signing-Secret-77"));
            assert_eq!(postmark_password.as_deref(), Some("Pm-Inbound-Secret-88"));
        }
        other => panic!("{other:?}"),
    }

    // SMS over the UI: SID shapes and E.164 are checked.
    let sms = |sid: &'static str, token: &'static str, from: &'static str| {
        vec![
            ("_csrf", a.browser.csrf.clone()),
            ("provider", "twilio".to_string()),
            ("account_sid", sid.to_string()),
            ("auth_token", token.to_string()),
            ("from", from.to_string()),
        ]
    };
    for (form, why) in [
        (sms("AB0123", TOKEN_A, "+14155550100"), "starts with AC"),
        (sms(SID, "short", "+14155550100"), "32 letters and digits"),
        (sms(SID, TOKEN_A, "4155550100"), "E.164"),
        (sms(SID, "", "+14155550100"), "Enter the Auth Token"),
    ] {
        let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = app
            .post_form("/settings/channels/sms", &a.browser.cookie, &f)
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{why}");
        let html = res.text().await.unwrap();
        assert!(html.contains(why), "{why}: {html}");
        assert!(!html.contains(TOKEN_A), "the token is not echoed");
    }
    let f = sms(SID, TOKEN_A, "+14155550100");
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = app
        .post_form("/settings/channels/sms", &a.browser.cookie, &f)
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = app
        .get("/settings/channels", &a.browser.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(TOKEN_A));
    let sms_hook = app.store().channel_settings(a.org.id).await.unwrap()[1]
        .hook_key
        .clone()
        .unwrap();
    assert!(html.contains(&format!("/hooks/twilio/{sms_hook}/sms")));
    assert!(html.contains(&format!("/hooks/twilio/{sms_hook}/status")));

    // The API: secrets as booleans only.
    let res = app.call(Method::GET, "/settings/channels", &a.key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    for secret in [
        "Sm7p-Secret-Pw",
        "Mg-Signing-Secret-77",
        "Pm-Inbound-Secret-88",
        TOKEN_A,
    ] {
        assert!(!text.contains(secret), "{secret} in the API");
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v[0]["channel"], "email");
    assert_eq!(v[0]["has_password"], true);
    assert_eq!(v[0]["has_mailgun_signing_key"], true);
    assert_eq!(v[1]["provider"], "twilio");
    assert_eq!(v[1]["has_auth_token"], true);
    assert_eq!(
        v[1]["webhooks"]["twilio_sms"],
        format!("{}/hooks/twilio/{sms_hook}/sms", app.base)
    );
    // PUT: validation sentences, then a save that keeps the token.
    let res = app
        .send_json(
            Method::PUT,
            "/settings/channels/sms",
            &a.key,
            &json!({"provider": "twilio", "account_sid": SID, "from": "MG0123"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .send_json(
            Method::PUT,
            "/settings/channels/sms",
            &a.key,
            &json!({"provider": "twilio", "account_sid": SID,
                      "from": "MG0123456789abcdef0123456789abcdef"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["has_auth_token"], true);
    assert_eq!(v["from"], "MG0123456789abcdef0123456789abcdef");
    let res = app
        .send_json(
            Method::PUT,
            "/settings/channels/smtp",
            &a.key,
            &json!({"provider": "dev"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .send_json(
            Method::PUT,
            "/settings/channels/email",
            &a.key,
            &json!({"provider": "smtp", "host": "metadata.google.internal", "port": 587,
                      "from": "shop@alpha.example"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["field"], "host");

    // Tenant B sees its own (empty) settings only.
    let html = app
        .get("/settings/channels", &b.browser.cookie)
        .await
        .text()
        .await
        .unwrap();
    let v = app
        .call(Method::GET, "/settings/channels", &b.key)
        .await
        .text()
        .await
        .unwrap();
    for leak in [
        "203.0.113.10",
        hook.as_str(),
        sms_hook.as_str(),
        SID,
        "alpha.example",
    ] {
        assert!(!html.contains(leak), "B's page shows A's {leak}");
        assert!(!v.contains(leak), "B's API shows A's {leak}");
    }
    // A member (not admin) of A cannot open the page.
    app.user("member@alpha.example", &a.org, Role::Member).await;
    let m = app.login("member@alpha.example").await;
    assert_eq!(
        app.get("/settings/channels", &m.cookie).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn private_smtp_host_allowed_when_the_server_allows_it() {
    let app = spawn_with(|c| c.allow_private_outbound = true).await;
    let a = admin(&app, "Alpha Shop", "admin@alpha.example").await;
    let res = app
        .post_form(
            "/settings/channels/email",
            &a.browser.cookie,
            &smtp_form(&a.browser.csrf, "127.0.0.1", "pw"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // And back to the development sink.
    let res = app
        .post_signed(
            "/settings/channels/email",
            &a.browser,
            &[("provider", "dev")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.store()
            .channel_config(a.org.id, Channel::Email)
            .await
            .unwrap(),
        ChannelConfig::Dev
    );
    // Without a CSRF token: 403 (a cookie route).
    let res = app
        .post_form(
            "/settings/channels/email",
            &a.browser.cookie,
            &[("provider", "dev")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn opt_outs_over_the_api() {
    let app = spawn_app().await;
    let a = admin(&app, "Alpha Shop", "admin@alpha.example").await;
    let b = admin(&app, "Beta Shop", "admin@beta.example").await;
    let res = app
        .send_json(
            Method::POST,
            "/opt-outs",
            &a.key,
            &json!({"channel": "sms", "address": "+1 (415) 555-0123", "opted_out": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["address"], PHONE);
    let list: Value = app.read(Method::GET, "/opt-outs", &a.key).await;
    assert_eq!(list[0]["address"], PHONE);
    assert_eq!(list[0]["channel"], "sms");
    assert_eq!(list[0]["source"], "api");
    let other: Value = app.read(Method::GET, "/opt-outs", &b.key).await;
    assert_eq!(other, json!([]));
    for bad in [
        json!({"channel": "fax", "address": PHONE, "opted_out": true}),
        json!({"channel": "email", "address": "not an address", "opted_out": true}),
    ] {
        let res = app.send_json(Method::POST, "/opt-outs", &a.key, &bad).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let res = app
        .send_json(
            Method::POST,
            "/opt-outs",
            &a.key,
            &json!({"channel": "sms", "address": PHONE, "opted_out": false}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(app.store().opt_outs(a.org.id, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn mailgun_multipart_with_an_attachment_lands_once_as_a_reply() {
    let app = spawn_app().await;
    let (a, hook) = email_tenant(&app, "Alpha Shop", Some(MG_KEY), None).await;
    let jane = customer(&app, a.id, IdentifierKind::Email, "jane@example.com").await;
    let ts = (T0 / 1000).to_string();
    let headers = json!([["Message-Id", "<m9@mail.example>"], ["Subject", "Re: cart"]]).to_string();
    let multipart = |token: &str| {
        let sig = mg_sign(MG_KEY, &ts, token);
        let mut f = reqwest::multipart::Form::new();
        for (k, v) in [
            ("recipient", "reply@in.shop.example"),
            ("sender", "jane@example.com"),
            ("from", "Jane Doe <jane@example.com>"),
            ("subject", "Re: cart"),
            ("body-plain", "Here is a photo of what I meant."),
            ("message-headers", headers.as_str()),
            ("timestamp", ts.as_str()),
            ("token", token),
            ("signature", sig.as_str()),
        ] {
            f = f.text(k, v.to_string());
        }
        f.part(
            "attachment-1",
            reqwest::multipart::Part::bytes(vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3])
                .file_name("photo.png")
                .mime_str("image/png")
                .unwrap(),
        )
    };
    let post = |form: reqwest::multipart::Form| {
        app.http
            .post(app.url(&format!("/hooks/mailgun/{hook}")))
            .multipart(form)
            .send()
    };
    let res = post(multipart("tok-mp-1")).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    assert_eq!(messages_in(&app, a.id, jane).await, 1);
    // Mailgun's retry with a fresh token: accepted, stored once.
    let res = post(multipart("tok-mp-2")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(messages_in(&app, a.id, jane).await, 1);
    // A forged multipart (wrong key) writes nothing.
    let mut forged = reqwest::multipart::Form::new();
    for (k, v) in [
        ("from", "Jane Doe <jane@example.com>"),
        ("body-plain", "forged"),
        ("timestamp", ts.as_str()),
        ("token", "tok-mp-3"),
    ] {
        forged = forged.text(k, v.to_string());
    }
    forged = forged.text("signature", mg_sign("not-the-key", &ts, "tok-mp-3"));
    let res = post(forged).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(messages_in(&app, a.id, jane).await, 1);
}

/// A signed post whose mail cannot be read (no sender), with this token.
fn mailgun_unreadable(key: &str, ts: i64, token: &str) -> String {
    let ts = ts.to_string();
    form(&[
        ("recipient", "reply@in.shop.example"),
        ("timestamp", &ts),
        ("token", token),
        ("signature", &mg_sign(key, &ts, token)),
    ])
}

#[tokio::test]
async fn a_flood_of_unreadable_mailgun_posts_blocks_no_delivery() {
    const MG_KEY_B: &str = "key-mailgun-signing-beta";
    let app = spawn_app().await;
    let (a, hook_a) = email_tenant(&app, "Alpha Shop", Some(MG_KEY), None).await;
    let (b, hook_b) = email_tenant(&app, "Beta Shop", Some(MG_KEY_B), None).await;
    let jane_a = customer(&app, a.id, IdentifierKind::Email, "jane@example.com").await;
    let jane_b = customer(&app, b.id, IdentifierKind::Email, "jane@example.com").await;
    let now_s = T0 / 1000;
    // Tenant A's own hook gets signed posts it cannot read: each is 406
    // and leaves nothing behind.
    for i in 0..300 {
        let res = post_mailgun(
            &app,
            &hook_a,
            &mailgun_unreadable(MG_KEY, now_s, &format!("flood-{i}")),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    }
    assert_eq!(app.store().hook_token_count(a.id).await.unwrap(), 0);
    // Even the token of a genuine delivery, sent first on an unreadable
    // post, is still good for the genuine one.
    let res = post_mailgun(
        &app,
        &hook_a,
        &mailgun_unreadable(MG_KEY, now_s, "tok-real"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    let good_a = mailgun_body(MG_KEY, now_s, "tok-real", "ma@mail.example", "Re: cart");
    assert_eq!(
        post_mailgun(&app, &hook_a, &good_a).await.status(),
        StatusCode::OK
    );
    assert_eq!(messages_in(&app, a.id, jane_a).await, 1);
    // B's deliveries go through, even with the same token as A's.
    let good_b = mailgun_body(MG_KEY_B, now_s, "tok-real", "mb@mail.example", "Re: cart");
    assert_eq!(
        post_mailgun(&app, &hook_b, &good_b).await.status(),
        StatusCode::OK
    );
    assert_eq!(messages_in(&app, b.id, jane_b).await, 1);
    // A replay is refused on each tenant, and by another replica too:
    // the used tokens are in the database, not in one process.
    assert_eq!(
        post_mailgun(&app, &hook_a, &good_a).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_mailgun(&app, &hook_b, &good_b).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let replica = app.spawn_replica().await;
    let res = app
        .http
        .post(format!("{replica}/hooks/mailgun/{hook_a}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(good_a.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.store().hook_token_count(a.id).await.unwrap(), 1);
    assert_eq!(app.store().hook_token_count(b.id).await.unwrap(), 1);
    // Used tokens are dropped once the timestamp check refuses them anyway.
    app.clock
        .advance_ms(bos_web::nudge_hooks::MAILGUN_TOKEN_TTL_MS);
    let later_s = (T0 + bos_web::nudge_hooks::MAILGUN_TOKEN_TTL_MS) / 1000;
    let later = mailgun_body(MG_KEY, later_s, "tok-later", "mc@mail.example", "Re: later");
    assert_eq!(
        post_mailgun(&app, &hook_a, &later).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.store().hook_token_count(a.id).await.unwrap(), 1);
}

#[tokio::test]
async fn a_stored_smtp_password_never_goes_to_another_endpoint() {
    let app = spawn_app().await;
    let a = admin(&app, "Alpha Shop", "admin@alpha.example").await;
    let put = |body: Value| {
        let app = &app;
        let key = a.key.clone();
        async move {
            app.send_json(Method::PUT, "/settings/channels/email", &key, &body)
                .await
        }
    };
    let base = json!({"provider": "smtp", "host": "203.0.113.10", "port": 587, "tls": "starttls",
                      "username": "postmaster@alpha.example", "from": "Alpha <shop@alpha.example>"});
    let with = |changes: Value| {
        let mut v = base.clone();
        for (k, x) in changes.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let stored = || async {
        match app
            .store()
            .channel_config(a.org.id, Channel::Email)
            .await
            .unwrap()
        {
            ChannelConfig::Smtp {
                host,
                tls,
                password,
                ..
            } => (host, tls, password),
            other => panic!("{other:?}"),
        }
    };
    let res = put(with(json!({"password": "Sm7p-Secret-Pw"}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Re-saving the same endpoint without the password keeps it.
    let res = put(base.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(stored().await.2.as_deref(), Some("Sm7p-Secret-Pw"));
    // The attack: only a new host and no TLS. Refused with a sentence;
    // nothing changes, so the next send still goes to the old server.
    for change in [
        json!({"host": "203.0.113.20", "tls": "none"}),
        json!({"host": "203.0.113.20"}),
        json!({"tls": "none"}),
        json!({"port": 2525}),
        json!({"username": "someone-else@alpha.example"}),
    ] {
        let res = put(with(change.clone())).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{change}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["field"], "password", "{change}");
        assert!(v["detail"].as_str().unwrap().contains("cleared"), "{v}");
        assert_eq!(
            stored().await,
            (
                "203.0.113.10".to_string(),
                "starttls".to_string(),
                Some("Sm7p-Secret-Pw".to_string())
            ),
            "{change}"
        );
    }
    // Without a user name the new endpoint saves, without any password.
    let res = put(with(
        json!({"host": "203.0.113.20", "tls": "none", "username": ""}),
    ))
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["has_password"], false);
    assert_eq!(stored().await.2, None);
    // Given again, it is stored for the new endpoint.
    let res = put(with(
        json!({"host": "203.0.113.20", "password": "New-Pw-For-20"}),
    ))
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(stored().await.2.as_deref(), Some("New-Pw-For-20"));
    // The settings page says so.
    let html = app
        .get("/settings/channels", &a.browser.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("clears the stored password"));

    // Twilio: the Auth Token belongs to its account SID.
    let sms = |sid: &str, token: Option<&str>| {
        let mut v = json!({"provider": "twilio", "account_sid": sid, "from": "+14155550100"});
        if let Some(t) = token {
            v["auth_token"] = json!(t);
        }
        v
    };
    let put_sms = |body: Value| {
        let app = &app;
        let key = a.key.clone();
        async move {
            app.send_json(Method::PUT, "/settings/channels/sms", &key, &body)
                .await
        }
    };
    assert_eq!(
        put_sms(sms(SID, Some(TOKEN_A))).await.status(),
        StatusCode::OK
    );
    assert_eq!(put_sms(sms(SID, None)).await.status(), StatusCode::OK);
    let other_sid = "AC00000000000000000000000000000000";
    let res = put_sms(sms(other_sid, None)).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["field"], "auth_token");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("Account SID changed"));
    match app
        .store()
        .channel_config(a.org.id, Channel::Sms)
        .await
        .unwrap()
    {
        ChannelConfig::Twilio {
            account_sid,
            auth_token,
            ..
        } => {
            assert_eq!((account_sid.as_str(), auth_token.as_str()), (SID, TOKEN_A));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn keys_saved_with_the_development_sink_are_refused_not_dropped() {
    let app = spawn_app().await;
    let a = admin(&app, "Alpha Shop", "admin@alpha.example").await;
    for (field, body) in [
        (
            "mailgun_signing_key",
            json!({"provider": "dev", "mailgun_signing_key": "Mg-Key-1"}),
        ),
        (
            "postmark_password",
            json!({"provider": "dev", "postmark_password": "Pm-Pw-1"}),
        ),
        (
            "password",
            json!({"provider": "dev", "password": "Smtp-Pw-1"}),
        ),
    ] {
        let res = app
            .send_json(Method::PUT, "/settings/channels/email", &a.key, &body)
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["field"], field);
        assert!(
            v["detail"].as_str().unwrap().contains("provider smtp"),
            "{v}"
        );
    }
    let res = app
        .send_json(
            Method::PUT,
            "/settings/channels/sms",
            &a.key,
            &json!({"provider": "dev", "auth_token": TOKEN_A}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["detail"].as_str().unwrap().contains("provider twilio"),
        "{v}"
    );
    // The development sink alone (empty secret fields, as the UI's button
    // sends) still saves.
    let res = app
        .send_json(
            Method::PUT,
            "/settings/channels/email",
            &a.key,
            &json!({"provider": "dev", "mailgun_signing_key": ""}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_quoted_sender_name_with_angle_brackets_is_delivered() {
    let app = spawn_app().await;
    let (a, hook) = email_tenant(&app, "Alpha Shop", Some(MG_KEY), None).await;
    let jane = customer(&app, a.id, IdentifierKind::Email, "jane@example.com").await;
    let ts = (T0 / 1000).to_string();
    let headers = json!([
        ["Message-Id", "<quoted@mail.example>"],
        ["Subject", "Re: cart"]
    ])
    .to_string();
    let body = form(&[
        ("recipient", "reply@in.shop.example"),
        ("sender", "jane@example.com"),
        ("from", r#""Jane <ops> \"JD\" Doe" <Jane@Example.com>"#),
        ("subject", "Re: cart"),
        ("body-plain", "Yes please."),
        ("message-headers", &headers),
        ("timestamp", &ts),
        ("token", "tok-quoted"),
        ("signature", &mg_sign(MG_KEY, &ts, "tok-quoted")),
    ]);
    let res = post_mailgun(&app, &hook, &body).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    assert_eq!(messages_in(&app, a.id, jane).await, 1);
}
