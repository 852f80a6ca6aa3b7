//! Replies from the inbox without HTTP (both engines): each channel reaches
//! a local fake of its provider with the provider's fields and auth; the
//! e-mail reply threads under the customer's e-mail; a closed channel (opted
//! out, Meta's window over, no address) is refused before anything is
//! written or sent; and a reply is sent at most once — a crash between its
//! write and the provider's answer leaves it `unknown`, never sent again.

use std::sync::Arc;
use std::time::Duration;

use bos_channels::fake::{FakeSmtp, FakeTwilio, TwilioFail};
use bos_channels::meta::fake::FakeMeta;
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::inbox::{AuthorKind, Channel, DeliveryStatus};
use bos_core::{Email, OrgName, Role, Slug};
use bos_engine::inbox::{
    reply::BoxFuture, Inbound, Inbox, InboxError, Outbound, PageTokens, Reply, ReplyBy,
};
use bos_engine::Bus;
use bos_store::identity::{IdentifyInput, TimelineQuery, Traits};
use bos_store::inbox::{OutboundMessage, ReplyWritten};
use bos_store::nudge::ChannelConfig;
use bos_store::testing::TestDb;
use bos_store::{Store, StoreError};
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;
const PHONE: &str = "+14155550123";
const EMAIL: &str = "ann@example.com";
const IGSID: &str = "17841400000000123";

/// A connected Meta page whose token is the fake's.
struct Page(String);

impl PageTokens for Page {
    fn page_token<'a>(
        &'a self,
        _org: Uuid,
        _channel: Channel,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(std::future::ready(Ok(Some(self.0.clone()))))
    }
}

struct Env {
    db: TestDb,
    org: Uuid,
    member: Uuid,
    customer: Uuid,
    bus: Bus,
}

impl Env {
    fn store(&self) -> &Store {
        &self.db.store
    }

    fn inbox(&self, outbound: Outbound) -> Inbox {
        Inbox::new(self.store().clone(), self.bus.clone()).with_outbound(outbound)
    }
}

