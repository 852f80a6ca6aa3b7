//! An external agent driven only by its API key and its event stream: a
//! customer's SMS through the signed Twilio hook reaches the agent's
//! stream with the text and the customer, the agent answers it (authored
//! as the agent, sent through the provider), reports the interaction and
//! heartbeats, and its status and metrics over the API show it; a
//! member's pause reaches the stream and makes its next write 409 until
//! the resume; a reconnect with `Last-Event-ID` gets what came since. The
//! hand-off: the agent asks for a human, the conversation waits for one,
//! a member takes it over and hands it back, and the agent hears each
//! and may answer only while the conversation is its own. No tenant sees
//! another's stream. Every read of the stream has a deadline.

use crate::support::*;
use bos_channels::fake::FakeTwilio;
use bos_core::inbox::Channel;
use bos_core::{Role, ScopeSet};
use bos_engine::inbox::Inbound;
use bos_store::nudge::ChannelConfig;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const PHONE: &str = "+14155550123";

/// An open event stream, read event by event with a deadline.
struct Stream {
    res: reqwest::Response,
    buf: String,
}

/// One server-sent event: its type, id and JSON data.
#[derive(Debug)]
struct Ev {
    kind: String,
    id: Option<i64>,
    data: Value,
}

impl Stream {
    async fn open(app: &TestApp, agent: Uuid, key: &str, last_event_id: Option<i64>) -> Stream {
        let mut req = app
            .api(Method::GET, &format!("/agents/{agent}/events"), key)
            .await;
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
        Stream {
            res,
            buf: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped); bounded, never a sleep.
    async fn next(&mut self) -> Ev {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut kind, mut id, mut data) = (String::from("message"), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                return Ev {
                    kind,
                    id,
                    data: serde_json::from_str(&data).unwrap(),
                };
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event on the stream; have {:?}", self.buf))
                .unwrap()
                .expect("the stream stays open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event, which must be of `kind`.
    async fn expect(&mut self, kind: &str) -> Ev {
        let e = self.next().await;
        assert_eq!(e.kind, kind, "{e:?}");
        e
    }
}

/// A customer known by e-mail.
async fn customer(app: &TestApp, org: Uuid, email: &str) -> Uuid {
    app.store()
        .identify(
            org,
            &bos_core::identity::IdentityRules::default(),
            &bos_store::identity::IdentifyInput {
                identifiers: vec![bos_core::identity::Identifier::new(
                    bos_core::identity::IdentifierKind::Email,
                    email,
                )],
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

async fn register(app: &TestApp, admin: &str, name: &str) -> (Uuid, String) {
    let (s, v) = app
        .api_json(
            Method::POST,
            "/agents",
            admin,
            Some(json!({"name": name, "kind": "sms", "provider": "api"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["agent"]["id"].as_str().unwrap().parse().unwrap(),
        v["key"].as_str().unwrap().to_string(),
    )
}

/// A member of the organization and an admin key they created (what a
/// member's dashboard acts with).
async fn member_key(app: &TestApp, t: &Tenant, email: &str) -> (Uuid, String) {
    let u = app.user(email, &t.org, Role::Admin).await;
    let key = bos_web::issue_api_key(
        app.store(),
        t.org.id,
        "Mia's key",
        &ScopeSet::parse("admin").unwrap(),
        Some(u.id),
        T0,
    )
    .await
    .unwrap()
    .secret;
    (u.id, key)
}

async fn twilio_channel(app: &TestApp, org: Uuid, twilio: &FakeTwilio) -> String {
    app.store()
        .put_channel_config(
            org,
            bos_core::nudge::Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: twilio.account_sid.clone(),
                auth_token: twilio.auth_token.clone(),
                from: "+15005550006".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap()
}

/// The customer texts the business: Twilio's signed webhook, as Twilio sends it.
async fn customer_texts(app: &TestApp, twilio: &FakeTwilio, hook: &str, sid: &str, text: &str) {
    let path = format!("/hooks/twilio/{hook}/sms");
    let body = serde_urlencoded::to_string([
        ("MessageSid", sid),
        ("AccountSid", twilio.account_sid.as_str()),
        ("From", PHONE),
        ("To", "+15005550006"),
        ("Body", text),
        ("NumMedia", "0"),
    ])
    .unwrap();
    let sig = bos_channels::twilio::signature(
        &twilio.auth_token,
        &app.url(&path),
        &bos_channels::twilio::parse_form(body.as_bytes()),
    );
    let res = app
        .http
        .post(app.url(&path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
}

/// The path a stream event says to answer on, under `/api/v1`.
fn reply_path(e: &Ev) -> String {
    e.data["reply_path"]
        .as_str()
        .unwrap()
        .strip_prefix("/api/v1")
        .unwrap()
        .to_string()
}

async fn answer(app: &TestApp, e: &Ev, key: &str, text: &str) -> (StatusCode, Value) {
    app.api_json(
        Method::POST,
        &reply_path(e),
        key,
        Some(json!({"channel": e.data["message"]["channel"], "text": text})),
    )
    .await
}

#[tokio::test]
async fn an_external_agent_runs_from_its_key_and_its_stream_alone() {
    let twilio = FakeTwilio::start().await;
    let base = twilio.base_url();
    let app = spawn_with(|c| c.twilio_base_url = base.clone()).await;
    let t = app.tenant("Stream Shop").await;
    let org = t.org.id;
    let hook = twilio_channel(&app, org, &twilio).await;
    let (_, mia) = member_key(&app, &t, "mia@stream.example").await;
    let (ava, key) = register(&app, &t.key, "Ava").await;

    // The agent follows its stream: first where it stands.
    let mut s = Stream::open(&app, ava, &key, None).await;
    let ready = s.expect("ready").await;
    assert_eq!(ready.data["agent_id"], ava.to_string());
    assert_eq!(ready.data["paused"], false);
    assert_eq!(ready.data["last_event_id"], 0);

    // A customer texts; the agent hears it with all it needs to answer.
    customer_texts(&app, &twilio, &hook, "SM100", "Where is my order #1234?").await;
    let m = s.expect("message").await;
    let first_id = m.id.unwrap();
    assert_eq!(m.data["id"], first_id);
    assert_eq!(m.data["message"]["text"], "Where is my order #1234?");
    assert_eq!(m.data["message"]["channel"], "sms");
    assert_eq!(m.data["customer"]["phone"], PHONE);
    // Nobody has claimed the conversation yet.
    assert_eq!(m.data["claimed"], false);
    let conv: Uuid = m.data["conversation_id"].as_str().unwrap().parse().unwrap();
    let customer_id = m.data["customer"]["id"].as_str().unwrap().to_string();
    assert_eq!(reply_path(&m), format!("/conversations/{conv}/messages"));

    // It answers as itself, through the provider.
    let (st, sent) = answer(&app, &m, &key, "It ships today.").await;
    assert_eq!(st, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["author_kind"], "agent");
    assert_eq!(sent["author_name"], "Ava");
    assert_eq!(sent["status"], "sent", "{sent}");
    let out = twilio.messages();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body, "It ships today.");
    assert_eq!(out[0].to, PHONE);

    // It reports the interaction and a heartbeat with what it is doing.
    let (st, v) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/interactions"),
            &key,
            Some(json!({
                "conversation_id": conv, "outcome": "success",
                "started_at": bos_web::api::rfc3339(T0 - 60_000),
                "ended_at": bos_web::api::rfc3339(T0),
                "first_response_ms": 4_000, "cost_usd": 0.02, "csat": 9,
                "external_id": "run-1",
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/heartbeat"),
            &key,
            Some(json!({"status": "working", "activity": "Answering order #1234", "interval_seconds": 10})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // The Command Center's view of it over the API: status with context
    // and today's metrics.
    let (st, a) = app
        .api_json(Method::GET, &format!("/agents/{ava}"), &mia, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    assert_eq!(a["status"], "working", "{a}");
    assert_eq!(a["activity"], "Answering order #1234");
    assert_eq!(a["open_conversations"], 1);
    assert!(a["online"].as_bool().unwrap());
    let today = &a["today"]["current"];
    assert_eq!(today["interactions"], 1, "{a}");
    assert_eq!(today["success_rate"], 1.0);
    assert_eq!(today["avg_first_response_ms"], 4000.0);
    assert_eq!(today["csat"], 9.0);
    let (_, list) = app.api_json(Method::GET, "/agents", &mia, None).await;
    let row = &list["agents"][0];
    assert_eq!(
        (row["name"].as_str(), row["status"].as_str()),
        (Some("Ava"), Some("working"))
    );
    let (_, thread) = app
        .api_json(Method::GET, &format!("/conversations/{conv}"), &mia, None)
        .await;
    assert_eq!(thread["conversation"]["ai_involved"], true, "{thread}");

    // The customer writes again: now the conversation is the agent's.
    customer_texts(
        &app,
        &twilio,
        &hook,
        "SM101",
        "Thanks! And the tracking number?",
    )
    .await;
    let m2 = s.expect("message").await;
    assert_eq!(m2.data["claimed"], true);
    assert_eq!(m2.data["customer"]["id"], customer_id.as_str());
    assert!(m2.id.unwrap() > first_id);

    // A member pauses it: the stream says so and who; its next write is 409.
    let (st, _) = app
        .api_json(Method::POST, &format!("/agents/{ava}/pause"), &mia, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let p = s.expect("paused").await;
    assert!(
        p.data["detail"].as_str().unwrap().contains("Mia's key"),
        "{p:?}"
    );
    let res = app
        .send_json(
            Method::POST,
            &reply_path(&m2),
            &key,
            &json!({"channel": "sms", "text": "It is 1Z999."}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("\"Ava\" is paused"),
        "{problem}"
    );
    assert_eq!(twilio.messages().len(), 1, "nothing sent while paused");
    let (st, _) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/interactions"),
            &key,
            Some(json!({"outcome": "success", "started_at": bos_web::api::rfc3339(T0)})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Heartbeats still go through while paused.
    let (st, a) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/heartbeat"),
            &key,
            Some(json!({"status": "idle", "interval_seconds": 10})),
        )
        .await;
    assert_eq!((st, a["status"].as_str()), (StatusCode::OK, Some("paused")));

    // Resumed: the stream says so and the write goes through.
    let (st, _) = app
        .api_json(Method::POST, &format!("/agents/{ava}/resume"), &mia, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let r = s.expect("resumed").await;
    let (st, sent) = answer(&app, &m2, &key, "It is 1Z999.").await;
    assert_eq!(st, StatusCode::CREATED, "{sent}");
    assert_eq!(twilio.messages().len(), 2);

    // Reconnecting after the first message gets everything since, in order.
    let mut again = Stream::open(&app, ava, &key, Some(first_id)).await;
    assert_eq!(again.expect("ready").await.data["last_event_id"], first_id);
    assert_eq!(again.expect("message").await.id, m2.id);
    assert_eq!(again.expect("paused").await.id, p.id);
    assert_eq!(again.expect("resumed").await.id, r.id);
    // `?after=` does the same without the header.
    let res = app
        .call(Method::GET, &format!("/agents/{ava}/events?after=-1"), &key)
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .api(Method::GET, &format!("/agents/{ava}/events"), &key)
        .await
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Three missed heartbeat intervals on the test clock: offline.
    app.clock.advance_ms(30_001);
    let (_, a) = app
        .api_json(Method::GET, &format!("/agents/{ava}"), &key, None)
        .await;
    assert_eq!(a["status"], "offline", "{a}");

    // Nobody else follows this agent: another agent's key is 403, another
    // tenant's key 404, an agent-less key of the wrong scope 403.
    let (bo, bo_key) = register(&app, &t.key, "Bo").await;
    let res = app
        .call(Method::GET, &format!("/agents/{ava}/events"), &bo_key)
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let other = app.tenant("Other Stream Shop").await;
    let res = app
        .call(Method::GET, &format!("/agents/{ava}/events"), &other.key)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let ingest = app.key(&t.org, "ingest").await;
    let res = app
        .call(Method::GET, &format!("/agents/{ava}/events"), &ingest)
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Bo, registered later, hears of conversations nobody has claimed,
    // never of Ava's: its first message is Cy's, not Ann's third text.
    let mut bo_stream = Stream::open(&app, bo, &bo_key, None).await;
    bo_stream.expect("ready").await;
    customer_texts(&app, &twilio, &hook, "SM102", "One more thing").await;
    let mine = s.expect("message").await;
    assert_eq!(mine.data["message"]["text"], "One more thing");
    let cy = customer(&app, org, "cy@stream.example").await;
    app.state
        .inbox
        .record_inbound(org, Inbound::text(cy, Channel::Email, "Hello from Cy"), T0)
        .await
        .unwrap();
    let bo_first = bo_stream.expect("message").await;
    assert_eq!(bo_first.data["message"]["text"], "Hello from Cy");
    assert_eq!(bo_first.data["claimed"], false);
    assert_eq!(
        s.expect("message").await.data["message"]["text"],
        "Hello from Cy"
    );
    // Ava's conversation: Bo may not answer it.
    let (st, v) = app
        .api_json(
            Method::POST,
            &format!("/conversations/{conv}/messages"),
            &bo_key,
            Some(json!({"channel": "sms", "text": "Hi, Bo here"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("Another agent"));
    // A message from another tenant's customer never reaches this stream:
    // the next thing Ava hears is her own organization's.
    let ann = customer(&app, other.org.id, "ann@other.example").await;
    app.state
        .inbox
        .record_inbound(
            other.org.id,
            Inbound::text(ann, Channel::Email, "secret of the other shop"),
            T0,
        )
        .await
        .unwrap();
    customer_texts(&app, &twilio, &hook, "SM103", "Last one").await;
    assert_eq!(
        s.expect("message").await.data["message"]["text"],
        "Last one"
    );
}

#[tokio::test]
async fn an_agent_hands_off_and_a_member_takes_over_and_hands_back() {
    let app = spawn_app().await;
    let t = app.tenant("Handoff Shop").await;
    let org = t.org.id;
    let (mia_id, mia) = member_key(&app, &t, "mia@handoff.example").await;
    let (ava, key) = register(&app, &t.key, "Ava").await;
    let (_, bo_key) = register(&app, &t.key, "Bo").await;
    let profile = customer(&app, org, "ann@handoff.example").await;
    let write = |text: &'static str| {
        let inbox = app.state.inbox.clone();
        async move {
            inbox
                .record_inbound(org, Inbound::text(profile, Channel::Email, text), T0)
                .await
                .unwrap()
                .conversation_id()
        }
    };

    let mut s = Stream::open(&app, ava, &key, None).await;
    s.expect("ready").await;
    let conv = write("I want a refund, this is unacceptable").await;
    let m = s.expect("message").await;
    assert_eq!(m.data["conversation_id"], conv.to_string());
    let handoff = format!("/conversations/{conv}/handoff");

    // Bad input says what to send.
    let (st, v) = app
        .api_json(Method::POST, &handoff, &key, Some(json!({"reason": "  "})))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "reason");
    let (st, _) = app
        .api_json(Method::POST, &handoff, &key, Some(json!({"why": "x"})))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    // The agent asks for a human.
    let (st, h) = app
        .api_json(
            Method::POST,
            &handoff,
            &key,
            Some(json!({"reason": "Refund over my limit"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{h}");
    assert_eq!(h["needs_human"], true);
    assert_eq!(h["changed"], true);
    assert_eq!(h["agent_id"], ava.to_string());
    assert_eq!(h["handoff_reason"], "Refund over my limit");
    assert_eq!(h["conversation"]["priority"], "high", "{h}");
    assert_eq!(
        h["conversation"]["priority_reason"],
        "Ava asked for a human: Refund over my limit"
    );
    assert!(h["conversation"]["waiting_since"].is_string());
    let e = s.expect("handed_off").await;
    assert_eq!(e.data["detail"], "Refund over my limit");
    // Asking again changes nothing and tells nobody.
    let (st, h) = app
        .api_json(
            Method::POST,
            &handoff,
            &key,
            Some(json!({"reason": "Refund over my limit"})),
        )
        .await;
    assert_eq!((st, h["changed"].as_bool()), (StatusCode::OK, Some(false)));
    // The customer's timeline says the agent asked and why.
    let timeline = app.timeline(org, profile).await;
    assert!(
        timeline.iter().any(|l| l.kind == "agent_handoff"
            && l.summary == "Ava asked for a human: Refund over my limit"),
        "{timeline:?}"
    );
    // Another agent may not hand it off; the agent may not answer it now.
    let (st, v) = app
        .api_json(
            Method::POST,
            &handoff,
            &bo_key,
            Some(json!({"reason": "mine"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, v) = answer(&app, &m, &key, "Let me check").await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("waits for"), "{v}");
    // Its interaction for it is a hand-off: the metrics count a human stepping in.
    let (st, _) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/interactions"),
            &key,
            Some(json!({"conversation_id": conv, "outcome": "handed_off",
                "started_at": bos_web::api::rfc3339(T0)})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, a) = app
        .api_json(Method::GET, &format!("/agents/{ava}"), &key, None)
        .await;
    assert_eq!(a["today"]["current"]["intervention_rate"], 1.0, "{a}");
    // Waiting for a human, it is no longer on the agent's card.
    assert_eq!(a["open_conversations"], 0);

    // The customer writes meanwhile: the agent is not told (a human is coming).
    write("Hello??").await;

    // Takeover is a member's: an agent's key may not.
    let takeover = format!("/conversations/{conv}/takeover");
    assert_eq!(
        app.api_json(Method::POST, &takeover, &key, None).await.0,
        StatusCode::FORBIDDEN
    );
    // A key no member created acts for nobody.
    let (st, v) = app.api_json(Method::POST, &takeover, &t.key, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, h) = app.api_json(Method::POST, &takeover, &mia, None).await;
    assert_eq!(st, StatusCode::OK, "{h}");
    assert_eq!(h["conversation"]["assignee_id"], mia_id.to_string());
    assert_eq!(h["needs_human"], false);
    assert_eq!(h["agent_id"], ava.to_string());
    // The next thing the agent hears is the takeover, not the customer's message.
    let e = s.expect("takeover").await;
    assert_eq!(e.data["conversation_id"], conv.to_string());
    assert_eq!(e.data["detail"], "mia@handoff.example");
    let (st, v) = answer(&app, &m, &key, "Still here").await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("taken this conversation over"));
    let (st, h) = app.api_json(Method::POST, &takeover, &mia, None).await;
    assert_eq!((st, h["changed"].as_bool()), (StatusCode::OK, Some(false)));

    // Handed back: the agent hears it, then the customer's next message.
    let handback = format!("/conversations/{conv}/handback");
    let (st, h) = app.api_json(Method::POST, &handback, &mia, None).await;
    assert_eq!(st, StatusCode::OK, "{h}");
    assert_eq!(h["conversation"]["assignee_id"], Value::Null);
    s.expect("handed_back").await;
    let (st, h) = app.api_json(Method::POST, &handback, &mia, None).await;
    assert_eq!((st, h["changed"].as_bool()), (StatusCode::OK, Some(false)));
    write("Are you there?").await;
    let m3 = s.expect("message").await;
    assert_eq!(m3.data["message"]["text"], "Are you there?");
    assert_eq!(m3.data["claimed"], true);
    let timeline = app.timeline(org, profile).await;
    for kind in ["conversation_taken_over", "conversation_handed_back"] {
        assert!(
            timeline.iter().any(|l| l.kind == kind),
            "{kind}: {timeline:?}"
        );
    }

    // A conversation no agent ever had: nothing to hand off or back (409);
    // another tenant's: 404.
    let other = app.tenant("Other Handoff Shop").await;
    let (_, oh_mia) = member_key(&app, &other, "mia@other-handoff.example").await;
    let zed = customer(&app, other.org.id, "zed@other.example").await;
    let theirs = app
        .state
        .inbox
        .record_inbound(other.org.id, Inbound::text(zed, Channel::Email, "hi"), T0)
        .await
        .unwrap()
        .conversation_id();
    let (st, v) = app
        .api_json(
            Method::POST,
            &format!("/conversations/{theirs}/handback"),
            &oh_mia,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, v) = app
        .api_json(
            Method::POST,
            &format!("/conversations/{theirs}/handoff"),
            &other.key,
            Some(json!({"reason": "no agent here"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    for path in [
        format!("/conversations/{theirs}/handoff"),
        format!("/conversations/{theirs}/takeover"),
        format!("/conversations/{theirs}/handback"),
    ] {
        let (st, _) = app
            .api_json(Method::POST, &path, &key, Some(json!({"reason": "x"})))
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    let (st, _) = app.api_json(Method::POST, &takeover, &oh_mia, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A revoked key ends its stream before anything more is sent.
    let (_, keys) = app.api_json(Method::GET, "/keys", &t.key, None).await;
    let ava_key_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Agent: Ava")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .call(Method::DELETE, &format!("/keys/{ava_key_id}"), &t.key)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    write("Anyone?").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, s.res.chunk())
            .await
            .expect("the stream ends")
            .unwrap();
        match chunk {
            None => break,
            Some(c) => {
                let c = String::from_utf8_lossy(&c);
                assert!(
                    !c.contains("Anyone?"),
                    "sent after the key was revoked: {c}"
                );
            }
        }
    }
}
