//! Conformance suite for the nudge store (both engines): enrolling, a due
//! step composing its message with the caller's links, the claim and what
//! became of it (sent, failed and retried, unknown, swept), tracking and
//! unsubscribe tokens, opt-outs, replies, delivery reports, the webhooks'
//! replay guard, and that one
//! tenant never sees or moves another's enrollments, sends or tokens.

use std::sync::Arc;

use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::nudge::{
    campaign::MINUTE_MS, Campaign, Channel, MessageLinks, Step, StopConditions, Trigger, Variant,
};
use bos_core::{OrgName, Slug};
use bos_store::identity::{IdentifyInput, Traits};
use bos_store::nudge::{
    CampaignStatus, ChannelConfig, Claimed, ExecutionStatus, InboundMessage, StepOutcome,
    SENDING_LEASE_MS,
};
use bos_store::nudge_hooks::TestExecution;
use bos_store::testing::TestDb;
use bos_store::Store;
use serde_json::json;
use uuid::Uuid;

const T0: i64 = 1_700_000_000_000;
const CART: &str = "https://shop.example/cart/7";

/// Links under a base no route of the product has, so a URL in a message
/// can only have come from here.
struct FakeLinks;

impl MessageLinks for FakeLinks {
    fn open_pixel(&self, t: &str) -> String {
        format!("https://links.test/open/{t}")
    }
    fn click(&self, t: &str) -> String {
        format!("https://links.test/click/{t}")
    }
    fn unsubscribe(&self, t: &str) -> String {
        format!("https://links.test/unsub/{t}")
    }
    fn delivery_status(&self, h: &str) -> String {
        format!("https://links.test/status/{h}")
    }
}

fn links() -> Arc<dyn MessageLinks> {
    Arc::new(FakeLinks)
}

async fn org(s: &Store, slug: &str) -> Uuid {
    s.create_org(
        &OrgName::parse(slug).unwrap(),
        &Slug::parse(slug).unwrap(),
        1,
    )
    .await
    .unwrap()
    .id
}

