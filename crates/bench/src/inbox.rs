//! `bos-bench inbox`: the Unified Inbox at scale. Seeds conversations and
//! messages (generated customers, words, e-mails and phones; mixed
//! channels, directions, authors, priorities and statuses) over a few
//! organizations, most in one big one, through the store's bulk loader,
//! then measures the store calls the API makes — `list_conversations`
//! with each filter and sort (first page and a page deep by the cursor),
//! `search_inbox` for common and rare words, a name, an e-mail and a
//! phone fragment, and `conversation` — in-process, one at a time, and
//! prints p50/p95/p99/max beside the budgets (search p99 ≤ 20 ms at
//! 1,000,000 messages; list p95 ≤ 50 ms at 10,000,000 messages).

use crate::gen::SplitMix64;
use anyhow::{anyhow, Result};
use bos_core::inbox::{AuthorKind, Channel, Priority, Status};
use bos_store::inbox::{
    AuthorFilter, BulkConversation, BulkMessage, ListQuery, Sort, StatusFilter,
};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Conversations generated (and loaded) together.
const BATCH: u64 = 2_000;
/// Share of the conversations in the big organization, in percent; the
/// rest go to three small ones.
const BIG_ORG_PERCENT: u64 = 85;
const ORGS: usize = 4;
const DAY: i64 = 86_400_000;

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Priya",
    "Ashley",
    "Wei",
    "Emily",
    "Ahmed",
    "Donna",
    "Kenji",
    "Michelle",
    "Olga",
    "Amanda",
    "Luca",
    "Melissa",
    "Fatima",
    "Deborah",
    "Mateo",
    "Stephanie",
    "Aisha",
    "Rebecca",
    "Noah",
    "Sharon",
    "Ingrid",
    "Laura",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Lindqvist",
    "Okafor",
    "Tanaka",
    "Kowalski",
    "Haddad",
    "Novak",
    "Rossi",
    "Schmidt",
    "Dubois",
    "Silva",
];
const MAIL: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "hotmail.com",
    "proton.me",
    "aol.com",
];
const MEMBERS: &[&str] = &["Alex", "Sam", "Jordan", "Riley", "Casey", "Morgan"];
/// Everyday words of customer service, most frequent first (drawn with a
/// skew toward the head, roughly like real text).
const WORDS: &[&str] = &[
    "the",
    "to",
    "and",
    "my",
    "you",
    "is",
    "for",
    "it",
    "order",
    "i",
    "a",
    "of",
    "we",
    "your",
    "can",
    "please",
    "thanks",
    "on",
    "have",
    "in",
    "this",
    "with",
    "when",
    "will",
    "be",
    "not",
    "refund",
    "shipping",
    "delivery",
    "package",
    "today",
    "tomorrow",
    "still",
    "help",
    "just",
    "need",
    "hi",
    "hello",
    "would",
    "like",
    "return",
    "size",
    "exchange",
    "received",
    "tracking",
    "number",
    "address",
    "wrong",
    "item",
    "color",
    "store",
    "week",
    "days",
    "back",
    "again",
    "payment",
    "card",
    "charged",
    "twice",
    "discount",
    "code",
    "coupon",
    "subscription",
    "cancel",
    "account",
    "password",
    "email",
    "phone",
    "call",
    "me",
    "could",
    "check",
    "status",
    "update",
    "late",
    "arrived",
    "damaged",
    "box",
    "missing",
    "part",
    "replacement",
    "warranty",
    "invoice",
    "receipt",
    "price",
    "sale",
    "stock",
    "available",
    "restock",
    "pickup",
    "appointment",
    "booking",
    "reschedule",
    "friday",
    "monday",
    "morning",
    "afternoon",
    "great",
    "love",
    "happy",
    "disappointed",
    "terrible",
    "awesome",
    "quick",
    "question",
    "about",
    "product",
    "quality",
    "fit",
    "small",
    "large",
    "medium",
    "gift",
    "wrap",
    "birthday",
    "christmas",
    "urgent",
    "asap",
    "manager",
    "complaint",
    "review",
    "recommend",
    "follow",
    "up",
    "sorry",
    "apologize",
    "sure",
    "absolutely",
    "confirm",
    "confirmed",
    "shipped",
    "label",
    "courier",
    "ups",
    "fedex",
    "usps",
];
/// Syllables of the rare words: 24³ = 13,824 made-up words, each in a few
/// messages per million.
const SYLLABLES: &[&str] = &[
    "zor", "vex", "quil", "tram", "bix", "nol", "pra", "dun", "kel", "mira", "sto", "fen", "gru",
    "lat", "wob", "yen", "cri", "hul", "jas", "plo", "thu", "ven", "xal", "oro",
];

