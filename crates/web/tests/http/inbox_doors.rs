//! Every inbound door writes the Unified Inbox (both engines): a signed
//! Instagram DM, a Twilio SMS and a Mailgun e-mail from one person (linked
//! by God View) are one conversation; Meta's handshake answers only the
//! source's verify token; a Meta delivery with a missing, forged or
//! tampered signature is 401 and stores nothing; the same delivery three
//! times is one message; echoes and receipts move statuses; a Meta source's
//! credentials are never shown again nor stored in clear; a form with a
//! message is a message on the form channel; another tenant's signature
//! reaches nothing.

use crate::support::*;
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::inbox::{AuthorKind, Channel as InboxChannel, DeliveryStatus, Direction};
use bos_core::nudge::Channel;
use bos_store::inbox::{ConversationDetail, ListQuery};
use bos_store::nudge::ChannelConfig;
use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb";
const MG_KEY: &str = "key-mailgun-signing-0001";
const APP_SECRET: &str = "meta-app-secret-0001";
const VERIFY_TOKEN: &str = "verify-me-0001";
const PAGE_TOKEN: &str = "EAAB-page-token-0001";
const IGSID: &str = "17841400000000001";
const PHONE: &str = "+14155550123";
const EMAIL: &str = "jane@example.com";

/// A Meta source created over the API; its id.
async fn meta_source(app: &TestApp, key: &str, app_secret: &str) -> Uuid {
    let res = app
        .send_json(
            Method::POST,
            "/sources",
            key,
            &json!({
                "kind": "meta",
                "name": "Shop on Instagram",
                "app_secret": app_secret,
                "verify_token": VERIFY_TOKEN,
                "page_access_token": PAGE_TOKEN,
            }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let text = res.text().await.unwrap();
    for secret in [app_secret, VERIFY_TOKEN, PAGE_TOKEN] {
        assert!(!text.contains(secret), "a credential came back: {text}");
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["source"]["kind"], "meta");
    let id: Uuid = v["source"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        v["source"]["endpoint"],
        app.url(&format!("/hooks/meta/{id}"))
    );
    id
}

fn meta_sign(secret: &str, body: &[u8]) -> String {
    bos_channels::meta::signature(secret, body)
}

async fn post_meta(
    app: &TestApp,
    source: Uuid,
    body: &str,
    sig: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url(&format!("/hooks/meta/{source}")))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(s) = sig {
        req = req.header("X-Hub-Signature-256", s);
    }
    req.send().await.unwrap()
}

fn instagram_dm(mid: &str, text: &str) -> String {
    json!({
        "object": "instagram",
        "entry": [{
            "id": "17841499999999999",
            "time": T0,
            "messaging": [{
                "sender": {"id": IGSID},
                "recipient": {"id": "17841499999999999"},
                "timestamp": T0,
                "message": {"mid": mid, "text": text}
            }]
        }]
    })
    .to_string()
}

fn form(params: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(params).unwrap()
}

async fn twilio_channel(app: &TestApp, org: Uuid) -> String {
    app.store()
        .put_channel_config(
            org,
            Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: TWILIO_SID.into(),
                auth_token: TWILIO_TOKEN.into(),
                from: "+15005550006".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap()
}

async fn mailgun_channel(app: &TestApp, org: Uuid) -> String {
    app.store()
        .put_channel_config(
            org,
            Channel::Email,
            &ChannelConfig::Smtp {
                host: "203.0.113.10".into(),
                port: 587,
                tls: "starttls".into(),
                username: None,
                password: None,
                from: "Shop <shop@example.com>".into(),
                mailgun_signing_key: Some(MG_KEY.into()),
                postmark_password: None,
            },
            T0,
        )
        .await
        .unwrap()
}

async fn post_twilio_sms(app: &TestApp, hook: &str, sid: &str, text: &str) -> reqwest::Response {
    let path = format!("/hooks/twilio/{hook}/sms");
    let body = form(&[
        ("MessageSid", sid),
        ("AccountSid", TWILIO_SID),
        ("From", PHONE),
        ("To", "+15005550006"),
        ("Body", text),
        ("NumMedia", "0"),
    ]);
    let sig = bos_channels::twilio::signature(
        TWILIO_TOKEN,
        &app.url(&path),
        &bos_channels::twilio::parse_form(body.as_bytes()),
    );
    app.http
        .post(app.url(&path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", sig)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn mg_sign(ts: &str, token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(MG_KEY.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(token.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn post_mailgun(app: &TestApp, hook: &str, token: &str) -> reqwest::Response {
    let ts = (T0 / 1000).to_string();
    let headers = json!([
        ["Message-Id", "<reply-1@mail.example>"],
        ["In-Reply-To", "<parent-2@shop.example>"],
        [
            "References",
            "<root-1@shop.example> <parent-2@shop.example>"
        ],
        ["Subject", "Re: Your order"]
    ])
    .to_string();
    let body = form(&[
        ("recipient", "reply@in.shop.example"),
        ("sender", EMAIL),
        ("from", "Jane Doe <jane@example.com>"),
        ("subject", "Re: Your order"),
        ("body-plain", "Where is my parcel?"),
        (
            "body-html",
            "<p>Where is my <b>parcel</b>?</p><script>alert(1)</script>",
        ),
        ("message-headers", &headers),
        ("timestamp", &ts),
        ("token", token),
        ("signature", &mg_sign(&ts, token)),
    ]);
    app.http
        .post(app.url(&format!("/hooks/mailgun/{hook}")))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn conversations(app: &TestApp, org: Uuid) -> Vec<ConversationDetail> {
    let page = app
        .state
        .inbox
        .list(
            org,
            None,
            ListQuery {
                limit: 50,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for c in page.items {
        out.push(app.state.inbox.get(org, c.id, None).await.unwrap());
    }
    out
}

async fn profile_count(app: &TestApp, org: Uuid) -> i64 {
    app.store().count_profiles(org).await.unwrap()
}

#[tokio::test]
async fn an_instagram_dm_an_sms_and_an_email_from_one_person_are_one_conversation() {
    let app = spawn_app().await;
    let t = app.tenant("Door Shop").await;
    let org = t.org.id;
    // One person, known by God View on all three channels.
    let jane = app
        .store()
        .identify(
            org,
            &IdentityRules::default(),
            &bos_store::identity::IdentifyInput {
                identifiers: vec![
                    Identifier::new(IdentifierKind::Email, EMAIL),
                    Identifier::new(IdentifierKind::Phone, PHONE),
                    Identifier::new(IdentifierKind::InstagramId, IGSID),
                ],
                traits: bos_store::identity::Traits {
                    first_name: "Jane".into(),
                    last_name: "Doe".into(),
                    company: String::new(),
                    custom: Default::default(),
                },
                source: "test".into(),
                event: None,
                now: T0,
            },
        )
        .await
        .unwrap()
        .profile_id;
    let source = meta_source(&app, &t.key, APP_SECRET).await;
    let sms_hook = twilio_channel(&app, org).await;
    let mail_hook = mailgun_channel(&app, org).await;

    let dm = instagram_dm("mid.ig.1", "Hi! Is the blue one in stock?");
    let res = post_meta(
        &app,
        source,
        &dm,
        Some(&meta_sign(APP_SECRET, dm.as_bytes())),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post_twilio_sms(&app, &sms_hook, "SM0001", "Also, do you ship to Leeds?").await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post_mailgun(&app, &mail_hook, "mg-token-1").await;
    assert_eq!(res.status(), StatusCode::OK);

    let all = conversations(&app, org).await;
    assert_eq!(all.len(), 1, "one conversation per customer: {all:#?}");
    let c = &all[0];
    assert_eq!(c.conversation.profile_id, jane);
    let channels: Vec<InboxChannel> = c.messages.iter().map(|m| m.channel).collect();
    assert_eq!(
        channels,
        vec![
            InboxChannel::Instagram,
            InboxChannel::Sms,
            InboxChannel::Email
        ]
    );
    assert!(c
        .messages
        .iter()
        .all(|m| m.direction == Direction::Inbound && m.author_kind == AuthorKind::Customer));
    let mail = &c.messages[2];
    assert_eq!(mail.subject.as_deref(), Some("Re: Your order"));
    assert_eq!(
        mail.email_message_id.as_deref(),
        Some("reply-1@mail.example")
    );
    assert_eq!(mail.in_reply_to.as_deref(), Some("parent-2@shop.example"));
    assert_eq!(
        mail.references,
        vec!["root-1@shop.example", "parent-2@shop.example"]
    );
    let html = mail.html.as_deref().unwrap();
    assert!(html.contains("<b>parcel</b>"), "{html}");
    assert!(!html.contains("script"), "{html}");
    assert_eq!(mail.author_name, "Jane Doe");
    // The nudge engine's own timeline lines stand for the SMS and the
    // e-mail; the inbox wrote one for the DM: three, no doubles.
    let lines = app
        .timeline(org, jane)
        .await
        .into_iter()
        .filter(|e| e.kind == "message_in")
        .count();
    assert_eq!(lines, 3);
}

#[tokio::test]
async fn the_meta_handshake_answers_only_the_verify_token() {
    let app = spawn_app().await;
    let t = app.tenant("Handshake Shop").await;
    let source = meta_source(&app, &t.key, APP_SECRET).await;
    let get = |q: String| {
        let url = app.url(&format!("/hooks/meta/{source}?{q}"));
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let ok = get(format!(
        "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    ))
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    for q in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".to_string(),
        "hub.mode=subscribe&hub.challenge=1".to_string(),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
    ] {
        assert_eq!(get(q).await.status(), StatusCode::FORBIDDEN);
    }
    // An unknown source, or no source id at all: nothing to say.
    let unknown = app
        .http
        .get(app.url(&format!(
            "/hooks/meta/{}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1",
            Uuid::now_v7()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let junk = app
        .http
        .get(app.url("/hooks/meta/not-a-uuid"))
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn meta_deliveries_without_the_right_signature_store_nothing() {
    let app = spawn_app().await;
    let a = app.tenant("Signed Shop A").await;
    let b = app.tenant("Signed Shop B").await;
    let source = meta_source(&app, &a.key, APP_SECRET).await;
    // Tenant B's own source and secret.
    meta_source(&app, &b.key, "meta-app-secret-of-b").await;
    let before = profile_count(&app, a.org.id).await;
    let dm = instagram_dm("mid.ig.forged", "Hello");
    let good = meta_sign(APP_SECRET, dm.as_bytes());
    let tampered_body = dm.replace("Hello", "Hellp");
    let mut flipped = good.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    let reserialized =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&dm).unwrap()).unwrap();
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("missing", dm.clone(), None),
        ("empty", dm.clone(), Some(String::new())),
        (
            "another tenant's secret",
            dm.clone(),
            Some(meta_sign("meta-app-secret-of-b", dm.as_bytes())),
        ),
        (
            "one changed byte in the body",
            tampered_body,
            Some(good.clone()),
        ),
        (
            "one changed byte in the signature",
            dm.clone(),
            Some(flipped),
        ),
        ("re-serialized JSON", reserialized, Some(good.clone())),
        (
            "sha1 only",
            dm.clone(),
            Some(good.replace("sha256=", "sha1=")),
        ),
    ];
    for (what, body, sig) in cases {
        let res = post_meta(&app, source, &body, sig.as_deref()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        let ct = res.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        assert_eq!(ct, "application/problem+json", "{what}");
    }
    assert!(conversations(&app, a.org.id).await.is_empty());
    assert_eq!(
        profile_count(&app, a.org.id).await,
        before,
        "no customer made"
    );
    assert!(conversations(&app, b.org.id).await.is_empty());
}

#[tokio::test]
async fn a_meta_delivery_three_times_is_one_message_and_receipts_move_status() {
    let app = spawn_app().await;
    let t = app.tenant("Triple Shop").await;
    let org = t.org.id;
    let source = meta_source(&app, &t.key, APP_SECRET).await;
    let dm = instagram_dm("mid.ig.triple", "Can I change my order?");
    let sig = meta_sign(APP_SECRET, dm.as_bytes());
    for _ in 0..3 {
        assert_eq!(
            post_meta(&app, source, &dm, Some(&sig)).await.status(),
            StatusCode::OK
        );
    }
    let all = conversations(&app, org).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].messages.len(), 1, "{:#?}", all[0].messages);
    // An unknown Instagram id became a new customer known by that id.
    let customer = all[0].conversation.profile_id;
    let ids = app.store().profile_identities(org, customer).await.unwrap();
    assert!(
        ids.iter()
            .any(|l| l.kind == IdentifierKind::InstagramId.as_str() && l.value == IGSID),
        "{ids:?}"
    );

    // A message the page sent from Meta's app comes back as an echo: the
    // business's, once. Then Messenger-style receipts by watermark, and an
    // Instagram read naming the message.
    let echo = json!({
        "object": "instagram",
        "entry": [{"id": "17841499999999999", "time": T0, "messaging": [{
            "sender": {"id": "17841499999999999"},
            "recipient": {"id": IGSID},
            "timestamp": T0 + 1_000,
            "message": {"mid": "mid.ig.echo", "text": "Yes, reply with the new size", "is_echo": true}
        }]}]
    })
    .to_string();
    for _ in 0..2 {
        let res = post_meta(
            &app,
            source,
            &echo,
            Some(&meta_sign(APP_SECRET, echo.as_bytes())),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let msgs = &conversations(&app, org).await[0].messages;
    assert_eq!(msgs.len(), 2);
    let sent = &msgs[1];
    assert_eq!(sent.direction, Direction::Outbound);
    assert_eq!(sent.status, DeliveryStatus::Sent);
    let read = json!({
        "object": "instagram",
        "entry": [{"id": "17841499999999999", "time": T0, "messaging": [{
            "sender": {"id": IGSID},
            "recipient": {"id": "17841499999999999"},
            "timestamp": T0 + 2_000,
            "read": {"mid": "mid.ig.echo"}
        }]}]
    })
    .to_string();
    let res = post_meta(
        &app,
        source,
        &read,
        Some(&meta_sign(APP_SECRET, read.as_bytes())),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let msgs = &conversations(&app, org).await[0].messages;
    assert_eq!(msgs[1].status, DeliveryStatus::Read);
}

#[tokio::test]
async fn meta_source_credentials_are_required_and_never_stored_in_clear() {
    let app = spawn_app().await;
    let t = app.tenant("Sealed Shop").await;
    let res = app
        .send_json(
            Method::POST,
            "/sources",
            &t.key,
            &json!({"kind": "meta", "name": "Page", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["detail"].as_str().unwrap().contains("page_access_token"),
        "{v}"
    );
    let res = app
        .send_json(
            Method::POST,
            "/sources",
            &t.key,
            &json!({"kind": "webhook", "name": "Hooks", "app_secret": APP_SECRET}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let id = meta_source(&app, &t.key, APP_SECRET).await;
    let list = app.call(Method::GET, "/sources", &t.key).await;
    assert_eq!(list.status(), StatusCode::OK);
    let text = list.text().await.unwrap();
    assert!(text.contains(&id.to_string()));
    for secret in [APP_SECRET, VERIFY_TOKEN, PAGE_TOKEN] {
        assert!(!text.contains(secret), "listed: {text}");
    }
    let at_rest = app.store().dump_provider_secret_columns().await.unwrap();
    assert!(at_rest
        .iter()
        .all(|v| !v.contains(APP_SECRET) && !v.contains(PAGE_TOKEN) && !v.contains(VERIFY_TOKEN)));
    // The reply code gets the page token through the store.
    use bos_engine::inbox::PageTokens;
    let pages = bos_engine::inbox::StoredMetaPages(app.store().clone());
    assert_eq!(
        pages
            .page_token(t.org.id, bos_core::inbox::Channel::Instagram)
            .await
            .unwrap()
            .as_deref(),
        Some(PAGE_TOKEN)
    );
    let other = app.tenant("Other Shop").await;
    assert_eq!(
        pages
            .page_token(other.org.id, bos_core::inbox::Channel::Facebook)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_form_with_a_message_is_a_message_on_the_form_channel() {
    let app = spawn_app().await;
    let t = app.tenant("Form Shop").await;
    let res = app
        .send_json(
            Method::POST,
            "/sources",
            &t.key,
            &json!({"kind": "form", "name": "Landing"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    let endpoint = v["source"]["endpoint"].as_str().unwrap().to_string();
    for (sid, message) in [("visit-1", "Do you do gift wrapping?"), ("visit-2", "")] {
        let res = app
            .http
            .post(&endpoint)
            .header("origin", "https://landing.example")
            .form(&[
                ("email", "form.person@example.com"),
                ("name", "Fran Form"),
                ("message", message),
                ("_sid", sid),
            ])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success() || res.status().is_redirection());
    }
    app.state.pipeline.drain().await.unwrap();
    // Replaying the pipeline changes nothing.
    app.state.pipeline.drain().await.unwrap();
    let all = conversations(&app, t.org.id).await;
    assert_eq!(all.len(), 1, "only the form with a message: {all:#?}");
    let m = &all[0].messages;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].channel, InboxChannel::Form);
    assert_eq!(m[0].text, "Do you do gift wrapping?");
    let lines: Vec<String> = app
        .timeline(t.org.id, all[0].conversation.profile_id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        !lines.iter().any(|k| k == "message_in"),
        "the form line stands for it: {lines:?}"
    );
}

/// No inbox write lost: a form submitted while the inbox cannot be written
/// is committed with a timer, and the timer writes the message (once)
/// when the inbox is back, retried with backoff until then.
#[tokio::test]
async fn a_form_message_the_inbox_refused_is_written_once_it_can() {
    use bos_store::inbox::INBOX_COPY_GRACE_MS;
    let app = spawn_app().await;
    let t = app.tenant("Form Outage").await;
    let runner = crate::pipeline::runner(&app).await;
    let res = app
        .send_json(
            Method::POST,
            "/sources",
            &t.key,
            &json!({"kind": "form", "name": "Landing"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    let endpoint = v["source"]["endpoint"].as_str().unwrap().to_string();

    app.store().break_inbox_writes_for_test(true).await.unwrap();
    let res = app
        .http
        .post(&endpoint)
        .header("origin", "https://landing.example")
        .form(&[
            ("email", "olga.outage@example.com"),
            ("name", "Olga Outage"),
            ("message", "Can I book a fitting?"),
            ("_sid", "visit-9"),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_redirection());
    app.state.pipeline.drain().await.unwrap();
    assert!(
        conversations(&app, t.org.id).await.is_empty(),
        "the inbox is down"
    );
    // The timer's first try, still down: it waits its backoff.
    crate::nudges::settle_at(&app, &runner, T0 + INBOX_COPY_GRACE_MS).await;
    assert!(conversations(&app, t.org.id).await.is_empty());

    app.store()
        .break_inbox_writes_for_test(false)
        .await
        .unwrap();
    crate::nudges::settle_at(&app, &runner, T0 + INBOX_COPY_GRACE_MS + 10 * 60_000).await;
    let all = conversations(&app, t.org.id).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].messages.len(), 1);
    assert_eq!(all[0].messages[0].channel, InboxChannel::Form);
    assert_eq!(all[0].messages[0].text, "Can I book a fitting?");
    // Written at the form's time, not the retry's.
    assert_eq!(all[0].messages[0].created_at, T0);
    // Its timer is done: nothing left failing.
    let failing = app.store().failing_jobs(t.org.id, 10).await.unwrap();
    assert!(failing.is_empty(), "{failing:?}");
}