async fn setup() -> Env {
    let db = TestDb::new().await.expect("test database");
    let s = &db.store;
    let org = s
        .create_org(
            &OrgName::parse("Replies").unwrap(),
            &Slug::from_name("Replies").unwrap(),
            T0,
        )
        .await
        .unwrap()
        .id;
    let user = s
        .create_user(
            &Email::parse("mia@shop.example").unwrap(),
            "Mia",
            "x",
            false,
            T0,
        )
        .await
        .unwrap();
    s.upsert_membership(org, user.id, Role::Member, T0)
        .await
        .unwrap();
    let customer = s
        .identify(
            org,
            &IdentityRules::default(),
            &IdentifyInput {
                identifiers: vec![
                    Identifier::new(IdentifierKind::Email, EMAIL),
                    Identifier::new(IdentifierKind::Phone, PHONE),
                    Identifier::new(IdentifierKind::InstagramId, IGSID),
                ],
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
        .profile_id;
    let bus = Bus::new(s.clone());
    Env {
        db,
        org,
        member: user.id,
        customer,
        bus,
    }
}

fn outbound() -> Outbound {
    Outbound {
        send_timeout: Duration::from_secs(5),
        allow_private_hosts: true,
        ..Outbound::default()
    }
}

async fn inbound(e: &Env, inbox: &Inbox, m: Inbound, at: i64) -> Uuid {
    inbox
        .record_inbound(e.org, m, at)
        .await
        .unwrap()
        .conversation_id()
}

fn sms_in(e: &Env, sid: &str) -> Inbound {
    Inbound {
        provider_message_id: Some(sid.into()),
        ..Inbound::text(e.customer, Channel::Sms, "Where is my order?")
    }
}

fn reply(channel: Channel, text: &str) -> Reply {
    Reply {
        channel,
        text: text.into(),
        subject: None,
    }
}

async fn twilio_channel(e: &Env, fake: &FakeTwilio) {
    e.store()
        .put_channel_config(
            e.org,
            bos_core::nudge::Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: fake.account_sid.clone(),
                auth_token: fake.auth_token.clone(),
                from: "+14155550100".into(),
                webhook_shared_key: None,
            },
            T0,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_sms_reply_reaches_twilio_once_and_lands_on_the_timeline() {
    let e = setup().await;
    let twilio = FakeTwilio::start().await;
    twilio_channel(&e, &twilio).await;
    let inbox = e.inbox(Outbound {
        twilio_base_url: twilio.base_url(),
        ..outbound()
    });
    let conv = inbound(&e, &inbox, sms_in(&e, "SMin1"), T0).await;
    let mut live = e.bus.subscribe(e.org);

    let sent = inbox
        .reply(
            e.org,
            e.member,
            conv,
            reply(Channel::Sms, "  On its way!  "),
            T0 + 60_000,
        )
        .await
        .unwrap();
    assert_eq!(
        sent.status,
        DeliveryStatus::Sent,
        "{:?}",
        sent.status_detail
    );
    assert_eq!(sent.author_kind, AuthorKind::Member);
    assert_eq!(sent.author_name, "Mia");
    assert_eq!(sent.author_id, Some(e.member.to_string()));
    assert_eq!(sent.text, "On its way!");
    let sms = twilio.messages();
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0].to, PHONE);
    assert_eq!(sms[0].from, "+14155550100");
    assert_eq!(sms[0].body, "On its way!");
    // Twilio's id is kept, so its delivery reports find the message.
    assert!(sent
        .provider_message_id
        .as_deref()
        .is_some_and(|id| id.starts_with("SM")));
    assert!(live.try_recv().is_some(), "live views are told");

    let d = inbox.get(e.org, conv, None).await.unwrap();
    assert_eq!(d.messages.len(), 2);
    assert_eq!(d.messages[1].id, sent.id);
    assert_eq!(d.conversation.waiting_since, None, "answered");
    let timeline = e
        .store()
        .timeline(
            e.org,
            e.customer,
            &TimelineQuery {
                limit: 50,
                ..TimelineQuery::default()
            },
        )
        .await
        .unwrap();
    let out: Vec<_> = timeline
        .iter()
        .filter(|t| t.kind == "message_out")
        .collect();
    assert_eq!(out.len(), 1, "{timeline:?}");
    assert_eq!(out[0].summary, "Mia replied on SMS");
}

#[tokio::test]
async fn an_email_reply_threads_under_the_customers_email() {
    let e = setup().await;
    let smtp = FakeSmtp::start().await;
    e.store()
        .put_channel_config(
            e.org,
            bos_core::nudge::Channel::Email,
            &ChannelConfig::Smtp {
                host: smtp.addr().ip().to_string(),
                port: smtp.port(),
                tls: "none".into(),
                username: None,
                password: None,
                from: "Shop <help@mail.shop.example>".into(),
                mailgun_signing_key: None,
                postmark_password: None,
            },
            T0,
        )
        .await
        .unwrap();
    let inbox = e.inbox(outbound());
    let conv = inbound(
        &e,
        &inbox,
        Inbound {
            provider_message_id: Some("mg-1".into()),
            subject: Some("Re: Order 12".into()),
            email_message_id: Some("<c2@mail.example.com>".into()),
            in_reply_to: Some("c1@mail.example.com".into()),
            references: vec!["c0@mail.example.com".into(), "c1@mail.example.com".into()],
            ..Inbound::text(e.customer, Channel::Email, "Any news on order 12?")
        },
        T0,
    )
    .await;

    let sent = inbox
        .reply(
            e.org,
            e.member,
            conv,
            reply(Channel::Email, "It ships today."),
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(
        sent.status,
        DeliveryStatus::Sent,
        "{:?}",
        sent.status_detail
    );
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, vec![EMAIL.to_string()]);
    assert_eq!(mail[0].from, "help@mail.shop.example");
    // Long headers are folded onto continuation lines; read them unfolded.
    let data = &mail[0].data.replace("\r\n ", " ");
    assert!(data.contains("Subject: Re: Order 12\r\n"), "{data}");
    assert!(
        data.contains("In-Reply-To: <c2@mail.example.com>\r\n"),
        "{data}"
    );
    assert!(
        data.contains(
            "References: <c0@mail.example.com> <c1@mail.example.com> <c2@mail.example.com>\r\n"
        ),
        "{data}"
    );
    // Our own Message-ID, at the sending domain, kept so the customer's
    // answer to this reply threads back to it.
    let id = sent.email_message_id.clone().unwrap();
    assert!(id.ends_with("@mail.shop.example"), "{id}");
    assert!(data.contains(&format!("Message-ID: <{id}>\r\n")), "{data}");
    assert_eq!(sent.in_reply_to.as_deref(), Some("c2@mail.example.com"));
    assert_eq!(sent.references.len(), 3);
    assert_eq!(sent.subject.as_deref(), Some("Re: Order 12"));

    // A second reply answers the newest e-mail: ours.
    inbox
        .reply(
            e.org,
            e.member,
            conv,
            reply(Channel::Email, "Tracking: 123."),
            T0 + 2,
        )
        .await
        .unwrap();
    let data = &smtp.messages()[1].data.replace("\r\n ", " ");
    assert!(data.contains(&format!("In-Reply-To: <{id}>\r\n")), "{data}");
    assert!(data.contains("Subject: Re: Order 12\r\n"), "{data}");
}

#[tokio::test]
async fn an_email_to_someone_who_never_wrote_gets_a_default_subject() {
    let e = setup().await;
    let inbox = e.inbox(outbound());
    let conv = inbound(&e, &inbox, sms_in(&e, "SMin2"), T0).await;
    // No subject typed and no e-mail to answer: one naming the sender.
    let sent = inbox
        .reply(
            e.org,
            e.member,
            conv,
            reply(Channel::Email, "Hello"),
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(sent.status, DeliveryStatus::Delivered);
    assert_eq!(sent.subject.as_deref(), Some("A message from Replies"));
    assert_eq!(sent.in_reply_to, None);
    let first = sent;
    // A typed subject on the next one answers the thread we started.
    let sent = inbox
        .reply(
            e.org,
            e.member,
            conv,
            Reply {
                subject: Some("Your order".into()),
                ..reply(Channel::Email, "Hello")
            },
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(sent.status, DeliveryStatus::Delivered);
    assert_eq!(sent.subject.as_deref(), Some("Re: Your order"));
    assert_eq!(sent.in_reply_to, first.email_message_id);
}

#[tokio::test]
async fn instagram_replies_go_through_the_send_api_inside_the_window_only() {
    let e = setup().await;
    let meta = FakeMeta::start().await;
    let inbox = e.inbox(Outbound {
        meta_base_url: meta.base_url(),
        pages: Arc::new(Page(meta.page_access_token.clone())),
        ..outbound()
    });
    let conv = inbound(
        &e,
        &inbox,
        Inbound {
            provider_message_id: Some("mid.1".into()),
            ..Inbound::text(e.customer, Channel::Instagram, "Do you ship to Lyon?")
        },
        T0,
    )
    .await;

    let sent = inbox
        .reply(
            e.org,
            e.member,
            conv,
            reply(Channel::Instagram, "We do!"),
            T0 + HOUR,
        )
        .await
        .unwrap();
    assert_eq!(
        sent.status,
        DeliveryStatus::Sent,
        "{:?}",
        sent.status_detail
    );
    let got = meta.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].recipient_id, IGSID);
    assert_eq!(got[0].text, "We do!");
    assert_eq!(got[0].messaging_type, "RESPONSE");
    assert_eq!(
        sent.provider_message_id.as_deref(),
        Some(got[0].mid.as_str())
    );

    // 27 hours after the customer's message: a member's reply goes out
    // with Meta's human agent tag.
    let late = T0 + 27 * HOUR;
    let tagged = inbox
        .reply(
            e.org,
            e.member,
            conv,
            reply(Channel::Instagram, "Sorry for the wait"),
            late,
        )
        .await
        .unwrap();
    assert_eq!(
        tagged.status,
        DeliveryStatus::Sent,
        "{:?}",
        tagged.status_detail
    );
    let got = meta.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].messaging_type, "MESSAGE_TAG");
    assert_eq!(got[1].tag, "HUMAN_AGENT");
    assert_eq!(got[1].text, "Sorry for the wait");

    // An integration may not use the tag: refused before any call.
    let channels = inbox
        .reply_channels(e.org, conv, late, false)
        .await
        .unwrap();
    let ig = channels
        .iter()
        .find(|c| c.channel == Channel::Instagram)
        .unwrap();
    assert!(!ig.available);
    let why = ig.why_not.clone().unwrap();
    assert!(
        why.contains("24 hours") && why.contains("27 hours ago"),
        "{why}"
    );
    let err = inbox
        .reply_as(
            e.org,
            ReplyBy::ApiKey {
                id: Uuid::now_v7(),
                name: "Zap".into(),
            },
            conv,
            reply(Channel::Instagram, "Still there?"),
            late,
        )
        .await
        .unwrap_err();
    match err {
        InboxError::CannotSend(s) => assert_eq!(s, why),
        other => panic!("{other:?}"),
    }

    // After 7 days nobody may: the composer says so and refuses.
    let later = T0 + 8 * 24 * HOUR;
    let channels = inbox
        .reply_channels(e.org, conv, later, true)
        .await
        .unwrap();
    let ig = channels
        .iter()
        .find(|c| c.channel == Channel::Instagram)
        .unwrap();
    assert!(!ig.available);
    let why = ig.why_not.clone().unwrap();
    assert!(
        why.contains("7 days") && why.contains("8 days ago"),
        "{why}"
    );
    let err = inbox
        .reply(
            e.org,
            e.member,
            conv,
            reply(Channel::Instagram, "Hello?"),
            later,
        )
        .await
        .unwrap_err();
    match err {
        InboxError::CannotSend(s) => assert_eq!(s, why),
        other => panic!("{other:?}"),
    }
    assert_eq!(meta.attempts(), 2, "nothing more was sent");
    assert_eq!(
        inbox.get(e.org, conv, None).await.unwrap().messages.len(),
        3
    );
    // SMS and e-mail have no window.
    assert!(channels
        .iter()
        .filter(|c| matches!(c.channel, Channel::Sms | Channel::Email))
        .all(|c| c.available));
}

