//! The nudge engine end to end, through provider outages and without
//! ever sending twice: real
//! signed Shopify deliveries go in over HTTP, the pipeline is drained, the
//! test clock moves and the job runner is settled (no sleeping), and the
//! sends are checked where they land — the development sink's executions,
//! or a local fake SMTP server and fake Twilio that check what the real
//! ones would.

use crate::intake::shopify_headers;
use crate::intake::shopify_source;
use crate::pipeline::{at, runner};
use crate::support::*;
use bos_channels::fake::{FakeSmtp, FakeTwilio, SmtpFail, TwilioFail};
use bos_core::nudge::campaign::{DAY_MS, HOUR_MS, MINUTE_MS};
use bos_core::nudge::{Campaign, Channel, QuietHours, Step, StopConditions, Trigger, Variant};
use bos_store::nudge::{CampaignStatus, ChannelConfig, Execution, InboundMessage};
use serde_json::json;
use uuid::Uuid;

pub(crate) fn variant(subject: Option<&str>, body: &str) -> Variant {
    Variant {
        name: "A".into(),
        weight: 1,
        subject: subject.map(str::to_string),
        body: body.into(),
    }
}

/// Abandoned checkout: an email an hour later, an SMS a day after that.
pub(crate) fn cart_campaign() -> Campaign {
    Campaign {
        name: "Cart reminder".into(),
        trigger: Trigger::CheckoutAbandoned,
        steps: vec![
            Step {
                delay_ms: HOUR_MS,
                channel: Channel::Email,
                variants: vec![variant(
                    Some("{{ first_name }}, you left something"),
                    "Hi {{ first_name }}, your cart ({{ cart_total }}) is waiting: {{ cart_url }}",
                )],
            },
            Step {
                delay_ms: DAY_MS,
                channel: Channel::Sms,
                variants: vec![variant(
                    None,
                    "Still thinking, {{ first_name }}? {{ cart_url }}",
                )],
            },
        ],
        stop: StopConditions::default(),
        quiet_hours: None,
        max_attempts: 5,
        reentry_cooldown_ms: 30 * DAY_MS,
        priority: 0,
    }
}

pub(crate) fn checkout(id: u64, email: &str, phone: &str, at_ms: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "token": format!("tok-{id}"), "cart_token": format!("cart-{id}"), "email": email,
        "phone": phone,
        "created_at": at(at_ms), "updated_at": at(at_ms), "currency": "USD", "completed_at": null,
        "subtotal_price": "80.00", "total_price": "80.00",
        "line_items": [{"product_id": 1, "variant_id": 2, "title": "Mug", "quantity": 2, "price": "40.00"}],
        "customer": {"id": id + 5000, "email": email, "phone": phone, "first_name": "Jo", "last_name": "Park"},
        "abandoned_checkout_url": format!("https://shop.test/recover/tok-{id}")
    }))
    .unwrap()
}

pub(crate) struct Shop {
    pub org: Uuid,
    pub path: String,
    pub secret: String,
    pub campaign: Uuid,
}

pub(crate) async fn shop(app: &TestApp, name: &str, campaign: Campaign) -> Shop {
    let s = shopify_source(app, name, &format!("shpss_{}", name.replace(' ', "_"))).await;
    campaign.validate(&[]).unwrap();
    let id = Uuid::now_v7();
    app.store()
        .put_campaign(s.org, id, &campaign, CampaignStatus::Active, T0)
        .await
        .unwrap();
    Shop {
        org: s.org,
        path: format!("/hooks/shopify/{}", s.id),
        secret: s.secret,
        campaign: id,
    }
}

