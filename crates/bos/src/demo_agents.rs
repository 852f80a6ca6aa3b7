//! The demo's AI agents (issue 21): three simulated external agents of the
//! demo organization, registered as an admin registers them (each with its
//! own key of scope `agent`), with a month of past interactions so the
//! Command Center's metrics and trends have something to say on first run.
//! While `bos demo` serves, [`Sim::run`] plays them through the REAL HTTP
//! API with their own keys, exactly as an external agent would: heartbeats
//! with what each is doing, a chat agent answering customers who wrote in
//! (a reply on the conversation, then the interaction with its cost,
//! tokens, CSAT and sentiment), a voice receptionist taking calls (talking,
//! with the call's start, then the call's interaction), and an SMS SDR that
//! times out now and then (`error: API timeout`). A paused agent's writes
//! are refused (409) and it only keeps reporting heartbeats, so pausing one
//! from the Command Center visibly stops it.

use anyhow::{anyhow, Context, Result};
use bos_core::agents::{Period, Totals};
use bos_engine::agents::{Agents, CreateAgent, InteractionInput};
use bos_store::identity::{ProfileQuery, ProfileSort};
use bos_store::inbox::{ListQuery, StatusFilter};
use bos_store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

const DAY: i64 = 86_400_000;

/// (name, kind): the demo's agents.
pub const AGENTS: [(&str, &str); 3] = [
    ("Ava · chat support", "chat"),
    ("Rex · SMS SDR", "sdr"),
    ("Nova · voice reception", "voice"),
];

/// One demo agent and the key it reports with.
#[derive(Debug, Clone)]
pub struct DemoAgent {
    pub id: Uuid,
    pub name: String,
    pub kind: &'static str,
    pub key: String,
}

/// Registers the demo agents (a fresh key for each when they exist: keys
/// are stored hashed, so the old ones cannot be read back) and, the first
/// time, `past_days` days of their interactions up to `now`.
pub async fn seed(store: &Store, org: Uuid, past_days: i64, now: i64) -> Result<Vec<DemoAgent>> {
    // Nobody follows the demo yet; a bus of its own.
    let agents = Agents::new(store.clone(), bos_engine::Bus::new(store.clone()));
    let existing = agents.list(org, now).await?;
    let mut out = Vec::new();
    for (name, kind) in AGENTS {
        let (id, key) = match existing.iter().find(|v| v.agent.name == name) {
            Some(v) => (
                v.agent.id,
                agents.rekey(org, v.agent.id, None, now).await?.secret,
            ),
            None => {
                let (v, key) = agents
                    .create(
                        org,
                        None,
                        CreateAgent {
                            name: name.into(),
                            kind: kind.into(),
                            provider: "api".into(),
                            platform_agent_id: None,
                            webhook_secret: None,
                        },
                        now,
                    )
                    .await?;
                (v.agent.id, key.secret)
            }
        };
        out.push(DemoAgent {
            id,
            name: name.into(),
            kind,
            key,
        });
    }
    let all = Period {
        from: 0,
        to: now + 1,
    };
    if store.agent_totals(org, None, all).await? == Totals::default() && past_days > 0 {
        let people = customers(store, org).await?;
        let mut rng = StdRng::seed_from_u64(21);
        let mut n = 0;
        for day in (0..past_days).rev() {
            let start = now - day * DAY - DAY;
            for a in &out {
                let per_day = match a.kind {
                    "chat" => rng.gen_range(6..12),
                    "sdr" => rng.gen_range(4..9),
                    _ => rng.gen_range(2..6),
                };
                for _ in 0..per_day {
                    let at = start + rng.gen_range(0..DAY);
                    if at > now {
                        continue;
                    }
                    // Things got a little better over the month, as they should.
                    let age = day as f64 / past_days.max(1) as f64;
                    let input = interaction(a.kind, &people, &mut rng, at, age);
                    agents.record(org, a.id, input, now).await?;
                    n += 1;
                }
            }
        }
        tracing::info!(interactions = n, "seeded the demo agents' history");
    }
    Ok(out)
}

