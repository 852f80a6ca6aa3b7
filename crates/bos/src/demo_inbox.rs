//! The demo's Unified Inbox: conversations with the demo's customers across
//! SMS, e-mail, Instagram, Facebook and forms, recorded through the inbox
//! service exactly as the provider hooks record them, so priorities,
//! unread marks, search and the customers' timelines are real. Seeding
//! happens once (the inbox opens full: some threads answered by the demo's
//! members, some assigned, a few resolved); while the demo serves, the
//! simulator has customers write again now and then, through the serving
//! process's bus, so open inbox pages move.

use anyhow::Result;
use bos_core::inbox::{AuthorKind, Channel};
use bos_engine::inbox::{Inbound, Inbox, Sent};
use bos_store::identity::{Profile, ProfileQuery, ProfileSort};
use bos_store::inbox::{ListQuery, Recorded};
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
    }
}

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
        let channel = Channel::ALL[i % Channel::ALL.len()];
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

/// The simulator's part: now and then a customer writes (again).
pub struct Chatter {
    people: Vec<Profile>,
}

impl Chatter {
    pub async fn new(store: &Store, org: Uuid) -> Result<Chatter> {
        Ok(Chatter {
            people: writers(store, org).await?,
        })
    }

    /// One new customer message, on a channel the customer plausibly uses.
    pub async fn write(&self, inbox: &Inbox, org: Uuid, rng: &mut StdRng, now: i64) -> Result<()> {
        if self.people.is_empty() {
            return Ok(());
        }
        let p = pick(rng, &self.people);
        let channel = *pick(rng, Channel::ALL);
        let text = pick(rng, lines(channel));
        inbox
            .record_inbound(
                org,
                inbound(p, channel, text, format!("demo-live-{}", Uuid::now_v7())),
                now,
            )
            .await?;
        Ok(())
    }
}
