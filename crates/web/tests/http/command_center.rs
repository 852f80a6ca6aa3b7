//! The Command Center, Settings → Agents and the customer's agent history
//! over HTTP: the page shows each agent's card with its status in context
//! and the metrics strip with trends; a member pauses an agent from it and
//! the agent's next write is 409 until resumed; the stream sends a card
//! re-rendered when a heartbeat arrives; Settings → Agents (admins only)
//! registers an agent and shows its working key once, and a new key
//! retires the old one; an interaction leaves a line on the customer's
//! timeline with its sentiment and whether a human intervened, and the
//! customer page lists it with a sentiment bar.

use crate::support::*;
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::Role;
use bos_store::identity::{IdentifyInput, Traits};
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

async fn register(app: &TestApp, admin: &str, name: &str, kind: &str) -> (Uuid, String) {
    let (s, v) = app
        .api_json(
            Method::POST,
            "/agents",
            admin,
            Some(json!({"name": name, "kind": kind, "provider": "api"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["agent"]["id"].as_str().unwrap().parse().unwrap(),
        v["key"].as_str().unwrap().to_string(),
    )
}

async fn customer(app: &TestApp, org: Uuid, email: &str) -> Uuid {
    app.store()
        .identify(
            org,
            &IdentityRules::default(),
            &IdentifyInput {
                identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
                traits: Traits {
                    first_name: "Rosa".into(),
                    last_name: "Diaz".into(),
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

async fn heartbeat(app: &TestApp, id: Uuid, key: &str, body: serde_json::Value) {
    let (s, v) = app
        .api_json(
            Method::POST,
            &format!("/agents/{id}/heartbeat"),
            key,
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> (StatusCode, String) {
    let res = app.get(path, cookie).await;
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn the_command_center_shows_cards_and_the_strip_and_pausing_makes_the_next_write_409() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (ava, ava_key) = register(&app, &t.key, "Ava Chat", "chat").await;
    let (nova, nova_key) = register(&app, &t.key, "Nova Voice", "voice").await;
    let (rex, rex_key) = register(&app, &t.key, "Rex SDR", "sdr").await;
    heartbeat(
        &app,
        ava,
        &ava_key,
        json!({"status": "working", "activity": "Answering a refund question"}),
    )
    .await;
    // A call that began 2 minutes 34 seconds ago.
    heartbeat(
        &app,
        nova,
        &nova_key,
        json!({"status": "talking", "call_started_at": bos_web::api::rfc3339(T0 - 154_000)}),
    )
    .await;
    heartbeat(
        &app,
        rex,
        &rex_key,
        json!({"status": "error", "error": "API timeout"}),
    )
    .await;
    // Yesterday one of two succeeded; today both do: the success rate rises.
    for (n, (at, outcome)) in [
        (T0 - 86_400_000, "success"),
        (T0 - 86_400_000, "failure"),
        (T0 - 1000, "success"),
        (T0 - 500, "success"),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, v) = app
            .api_json(
                Method::POST,
                &format!("/agents/{ava}/interactions"),
                &ava_key,
                Some(
                    json!({"outcome": outcome, "started_at": bos_web::api::rfc3339(at),
                    "external_id": format!("i{n}"), "cost_usd": 0.05, "csat": 9}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    let (s, html) = page(&app, "/command-center", &t.browser.cookie).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for expect in [
        "Ava Chat",
        "Answering a refund question",
        "Nova Voice",
        "talking",
        "2:34",
        "data-call-start=\"",
        "error: API timeout",
        "Automated SDR",
        "id=\"agent-strip\"",
        "Success rate",
        "100%",
        "▲",
        "+100%",
        "Cost per interaction",
        "$0.050",
    ] {
        assert!(html.contains(expect), "the page should show {expect:?}");
    }
    // 7 and 30 days take in yesterday too.
    let (_, week) = page(&app, "/command-center?period=7d", &t.browser.cookie).await;
    assert!(week.contains("75%"), "3 of 4 succeeded in 7 days");

    // Pause from the card's menu: the agent's next write is refused.
    let res = app
        .post_signed(
            &format!("/command-center/agents/{ava}/pause"),
            &t.browser,
            &[("period", "today")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/command-center?period=today&done=paused");
    let (s, v) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/interactions"),
            &ava_key,
            Some(json!({"outcome": "success", "started_at": bos_web::api::rfc3339(T0)})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("paused"), "{v}");
    let (_, html) = page(&app, "/command-center", &t.browser.cookie).await;
    assert!(
        html.contains("agent-card agent-paused"),
        "the card reads paused"
    );
    let res = app
        .post_signed(
            &format!("/command-center/agents/{ava}/resume"),
            &t.browser,
            &[("back", "details")],
        )
        .await;
    assert_eq!(
        location(&res),
        format!("/command-center/agents/{ava}?period=today&done=resumed")
    );
    let (s, v) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/interactions"),
            &ava_key,
            Some(json!({"outcome": "success", "started_at": bos_web::api::rfc3339(T0)})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Details: its latest interactions.
    let (s, html) = page(
        &app,
        &format!("/command-center/agents/{ava}"),
        &t.browser.cookie,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("Latest interactions <span class=\"count\">5</span>"),
        "{html}"
    );

    // Another organization's member sees none of it.
    let other = app.tenant("Other").await;
    let (_, html) = page(&app, "/command-center", &other.browser.cookie).await;
    assert!(!html.contains("Ava Chat"));
    let (s, _) = page(
        &app,
        &format!("/command-center/agents/{ava}"),
        &other.browser.cookie,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let res = app
        .post_signed(
            &format!("/command-center/agents/{ava}/pause"),
            &other.browser,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        !app.state
            .agents
            .get(t.org.id, ava, T0)
            .await
            .unwrap()
            .agent
            .paused
    );
}

#[tokio::test]
async fn the_stream_sends_a_card_re_rendered_when_a_heartbeat_arrives() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (ava, key) = register(&app, &t.key, "Ava Chat", "chat").await;
    let mut res = app.get("/command-center/stream", &t.browser.cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let first = res.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: ready"));
    heartbeat(
        &app,
        ava,
        &key,
        json!({"status": "working", "activity": "Drafting a reply to order #4410"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut got = String::new();
    while !got.contains("Drafting a reply to order #4410") {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .expect("an agent event within 10 s")
            .unwrap()
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(got.contains("event: agent"), "{got}");
    assert!(got.contains(&format!("agent-{ava}")), "{got}");
    assert!(
        got.contains("agent-strip"),
        "the strip comes with it: {got}"
    );
}

#[tokio::test]
async fn settings_agents_registers_an_agent_and_shows_its_key_once() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .post_signed(
            "/settings/agents",
            &t.browser,
            &[
                ("name", "Ava Chat"),
                ("kind", "chat"),
                ("provider", "api"),
                ("platform_agent_id", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let secret = html
        .split("id=\"new-agent-key\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the key is shown")
        .to_string();
    // The key speaks for the agent.
    let agents = app.state.agents.list(t.org.id, T0).await.unwrap();
    let ava = agents
        .iter()
        .find(|a| a.agent.name == "Ava Chat")
        .unwrap()
        .agent
        .id;
    heartbeat(&app, ava, &secret, json!({"status": "idle"})).await;
    // Never shown again.
    let (s, html) = page(&app, "/settings/agents", &t.browser.cookie).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains(&secret));
    assert!(html.contains("Ava Chat") && html.contains("Chat agent"));
    // Bad input is a page that says what to send.
    let res = app
        .post_signed(
            "/settings/agents",
            &t.browser,
            &[
                ("name", "Nova"),
                ("kind", "voice"),
                ("provider", "vapi"),
                ("platform_agent_id", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("platform"));
    // A new key retires the old one.
    let res = app
        .post_signed(&format!("/settings/agents/{ava}/key"), &t.browser, &[])
        .await;
    let html = res.text().await.unwrap();
    let fresh = html
        .split("id=\"new-agent-key\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string();
    let (s, _) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/heartbeat"),
            &secret,
            Some(json!({"status": "idle"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    heartbeat(&app, ava, &fresh, json!({"status": "idle"})).await;
    // Members do not configure agents.
    let member = app.user("sam@example.com", &t.org, Role::Member).await;
    let _ = member;
    let b = app.login("sam@example.com").await;
    let (s, _) = page(&app, "/settings/agents", &b.cookie).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let res = app
        .post_signed(&format!("/settings/agents/{ava}/key"), &b, &[])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_interaction_shows_on_the_customer_timeline_and_agent_history() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (ava, key) = register(&app, &t.key, "Ava Chat", "chat").await;
    let rosa = customer(&app, t.org.id, "rosa@example.com").await;
    for (ext, outcome, sentiment, human) in
        [("a", "success", 8.5, false), ("b", "failure", 3.0, true)]
    {
        let body = json!({"customer_id": rosa, "outcome": outcome, "started_at": bos_web::api::rfc3339(T0 - 1000),
            "sentiment": sentiment, "human_intervened": human, "summary": format!("Refund question {ext}"), "external_id": ext});
        for _ in 0..2 {
            // A retry writes one line.
            let (s, v) = app
                .api_json(
                    Method::POST,
                    &format!("/agents/{ava}/interactions"),
                    &key,
                    Some(body.clone()),
                )
                .await;
            assert!(s.is_success(), "{v}");
        }
    }
    let lines: Vec<_> = app
        .timeline(t.org.id, rosa)
        .await
        .into_iter()
        .filter(|e| e.kind == "agent_interaction")
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .any(|e| e.summary == "Ava Chat: resolved · sentiment 8.5/10 — Refund question a"));
    assert!(lines.iter().any(|e| e.summary
        == "Ava Chat: not resolved · sentiment 3.0/10 · a human stepped in — Refund question b"));
    let (s, html) = page(&app, &format!("/customers/{rosa}"), &t.browser.cookie).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"agent-history\""));
    assert!(html.contains("human intervened"));
    // The average of 8.5 and 3.0 on the 0–10 bar.
    assert!(html.contains("id=\"agent-sentiment\""), "{html}");
    // 5.75 of 10: the bar's width class, in steps of 5 %.
    assert!(html.contains("senti-fill senti-mid w-60"), "{html}");
    assert!(html.contains("sentiment 8.5/10"), "the timeline line");
}

/// The live transcript panel's Takeover: a member takes a conversation
/// an agent answers over from the Command Center; it is assigned to them,
/// the agent's next reply there is refused, and another tenant's member
/// cannot take it.
#[tokio::test]
async fn takeover_from_the_transcripts_assigns_the_member_and_stops_the_agent() {
    use bos_core::inbox::Channel;
    use bos_engine::inbox::Inbound;
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (ava, ava_key) = register(&app, &t.key, "Ava Chat", "chat").await;
    let rosa = customer(&app, t.org.id, "rosa@takeover.example").await;
    let conv = app
        .state
        .inbox
        .record_inbound(
            t.org.id,
            Inbound::text(rosa, Channel::Email, "Where is my order?"),
            T0,
        )
        .await
        .unwrap()
        .conversation_id();
    let answer = |text: &'static str| {
        let app = &app;
        let key = ava_key.clone();
        async move {
            app.api_json(
                Method::POST,
                &format!("/conversations/{conv}/messages"),
                &key,
                Some(json!({"channel": "email", "text": text})),
            )
            .await
        }
    };
    let (s, v) = answer("It ships today.").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let (_, html) = page(&app, "/command-center", &t.browser.cookie).await;
    let form = format!("/command-center/conversations/{conv}/takeover");
    assert!(html.contains(&form), "the snippet offers Takeover");
    assert!(html.contains("It ships today."));

    // Another organization's member: not found, nothing moves.
    let other = app.tenant("Other").await;
    let res = app.post_signed(&form, &other.browser, &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (s, v) = answer("Still Ava here.").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let res = app.post_signed(&form, &t.browser, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/inbox/{conv}"));
    let (s, v) = answer("Ava again?").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let thread = app
        .store()
        .conversation(t.org.id, conv, None)
        .await
        .unwrap();
    let owner = app.store().members(t.org.id).await.unwrap()[0].user_id;
    assert_eq!(thread.conversation.assignee_id, Some(owner));
    // The card no longer counts it among the agent's conversations.
    let (_, v) = app
        .api_json(Method::GET, &format!("/agents/{ava}"), &t.key, None)
        .await;
    assert!(!v.to_string().contains("handling 1"), "{v}");
}