/// Demo customers to talk with.
async fn customers(store: &Store, org: Uuid) -> Result<Vec<Uuid>> {
    Ok(store
        .list_profiles(
            org,
            &ProfileQuery {
                q: String::new(),
                sort: Some(ProfileSort::LastActive),
                after: None,
                limit: 200,
            },
        )
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect())
}

const CHAT_SUMMARIES: [&str; 6] = [
    "Sizing question on the linen shirt; suggested M",
    "Where is my order: shared the tracking link",
    "Return for a damaged mug; label sent",
    "Discount code did not apply; fixed at checkout",
    "Asked about restock dates for the oak table",
    "Changed the delivery address before dispatch",
];
const SDR_SUMMARIES: [&str; 5] = [
    "Followed up on an abandoned checkout by SMS",
    "Booked a call with a wholesale lead",
    "Lead asked to be contacted next month",
    "Qualified a spring-sale sign-up",
    "No answer after two texts",
];
const CALL_SUMMARIES: [&str; 4] = [
    "Caller asked for opening hours",
    "Took a message for the owner",
    "Booked a store appointment for Saturday",
    "Caller wanted a refund; transferred to a person",
];

/// One plausible interaction of an agent of `kind` at `at`; `age` 1.0 is
/// a month ago, 0.0 now (older ones did a little worse).
fn interaction(
    kind: &str,
    people: &[Uuid],
    rng: &mut StdRng,
    at: i64,
    age: f64,
) -> InteractionInput {
    let roll: f64 = rng.gen();
    let (success, handoff) = match kind {
        "chat" => (0.86 - 0.08 * age, 0.08),
        "sdr" => (0.62 - 0.1 * age, 0.05),
        _ => (0.8 - 0.05 * age, 0.12),
    };
    let outcome = if roll < success {
        "success"
    } else if roll < success + handoff {
        "handed_off"
    } else {
        "failure"
    };
    let (summary, length, cost, tokens) = match kind {
        "chat" => (
            CHAT_SUMMARIES[rng.gen_range(0..CHAT_SUMMARIES.len())],
            rng.gen_range(60_000..600_000),
            rng.gen_range(0.01..0.06),
            rng.gen_range(800..4_000),
        ),
        "sdr" => (
            SDR_SUMMARIES[rng.gen_range(0..SDR_SUMMARIES.len())],
            rng.gen_range(30_000..300_000),
            rng.gen_range(0.005..0.03),
            rng.gen_range(300..1_500),
        ),
        _ => (
            CALL_SUMMARIES[rng.gen_range(0..CALL_SUMMARIES.len())],
            rng.gen_range(45_000..420_000),
            rng.gen_range(0.08..0.45),
            rng.gen_range(1_000..6_000),
        ),
    };
    let good = outcome == "success";
    let sentiment: f64 = if good {
        rng.gen_range(6.5..9.8)
    } else {
        rng.gen_range(2.0..6.5)
    };
    InteractionInput {
        customer_id: people.get(rng.gen_range(0..people.len().max(1))).copied(),
        conversation_id: None,
        outcome: outcome.into(),
        started_at: at,
        ended_at: Some(at + length),
        first_response_ms: Some(rng.gen_range(800..(6_000 + (age * 6_000.0) as i64))),
        cost_usd: Some((cost * 1000.0_f64).round() / 1000.0),
        tokens: Some(tokens),
        csat: (rng.gen_bool(0.6)).then(|| {
            if good {
                rng.gen_range(7..=10)
            } else {
                rng.gen_range(2..=7)
            }
        }),
        sentiment: Some((sentiment * 10.0).round() / 10.0),
        human_intervened: Some(outcome == "handed_off" || rng.gen_bool(0.04)),
        summary: Some(summary.into()),
        transcript: Vec::new(),
        external_id: None,
    }
}