pub(crate) async fn post(app: &TestApp, s: &Shop, topic: &str, event_id: &str, body: Vec<u8>) {
    let res = app
        .post_raw(
            &s.path,
            &shopify_headers(topic, event_id, &s.secret, &body),
            body,
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    app.state.pipeline.drain().await.unwrap();
}

pub(crate) async fn abandon(app: &TestApp, s: &Shop, id: u64, email: &str, phone: &str) {
    post(
        app,
        s,
        "checkouts/create",
        &format!("co-{id}"),
        checkout(id, email, phone, T0),
    )
    .await;
}

pub(crate) async fn executions(app: &TestApp, s: &Shop) -> Vec<Execution> {
    app.store()
        .campaign_executions(s.org, s.campaign, 10_000)
        .await
        .unwrap()
}

pub(crate) async fn settle_at(app: &TestApp, r: &bos_engine::Runner, t: i64) {
    app.clock.set_ms(t);
    r.settled(t).await;
}

/// Abandonment is at T0 + 1 h (the default window), so step 1 is due at
/// T0 + 2 h and step 2 a day after step 1 went out.
pub(crate) const STEP1: i64 = T0 + 2 * HOUR_MS;
const STEP2: i64 = STEP1 + DAY_MS;

#[tokio::test]
async fn an_abandoned_checkout_gets_each_step_at_its_delay_in_the_dev_outbox() {
    let app = spawn_app().await;
    let s = shop(&app, "Nudge Steps", cart_campaign()).await;
    let r = runner(&app).await;
    abandon(&app, &s, 1, "jo@shop.test", "+14155550101").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    assert!(
        executions(&app, &s).await.is_empty(),
        "nothing before step 1"
    );
    settle_at(&app, &r, STEP1 - 1).await;
    assert!(executions(&app, &s).await.is_empty(), "never early");
    settle_at(&app, &r, STEP1).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 1);
    let e = &x[0];
    assert_eq!(
        (e.channel.as_str(), e.status.as_str(), e.to.as_str()),
        ("email", "delivered", "jo@shop.test")
    );
    assert_eq!(e.subject.as_deref(), Some("Jo, you left something"));
    assert!(e
        .body
        .contains("Hi Jo, your cart (80.00 USD) is waiting: http"));
    // The cart link is a tracked redirect, not the raw URL.
    assert!(e.body.contains(&format!("/t/c/{}", e.token)), "{}", e.body);
    assert_eq!(e.sent_at, Some(STEP1));
    settle_at(&app, &r, STEP2 - 1).await;
    assert_eq!(executions(&app, &s).await.len(), 1);
    settle_at(&app, &r, STEP2).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 2);
    assert_eq!(
        (x[1].channel.as_str(), x[1].to.as_str(), x[1].step),
        ("sms", "+14155550101", 1)
    );
    assert!(x[1].body.starts_with("Still thinking, Jo? http"));
    // Finished: nothing more, however long we wait; the enrollment says so.
    settle_at(&app, &r, STEP2 + 30 * DAY_MS).await;
    assert_eq!(executions(&app, &s).await.len(), 2);
    let st = app
        .store()
        .enrollment_status(s.org, x[0].enrollment_id)
        .await
        .unwrap();
    assert_eq!(st, Some(("stopped".into(), Some("completed".into()))));
    // Both sends are on the customer's timeline.
    let tl = app
        .store()
        .timeline(
            s.org,
            e.profile_id,
            &bos_store::identity::TimelineQuery {
                kinds: vec!["nudge".into()],
                from: None,
                to: None,
                before: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert_eq!(tl.len(), 3, "entered + two sends: {tl:?}");
    r.shutdown().await;
}

#[tokio::test]
async fn a_purchase_between_steps_stops_the_rest_and_is_credited_to_the_nudge() {
    let app = spawn_app().await;
    let s = shop(&app, "Nudge Buy", cart_campaign()).await;
    let r = runner(&app).await;
    abandon(&app, &s, 2, "amy@shop.test", "+14155550102").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    settle_at(&app, &r, STEP1).await;
    assert_eq!(executions(&app, &s).await.len(), 1);
    app.clock.set_ms(STEP1 + HOUR_MS);
    let order = serde_json::to_vec(&json!({
        "id": 77, "name": "#1077", "email": "amy@shop.test", "currency": "USD", "total_price": "80.00",
        "checkout_token": "tok-2", "created_at": at(STEP1 + HOUR_MS), "financial_status": "paid",
        "customer": {"id": 5002, "email": "amy@shop.test"},
        "line_items": [{"product_id": 1, "variant_id": 2, "title": "Mug", "quantity": 2, "price": "40.00"}]
    }))
    .unwrap();
    post(&app, &s, "orders/create", "o-77", order).await;
    settle_at(&app, &r, STEP2 + DAY_MS).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 1, "no step after the purchase");
    assert_eq!(x[0].converted_at, Some(STEP1 + HOUR_MS), "credited");
    let st = app
        .store()
        .enrollment_status(s.org, x[0].enrollment_id)
        .await
        .unwrap();
    assert_eq!(st, Some(("stopped".into(), Some("converted".into()))));
    r.shutdown().await;
}