async fn customer(s: &Store, org: Uuid, ids: &[Identifier]) -> Uuid {
    s.identify(
        org,
        &IdentityRules::default(),
        &IdentifyInput {
            identifiers: ids.to_vec(),
            traits: Traits {
                first_name: "Ana".into(),
                last_name: "Lima".into(),
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

fn email(v: &str) -> Identifier {
    Identifier::new(IdentifierKind::Email, v)
}

fn phone(v: &str) -> Identifier {
    Identifier::new(IdentifierKind::Phone, v)
}

/// One step, one variant, on `channel`, a minute after the trigger.
fn campaign(channel: Channel, body: &str) -> Campaign {
    Campaign {
        name: "Cart reminder".into(),
        trigger: Trigger::Event {
            name: "cart".into(),
        },
        steps: vec![Step {
            delay_ms: MINUTE_MS,
            channel,
            variants: vec![Variant {
                name: "A".into(),
                weight: 1,
                subject: channel.may_be_email().then(|| "Hi {{ first_name }}".into()),
                body: body.into(),
            }],
        }],
        stop: StopConditions::default(),
        quiet_hours: None,
        max_attempts: 3,
        reentry_cooldown_ms: 0,
        priority: 0,
    }
}

fn smtp() -> ChannelConfig {
    ChannelConfig::Smtp {
        host: "smtp.example.com".into(),
        port: 587,
        tls: "starttls".into(),
        username: None,
        password: Some("secret".into()),
        from: "Shop <shop@example.com>".into(),
        mailgun_signing_key: None,
        postmark_password: None,
    }
}

/// A tenant with an active email campaign and one enrolled customer:
/// (org, campaign, customer, enrollment).
async fn enrolled(s: &Store, slug: &str, channel: Channel) -> (Uuid, Uuid, Uuid, Uuid) {
    let org = org(s, slug).await;
    let cid = Uuid::now_v7();
    let body = "Hi {{ first_name }}, your cart: {{ cart_url }}\nSee you";
    s.put_campaign(
        org,
        cid,
        &campaign(channel, body),
        CampaignStatus::Active,
        T0,
    )
    .await
    .unwrap();
    let who = customer(
        s,
        org,
        &[email(&format!("ana@{slug}.test")), phone("+14155550151")],
    )
    .await;
    let (n, timers) = s
        .trigger_for_test(
            org,
            who,
            "event",
            Some("cart".into()),
            json!({ "cart_url": CART }),
            T0,
        )
        .await
        .unwrap();
    assert_eq!((n, timers), (1, vec![T0 + MINUTE_MS]));
    let e = s.enrollments_for_profile(org, who).await.unwrap();
    assert_eq!(e.len(), 1);
    (org, cid, who, e[0].id)
}

async fn claim(s: &Store, org: Uuid, enrollment: Uuid) -> Claimed {
    let (out, _) = s
        .nudge_step(org, enrollment, T0 + MINUTE_MS, 1, links())
        .await
        .unwrap();
    match out {
        StepOutcome::Send(c) => *c,
        other => panic!("expected a send, got {other:?}"),
    }
}

/// An enrolled customer's email step claimed through SMTP, failed once and
/// waiting for its retry: (org, campaign, customer, enrollment, claim).
async fn retrying(s: &Store, slug: &str) -> (Uuid, Uuid, Uuid, Uuid, Claimed) {
    let (org, cid, who, enrollment) = enrolled(s, slug, Channel::Email).await;
    s.put_channel_config(org, Channel::Email, &smtp(), T0)
        .await
        .unwrap();
    let c = claim(s, org, enrollment).await;
    s.execution_failed(org, c.execution_id, "busy".into(), Some(T0 + 10), T0)
        .await
        .unwrap();
    (org, cid, who, enrollment, c)
}

async fn status(s: &Store, org: Uuid, exec: Uuid) -> String {
    s.test_execution_state(org, exec)
        .await
        .unwrap()
        .expect("execution")
        .status
}

#[tokio::test]
async fn a_step_composes_its_message_with_the_given_links() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let (org, cid, who, enrollment) = enrolled(s, "acme", Channel::Email).await;
    s.put_channel_config(org, Channel::Email, &smtp(), T0)
        .await
        .unwrap();
    // Early: the step waits for its time.
    let (early, _) = s
        .nudge_step(org, enrollment, T0 + 1, 1, links())
        .await
        .unwrap();
    assert!(
        matches!(early, StepOutcome::Wait(t) if t == T0 + MINUTE_MS),
        "{early:?}"
    );
    let c = claim(s, org, enrollment).await;
    let x = s.campaign_executions(org, cid, 10).await.unwrap();
    assert_eq!(x.len(), 1);
    let tok = &x[0].token;
    assert_eq!(x[0].status, "sending");
    assert_eq!((c.profile_id, c.campaign_id), (who, cid));
    assert_eq!(c.to, "ana@acme.test");
    assert_eq!(c.subject.as_deref(), Some("Hi Ana"));
    assert_eq!(
        c.text,
        format!(
            "Hi Ana, your cart: https://links.test/click/{tok}\nSee you\n\n\
             Unsubscribe: https://links.test/unsub/{tok}"
        )
    );
    let html = c.html.clone().expect("an HTML part");
    assert!(
        html.contains(&format!("src=\"https://links.test/open/{tok}\"")),
        "{html}"
    );
    assert!(
        html.contains(&format!("href=\"https://links.test/unsub/{tok}\"")),
        "{html}"
    );
    assert_eq!(
        c.unsubscribe_url.as_deref(),
        Some(format!("https://links.test/unsub/{tok}").as_str())
    );
    // The channel's webhook key makes a delivery-report URL, from the links.
    let hook = s.channel_settings(org).await.unwrap()[0]
        .hook_key
        .clone()
        .expect("a webhook key");
    assert_eq!(
        c.status_callback,
        Some(format!("https://links.test/status/{hook}"))
    );
    // The same step again (a replayed job) sends nothing more.
    let (again, _) = s
        .nudge_step(org, enrollment, T0 + MINUTE_MS, 1, links())
        .await
        .unwrap();
    assert!(matches!(again, StepOutcome::Nothing(_)), "{again:?}");
    // The provider took it.
    s.execution_sent(
        org,
        c.execution_id,
        Some("p-1".into()),
        false,
        T0 + MINUTE_MS,
    )
    .await
    .unwrap();
    assert_eq!(status(s, org, c.execution_id).await, "sent");
    // The click leads to the cart, the open and the click are recorded.
    assert!(s.track_open(tok.clone(), T0 + 2 * MINUTE_MS).await.unwrap());
    assert_eq!(
        s.track_click(tok.clone(), T0 + 3 * MINUTE_MS)
            .await
            .unwrap()
            .as_deref(),
        Some(CART)
    );
    let st = s
        .test_execution_state(org, c.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (st.opened_at, st.clicked_at),
        (Some(T0 + 2 * MINUTE_MS), Some(T0 + 3 * MINUTE_MS))
    );
    assert!(!s.track_open("nope".into(), T0).await.unwrap());
    assert_eq!(s.track_click("nope".into(), T0).await.unwrap(), None);
}

#[tokio::test]
async fn a_preview_uses_the_given_links_and_stores_nothing() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let (org, cid, who, _) = enrolled(s, "acme", Channel::Email).await;
    let c = campaign(Channel::Email, "Cart: {{ cart_url }}");
    let p = s
        .preview(org, Some(cid), &c, 0, 0, who, &FakeLinks)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.channel, "email");
    assert!(
        p.text.starts_with("Cart: https://links.test/click/preview"),
        "{}",
        p.text
    );
    assert!(s
        .campaign_executions(org, cid, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn sms_through_twilio_carries_the_delivery_status_link() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let (org, _, _, enrollment) = enrolled(s, "acme", Channel::Sms).await;
    let hook = s
        .put_channel_config(
            org,
            Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: "AC1".into(),
                auth_token: "t".into(),
                from: "+15555550000".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap();
    let c = claim(s, org, enrollment).await;
    assert_eq!(c.channel, Channel::Sms);
    assert_eq!(c.to, "+14155550151");
    assert_eq!((c.html.as_ref(), c.unsubscribe_url.as_ref()), (None, None));
    assert_eq!(
        c.status_callback,
        Some(format!("https://links.test/status/{hook}"))
    );
    assert!(c.text.contains("https://links.test/click/"), "{}", c.text);
    // Reports apply forward only, and only to this tenant's message.
    s.execution_sent(org, c.execution_id, Some("SM1".into()), false, T0)
        .await
        .unwrap();
    let other = org_of(s, "other").await;
    assert!(!s
        .delivery_status(other, "SM1".into(), ExecutionStatus::Delivered, None, T0)
        .await
        .unwrap());
    assert!(s
        .delivery_status(org, "SM1".into(), ExecutionStatus::Delivered, None, T0 + 5)
        .await
        .unwrap());
    assert!(!s
        .delivery_status(org, "SM1".into(), ExecutionStatus::Sent, None, T0 + 6)
        .await
        .unwrap());
    let st = s
        .test_execution_state(org, c.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (st.status.as_str(), st.delivered_at),
        ("delivered", Some(T0 + 5))
    );
}

async fn org_of(s: &Store, slug: &str) -> Uuid {
    org(s, slug).await
}

#[tokio::test]
async fn the_development_sink_delivers_in_the_steps_commit() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let (org, cid, _, enrollment) = enrolled(s, "acme", Channel::Email).await;
    let (out, _) = s
        .nudge_step(org, enrollment, T0 + MINUTE_MS, 1, links())
        .await
        .unwrap();
    let StepOutcome::Delivered {
        execution: exec,
        shown_in,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(status(s, org, exec).await, "delivered");
    let outbox = s.outbox(org, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].body.contains("https://links.test/click/"));
    // Shown in the customer's conversation by the same commit, as
    // automation, already delivered, with nothing left for a timer.
    let thread = s
        .conversation(org, shown_in.expect("shown in the inbox"), None)
        .await
        .unwrap();
    assert_eq!(thread.messages.len(), 1);
    let m = &thread.messages[0];
    assert_eq!(m.author_kind, bos_core::inbox::AuthorKind::Automation);
    assert_eq!(m.status, bos_core::inbox::DeliveryStatus::Delivered);
    assert_eq!(m.text, outbox[0].body);
    assert_eq!(thread.conversation.message_count, 1);
    assert_eq!(
        s.job_by_key(
            org,
            bos_store::inbox::INBOX_NUDGE_JOB,
            &bos_store::inbox::nudge_copy_key(exec)
        )
        .await
        .unwrap(),
        None
    );
    // The sequence had one step: it is over.
    let (st, _) = s.enrollment_status(org, enrollment).await.unwrap().unwrap();
    assert_eq!(st, "stopped");
    assert_eq!(s.campaign_stats(org, cid).await.unwrap().delivered, 1);
}

#[tokio::test]
async fn failures_retry_give_up_or_become_unknown_and_the_sweep_ends_stuck_sends() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    // A transient failure: retried later, claimed again with the same
    // message and links.
    let (org, _, who, _, c) = retrying(s, "acme").await;
    assert_eq!(status(s, org, c.execution_id).await, "retrying");
    let r = s
        .claim_retry(org, c.execution_id, T0 + 10, links())
        .await
        .unwrap()
        .expect("claimed again");
    assert_eq!(r.attempt, 2);
    assert_eq!(r.text, c.text);
    let html = r.html.expect("an HTML part");
    assert!(html.contains("https://links.test/open/"), "{html}");
    assert_eq!(r.unsubscribe_url, c.unsubscribe_url);
    // Only a retrying send can be claimed.
    assert!(s
        .claim_retry(org, c.execution_id, T0 + 11, links())
        .await
        .unwrap()
        .is_none());
    // The provider may have sent it: unknown, never sent again.
    s.execution_unknown(org, c.execution_id, "timeout".into(), T0 + 12)
        .await
        .unwrap();
    assert_eq!(status(s, org, c.execution_id).await, "unknown");
    // Failing for good.
    let x = s
        .insert_test_execution(org, test_exec(who, "sending", "tok-f"), T0)
        .await
        .unwrap();
    s.execution_failed(org, x, "bad address".into(), None, T0)
        .await
        .unwrap();
    assert_eq!(status(s, org, x).await, "failed");
    // A send left `sending` past the lease was cut off by a crash.
    let stuck = s
        .insert_test_execution(org, test_exec(who, "sending", "tok-s"), T0)
        .await
        .unwrap();
    assert_eq!(s.sweep_sending(T0 + 1, SENDING_LEASE_MS).await.unwrap(), 0);
    assert_eq!(
        s.sweep_sending(T0 + SENDING_LEASE_MS + 1, SENDING_LEASE_MS)
            .await
            .unwrap(),
        1
    );
    assert_eq!(status(s, org, stuck).await, "unknown");
}

fn test_exec(profile: Uuid, status: &str, token: &str) -> TestExecution {
    TestExecution {
        profile_id: profile,
        channel: Channel::Email,
        to: "ana@acme.test".into(),
        status: status.into(),
        provider_id: None,
        token: token.into(),
        link_url: None,
        message_id: format!("{token}@bos.nudge"),
    }
}

#[tokio::test]
async fn unsubscribing_opts_the_address_out_and_ends_the_sequence() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    // The retry that was waiting must not go out after the opt-out.
    let (org, cid, _, _, c) = retrying(s, "acme").await;
    let tok = s.campaign_executions(org, cid, 1).await.unwrap()[0]
        .token
        .clone();
    let (t_org, _, ch, addr, already) = s
        .unsubscribe_target(tok.clone())
        .await
        .unwrap()
        .expect("a known token");
    assert_eq!(
        (t_org, ch, addr.as_str(), already),
        (org, Channel::Email, "ana@acme.test", false)
    );
    assert!(s.unsubscribe(tok.clone(), T0 + 5).await.unwrap());
    assert!(s
        .is_opted_out(org, Channel::Email, "ana@acme.test")
        .await
        .unwrap());
    assert!(s.unsubscribe_target(tok).await.unwrap().unwrap().4);
    assert_eq!(status(s, org, c.execution_id).await, "failed");
    assert!(s
        .claim_retry(org, c.execution_id, T0 + 10, links())
        .await
        .unwrap()
        .is_none());
    let outs = s.opt_outs(org, 10).await.unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].source, "unsubscribe link");
    assert!(!s.unsubscribe("nope".into(), T0).await.unwrap());
    // Opting back in from the UI.
    s.set_opt_out(
        org,
        Channel::Email,
        "ana@acme.test".into(),
        false,
        "ui".into(),
        T0 + 6,
    )
    .await
    .unwrap();
    assert!(!s
        .is_opted_out(org, Channel::Email, "ana@acme.test")
        .await
        .unwrap());
}

