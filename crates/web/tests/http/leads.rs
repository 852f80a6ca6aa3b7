//! Intent, lead states and the lead feed over HTTP: real signed Segment calls become leads; the intake
//! dashboard lists them with the reasons for their intent; the API reads
//! and moves them; quick actions leave history; the live stream carries
//! the organization's own leads and never another's.

use crate::support::*;
use base64::Engine as _;
use bos_core::Role;
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

struct Shop {
    org: bos_store::Org,
    write_key: String,
    api_key: String,
    browser: Browser,
    email: String,
}

async fn shop(app: &TestApp, name: &str, slug: &str) -> Shop {
    let org = app.org(name).await;
    let api_key = app.key(&org, "admin").await;
    let res = app.post_source(&api_key, "segment", "Website").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    let email = format!("owner@{slug}.example");
    app.user(&email, &org, Role::Owner).await;
    let browser = app.login(&email).await;
    Shop {
        org,
        write_key: v["secret"].as_str().unwrap().to_string(),
        api_key,
        browser,
        email,
    }
}

/// A `track` call as analytics.js sends it, signed with the write key.
async fn track(app: &TestApp, s: &Shop, msg: &str, who: (&str, &str), event: &str, props: Value) {
    let body = json!({
        "type": "track",
        "event": event,
        "messageId": msg,
        "userId": who.0,
        "properties": props,
        "context": {"traits": {"email": who.0, "name": who.1}},
    });
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", s.write_key))
    );
    let res = app
        .http
        .post(app.url("/v1/track"))
        .header("authorization", auth)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
}

async fn drain(app: &TestApp) {
    let pass = app.state.pipeline.drain().await.unwrap();
    assert_eq!(pass.failed, 0, "{pass:?}");
}