#[tokio::test]
async fn a_reply_stops_the_rest_and_stop_opts_out_of_sms_everywhere() {
    let app = spawn_app().await;
    let s = shop(&app, "Nudge Reply", cart_campaign()).await;
    // A second campaign on the same trigger, SMS first: the STOP below must
    // end it too.
    let mut sms_first = cart_campaign();
    sms_first.name = "SMS first".into();
    sms_first.steps.swap(0, 1);
    sms_first.steps[0].delay_ms = HOUR_MS;
    sms_first.steps[1].delay_ms = HOUR_MS;
    let second = Uuid::now_v7();
    app.store()
        .put_campaign(s.org, second, &sms_first, CampaignStatus::Active, T0)
        .await
        .unwrap();
    let r = runner(&app).await;
    abandon(&app, &s, 3, "ray@shop.test", "+14155550103").await;
    abandon(&app, &s, 4, "sam@shop.test", "+14155550104").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    settle_at(&app, &r, STEP1).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 2);
    let ray = x.iter().find(|e| e.to == "ray@shop.test").unwrap().clone();
    // Ray answers the email (threaded by its Message-ID).
    let out = app
        .store()
        .inbound_message(
            s.org,
            InboundMessage {
                channel: Channel::Email,
                from: "Ray@Shop.test".into(),
                to: "shop@bos.test".into(),
                subject: Some("Re: Jo, you left something".into()),
                text: "Is it available in blue?".into(),
                provider_id: "pm-1".into(),
                provider: "postmark".into(),
                in_reply_to: vec![format!("<{}>", ray.message_id)],
                opt: None,
            },
            STEP1 + 60_000,
        )
        .await
        .unwrap();
    assert_eq!(out.profile_id, ray.profile_id);
    assert_eq!(out.stopped, 2, "both of Ray's campaigns stop on a reply");
    // Sam texts STOP.
    let out = app
        .store()
        .inbound_message(
            s.org,
            InboundMessage {
                channel: Channel::Sms,
                from: "+14155550104".into(),
                to: "+15005550006".into(),
                subject: None,
                text: "STOP".into(),
                provider_id: "SM1".into(),
                provider: "twilio".into(),
                in_reply_to: vec![],
                opt: Some(true),
            },
            STEP1 + 60_000,
        )
        .await
        .unwrap();
    assert_eq!(out.opted, Some(true));
    settle_at(&app, &r, STEP2 + 10 * DAY_MS).await;
    let all = executions(&app, &s).await;
    assert_eq!(all.len(), 2, "no step 2 for either: {all:?}");
    let sms_sent: Vec<Execution> = app
        .store()
        .campaign_executions(s.org, second, 100)
        .await
        .unwrap();
    // The SMS-first campaign's step 1 went out at T0 + 2 h to both (before
    // the reply and the STOP); nothing after.
    assert_eq!(sms_sent.len(), 2, "{sms_sent:?}");
    assert!(sms_sent.iter().all(|e| e.created_at == STEP1));
    // Ray's reply is on his timeline, once even when delivered again.
    let again = app
        .store()
        .inbound_message(
            s.org,
            InboundMessage {
                channel: Channel::Email,
                from: "ray@shop.test".into(),
                to: "shop@bos.test".into(),
                subject: Some("Re: Jo, you left something".into()),
                text: "Is it available in blue?".into(),
                provider_id: "pm-1".into(),
                provider: "postmark".into(),
                in_reply_to: vec![],
                opt: None,
            },
            STEP1 + 120_000,
        )
        .await
        .unwrap();
    assert!(again.duplicate);
    r.shutdown().await;
}

#[tokio::test]
async fn quiet_hours_hold_a_step_until_they_end_in_the_tenants_zone() {
    let app = spawn_app().await;
    let mut c = cart_campaign();
    // Step 1 falls due at 22:26 UTC (T0 is 20:26 UTC): held to 08:00.
    c.quiet_hours = Some(QuietHours {
        start_minute: 21 * 60,
        end_minute: 8 * 60,
    });
    let s = shop(&app, "Nudge Quiet", c.clone()).await;
    let r = runner(&app).await;
    abandon(&app, &s, 5, "qui@shop.test", "+14155550105").await;
    settle_at(&app, &r, STEP1).await;
    assert!(executions(&app, &s).await.is_empty(), "quiet at 22:26");
    let morning =
        bos_core::nudge::next_allowed(STEP1, "UTC", c.quiet_hours.as_ref().unwrap()).unwrap();
    assert!(morning > STEP1);
    settle_at(&app, &r, morning - 1).await;
    assert!(executions(&app, &s).await.is_empty());
    settle_at(&app, &r, morning).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].sent_at, Some(morning));
    r.shutdown().await;
}

