//! The Unified Inbox over the API: replies reach the providers' fakes with
//! their fields and auth (the e-mail threaded), closed channels and bad
//! input are problem+json that says what to do, and the thread list
//! filters, sorts, pages and searches.

use crate::support::*;
use bos_channels::fake::{FakeSmtp, FakeTwilio};
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::inbox::Channel;
use bos_core::{Role, ScopeSet};
use bos_engine::inbox::Inbound;
use bos_store::identity::{IdentifyInput, Traits};
use bos_store::nudge::ChannelConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn customer(app: &TestApp, org: Uuid, first: &str, email: &str, phone: &str) -> Uuid {
    app.store()
        .identify(
            org,
            &IdentityRules::default(),
            &IdentifyInput {
                identifiers: vec![
                    Identifier::new(IdentifierKind::Email, email),
                    Identifier::new(IdentifierKind::Phone, phone),
                ],
                traits: Traits {
                    first_name: first.into(),
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
        .profile_id
}

async fn inbound(app: &TestApp, org: Uuid, m: Inbound, at: i64) -> Uuid {
    app.state
        .inbox
        .record_inbound(org, m, at)
        .await
        .unwrap()
        .conversation_id()
}

fn sms(profile: Uuid, sid: &str, text: &str) -> Inbound {
    Inbound {
        provider_message_id: Some(sid.into()),
        ..Inbound::text(profile, Channel::Sms, text)
    }
}

fn problem_field(v: &Value) -> &str {
    v["field"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn replies_reach_twilio_and_smtp_and_the_email_threads() {
    let twilio = FakeTwilio::start().await;
    let smtp = FakeSmtp::start().await;
    let base = twilio.base_url();
    let app = spawn_with(|c| {
        c.twilio_base_url = base.clone();
        c.allow_private_outbound = true;
    })
    .await;
    let t = app.tenant("Shop").await;
    let org = t.org.id;
    app.store()
        .put_channel_config(
            org,
            bos_core::nudge::Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: twilio.account_sid.clone(),
                auth_token: twilio.auth_token.clone(),
                from: "+14155550100".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap();
    app.store()
        .put_channel_config(
            org,
            bos_core::nudge::Channel::Email,
            &ChannelConfig::Smtp {
                host: smtp.addr().ip().to_string(),
                port: smtp.port(),
                tls: "none".into(),
                username: None,
                password: None,
                from: "Shop <help@shop.example>".into(),
                mailgun_signing_key: None,
                postmark_password: None,
            },
            T0,
        )
        .await
        .unwrap();
    let ann = customer(&app, org, "Ann", "ann@example.com", "+14155550123").await;
    // The customer wrote a minute ago; replies go out at the clock's now.
    let conv = inbound(
        &app,
        org,
        sms(ann, "SM1", "Is my order shipped?"),
        T0 - 60_000,
    )
    .await;
    inbound(
        &app,
        org,
        Inbound {
            provider_message_id: Some("pm-1".into()),
            subject: Some("Order 12".into()),
            email_message_id: Some("q1@mail.example.com".into()),
            ..Inbound::text(ann, Channel::Email, "Also: can I change the address?")
        },
        T0 - 30_000,
    )
    .await;
    let path = format!("/conversations/{conv}/messages");

    let (status, m) = app
        .api_json(
            Method::POST,
            &path,
            &t.key,
            Some(json!({"channel": "sms", "text": "Shipped today!"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["direction"], "outbound");
    assert_eq!(m["author_kind"], "member");
    assert_eq!(m["author_name"], "test (API)");
    let got = twilio.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0].to.as_str(),
            got[0].from.as_str(),
            got[0].body.as_str()
        ),
        ("+14155550123", "+14155550100", "Shipped today!")
    );

    let (status, m) = app
        .api_json(
            Method::POST,
            &path,
            &t.key,
            Some(json!({"channel": "email", "text": "Yes, send the new one."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["subject"], "Re: Order 12");
    assert_eq!(m["in_reply_to"], "q1@mail.example.com");
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, vec!["ann@example.com".to_string()]);
    let data = &mail[0].data;
    assert!(
        data.contains("In-Reply-To: <q1@mail.example.com>\r\n"),
        "{data}"
    );
    assert!(
        data.contains("References: <q1@mail.example.com>\r\n"),
        "{data}"
    );
    assert!(data.contains("Subject: Re: Order 12\r\n"), "{data}");

    // The conversation shows both replies and where the next can go.
    let (status, d) = app
        .api_json(Method::GET, &format!("/conversations/{conv}"), &t.key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let msgs = d["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[3]["text"], "Yes, send the new one.");
    let channels = d["reply_channels"].as_array().unwrap();
    let sms = channels.iter().find(|c| c["channel"] == "sms").unwrap();
    assert_eq!(sms["available"], true);
    assert_eq!(sms["to"], "+•••••••0123");
    let ig = channels
        .iter()
        .find(|c| c["channel"] == "instagram")
        .unwrap();
    assert_eq!(ig["available"], false);
    assert!(ig["why_not"]
        .as_str()
        .unwrap()
        .starts_with("No Instagram account"));
    // Replies land on the customer's timeline.
    let lines = app.timeline(org, ann).await;
    assert_eq!(lines.iter().filter(|l| l.kind == "message_out").count(), 2);
}

#[tokio::test]
async fn closed_channels_and_bad_replies_say_what_to_do() {
    let app = spawn_app().await;
    let t = app.tenant("Shop").await;
    let org = t.org.id;
    let ann = customer(&app, org, "Ann", "ann@example.com", "+14155550123").await;
    let conv = inbound(&app, org, sms(ann, "SM1", "Hello"), T0).await;
    app.store()
        .set_opt_out(
            org,
            bos_core::nudge::Channel::Sms,
            "+14155550123".into(),
            true,
            "keyword".into(),
            T0,
        )
        .await
        .unwrap();
    let path = format!("/conversations/{conv}/messages");
    let post = |body: Value| {
        let (app, key, path) = (&app, &t.key, &path);
        async move { app.api_json(Method::POST, path, key, Some(body)).await }
    };
    let (status, p) = post(json!({"channel": "sms", "text": "Hi"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .starts_with("Opted out of SMS"),
        "{p}"
    );
    let (status, p) = post(json!({"channel": "instagram", "text": "Hi"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    for (body, field) in [
        (json!({"channel": "fax", "text": "Hi"}), "channel"),
        (json!({"channel": "form", "text": "Hi"}), "channel"),
        (json!({"channel": "email", "text": "  "}), "text"),
    ] {
        let (status, p) = post(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {p}");
        assert_eq!(problem_field(&p), field, "{body}: {p}");
    }
    let (status, p) = post(json!({"text": "Hi"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("\"channel\""), "{p}");
    // A key without the agent or admin scope: 403 whatever it sends.
    let ingest = app.key(&t.org, "ingest").await;
    let (status, _) = app
        .api_json(
            Method::POST,
            &path,
            &ingest,
            Some(json!({"channel": "email"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing was written by any of these.
    let d = app.state.inbox.get(org, conv, None).await.unwrap();
    assert_eq!(d.messages.len(), 1);
    // No such conversation: 404.
    let (status, _) = app
        .api_json(
            Method::POST,
            &format!("/conversations/{}/messages", Uuid::now_v7()),
            &t.key,
            Some(json!({"channel": "email", "text": "Hi", "subject": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn assign_resolve_and_reopen() {
    let app = spawn_app().await;
    let t = app.tenant("Shop").await;
    let org = t.org.id;
    let mia = app.user("mia@shop.example", &t.org, Role::Member).await;
    let ann = customer(&app, org, "Ann", "ann@example.com", "+14155550123").await;
    let conv = inbound(&app, org, sms(ann, "SM1", "Hello"), T0).await;
    let at = |what: &str| format!("/conversations/{conv}/{what}");

    let (status, c) = app
        .api_json(
            Method::POST,
            &at("assign"),
            &t.key,
            Some(json!({"member_id": mia.id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["assignee_id"], mia.id.to_string());
    let (status, p) = app
        .api_json(
            Method::POST,
            &at("assign"),
            &t.key,
            Some(json!({"member_id": Uuid::now_v7()})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(problem_field(&p), "member_id");
    let (status, p) = app
        .api_json(Method::POST, &at("assign"), &t.key, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("null} to unassign"),
        "{p}"
    );
    let (status, c) = app
        .api_json(
            Method::POST,
            &at("assign"),
            &t.key,
            Some(json!({"member_id": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["assignee_id"], Value::Null);

    let (status, c) = app
        .api_json(Method::POST, &at("resolve"), &t.key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "resolved");
    let (status, p) = app
        .api_json(Method::POST, &at("resolve"), &t.key, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(
        p["detail"],
        "The conversation is already resolved; nothing was changed."
    );
    let (status, c) = app
        .api_json(Method::POST, &at("reopen"), &t.key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "open");
    let (status, _) = app
        .api_json(Method::POST, &at("reopen"), &t.key, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let lines = app.timeline(org, ann).await;
    assert!(lines.iter().any(|l| l.kind == "conversation_resolved"));
    assert!(lines.iter().any(|l| l.kind == "conversation_assigned"));
}

#[tokio::test]
async fn the_list_filters_sorts_pages_and_searches() {
    let app = spawn_app().await;
    let t = app.tenant("Shop").await;
    let org = t.org.id;
    let mia = app.user("mia@shop.example", &t.org, Role::Member).await;
    // A key created by Mia acts for her: her unread marks, "mine".
    let mia_key = bos_web::issue_api_key(
        app.store(),
        org,
        "mia's script",
        &ScopeSet::parse("agent").unwrap(),
        Some(mia.id),
        T0,
    )
    .await
    .unwrap()
    .secret;
    let ann = customer(&app, org, "Ann", "ann@example.com", "+14155550123").await;
    let bob = customer(&app, org, "Bob", "bob@example.com", "+14155550124").await;
    let cid = customer(&app, org, "Cid", "cid@example.com", "+14155550125").await;
    let c_ann = inbound(&app, org, sms(ann, "SM1", "Where is my parcel?"), T0).await;
    let c_bob = inbound(
        &app,
        org,
        Inbound {
            provider_message_id: Some("pm-1".into()),
            subject: Some("Refund".into()),
            ..Inbound::text(
                bob,
                Channel::Email,
                "This is terrible, I need a refund asap",
            )
        },
        T0 + 10,
    )
    .await;
    let c_cid = inbound(&app, org, sms(cid, "SM2", "Thanks, all good"), T0 + 20).await;
    app.state.inbox.resolve(org, c_cid, T0 + 30).await.unwrap();
    app.state
        .inbox
        .assign(org, c_ann, Some(mia.id), T0 + 40)
        .await
        .unwrap();
    app.state
        .inbox
        .mark_read(org, c_bob, mia.id, T0 + 50)
        .await
        .unwrap();

    let ids = |v: &Value| -> Vec<String> {
        v["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    let list = |q: &str, key: &str| {
        let (app, q, key) = (&app, q.to_string(), key.to_string());
        async move {
            app.api_json(Method::GET, &format!("/conversations{q}"), &key, None)
                .await
        }
    };
    let s = |u: Uuid| u.to_string();

    let (status, v) = list("", &t.key).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), [s(c_cid), s(c_bob), s(c_ann)]);
    assert_eq!(v["hits"], Value::Null);
    let (_, v) = list("?channel=email", &t.key).await;
    assert_eq!(ids(&v), [s(c_bob)]);
    let (_, v) = list("?status=resolved", &t.key).await;
    assert_eq!(ids(&v), [s(c_cid)]);
    let (_, v) = list("?status=unassigned", &t.key).await;
    assert_eq!(ids(&v), [s(c_bob)]);
    let (_, v) = list("?status=mine", &mia_key).await;
    assert_eq!(ids(&v), [s(c_ann)]);
    let (_, v) = list("?status=unread", &mia_key).await;
    assert_eq!(ids(&v), [s(c_cid), s(c_ann)], "Bob's is read by Mia");
    let (_, v) = list("?priority=urgent", &t.key).await;
    assert_eq!(ids(&v), [s(c_bob)], "{v}");
    let (_, v) = list("?sort=priority", &t.key).await;
    assert_eq!(ids(&v)[0], s(c_bob));
    let (_, v) = list("?author=ai", &t.key).await;
    assert!(ids(&v).is_empty());

    // Pages of one, following the cursor, cover the list once.
    let mut seen = Vec::new();
    let mut q = "?limit=1".to_string();
    loop {
        let (status, v) = list(&q, &t.key).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        seen.extend(ids(&v));
        match v["next_cursor"].as_str() {
            Some(c) => q = format!("?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [s(c_cid), s(c_bob), s(c_ann)]);

    // Search: message text and customers, with highlighted parts.
    let (status, v) = list("?q=parc", &t.key).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), [s(c_ann)]);
    let hit = &v["hits"][0];
    assert_eq!(hit["found_in"], "message");
    let marked: Vec<&str> = hit["snippet"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["matched"] == true)
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(marked, ["parcel"]);
    let (_, v) = list("?q=bob", &t.key).await;
    assert_eq!(ids(&v), [s(c_bob)]);
    // Filters apply to a search.
    let (_, v) = list("?q=bob&channel=sms", &t.key).await;
    assert!(ids(&v).is_empty());

    // Bad values name their field; member filters need a member's key.
    for (q, field) in [
        ("?channel=fax", "channel"),
        ("?status=later", "status"),
        ("?author=robot", "author"),
        ("?priority=meh", "priority"),
        ("?sort=size", "sort"),
        ("?limit=0", "limit"),
        ("?cursor=garbage", "cursor"),
        ("?status=unread", "status"),
        ("?status=mine", "status"),
    ] {
        let (status, p) = list(q, &t.key).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {p}");
        assert_eq!(problem_field(&p), field, "{q}: {p}");
    }
}

/// A reply under an `Idempotency-Key`: the same key and request from the
/// same API key within 24 hours get the first answer back and send nothing
/// again, concurrent duplicates send once, the same key with another
/// request is 422, another key's requests are its own, and after 24 hours
/// the key is new again.
#[tokio::test]
async fn an_idempotency_key_sends_a_reply_once() {
    let twilio = FakeTwilio::start().await;
    let base = twilio.base_url();
    let app = spawn_with(|c| c.twilio_base_url = base.clone()).await;
    let t = app.tenant("Keyed Shop").await;
    let org = t.org.id;
    app.store()
        .put_channel_config(
            org,
            bos_core::nudge::Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: twilio.account_sid.clone(),
                auth_token: twilio.auth_token.clone(),
                from: "+14155550100".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap();
    let ann = customer(&app, org, "Ann", "ann@example.com", "+14155550123").await;
    let conv = inbound(
        &app,
        org,
        sms(ann, "SM1", "Is my order shipped?"),
        T0 - 60_000,
    )
    .await;
    let path = format!("/conversations/{conv}/messages");
    let post = |key: &str, idem: &str, body: Value| {
        let (app, path, key, idem) = (&app, &path, key.to_string(), idem.to_string());
        async move {
            let res = app
                .api(Method::POST, path, &key)
                .await
                .header("Idempotency-Key", idem)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let replayed = res
                .headers()
                .get("idempotent-replayed")
                .map(|v| v.to_str().unwrap().to_string());
            let kind = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, res.text().await.unwrap(), replayed, kind)
        }
    };
    let hi = json!({"channel": "sms", "text": "It ships today."});

    let (s1, b1, r1, k1) = post(&t.key, "order-42", hi.clone()).await;
    assert_eq!(s1, StatusCode::CREATED, "{b1}");
    assert_eq!(r1, None);
    assert!(k1.starts_with("application/json"), "{k1}");
    let (s2, b2, r2, _) = post(&t.key, "order-42", hi.clone()).await;
    assert_eq!(
        (s2, &b2),
        (StatusCode::CREATED, &b1),
        "the first answer again"
    );
    assert_eq!(r2.as_deref(), Some("true"));
    assert_eq!(twilio.messages().len(), 1, "sent once");

    // The same key with another request: refused, and it says why.
    let (s, b, _, kind) = post(
        &t.key,
        "order-42",
        json!({"channel": "sms", "text": "Something else"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(kind, "application/problem+json");
    let p: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(problem_field(&p), "Idempotency-Key");
    assert!(
        p["detail"].as_str().unwrap().contains("different request"),
        "{p}"
    );
    // Not a key: 422 naming the header, nothing sent.
    let (s, b, _, _) = post(&t.key, "not a key", hi.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    // A refusal is an answer too: kept and given again.
    let closed = json!({"channel": "instagram", "text": "Hi"});
    let (s, b, _, _) = post(&t.key, "ig-1", closed.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s_again, b_again, r_again, kind) = post(&t.key, "ig-1", closed).await;
    assert_eq!((s_again, &b_again), (StatusCode::CONFLICT, &b));
    assert_eq!(r_again.as_deref(), Some("true"));
    assert_eq!(kind, "application/problem+json");

    // Another API key's keys are its own.
    let other = app.key(&t.org, "agent").await;
    let (s, b, r, _) = post(&other, "order-42", hi.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(r, None);
    assert_eq!(twilio.messages().len(), 2);

    // Concurrent duplicates: one sends; the others get its answer or are
    // told it is still being sent.
    let body = json!({"channel": "sms", "text": "Your refund is on its way."});
    let all =
        futures_util::future::join_all((0..8).map(|_| post(&t.key, "refund-7", body.clone())))
            .await;
    let created = all.iter().filter(|r| r.0 == StatusCode::CREATED).count();
    assert!(created >= 1, "{all:?}");
    assert!(
        all.iter()
            .all(|r| r.0 == StatusCode::CREATED || r.0 == StatusCode::CONFLICT),
        "{all:?}"
    );
    assert_eq!(twilio.messages().len(), 3, "eight requests, one message");
    let (s, _, r, _) = post(&t.key, "refund-7", body.clone()).await;
    assert_eq!((s, r.as_deref()), (StatusCode::CREATED, Some("true")));
    assert_eq!(twilio.messages().len(), 3);

    // 24 hours later the key starts over (and the sweep forgets old ones).
    app.clock.advance_ms(24 * 60 * 60 * 1000);
    let (s, b, r, _) = post(&t.key, "order-42", hi).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(r, None);
    assert_eq!(twilio.messages().len(), 4);
    let swept = app
        .store()
        .sweep_idempotency_keys(T0 + 49 * 60 * 60 * 1000)
        .await
        .unwrap();
    assert!(swept >= 1);
}

/// An e-mail to someone who never e-mailed, with no subject typed, gets
/// one naming the organization instead of a refusal.
#[tokio::test]
async fn a_first_email_without_a_subject_names_the_organization() {
    let app = spawn_app().await;
    let t = app.tenant("Corner Shop").await;
    let org = t.org.id;
    let ann = customer(&app, org, "Ann", "ann@example.com", "+14155550123").await;
    let conv = inbound(&app, org, sms(ann, "SM1", "Hi there"), T0 - 60_000).await;
    let (status, m) = app
        .api_json(
            Method::POST,
            &format!("/conversations/{conv}/messages"),
            &t.key,
            Some(json!({"channel": "email", "text": "Here is the brochure."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["subject"], "A message from Corner Shop");
    assert_eq!(m["in_reply_to"], Value::Null);
}