#[tokio::test]
async fn a_reply_stops_the_sequence_and_a_keyword_opts_out() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let org = org(s, "acme").await;
    let cid = Uuid::now_v7();
    let mut two = campaign(Channel::Email, "Hi {{ first_name }}");
    two.steps.push(two.steps[0].clone());
    s.put_campaign(org, cid, &two, CampaignStatus::Active, T0)
        .await
        .unwrap();
    let who = customer(s, org, &[email("ana@acme.test"), phone("+14155550151")]).await;
    s.trigger_for_test(org, who, "event", Some("cart".into()), json!({}), T0)
        .await
        .unwrap();
    let enrollment = s.enrollments_for_profile(org, who).await.unwrap()[0].id;
    let (out, _) = s
        .nudge_step(org, enrollment, T0 + MINUTE_MS, 1, links())
        .await
        .unwrap();
    let StepOutcome::Delivered {
        execution: exec, ..
    } = out
    else {
        panic!("{out:?}")
    };
    let x = s.campaign_executions(org, cid, 1).await.unwrap();
    let reply = |id: &str, opt| InboundMessage {
        channel: Channel::Email,
        from: "Ana@Acme.test".into(),
        to: "shop@example.com".into(),
        subject: Some("Re: Hi".into()),
        text: "Thanks!".into(),
        provider_id: id.into(),
        provider: "postmark".into(),
        in_reply_to: vec![format!("<{}>", x[0].message_id)],
        opt,
    };
    let o = s
        .inbound_message(org, reply("m1", None), T0 + 2 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!((o.profile_id, o.duplicate, o.stopped), (who, false, 1));
    let (st, why) = s.enrollment_status(org, enrollment).await.unwrap().unwrap();
    assert_eq!((st.as_str(), why.as_deref()), ("stopped", Some("replied")));
    assert_eq!(
        s.test_execution_state(org, exec)
            .await
            .unwrap()
            .unwrap()
            .replied_at,
        Some(T0 + 2 * MINUTE_MS)
    );
    // The same message again is recorded once.
    let again = s
        .inbound_message(org, reply("m1", None), T0 + 3 * MINUTE_MS)
        .await
        .unwrap();
    assert!(again.duplicate);
    // A STOP by SMS opts the number out.
    let stop = InboundMessage {
        channel: Channel::Sms,
        from: "+14155550151".into(),
        to: "+15555550000".into(),
        subject: None,
        text: "STOP".into(),
        provider_id: "SM9".into(),
        provider: "twilio".into(),
        in_reply_to: vec![],
        opt: Some(true),
    };
    let o = s
        .inbound_message(org, stop, T0 + 4 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!((o.profile_id, o.opted), (who, Some(true)));
    assert!(s
        .is_opted_out(org, Channel::Sms, "+14155550151")
        .await
        .unwrap());
}

#[tokio::test]
async fn one_tenant_never_sees_or_moves_anothers_nudges() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let (a, cid, who, enrollment) = enrolled(s, "acme", Channel::Email).await;
    s.put_channel_config(a, Channel::Email, &smtp(), T0)
        .await
        .unwrap();
    let b = org(s, "globex").await;
    // B cannot step, remove or read A's enrollment.
    let (out, timers) = s
        .nudge_step(b, enrollment, T0 + MINUTE_MS, 1, links())
        .await
        .unwrap();
    assert!(matches!(out, StepOutcome::Nothing(_)), "{out:?}");
    assert!(timers.is_empty());
    assert!(!s.remove_enrollment(b, enrollment, T0).await.unwrap());
    assert_eq!(s.enrollment_status(b, enrollment).await.unwrap(), None);
    assert_eq!(s.enrollment_owner(b, enrollment).await.unwrap(), None);
    assert!(s.enrollments_for_profile(b, who).await.is_err());
    // A's send is A's alone.
    let c = claim(s, a, enrollment).await;
    s.execution_failed(a, c.execution_id, "busy".into(), Some(T0 + 10), T0)
        .await
        .unwrap();
    assert!(s
        .claim_retry(b, c.execution_id, T0 + 10, links())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.test_execution_state(b, c.execution_id).await.unwrap(),
        None
    );
    assert!(s.campaign_executions(b, cid, 10).await.unwrap().is_empty());
    assert_eq!(s.campaign(b, cid).await.unwrap(), None);
    assert!(s.outbox(b, 10).await.unwrap().is_empty());
    // B's failure report does not touch it.
    s.execution_unknown(b, c.execution_id, "x".into(), T0)
        .await
        .unwrap();
    assert_eq!(status(s, a, c.execution_id).await, "retrying");
    // A's token acts only on A: the unsubscribe opts the address out for
    // A, not for B.
    let tok = s.campaign_executions(a, cid, 1).await.unwrap()[0]
        .token
        .clone();
    assert!(s.unsubscribe(tok, T0).await.unwrap());
    assert!(s
        .is_opted_out(a, Channel::Email, "ana@acme.test")
        .await
        .unwrap());
    assert!(!s
        .is_opted_out(b, Channel::Email, "ana@acme.test")
        .await
        .unwrap());
    assert!(s.opt_outs(b, 10).await.unwrap().is_empty());
    // B's campaigns with the same trigger do not enroll A's customer.
    assert_eq!(
        s.trigger_for_test(b, who, "event", Some("cart".into()), json!({}), T0)
            .await
            .unwrap()
            .0,
        0
    );
}

