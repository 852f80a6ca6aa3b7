//! The demo's Unified Inbox: conversations with the demo's customers across
//! SMS, e-mail, Instagram, Facebook and forms. Seeding happens once, through
//! the inbox service exactly as the provider hooks record messages (the
//! inbox opens full: some threads answered by the demo's members, some
//! assigned, a few resolved). While the demo serves, customers write again
//! now and then through the real doors where the demo can sign for them:
//! Instagram and Facebook messages are Meta webhook deliveries signed with
//! the demo's Meta source's app secret (`X-Hub-Signature-256`) and posted
//! to `/hooks/meta/{source}`, form messages are posts to the landing page's
//! form. SMS and e-mail stay recorded through the service: their doors
//! authenticate with the SMS and e-mail channels' provider credentials
//! (Twilio's Auth Token, Mailgun's signing key), and configuring those
//! would send the demo's nudges to Twilio and an SMTP server instead of
//! the development sink the Outbox shows (decision 0038).
//!
//! Replies to Instagram and Facebook go through the Send API like any
//! other; the demo points it at [`start_send_api_stand_in`], a local
//! stand-in that accepts them, so nothing leaves the machine.

use anyhow::Result;
use bos_core::inbox::{AuthorKind, Channel};
use bos_engine::inbox::{Inbound, Inbox, Sent};
use bos_store::identity::{Profile, ProfileQuery, ProfileSort, Traits};
use bos_store::inbox::{ListQuery, MetaCredentials, Recorded};
use bos_store::Store;
use rand::rngs::StdRng;
use rand::Rng;
use uuid::Uuid;

/// Conversations the demo opens with.
const SEEDED: usize = 42;
/// Customers the simulator picks writers from.
const WRITERS: u32 = 120;

/// What customers write, per channel.
fn lines(channel: Channel) -> &'static [&'static str] {
    match channel {
        Channel::Sms => &[
            "Hi! Is the linen shirt still in stock in medium?",
            "Can I pick up my order in store tomorrow?",
            "Got the tracking link, thanks 🙏",
            "My package says delivered but it's not here. Can you check?",
            "Do you have the canvas tote in olive?",
            "What time do you close on Saturday?",
        ],
        Channel::Email => &[
            "Hello, I ordered a rain jacket last week and it hasn't shipped yet. Could you look into it?",
            "Could I exchange the merino scarf for a different colour? It was a gift.",
            "We're opening a café and would like a quote for 60 ceramic mug sets.",
            "The desk lamp arrived broken. This is really disappointing — I need a replacement or a refund.",
            "Thanks for the quick delivery, the wallet is perfect!",
            "Do you offer gift wrapping for orders over $100?",
        ],
        Channel::Instagram => &[
            "omg the spring drop is gorgeous 😍 is the sand colour back?",
            "do you ship to canada?",
            "saw your story — how much is the wool beanie?",
            "still waiting on my order from 2 weeks ago… this is frustrating",
            "can you hold a medium for me until friday?",
        ],
        Channel::Facebook => &[
            "Hi, are you hiring for the holiday season?",
            "Is the sale on in store as well as online?",
            "I was charged twice for my order, please help!",
            "Do you have a size guide for the linen shirt?",
            "Love the new collection! When does the next one drop?",
        ],
        Channel::Form => &[
            "Wholesale enquiry: we'd like to stock your totes in our shop.",
            "Please call me back about a bulk order for our team offsite.",
            "Press request: feature in our spring gift guide.",
            "I'd like to return an item bought as a gift, no receipt.",
        ],
        // Never typed: voice threads come from the voice agents' call reports.
        Channel::Voice => &["Hi, I'm calling about my order."],
    }
}

/// The channels a customer types on (voice threads are calls, posted as
/// the voice platforms' reports).
const TYPED: [Channel; 5] = [
    Channel::Sms,
    Channel::Email,
    Channel::Instagram,
    Channel::Facebook,
    Channel::Form,
];

