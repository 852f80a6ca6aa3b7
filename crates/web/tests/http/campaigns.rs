//! Campaigns over the API and the UI: creating and editing,
//! every validation error as a 422 with its sentence, previews rendered for
//! real customers, funnels, status transitions, archiving, the outbox, and
//! tenant isolation. Customers enter campaigns the real way: a Shopify
//! checkout goes through the pipeline and its abandonment timer fires.

use crate::intake::{shopify_headers, shopify_source};
use crate::support::*;
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::nudge::{Campaign, CampaignError};
use bos_core::Role;
use bos_engine::Runner;
use bos_store::identity::{IdentifyInput, Traits};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn cart_campaign() -> Value {
    json!({
        "name": "Cart reminder",
        "trigger": {"kind": "checkout_abandoned"},
        "steps": [
            {"delay_ms": HOUR, "channel": "email", "variants": [
                {"name": "A", "weight": 50, "subject": "{{ first_name }}, your cart is waiting",
                 "body": "Hi {{ first_name }}, finish here: {{ cart_url }} ({{ cart_total }})"},
                {"name": "B", "weight": 50, "subject": "Still thinking, {{ first_name }}?",
                 "body": "Your cart: {{ cart_url }}"}
            ]},
            {"delay_ms": DAY, "channel": "sms", "variants": [
                {"name": "A", "weight": 1, "subject": null, "body": "{{ first_name }}, your cart: {{ cart_url }}"}
            ]}
        ],
        "stop": {"converted": true, "replied": true, "opted_out": true},
        "quiet_hours": null,
        "max_attempts": 5,
        "reentry_cooldown_ms": 30 * DAY
    })
}

async fn problem(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    (status, v["detail"].as_str().unwrap_or_default().to_string())
}

async fn create_api(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.send_json(Method::POST, "/campaigns", key, body).await
}