#[tokio::test]
async fn a_webhook_token_is_accepted_once_per_tenant_until_it_expires_or_is_released() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let (a, b) = (org(s, "acme").await, org(s, "globex").await);
    let exp = T0 + 60_000;
    assert!(s
        .claim_hook_token(a, "mailgun", "t1", T0, exp)
        .await
        .unwrap());
    // The same token again is a replay, for this tenant only.
    assert!(!s
        .claim_hook_token(a, "mailgun", "t1", T0 + 1, exp)
        .await
        .unwrap());
    assert!(s
        .claim_hook_token(b, "mailgun", "t1", T0, exp)
        .await
        .unwrap());
    // Another provider keeps its own tokens.
    assert!(s
        .claim_hook_token(a, "postmark", "t1", T0, exp)
        .await
        .unwrap());
    // A delivery that was not stored gives its token back for the retry.
    s.release_hook_token(a, "mailgun", "t1").await.unwrap();
    assert!(s
        .claim_hook_token(a, "mailgun", "t1", T0 + 2, exp)
        .await
        .unwrap());
    // Expired tokens of the tenant go with its next claim; another
    // tenant's rows are untouched.
    assert!(s
        .claim_hook_token(a, "mailgun", "t2", exp, exp + 60_000)
        .await
        .unwrap());
    assert_eq!(
        s.hook_token_count(a).await.unwrap(),
        2,
        "postmark t1 and mailgun t2"
    );
    assert_eq!(s.hook_token_count(b).await.unwrap(), 1);
    // After expiry the same token is new again.
    assert!(s
        .claim_hook_token(a, "postmark", "t1", exp, exp + 60_000)
        .await
        .unwrap());
}
