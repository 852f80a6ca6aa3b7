//! AI agents over the API: an agent registered by an admin reports with its
//! own key (and only for itself), its status reads with context and turns
//! offline after three missed intervals on the test clock, a pause makes
//! its next write 409 until it is resumed, the metrics equal what the
//! stored interactions add up to (today and a range, with the previous
//! period's trend), bad input is 422 in words, and another tenant sees none
//! of it.

use crate::support::*;
use bos_core::agents::{Compared, Period, Totals};
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::inbox::Channel;
use bos_engine::inbox::Inbound;
use bos_engine::{Live, Received};
use bos_store::identity::{IdentifyInput, Traits};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const DAY: i64 = 86_400_000;

/// Registers an agent with the admin key; its id and its own key.
async fn register(app: &TestApp, admin: &str, name: &str) -> (Uuid, String) {
    let (s, v) = app
        .api_json(
            Method::POST,
            "/agents",
            admin,
            Some(json!({"name": name, "kind": "chat", "provider": "api"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("bos_"));
    (v["agent"]["id"].as_str().unwrap().parse().unwrap(), key)
}

async fn customer(app: &TestApp, org: Uuid, email: &str) -> Uuid {
    app.store()
        .identify(
            org,
            &IdentityRules::default(),
            &IdentifyInput {
                identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
                traits: Traits {
                    first_name: "Ann".into(),
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

async fn status_label(app: &TestApp, id: Uuid, key: &str) -> String {
    let (s, v) = app
        .api_json(Method::GET, &format!("/agents/{id}"), key, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["status_label"].as_str().unwrap().to_string()
}

fn at(ms: i64) -> String {
    bos_web::api::rfc3339(ms)
}

#[tokio::test]
async fn an_agent_reports_with_its_own_key_and_its_status_reads_with_context() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (ava, ava_key) = register(&app, &t.key, "Ava").await;
    let (bo, _) = register(&app, &t.key, "Bo").await;
    let hb = |id: Uuid| format!("/agents/{id}/heartbeat");

    // Never reported: offline. The key works for reading its own agent.
    assert_eq!(status_label(&app, ava, &ava_key).await, "offline");

    let mut live = app.state.bus.subscribe(t.org.id);
    let (s, v) = app
        .api_json(
            Method::POST,
            &hb(ava),
            &ava_key,
            Some(json!({"status": "working", "activity": "Handling refund request #1234", "interval_seconds": 10})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status_label"], "Handling refund request #1234");
    assert_eq!(v["heartbeat_interval_seconds"], 10);
    assert_eq!(
        live.try_recv(),
        Some(Received::Event(Live::Agent { agent_id: ava }))
    );

    // A live call: the card counts its duration.
    let body =
        json!({"status": "talking", "call_started_at": at(T0 - 154_000), "interval_seconds": 10});
    let (s, v) = app
        .api_json(Method::POST, &hb(ava), &ava_key, Some(body))
        .await;
    assert_eq!(
        (s, v["status_label"].as_str()),
        (StatusCode::OK, Some("talking · 2:34"))
    );
    app.clock.advance_ms(6_000);
    assert_eq!(status_label(&app, ava, &t.key).await, "talking · 2:40");

    // Three missed intervals (30 s since the last beat): offline.
    app.clock.advance_ms(23_999);
    assert!(status_label(&app, ava, &t.key).await.starts_with("talking"));
    app.clock.advance_ms(1);
    assert_eq!(status_label(&app, ava, &t.key).await, "offline");

    // Back, idle, and handling a conversation it answered.
    let ann = customer(&app, t.org.id, "ann@example.com").await;
    let conv = app
        .state
        .inbox
        .record_inbound(
            t.org.id,
            Inbound::text(ann, Channel::Sms, "hi"),
            app.state.now(),
        )
        .await
        .unwrap()
        .conversation_id();
    app.state.agents.handles(t.org.id, ava, conv).await.unwrap();
    let (s, v) = app
        .api_json(
            Method::POST,
            &hb(ava),
            &ava_key,
            Some(json!({"status": "idle"})),
        )
        .await;
    assert_eq!(
        (s, v["status_label"].as_str()),
        (StatusCode::OK, Some("handling 1 conversation"))
    );
    let (s, v) = app
        .api_json(
            Method::POST,
            &hb(ava),
            &ava_key,
            Some(json!({"status": "error", "error": "API timeout"})),
        )
        .await;
    assert_eq!(
        (s, v["status_label"].as_str()),
        (StatusCode::OK, Some("error: API timeout"))
    );

    // Ava's key is not Bo's; a key of scope agent made for no agent reports for none.
    let (s, v) = app
        .api_json(
            Method::POST,
            &hb(bo),
            &ava_key,
            Some(json!({"status": "idle"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("another agent"));
    assert_eq!(
        app.api_json(Method::GET, &format!("/agents/{bo}"), &ava_key, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let loose = app.key(&t.org, "agent").await;
    assert_eq!(
        app.api_json(
            Method::POST,
            &hb(bo),
            &loose,
            Some(json!({"status": "idle"}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Only admins register agents.
    let (s, _) = app
        .api_json(
            Method::POST,
            "/agents",
            &ava_key,
            Some(json!({"name": "X", "kind": "chat", "provider": "api"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Bad input is 422 in words, naming the field.
    for (body, field, words) in [
        (
            json!({"status": "sleeping"}),
            "status",
            "idle, working, talking, error",
        ),
        (json!({"status": "error"}), "error", "what went wrong"),
        (
            json!({"status": "idle", "interval_seconds": 0}),
            "interval_seconds",
            "between 1 and 3600",
        ),
        (
            json!({"status": "talking", "call_started_at": "soon"}),
            "call_started_at",
            "RFC 3339",
        ),
        (
            json!({"status": "talking", "call_started_at": at(T0 + DAY)}),
            "call_started_at",
            "after the heartbeat",
        ),
    ] {
        let (s, v) = app
            .api_json(Method::POST, &hb(ava), &ava_key, Some(body))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], field, "{v}");
        assert!(v["detail"].as_str().unwrap().contains(words), "{v}");
    }
    for (body, field) in [
        (
            json!({"name": " ", "kind": "chat", "provider": "api"}),
            "name",
        ),
        (
            json!({"name": "X", "kind": "robot", "provider": "api"}),
            "kind",
        ),
        (
            json!({"name": "X", "kind": "voice", "provider": "vapi"}),
            "platform_agent_id",
        ),
    ] {
        let (s, v) = app
            .api_json(Method::POST, "/agents", &t.key, Some(body))
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{v}"
        );
    }

    // The list: both agents by name, with the key's prefix, never the secret.
    let (s, v) = app.api_json(Method::GET, "/agents", &t.key, None).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ava", "Bo"]);
    assert!(ava_key.starts_with(v["agents"][0]["key_prefix"].as_str().unwrap()));
    assert!(!v.to_string().contains(&ava_key));
}

#[tokio::test]
async fn a_pause_refuses_writes_until_resumed() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (ava, key) = register(&app, &t.key, "Ava").await;
    let ann = customer(&app, t.org.id, "ann@example.com").await;
    let conv = app
        .state
        .inbox
        .record_inbound(t.org.id, Inbound::text(ann, Channel::Sms, "hi"), T0)
        .await
        .unwrap()
        .conversation_id();
    let one = |ext: &str| json!({"conversation_id": conv, "outcome": "success", "started_at": at(T0), "external_id": ext});
    let path = format!("/agents/{ava}/interactions");

    let mut live = app.state.bus.subscribe(t.org.id);
    let (s, v) = app
        .api_json(Method::POST, &format!("/agents/{ava}/pause"), &t.key, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["paused"].as_bool(), v["status_label"].as_str()),
        (Some(true), Some("paused"))
    );
    assert_eq!(
        live.try_recv(),
        Some(Received::Event(Live::Agent { agent_id: ava }))
    );
    // The agent's own key cannot resume itself.
    assert_eq!(
        app.api_json(Method::POST, &format!("/agents/{ava}/resume"), &key, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let (s, v) = app
        .api_json(Method::POST, &path, &key, Some(one("i-1")))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"Ava\" is paused") && detail.contains("(API key) paused it"),
        "{detail}"
    );
    // Its messages into conversations too, before anything is sent.
    let (s, v) = app
        .api_json(
            Method::POST,
            &format!("/conversations/{conv}/messages"),
            &key,
            Some(json!({"channel": "sms", "text": "hello"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("paused"));
    // Heartbeats are fine while paused.
    let (s, _) = app
        .api_json(
            Method::POST,
            &format!("/agents/{ava}/heartbeat"),
            &key,
            Some(json!({"status": "idle"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, v) = app
        .api_json(Method::POST, &format!("/agents/{ava}/resume"), &t.key, None)
        .await;
    assert_eq!((s, v["paused"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, v) = app
        .api_json(Method::POST, &path, &key, Some(one("i-1")))
        .await;
    assert_eq!(
        (s, v["created"].as_bool()),
        (StatusCode::CREATED, Some(true)),
        "{v}"
    );
    // A retry of the same external id: the first one, 200.
    let (s, again) = app
        .api_json(Method::POST, &path, &key, Some(one("i-1")))
        .await;
    assert_eq!(
        (s, again["created"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert_eq!(again["id"], v["id"]);
    // The interaction took the conversation's customer.
    let day = Period::today(T0, "UTC").unwrap();
    let stored = app
        .store()
        .agent_interactions(t.org.id, Some(ava), day, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].new.profile_id, Some(ann));

    // Bad interactions are 422 in words.
    for (body, field) in [
        (json!({"outcome": "great", "started_at": at(T0)}), "outcome"),
        (
            json!({"outcome": "success", "started_at": "yesterday"}),
            "started_at",
        ),
        (
            json!({"outcome": "success", "started_at": at(T0), "ended_at": at(T0 - 1)}),
            "ended_at",
        ),
        (
            json!({"outcome": "success", "started_at": at(T0), "csat": 11}),
            "csat",
        ),
        (
            json!({"outcome": "success", "started_at": at(T0), "cost_usd": -1.0}),
            "cost_usd",
        ),
        (
            json!({"outcome": "success", "started_at": at(T0), "first_response_ms": -5}),
            "first_response_ms",
        ),
        (
            json!({"outcome": "success", "started_at": at(T0), "transcript": [{"role": "robot", "text": "x"}]}),
            "transcript",
        ),
    ] {
        let (s, v) = app.api_json(Method::POST, &path, &key, Some(body)).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{v}"
        );
    }
}

/// One interaction through the API, `n` choosing its figures.
async fn report(app: &TestApp, id: Uuid, key: &str, n: i64, started: i64) {
    let outcome = ["success", "success", "failure", "handed_off"][(n % 4) as usize];
    let mut body = json!({
        "outcome": outcome,
        "started_at": at(started),
        "ended_at": at(started + 90_000),
        "cost_usd": (n % 7) as f64 * 0.0125,
        "tokens": 200 + n,
        "summary": format!("conversation {n}"),
        "transcript": [{"role": "customer", "text": "Where is my order?"}, {"role": "agent", "text": "On its way."}],
        "external_id": format!("ext-{n}"),
    });
    if n % 3 != 0 {
        body["first_response_ms"] = json!(700 * n);
    }
    if n % 5 != 0 {
        body["csat"] = json!(n % 11);
    }
    if n % 6 == 0 {
        body["human_intervened"] = json!(true);
    }
    let (s, v) = app
        .api_json(
            Method::POST,
            &format!("/agents/{id}/interactions"),
            key,
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// The metrics JSON the API should answer for these totals.
fn expected(c: Compared) -> Value {
    let m = |m: bos_core::agents::Metrics| {
        json!({
            "interactions": m.interactions,
            "success_rate": m.success_rate,
            "avg_first_response_ms": m.avg_first_response_ms,
            "cost_per_interaction_usd": m.cost_per_interaction_micros.map(|c| c / 1e6),
            "cost_total_usd": m.cost_total_micros as f64 / 1e6,
            "csat": m.csat,
            "intervention_rate": m.intervention_rate,
        })
    };
    json!({"current": m(c.current), "previous": m(c.previous), "success": c.success.arrow(), "csat": c.csat.arrow()})
}

fn got(v: &Value) -> Value {
    json!({"current": v["current"], "previous": v["previous"],
        "success": v["trends"]["success_rate"]["arrow"], "csat": v["trends"]["csat"]["arrow"]})
}

#[tokio::test]
async fn metrics_equal_what_the_stored_interactions_add_up_to() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (ava, ava_key) = register(&app, &t.key, "Ava").await;
    let (bo, bo_key) = register(&app, &t.key, "Bo").await;
    // T0 is 2026-05-28T20:26:40Z; the organization's zone is UTC. Four
    // days of interactions for two agents, through the API.
    let today = Period::today(T0, "UTC").unwrap();
    for n in 0..48i64 {
        let (id, key) = if n % 3 == 0 {
            (bo, &bo_key)
        } else {
            (ava, &ava_key)
        };
        let started = today.from - 3 * DAY + n * 6_000_000;
        report(&app, id, key, n, started).await;
    }
    let totals = |who: Option<Uuid>, p: Period| {
        let app = &app;
        let org = t.org.id;
        async move {
            let stored = app
                .store()
                .agent_interactions(org, who, p, 10_000)
                .await
                .unwrap();
            Totals::of(&stored.iter().map(|i| i.metric()).collect::<Vec<_>>())
        }
    };

    // Today by default, against yesterday.
    let (s, v) = app
        .api_json(Method::GET, "/agents/metrics", &t.key, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let want = Compared::of(
        totals(None, today).await,
        totals(None, today.previous()).await,
    );
    assert!(want.current.interactions > 0 && want.previous.interactions > 0);
    assert_eq!(got(&v["overall"]), expected(want));
    assert_eq!(v["from"], "2026-05-28T00:00:00Z");
    for row in v["agents"].as_array().unwrap() {
        let id: Uuid = row["agent_id"].as_str().unwrap().parse().unwrap();
        let want = Compared::of(
            totals(Some(id), today).await,
            totals(Some(id), today.previous()).await,
        );
        assert_eq!(got(&row["metrics"]), expected(want));
    }

    // A two-day range against the two days before, overall and for one agent.
    let range = Period::dates("2026-05-27", "2026-05-28", "UTC").unwrap();
    let (s, v) = app
        .api_json(
            Method::GET,
            "/agents/metrics?from=2026-05-27&to=2026-05-28",
            &t.key,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let want = Compared::of(
        totals(None, range).await,
        totals(None, range.previous()).await,
    );
    assert_eq!(got(&v["overall"]), expected(want));
    assert_eq!(v["previous_from"], "2026-05-25T00:00:00Z");
    let (s, v) = app
        .api_json(
            Method::GET,
            &format!("/agents/metrics?from=2026-05-27&to=2026-05-28&agent={bo}"),
            &bo_key,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let want = Compared::of(
        totals(Some(bo), range).await,
        totals(Some(bo), range.previous()).await,
    );
    assert_eq!(got(&v["overall"]), expected(want));
    assert_eq!(v["agents"].as_array().unwrap().len(), 1);

    // An agent's card carries today's figures.
    let (_, card) = app
        .api_json(Method::GET, &format!("/agents/{ava}"), &t.key, None)
        .await;
    let want = Compared::of(
        totals(Some(ava), today).await,
        totals(Some(ava), today.previous()).await,
    );
    assert_eq!(got(&card["today"]), expected(want));

    // Bad periods are 422 in words.
    for (q, field) in [
        ("from=yesterday", "from"),
        ("from=2026-05-28&to=2026-05-01", "to"),
        ("from=2025-01-01&to=2026-05-01", "to"),
        ("to=2026-05-01", "from"),
        ("agent=nobody", "agent"),
    ] {
        let (s, v) = app
            .api_json(Method::GET, &format!("/agents/metrics?{q}"), &t.key, None)
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{q}: {v}"
        );
    }
}

#[tokio::test]
async fn another_tenant_sees_none_of_the_agents() {
    let app = spawn_app().await;
    let a = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;
    let (ava, ava_key) = register(&app, &a.key, "Ava").await;
    report(&app, ava, &ava_key, 1, T0).await;
    let (s, v) = app.api_json(Method::GET, "/agents", &b.key, None).await;
    assert_eq!(
        (s, v["agents"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    for (m, path) in [
        (Method::GET, format!("/agents/{ava}")),
        (Method::POST, format!("/agents/{ava}/heartbeat")),
        (Method::POST, format!("/agents/{ava}/pause")),
        (Method::POST, format!("/agents/{ava}/resume")),
        (Method::POST, format!("/agents/{ava}/interactions")),
        (Method::GET, format!("/agents/metrics?agent={ava}")),
    ] {
        let body = (m == Method::POST)
            .then(|| json!({"status": "idle", "outcome": "success", "started_at": at(T0)}));
        let (s, v) = app.api_json(m, &path, &b.key, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (_, v) = app
        .api_json(Method::GET, "/agents/metrics", &b.key, None)
        .await;
    assert_eq!(v["overall"]["current"]["interactions"], 0);
    assert!(!app.store().agent(a.org.id, ava).await.unwrap().paused);
}