#[tokio::test]
async fn closed_channels_say_why_and_an_opted_out_one_is_refused() {
    let e = setup().await;
    let twilio = FakeTwilio::start().await;
    twilio_channel(&e, &twilio).await;
    let inbox = e.inbox(Outbound {
        twilio_base_url: twilio.base_url(),
        ..outbound()
    });
    let conv = inbound(&e, &inbox, sms_in(&e, "SMin3"), T0).await;
    e.store()
        .set_opt_out(
            e.org,
            bos_core::nudge::Channel::Sms,
            PHONE.into(),
            true,
            "keyword".into(),
            T0 + 1,
        )
        .await
        .unwrap();

    let channels = inbox
        .reply_channels(e.org, conv, T0 + 2, true)
        .await
        .unwrap();
    let by = |c: Channel| channels.iter().find(|r| r.channel == c).unwrap().clone();
    let sms = by(Channel::Sms);
    assert!(!sms.available);
    assert_eq!(sms.to, "+•••••••0123");
    assert!(sms.why_not.unwrap().starts_with("Opted out of SMS"));
    let email = by(Channel::Email);
    assert!(email.available);
    assert_eq!(email.to, "a•••@example.com");
    // No Meta page is connected to this inbox.
    let fb = by(Channel::Facebook);
    assert!(!fb.available);
    assert!(fb.why_not.unwrap().starts_with("No Facebook account"));
    let ig = by(Channel::Instagram);
    assert!(ig
        .why_not
        .unwrap()
        .starts_with("Instagram is not connected"));

    let err = inbox
        .reply(e.org, e.member, conv, reply(Channel::Sms, "Hi"), T0 + 3)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, InboxError::CannotSend(s) if s.starts_with("Opted out of SMS")),
        "{err:?}"
    );
    assert_eq!(twilio.attempts(), 0);
    assert_eq!(
        inbox.get(e.org, conv, None).await.unwrap().messages.len(),
        1
    );

    // An opt-out that lands after the composer asked is caught by the write.
    let row = OutboundMessage {
        profile_id: e.customer,
        channel: Channel::Sms,
        author: AuthorKind::Member,
        author_id: Some(e.member.to_string()),
        author_name: "Mia".into(),
        text: "Hi".into(),
        html: None,
        subject: None,
        attachments: serde_json::json!([]),
        provider_message_id: None,
        status: DeliveryStatus::Pending,
        email_message_id: None,
        in_reply_to: None,
        references: vec![],
        people: String::new(),
        at: T0 + 4,
    };
    assert_eq!(
        e.store()
            .write_reply(e.org, conv, PHONE, &row)
            .await
            .unwrap(),
        ReplyWritten::OptedOut
    );
}