/// Traits from a Segment `identify` reach the profile: the template reads
/// `{{ traits.plan }}`, and quiet hours follow the customer's own time zone
/// (the browser's `context.timezone`) rather than the tenant's.
#[tokio::test]
async fn segment_traits_fill_templates_and_quiet_hours_follow_the_customers_zone() {
    let app = spawn_app().await;
    let src = crate::intake::source(&app, "Nudge Traits", "segment").await;
    let quiet = QuietHours {
        start_minute: 21 * 60,
        end_minute: 8 * 60,
    };
    let c = Campaign {
        name: "Visit follow-up".into(),
        trigger: Trigger::Event {
            name: "Visit".into(),
        },
        steps: vec![Step {
            delay_ms: 10 * MINUTE_MS,
            channel: Channel::Email,
            variants: vec![variant(
                Some("{{ first_name }}, about your plan"),
                "Your {{ traits.plan }} plan has {{ traits.seats }} seats.",
            )],
        }],
        stop: StopConditions::default(),
        quiet_hours: Some(quiet),
        max_attempts: 3,
        reentry_cooldown_ms: 0,
        priority: 0,
    };
    c.validate(&["plan", "seats"]).unwrap();
    let campaign = Uuid::now_v7();
    app.store()
        .put_campaign(src.org, campaign, &c, CampaignStatus::Active, T0)
        .await
        .unwrap();
    crate::pipeline::segment(
        &app,
        &src.secret,
        "/v1/identify",
        json!({"userId": "kenji", "messageId": "id-1", "timestamp": at(T0 - MINUTE_MS),
               "traits": {"email": "kenji@traits.test", "firstName": "Kenji", "plan": "gold", "seats": 12,
                          "address": {"city": "Osaka"}},
               "context": {"timezone": "Asia/Tokyo"}}),
    )
    .await;
    crate::pipeline::segment(
        &app,
        &src.secret,
        "/v1/track",
        json!({"userId": "kenji", "messageId": "visit-1", "event": "Visit", "timestamp": at(T0)}),
    )
    .await;
    app.state.pipeline.drain().await.unwrap();
    let r = runner(&app).await;
    // Due at 20:36 UTC: outside quiet hours in UTC, 05:36 in Tokyo.
    let due = T0 + 10 * MINUTE_MS;
    settle_at(&app, &r, due).await;
    let x = app
        .store()
        .campaign_executions(src.org, campaign, 10)
        .await
        .unwrap();
    assert!(x.is_empty(), "held for Tokyo's quiet hours: {x:?}");
    let tokyo_morning = bos_core::nudge::next_allowed(due, "Asia/Tokyo", &quiet).unwrap();
    assert!(tokyo_morning > due);
    settle_at(&app, &r, tokyo_morning).await;
    r.shutdown().await;
    let x = app
        .store()
        .campaign_executions(src.org, campaign, 10)
        .await
        .unwrap();
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].sent_at, Some(tokyo_morning));
    assert_eq!(x[0].subject.as_deref(), Some("Kenji, about your plan"));
    assert!(
        x[0].body.starts_with("Your gold plan has 12 seats.\n"),
        "{}",
        x[0].body
    );
}

#[tokio::test]
async fn racing_runners_send_each_step_once() {
    let app = spawn_app().await;
    let s = shop(&app, "Nudge Race", cart_campaign()).await;
    for i in 0..60u64 {
        abandon(
            &app,
            &s,
            100 + i,
            &format!("r{i}@shop.test"),
            &format!("+1415555{:04}", 2000 + i),
        )
        .await;
    }
    // Three runners, as three replicas would run.
    let (a, b, c) = (runner(&app).await, runner(&app).await, runner(&app).await);
    for t in [T0 + HOUR_MS, STEP1, STEP2] {
        app.clock.set_ms(t);
        tokio::join!(a.settled(t), b.settled(t), c.settled(t));
    }
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 120, "two steps × 60 customers");
    let mut keys: Vec<(Uuid, i64)> = x.iter().map(|e| (e.enrollment_id, e.step)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 120, "no step twice");
    // A step job run again by hand (a replay) sends nothing more.
    for e in x.iter().take(10) {
        let (out, _) = app
            .store()
            .nudge_step(
                s.org,
                e.enrollment_id,
                STEP2,
                7,
                std::sync::Arc::new(bos_web::paths::PublicUrls::new("http://x")),
            )
            .await
            .unwrap();
        assert!(
            matches!(out, bos_store::nudge::StepOutcome::Nothing(_)),
            "{out:?}"
        );
    }
    assert_eq!(executions(&app, &s).await.len(), 120);
    for r in [a, b, c] {
        r.shutdown().await;
    }
}

