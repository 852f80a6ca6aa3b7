//! Voice agents from Vapi and Retell (both engines): a voice agent is
//! registered with its platform's signing secret (required, sealed, never
//! shown again) and gets its hook URL; Vapi's end-of-call report and
//! Retell's call_ended and call_analyzed, with the platforms' real field
//! names and signed in their real schemes, become one voice thread on the
//! customer found by phone (the customer's turns in, the AI's out as the
//! agent) and one interaction whose cost and outcome the metrics count;
//! a redelivery and Retell's second report store nothing twice (the
//! analysis completes the interaction); Vapi's live status makes the card
//! say `talking · m:ss` and the end clears it; a missing, wrong, stale or
//! another agent's signature is 401 and stores nothing.

use crate::support::*;
use bos_core::agents::{retell_sign, vapi_sign};
use bos_engine::{Live, Received};
use bos_web::Clock as _;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const VAPI_SECRET: &str = "vapi-server-secret-0001";
const RETELL_KEY: &str = "key_retell_0001abcdef";
const CALLER: &str = "+14155550123";

/// A voice agent registered over the API: its id and hook URL.
async fn voice_agent(
    app: &TestApp,
    key: &str,
    provider: &str,
    platform_id: &str,
    secret: &str,
) -> (Uuid, String) {
    let (s, v) = app
        .api_json(
            Method::POST,
            "/agents",
            key,
            Some(
                json!({"name": format!("{provider} Riley"), "kind": "voice", "provider": provider,
                "platform_agent_id": platform_id, "webhook_secret": secret}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(!v.to_string().contains(secret), "the secret came back: {v}");
    let id: Uuid = v["agent"]["id"].as_str().unwrap().parse().unwrap();
    let hook = v["hook_url"].as_str().unwrap().to_string();
    assert_eq!(hook, app.url(&format!("/hooks/{provider}/{id}")));
    (id, hook)
}

fn iso(ms: i64) -> String {
    bos_web::api::rfc3339(ms)
}

/// Vapi's end-of-call report, as its server messages carry it.
fn vapi_report(call: &str, started: i64) -> Vec<u8> {
    json!({"message": {
        "timestamp": started + 154_000,
        "type": "end-of-call-report",
        "endedReason": "customer-ended-call",
        "call": {"id": call, "orgId": "org_vapi_1", "type": "inboundPhoneCall",
            "assistantId": "asst_riley", "status": "ended",
            "customer": {"number": CALLER}},
        "phoneNumber": {"id": "pn_1", "number": "+15005550006"},
        "customer": {"number": CALLER},
        "assistant": {"id": "asst_riley", "name": "Riley"},
        "startedAt": iso(started),
        "endedAt": iso(started + 154_000),
        "cost": 0.2361,
        "costBreakdown": {"transport": 0.0, "stt": 0.0235, "llm": 0.0412, "tts": 0.0514, "vapi": 0.12, "total": 0.2361},
        "durationSeconds": 154.0,
        "analysis": {
            "summary": "The caller asked to move her delivery to Friday; the assistant rescheduled it.",
            "successEvaluation": "true"
        },
        "artifact": {
            "transcript": "AI: Thanks for calling Door Shop, this is Riley. How can I help?\nUser: Hi, can I move my delivery to Friday?\nAI: Done, it now arrives Friday between nine and twelve.\nUser: Perfect, thank you so much!",
            "recordingUrl": "https://storage.vapi.ai/rec-1.wav",
            "messages": [
                {"role": "system", "message": "You are Riley, Door Shop's assistant.", "time": started, "secondsFromStart": 0},
                {"role": "bot", "message": "Thanks for calling Door Shop, this is Riley. How can I help?", "time": started + 600, "endTime": started + 3_900, "secondsFromStart": 0.6, "duration": 3300},
                {"role": "user", "message": "Hi, can I move my delivery to Friday?", "time": started + 5_200, "endTime": started + 7_800, "secondsFromStart": 5.2, "duration": 2600},
                {"role": "bot", "message": "Done, it now arrives Friday between nine and twelve.", "time": started + 9_000, "endTime": started + 12_500, "secondsFromStart": 9.0, "duration": 3500},
                {"role": "user", "message": "Perfect, thank you so much!", "time": started + 14_100, "endTime": started + 15_600, "secondsFromStart": 14.1, "duration": 1500}
            ]
        }
    }})
    .to_string()
    .into_bytes()
}

fn vapi_status(call: &str, status: &str) -> Vec<u8> {
    json!({"message": {"type": "status-update", "status": status, "timestamp": T0,
        "call": {"id": call, "type": "inboundPhoneCall", "assistantId": "asst_riley"},
        "customer": {"number": CALLER}}})
    .to_string()
    .into_bytes()
}

/// Posts a Vapi server message signed with `secret` (HMAC over
/// `{timestamp}.{body}`) at the test clock's time.
async fn post_vapi(app: &TestApp, hook: &str, body: &[u8], secret: &str) -> reqwest::Response {
    let ts = app.clock.now_ms().to_string();
    app.http
        .post(hook)
        .header(CONTENT_TYPE, "application/json")
        .header("x-timestamp", &ts)
        .header("x-signature", vapi_sign(secret.as_bytes(), &ts, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// Retell's call with its transcript; `analysis` adds what call_analyzed carries.
fn retell_event(event: &str, call: &str, started: i64, analysis: Option<Value>) -> Vec<u8> {
    let mut c = json!({
        "call_type": "phone_call", "direction": "inbound",
        "from_number": CALLER, "to_number": "+15005550007",
        "call_id": call, "agent_id": "agent_retell_1", "call_status": "ended",
        "start_timestamp": started, "end_timestamp": started + 61_000, "duration_ms": 61_000,
        "disconnection_reason": "user_hangup",
        "transcript": "Agent: Hello, this is Sam from Door Shop.\nUser: My lamp arrived broken and I am really upset.\nAgent: I'm sorry. I've started a replacement for you.",
        "transcript_object": [
            {"role": "agent", "content": "Hello, this is Sam from Door Shop.", "words": [{"word": "Hello", "start": 0.4, "end": 0.8}]},
            {"role": "user", "content": "My lamp arrived broken and I am really upset.", "words": [{"word": "My", "start": 3.1, "end": 3.2}]},
            {"role": "agent", "content": "I'm sorry. I've started a replacement for you.", "words": [{"word": "I'm", "start": 7.5, "end": 7.7}]}
        ],
        "call_cost": {"product_costs": [{"product": "elevenlabs_tts", "unit_price": 0.1, "cost": 6.1}],
            "total_duration_seconds": 61, "total_duration_unit_price": 0.1, "combined_cost": 12.5},
        "opt_out_sensitive_data_storage": false
    });
    if let Some(a) = analysis {
        c["call_analysis"] = a;
    }
    json!({"event": event, "call": c}).to_string().into_bytes()
}

async fn post_retell(app: &TestApp, hook: &str, body: &[u8], key: &str) -> reqwest::Response {
    app.http
        .post(hook)
        .header(CONTENT_TYPE, "application/json")
        .header(
            "x-retell-signature",
            retell_sign(key.as_bytes(), body, app.clock.now_ms()),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn agent_json(app: &TestApp, key: &str, id: Uuid) -> Value {
    let (s, v) = app
        .api_json(Method::GET, &format!("/agents/{id}"), key, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// The organization's voice threads, each with its messages.
async fn voice_threads(app: &TestApp, key: &str) -> Vec<Value> {
    let (s, v) = app
        .api_json(Method::GET, "/conversations?channel=voice", key, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut out = Vec::new();
    for c in v["conversations"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let (s, d) = app
            .api_json(Method::GET, &format!("/conversations/{id}"), key, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        out.push(d);
    }
    out
}

async fn interactions(
    app: &TestApp,
    org: Uuid,
    agent: Uuid,
) -> Vec<bos_store::agents::StoredInteraction> {
    let day = bos_core::agents::Period::today(T0, "UTC").unwrap();
    app.store()
        .agent_interactions(org, Some(agent), day, 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_vapi_call_is_live_then_a_voice_thread_an_interaction_and_metrics() {
    let app = spawn_app().await;
    let t = app.tenant("Door Shop").await;
    let (agent, hook) = voice_agent(&app, &t.key, "vapi", "asst_riley", VAPI_SECRET).await;
    let mut live = app.state.bus.subscribe(t.org.id);

    // The call goes live: the card counts its length.
    let res = post_vapi(
        &app,
        &hook,
        &vapi_status("call_v1", "in-progress"),
        VAPI_SECRET,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        live.try_recv(),
        Some(Received::Event(Live::Agent { agent_id: agent }))
    );
    let v = agent_json(&app, &t.key, agent).await;
    assert_eq!(v["status"], "talking");
    assert_eq!(v["status_label"], "talking · 0:00");
    assert_eq!(v["last_heartbeat_at"], iso(T0));
    app.clock.advance_ms(154_000);
    assert_eq!(
        agent_json(&app, &t.key, agent).await["status_label"],
        "talking · 2:34"
    );

    // The report: one thread on the caller, the turns in order.
    let report = vapi_report("call_v1", T0);
    let res = post_vapi(&app, &hook, &report, VAPI_SECRET).await;
    assert_eq!(res.status(), StatusCode::OK);
    let threads = voice_threads(&app, &t.key).await;
    assert_eq!(threads.len(), 1);
    let d = &threads[0];
    assert_eq!(d["conversation"]["customer_phone"], CALLER);
    assert_eq!(d["conversation"]["channels"], json!(["voice"]));
    assert_eq!(d["conversation"]["ai_involved"], true);
    let turns: Vec<(&str, &str, &str)> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["author_kind"].as_str().unwrap(),
                m["direction"].as_str().unwrap(),
                m["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        [
            (
                "agent",
                "outbound",
                "Thanks for calling Door Shop, this is Riley. How can I help?"
            ),
            (
                "customer",
                "inbound",
                "Hi, can I move my delivery to Friday?"
            ),
            (
                "agent",
                "outbound",
                "Done, it now arrives Friday between nine and twelve."
            ),
            ("customer", "inbound", "Perfect, thank you so much!"),
        ]
    );
    let first = &d["messages"][0];
    assert_eq!(first["channel"], "voice");
    assert_eq!(first["author_id"], agent.to_string());
    assert_eq!(first["author_name"], "vapi Riley");
    // Each turn at the moment it was spoken.
    assert_eq!(first["created_at"], iso(T0 + 600));
    assert_eq!(d["messages"][3]["created_at"], iso(T0 + 14_100));

    // One interaction with the call's cost, outcome, summary and sentiment.
    let all = interactions(&app, t.org.id, agent).await;
    assert_eq!(all.len(), 1);
    let i = &all[0].new;
    assert_eq!(i.external_id.as_deref(), Some("call_v1"));
    assert_eq!(i.outcome, bos_core::agents::Outcome::Success);
    assert_eq!(i.cost_micros, 236_100);
    assert_eq!((i.started_at, i.ended_at), (T0, Some(T0 + 154_000)));
    assert_eq!(i.first_response_ms, Some(600));
    assert!(i.summary.as_deref().unwrap().contains("Friday"));
    assert!(i.sentiment.unwrap() > 5.0, "{:?}", i.sentiment);
    assert_eq!(i.transcript.len(), 4);
    assert_eq!(i.transcript[1].role, "customer");
    let conv: Uuid = d["conversation"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(i.conversation_id, Some(conv));

    // The call is over: the card is idle again.
    let v = agent_json(&app, &t.key, agent).await;
    assert_eq!(v["status"], "idle", "{v}");
    // Today's metrics count the call.
    assert_eq!(v["today"]["current"]["interactions"], 1);
    assert_eq!(v["today"]["current"]["success_rate"], 1.0);
    assert_eq!(v["today"]["current"]["cost_total_usd"], 0.2361);
    // One line on the caller's timeline.
    let profile: Uuid = d["conversation"]["customer_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let lines = app.timeline(t.org.id, profile).await;
    let calls: Vec<_> = lines
        .iter()
        .filter(|l| l.kind == "agent_interaction")
        .collect();
    assert_eq!(calls.len(), 1, "{lines:?}");
    assert!(
        calls[0]
            .summary
            .starts_with("vapi Riley: resolved · sentiment 8.8/10"),
        "{lines:?}"
    );

    // Vapi delivers it again, and says "ended" late: nothing doubles, and
    // the late status changes nothing.
    for _ in 0..2 {
        let res = post_vapi(&app, &hook, &report, VAPI_SECRET).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = post_vapi(&app, &hook, &vapi_status("call_v1", "ended"), VAPI_SECRET).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post_vapi(
        &app,
        &hook,
        &vapi_status("call_v1", "in-progress"),
        VAPI_SECRET,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let threads = voice_threads(&app, &t.key).await;
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0]["messages"].as_array().unwrap().len(), 4);
    assert_eq!(interactions(&app, t.org.id, agent).await.len(), 1);
    assert_eq!(agent_json(&app, &t.key, agent).await["status"], "idle");
    let (s, m) = app
        .api_json(
            Method::GET,
            &format!("/agents/metrics?agent={agent}"),
            &t.key,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["overall"]["current"]["interactions"], 1);
    assert_eq!(m["overall"]["current"]["cost_total_usd"], 0.2361);
    // Answering the caller: by text, as a voice thread cannot be answered.
    assert!(d["reply_channels"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["channel"] != "voice"));
}

#[tokio::test]
async fn retell_call_ended_then_analyzed_is_one_interaction_completed() {
    let app = spawn_app().await;
    let t = app.tenant("Lamp Shop").await;
    let (agent, hook) = voice_agent(&app, &t.key, "retell", "agent_retell_1", RETELL_KEY).await;
    let started = T0 - 61_000;

    let res = post_retell(
        &app,
        &hook,
        &retell_event("call_started", "c_77", started, None),
        RETELL_KEY,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v = agent_json(&app, &t.key, agent).await;
    assert_eq!(v["status_label"], "talking · 1:01", "{v}");

    let ended = retell_event("call_ended", "c_77", started, None);
    assert_eq!(
        post_retell(&app, &hook, &ended, RETELL_KEY).await.status(),
        StatusCode::OK
    );
    let all = interactions(&app, t.org.id, agent).await;
    assert_eq!(all.len(), 1);
    let i = &all[0].new;
    // combined_cost is in cents.
    assert_eq!(i.cost_micros, 125_000);
    // Not analysed yet: a call that ended normally, no summary.
    assert_eq!(i.outcome, bos_core::agents::Outcome::Success);
    assert_eq!((i.summary.as_deref(), i.sentiment), (None, None));
    assert_eq!(agent_json(&app, &t.key, agent).await["status"], "idle");

    // The analysis: the same interaction, completed; the thread unchanged.
    let analyzed = retell_event(
        "call_analyzed",
        "c_77",
        started,
        Some(
            json!({"call_summary": "The lamp arrived broken; a replacement was started.",
            "in_voicemail": false, "user_sentiment": "Negative", "call_successful": false,
            "custom_analysis_data": {}}),
        ),
    );
    let mut live = app.state.bus.subscribe(t.org.id);
    assert_eq!(
        post_retell(&app, &hook, &analyzed, RETELL_KEY)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        live.try_recv(),
        Some(Received::Event(Live::Agent { agent_id: agent }))
    );
    let all = interactions(&app, t.org.id, agent).await;
    assert_eq!(all.len(), 1);
    let i = &all[0].new;
    assert_eq!(i.outcome, bos_core::agents::Outcome::Failure);
    assert_eq!(i.sentiment, Some(2.0));
    assert!(i.summary.as_deref().unwrap().contains("replacement"));
    assert_eq!(i.cost_micros, 125_000);
    let threads = voice_threads(&app, &t.key).await;
    assert_eq!(threads.len(), 1);
    let msgs = threads[0]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["author_kind"], "customer");
    assert_eq!(msgs[1]["created_at"], iso(started + 3_100));

    // Both again, in the other order: nothing changes.
    for body in [&analyzed, &ended] {
        assert_eq!(
            post_retell(&app, &hook, body, RETELL_KEY).await.status(),
            StatusCode::OK
        );
    }
    let again = interactions(&app, t.org.id, agent).await;
    assert_eq!(again, all);
    assert_eq!(
        voice_threads(&app, &t.key).await[0]["messages"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The metrics: one call, failed, 12.5 cents.
    let v = agent_json(&app, &t.key, agent).await;
    assert_eq!(v["today"]["current"]["interactions"], 1);
    assert_eq!(v["today"]["current"]["success_rate"], 0.0);
    assert_eq!(v["today"]["current"]["cost_total_usd"], 0.125);
}

/// Why it must fail, the URL, the headers, the body.
type Attempt = (&'static str, String, Vec<(&'static str, String)>, Vec<u8>);

#[tokio::test]
async fn wrong_signatures_are_401_and_store_nothing() {
    let app = spawn_app().await;
    let t = app.tenant("Door Shop").await;
    let other = app.tenant("Other Shop").await;
    let (vapi, vapi_hook) = voice_agent(&app, &t.key, "vapi", "asst_riley", VAPI_SECRET).await;
    let (_, retell_hook) = voice_agent(&app, &t.key, "retell", "agent_retell_1", RETELL_KEY).await;
    // Another tenant's agent, with its own secret.
    let (_, other_hook) = voice_agent(
        &app,
        &other.key,
        "vapi",
        "asst_other",
        "other-tenant-secret",
    )
    .await;
    let report = vapi_report("call_bad", T0 - 154_000);
    let ts = T0.to_string();
    let good = vapi_sign(VAPI_SECRET.as_bytes(), &ts, &report);
    let stale = (T0 - 6 * 60_000).to_string();

    let attempts: Vec<Attempt> = vec![
        ("no signature", vapi_hook.clone(), vec![], report.clone()),
        (
            "another secret",
            vapi_hook.clone(),
            vec![
                ("x-timestamp", ts.clone()),
                ("x-signature", vapi_sign(b"not-the-secret", &ts, &report)),
            ],
            report.clone(),
        ),
        (
            "a changed body",
            vapi_hook.clone(),
            vec![("x-timestamp", ts.clone()), ("x-signature", good.clone())],
            vapi_report("call_bad2", T0 - 154_000),
        ),
        (
            "a stale timestamp",
            vapi_hook.clone(),
            vec![
                ("x-timestamp", stale.clone()),
                (
                    "x-signature",
                    vapi_sign(VAPI_SECRET.as_bytes(), &stale, &report),
                ),
            ],
            report.clone(),
        ),
        (
            "a wrong legacy secret",
            vapi_hook.clone(),
            vec![("x-vapi-secret", "guess".to_string())],
            report.clone(),
        ),
        (
            "the retell hook with vapi's signature",
            retell_hook.clone(),
            vec![("x-timestamp", ts.clone()), ("x-signature", good.clone())],
            report.clone(),
        ),
        (
            "the vapi path with a retell agent's id",
            retell_hook.replace("/retell/", "/vapi/"),
            vec![("x-timestamp", ts.clone()), ("x-signature", good.clone())],
            report.clone(),
        ),
        (
            "another tenant's agent",
            other_hook.clone(),
            vec![("x-timestamp", ts.clone()), ("x-signature", good.clone())],
            report.clone(),
        ),
        (
            "an unknown agent",
            app.url(&format!("/hooks/vapi/{}", Uuid::now_v7())),
            vec![("x-timestamp", ts.clone()), ("x-signature", good.clone())],
            report.clone(),
        ),
        (
            "not an id",
            app.url("/hooks/vapi/not-a-uuid"),
            vec![("x-timestamp", ts.clone()), ("x-signature", good.clone())],
            report.clone(),
        ),
        (
            "a retell signature with another key",
            retell_hook.clone(),
            vec![(
                "x-retell-signature",
                retell_sign(
                    b"key_wrong",
                    &retell_event("call_ended", "c_bad", T0, None),
                    T0,
                ),
            )],
            retell_event("call_ended", "c_bad", T0, None),
        ),
    ];
    for (why, url, headers, body) in attempts {
        let mut req = app
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        for (h, v) in headers {
            req = req.header(h, v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(
            res.headers()[CONTENT_TYPE],
            "application/problem+json",
            "{why}"
        );
        let p: Value = res.json().await.unwrap();
        assert!(
            p["detail"].as_str().unwrap().contains("webhook_secret"),
            "{why}: {p}"
        );
    }
    // The right signature still works; the legacy shared secret too.
    let res = app
        .http
        .post(&vapi_hook)
        .header("x-vapi-secret", VAPI_SECRET)
        .body(vapi_status("call_ok", "in-progress"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Nothing else was stored: no thread, no interaction, no customer.
    assert!(voice_threads(&app, &t.key).await.is_empty());
    assert!(voice_threads(&app, &other.key).await.is_empty());
    assert!(interactions(&app, t.org.id, vapi).await.is_empty());
    assert_eq!(app.store().count_profiles(t.org.id).await.unwrap(), 0);
    assert_eq!(app.store().count_profiles(other.org.id).await.unwrap(), 0);
    // A verified body that is not a call event is a 400 in words.
    let res = post_vapi(&app, &vapi_hook, b"{\"message\": {}}", VAPI_SECRET).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let p: Value = res.json().await.unwrap();
    assert!(
        p["detail"].as_str().unwrap().contains("message.type"),
        "{p}"
    );
    // Over the body limit: 413, as every hook.
    let huge = vec![b' '; app.config.body_limit_bytes + 1];
    let res = post_vapi(&app, &vapi_hook, &huge, VAPI_SECRET).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_voice_agents_secret_is_required_sealed_and_never_shown() {
    let app = spawn_app().await;
    let t = app.tenant("Sealed Shop").await;
    for (body, field, words) in [
        (
            json!({"name": "R", "kind": "voice", "provider": "vapi", "platform_agent_id": "asst_1"}),
            "webhook_secret",
            "server secret",
        ),
        (
            json!({"name": "R", "kind": "voice", "provider": "retell", "platform_agent_id": "ag_1", "webhook_secret": "  "}),
            "webhook_secret",
            "API key",
        ),
        (
            json!({"name": "R", "kind": "chat", "provider": "api", "webhook_secret": "x"}),
            "webhook_secret",
            "only vapi and retell",
        ),
    ] {
        let (s, v) = app
            .api_json(Method::POST, "/agents", &t.key, Some(body))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], field, "{v}");
        assert!(v["detail"].as_str().unwrap().contains(words), "{v}");
    }
    let (s, v) = app
        .api_json(
            Method::POST,
            "/agents",
            &t.key,
            Some(json!({"name": "Chat", "kind": "chat", "provider": "api"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["hook_url"], Value::Null);
    let (id, _) = voice_agent(&app, &t.key, "vapi", "asst_1", VAPI_SECRET).await;
    let (s, list) = app.api_json(Method::GET, "/agents", &t.key, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!list.to_string().contains(VAPI_SECRET));
    assert!(!agent_json(&app, &t.key, id)
        .await
        .to_string()
        .contains(VAPI_SECRET));
    let at_rest = app.store().dump_provider_secret_columns().await.unwrap();
    assert!(at_rest.iter().any(|v| v.starts_with("bos1:")));
    assert!(at_rest.iter().all(|v| !v.contains(VAPI_SECRET)));
    // Sealed for this agent's row, opened for its hook only.
    let hook = app.store().agent_hook(id).await.unwrap().unwrap();
    assert_eq!((hook.org_id, hook.secret.as_str()), (t.org.id, VAPI_SECRET));
    assert!(!format!("{hook:?}").contains(VAPI_SECRET));
}