#[tokio::test]
async fn bad_replies_are_refused_with_what_to_do() {
    let e = setup().await;
    let inbox = e.inbox(outbound());
    let conv = inbound(&e, &inbox, sms_in(&e, "SMin4"), T0).await;
    for (r, field) in [
        (reply(Channel::Sms, "   "), "text"),
        (reply(Channel::Form, "Hi"), "channel"),
        (reply(Channel::Sms, &"x".repeat(1601)), "text"),
        (reply(Channel::Instagram, &"x".repeat(2001)), "text"),
    ] {
        let err = inbox
            .reply(e.org, e.member, conv, r, T0 + 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, InboxError::Invalid { field: f, .. } if f == field),
            "{err:?}"
        );
    }
    let stranger = Uuid::now_v7();
    assert!(matches!(
        inbox
            .reply(e.org, stranger, conv, reply(Channel::Sms, "Hi"), T0 + 1)
            .await,
        Err(InboxError::Invalid {
            field: "member",
            ..
        })
    ));
    // Another organization's conversation does not exist for this one.
    let other = e
        .store()
        .create_org(
            &OrgName::parse("Other").unwrap(),
            &Slug::from_name("Other").unwrap(),
            T0,
        )
        .await
        .unwrap()
        .id;
    let by = ReplyBy::ApiKey {
        id: Uuid::now_v7(),
        name: "probe".into(),
    };
    assert!(matches!(
        inbox
            .reply_as(other, by, conv, reply(Channel::Sms, "Hi"), T0 + 1)
            .await,
        Err(InboxError::NotFound)
    ));
    assert!(matches!(
        inbox.reply_channels(other, conv, T0, true).await,
        Err(InboxError::NotFound)
    ));
    assert_eq!(
        inbox.get(e.org, conv, None).await.unwrap().messages.len(),
        1
    );
}

