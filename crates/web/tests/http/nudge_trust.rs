//! Nudges you can trust, end to end on the test clock (both engines): a
//! lead marked won is left alone when its checkout's abandonment timer
//! fires later; a campaign that cannot reach a visitor does not enroll
//! them and says why; the daily cap lets one message through when two
//! campaigns are due at once and holds the other back (never dropping
//! it); and the ghosting and form-not-finished triggers send on time.

use crate::intake::source;
use crate::nudges::{abandon, cart_campaign, executions, settle_at, shop, variant, Shop, STEP1};
use crate::pipeline::{at, runner, segment};
use crate::support::*;
use bos_core::nudge::campaign::{DAY_MS, HOUR_MS, MINUTE_MS};
use bos_core::nudge::{Campaign, Channel, Step, StopConditions, Trigger};
use bos_core::ScopeSet;
use bos_store::nudge::{CampaignStatus, SkipCount};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

fn count(counts: &[SkipCount], reason: &str) -> i64 {
    counts
        .iter()
        .find(|c| c.reason == reason)
        .map_or(0, |c| c.count)
}

async fn admin_key(app: &TestApp, org: Uuid) -> String {
    bos_web::issue_api_key(
        app.store(),
        org,
        "test",
        &ScopeSet::parse("admin").unwrap(),
        None,
        T0,
    )
    .await
    .unwrap()
    .secret
}

async fn who(app: &TestApp, org: Uuid, email: &str) -> Uuid {
    app.store()
        .profile_by_email(org, email)
        .await
        .unwrap()
        .expect("a customer with that e-mail")
}

/// One e-mail step, `delay` after the trigger.
fn one_email(name: &str, trigger: Trigger, delay: i64) -> Campaign {
    Campaign {
        name: name.into(),
        trigger,
        steps: vec![Step {
            delay_ms: delay,
            channel: Channel::Email,
            variants: vec![variant(
                Some("A note from the shop"),
                "We kept your place. Reply if anything is unclear.",
            )],
        }],
        stop: StopConditions::default(),
        quiet_hours: None,
        max_attempts: 3,
        reentry_cooldown_ms: 0,
        priority: 0,
    }
}