/// The rare made-up word number `n`.
pub fn rare_word(n: u64) -> String {
    let s = SYLLABLES.len() as u64;
    format!(
        "{}{}{}",
        SYLLABLES[(n % s) as usize],
        SYLLABLES[((n / s) % s) as usize],
        SYLLABLES[((n / s / s) % s) as usize]
    )
}

fn pick<'a>(rng: &mut SplitMix64, xs: &'a [&'a str]) -> &'a str {
    xs[rng.below(xs.len() as u64) as usize]
}

/// A word drawn with a skew to the head of [`WORDS`].
fn word(rng: &mut SplitMix64) -> &'static str {
    let a = rng.below(WORDS.len() as u64);
    let b = rng.below(WORDS.len() as u64);
    WORDS[a.min(b) as usize]
}

fn pct(rng: &mut SplitMix64, percent: u64) -> bool {
    rng.below(100) < percent
}

/// One generated message text: a few sentences of everyday words, now
/// and then an order number, a rare word, a name or an e-mail.
fn text(rng: &mut SplitMix64) -> String {
    let mut out = String::with_capacity(120);
    let sentences = 1 + rng.below(3);
    for s in 0..sentences {
        if s > 0 {
            out.push(' ');
        }
        let n = 4 + rng.below(10);
        for k in 0..n {
            if k > 0 {
                out.push(' ');
            }
            match rng.below(100) {
                0 => out.push_str(&format!("#{}", 10_000 + rng.below(90_000))),
                1 => out.push_str(&rare_word(rng.below(13_824))),
                2 => out.push_str(pick(rng, FIRST)),
                _ => out.push_str(word(rng)),
            }
        }
        out.push(['.', '?', '!'][rng.below(3) as usize]);
    }
    let mut c = out.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => out,
    }
}

/// A conversation's customer: name, e-mail, phone, lifetime value.
pub struct Customer {
    pub first: &'static str,
    pub last: &'static str,
    pub email: String,
    pub phone: String,
    pub ltv_cents: i64,
}

/// Customer `i` of the data set (the same whatever the batch).
pub fn customer(seed: u64, i: u64) -> Customer {
    let mut rng = SplitMix64::new(seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407));
    let first = pick(&mut rng, FIRST);
    let last = pick(&mut rng, LAST);
    let email = format!(
        "{}.{}{i}@{}",
        first.to_lowercase(),
        last.to_lowercase(),
        pick(&mut rng, MAIL)
    );
    let phone = format!("+1{}{:07}", 200 + rng.below(800), i % 10_000_000);
    let ltv_cents = if pct(&mut rng, 30) {
        0
    } else {
        (rng.below(1000) * rng.below(1000)) as i64
    };
    Customer {
        first,
        last,
        email,
        phone,
        ltv_cents,
    }
}

/// Which organization conversation `i` belongs to: 0 (the big one) or
/// 1..ORGS.
pub fn org_of(i: u64) -> usize {
    let r = i % 100;
    if r < BIG_ORG_PERCENT {
        0
    } else {
        1 + (r as usize % (ORGS - 1))
    }
}

/// Messages of conversation `i`: on average `messages / conversations`,
/// varied by pairs so the total is exactly `messages` (each gets at least
/// one when `messages >= conversations`).
pub fn message_count(seed: u64, conversations: u64, messages: u64, i: u64) -> u64 {
    let base = |k: u64| {
        ((k + 1) as u128 * messages as u128 / conversations as u128
            - k as u128 * messages as u128 / conversations as u128) as u64
    };
    let pair = i / 2;
    if pair * 2 + 1 >= conversations {
        return base(i);
    }
    let (a, b) = (base(pair * 2), base(pair * 2 + 1));
    let room = a.min(b).saturating_sub(1);
    let mut rng = SplitMix64::new(seed ^ pair.wrapping_mul(0x9FB2_1C65_1E98_DF25) ^ 0x55);
    let d = if room == 0 { 0 } else { rng.below(room + 1) };
    if i.is_multiple_of(2) {
        a + d
    } else {
        b - d
    }
}

