//! Settings → Sources and Intake rules, over the UI and the API: the
//! delivery log after real signed events, parked events and Retry, an
//! idempotent Replay, intent rules and lead settings validated on save and
//! applied to the next event, and other tenants kept out (404).

use crate::support::*;
use base64::Engine as _;
use bos_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn tenant(app: &TestApp, name: &str, email: &str) -> Tenant {
    app.tenant_with(name, email, Role::Admin).await
}

/// A segment source created through the UI: (id, write key).
async fn ui_segment_source(app: &TestApp, t: &Tenant, name: &str) -> (Uuid, String) {
    let res = app
        .post_signed(
            "/settings/sources",
            &t.browser,
            &[("kind", "segment"), ("name", name), ("secret", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("never shown again"), "{html}");
    let marker = "id=\"new-source-secret\">";
    let i = html.find(marker).unwrap() + marker.len();
    let secret = html[i..].split('<').next().unwrap().to_string();
    let src = app.store().sources(t.org.id).await.unwrap();
    let id = src.iter().find(|s| s.name == name).unwrap().id;
    // The credential is not on the list page afterwards.
    let list = app.get("/settings/sources", &t.browser.cookie).await;
    let list = list.text().await.unwrap();
    assert!(list.contains(name) && !list.contains(&secret));
    (id, secret)
}

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

async fn track(app: &TestApp, write_key: &str, message_id: &str, event: &str, user: &str) {
    let res = app
        .http
        .post(app.url("/v1/track"))
        .header("authorization", basic(write_key))
        .json(&json!({
            "type": "track", "event": event, "messageId": message_id,
            "userId": user, "properties": {"email": format!("{user}@shop.example")},
            "timestamp": "2026-05-28T21:00:00.000Z"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn timeline_len(app: &TestApp, org: Uuid, profile: Uuid) -> usize {
    app.timeline(org, profile).await.len()
}

#[tokio::test]
async fn deliveries_show_replay_is_idempotent_and_parked_events_retry() {
    let app = spawn_app().await;
    let t = tenant(&app, "Deliv Shop", "admin@deliv.example").await;
    let (src, key) = ui_segment_source(&app, &t, "Website").await;
    track(&app, &key, "msg-viewed-1", "Product Viewed", "u-1").await;
    track(&app, &key, "msg-ordered-1", "Order Completed", "u-1").await;
    app.state.pipeline.drain().await.unwrap();

    // The log lists both, processed, linked to the customer.
    let html = app
        .get(&format!("/settings/sources/{src}"), &t.browser.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("msg-viewed-1") && html.contains("msg-ordered-1"));
    assert!(html.contains("status-done"));
    let d = app
        .store()
        .deliveries(t.org.id, Some(src), None, 10)
        .await
        .unwrap();
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d.status == "processed"));
    let profile = d[0].profile_id.expect("resolved to a profile");
    assert!(html.contains(&format!("/customers/{profile}")));
    // The filter: nothing parked here.
    let parked_only = app
        .get(
            &format!("/settings/sources/{src}?status=parked"),
            &t.browser.cookie,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(!parked_only.contains("msg-viewed-1"));

    // The detail: the payload, escaped, and Replay.
    let id = d[0].id;
    let detail = app
        .get(
            &format!("/settings/sources/{src}/deliveries/{id}"),
            &t.browser.cookie,
        )
        .await;
    assert_eq!(detail.status(), StatusCode::OK);
    let detail = detail.text().await.unwrap();
    assert!(detail.contains("&quot;messageId&quot;") || detail.contains("&#34;messageId&#34;"));
    assert!(detail.contains("Replay"));
    let before = timeline_len(&app, t.org.id, profile).await;
    let res = app
        .post_signed(
            &format!("/settings/sources/{src}/deliveries/{id}/replay"),
            &t.browser,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.store()
            .delivery_payload(t.org.id, id)
            .await
            .unwrap()
            .0
            .status,
        "pending"
    );
    app.state.pipeline.drain().await.unwrap();
    assert_eq!(
        app.store()
            .delivery_payload(t.org.id, id)
            .await
            .unwrap()
            .0
            .status,
        "processed"
    );
    assert_eq!(timeline_len(&app, t.org.id, profile).await, before);
    // The same over the API.
    let res = app
        .call(Method::POST, &format!("/deliveries/{id}/replay"), &t.key)
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    app.state.pipeline.drain().await.unwrap();
    assert_eq!(timeline_len(&app, t.org.id, profile).await, before);
    let v: Value = app
        .read(Method::GET, &format!("/deliveries/{id}"), &t.key)
        .await;
    assert_eq!(v["status"], "processed");
    assert_eq!(v["payload"]["type"], "track");
    let v: Value = app
        .read(
            Method::GET,
            &format!("/sources/{src}/deliveries?status=processed&limit=1"),
            &t.key,
        )
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    let res = app
        .call(
            Method::GET,
            &format!("/sources/{src}/deliveries?status=lost"),
            &t.key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("status"));

    // A track without "event" cannot be read: parked, with its error.
    app.store()
        .ingest(
            t.org.id,
            src,
            vec![bos_store::intake::NewInbound {
                external_id: "msg-broken-<1>".into(),
                kind: "track".into(),
                payload: json!({"type": "track", "messageId": "msg-broken-<1>", "userId": "u-2"})
                    .to_string(),
            }],
            T0,
        )
        .await
        .unwrap();
    app.state.pipeline.drain().await.unwrap();
    let parked = app
        .store()
        .deliveries(t.org.id, None, Some("parked"), 10)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    let error = parked[0].error.clone().unwrap();
    let html = app
        .get("/settings/intake/parked", &t.browser.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("msg-broken-&lt;1&gt;") || html.contains("msg-broken-&#60;1&#62;"));
    assert!(!html.contains("msg-broken-<1>"), "escaped");
    assert!(html.contains("could not be read"), "{error}");
    assert!(html.contains("Retry all"));
    let res = app
        .post_signed(
            &format!("/settings/intake/parked/{}/retry", parked[0].id),
            &t.browser,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (d, _) = app
        .store()
        .delivery_payload(t.org.id, parked[0].id)
        .await
        .unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 0));
    // Still unreadable: parked again; Retry all requeues it.
    app.state.pipeline.drain().await.unwrap();
    let res = app
        .post_signed("/settings/intake/parked/retry-all", &t.browser, &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (d, _) = app
        .store()
        .delivery_payload(t.org.id, parked[0].id)
        .await
        .unwrap();
    assert_eq!(d.status, "pending");
    // Without the CSRF token nothing happens.
    let res = app
        .post_form(
            &format!("/settings/sources/{src}/deliveries/{id}/replay"),
            &t.browser.cookie,
            &[],
        )
        .await;
    assert!(res.status().is_client_error());

    // Another tenant: 404 everywhere, and none of these deliveries.
    let b = tenant(&app, "Other Shop", "admin@other.example").await;
    for path in [
        format!("/settings/sources/{src}"),
        format!("/settings/sources/{src}/deliveries/{id}"),
    ] {
        let res = app.get(&path, &b.browser.cookie).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let res = app
        .post_signed(
            &format!("/settings/intake/parked/{}/retry", parked[0].id),
            &b.browser,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (b_src, _) = ui_segment_source(&app, &b, "Theirs").await;
    let res = app
        .get(
            &format!("/settings/sources/{b_src}/deliveries/{id}"),
            &b.browser.cookie,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    for path in [
        format!("/sources/{src}/deliveries"),
        format!("/deliveries/{id}"),
    ] {
        let res = app.call(Method::GET, &path, &b.key).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let res = app
        .call(Method::POST, &format!("/deliveries/{id}/replay"), &b.key)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    for path in ["/settings/intake/parked", "/settings/sources"] {
        let html = app.get(path, &b.browser.cookie).await.text().await.unwrap();
        assert!(!html.contains("msg-broken") && !html.contains(&src.to_string()));
    }
    // Members do not administer intake.
    app.user("member@deliv.example", &t.org, Role::Member).await;
    let m = app.login("member@deliv.example").await;
    let res = app.get("/settings/sources", &m.cookie).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn intent_rules_and_lead_settings_validate_and_apply_to_the_next_event() {
    let app = spawn_app().await;
    let t = tenant(&app, "Rules Shop", "admin@rules.example").await;
    let (_, key) = ui_segment_source(&app, &t, "Website").await;

    // The page shows the default rules in words.
    let html = app
        .get("/settings/intake", &t.browser.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"intent-rules\"") && html.contains("high value ≥ 70"));

    // API: 500 points is refused, naming the rule and the range.
    let mut rules: Value = app
        .read(Method::GET, "/settings/intent-rules", &t.key)
        .await;
    assert!(!rules["rules"].as_array().unwrap().is_empty());
    let bad = json!({"rules": [{"id": "probe", "name": "Probe", "when": {"type": "event_name", "is": "Probe Fired"}, "points": 500}]});
    let res = app
        .send_json(Method::PUT, "/settings/intent-rules", &t.key, &bad)
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let p: Value = res.json().await.unwrap();
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("probe") && detail.contains("-100 to 100"),
        "{detail}"
    );

    // UI: the same error above the form, the text kept.
    let typed = serde_json::to_string_pretty(&bad).unwrap();
    let res = app
        .post_signed("/settings/intake", &t.browser, &[("rules_json", &typed)])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"rules-error\"") && html.contains("-100 to 100"));
    assert!(html.contains("&quot;probe&quot;") || html.contains("&#34;probe&#34;"));
    let res = app
        .post_signed(
            "/settings/intake",
            &t.browser,
            &[("rules_json", "{not json")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("not valid"));

    // A valid rule, saved through the UI, scores the next event.
    let good = json!({"rules": [{"id": "probe", "name": "Probe fired", "when": {"type": "event_name", "is": "Probe Fired"}, "points": 77}],
        "thresholds": {"high_value": 70, "engaged": 40, "window_shopper": 15}});
    let res = app
        .post_signed(
            "/settings/intake",
            &t.browser,
            &[("rules_json", &good.to_string())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = app
        .get("/settings/intake?done=intent", &t.browser.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("value=\"Probe fired\"") && html.contains("value=\"77\""));
    track(&app, &key, "msg-probe-1", "Probe Fired", "u-9").await;
    app.state.pipeline.drain().await.unwrap();
    let d = app
        .store()
        .deliveries(t.org.id, None, None, 1)
        .await
        .unwrap();
    let lead = app
        .store()
        .lead(t.org.id, d[0].profile_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.score, 77);
    // Changed over the API: the next event scores with the new points.
    rules = json!({"rules": [{"id": "probe", "name": "Probe fired", "when": {"type": "event_name", "is": "Probe Fired"}, "points": 33}]});
    let res = app
        .send_json(Method::PUT, "/settings/intent-rules", &t.key, &rules)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    track(&app, &key, "msg-probe-2", "Probe Fired", "u-9").await;
    app.state.pipeline.drain().await.unwrap();
    let lead = app
        .store()
        .lead(t.org.id, d[0].profile_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.score, 33);
    // Reset to defaults.
    let res = app
        .post_signed("/settings/intake/reset", &t.browser, &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let s = app.store().pipeline_settings(t.org.id).await.unwrap();
    assert_eq!(s.intent, bos_core::intent::IntentRules::default());

    // Lead settings: API round trip and clear errors.
    let res = app
        .send_json(Method::PUT, "/settings/leads", &t.key, &json!({"ghost_after_ms": 7_200_000, "max_nudges": 2, "engage_min_score": 20, "abandon_after_ms": 1_800_000})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = app.read(Method::GET, "/settings/leads", &t.key).await;
    assert_eq!(
        v,
        json!({"ghost_after_ms": 7_200_000, "max_nudges": 2, "engage_min_score": 20, "abandon_after_ms": 1_800_000})
    );
    for (body, field) in [
        (
            json!({"ghost_after_ms": 7_200_000, "max_nudges": 2, "engage_min_score": 101, "abandon_after_ms": 1_800_000}),
            "engage_min_score",
        ),
        (
            json!({"ghost_after_ms": 7_200_000, "max_nudges": 2, "engage_min_score": 20, "abandon_after_ms": 8 * 86_400_000i64}),
            "abandon_after_ms",
        ),
        (
            json!({"ghost_after_ms": 5, "max_nudges": 2, "engage_min_score": 20, "abandon_after_ms": 1_800_000}),
            "ghost_after_ms",
        ),
    ] {
        let res = app
            .send_json(Method::PUT, "/settings/leads", &t.key, &body)
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(res.text().await.unwrap().contains(field));
    }
    // The form: hours and minutes.
    let res = app
        .post_signed(
            "/settings/intake/leads",
            &t.browser,
            &[
                ("ghost_hours", "48"),
                ("max_nudges", "4"),
                ("engage_min_score", "25"),
                ("abandon_minutes", "90"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let s = app.store().pipeline_settings(t.org.id).await.unwrap();
    assert_eq!(s.leads.ghost_after_ms, 48 * 3_600_000);
    assert_eq!((s.leads.max_nudges, s.leads.engage_min_score), (4, 25));
    assert_eq!(s.abandon_after_ms, 90 * 60_000);
    let res = app
        .post_signed(
            "/settings/intake/leads",
            &t.browser,
            &[
                ("ghost_hours", "48"),
                ("max_nudges", "4"),
                ("engage_min_score", "25"),
                ("abandon_minutes", "20000"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"leads-error\"") && html.contains("10080 minutes"));
    assert!(html.contains("value=\"20000\""), "the typed value is kept");

    // Another tenant sees its own defaults, never these.
    let b = tenant(&app, "Other Rules", "admin@other-rules.example").await;
    let v: Value = app.read(Method::GET, "/settings/leads", &b.key).await;
    assert_ne!(v["max_nudges"], 4);
}