/// The simulator: the agents, and where the server listens.
pub struct Sim {
    store: Store,
    org: Uuid,
    addr: String,
    agents: Vec<DemoAgent>,
}

/// Prepares the demo agents for a server that will listen on `listen`.
pub async fn prepare(store: &Store, org: Uuid, listen: &str, now: i64) -> Result<Sim> {
    let agents = seed(store, org, 30, now).await?;
    Ok(Sim {
        store: store.clone(),
        org,
        addr: listen
            .replace("0.0.0.0", "127.0.0.1")
            .replace("[::]", "[::1]"),
        agents,
    })
}

fn rfc3339(ms: i64) -> String {
    bos_web::api::rfc3339(ms)
}

const CHAT_REPLIES: [&str; 5] = [
    "Thanks for reaching out! I've checked your order and it ships tomorrow.",
    "Happy to help: the linen shirt runs true to size, so M should fit.",
    "I've sent a prepaid return label to your e-mail. Anything else?",
    "That code is valid until Sunday; I've applied it to your cart.",
    "Good news: it's back in stock next week. Want me to reserve one?",
];
const CHAT_ACTIVITIES: [&str; 4] = [
    "Reading new messages",
    "Looking up an order",
    "Drafting a reply",
    "Checking the returns policy",
];

/// What the voice agent is doing between ticks.
enum Call {
    Idle { until: i64 },
    Talking { since: i64, until: i64 },
}

impl Sim {
    /// One API request with the agent's key; the status.
    async fn post(&self, key: &str, path: &str, body: serde_json::Value) -> Result<u16> {
        let body = body.to_string();
        let mut s = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        let head = format!(
            "POST /api/v1{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nAccept: application/json\r\nAuthorization: Bearer {key}\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut buf = vec![0u8; 64 * 1024];
        crate::http1::read_response(&mut s, &mut buf).await
    }

    async fn beat(&self, a: &DemoAgent, body: serde_json::Value) {
        match self
            .post(&a.key, &format!("/agents/{}/heartbeat", a.id), body)
            .await
        {
            Ok(s) if s >= 300 => {
                tracing::debug!(status = s, agent = %a.name, "demo agent: heartbeat refused")
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "demo agent: heartbeat failed"),
        }
    }

    /// Records an interaction; false when refused (paused: 409).
    async fn report(&self, a: &DemoAgent, i: &InteractionInput) -> bool {
        let body = serde_json::json!({
            "customer_id": i.customer_id,
            "conversation_id": i.conversation_id,
            "outcome": i.outcome,
            "started_at": rfc3339(i.started_at),
            "ended_at": i.ended_at.map(rfc3339),
            "first_response_ms": i.first_response_ms,
            "cost_usd": i.cost_usd,
            "tokens": i.tokens,
            "csat": i.csat,
            "sentiment": i.sentiment,
            "human_intervened": i.human_intervened,
            "summary": i.summary,
            "external_id": Uuid::new_v4().to_string(),
        });
        match self
            .post(&a.key, &format!("/agents/{}/interactions", a.id), body)
            .await
        {
            Ok(s) if s < 300 => true,
            Ok(s) => {
                tracing::debug!(status = s, agent = %a.name, "demo agent: interaction refused");
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "demo agent: interaction failed");
                false
            }
        }
    }