async fn created_id(app: &TestApp, key: &str, body: &Value) -> Uuid {
    let res = create_api(app, key, body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    v["id"].as_str().unwrap().parse().unwrap()
}

/// A tenant with a Shopify source, an admin key and owner session, and an
/// active cart campaign; `shoppers` abandon a checkout each and so enter
/// the campaign. Returns (org, key, owner, campaign id, profile ids) and
/// the job runner (pipeline and nudge sender), settled at the abandonment.
async fn shop_with_enrolled(
    app: &TestApp,
    org_name: &str,
    shoppers: &[&str],
) -> (Uuid, String, Browser, Uuid, Vec<Uuid>, Runner) {
    let s = shopify_source(app, org_name, "shpss_campaigns").await;
    let org = app.store().org(s.org).await.unwrap();
    let key = app.key(&org, "admin").await;
    let owner_email = format!("owner@{}.example", s.org.simple());
    app.user(&owner_email, &org, Role::Owner).await;
    let owner = app.login(&owner_email).await;
    let mut body = cart_campaign();
    body["status"] = json!("active");
    let campaign = created_id(app, &key, &body).await;
    let runner = crate::pipeline::runner(app).await;
    let path = format!("/hooks/shopify/{}", s.id);
    let start = app.state.now();
    for (n, email) in shoppers.iter().enumerate() {
        let id = 500 + n as u64;
        let token = format!("tok-{n}");
        let body = serde_json::to_vec(&json!({
            "id": id, "token": token, "cart_token": format!("cart-{n}"), "email": email,
            "created_at": bos_web::api::rfc3339(start), "updated_at": bos_web::api::rfc3339(start),
            "currency": "USD", "completed_at": null, "subtotal_price": "120.00", "total_price": "120.00",
            "line_items": [{"product_id": 1, "variant_id": 2, "title": "Tee", "quantity": 1, "price": "120.00"}],
            "customer": {"id": id + 1000, "email": email, "first_name": "Jo", "last_name": "Park"},
            "abandoned_checkout_url": format!("https://shop.test/recover/{token}")
        }))
        .unwrap();
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
    app.clock.set_ms(start + HOUR);
    runner.settled(start + HOUR).await;
    let mut profiles = Vec::new();
    for email in shoppers {
        let p = app
            .store()
            .profile_by_email(s.org, email)
            .await
            .unwrap()
            .expect("the shopper is a customer");
        profiles.push(p);
    }
    (s.org, key, owner, campaign, profiles, runner)
}

async fn identify(app: &TestApp, org: Uuid, email: &str, first: &str) -> Uuid {
    app.store()
        .identify(
            org,
            &IdentityRules::default(),
            &IdentifyInput {
                identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
                traits: Traits {
                    first_name: first.into(),
                    last_name: String::new(),
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

/// An org with an owner session and an admin key.
async fn tenant(app: &TestApp, name: &str) -> (Uuid, String, Browser) {
    let t = app.tenant(name).await;
    (t.org.id, t.key, t.browser)
}

/// A full builder form: two steps, the first with an A/B split.
fn builder_form(csrf: &str, name: &str, status: &str) -> Vec<(String, String)> {
    [
        ("_csrf", csrf),
        ("form", "builder"),
        ("name", name),
        ("trigger", "checkout_abandoned"),
        ("event_name", ""),
        ("steps", "2"),
        ("s0_delay", "1"),
        ("s0_unit", "hours"),
        ("s0_channel", "email"),
        ("s0_a_subject", "{{ first_name }}, your cart"),
        (
            "s0_a_body",
            "Hi {{ first_name }}, finish here: {{ cart_url }}",
        ),
        ("s0_b_on", "1"),
        ("s0_split", "70"),
        ("s0_b_subject", "Still there?"),
        ("s0_b_body", "Your cart: {{ cart_url }}"),
        ("s1_delay", "2"),
        ("s1_unit", "days"),
        ("s1_channel", "sms"),
        ("s1_a_body", "{{ first_name }}: {{ cart_url }}"),
        ("s1_split", "50"),
        ("quiet", "on"),
        ("quiet_start", "21:00"),
        ("quiet_end", "08:00"),
        ("stop_converted", "1"),
        ("stop_replied", "1"),
        ("stop_opted_out", "1"),
        ("max_attempts", "5"),
        ("cooldown_days", "30"),
        ("status", status),
        ("op", "save"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn set(form: &mut Vec<(String, String)>, k: &str, v: &str) {
    form.retain(|(a, _)| a != k);
    form.push((k.into(), v.into()));
}

async fn post_pairs(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(String, String)],
) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .header(
            reqwest::header::COOKIE,
            format!("__Host-bos_session={cookie}"),
        )
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_campaign_created_over_the_api_is_listed_with_a_zero_funnel_per_step() {
    let app = spawn_app().await;
    let (org, key, owner) = tenant(&app, "Camp Api").await;
    let id = created_id(&app, &key, &cart_campaign()).await;
    let c = app.store().campaign(org, id).await.unwrap().unwrap();
    assert_eq!(c.status, bos_store::nudge::CampaignStatus::Draft);
    assert_eq!(c.campaign.steps.len(), 2);
    let one: Value = app
        .read(Method::GET, &format!("/campaigns/{id}"), &key)
        .await;
    assert_eq!(one["name"], "Cart reminder");
    assert_eq!(one["status"], "draft");
    assert_eq!(one["trigger"]["kind"], "checkout_abandoned");
    let list: Value = app.read(Method::GET, "/campaigns", &key).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["stats"]["sent"], 0);
    assert_eq!(list[0]["stats"]["active"], 0);
    let f: Value = app
        .read(Method::GET, &format!("/campaigns/{id}/funnel"), &key)
        .await;
    let steps = f["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "one row per step: {f}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i as i64);
        for k in [
            "sent",
            "delivered",
            "opened",
            "clicked",
            "replied",
            "converted",
            "failed",
        ] {
            assert_eq!(s[k], 0, "{k} of step {i}");
        }
    }
    // The UI lists it and shows its page with a funnel row per step.
    let html = app
        .get("/campaigns", &owner.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Cart reminder") && html.contains("cstatus-draft"));
    let res = app.get(&format!("/campaigns/{id}"), &owner.cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert_eq!(html.matches("<tr data-step=").count(), 2);
    // Edit over the API: the name and the trigger columns follow.
    let mut body = cart_campaign();
    body["name"] = json!("Cart reminder v2");
    body["trigger"] = json!({"kind": "event", "name": "Trial Started"});
    let res = app
        .send_json(Method::PUT, &format!("/campaigns/{id}"), &key, &body)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let c = app.store().campaign(org, id).await.unwrap().unwrap();
    assert_eq!(c.campaign.name, "Cart reminder v2");
    // A campaign of nobody: PUT and GET 404.
    let res = app
        .send_json(
            Method::PUT,
            &format!("/campaigns/{}", Uuid::now_v7()),
            &key,
            &body,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Whether an error is the one a case must produce.
type Is = fn(&CampaignError) -> bool;

/// A broken campaign and the error it must produce.
fn broken() -> Vec<(Value, Is)> {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = cart_campaign();
        f(&mut c);
        c
    };
    let variant = |body: &str| json!({"name": "A", "weight": 1, "subject": "Hi", "body": body});
    vec![
        (with(&|c| c["name"] = json!("  ")), |e| {
            matches!(e, CampaignError::EmptyName)
        }),
        (with(&|c| c["name"] = json!("x".repeat(101))), |e| {
            matches!(e, CampaignError::NameTooLong { .. })
        }),
        (
            with(&|c| c["trigger"] = json!({"kind": "event", "name": ""})),
            |e| matches!(e, CampaignError::EmptyEventName),
        ),
        (with(&|c| c["steps"] = json!([])), |e| {
            matches!(e, CampaignError::NoSteps)
        }),
        (
            with(&|c| {
                let s = c["steps"][1].clone();
                c["steps"] = json!(vec![s; 21]);
            }),
            |e| matches!(e, CampaignError::TooManySteps { .. }),
        ),
        (with(&|c| c["steps"][0]["delay_ms"] = json!(1000)), |e| {
            matches!(e, CampaignError::DelayOutOfRange { step: 1, .. })
        }),
        (with(&|c| c["steps"][1]["variants"] = json!([])), |e| {
            matches!(e, CampaignError::NoVariants { step: 2 })
        }),
        (
            with(&|c| {
                c["steps"][0]["variants"] = json!((0..5)
                    .map(|i| json!({"name": format!("V{i}"), "weight": 1, "subject": "s", "body": "b"}))
                    .collect::<Vec<_>>())
            }),
            |e| matches!(e, CampaignError::TooManyVariants { .. }),
        ),
        (
            with(&|c| c["steps"][0]["variants"][1]["name"] = json!("")),
            |e| {
                matches!(
                    e,
                    CampaignError::EmptyVariantName {
                        step: 1,
                        variant: 2
                    }
                )
            },
        ),
        (
            with(&|c| c["steps"][0]["variants"][1]["name"] = json!("A")),
            |e| matches!(e, CampaignError::DuplicateVariantName { .. }),
        ),
        (
            with(&|c| {
                c["steps"][0]["variants"][0]["weight"] = json!(0);
                c["steps"][0]["variants"][1]["weight"] = json!(0);
            }),
            |e| matches!(e, CampaignError::ZeroTotalWeight { step: 1 }),
        ),
        (
            with(&|c| c["steps"][0]["variants"][0]["subject"] = json!(null)),
            |e| {
                matches!(
                    e,
                    CampaignError::MissingSubject {
                        step: 1,
                        variant: 1
                    }
                )
            },
        ),
        (
            with(&|c| c["steps"][0]["variants"][0]["body"] = json!(" ")),
            |e| {
                matches!(
                    e,
                    CampaignError::EmptyBody {
                        step: 1,
                        variant: 1
                    }
                )
            },
        ),
        (
            with(&|c| c["steps"][0]["variants"] = json!([variant("Hi {{ favourite_colour }}")])),
            |e| matches!(e, CampaignError::Template { step: 1, .. }),
        ),
        (
            with(&|c| c["steps"][0]["variants"] = json!([variant("Hi {{ first_name")])),
            |e| matches!(e, CampaignError::Template { .. }),
        ),
        (
            with(&|c| c["quiet_hours"] = json!({"start_minute": 1440, "end_minute": 60})),
            |e| matches!(e, CampaignError::QuietMinuteOutOfRange { .. }),
        ),
        (
            with(&|c| c["quiet_hours"] = json!({"start_minute": 60, "end_minute": 60})),
            |e| matches!(e, CampaignError::QuietHoursEmpty),
        ),
        (with(&|c| c["max_attempts"] = json!(0)), |e| {
            matches!(e, CampaignError::AttemptsOutOfRange(0))
        }),
        (
            with(&|c| c["reentry_cooldown_ms"] = json!(400 * DAY)),
            |e| matches!(e, CampaignError::CooldownOutOfRange(_)),
        ),
    ]
}

#[tokio::test]
async fn every_validation_error_is_a_422_with_its_sentence_and_nothing_is_saved() {
    let app = spawn_app().await;
    let (org, key, owner) = tenant(&app, "Camp Invalid").await;
    let cases = broken();
    assert_eq!(cases.len(), 19);
    for (body, is) in &cases {
        // The core's own verdict, so the expected sentence is the real one.
        let c: Campaign = serde_json::from_value(body.clone()).unwrap();
        let err = c.validate(&[]).expect_err("the case is invalid");
        assert!(is(&err), "{err:?} for {body}");
        let (status, detail) = problem(create_api(&app, &key, body).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let want = err.to_string();
        assert!(
            detail.to_lowercase().contains(&want[1..].to_lowercase()),
            "{detail:?} should say {want:?}"
        );
    }
    assert!(app.store().campaigns(org).await.unwrap().is_empty());
    // A body that is not a campaign at all, and a bad status.
    let (status, detail) = problem(create_api(&app, &key, &json!({"name": "x"})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("could not be read"), "{detail}");
    let mut body = cart_campaign();
    body["status"] = json!("running");
    let (status, detail) = problem(create_api(&app, &key, &body).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        detail.contains("draft, active, paused or archived"),
        "{detail}"
    );

    // The builder: an unknown template variable is refused at save, the
    // page comes back 422 with the sentence and everything typed.
    let mut form = builder_form(&owner.csrf, "Typed name kept", "draft");
    set(&mut form, "s1_a_body", "Hey {{ favourite_colour }}");
    let res = post_pairs(&app, "/campaigns", &owner.cookie, &form).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"campaign-error\""), "error shown");
    assert!(
        html.contains("favourite_colour"),
        "the sentence names the variable"
    );
    assert!(html.contains("value=\"Typed name kept\""));
    assert!(html.contains("Hey {{ favourite_colour }}"));
    assert!(html.contains("Still there?"), "variant B kept");
    // Form-only errors: a delay that is not a number, a bad quiet time.
    for (k, v, says) in [
        ("s0_delay", "soon", "is not a number"),
        ("quiet_start", "25:00", "is not a time"),
        ("max_attempts", "many", "not a whole number"),
        ("name", "", "has no name"),
    ] {
        let mut form = builder_form(&owner.csrf, "Form errors", "draft");
        set(&mut form, k, v);
        let res = post_pairs(&app, "/campaigns", &owner.cookie, &form).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{k}");
        let html = res.text().await.unwrap();
        assert!(html.contains(says), "{k}: {says}");
    }
    assert!(app.store().campaigns(org).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_builder_adds_and_removes_steps_keeping_what_was_typed_and_saves() {
    let app = spawn_app().await;
    let (org, _key, owner) = tenant(&app, "Camp Builder").await;
    let res = app.get("/campaigns/new", &owner.cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"s0_delay\"") && !html.contains("name=\"s1_delay\""));
    for v in ["first_name", "cart_url", "cart_total", "unsubscribe_url"] {
        assert!(html.contains(v), "variable help lists {v}");
    }
    let mut form = builder_form(&owner.csrf, "Two then three", "active");
    set(&mut form, "op", "add_step");
    let res = post_pairs(&app, "/campaigns", &owner.cookie, &form).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"s2_delay\""), "a third step");
    assert!(html.contains("value=\"Two then three\""));
    assert!(html.contains("Hi {{ first_name }}, finish here: {{ cart_url }}"));
    assert!(html.contains("name=\"steps\" value=\"3\""));
    set(&mut form, "op", "remove_step");
    let res = post_pairs(&app, "/campaigns", &owner.cookie, &form).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"steps\" value=\"1\"") && !html.contains("name=\"s1_delay\""));
    assert!(app.store().campaigns(org).await.unwrap().is_empty());
    // Save: a redirect to the new campaign's page.
    set(&mut form, "op", "save");
    let res = post_pairs(&app, "/campaigns", &owner.cookie, &form).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = location(&res);
    let id: Uuid = loc
        .trim_start_matches("/campaigns/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let c = app.store().campaign(org, id).await.unwrap().unwrap();
    assert_eq!(c.status, bos_store::nudge::CampaignStatus::Active);
    let cm = &c.campaign;
    assert_eq!(cm.steps.len(), 2);
    assert_eq!(cm.steps[0].delay_ms, HOUR);
    assert_eq!(cm.steps[1].delay_ms, 2 * DAY);
    assert_eq!(cm.steps[1].channel, bos_core::nudge::Channel::Sms);
    assert_eq!(cm.steps[1].variants[0].subject, None);
    let w: Vec<u32> = cm.steps[0].variants.iter().map(|v| v.weight).collect();
    assert_eq!(w, vec![70, 30]);
    assert_eq!(
        cm.quiet_hours,
        Some(bos_core::nudge::QuietHours {
            start_minute: 21 * 60,
            end_minute: 8 * 60
        })
    );
    assert_eq!(cm.reentry_cooldown_ms, 30 * DAY);
    // Its page shows the form filled in; saving an edit keeps the status.
    let html = app.get(&loc, &owner.cookie).await.text().await.unwrap();
    assert!(html.contains("value=\"Two then three\"") && html.contains("value=\"70\""));
    let mut edit = builder_form(&owner.csrf, "Renamed", "draft");
    set(&mut edit, "stop_replied", "");
    let res = post_pairs(&app, &format!("/campaigns/{id}"), &owner.cookie, &edit).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let c = app.store().campaign(org, id).await.unwrap().unwrap();
    assert_eq!(c.campaign.name, "Renamed");
    assert!(!c.campaign.stop.replied && c.campaign.stop.converted);
    assert_eq!(c.status, bos_store::nudge::CampaignStatus::Active);
    // Members see campaigns but cannot build or change them.
    let o = app.store().org(org).await.unwrap();
    app.user("member@camp-builder.example", &o, Role::Member)
        .await;
    let m = app.login("member@camp-builder.example").await;
    assert_eq!(
        app.get("/campaigns", &m.cookie).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.get(&loc, &m.cookie).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/campaigns/new", &m.cookie).await.status(),
        StatusCode::FORBIDDEN
    );
    let res = post_pairs(
        &app,
        "/campaigns",
        &m.cookie,
        &builder_form(&m.csrf, "No", "draft"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .post_signed(
            &format!("/campaigns/{id}/status"),
            &m,
            &[("status", "paused")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Without the CSRF token nothing is saved.
    let mut no_csrf = builder_form("", "Forged", "active");
    no_csrf.retain(|(k, _)| k != "_csrf");
    let res = post_pairs(&app, "/campaigns", &owner.cookie, &no_csrf).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.store().campaigns(org).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_preview_renders_for_a_real_customer_or_names_the_missing_value() {
    let app = spawn_app().await;
    let (org, key, owner) = tenant(&app, "Camp Preview").await;
    let ada = identify(&app, org, "ada@preview.example", "Ada").await;
    let nameless = identify(&app, org, "anon@preview.example", "").await;
    let id = created_id(&app, &key, &cart_campaign()).await;
    // Step 2 (SMS) uses only the first name: it renders for Ada.
    let res = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{id}/preview"),
            &key,
            &json!({"step": 1, "variant": 2, "profile_id": ada}),
        )
        .await;
    // Variant B of step 1 needs cart_url, which Ada (no checkout) lacks.
    let (status, detail) = problem(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("cart_url"), "{detail}");
    let mut body = cart_campaign();
    body["steps"][0]["variants"][0]["body"] = json!("Hi {{ first_name }} <b>&</b>, come back");
    let res = app
        .send_json(Method::PUT, &format!("/campaigns/{id}"), &key, &body)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{id}/preview"),
            &key,
            &json!({"step": 1, "variant": 1, "profile_id": ada}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["channel"], "email");
    assert_eq!(p["to"], "ada@preview.example");
    assert_eq!(p["subject"], "Ada, your cart is waiting");
    assert!(p["text"]
        .as_str()
        .unwrap()
        .starts_with("Hi Ada <b>&</b>, come back"));
    let html = p["html"].as_str().unwrap();
    assert!(
        html.contains("Hi Ada <b>&</b>, come back") && html.contains("/u/preview"),
        "{html}"
    );
    // No first name: the sentence says which value is missing.
    let res = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{id}/preview"),
            &key,
            &json!({"step": 1, "variant": 1, "profile_id": nameless}),
        )
        .await;
    let (status, detail) = problem(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("first_name"), "{detail}");
    // A step that does not exist, and a customer of nobody.
    let res = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{id}/preview"),
            &key,
            &json!({"step": 3, "variant": 1, "profile_id": ada}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{id}/preview"),
            &key,
            &json!({"step": 1, "variant": 1, "profile_id": Uuid::now_v7()}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // The UI: the saved campaign's step 1 for Ada, in a sandboxed frame.
    let res = app
        .post_signed(
            &format!("/campaigns/{id}/preview"),
            &owner,
            &[
                ("preview_step", "1"),
                ("preview_variant", "A"),
                ("preview_email", "ada@preview.example"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("<iframe class=\"preview-frame\" sandbox srcdoc="),
        "sandboxed"
    );
    assert!(html.contains("Ada, your cart is waiting"));
    let res = app
        .post_signed(
            &format!("/campaigns/{id}/preview"),
            &owner,
            &[
                ("preview_step", "1"),
                ("preview_email", "anon@preview.example"),
            ],
        )
        .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"preview-error\""));
    assert!(html.contains("first_name"));
    // An unsaved builder previews what is typed, for the most recent lead
    // or anyone when there is none.
    let mut form = builder_form(&owner.csrf, "Unsaved", "draft");
    set(&mut form, "preview_step", "2");
    set(&mut form, "preview_email", "ada@preview.example");
    set(
        &mut form,
        "s1_a_body",
        "Hey {{ first_name }}, typed not saved",
    );
    let res = post_pairs(&app, "/campaigns/preview", &owner.cookie, &form).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Hey Ada, typed not saved"), "SMS text shown");
    assert!(html.contains("value=\"Unsaved\""), "the form is kept");
    assert_eq!(app.store().campaigns(org).await.unwrap().len(), 1);
}

#[tokio::test]
async fn status_moves_and_archiving_ends_every_active_enrollment() {
    let app = spawn_app().await;
    let (org, key, owner, campaign, profiles, _runner) =
        shop_with_enrolled(&app, "Camp Status", &["ann@shop.test", "bob@shop.test"]).await;
    let en = app
        .store()
        .enrollments_for_profile(org, profiles[0])
        .await
        .unwrap();
    assert_eq!(en.len(), 1, "the abandoned checkout enrolled Ann");
    assert_eq!((en[0].status.as_str(), en[0].step_index), ("active", 0));
    assert_eq!(en[0].campaign_id, campaign);
    // A preview for Ann uses her cart from the enrollment.
    let p: Value = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{campaign}/preview"),
            &key,
            &json!({"step": 1, "variant": 1, "profile_id": profiles[0]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(p["text"].as_str().unwrap().contains("120.00 USD"), "{p}");
    // The list counts them; the profile page lists the enrollment.
    let list: Value = app.read(Method::GET, "/campaigns", &key).await;
    assert_eq!(list[0]["stats"]["active"], 2);
    let page = app
        .get(&format!("/campaigns/{campaign}"), &owner.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<span class=\"tile-n\">2</span><span class=\"tile-l\">in it now</span>"),
        "the campaign page counts them"
    );
    assert!(page.contains("2 entered in all"));
    let html = app
        .get(&format!("/customers/{}", profiles[0]), &owner.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"nudges\"") && html.contains("Cart reminder"));
    assert!(html.contains(&format!("/enrollments/{}/remove", en[0].id)));
    // Pause and resume through the UI.
    for (to, done) in [("paused", "status_paused"), ("active", "status_active")] {
        let res = app
            .post_signed(
                &format!("/campaigns/{campaign}/status"),
                &owner,
                &[("status", to)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(location(&res).ends_with(done));
        let c = app.store().campaign(org, campaign).await.unwrap().unwrap();
        assert_eq!(c.status.as_str(), to);
    }
    // Removing Bob by hand over the API; Ann from her profile page.
    let bob = app
        .store()
        .enrollments_for_profile(org, profiles[1])
        .await
        .unwrap()[0]
        .id;
    let res = app
        .call(Method::DELETE, &format!("/enrollments/{bob}"), &key)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let nudges: Value = app
        .read(
            Method::GET,
            &format!("/customers/{}/nudges", profiles[1]),
            &key,
        )
        .await;
    assert_eq!(nudges["enrollments"][0]["status"], "stopped");
    assert_eq!(nudges["enrollments"][0]["stop_reason"], "removed");
    // Archive over the API: Ann's run ends too, and it stays archived.
    let res = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{campaign}/status"),
            &key,
            &json!({"status": "archived"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let en = app
        .store()
        .enrollments_for_profile(org, profiles[0])
        .await
        .unwrap();
    assert_eq!(en[0].status, "stopped");
    assert_eq!(en[0].stop_reason.as_deref(), Some("removed"));
    assert!(en[0].ended_at.is_some());
    let res = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{campaign}/status"),
            &key,
            &json!({"status": "active"}),
        )
        .await;
    let (status, detail) = problem(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("archived"), "{detail}");
    let res = app
        .send_json(
            Method::POST,
            &format!("/campaigns/{campaign}/status"),
            &key,
            &json!({"status": "sideways"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn tenant_b_cannot_see_edit_preview_or_remove_tenant_as_nudges() {
    let app = spawn_app().await;
    let (a_org, a_key, a_owner, campaign, profiles, runner) =
        shop_with_enrolled(&app, "Camp Tenant A", &["cust@canary-a.test"]).await;
    let enrollment = app
        .store()
        .enrollments_for_profile(a_org, profiles[0])
        .await
        .unwrap()[0]
        .id;
    // Step 1 falls due an hour later and goes to the development sink:
    // A's outbox holds it, and the figures count it.
    let now = app.state.now() + HOUR;
    app.clock.set_ms(now);
    runner.settled(now).await;
    let outbox = app.store().outbox(a_org, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].to, "cust@canary-a.test");
    // Variant A or B, as the split picks.
    let subject = outbox[0].subject.clone().unwrap_or_default();
    assert!(
        ["Jo, your cart is waiting", "Still thinking, Jo?"].contains(&subject.as_str()),
        "{subject}"
    );
    let html = app
        .get("/outbox", &a_owner.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("cust@canary-a.test"), "A sees its outbox");
    assert!(html.contains(&subject));
    assert!(html.contains("/settings/channels"));
    let funnel = app.store().campaign_funnel(a_org, campaign).await.unwrap();
    assert_eq!(funnel.len(), 2);
    assert_eq!((funnel[0].sent, funnel[1].sent), (1, 0), "{funnel:?}");
    let variants = app.store().variant_stats(a_org, campaign).await.unwrap();
    assert_eq!(variants.iter().map(|v| v.sent).sum::<i64>(), 1);
    let html = app
        .get(&format!("/campaigns/{campaign}"), &a_owner.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"recent\"") && html.contains("cust@canary-a.test"));
    let v: Value = app
        .read(
            Method::GET,
            &format!("/customers/{}/nudges", profiles[0]),
            &a_key,
        )
        .await;
    assert_eq!(v["executions"].as_array().unwrap().len(), 1);
    assert_eq!(v["enrollments"][0]["next_step"], 2);

    let (_b_org, b_key, b) = tenant(&app, "Camp Tenant B").await;
    let html = app.get("/outbox", &b.cookie).await.text().await.unwrap();
    assert!(!html.contains("canary-a"), "B's outbox is its own");
    let v: Value = app.read(Method::GET, "/outbox", &b_key).await;
    assert_eq!(v.as_array().unwrap().len(), 0);
    let list = app.get("/campaigns", &b.cookie).await.text().await.unwrap();
    assert!(!list.contains("Cart reminder"));
    for (m, path, body) in [
        (Method::GET, format!("/campaigns/{campaign}"), None),
        (
            Method::PUT,
            format!("/campaigns/{campaign}"),
            Some(cart_campaign()),
        ),
        (
            Method::POST,
            format!("/campaigns/{campaign}/status"),
            Some(json!({"status": "archived"})),
        ),
        (Method::GET, format!("/campaigns/{campaign}/funnel"), None),
        (
            Method::POST,
            format!("/campaigns/{campaign}/preview"),
            Some(json!({"step": 1, "variant": 1, "profile_id": profiles[0]})),
        ),
        (
            Method::GET,
            format!("/customers/{}/nudges", profiles[0]),
            None,
        ),
        (Method::DELETE, format!("/enrollments/{enrollment}"), None),
    ] {
        let mut req = app.api(m.clone(), &path, &b_key).await;
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{m} {path}");
    }
    let form = builder_form(&b.csrf, "Hijack", "active");
    for path in [
        format!("/campaigns/{campaign}"),
        format!("/campaigns/{campaign}/preview"),
        format!("/campaigns/{campaign}/status"),
        format!("/customers/{}/enrollments/{enrollment}/remove", profiles[0]),
    ] {
        let res = post_pairs(&app, &path, &b.cookie, &form).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "POST {path}");
    }
    assert_eq!(
        app.get(&format!("/campaigns/{campaign}"), &b.cookie)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // Nothing of A changed.
    let c = app
        .store()
        .campaign(a_org, campaign)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.campaign.name.as_str(), c.status.as_str()),
        ("Cart reminder", "active")
    );
    let en = app
        .store()
        .enrollments_for_profile(a_org, profiles[0])
        .await
        .unwrap();
    assert_eq!(en[0].status, "active");
    // A removes its own customer from the profile page.
    let res = post_pairs(
        &app,
        &format!("/customers/{}/enrollments/{enrollment}/remove", profiles[0]),
        &a_owner.cookie,
        &[("_csrf".to_string(), a_owner.csrf.clone())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let en = app
        .store()
        .enrollments_for_profile(a_org, profiles[0])
        .await
        .unwrap();
    assert_eq!(en[0].stop_reason.as_deref(), Some("removed"));
}

#[tokio::test]
async fn nudge_settings_check_the_time_zone_and_windows() {
    let app = spawn_app().await;
    let (org, key, owner) = tenant(&app, "Camp Settings").await;
    let v: Value = app.read(Method::GET, "/settings/nudges", &key).await;
    assert_eq!(v["timezone"], "UTC");
    for (body, says) in [
        (
            json!({"timezone": "Mars/Olympus", "email_window_ms": 5 * DAY, "sms_window_ms": DAY}),
            "not a time zone",
        ),
        (
            json!({"timezone": "Europe/Berlin", "email_window_ms": 60 * DAY, "sms_window_ms": DAY}),
            "1 to 30 days",
        ),
        (
            json!({"timezone": "Europe/Berlin", "email_window_ms": 5 * DAY, "sms_window_ms": 0}),
            "1 to 168 hours",
        ),
    ] {
        let res = app
            .send_json(Method::PUT, "/settings/nudges", &key, &body)
            .await;
        let (status, detail) = problem(res).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(says), "{detail}");
    }
    let res = app
        .post_signed(
            "/settings/nudges",
            &owner,
            &[
                ("timezone", "Nowhere/Land"),
                ("email_days", "3"),
                ("sms_hours", "12"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("not a time zone") && html.contains("value=\"Nowhere/Land\""));
    let res = app
        .post_signed(
            "/settings/nudges",
            &owner,
            &[
                ("timezone", "America/New_York"),
                ("email_days", "3"),
                ("sms_hours", "12"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let s = app.store().nudge_settings(org).await.unwrap();
    assert_eq!(s.timezone, "America/New_York");
    assert_eq!((s.windows.email_ms, s.windows.sms_ms), (3 * DAY, 12 * HOUR));
}