/// Fixed ids: conversation `i`, message `j` (increasing, like the store's
/// time-ordered ids), organization member `k`.
fn conv_id(i: u64) -> Uuid {
    Uuid::from_u64_pair(0x0190_0000_0000_7000 | (1 << 48), i)
}
fn profile_id(i: u64) -> Uuid {
    Uuid::from_u64_pair(0x0190_0000_0000_7000 | (2 << 48), i)
}
fn message_id(j: u64) -> Uuid {
    Uuid::from_u64_pair(0x0190_0000_0000_7000 | (3 << 48), j)
}
pub fn member_id(k: usize) -> Uuid {
    Uuid::from_u64_pair(0x0190_0000_0000_7000 | (4 << 48), k as u64)
}

/// Conversations of the data set and their messages, each with the index
/// of its organization.
pub struct Batch {
    pub conversations: Vec<(usize, BulkConversation)>,
    pub messages: Vec<(usize, BulkMessage)>,
}

/// The data set: its size, its seed and the time it ends at.
pub struct Plan {
    pub seed: u64,
    pub conversations: u64,
    pub messages: u64,
    pub now: i64,
}

impl Plan {
    /// Conversations `from..to` with their messages; `first_message` is the
    /// number of messages of the conversations before `from`.
    pub fn batch(&self, from: u64, to: u64, mut first_message: u64) -> Batch {
        let mut b = Batch {
            conversations: Vec::with_capacity((to - from) as usize),
            messages: Vec::new(),
        };
        for i in from..to {
            let org = org_of(i);
            let c = customer(self.seed, i);
            let mut rng = SplitMix64::new(self.seed ^ i.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ 1);
            let count = message_count(self.seed, self.conversations, self.messages, i);
            let main = match rng.below(100) {
                0..=34 => Channel::Sms,
                35..=64 => Channel::Email,
                65..=79 => Channel::Instagram,
                80..=91 => Channel::Facebook,
                _ => Channel::Form,
            };
            let second = pct(&mut rng, 20).then(|| Channel::ALL[rng.below(4) as usize]);
            let uses_ai = pct(&mut rng, 15);
            let last_at = self.now - rng.below(90 * DAY as u64) as i64;
            let mut at = last_at - count as i64 * (60_000 + rng.below(3_600_000) as i64);
            // The write path dates a conversation by its first message.
            let mut created_at = None;
            let mut channels = vec![main];
            let (mut last_inbound, mut waiting, mut ai) = (None, None, false);
            let mut last = (main, AuthorKind::Customer, String::new());
            let mut latest = at;
            for k in 0..count {
                let author = if k == 0 {
                    AuthorKind::Customer
                } else {
                    match rng.below(100) {
                        0..=49 => AuthorKind::Customer,
                        50..=84 => AuthorKind::Member,
                        85..=92 if uses_ai => AuthorKind::Agent,
                        85..=92 => AuthorKind::Member,
                        _ => AuthorKind::Automation,
                    }
                };
                let channel = match second {
                    Some(s) if pct(&mut rng, 30) => s,
                    _ => main,
                };
                if !channels.contains(&channel) {
                    channels.push(channel);
                }
                at += 60_000 + rng.below(3_600_000) as i64;
                let at = at.min(last_at);
                latest = latest.max(at);
                created_at.get_or_insert(at);
                let body = text(&mut rng);
                match author {
                    AuthorKind::Customer => {
                        last_inbound = Some(at);
                        waiting.get_or_insert(at);
                    }
                    AuthorKind::Member | AuthorKind::Agent => waiting = None,
                    AuthorKind::Automation => {}
                }
                ai |= author.is_ai();
                let author_name = match author {
                    AuthorKind::Customer => format!("{} {}", c.first, c.last),
                    AuthorKind::Member => pick(&mut rng, MEMBERS).to_string(),
                    AuthorKind::Agent => "Assistant".to_string(),
                    AuthorKind::Automation => "Nudge".to_string(),
                };
                let subject = (channel == Channel::Email)
                    .then(|| format!("Re: {} {}", word(&mut rng), word(&mut rng)));
                last = (channel, author, body.clone());
                b.messages.push((
                    org,
                    BulkMessage {
                        id: message_id(first_message),
                        conversation_id: conv_id(i),
                        channel,
                        author,
                        author_name,
                        text: body,
                        subject,
                        at,
                    },
                ));
                first_message += 1;
            }
            let status = if pct(&mut rng, 40) {
                Status::Resolved
            } else {
                Status::Open
            };
            let priority = match rng.below(100) {
                0..=2 => Priority::Urgent,
                3..=14 => Priority::High,
                15..=84 => Priority::Normal,
                _ => Priority::Low,
            };
            let assignee_id = pct(&mut rng, 30).then(|| member_id(rng.below(6) as usize));
            let read_by = pct(&mut rng, 60).then(|| (member_id(0), last_at));
            b.conversations.push((
                org,
                BulkConversation {
                    id: conv_id(i),
                    profile_id: profile_id(i),
                    first_name: c.first.to_string(),
                    last_name: c.last.to_string(),
                    email: c.email,
                    phone: c.phone,
                    ltv_cents: c.ltv_cents,
                    status,
                    assignee_id,
                    priority,
                    last_message_at: latest,
                    last_inbound_at: last_inbound,
                    waiting_since: if status == Status::Open {
                        waiting
                    } else {
                        None
                    },
                    last_text: last.2,
                    last_channel: last.0,
                    last_author: last.1,
                    channels,
                    ai_involved: ai,
                    message_count: count as i64,
                    created_at: created_at.unwrap_or(latest),
                    read_by,
                },
            ));
        }
        b
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// One measured case's latencies in µs.
struct Case {
    name: String,
    budget: Option<(&'static str, f64)>,
    lat: Vec<u64>,
    rows: usize,
}

fn quantile(v: &[u64], p: f64) -> u64 {
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// Runs `f` `requests` times (at least three, and no longer than about
/// `cap` once three are done), after one unmeasured call.
async fn measure<F, Fut>(requests: u64, cap: Duration, mut f: F) -> Result<(Vec<u64>, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    let rows = f().await?;
    let start = Instant::now();
    let mut lat = Vec::new();
    for n in 0..requests {
        if n >= 3 && start.elapsed() > cap {
            break;
        }
        let t = Instant::now();
        f().await?;
        lat.push(t.elapsed().as_micros() as u64);
    }
    lat.sort_unstable();
    Ok((lat, rows))
}

pub async fn run(
    conversations: u64,
    messages: u64,
    requests: u64,
    seed: u64,
    database_url: Option<String>,
    keep: Option<String>,
) -> Result<()> {
    if conversations == 0 || messages < conversations {
        return Err(anyhow!(
            "--messages must be at least --conversations (each has a message)"
        ));
    }
    let (url, _guard) = match keep.clone() {
        Some(url) => (url, None),
        None => {
            let (url, guard) = bos_store::testing::fresh_url_on(database_url).await?;
            (url, Some(guard))
        }
    };
    let store = bos_store::Store::open(&bos_store::StoreOptions {
        url,
        max_connections: 8,
    })
    .await?;
    let now = bos::now();
    // A kept database names its organizations after the data set, and
    // marks a finished seed with one more, so a later run reuses it only
    // when it is whole.
    let tag = match keep {
        Some(_) => format!("s{seed}-c{conversations}-m{messages}"),
        None => Uuid::new_v4().simple().to_string(),
    };
    let slug =
        |name: &str| bos_core::Slug::parse(&format!("inbox-{name}-{tag}")).map_err(|e| anyhow!(e));
    let ready_slug = slug("ready")?;
    let reused = store.org_by_slug(ready_slug.as_str()).await?.is_some();
    let mut orgs = Vec::new();
    for k in 0..ORGS {
        let s = slug(&k.to_string())?;
        if let Some(org) = store.org_by_slug(s.as_str()).await? {
            if !reused {
                return Err(anyhow!(
                    "{} holds a partial seed of this data set: use a fresh database",
                    s.as_str()
                ));
            }
            orgs.push(org.id);
            continue;
        }
        let org = store
            .create_org(
                &bos_core::OrgName::parse(&format!("Inbox {k}")).map_err(|e| anyhow!(e))?,
                &s,
                now,
            )
            .await?;
        orgs.push(org.id);
    }
    if reused {
        println!(
            "inbox bench: {conversations} conversations, {messages} messages, reusing the kept \
             seed, engine {:?}",
            store.kind()
        );
    } else {
        seed_all(&store, &orgs, conversations, messages, seed, now).await?;
        store
            .create_org(
                &bos_core::OrgName::parse("Inbox seeded").map_err(|e| anyhow!(e))?,
                &ready_slug,
                now,
            )
            .await?;
    }
    measure_all(&store, &orgs, conversations, messages, requests, seed).await
}

/// Seeds the data set into `orgs` through the store's bulk loader, then
/// gathers the planners' statistics.
async fn seed_all(
    store: &bos_store::Store,
    orgs: &[Uuid],
    conversations: u64,
    messages: u64,
    seed: u64,
    now: i64,
) -> Result<()> {
    let plan = std::sync::Arc::new(Plan {
        seed,
        conversations,
        messages,
        now,
    });
    // Generation on its own thread, one batch ahead of the loading.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let gen_plan = plan.clone();
    let generator = tokio::task::spawn_blocking(move || {
        let mut from = 0;
        let mut first_message = 0;
        while from < gen_plan.conversations {
            let to = (from + BATCH).min(gen_plan.conversations);
            let b = gen_plan.batch(from, to, first_message);
            first_message += b.messages.len() as u64;
            from = to;
            if tx.blocking_send(b).is_err() {
                break;
            }
        }
    });
    // Indexes off while loading, built once at the end.
    let indexes = store.bulk_unindex_inbox().await?;
    let t = Instant::now();
    let (mut convs_done, mut msgs_done) = (0u64, 0u64);
    while let Some(b) = rx.recv().await {
        convs_done += b.conversations.len() as u64;
        msgs_done += b.messages.len() as u64;
        let mut per_org: Vec<(Vec<BulkConversation>, Vec<BulkMessage>)> =
            (0..ORGS).map(|_| (Vec::new(), Vec::new())).collect();
        for (o, c) in b.conversations {
            per_org[o].0.push(c);
        }
        for (o, m) in b.messages {
            per_org[o].1.push(m);
        }
        for (o, (cs, ms)) in per_org.into_iter().enumerate() {
            if !cs.is_empty() {
                store.bulk_load_inbox(orgs[o], cs, ms).await?;
            }
        }
        eprint!(
            "\r  seeding: {convs_done}/{conversations} conversations, {msgs_done} messages, {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    generator.await?;
    eprintln!();
    let seeded = t.elapsed();
    let t = Instant::now();
    store.bulk_reindex_inbox(indexes).await?;
    println!(
        "inbox bench: {conversations} conversations, {msgs_done} messages loaded in {:.1} s \
         ({:.0} messages/s), indexes, search index and statistics in {:.1} s, engine {:?}",
        seeded.as_secs_f64(),
        msgs_done as f64 / seeded.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        store.kind()
    );

    Ok(())
}

/// Times the store calls the API makes against the seeded data set.
async fn measure_all(
    store: &bos_store::Store,
    orgs: &[Uuid],
    conversations: u64,
    msgs_done: u64,
    requests: u64,
    seed: u64,
) -> Result<()> {
    let org = orgs[0];
    let me = member_id(0);
    let cap = Duration::from_secs(3);
    let mut cases: Vec<Case> = Vec::new();
    let list_budget = Some(("p95 ≤ 50 ms at 10M msgs", 50.0));
    let search_budget = Some(("p99 ≤ 20 ms at 1M msgs", 20.0));

    let filters: Vec<(&str, ListQuery)> = vec![
        ("all", ListQuery::default()),
        (
            "channel=sms",
            ListQuery {
                channel: Some(Channel::Sms),
                ..Default::default()
            },
        ),
        (
            "channel=instagram",
            ListQuery {
                channel: Some(Channel::Instagram),
                ..Default::default()
            },
        ),
        (
            "channel=form",
            ListQuery {
                channel: Some(Channel::Form),
                ..Default::default()
            },
        ),
        (
            "status=unread",
            ListQuery {
                status: Some(StatusFilter::Unread),
                ..Default::default()
            },
        ),
        (
            "status=assigned_to_me",
            ListQuery {
                status: Some(StatusFilter::AssignedToMe),
                ..Default::default()
            },
        ),
        (
            "status=unassigned",
            ListQuery {
                status: Some(StatusFilter::Unassigned),
                ..Default::default()
            },
        ),
        (
            "status=resolved",
            ListQuery {
                status: Some(StatusFilter::Resolved),
                ..Default::default()
            },
        ),
        (
            "author=ai",
            ListQuery {
                author: Some(AuthorFilter::Ai),
                ..Default::default()
            },
        ),
        (
            "author=human",
            ListQuery {
                author: Some(AuthorFilter::Human),
                ..Default::default()
            },
        ),
        (
            "priority=urgent",
            ListQuery {
                priority: Some(Priority::Urgent),
                ..Default::default()
            },
        ),
        (
            "priority=low",
            ListQuery {
                priority: Some(Priority::Low),
                ..Default::default()
            },
        ),
        (
            "unread+sms+urgent",
            ListQuery {
                status: Some(StatusFilter::Unread),
                channel: Some(Channel::Sms),
                priority: Some(Priority::Urgent),
                ..Default::default()
            },
        ),
    ];
    let sorts = [
        ("recent", Sort::Recent),
        ("oldest_unread", Sort::OldestUnread),
        ("priority", Sort::Priority),
        ("value", Sort::Value),
    ];
    for (fname, f) in &filters {
        for (sname, sort) in sorts {
            let base = ListQuery {
                member: Some(me),
                sort,
                limit: 50,
                cursor: None,
                ..f.clone()
            };
            let (lat, rows) = measure(requests, cap, || {
                let (store, q) = (store.clone(), base.clone());
                async move { Ok(store.list_conversations(org, &q).await?.items.len()) }
            })
            .await?;
            cases.push(Case {
                name: format!("list {fname}, {sname}"),
                budget: list_budget,
                lat,
                rows,
            });
            // A page deep: the cursor after ten pages of 50.
            let mut cursor = None;
            let mut deep = true;
            for _ in 0..10 {
                let page = store
                    .list_conversations(
                        org,
                        &ListQuery {
                            cursor: cursor.clone(),
                            ..base.clone()
                        },
                    )
                    .await?;
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => {
                        deep = false;
                        break;
                    }
                }
            }
            if deep {
                let q = ListQuery {
                    cursor,
                    ..base.clone()
                };
                let (lat, rows) = measure(requests, cap, || {
                    let (store, q) = (store.clone(), q.clone());
                    async move { Ok(store.list_conversations(org, &q).await?.items.len()) }
                })
                .await?;
                cases.push(Case {
                    name: format!("list {fname}, {sname}, page 11"),
                    budget: list_budget,
                    lat,
                    rows,
                });
            }
        }
    }

    // Searches, for things the big organization's data holds.
    let who = (12_345 % conversations..)
        .find(|i| org_of(*i) == 0)
        .unwrap_or(0);
    let c = customer(seed, who);
    let digits: String = c.phone.chars().filter(char::is_ascii_digit).collect();
    let searches = [
        ("common word", "order".to_string()),
        ("two common words", "refund shipping".to_string()),
        ("common prefix", "deliv".to_string()),
        ("rare word", rare_word(4_321)),
        ("last name", c.last.to_string()),
        ("full name", format!("{} {}", c.first, c.last)),
        ("e-mail", c.email.clone()),
        ("phone fragment", digits[digits.len() - 7..].to_string()),
        ("no match", "xyzzyplugh".to_string()),
    ];
    for (name, q) in searches {
        let (lat, rows) = measure(requests, cap, || {
            let (store, q) = (store.clone(), q.clone());
            async move { Ok(store.search_inbox(org, &q, 50).await?.len()) }
        })
        .await?;
        cases.push(Case {
            name: format!("search {name} ({q})"),
            budget: search_budget,
            lat,
            rows,
        });
    }
    // Opening conversations: a different one each time.
    let mut k = 0u64;
    let (lat, rows) = measure(requests, cap, || {
        k += 7_919;
        let mut i = k % conversations;
        while org_of(i) != 0 {
            i = (i + 1) % conversations;
        }
        let store = store.clone();
        async move {
            Ok(store
                .conversation(org, conv_id(i), Some(me))
                .await?
                .messages
                .len())
        }
    })
    .await?;
    cases.push(Case {
        name: "open a conversation".into(),
        budget: None,
        lat,
        rows,
    });

    println!(
        "{:<52} {:>5} {:>4} {:>8} {:>8} {:>8} {:>8}  budget",
        "case", "n", "rows", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    let mut json = Vec::new();
    for c in &cases {
        let (p50, p95, p99, max) = (
            quantile(&c.lat, 0.5),
            quantile(&c.lat, 0.95),
            quantile(&c.lat, 0.99),
            c.lat.last().copied().unwrap_or(0),
        );
        let verdict = match c.budget {
            Some((text, limit)) => {
                let figure = if text.starts_with("p95") { p95 } else { p99 };
                let mark = if ms(figure) <= limit { "ok" } else { "OVER" };
                format!("{text}: {mark}")
            }
            None => String::new(),
        };
        println!(
            "{:<52} {:>5} {:>4} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {verdict}",
            c.name,
            c.lat.len(),
            c.rows,
            ms(p50),
            ms(p95),
            ms(p99),
            ms(max)
        );
        json.push(
            serde_json::json!({"case": c.name, "n": c.lat.len(), "rows": c.rows,
            "p50_ms": ms(p50), "p95_ms": ms(p95), "p99_ms": ms(p99), "max_ms": ms(max)}),
        );
    }
    println!(
        "{}",
        serde_json::json!({"bench": "inbox", "conversations": conversations,
            "messages": msgs_done, "engine": format!("{:?}", store.kind()), "cases": json})
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conversations: u64, messages: u64, seed: u64) -> Plan {
        Plan {
            seed,
            conversations,
            messages,
            now: 1_800_000_000_000,
        }
    }

    #[test]
    fn counts_add_up_and_batches_agree() {
        let p = plan(1_001, 10_007, 3);
        let whole = p.batch(0, 1_001, 0);
        assert_eq!(whole.conversations.len(), 1_001);
        assert_eq!(whole.messages.len(), 10_007);
        // The same data however it is cut into batches.
        let a = p.batch(0, 500, 0);
        let b = p.batch(500, 1_001, a.messages.len() as u64);
        assert_eq!(a.messages.len() + b.messages.len(), 10_007);
        assert_eq!(
            b.messages.last().map(|(_, m)| (m.id, m.text.clone())),
            whole.messages.last().map(|(_, m)| (m.id, m.text.clone()))
        );
        for (_, c) in &whole.conversations {
            assert!(c.message_count >= 1);
            let mine: Vec<_> = whole
                .messages
                .iter()
                .filter(|(_, m)| m.conversation_id == c.id)
                .collect();
            assert_eq!(mine.len() as i64, c.message_count);
            assert_eq!(mine[0].1.author, AuthorKind::Customer);
            assert_eq!(
                c.last_message_at,
                mine.iter().map(|(_, m)| m.at).max().unwrap()
            );
            assert!(c.created_at <= c.last_message_at);
            assert_eq!(c.ai_involved, mine.iter().any(|(_, m)| m.author.is_ai()));
        }
        // Most conversations in the big organization, some in each other.
        let big = whole.conversations.iter().filter(|(o, _)| *o == 0).count();
        assert!(big > 800 && big < 900, "{big}");
        for o in 1..ORGS {
            assert!(whole.conversations.iter().any(|(k, _)| *k == o));
        }
    }

    /// The bulk loader's rows are what the real write path makes of the
    /// same messages: a sample of generated conversations loaded in bulk
    /// into one organization and written message by message through
    /// `record_inbound` / `record_outbound` into another read back the
    /// same (every field the messages decide; status, assignment and read
    /// marks are members' actions the loader sets directly).
    #[tokio::test]
    async fn bulk_rows_match_the_write_path() {
        use bos_store::inbox::{InboundMessage, OutboundMessage};
        let db = bos_store::testing::TestDb::new().await.unwrap();
        let s = &db.store;
        let mk = |slug: &str| {
            let s = s.clone();
            let slug = slug.to_string();
            async move {
                s.create_org(
                    &bos_core::OrgName::parse(&slug).unwrap(),
                    &bos_core::Slug::parse(&slug).unwrap(),
                    1,
                )
                .await
                .unwrap()
                .id
            }
        };
        let (bulk_org, real_org) = (mk("bulk").await, mk("real").await);
        let b = plan(40, 400, 5).batch(0, 40, 0);
        let convs: Vec<BulkConversation> = b.conversations.iter().map(|(_, c)| c.clone()).collect();
        let msgs: Vec<BulkMessage> = b.messages.iter().map(|(_, m)| m.clone()).collect();
        s.bulk_load_inbox(bulk_org, convs.clone(), msgs.clone())
            .await
            .unwrap();
        let mut compared = 0;
        for c in &convs {
            // The same customer in the other organization, through identity.
            let profile = s
                .identify(
                    real_org,
                    &bos_core::identity::IdentityRules::default(),
                    &bos_store::identity::IdentifyInput {
                        identifiers: vec![bos_core::identity::Identifier::new(
                            bos_core::identity::IdentifierKind::Email,
                            &c.email,
                        )],
                        traits: bos_store::identity::Traits {
                            first_name: c.first_name.clone(),
                            last_name: c.last_name.clone(),
                            company: String::new(),
                            custom: Default::default(),
                        },
                        source: "bench".into(),
                        event: None,
                        now: 1,
                    },
                )
                .await
                .unwrap()
                .profile_id;
            let people = bos_store::inbox::people_text(
                &format!("{} {}", c.first_name, c.last_name),
                &c.email,
                &c.phone,
            );
            let mut real_conv = None;
            for m in msgs.iter().filter(|m| m.conversation_id == c.id) {
                let r = if m.author == AuthorKind::Customer {
                    s.record_inbound(
                        real_org,
                        &InboundMessage {
                            profile_id: profile,
                            channel: m.channel,
                            provider_message_id: None,
                            author_name: m.author_name.clone(),
                            text: m.text.clone(),
                            html: None,
                            subject: m.subject.clone(),
                            attachments: serde_json::json!([]),
                            email_message_id: None,
                            in_reply_to: None,
                            references: vec![],
                            priority: c.priority,
                            priority_reason: String::new(),
                            people: people.clone(),
                            at: m.at,
                        },
                    )
                    .await
                } else {
                    s.record_outbound(
                        real_org,
                        &OutboundMessage {
                            profile_id: profile,
                            channel: m.channel,
                            author: m.author,
                            author_id: None,
                            author_name: m.author_name.clone(),
                            text: m.text.clone(),
                            html: None,
                            subject: m.subject.clone(),
                            attachments: serde_json::json!([]),
                            provider_message_id: None,
                            status: bos_core::inbox::DeliveryStatus::Delivered,
                            email_message_id: None,
                            in_reply_to: None,
                            references: vec![],
                            people: people.clone(),
                            at: m.at,
                        },
                    )
                    .await
                };
                real_conv = Some(r.unwrap().conversation_id());
            }
            let real = s
                .conversation(real_org, real_conv.unwrap(), None)
                .await
                .unwrap();
            let bulk = s.conversation(bulk_org, c.id, None).await.unwrap();
            let (r, k) = (&real.conversation, &bulk.conversation);
            assert_eq!(
                (
                    r.last_message_at,
                    r.last_inbound_at,
                    &r.last_preview,
                    r.last_channel,
                    r.last_author,
                    &r.channels,
                    r.ai_involved,
                    r.message_count,
                    r.created_at,
                    &r.customer_name,
                ),
                (
                    k.last_message_at,
                    k.last_inbound_at,
                    &k.last_preview,
                    k.last_channel,
                    k.last_author,
                    &k.channels,
                    k.ai_involved,
                    k.message_count,
                    k.created_at,
                    &k.customer_name,
                ),
                "conversation {}",
                c.id
            );
            if k.status == Status::Open {
                assert_eq!(r.waiting_since, k.waiting_since, "waiting, {}", c.id);
                compared += 1;
            }
            let shape = |d: &bos_store::inbox::ConversationDetail| {
                d.messages
                    .iter()
                    .map(|m| {
                        (
                            m.channel,
                            m.direction,
                            m.author_kind,
                            m.author_name.clone(),
                            m.text.clone(),
                            m.subject.clone(),
                            m.status,
                            m.created_at,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(shape(&real), shape(&bulk), "messages of {}", c.id);
        }
        assert!(compared > 5, "{compared} open conversations compared");
        // Search finds a bulk-loaded message as it finds a written one.
        let word = &msgs[17].text.split(' ').next().unwrap().to_lowercase();
        let count = |o| {
            let (s, w) = (s.clone(), word.clone());
            async move { s.search_inbox(o, &w, 50).await.unwrap().len() }
        };
        assert_eq!(count(bulk_org).await, count(real_org).await);
    }

    #[test]
    fn deterministic_with_a_seed() {
        let a = plan(200, 2_000, 9).batch(0, 200, 0);
        let b = plan(200, 2_000, 9).batch(0, 200, 0);
        let c = plan(200, 2_000, 10).batch(0, 200, 0);
        let texts = |x: &Batch| {
            x.messages
                .iter()
                .map(|(_, m)| m.text.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&a), texts(&b));
        assert_ne!(texts(&a), texts(&c));
        assert_eq!(customer(9, 17).email, customer(9, 17).email);
    }

    #[test]
    fn the_data_is_mixed() {
        let b = plan(2_000, 20_000, 1).batch(0, 2_000, 0);
        // Voice threads come only from call reports (their transcripts),
        // not from the typed traffic this seeds.
        for ch in Channel::ALL.iter().filter(|c| **c != Channel::Voice) {
            assert!(b.messages.iter().any(|(_, m)| m.channel == *ch), "{ch:?}");
        }
        for a in AuthorKind::ALL {
            assert!(b.messages.iter().any(|(_, m)| m.author == *a), "{a:?}");
        }
        for p in Priority::ALL {
            assert!(b.conversations.iter().any(|(_, c)| c.priority == p));
        }
        let cs = || b.conversations.iter().map(|(_, c)| c);
        assert!(cs().any(|c| c.status == Status::Resolved));
        assert!(cs().any(|c| c.waiting_since.is_some()));
        assert!(cs().any(|c| c.assignee_id == Some(member_id(0))));
        assert!(cs().any(|c| c.read_by.is_none() && c.last_inbound_at.is_some()));
    }
}
