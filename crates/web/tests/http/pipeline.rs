//! The intake pipeline end to end, duplicate deliveries included: real
//! signed deliveries go in over HTTP, the pipeline is drained (no sleeping:
//! the test clock moves and the job runner is settled), and what comes out
//! is checked in the store — one profile per person, the timeline, the
//! intent score with its reasons, lead states with their history, the
//! checkout abandonment and ghosting timers, parking and replay.

use crate::intake::{basic, shopify_headers, shopify_source, source};
use crate::support::*;
use bos_engine::{Runner, RunnerConfig};
use bos_store::pipeline::LeadFilter;
use serde_json::{json, Value};
use uuid::Uuid;

const HOUR: i64 = 3_600_000;

pub(crate) fn at(ms: i64) -> String {
    bos_web::api::rfc3339(ms)
}

pub(crate) async fn runner(app: &TestApp) -> Runner {
    let r = app.state.scheduler.runner(RunnerConfig::default());
    app.state
        .nudger
        .handlers(app.state.pipeline.handlers(r))
        .start()
        .await
        .unwrap()
}

pub(crate) async fn segment(app: &TestApp, key: &str, path: &str, body: Value) {
    let res = app
        .post_raw(
            path,
            &[("Authorization", basic(key))],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

async fn timeline_kinds(app: &TestApp, org: Uuid, profile: Uuid) -> Vec<String> {
    let page = app.timeline(org, profile).await;
    let mut k: Vec<String> = page.iter().map(|e| e.kind.clone()).collect();
    k.sort();
    k
}

#[tokio::test]
async fn segment_calls_become_one_customer_with_a_scored_lead() {
    let app = spawn_app().await;
    let s = source(&app, "Pipe Seg", "segment").await;
    let t = T0 - 10 * 60_000;
    // An ad click lands anonymously, then the visitor identifies and buys.
    segment(
        &app,
        &s.secret,
        "/v1/page",
        json!({
            "anonymousId": "anon-7", "messageId": "m-1", "timestamp": at(t), "name": "Pricing",
            "context": {"page": {"url": "https://shop.test/pricing?gclid=abc", "path": "/pricing"},
                        "campaign": {"source": "google", "medium": "cpc", "name": "spring"}}
        }),
    )
    .await;
    segment(&app, &s.secret, "/v1/identify", json!({
        "anonymousId": "anon-7", "userId": "u-7", "messageId": "m-2", "timestamp": at(t + 60_000),
        "traits": {"email": "Mia@Example.com", "firstName": "Mia", "lastName": "Wong"}
    })).await;
    segment(&app, &s.secret, "/v1/track", json!({
        "userId": "u-7", "messageId": "m-3", "event": "Checkout Started", "timestamp": at(t + 120_000),
        "properties": {"value": 180.0}
    })).await;
    let pass = app.state.pipeline.drain().await.unwrap();
    assert_eq!((pass.taken, pass.failed), (3, 0));

    let feed = app
        .store()
        .lead_feed(
            s.org,
            &LeadFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(feed.len(), 1, "three calls, one person");
    let lead = &feed[0];
    assert_eq!(lead.email, "mia@example.com");
    assert_eq!(lead.state, "engaged");
    assert!(
        lead.score >= 70,
        "checkout over 100.00 from a paid ad: {lead:?}"
    );
    assert_eq!(lead.category, "high_value");
    assert_eq!(lead.open_cart_cents, Some(18_000));
    let fired: Vec<&str> = lead
        .fired
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect();
    assert!(
        fired.contains(&"checkout-started") && fired.contains(&"big-cart"),
        "{fired:?}"
    );
    let kinds = timeline_kinds(&app, s.org, lead.profile_id).await;
    for k in [
        "ad_click",
        "checkout_started",
        "identify",
        "lead_state",
        "page_view",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let history = app
        .store()
        .lead_history(s.org, lead.profile_id)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].from_state.as_str(), history[0].to_state.as_str()),
        ("new", "engaged")
    );

    // A purchase converts the lead, with its reason on the timeline.
    segment(&app, &s.secret, "/v1/track", json!({
        "userId": "u-7", "messageId": "m-4", "event": "Order Completed", "timestamp": at(t + 300_000),
        "properties": {"revenue": 180.0, "currency": "USD"}
    })).await;
    app.state.pipeline.drain().await.unwrap();
    let lead = app
        .store()
        .lead(s.org, lead.profile_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.state, "converted");
    assert_eq!(lead.ltv_cents, 18_000);
    assert_eq!(lead.open_cart_cents, None, "the order closed the cart");
    let history = app
        .store()
        .lead_history(s.org, lead.profile_id)
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().to_state, "converted");
}