async fn put_campaign(app: &TestApp, org: Uuid, c: &Campaign) -> Uuid {
    c.validate(&[]).unwrap();
    let id = Uuid::now_v7();
    app.store()
        .put_campaign(org, id, c, CampaignStatus::Active, T0)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_lead_marked_won_is_not_nudged_when_its_checkout_is_abandoned_later() {
    let app = spawn_app().await;
    let s = shop(&app, "Trust Won", cart_campaign()).await;
    let r = runner(&app).await;
    // The checkout starts at T0; its abandonment timer is due at T0 + 1 h.
    abandon(&app, &s, 1, "won@shop.test", "+14155550201").await;
    let id = who(&app, s.org, "won@shop.test").await;
    // Half an hour later a person marks the lead won, through the lead
    // actions.
    app.clock.set_ms(T0 + 30 * MINUTE_MS);
    let key = admin_key(&app, s.org).await;
    let (st, d) = app
        .api_json(
            Method::POST,
            &format!("/leads/{id}/actions"),
            &key,
            Some(json!({"action": "mark_converted"})),
        )
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["lead"]["state"], "converted");
    // The abandonment timer fires after the conversion, and every step's
    // time passes: nothing is sent.
    settle_at(&app, &r, T0 + HOUR_MS).await;
    settle_at(&app, &r, STEP1 + 3 * DAY_MS).await;
    assert!(
        executions(&app, &s).await.is_empty(),
        "a won lead is left alone"
    );
    // Recorded, not nudged: the abandoned checkout is on the timeline, the
    // campaign counts the customer as not enrolled because they stopped,
    // and the timeline says so in words.
    let stats = app.store().campaign_stats(s.org, s.campaign).await.unwrap();
    assert_eq!(stats.enrolled, 0);
    assert_eq!(count(&stats.not_enrolled, "stopped"), 1, "{stats:?}");
    let tl = app.timeline(s.org, id).await;
    assert!(tl.iter().any(|e| e.kind == "checkout_abandoned"), "{tl:?}");
    let skipped: Vec<_> = tl.iter().filter(|e| e.kind == "nudge_skipped").collect();
    assert_eq!(skipped.len(), 1, "{tl:?}");
    assert_eq!(
        skipped[0].summary,
        "Not entered campaign \u{201c}Cart reminder\u{201d}: stopped: bought or marked won"
    );
    // The API's figures say the same.
    let (st, c) = app
        .api_json(
            Method::GET,
            &format!("/campaigns/{}", s.campaign),
            &key,
            None,
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let why = c["stats"]["not_enrolled"].as_array().unwrap();
    assert!(
        why.iter()
            .any(|w| w["reason"] == "stopped" && w["count"] == 1),
        "{c}"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn a_stop_that_missed_a_running_enrollment_still_holds_at_send_time() {
    // A purchase while enrolled stops the sequence in its own transaction;
    // this checks the second line of defence: the send-time rule, for an
    // enrollment the stop did not reach (it belonged to a profile merged
    // away, or was written by an older version).
    let app = spawn_app().await;
    let s = shop(&app, "Trust Late", cart_campaign()).await;
    let r = runner(&app).await;
    abandon(&app, &s, 2, "late@shop.test", "+14155550202").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    let id = who(&app, s.org, "late@shop.test").await;
    let en = app
        .store()
        .enrollments_for_profile(s.org, id)
        .await
        .unwrap();
    assert_eq!(en.len(), 1);
    assert_eq!(en[0].status, "active");
    // The lead is marked lost behind the enrollment's back: only the
    // lead row changes, as an older version would have left it.
    app.store()
        .test_set_lead_state(s.org, id, "lost", T0 + HOUR_MS + 1)
        .await
        .unwrap();
    settle_at(&app, &r, STEP1).await;
    assert!(executions(&app, &s).await.is_empty());
    let en = app
        .store()
        .enrollments_for_profile(s.org, id)
        .await
        .unwrap();
    assert_eq!(en[0].stop_reason.as_deref(), Some("lost"));
    assert_eq!(
        en[0].ended_why.as_deref(),
        Some("stopped: lead marked lost")
    );
    let funnel = app
        .store()
        .campaign_funnel(s.org, s.campaign)
        .await
        .unwrap();
    assert_eq!(count(&funnel[0].skipped, "stopped"), 1, "{funnel:?}");
    r.shutdown().await;
}

/// Posts a form submission (`partial`: the visitor started it) for
/// session `sid` with `fields` (urlencoded).
async fn form(app: &TestApp, endpoint: &str, sid: &str, fields: &str, partial: bool) {
    let path = endpoint.trim_start_matches(&app.base).to_string();
    let body = format!(
        "{fields}&_sid={sid}{}",
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
    app.state.pipeline.drain().await.unwrap();
}

#[tokio::test]
async fn the_form_trigger_enrolls_only_who_it_can_reach_and_sends_to_who_did_not_finish() {
    let app = spawn_app().await;
    let org = app.org("Trust Form").await;
    let key = admin_key(&app, org.id).await;
    let res = app.post_source(&key, "form", "Landing").await;
    assert_eq!(res.status(), 201);
    let v: serde_json::Value = res.json().await.unwrap();
    let endpoint = v["source"]["endpoint"].as_str().unwrap().to_string();
    let c = one_email("Form follow-up", Trigger::FormStartedNotFinished, HOUR_MS);
    let cid = put_campaign(&app, org.id, &c).await;
    let r = runner(&app).await;
    app.clock.set_ms(T0);
    // An anonymous visitor starts the form: no address to write to.
    form(&app, &endpoint, "anon-1", "first_name=Ann", true).await;
    // One who gave an address and finishes the form, one who does not.
    form(
        &app,
        &endpoint,
        "fin-1",
        "first_name=Fin&email=fin%40form.test",
        true,
    )
    .await;
    form(
        &app,
        &endpoint,
        "left-1",
        "first_name=Lee&email=lee%40form.test",
        true,
    )
    .await;
    app.clock.set_ms(T0 + 10 * MINUTE_MS);
    form(
        &app,
        &endpoint,
        "fin-1",
        "first_name=Fin&email=fin%40form.test",
        false,
    )
    .await;

    let stats = app.store().campaign_stats(org.id, cid).await.unwrap();
    assert_eq!(stats.enrolled, 2, "{stats:?}");
    assert_eq!(count(&stats.not_enrolled, "no_address"), 1, "{stats:?}");
    // The one who finished reads why in words: not "converted".
    let fin = who(&app, org.id, "fin@form.test").await;
    let en = app
        .store()
        .enrollments_for_profile(org.id, fin)
        .await
        .unwrap();
    assert_eq!(en[0].stop_reason.as_deref(), Some("form_finished"));
    assert_eq!(
        en[0].ended_why.as_deref(),
        Some("stopped: finished the form")
    );

    settle_at(&app, &r, T0 + HOUR_MS - 1).await;
    let sent = |app: &TestApp| {
        let st = app.store().clone();
        async move { st.campaign_executions(org.id, cid, 100).await.unwrap() }
    };
    assert!(sent(&app).await.is_empty(), "never early");
    settle_at(&app, &r, T0 + HOUR_MS).await;
    let x = sent(&app).await;
    assert_eq!(x.len(), 1, "only the one who left the form: {x:?}");
    assert_eq!(
        (x[0].to.as_str(), x[0].status.as_str()),
        ("lee@form.test", "delivered")
    );
    // The campaign page shows the count and its reason.
    let email = format!("owner@{}.example", org.id.simple());
    app.user(&email, &org, bos_core::Role::Owner).await;
    let b = app.login(&email).await;
    let html = app
        .get(&format!("/campaigns/{cid}"), &b.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"not-enrolled\""), "{html}");
    assert!(html.contains("not reachable: no address 1"), "{html}");
    r.shutdown().await;
}

#[tokio::test]
async fn two_campaigns_due_at_once_send_one_message_and_hold_the_other_by_the_cap() {
    let app = spawn_app().await;
    let mut high = one_email("Cart: high", Trigger::CheckoutAbandoned, HOUR_MS);
    high.priority = 5;
    let s: Shop = shop(&app, "Trust Cap", high).await;
    let low = one_email("Cart: low", Trigger::CheckoutAbandoned, HOUR_MS);
    let low_id = put_campaign(&app, s.org, &low).await;
    // The defaults are shown, and one e-mail a day is set through the API.
    let key = admin_key(&app, s.org).await;
    let (st, cur) = app
        .api_json(Method::GET, "/settings/nudges", &key, None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            cur["email_cap_per_day"].as_u64(),
            cur["sms_cap_per_day"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let mut put = cur.clone();
    put["email_cap_per_day"] = json!(1);
    let (st, saved) = app
        .api_json(Method::PUT, "/settings/nudges", &key, Some(put.clone()))
        .await;
    assert_eq!(st, 200, "{saved}");
    assert_eq!(saved["email_cap_per_day"], 1);
    put["email_cap_per_day"] = json!(0);
    let (st, p) = app
        .api_json(Method::PUT, "/settings/nudges", &key, Some(put))
        .await;
    assert_eq!(st, 422, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("from 1 to 50"),
        "{p}"
    );

    let r = runner(&app).await;
    abandon(&app, &s, 3, "cap@shop.test", "+14155550203").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    // Both steps fall due at the same moment: one message goes out, from
    // the higher priority; the other is held back, counted as "cap".
    settle_at(&app, &r, STEP1).await;
    let hi = executions(&app, &s).await;
    let lo = app
        .store()
        .campaign_executions(s.org, low_id, 10)
        .await
        .unwrap();
    assert_eq!((hi.len(), lo.len()), (1, 0), "{hi:?} {lo:?}");
    let funnel = app.store().campaign_funnel(s.org, low_id).await.unwrap();
    assert_eq!(count(&funnel[0].skipped, "cap"), 1, "{funnel:?}");
    let id = who(&app, s.org, "cap@shop.test").await;
    let en = app
        .store()
        .enrollments_for_profile(s.org, id)
        .await
        .unwrap();
    let held = en.iter().find(|e| e.campaign_id == low_id).unwrap();
    assert_eq!(held.status, "active", "held, not dropped");
    assert!(held.next_due.unwrap() > STEP1, "{held:?}");
    // A day later the held message goes out.
    settle_at(&app, &r, STEP1 + DAY_MS + MINUTE_MS).await;
    let lo = app
        .store()
        .campaign_executions(s.org, low_id, 10)
        .await
        .unwrap();
    assert_eq!(lo.len(), 1, "the held step is sent once the cap allows");
    assert_eq!(executions(&app, &s).await.len(), 1);
    r.shutdown().await;
}

#[tokio::test]
async fn a_ghosting_lead_enters_its_campaign_and_gets_the_step_on_time() {
    let app = spawn_app().await;
    let src = source(&app, "Trust Ghost", "segment").await;
    let c = one_email("Come back", Trigger::LeadGhosting, HOUR_MS);
    let cid = put_campaign(&app, src.org, &c).await;
    let r = runner(&app).await;
    app.clock.set_ms(T0);
    segment(
        &app,
        &src.secret,
        "/v1/identify",
        json!({"userId": "g-1", "messageId": "gi-1", "timestamp": at(T0),
               "traits": {"email": "ghost@seg.test", "first_name": "Gus"}}),
    )
    .await;
    segment(
        &app,
        &src.secret,
        "/v1/track",
        json!({"userId": "g-1", "messageId": "gt-1", "event": "Checkout Started", "timestamp": at(T0)}),
    )
    .await;
    app.state.pipeline.drain().await.unwrap();
    let id = who(&app, src.org, "ghost@seg.test").await;
    assert_eq!(
        app.store().lead(src.org, id).await.unwrap().unwrap().state,
        "engaged"
    );
    // Default threshold: three days of silence.
    let ghost = T0 + 3 * DAY_MS;
    settle_at(&app, &r, ghost - 1).await;
    let stats = app.store().campaign_stats(src.org, cid).await.unwrap();
    assert_eq!(stats.enrolled, 0, "not ghosting yet");
    settle_at(&app, &r, ghost).await;
    assert_eq!(
        app.store().lead(src.org, id).await.unwrap().unwrap().state,
        "ghosting"
    );
    let stats = app.store().campaign_stats(src.org, cid).await.unwrap();
    assert_eq!(stats.enrolled, 1);
    settle_at(&app, &r, ghost + HOUR_MS - 1).await;
    assert!(app
        .store()
        .campaign_executions(src.org, cid, 10)
        .await
        .unwrap()
        .is_empty());
    settle_at(&app, &r, ghost + HOUR_MS).await;
    let x = app
        .store()
        .campaign_executions(src.org, cid, 10)
        .await
        .unwrap();
    assert_eq!(x.len(), 1);
    assert_eq!(
        (x[0].to.as_str(), x[0].sent_at),
        ("ghost@seg.test", Some(ghost + HOUR_MS))
    );
    r.shutdown().await;
}