#[tokio::test]
async fn a_reply_cut_off_by_a_crash_becomes_unknown_and_is_never_sent_again() {
    let e = setup().await;
    let twilio = FakeTwilio::start().await;
    twilio_channel(&e, &twilio).await;
    let lease = 120_000;
    let inbox = e.inbox(Outbound {
        twilio_base_url: twilio.base_url(),
        pending_lease_ms: lease,
        ..outbound()
    });
    let conv = inbound(&e, &inbox, sms_in(&e, "SMin5"), T0).await;
    // The write of a reply, then the crash: the provider is never called.
    let row = OutboundMessage {
        profile_id: e.customer,
        channel: Channel::Sms,
        author: AuthorKind::Member,
        author_id: Some(e.member.to_string()),
        author_name: "Mia".into(),
        text: "Cut off".into(),
        html: None,
        subject: None,
        attachments: serde_json::json!([]),
        provider_message_id: None,
        status: DeliveryStatus::Pending,
        email_message_id: None,
        in_reply_to: None,
        references: vec![],
        people: String::new(),
        at: T0 + 10,
    };
    let ReplyWritten::Written(written) = e
        .store()
        .write_reply(e.org, conv, PHONE, &row)
        .await
        .unwrap()
    else {
        panic!("not written")
    };
    let id = written.message_id();
    // A live send is never swept: not before the lease is over.
    assert_eq!(inbox.sweep_replies(T0 + 10 + lease - 1).await.unwrap(), 0);
    assert_eq!(
        e.store().message(e.org, id).await.unwrap().status,
        DeliveryStatus::Pending
    );
    assert_eq!(inbox.sweep_replies(T0 + 11 + lease).await.unwrap(), 1);
    let m = e.store().message(e.org, id).await.unwrap();
    assert_eq!(m.status, DeliveryStatus::Unknown);
    assert!(m.status_detail.unwrap().contains("not sent again"));
    assert_eq!(inbox.sweep_replies(T0 + 12 + lease).await.unwrap(), 0);
    // A late answer for it changes nothing: unknown stays, nothing is sent.
    e.store()
        .set_message_delivery(e.org, id, DeliveryStatus::Sent, None, None, T0 + 13 + lease)
        .await
        .unwrap();
    assert_eq!(
        e.store().message(e.org, id).await.unwrap().status,
        DeliveryStatus::Unknown
    );
    assert_eq!(twilio.attempts(), 0);

    // A provider that takes the request and never answers: `unknown` too,
    // after exactly one attempt.
    twilio.set_failing(TwilioFail::Hang);
    let inbox = e.inbox(Outbound {
        twilio_base_url: twilio.base_url(),
        send_timeout: Duration::from_millis(300),
        ..outbound()
    });
    let m = inbox
        .reply(
            e.org,
            e.member,
            conv,
            reply(Channel::Sms, "Hello?"),
            T0 + 20,
        )
        .await
        .unwrap();
    assert_eq!(m.status, DeliveryStatus::Unknown);
    assert!(m.status_detail.unwrap().contains("not sent again"));
    assert_eq!(twilio.attempts(), 1);
    inbox.sweep_replies(T0 + 20 + 10 * lease).await.unwrap();
    assert_eq!(twilio.attempts(), 1);
    // A provider that refuses: `failed`, with its reason.
    twilio.set_failing(TwilioFail::Status500);
    let m = inbox
        .reply(e.org, e.member, conv, reply(Channel::Sms, "Again"), T0 + 30)
        .await
        .unwrap();
    assert_eq!(m.status, DeliveryStatus::Failed);
    assert!(m.status_detail.unwrap().contains("send it again later"));
}