#[tokio::test]
async fn each_event_is_applied_once_whatever_is_replayed() {
    let app = spawn_app().await;
    let s = source(&app, "Pipe Once", "segment").await;
    let body = json!({"userId": "u-1", "messageId": "m-1", "event": "Product Added", "timestamp": at(T0),
                      "properties": {"name": "Tee"}});
    for _ in 0..3 {
        segment(&app, &s.secret, "/v1/track", body.clone()).await;
    }
    // Two workers racing over the same due events: one applies each.
    let due = app.store().due_inbound(T0, 10).await.unwrap();
    assert_eq!(due.len(), 1, "three deliveries, one stored event (R4)");
    let (a, b) = tokio::join!(app.state.pipeline.drain(), app.state.pipeline.drain());
    assert_eq!(a.unwrap().failed + b.unwrap().failed, 0);
    let lead = &app
        .store()
        .lead_feed(
            s.org,
            &LeadFilter {
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap()[0];
    let before = timeline_kinds(&app, s.org, lead.profile_id).await;
    assert_eq!(before.iter().filter(|k| *k == "cart_add").count(), 1);

    // Replaying a processed delivery changes nothing.
    let d = app
        .store()
        .deliveries(s.org, Some(s.id), None, 10)
        .await
        .unwrap();
    assert_eq!(d[0].status, "processed");
    assert_eq!(d[0].profile_id, Some(lead.profile_id));
    app.store()
        .requeue_inbound(s.org, d[0].id, T0)
        .await
        .unwrap();
    let pass = app.state.pipeline.drain().await.unwrap();
    assert_eq!(pass.taken, 1);
    assert_eq!(timeline_kinds(&app, s.org, lead.profile_id).await, before);
    assert_eq!(
        app.store()
            .lead_history(s.org, lead.profile_id)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn unreadable_events_are_parked_with_their_reason_and_can_be_retried() {
    let app = spawn_app().await;
    let s = source(&app, "Pipe Park", "segment").await;
    app.store()
        .ingest(
            s.org,
            s.id,
            vec![bos_store::intake::NewInbound {
                external_id: "bad-1".into(),
                kind: "track".into(),
                payload: r#"{"userId":"u-1","messageId":"bad-1"}"#.into(),
            }],
            T0,
        )
        .await
        .unwrap();
    // And one that names nobody usable: skipped, with the reason.
    segment(
        &app,
        &s.secret,
        "/v1/identify",
        json!({"userId": "u-2", "messageId": "m-2",
        "traits": {"email": "test@test.com"}}),
    )
    .await;
    app.state.pipeline.drain().await.unwrap();
    let parked = app
        .store()
        .deliveries(s.org, None, Some("parked"), 10)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0]
            .error
            .as_deref()
            .unwrap()
            .contains("could not be read"),
        "{:?}",
        parked[0].error
    );
    app.store()
        .requeue_inbound(s.org, parked[0].id, T0)
        .await
        .unwrap();
    assert_eq!(
        app.store()
            .inbound_status_counts(s.org)
            .await
            .unwrap()
            .get("pending"),
        Some(&1)
    );
    app.state.pipeline.drain().await.unwrap();
    assert_eq!(
        app.store()
            .deliveries(s.org, None, Some("parked"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Another tenant cannot touch it.
    let other = app.org("Pipe Park Other").await;
    assert!(app
        .store()
        .requeue_inbound(other.id, parked[0].id, T0)
        .await
        .is_err());
}

fn checkout(id: u64, token: &str, email: &str, at_ms: i64, total: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "token": token, "cart_token": format!("cart-{token}"), "email": email,
        "created_at": at(at_ms), "updated_at": at(at_ms), "currency": "USD", "completed_at": null,
        "subtotal_price": total, "total_price": total,
        "line_items": [{"product_id": 1, "variant_id": 2, "title": "Tee", "quantity": 1, "price": total}],
        "customer": {"id": id + 1000, "email": email, "first_name": "Jo", "last_name": "Park"},
        "abandoned_checkout_url": format!("https://shop.test/recover/{token}")
    }))
    .unwrap()
}

#[tokio::test]
async fn a_checkout_without_an_order_is_abandoned_when_its_window_closes() {
    let app = spawn_app().await;
    let s = shopify_source(&app, "Pipe Shop", "shpss_pipe").await;
    let path = format!("/hooks/shopify/{}", s.id);
    let runner = runner(&app).await;
    // Two checkouts now; the second one is paid 20 minutes later.
    for (n, (id, token, email)) in [
        (11u64, "tok-a", "ann@shop.test"),
        (12, "tok-b", "bob@shop.test"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = checkout(id, token, email, T0, "120.00");
        let res = app
            .post_raw(
                &path,
                &shopify_headers("checkouts/create", &format!("ev-{n}"), &s.secret, &body),
                body,
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    app.state.pipeline.drain().await.unwrap();
    app.clock.advance_ms(20 * 60_000);
    let order = serde_json::to_vec(&json!({
        "id": 900, "name": "#1001", "email": "bob@shop.test", "currency": "USD", "total_price": "120.00",
        "checkout_token": "tok-b", "created_at": at(T0 + 20 * 60_000), "financial_status": "paid",
        "customer": {"id": 1012, "email": "bob@shop.test"},
        "line_items": [{"product_id": 1, "variant_id": 2, "title": "Tee", "quantity": 1, "price": "120.00"}]
    })).unwrap();
    let res = app
        .post_raw(
            &path,
            &shopify_headers("orders/create", "ev-o", &s.secret, &order),
            order,
        )
        .await;
    assert_eq!(res.status(), 200);
    app.state.pipeline.drain().await.unwrap();

    // Just before the window closes nothing is abandoned; just after, only
    // the unpaid checkout is.
    app.clock.set_ms(T0 + HOUR - 1);
    runner.settled(T0 + HOUR - 1).await;
    let feed = app
        .store()
        .lead_feed(
            s.org,
            &LeadFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ann = feed.iter().find(|l| l.email == "ann@shop.test").unwrap();
    let bob = feed.iter().find(|l| l.email == "bob@shop.test").unwrap();
    assert!(!timeline_kinds(&app, s.org, ann.profile_id)
        .await
        .contains(&"checkout_abandoned".to_string()));
    app.clock.set_ms(T0 + HOUR);
    runner.settled(T0 + HOUR).await;
    let ann_kinds = timeline_kinds(&app, s.org, ann.profile_id).await;
    assert!(
        ann_kinds.contains(&"checkout_abandoned".to_string()),
        "{ann_kinds:?}"
    );
    let bob_kinds = timeline_kinds(&app, s.org, bob.profile_id).await;
    assert!(
        !bob_kinds.contains(&"checkout_abandoned".to_string()),
        "{bob_kinds:?}"
    );
    assert!(bob_kinds.contains(&"purchase".to_string()));
    assert_eq!(
        app.store()
            .lead(s.org, bob.profile_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        "converted"
    );
    runner.shutdown().await;
}

#[tokio::test]
async fn an_engaged_lead_ghosts_after_the_inactivity_threshold_and_comes_back() {
    let app = spawn_app().await;
    let s = source(&app, "Pipe Ghost", "segment").await;
    let runner = runner(&app).await;
    segment(
        &app,
        &s.secret,
        "/v1/track",
        json!({"userId": "u-9", "messageId": "m-1",
        "event": "Checkout Started", "timestamp": at(T0)}),
    )
    .await;
    app.state.pipeline.drain().await.unwrap();
    let id = app
        .store()
        .lead_feed(
            s.org,
            &LeadFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()[0]
        .profile_id;
    let state = |app: &TestApp| {
        let st = app.store().clone();
        async move { st.lead(s.org, id).await.unwrap().unwrap().state }
    };
    assert_eq!(state(&app).await, "engaged");
    // Default threshold: 3 days without activity. A visit on day 2 keeps
    // the lead engaged when the first timer fires on day 3: the timer sets
    // itself again from that visit, and the lead ghosts on day 5.
    let day = 24 * HOUR;
    app.clock.set_ms(T0 + 2 * day);
    segment(
        &app,
        &s.secret,
        "/v1/page",
        json!({"userId": "u-9", "messageId": "m-1b",
        "timestamp": at(T0 + 2 * day), "name": "Pricing"}),
    )
    .await;
    app.state.pipeline.drain().await.unwrap();
    app.clock.set_ms(T0 + 3 * day);
    runner.settled(T0 + 3 * day).await;
    assert_eq!(state(&app).await, "engaged", "active on day 2");
    app.clock.set_ms(T0 + 5 * day - 1);
    runner.settled(T0 + 5 * day - 1).await;
    assert_eq!(state(&app).await, "engaged");
    app.clock.set_ms(T0 + 5 * day);
    runner.settled(T0 + 5 * day).await;
    assert_eq!(state(&app).await, "ghosting");
    let ghosted_at = 5 * day;
    segment(
        &app,
        &s.secret,
        "/v1/page",
        json!({"userId": "u-9", "messageId": "m-2",
        "timestamp": at(T0 + ghosted_at + 1), "name": "Home"}),
    )
    .await;
    app.state.pipeline.drain().await.unwrap();
    assert_eq!(state(&app).await, "engaged");
    let h: Vec<String> = app
        .store()
        .lead_history(s.org, id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_state.as_str().to_string())
        .collect();
    assert_eq!(h, vec!["engaged", "ghosting", "engaged"]);
    runner.shutdown().await;
}

#[tokio::test]
async fn form_submissions_reach_the_pipeline() {
    let app = spawn_app().await;
    let org = app.org("Pipe Form").await;
    let key = app.key(&org, "admin").await;
    let res = app
        .send_json(
            reqwest::Method::POST,
            "/sources",
            &key,
            &json!({"kind": "form", "name": "Landing"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    let endpoint = v["source"]["endpoint"].as_str().unwrap().to_string();
    let path = endpoint.trim_start_matches(&app.base).to_string();
    for (partial, fields) in [
        (true, "first_name=Lea"),
        (false, "first_name=Lea&email=lea%40form.test&phone="),
    ] {
        let body = format!(
            "{fields}&_sid=s-1{}",
            if partial { "&_partial=1" } else { "" }
        );
        let res = app
            .http
            .post(app.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    app.state.pipeline.drain().await.unwrap();
    let feed = app
        .store()
        .lead_feed(
            org.id,
            &LeadFilter {
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        feed.len(),
        1,
        "the partial and the full submission are one person: {feed:?}"
    );
    assert_eq!(feed[0].email, "lea@form.test");
    assert_eq!(feed[0].state, "engaged");
    let kinds = timeline_kinds(&app, org.id, feed[0].profile_id).await;
    assert!(
        kinds.contains(&"form_started".to_string()) && kinds.contains(&"form_submit".to_string()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn the_lead_feed_pages_through_leads_that_share_a_time() {
    // One batch applies all five at the same instant: the cursor breaks
    // the tie by id, so paging shows each lead once.
    let app = spawn_app().await;
    let s = source(&app, "Pipe Pages", "segment").await;
    for i in 0..5 {
        segment(
            &app,
            &s.secret,
            "/v1/track",
            json!({"userId": format!("u-{i}"), "messageId": format!("m-{i}"), "event": "Product Added"}),
        )
        .await;
    }
    app.state.pipeline.drain().await.unwrap();
    let key = app
        .key(&app.store().org(s.org).await.unwrap(), "agent")
        .await;
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/leads?limit=2&before={c}"),
            None => "/leads?limit=2".to_string(),
        };
        let page: Value = app.read(reqwest::Method::GET, &path, &key).await;
        for l in page["leads"].as_array().unwrap() {
            assert!(
                seen.insert(l["profile_id"].as_str().unwrap().to_string()),
                "shown twice: {l}"
            );
        }
        match page["next_before"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "every lead once");
}

#[tokio::test]
async fn a_reopened_lead_ghosts_after_the_threshold_like_any_other() {
    let app = spawn_app().await;
    let s = source(&app, "Pipe Reopen", "segment").await;
    let runner = runner(&app).await;
    segment(
        &app,
        &s.secret,
        "/v1/track",
        json!({"userId": "u-r", "messageId": "m-1", "event": "Checkout Started", "timestamp": at(T0)}),
    )
    .await;
    app.state.pipeline.drain().await.unwrap();
    let id = app
        .store()
        .lead_feed(
            s.org,
            &LeadFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()[0]
        .profile_id;
    let key = app
        .key(&app.store().org(s.org).await.unwrap(), "agent")
        .await;
    for action in ["mark_lost", "reopen"] {
        let res = app
            .send_json(
                reqwest::Method::POST,
                &format!("/leads/{id}/actions"),
                &key,
                &json!({ "action": action }),
            )
            .await;
        assert_eq!(res.status(), 200, "{action}: {}", res.text().await.unwrap());
    }
    let state = || {
        let st = app.store().clone();
        async move { st.lead(s.org, id).await.unwrap().unwrap().state }
    };
    assert_eq!(state().await, "engaged");
    let three_days = 3 * 24 * HOUR;
    app.clock.set_ms(T0 + three_days - 1);
    runner.settled(T0 + three_days - 1).await;
    assert_eq!(state().await, "engaged");
    app.clock.set_ms(T0 + three_days);
    runner.settled(T0 + three_days).await;
    assert_eq!(state().await, "ghosting", "the reopen set a ghosting timer");
    runner.shutdown().await;
}

#[tokio::test]
async fn a_huge_name_from_a_provider_is_cut_to_fit() {
    let app = spawn_app().await;
    let s = source(&app, "Pipe Names", "segment").await;
    // Within the 32 KB a Segment event may have, a hundred times the cap.
    let huge = "N".repeat(20_000);
    segment(&app, &s.secret, "/v1/identify", json!({
        "userId": "u-9", "messageId": "m-huge", "timestamp": at(T0),
        "traits": {"email": "huge@example.com", "firstName": huge, "lastName": "Ok", "company": "C\u{7}o".repeat(1000)}
    }))
    .await;
    let pass = app.state.pipeline.drain().await.unwrap();
    assert_eq!(
        (pass.taken, pass.failed),
        (1, 0),
        "the event is kept, not refused"
    );
    let id = app
        .store()
        .profile_by_email(s.org, "huge@example.com")
        .await
        .unwrap()
        .unwrap();
    let p = app.store().profile(s.org, id).await.unwrap();
    assert_eq!(p.first_name.chars().count(), 200);
    assert_eq!(p.last_name, "Ok");
    // Control characters became spaces; cut at 200 (then trimmed).
    assert!(p.company.starts_with("C oC o") && p.company.chars().count() <= 200);
    assert!(!p.company.contains('\u{7}'));
}