/// What the demo's members answered.
const ANSWERS: &[&str] = &[
    "Hi! Yes, we have it — I've put one aside for you.",
    "Thanks for letting us know. I'm checking with the courier now and will update you today.",
    "Absolutely, happy to help. I've sent you a prepaid return label.",
    "We do! Shipping to Canada takes 4–6 business days.",
    "So sorry about that — a replacement is on its way at no cost.",
    "Thanks so much, that's lovely to hear!",
];

const MEMBERS: &[(&str, &str)] = &[
    ("maya@demo.bos.local", "Maya Chen"),
    ("sam@demo.bos.local", "Sam Ortiz"),
    ("lee@demo.bos.local", "Lee Park"),
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// Customers the demo's conversations are with: the highest-value ones
/// first, as a shop's inbox is.
async fn writers(store: &Store, org: Uuid) -> Result<Vec<Profile>> {
    Ok(store
        .list_profiles(
            org,
            &ProfileQuery {
                sort: Some(ProfileSort::Ltv),
                limit: WRITERS,
                ..ProfileQuery::default()
            },
        )
        .await?
        .into_iter()
        .filter(|p| !p.display_name.trim().is_empty())
        .collect())
}

fn conversation_of(r: &Recorded) -> Uuid {
    match r {
        Recorded::New {
            conversation_id, ..
        }
        | Recorded::AlreadyHad {
            conversation_id, ..
        } => *conversation_id,
    }
}

/// Text made safe to put between HTML tags.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One customer message on `channel`, as the channel's door would hand it
/// to the inbox.
fn inbound(p: &Profile, channel: Channel, text: &str, id: String) -> Inbound {
    let mut m = Inbound::text(p.id, channel, text);
    m.provider_message_id = (channel != Channel::Form).then_some(id);
    if channel == Channel::Email {
        m.email_message_id = m
            .provider_message_id
            .as_ref()
            .map(|id| format!("<{id}@mail.example>"));
        let subject = text.split(['.', '?', '!', ',']).next().unwrap_or(text);
        m.subject = Some(subject.chars().take(60).collect());
        m.html = Some(format!(
            "<p>Hi Demo Shop,</p><p>{}</p><p>Best,<br>{}</p>",
            escape(text),
            escape(&p.first_name)
        ));
    }
    m
}

/// The demo's Instagram account and Facebook page ids (the `entry.id` of
/// Meta's deliveries).
const IG_ACCOUNT: &str = "17841400000000001";
const FB_PAGE: &str = "104000000000001";

/// The demo's Meta source's name.
const META_SOURCE: &str = "Instagram & Facebook (demo)";

/// The scoped id a demo customer has on Instagram or Facebook: stable per
/// customer, digits like Meta's.
fn scoped_id(p: &Profile, channel: Channel) -> String {
    let n = p.id.as_u128() % 100_000_000_000_000;
    match channel {
        Channel::Facebook => format!("70{n:014}"),
        _ => format!("64{n:014}"),
    }
}

/// Gives a demo customer their Instagram or Facebook id, so what they
/// send there resolves to them (God View), as it would once a shop links
/// the accounts.
async fn link_scoped_id(
    store: &Store,
    org: Uuid,
    p: &Profile,
    channel: Channel,
    now: i64,
) -> Result<()> {
    let kind = match channel {
        Channel::Instagram => "instagram_id",
        Channel::Facebook => "facebook_psid",
        _ => return Ok(()),
    };
    if p.primary_email.trim().is_empty() {
        return Ok(());
    }
    bos_engine::identity::resolve(
        store,
        org,
        &[
            ("email".to_string(), p.primary_email.clone()),
            (kind.to_string(), scoped_id(p, channel)),
        ],
        Traits::default(),
        "demo",
        None,
        now,
    )
    .await
    .map_err(|e| anyhow::anyhow!("linking a demo customer's {kind}: {e}"))?;
    Ok(())
}

/// What the simulator needs to post to the demo's Meta webhook.
#[derive(Clone)]
pub struct MetaDoor {
    /// `/hooks/meta/{source_id}`.
    pub path: String,
    /// The source's app secret, which signs deliveries.
    app_secret: String,
}

impl MetaDoor {
    /// A delivery of one customer message on Instagram or Facebook, as
    /// Meta sends it: the JSON body and its `X-Hub-Signature-256`.
    pub fn delivery(
        &self,
        channel: Channel,
        sender: &str,
        text: &str,
        now: i64,
    ) -> (Vec<u8>, String) {
        let (object, account) = match channel {
            Channel::Facebook => ("page", FB_PAGE),
            _ => ("instagram", IG_ACCOUNT),
        };
        let body = serde_json::json!({
            "object": object,
            "entry": [{
                "id": account,
                "time": now,
                "messaging": [{
                    "sender": {"id": sender},
                    "recipient": {"id": account},
                    "timestamp": now,
                    "message": {"mid": format!("m_demo_{}", Uuid::now_v7().simple()), "text": text}
                }]
            }]
        })
        .to_string()
        .into_bytes();
        let sig = bos_channels::meta::signature(&self.app_secret, &body);
        (body, sig)
    }
}

/// Ensures the demo organization's Meta source (an Instagram account and
/// a Facebook page) and returns how to post to its webhook. Its secrets
/// are made once, stored sealed like any source's, and read back here.
pub async fn meta_door(store: &Store, org: Uuid, now: i64) -> Result<MetaDoor> {
    let existing = store
        .meta_sources(org)
        .await?
        .into_iter()
        .find(|s| s.name == META_SOURCE);
    let source = match existing {
        Some(s) => s,
        None => {
            store
                .create_meta_source(
                    org,
                    META_SOURCE,
                    &MetaCredentials {
                        app_secret: bos_web::auth::random_token(24),
                        verify_token: bos_web::auth::random_token(16),
                        page_access_token: format!("demo-page-{}", bos_web::auth::random_token(16)),
                    },
                    now,
                )
                .await?
        }
    };
    Ok(MetaDoor {
        path: format!("/hooks/meta/{}", source.id),
        app_secret: source.credentials.app_secret,
    })
}

/// A local stand-in for Meta's Send API (`POST /{version}/me/messages`),
/// for the demo's Instagram and Facebook replies: it accepts each one and
/// answers with a message id, as Meta does, and sends nothing anywhere.
/// Returns its base URL; it serves until the process ends.
pub async fn start_send_api_stand_in() -> Result<String> {
    use axum::routing::post;
    async fn accept(
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::Json<serde_json::Value> {
        let recipient = body
            .pointer("/recipient/id")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        axum::Json(serde_json::json!({
            "recipient_id": recipient,
            "message_id": format!("m_demo_{}", Uuid::now_v7().simple()),
        }))
    }
    let app = axum::Router::new().route("/{version}/me/messages", post(accept));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// Opens the inbox full, once: a conversation with each of the first
/// customers, on their channel, some answered by a demo member, some
/// assigned, a few resolved. Returns how many it recorded (0 when the
/// inbox already has conversations).
pub async fn seed(inbox: &Inbox, org: Uuid, now: i64, rng: &mut StdRng) -> Result<usize> {
    let store = inbox.store();
    let existing = store
        .list_conversations(
            org,
            &ListQuery {
                limit: 1,
                ..ListQuery::default()
            },
        )
        .await?;
    if !existing.items.is_empty() {
        return Ok(0);
    }
    let members = store.members(org).await?;
    let member_id = |email: &str| members.iter().find(|m| m.email == email).map(|m| m.user_id);
    let people = writers(store, org).await?;
    let mut n = 0;
    for (i, p) in people.iter().take(SEEDED).enumerate() {
        let channel = TYPED[i % TYPED.len()];
        link_scoped_id(store, org, p, channel, now).await?;
        // Spread over the last two days, the newest a few minutes ago.
        let mut at = now - (SEEDED - i) as i64 * 70 * 60_000 + rng.gen_range(0..600_000);
        let first = pick(rng, lines(channel));
        let r = inbox
            .record_inbound(
                org,
                inbound(p, channel, first, format!("demo-seed-{}-1", p.id)),
                at,
            )
            .await?;
        let conversation = conversation_of(&r);
        n += 1;
        if i % 3 != 0 && channel.can_reply() {
            let (email, name) = *pick(rng, MEMBERS);
            at += rng.gen_range(2..25) * 60_000;
            inbox
                .record_sent(
                    org,
                    Sent {
                        profile_id: p.id,
                        channel,
                        author: AuthorKind::Member,
                        author_name: name.into(),
                        text: pick(rng, ANSWERS).to_string(),
                        html: None,
                        subject: None,
                        provider_message_id: Some(format!("demo-seed-{}-answer", p.id)),
                        email_message_id: None,
                    },
                    at,
                )
                .await?;
            if let Some(m) = member_id(email) {
                inbox.assign(org, conversation, Some(m), at).await?;
            }
            if i % 5 == 1 {
                inbox.resolve(org, conversation, at + 60_000).await?;
            } else if i % 4 == 2 {
                // The customer wrote back: unread again.
                at += rng.gen_range(5..90) * 60_000;
                inbox
                    .record_inbound(
                        org,
                        inbound(
                            p,
                            channel,
                            pick::<&str>(rng, lines(channel)),
                            format!("demo-seed-{}-2", p.id),
                        ),
                        at.min(now),
                    )
                    .await?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// A customer message for the simulator to post to one of the server's
/// own doors.
pub struct Post {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The simulator's part: now and then a customer writes (again).
pub struct Chatter {
    people: Vec<Profile>,
    meta: Option<MetaDoor>,
    /// The landing page form's path (`/f/{key}`).
    form_path: String,
}

impl Chatter {
    pub async fn new(
        store: &Store,
        org: Uuid,
        meta: Option<MetaDoor>,
        form_path: String,
    ) -> Result<Chatter> {
        Ok(Chatter {
            people: writers(store, org).await?,
            meta,
            form_path,
        })
    }

    /// One new customer message, on a channel the customer plausibly
    /// uses: a signed post to the server's door for it when the demo can
    /// sign for that channel (returned for the caller to send), else
    /// recorded through the inbox service (`None`).
    pub async fn write(
        &self,
        inbox: &Inbox,
        org: Uuid,
        rng: &mut StdRng,
        now: i64,
    ) -> Result<Option<Post>> {
        if self.people.is_empty() {
            return Ok(None);
        }
        let p = pick(rng, &self.people);
        let channel = *pick(rng, &TYPED);
        let text = pick(rng, lines(channel));
        match (channel, &self.meta) {
            (Channel::Instagram | Channel::Facebook, Some(door)) => {
                link_scoped_id(inbox.store(), org, p, channel, now).await?;
                let (body, sig) = door.delivery(channel, &scoped_id(p, channel), text, now);
                return Ok(Some(Post {
                    path: door.path.clone(),
                    headers: vec![("X-Hub-Signature-256", sig)],
                    content_type: "application/json",
                    body,
                }));
            }
            (Channel::Form, _) if !p.primary_email.trim().is_empty() => {
                let body = serde_urlencoded_pairs(&[
                    ("email", p.primary_email.as_str()),
                    ("name", p.display_name.as_str()),
                    ("message", text),
                    ("_sid", &Uuid::now_v7().simple().to_string()),
                ]);
                return Ok(Some(Post {
                    path: self.form_path.clone(),
                    headers: Vec::new(),
                    content_type: "application/x-www-form-urlencoded",
                    body: body.into_bytes(),
                }));
            }
            _ => {}
        }
        inbox
            .record_inbound(
                org,
                inbound(p, channel, text, format!("demo-live-{}", Uuid::now_v7())),
                now,
            )
            .await?;
        Ok(None)
    }
}

/// `k=v&k=v`, form-encoded.
fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_signed_as_meta_signs_them() {
        let door = MetaDoor {
            path: "/hooks/meta/x".into(),
            app_secret: "s3cret".into(),
        };
        let (body, sig) = door.delivery(Channel::Instagram, "6400000000000001", "hi & bye", 1);
        assert!(bos_channels::meta::verify_signature("s3cret", &body, &sig));
        let events = bos_channels::meta::parse_delivery(&body).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].customer_id(), "6400000000000001");
        let (body, _) = door.delivery(Channel::Facebook, "7000000000000001", "hi", 1);
        assert_eq!(
            bos_channels::meta::parse_delivery(&body).unwrap()[0].platform,
            bos_channels::meta::Platform::Messenger
        );
    }

    /// The simulator's Instagram message goes through the real door: a
    /// signed delivery to the demo's Meta webhook on a running server
    /// lands in the customer's own thread.
    #[tokio::test]
    async fn a_signed_delivery_reaches_the_customers_thread() {
        use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
        use bos_store::identity::IdentifyInput;
        use tokio::io::AsyncWriteExt;

        let db = bos_store::testing::TestDb::new().await.unwrap();
        let store = db.store.clone();
        let now = crate::now();
        let org = store
            .create_org(
                &bos_core::OrgName::parse("Demo Door").unwrap(),
                &bos_core::Slug::from_name("Demo Door").unwrap(),
                now,
            )
            .await
            .unwrap()
            .id;
        let ann = store
            .identify(
                org,
                &IdentityRules::default(),
                &IdentifyInput {
                    identifiers: vec![Identifier::new(IdentifierKind::Email, "ann@door.example")],
                    traits: Traits {
                        first_name: "Ann".into(),
                        last_name: "Door".into(),
                        company: String::new(),
                        custom: Default::default(),
                    },
                    source: "test".into(),
                    event: None,
                    now,
                },
            )
            .await
            .unwrap()
            .profile_id;
        let door = meta_door(&store, org, now).await.unwrap();
        // The same source on the next start.
        assert_eq!(meta_door(&store, org, now).await.unwrap().path, door.path);
        let state = bos_web::AppState::new(
            store.clone(),
            std::sync::Arc::new(bos_web::SystemClock),
            bos_web::WebConfig::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, bos_web::app(state)).await;
        });

        let p = store.profile(org, ann).await.unwrap();
        link_scoped_id(&store, org, &p, Channel::Instagram, now)
            .await
            .unwrap();
        let path = door.path.clone();
        let post = |body: Vec<u8>, sig: String| {
            let path = path.clone();
            async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let head = format!(
                    "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nX-Hub-Signature-256: {sig}\r\nConnection: close\r\n\r\n",
                    path,
                    body.len()
                );
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(&body).await.unwrap();
                let mut buf = vec![0u8; 16 * 1024];
                crate::http1::read_response(&mut s, &mut buf).await.unwrap()
            }
        };
        let (body, sig) = door.delivery(
            Channel::Instagram,
            &scoped_id(&p, Channel::Instagram),
            "is the sand colour back?",
            now,
        );
        // Forged: refused, nothing stored.
        assert_eq!(post(body.clone(), "sha256=00".into()).await, 401);
        assert_eq!(post(body, sig).await, 200);
        let page = store
            .list_conversations(
                org,
                &ListQuery {
                    limit: 10,
                    ..ListQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].customer_name, "Ann Door", "their own thread");
        assert_eq!(page.items[0].last_channel, Channel::Instagram);
        assert_eq!(page.items[0].last_preview, "is the sand colour back?");
        server.abort();
    }

    #[test]
    fn form_bodies_are_encoded() {
        assert_eq!(
            serde_urlencoded_pairs(&[("name", "Ann Lee"), ("message", "a&b=c")]),
            "name=Ann+Lee&message=a%26b%3Dc"
        );
    }
}