    /// The chat agent answers the customer who has waited longest.
    async fn answer(&self, a: &DemoAgent, rng: &mut StdRng, now: i64) -> Result<()> {
        let page = self
            .store
            .list_conversations(
                self.org,
                &ListQuery {
                    status: Some(StatusFilter::Open),
                    limit: 30,
                    ..Default::default()
                },
            )
            .await?;
        let Some(c) = page.items.iter().find(|c| {
            c.waiting_since.is_some()
                && c.last_author == bos_core::inbox::AuthorKind::Customer
                && c.last_channel != bos_core::inbox::Channel::Form
        }) else {
            return Ok(());
        };
        let status = self
            .post(
                &a.key,
                &format!("/conversations/{}/messages", c.id),
                serde_json::json!({
                    "channel": c.last_channel.as_str(),
                    "text": CHAT_REPLIES[rng.gen_range(0..CHAT_REPLIES.len())],
                    "subject": "Re: your message",
                }),
            )
            .await?;
        if status >= 300 {
            return Err(anyhow!("the reply was refused ({status})"));
        }
        let mut i = interaction("chat", &[c.profile_id], rng, now, 0.0);
        i.conversation_id = Some(c.id);
        // A customer who wrote before the agent came on duty (the seeded
        // inbox) says nothing about how fast it answers.
        i.first_response_ms = c
            .waiting_since
            .map(|w| now - w)
            .filter(|w| (0..15 * 60_000).contains(w))
            .map(|w| w.max(500));
        i.ended_at = Some(now);
        self.report(a, &i).await;
        Ok(())
    }

    /// Plays the agents until the process ends.
    pub async fn run(self) {
        let mut rng = StdRng::from_entropy();
        for _ in 0..100 {
            if TcpStream::connect(&self.addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let people = customers(&self.store, self.org).await.unwrap_or_default();
        let mut call = Call::Idle { until: 0 };
        let mut rex_error_until = 0;
        let mut turn: u64 = 0;
        loop {
            turn += 1;
            let now = crate::now();
            for a in &self.agents {
                match a.kind {
                    "chat" => {
                        if turn % 5 == 1 {
                            let act = CHAT_ACTIVITIES[rng.gen_range(0..CHAT_ACTIVITIES.len())];
                            self.beat(a, serde_json::json!({"status": "working", "activity": act, "interval_seconds": 15})).await;
                        }
                        if turn.is_multiple_of(8) {
                            if let Err(e) = self.answer(a, &mut rng, now).await {
                                tracing::debug!(error = %e, "demo agent: no answer");
                            }
                        }
                    }
                    "sdr" => {
                        if now < rex_error_until {
                            continue;
                        }
                        if turn % 5 == 2 {
                            // Its SMS provider times out now and then.
                            if rng.gen_bool(0.15) {
                                rex_error_until = now + 12_000;
                                self.beat(a, serde_json::json!({"status": "error", "error": "API timeout", "interval_seconds": 15})).await;
                                continue;
                            }
                            let n = rng.gen_range(2..9);
                            self.beat(a, serde_json::json!({"status": "working", "activity": format!("Texting {n} new leads from the spring sale"), "interval_seconds": 15})).await;
                        }
                        if turn % 10 == 3 {
                            let i = interaction("sdr", &people, &mut rng, now - 60_000, 0.0);
                            self.report(a, &i).await;
                        }
                    }
                    _ => match call {
                        Call::Idle { until } if now >= until => {
                            call = Call::Talking {
                                since: now,
                                until: now + rng.gen_range(40_000..180_000),
                            };
                            self.beat(a, serde_json::json!({"status": "talking", "call_started_at": rfc3339(now), "interval_seconds": 15})).await;
                        }
                        Call::Talking { since, until } if now >= until => {
                            let mut i = interaction("voice", &people, &mut rng, since, 0.0);
                            i.ended_at = Some(now);
                            self.report(a, &i).await;
                            call = Call::Idle {
                                until: now + rng.gen_range(15_000..60_000),
                            };
                            self.beat(
                                a,
                                serde_json::json!({"status": "idle", "interval_seconds": 15}),
                            )
                            .await;
                        }
                        Call::Talking { since, .. } if turn.is_multiple_of(5) => {
                            self.beat(a, serde_json::json!({"status": "talking", "call_started_at": rfc3339(since), "interval_seconds": 15})).await;
                        }
                        Call::Idle { .. } if turn.is_multiple_of(5) => {
                            self.beat(
                                a,
                                serde_json::json!({"status": "idle", "interval_seconds": 15}),
                            )
                            .await;
                        }
                        _ => {}
                    },
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}