/// A provider outage: email over a fake SMTP server and SMS over a fake
/// Twilio both fail (4xx/5xx answers) for the first 15 minutes of a
/// 1,000-recipient campaign. Every recipient gets the message exactly
/// once, within 10 attempts, with growing jittered waits; a permanent
/// error and an opt-out are never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r7_a_provider_outage_delays_but_neither_loses_nor_doubles_a_send() {
    let smtp = FakeSmtp::start().await;
    let twilio = FakeTwilio::start().await;
    let base = twilio.base_url();
    let app = spawn_with(|c| {
        c.allow_private_outbound = true;
        c.twilio_base_url = base.clone();
    })
    .await;
    let mut c = cart_campaign();
    c.max_attempts = 10;
    c.steps.truncate(1);
    // Half the recipients prefer SMS (no email on file).
    c.steps[0].channel = Channel::Preferred;
    let s = shop(&app, "Nudge Outage", c).await;
    use_smtp(&app, s.org, &smtp).await;
    app.store()
        .put_channel_config(
            s.org,
            Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: twilio.account_sid.clone(),
                auth_token: twilio.auth_token.clone(),
                from: "+15005550006".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap();
    const N: u64 = 1_000;
    // One batch of signed deliveries: 500 with email, 500 with only a phone.
    for i in 0..N {
        let email = if i % 2 == 0 {
            format!("o{i}@shop.test")
        } else {
            String::new()
        };
        let phone = format!("+1415556{:04}", i);
        let mut body: serde_json::Value =
            serde_json::from_slice(&checkout(10_000 + i, &email, &phone, T0)).unwrap();
        if email.is_empty() {
            body["email"] = serde_json::Value::Null;
            body["customer"]["email"] = serde_json::Value::Null;
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let res = app
            .post_raw(
                &s.path,
                &shopify_headers("checkouts/create", &format!("out-{i}"), &s.secret, &bytes),
                bytes,
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    app.state.pipeline.drain().await.unwrap();
    let r = runner(&app).await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    // The outage: transient answers for 15 minutes from the first send.
    smtp.set_failing(SmtpFail::Reply451);
    twilio.set_failing(TwilioFail::Status500);
    let mut t = STEP1;
    while t < STEP1 + 15 * MINUTE_MS {
        if t >= STEP1 + 7 * MINUTE_MS {
            twilio.set_failing(TwilioFail::Status429);
        }
        settle_at(&app, &r, t).await;
        t += 10_000;
    }
    smtp.set_failing(SmtpFail::None);
    twilio.set_failing(TwilioFail::None);
    while t <= STEP1 + 3 * HOUR_MS {
        settle_at(&app, &r, t).await;
        t += 30_000;
    }
    let x = executions(&app, &s).await;
    assert_eq!(x.len() as u64, N);
    let not_sent: Vec<&Execution> = x.iter().filter(|e| e.status != "sent").collect();
    assert!(
        not_sent.is_empty(),
        "all sent: {:?}",
        &not_sent[..not_sent.len().min(3)]
    );
    assert!(
        x.iter().all(|e| e.attempts >= 2 && e.attempts <= 10),
        "attempts"
    );
    // Once each at the providers.
    let mails = smtp.messages();
    let sms = twilio.messages();
    assert_eq!(mails.len() + sms.len(), N as usize);
    let mut ids: Vec<String> = sms
        .iter()
        .map(|m| m.idempotency_token.clone().unwrap_or_default())
        .collect();
    ids.extend(
        mails
            .iter()
            .filter_map(|m| m.data.lines().find(|l| l.starts_with("Message-ID:")))
            .map(str::to_string),
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N as usize, "no duplicates");
    // Backoff grows and is jittered: the attempts of one recipient are not
    // equally spaced, and recipients that failed together do not all retry
    // at the same instant.
    assert!(smtp.attempts() + twilio.attempts() > 3 * N as usize);
    r.shutdown().await;
}

async fn use_smtp(app: &TestApp, org: Uuid, smtp: &FakeSmtp) {
    app.store()
        .put_channel_config(
            org,
            Channel::Email,
            &ChannelConfig::Smtp {
                host: "127.0.0.1".into(),
                port: smtp.port(),
                tls: "none".into(),
                username: None,
                password: None,
                from: "Shop <shop@example.com>".into(),
                mailgun_signing_key: None,
                postmark_password: None,
            },
            T0,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn permanent_failures_and_opt_outs_are_never_retried() {
    let smtp = FakeSmtp::start().await;
    let app = spawn_with(|c| c.allow_private_outbound = true).await;
    let mut c = cart_campaign();
    c.steps.truncate(1);
    let s = shop(&app, "Nudge Perm", c).await;
    use_smtp(&app, s.org, &smtp).await;
    let r = runner(&app).await;
    abandon(&app, &s, 31, "perm@shop.test", "+14155550131").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    smtp.set_failing(SmtpFail::Reply550);
    settle_at(&app, &r, STEP1).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].status, "failed", "{x:?}");
    let attempts = smtp.attempts();
    settle_at(&app, &r, STEP1 + DAY_MS).await;
    assert_eq!(smtp.attempts(), attempts, "a 550 is never retried");

    // A transient failure, then the customer opts out before the retry.
    smtp.set_failing(SmtpFail::Reply451);
    let t1 = STEP1 + 2 * DAY_MS;
    app.clock.set_ms(t1);
    post(
        &app,
        &s,
        "checkouts/create",
        "co-41",
        checkout(41, "opt@shop.test", "+14155550141", t1),
    )
    .await;
    settle_at(&app, &r, t1 + HOUR_MS).await;
    settle_at(&app, &r, t1 + 2 * HOUR_MS).await;
    let x = executions(&app, &s).await;
    let opt = x.iter().find(|e| e.to == "opt@shop.test").unwrap();
    assert_eq!(opt.status, "retrying", "{x:?}");
    app.store()
        .set_opt_out(
            s.org,
            Channel::Email,
            "opt@shop.test".into(),
            true,
            "test".into(),
            t1 + 2 * HOUR_MS,
        )
        .await
        .unwrap();
    smtp.set_failing(SmtpFail::None);
    settle_at(&app, &r, t1 + 3 * DAY_MS).await;
    assert!(smtp.messages().is_empty(), "no send after the opt-out");
    let x = executions(&app, &s).await;
    let opt = x.iter().find(|e| e.to == "opt@shop.test").unwrap();
    assert_eq!(opt.status, "failed");
    r.shutdown().await;
}

#[tokio::test]
async fn an_ambiguous_send_is_unknown_and_never_sent_again() {
    let twilio = FakeTwilio::start().await;
    let base = twilio.base_url();
    let app = spawn_with(|c| {
        c.twilio_base_url = base.clone();
        c.nudge_send_timeout_ms = 300;
    })
    .await;
    let mut c = cart_campaign();
    c.steps.remove(0);
    c.steps[0].delay_ms = HOUR_MS;
    let s = shop(&app, "Nudge Ambiguous", c).await;
    app.store()
        .put_channel_config(
            s.org,
            Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: twilio.account_sid.clone(),
                auth_token: twilio.auth_token.clone(),
                from: "+15005550006".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap();
    twilio.set_failing(TwilioFail::Hang);
    let r = runner(&app).await;
    abandon(&app, &s, 51, "amb@shop.test", "+14155550151").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    settle_at(&app, &r, STEP1).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].status, "unknown", "{x:?}");
    twilio.set_failing(TwilioFail::None);
    settle_at(&app, &r, STEP1 + 10 * DAY_MS).await;
    assert_eq!(twilio.messages().len(), 0, "not sent again");
    assert_eq!(twilio.attempts(), 1);
    assert_eq!(executions(&app, &s).await[0].status, "unknown");
    r.shutdown().await;
}

/// Clock jumps and daylight-saving changes for nudges: customers enrolled over two days around the
/// US spring-forward change, a two-step campaign with quiet hours in the
/// tenant's zone (America/New_York), and a clock that walks in uneven
/// steps with jumps of +48 h and −2 h. Every step goes out exactly once,
/// never before its time, and never inside quiet hours.
#[tokio::test]
async fn r10_clock_jumps_and_dst_neither_double_nor_hasten_nor_break_quiet_hours() {
    use rand::{Rng, SeedableRng};
    const N: u64 = 120;
    // 2026-03-07 12:00 UTC: New York springs forward on 2026-03-08 02:00.
    const START: i64 = 1_772_884_800_000;
    let app = spawn_app().await;
    app.clock.set_ms(START);
    let src = crate::intake::source(&app, "Nudge R10", "segment").await;
    app.store()
        .set_nudge_settings(
            src.org,
            &bos_store::nudge::NudgeSettings {
                timezone: "America/New_York".into(),
                windows: Default::default(),
                cap: Default::default(),
            },
            START,
        )
        .await
        .unwrap();
    let quiet = QuietHours {
        start_minute: 21 * 60,
        end_minute: 8 * 60,
    };
    let c = Campaign {
        name: "Visit follow-up".into(),
        trigger: Trigger::Event {
            name: "Visit".into(),
        },
        steps: vec![
            Step {
                delay_ms: 5 * HOUR_MS,
                channel: Channel::Email,
                variants: vec![variant(Some("Hello"), "Thanks for visiting.")],
            },
            Step {
                delay_ms: DAY_MS,
                channel: Channel::Email,
                variants: vec![variant(Some("Again"), "Anything we can help with?")],
            },
        ],
        stop: StopConditions::default(),
        quiet_hours: Some(quiet),
        max_attempts: 3,
        reentry_cooldown_ms: 0,
        priority: 0,
    };
    c.validate(&[]).unwrap();
    let campaign = Uuid::now_v7();
    app.store()
        .put_campaign(src.org, campaign, &c, CampaignStatus::Active, START)
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let mut visited = std::collections::HashMap::new();
    for i in 0..N {
        // Visits spread over the two days before the walk starts.
        let t = START - rng.gen_range(0..2 * DAY_MS);
        visited.insert(format!("v{i}@r10.test"), t);
        crate::pipeline::segment(
            &app,
            &src.secret,
            "/v1/track",
            json!({"userId": format!("r10-{i}"), "messageId": format!("r10-{i}"), "event": "Visit",
                   "timestamp": at(t), "context": {"traits": {"email": format!("v{i}@r10.test")}}}),
        )
        .await;
    }
    app.state.pipeline.drain().await.unwrap();
    let r = runner(&app).await;
    let mut now = START;
    let end = START + 7 * DAY_MS;
    let mut jumped_forward = false;
    let mut jumped_back = false;
    while now < end {
        let roll = rng.gen_range(0..100);
        now = if roll < 3 && !jumped_forward {
            jumped_forward = true;
            now + 48 * HOUR_MS
        } else if roll < 8 && !jumped_back {
            jumped_back = true;
            now - 2 * HOUR_MS
        } else {
            now + rng.gen_range(60_000..45 * MINUTE_MS)
        };
        settle_at(&app, &r, now).await;
    }
    r.shutdown().await;
    let x = app
        .store()
        .campaign_executions(src.org, campaign, 10_000)
        .await
        .unwrap();
    assert_eq!(x.len() as u64, 2 * N, "two steps each");
    let mut by_enrollment: std::collections::HashMap<Uuid, Vec<&Execution>> = Default::default();
    for e in &x {
        by_enrollment.entry(e.enrollment_id).or_default().push(e);
        let sent = e.sent_at.unwrap();
        assert_eq!(
            bos_core::nudge::next_allowed(sent, "America/New_York", &quiet).unwrap(),
            sent,
            "sent inside quiet hours: {e:?}"
        );
    }
    assert_eq!(by_enrollment.len() as u64, N);
    for (_, mut steps) in by_enrollment {
        steps.sort_by_key(|e| e.step);
        assert_eq!(
            steps.iter().map(|e| e.step).collect::<Vec<_>>(),
            vec![0, 1],
            "each step once"
        );
        let visit = visited[&steps[0].to];
        let (s1, s2) = (steps[0].sent_at.unwrap(), steps[1].sent_at.unwrap());
        assert!(
            s1 >= visit + 5 * HOUR_MS,
            "step 1 early: {s1} < {visit} + 5 h"
        );
        assert!(s2 >= s1 + DAY_MS, "step 2 early: {s2} < {s1} + 1 day");
    }
}

/// The customer's one conversation in the inbox, with its messages.
async fn thread_of(
    app: &TestApp,
    org: Uuid,
    profile: Uuid,
) -> bos_store::inbox::ConversationDetail {
    let page = app
        .state
        .inbox
        .list(
            org,
            None,
            bos_store::inbox::ListQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let c = page
        .items
        .iter()
        .find(|c| c.profile_id == profile)
        .expect("a conversation for the customer");
    app.state.inbox.get(org, c.id, None).await.unwrap()
}

#[tokio::test]
async fn sent_nudges_show_in_the_thread_and_a_human_conversation_holds_the_next() {
    use bos_core::inbox::{AuthorKind, DeliveryStatus, Direction, ASSIGNED_RECHECK_MS};
    let app = spawn_app().await;
    let s = shop(&app, "Nudge Thread", cart_campaign()).await;
    let r = runner(&app).await;
    abandon(&app, &s, 7, "kim@shop.test", "+14155550107").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;
    settle_at(&app, &r, STEP1).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 1);
    let e = x[0].clone();
    // The e-mail nudge is in the customer's thread, as automation, with
    // our Message-ID so a reply threads to it.
    let t = thread_of(&app, s.org, e.profile_id).await;
    assert_eq!(t.messages.len(), 1);
    let m = &t.messages[0];
    assert_eq!(
        (m.direction, m.author_kind, m.status),
        (
            Direction::Outbound,
            AuthorKind::Automation,
            DeliveryStatus::Delivered
        )
    );
    assert_eq!(m.subject.as_deref(), Some("Jo, you left something"));
    assert_eq!(m.text, e.body);
    assert_eq!(
        m.email_message_id.as_deref(),
        Some(e.message_id.trim_matches(['<', '>']))
    );
    assert_eq!(m.author_name, "Nudge: Cart reminder");
    // A member takes the conversation: step 2 waits while it is theirs.
    let member = app
        .store()
        .create_user(
            &bos_core::Email::parse("mia@nudge-thread.example").unwrap(),
            "Mia",
            "x",
            false,
            T0,
        )
        .await
        .unwrap();
    app.store()
        .upsert_membership(s.org, member.id, bos_core::Role::Member, T0)
        .await
        .unwrap();
    app.state
        .inbox
        .assign(s.org, t.conversation.id, Some(member.id), STEP1 + 1)
        .await
        .unwrap();
    settle_at(&app, &r, STEP2).await;
    settle_at(&app, &r, STEP2 + ASSIGNED_RECHECK_MS - 1).await;
    assert_eq!(
        executions(&app, &s).await.len(),
        1,
        "held while a member has it"
    );
    // Resolved: the next look sends step 2, and it is in the thread too.
    app.state
        .inbox
        .resolve(s.org, t.conversation.id, STEP2 + 2)
        .await
        .unwrap();
    settle_at(&app, &r, STEP2 + ASSIGNED_RECHECK_MS).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 2, "{x:?}");
    let t = thread_of(&app, s.org, e.profile_id).await;
    assert_eq!(t.messages.len(), 2);
    assert_eq!(t.messages[1].channel, bos_core::inbox::Channel::Sms);
    assert_eq!(t.messages[1].author_kind, AuthorKind::Automation);
    // No second timeline line for a nudge: entered + two sends.
    let nudge_lines = app
        .timeline(s.org, e.profile_id)
        .await
        .into_iter()
        .filter(|l| l.kind == "nudge")
        .count();
    assert_eq!(nudge_lines, 3);
    r.shutdown().await;
}

/// The customer's conversations in the inbox (none when the inbox has not
/// heard of them).
async fn threads_of(app: &TestApp, org: Uuid, profile: Uuid) -> usize {
    let page = app
        .state
        .inbox
        .list(
            org,
            None,
            bos_store::inbox::ListQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    page.items
        .iter()
        .filter(|c| c.profile_id == profile)
        .count()
}

/// No inbox write lost: a nudge sent while the inbox cannot be written is
/// still shown in the customer's thread, once, by the timer committed with
/// the send, retried with backoff until the inbox takes it.
#[tokio::test]
async fn a_sent_nudge_the_inbox_refused_is_shown_once_it_can() {
    use bos_store::inbox::{INBOX_COPY_GRACE_MS, INBOX_NUDGE_JOB};
    let app = spawn_app().await;
    let s = shop(&app, "Nudge Outage", cart_campaign()).await;
    let r = runner(&app).await;
    abandon(&app, &s, 8, "lee@shop.test", "+14155550108").await;
    settle_at(&app, &r, T0 + HOUR_MS).await;

    app.store().break_inbox_writes_for_test(true).await.unwrap();
    settle_at(&app, &r, STEP1).await;
    let x = executions(&app, &s).await;
    assert_eq!(x.len(), 1);
    assert!(x[0].sent_at.is_some(), "sent: {:?}", x[0]);
    let profile = x[0].profile_id;
    assert_eq!(
        threads_of(&app, s.org, profile).await,
        0,
        "the inbox is down"
    );
    // The timer's first try, still down: it fails and waits its backoff.
    settle_at(&app, &r, STEP1 + INBOX_COPY_GRACE_MS).await;
    assert_eq!(threads_of(&app, s.org, profile).await, 0);
    let key = bos_store::inbox::nudge_copy_key(x[0].id);
    let copy = app
        .store()
        .job_by_key(s.org, INBOX_NUDGE_JOB, &key)
        .await
        .unwrap()
        .expect("the copy's timer is kept for another try");
    assert!(
        copy.last_error.as_deref().unwrap_or("").contains("inbox"),
        "{copy:?}"
    );

    // The inbox is back: the next try shows it, once.
    app.store()
        .break_inbox_writes_for_test(false)
        .await
        .unwrap();
    settle_at(&app, &r, STEP1 + INBOX_COPY_GRACE_MS + 10 * MINUTE_MS).await;
    let t = thread_of(&app, s.org, profile).await;
    assert_eq!(t.messages.len(), 1);
    assert_eq!(t.messages[0].text, x[0].body);
    assert_eq!(
        app.store()
            .job_by_key(s.org, INBOX_NUDGE_JOB, &key)
            .await
            .unwrap(),
        None,
        "done"
    );
}