async fn page(app: &TestApp, path: &str, b: &Browser) -> String {
    let res = app.get(path, &b.cookie).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

#[tokio::test]
async fn leads_show_on_the_dashboard_the_api_and_the_profile_and_move_with_quick_actions() {
    let app = spawn_app().await;
    let a = shop(&app, "Lead Shop", "leadshop").await;
    let b = shop(&app, "Other Shop", "othershop").await;
    track(
        &app,
        &a,
        "m-1",
        ("ann@customer.example", "Ann Leadbetter"),
        "Checkout Started",
        json!({"value": 120.0, "currency": "USD"}),
    )
    .await;
    drain(&app).await;

    // The API has the lead, with the rules that fired.
    let (st, v) = app.api_json(Method::GET, "/leads", &a.api_key, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let leads = v["leads"].as_array().unwrap();
    assert_eq!(leads.len(), 1, "{v}");
    let lead = &leads[0];
    assert_eq!(lead["display_name"], "Ann Leadbetter");
    let id: Uuid = lead["profile_id"].as_str().unwrap().parse().unwrap();
    let points: Vec<i64> = lead["fired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["points"].as_i64().unwrap())
        .collect();
    assert!(points.contains(&50) && points.contains(&20), "{lead}");
    assert_eq!(lead["score"], 70);
    assert_eq!(lead["category"], "high_value");
    let why = lead["fired"][0]["why"].as_str().unwrap().to_string();

    // The dashboard lists it with the intent badge and its reasons.
    let html = page(&app, "/intake", &a.browser).await;
    assert!(html.contains("Ann Leadbetter"));
    assert!(html.contains(&format!("href=\"/customers/{id}\"")));
    assert!(html.contains("intent intent-high_value"));
    let title_start = html
        .find("class=\"intent intent-high_value\" title=\"")
        .unwrap();
    let title = &html[title_start..title_start + 400];
    assert!(title.contains("+50 · "), "{title}");
    assert!(title.contains("+20"), "{title}");
    assert!(html.contains("data-stream=\"/intake/stream\""));
    assert!(html.contains("data-count-state=\"engaged\""));
    // Filters: a state it is not in hides it; its category shows it.
    assert!(!page(&app, "/intake?state=lost", &a.browser)
        .await
        .contains("Ann Leadbetter"));
    assert!(page(&app, "/intake?category=high_value", &a.browser)
        .await
        .contains("Ann Leadbetter"));

    // The profile page shows the lead: badge, reasons, history.
    let profile = page(&app, &format!("/customers/{id}"), &a.browser).await;
    assert!(profile.contains("id=\"lead-panel\""));
    assert!(profile.contains("id=\"intent-badge\""));
    assert!(profile.contains("id=\"intent-reasons\""));
    assert!(profile.contains(&why.replace('"', "&#34;")) || profile.contains(&why));
    assert!(profile.contains("Checkout started"), "timeline filter kind");

    // Quick actions on the page: mark converted, tag, assign to me. (A
    // minute later: history is ordered by time.)
    app.clock.advance_ms(60_000);
    let act = |action: &'static str, extra: Vec<(&'static str, &'static str)>| {
        let mut form = vec![
            ("_csrf", a.browser.csrf.clone()),
            ("action", action.to_string()),
            ("back", "/intake?state=engaged&evil=https://x".to_string()),
        ];
        form.extend(extra.into_iter().map(|(k, v)| (k, v.to_string())));
        app.http
            .post(app.url(&format!("/intake/{id}/action")))
            .header(COOKIE, format!("__Host-bos_session={}", a.browser.cookie))
            .form(&form)
            .send()
    };
    let res = act("mark_lost", vec![]).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/intake?state=engaged&done=lost");
    let res = act("tag", vec![("tag", " vip ")]).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = act("assign", vec![("assignee", "me")]).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = act("assign", vec![("assignee", "stranger@nowhere.example")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, d) = app
        .api_json(Method::GET, &format!("/leads/{id}"), &a.api_key, None)
        .await;
    assert_eq!(d["lead"]["state"], "lost", "{d:#}");
    assert_eq!(d["lead"]["tags"], json!(["vip"]));
    assert_eq!(d["lead"]["assignee"], a.email);
    let last = d["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["to"], "lost", "{:#}", d["history"]);
    assert_eq!(last["actor"], a.email);
    let profile = page(&app, &format!("/customers/{id}"), &a.browser).await;
    assert!(profile.contains("id=\"lead-history\""));

    // The API's actions: reopen, then a move that does not apply, then bad input.
    app.clock.advance_ms(60_000);
    let path = format!("/leads/{id}/actions");
    let (st, d) = app
        .api_json(
            Method::POST,
            &path,
            &a.api_key,
            Some(json!({"action": "reopen"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["lead"]["state"], "engaged");
    assert_eq!(
        d["history"].as_array().unwrap().last().unwrap()["actor"],
        "api key test"
    );
    let (st, _) = app
        .api_json(
            Method::POST,
            &path,
            &a.api_key,
            Some(json!({"action": "reopen"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, d) = app
        .api_json(
            Method::POST,
            &path,
            &a.api_key,
            Some(json!({"action": "mark_converted"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(d["lead"]["state"], "converted");
    // Converted is final: the row offers no moves.
    let html = page(&app, "/intake", &a.browser).await;
    assert!(!html.contains("value=\"mark_lost\""));
    let (st, p) = app
        .api_json(
            Method::POST,
            &path,
            &a.api_key,
            Some(json!({"action": "win"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        p["detail"].as_str().unwrap().contains("mark_converted"),
        "{p}"
    );
    let (st, p) = app
        .api_json(
            Method::POST,
            &path,
            &a.api_key,
            Some(json!({"verb": "win"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["detail"].as_str().unwrap().contains("\"action\""), "{p}");
    let (st, _) = app
        .api_json(
            Method::POST,
            &path,
            &a.api_key,
            Some(json!({"action": "tag", "tag": ""})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, d) = app
        .api_json(
            Method::POST,
            &path,
            &a.api_key,
            Some(json!({"action": "assign", "assignee": null})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(d["lead"]["assignee"], Value::Null);
    let (st, _) = app
        .api_json(Method::GET, "/leads?state=sleeping", &a.api_key, None)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let ingest = app.key(&a.org, "ingest").await;
    let (st, _) = app.api_json(Method::GET, "/leads", &ingest, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // The other organization never sees it.
    let (st, _) = app
        .api_json(Method::GET, &format!("/leads/{id}"), &b.api_key, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .api_json(
            Method::POST,
            &path,
            &b.api_key,
            Some(json!({"action": "mark_lost"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = app.api_json(Method::GET, "/leads", &b.api_key, None).await;
    assert_eq!(v["leads"], json!([]));
    assert!(!page(&app, "/intake", &b.browser)
        .await
        .contains("Ann Leadbetter"));
    let res = app
        .post_signed(
            &format!("/intake/{id}/action"),
            &b.browser,
            &[("action", "mark_lost")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (_, d) = app
        .api_json(Method::GET, &format!("/leads/{id}"), &a.api_key, None)
        .await;
    assert_eq!(d["lead"]["state"], "converted");
}

/// Reads the stream until `needle` has arrived; bounded, never a sleep.
async fn read_until(res: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} on the stream; got {seen}"))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn open_stream(app: &TestApp, b: &Browser) -> (reqwest::Response, String) {
    open_stream_on(app, &app.base, b).await
}

/// The dashboard's stream as served by the server at `base`.
async fn open_stream_on(app: &TestApp, base: &str, b: &Browser) -> (reqwest::Response, String) {
    let mut res = app
        .http
        .get(format!("{base}/intake/stream"))
        .header(COOKIE, format!("__Host-bos_session={}", b.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    read_until(&mut res, &mut seen, "event: ready").await;
    (res, seen)
}

#[tokio::test]
async fn the_stream_carries_the_organizations_own_leads_only() {
    let app = spawn_app().await;
    let a = shop(&app, "Stream Shop", "streamshop").await;
    let b = shop(&app, "Quiet Shop", "quietshop").await;
    // Signed out: no stream.
    let res = app
        .http
        .get(app.url("/intake/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let (mut sa, mut seen_a) = open_stream(&app, &a.browser).await;
    let (mut sb, mut seen_b) = open_stream(&app, &b.browser).await;

    track(
        &app,
        &a,
        "s-1",
        ("zed@secret-a.example", "Zed Streamer"),
        "Product Added",
        json!({"value": 30.0}),
    )
    .await;
    drain(&app).await;
    read_until(&mut sa, &mut seen_a, "Zed Streamer").await;
    assert!(seen_a.contains("event: lead"), "{seen_a}");
    let data = seen_a
        .lines()
        .find(|l| l.starts_with("data: {") && l.contains("Zed Streamer"))
        .unwrap();
    let m: Value = serde_json::from_str(data.trim_start_matches("data: ")).unwrap();
    assert_eq!(m["created"], true);
    assert!(m["row"].as_str().unwrap().starts_with("<tr class=\"lead\""));
    let id = m["id"].as_str().unwrap().to_string();
    assert!(m["totals"]["states"]
        .as_object()
        .unwrap()
        .values()
        .any(|n| n == 1));

    // B's stream: the next thing on it is B's own lead, not A's.
    track(
        &app,
        &b,
        "s-2",
        ("bea@b.example", "Bea Quiet"),
        "Product Added",
        json!({}),
    )
    .await;
    drain(&app).await;
    read_until(&mut sb, &mut seen_b, "Bea Quiet").await;
    assert!(!seen_b.contains("Zed Streamer"));
    assert!(!seen_b.contains("secret-a"));
    assert!(!seen_b.contains(&id));

    // A quick action reaches the stream too.
    let res = app
        .post_signed(
            &format!("/intake/{id}/action"),
            &a.browser,
            &[("action", "mark_lost")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    read_until(&mut sa, &mut seen_a, "\"state\":\"lost\"").await;
    assert!(!seen_a.contains("Bea Quiet"));

    // Signed out: the stream ends before it carries anything more.
    let res = app.post_signed("/logout", &a.browser, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    track(
        &app,
        &a,
        "s-3",
        ("late@secret-a.example", "Late Lead"),
        "Product Added",
        json!({}),
    )
    .await;
    drain(&app).await;
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        let mut rest = String::new();
        while let Some(chunk) = sa.chunk().await.unwrap() {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    })
    .await
    .expect("the stream ends after sign-out");
    assert!(!rest.contains("Late Lead"), "{rest}");
}

/// The `lead` event on a stream whose data mentions `needle`.
fn lead_data(seen: &str, needle: &str) -> Value {
    let data = seen
        .lines()
        .find(|l| l.starts_with("data: {") && l.contains(needle))
        .unwrap_or_else(|| panic!("no lead event with {needle:?} in {seen}"));
    serde_json::from_str(data.trim_start_matches("data: ")).unwrap()
}

#[tokio::test]
async fn a_lead_ingested_on_one_replica_reaches_the_dashboards_another_serves() {
    let app = spawn_app().await;
    if app.db.engine_name() != "postgres" {
        // One server process per SQLite file: there is no other replica
        // to reach (the test above covers the stream in one process).
        return;
    }
    app.state.bus.start().await.unwrap();
    let (peer, _peer_state) = app.spawn_peer().await;
    let a = shop(&app, "Replica Shop", "replicashop").await;
    let b = shop(&app, "Other Replica Shop", "otherreplica").await;

    // A's dashboard on both servers; B's on both too.
    let (mut a_peer, mut seen_a_peer) = open_stream_on(&app, &peer, &a.browser).await;
    let (mut a_here, mut seen_a_here) = open_stream(&app, &a.browser).await;
    let (mut b_peer, mut seen_b_peer) = open_stream_on(&app, &peer, &b.browser).await;
    let (mut b_here, mut seen_b_here) = open_stream(&app, &b.browser).await;

    // Ingested and applied on the first server…
    track(
        &app,
        &a,
        "r-1",
        ("ann@replica-a.example", "Ann Replica"),
        "Product Added",
        json!({"value": 40.0}),
    )
    .await;
    drain(&app).await;
    // …shows on the dashboard the peer serves, rendered there.
    read_until(&mut a_peer, &mut seen_a_peer, "Ann Replica").await;
    let m = lead_data(&seen_a_peer, "Ann Replica");
    assert_eq!(m["created"], true);
    assert!(m["row"].as_str().unwrap().starts_with("<tr class=\"lead\""));
    let id = m["id"].as_str().unwrap().to_string();
    read_until(&mut a_here, &mut seen_a_here, "Ann Replica").await;

    // A quick action on the peer reaches the first server's dashboard.
    let res = app
        .http
        .post(format!("{peer}/intake/{id}/action"))
        .header(COOKIE, format!("__Host-bos_session={}", a.browser.cookie))
        .form(&[("_csrf", a.browser.csrf.as_str()), ("action", "mark_lost")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    read_until(&mut a_here, &mut seen_a_here, "\"state\":\"lost\"").await;
    read_until(&mut a_peer, &mut seen_a_peer, "\"state\":\"lost\"").await;

    // B's dashboards, on either server: the next lead on them is B's own.
    track(
        &app,
        &b,
        "r-2",
        ("bo@replica-b.example", "Bo Other"),
        "Product Added",
        json!({}),
    )
    .await;
    drain(&app).await;
    read_until(&mut b_peer, &mut seen_b_peer, "Bo Other").await;
    read_until(&mut b_here, &mut seen_b_here, "Bo Other").await;
    for seen in [&seen_b_peer, &seen_b_here] {
        assert!(!seen.contains("Ann Replica"), "{seen}");
        assert!(!seen.contains("replica-a"), "{seen}");
        assert!(!seen.contains(&id), "{seen}");
        assert!(!seen.contains("\"state\":\"lost\""), "{seen}");
    }
}

/// For design review, not CI: renders a filled dashboard to the file named
/// by BOS_RENDER_INTAKE, stylesheets inlined, to open in a browser.
#[tokio::test]
#[ignore]
async fn render_intake_for_review() {
    let Ok(out) = std::env::var("BOS_RENDER_INTAKE") else {
        return;
    };
    let app = spawn_app().await;
    let a = shop(&app, "Review Shop", "reviewshop").await;
    let people = [
        (
            "ann@x.example",
            "Ann Leadbetter",
            "Checkout Started",
            json!({"value": 240.0}),
        ),
        (
            "bo@x.example",
            "Bo Carter",
            "Product Added",
            json!({"value": 35.5}),
        ),
        ("cy@x.example", "Cy Young", "Product Viewed", json!({})),
        (
            "di@x.example",
            "Di Prince",
            "Order Completed",
            json!({"revenue": 89.0}),
        ),
        ("ed@x.example", "Ed Norton", "Signed Up", json!({})),
        (
            "flo@x.example",
            "Flo Rida",
            "Checkout Started",
            json!({"value": 64.0}),
        ),
    ];
    for (i, (e, n, ev, p)) in people.iter().enumerate() {
        app.clock.advance_ms(90_000);
        track(&app, &a, &format!("r-{i}"), (e, n), ev, p.clone()).await;
        drain(&app).await;
    }
    let (_, v) = app.api_json(Method::GET, "/leads", &a.api_key, None).await;
    let last = v["leads"][5]["profile_id"].as_str().unwrap().to_string();
    app.post_signed(
        &format!("/intake/{last}/action"),
        &a.browser,
        &[("action", "mark_lost")],
    )
    .await;
    app.clock.advance_ms(120_000);
    let first = v["leads"][0]["profile_id"].as_str().unwrap().to_string();
    for (path, file) in [
        ("/intake".to_string(), out.clone()),
        (format!("/customers/{first}"), format!("{out}.profile.html")),
    ] {
        let mut html = page(&app, &path, &a.browser).await;
        for css in ["app.css", "leads.css"] {
            let url = bos_web::assets::url(css);
            let res = app.http.get(app.url(url)).send().await.unwrap();
            let body = res.text().await.unwrap();
            html = html.replace(
                &format!("<link rel=\"stylesheet\" href=\"{url}\">"),
                &format!("<style>{body}</style>"),
            );
        }
        std::fs::write(file, html).unwrap();
    }
}
