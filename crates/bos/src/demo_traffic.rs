//! The demo's traffic simulator (issue 4): while `bos demo` serves, it
//! posts real, signed provider traffic to the server's own public endpoints
//! — Segment `page`/`identify`/`track` calls with the source's write key,
//! Shopify checkout and order webhooks signed with the app secret, and
//! landing-page form posts (a "form started" partial, then the submission)
//! — so the intake feed moves, checkouts get abandoned when their window
//! closes, leads engage, convert and go quiet, exactly as real traffic
//! would make them. It also plays the customers who receive the demo's
//! nudges (issue 5): some open them and click through (the real tracking
//! endpoints), some buy (signed Shopify orders), and some answer. The
//! development sink has no inbound provider to post a reply through, so a
//! reply is handed to the store exactly as the inbound-email endpoints do.
//! Customers also write to the Unified Inbox on every channel now and
//! then (`demo_inbox`): Instagram and Facebook messages as signed Meta
//! webhook deliveries and form messages as form posts to this server, SMS
//! and e-mail through the inbox service.

use anyhow::{anyhow, Context, Result};
use bos_store::intake::{NewSource, Source, SourceKind};
use bos_store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

/// The demo's credentials for its own endpoints.
pub struct Traffic {
    store: Store,
    org: Uuid,
    addr: String,
    segment_key: String,
    shopify_path: String,
    shopify_secret: String,
    form_path: String,
    /// The demo's Meta source, for signed Instagram and Facebook messages.
    meta: Option<crate::demo_inbox::MetaDoor>,
}

async fn source_named(
    store: &Store,
    org: Uuid,
    kind: SourceKind,
    name: &str,
) -> Result<Option<Source>> {
    Ok(store
        .sources(org)
        .await?
        .into_iter()
        .find(|s| s.kind == kind && s.name == name))
}

/// Ensures the demo organization's sources (a website, a Shopify store, a
/// landing-page form) and returns what the simulator needs to use them. The
/// website's write key is rotated each start: it is stored only hashed.
pub async fn prepare(store: &Store, org: Uuid, listen: &str, now: i64) -> Result<Traffic> {
    let segment_key = bos_web::auth::random_token(24);
    let hash = bos_web::auth::sha256(&segment_key);
    match source_named(store, org, SourceKind::Segment, "Website (demo)").await? {
        Some(s) => store.set_source_key_hash(org, s.id, hash).await?,
        None => {
            store
                .create_source(
                    org,
                    NewSource {
                        kind: SourceKind::Segment,
                        name: "Website (demo)".into(),
                        secret: None,
                        key_hash: Some(hash),
                        config: None,
                    },
                    now,
                )
                .await?;
        }
    }
    let shop = match source_named(store, org, SourceKind::Shopify, "Shopify store (demo)").await? {
        Some(s) => s,
        None => {
            store
                .create_source(
                    org,
                    NewSource {
                        kind: SourceKind::Shopify,
                        name: "Shopify store (demo)".into(),
                        secret: Some(format!("shpss_demo_{}", bos_web::auth::random_token(16))),
                        key_hash: None,
                        config: None,
                    },
                    now,
                )
                .await?
        }
    };
    let form = match source_named(
        store,
        org,
        SourceKind::Form,
        "Spring sale landing page (demo)",
    )
    .await?
    {
        Some(s) => s,
        None => {
            let key = format!("fk_{}", bos_web::auth::random_token(18));
            store
                .create_source(
                    org,
                    NewSource {
                        kind: SourceKind::Form,
                        name: "Spring sale landing page (demo)".into(),
                        key_hash: Some(bos_web::auth::sha256(&key)),
                        secret: Some(key),
                        config: None,
                    },
                    now,
                )
                .await?
        }
    };
    // Short windows, so the demo shows abandonment and ghosting within
    // minutes instead of hours and days.
    let mut leads = store.pipeline_settings(org).await?.leads;
    leads.ghost_after_ms = 4 * 60_000;
    store
        .set_lead_settings(org, &leads, 2 * 60_000, now)
        .await?;
    let addr = listen
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    seed_campaigns(store, org, now).await?;
    let meta = match crate::demo_inbox::meta_door(store, org, now).await {
        Ok(door) => Some(door),
        Err(e) => {
            // The rest of the demo works without it.
            tracing::warn!(error = %e, "demo: no Meta source; Instagram and Facebook messages are recorded directly");
            None
        }
    };
    Ok(Traffic {
        meta,
        store: store.clone(),
        org,
        addr,
        segment_key,
        shopify_path: format!("/hooks/shopify/{}", shop.id),
        shopify_secret: shop
            .secret
            .clone()
            .ok_or_else(|| anyhow!("demo Shopify source has no secret"))?,
        form_path: format!("/f/{}", form.secret.clone().unwrap_or_default()),
    })
}

const FIRST: &[&str] = &[
    "Ava", "Noah", "Mia", "Liam", "Zoe", "Omar", "Ines", "Kai", "Lena", "Ravi", "Sofia", "Theo",
    "Yuki", "Marta", "Jonah", "Priya", "Felix", "Nora", "Diego", "Hana",
];
const LAST: &[&str] = &[
    "Garcia",
    "Novak",
    "Okafor",
    "Lindqvist",
    "Tanaka",
    "Moreau",
    "Silva",
    "Khan",
    "Rossi",
    "Byrne",
    "Weber",
    "Costa",
    "Haddad",
    "Kowalski",
    "Nguyen",
];
const PAGES: &[&str] = &[
    "/",
    "/collections/spring",
    "/products/linen-shirt",
    "/products/canvas-tote",
    "/pricing",
    "/blog/care-guide",
];
const SOURCES: &[(&str, &str, &str)] = &[
    ("google", "cpc", "spring-sale"),
    ("facebook", "paid_social", "retargeting"),
    ("newsletter", "email", "april-news"),
    ("instagram", "social", "bio-link"),
];

/// One simulated visitor: an anonymous id first, a name and an e-mail they
/// give later, and the checkout they started, if any.
pub struct Visitor {
    n: u64,
    anon: String,
    first: &'static str,
    last: &'static str,
    email: String,
    step: u32,
    checkout: Option<u64>,
}

impl Visitor {
    /// Visitor number `n` with a fresh anonymous id; the e-mail is made
    /// from the name and the number, as the simulator makes it.
    pub fn new(n: u64, first: &'static str, last: &'static str) -> Visitor {
        Visitor {
            n,
            anon: Uuid::new_v4().to_string(),
            first,
            last,
            email: format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase(),
                n % 1000
            ),
            step: 0,
            checkout: None,
        }
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    pub fn name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

impl Traffic {
    async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        content_type: &str,
        body: &[u8],
    ) -> Result<u16> {
        let mut s = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut buf = vec![0u8; 64 * 1024];
        crate::http1::read_response(&mut s, &mut buf).await
    }

    async fn segment(&self, call: &str, body: serde_json::Value) -> Result<u16> {
        use base64::Engine as _;
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.segment_key))
        );
        self.post(
            &format!("/v1/{call}"),
            &[("Authorization", auth)],
            "application/json",
            body.to_string().as_bytes(),
        )
        .await
    }

    async fn shopify(&self, topic: &str, body: serde_json::Value) -> Result<u16> {
        let b = body.to_string().into_bytes();
        let sig = bos_core::intake::shopify::sign(self.shopify_secret.as_bytes(), &b);
        let headers = [
            ("X-Shopify-Topic", topic.to_string()),
            ("X-Shopify-Hmac-Sha256", sig),
            ("X-Shopify-Event-Id", Uuid::new_v4().to_string()),
            ("X-Shopify-Webhook-Id", Uuid::new_v4().to_string()),
            (
                "X-Shopify-Shop-Domain",
                "demo-shop.myshopify.com".to_string(),
            ),
        ];
        self.post(&self.shopify_path, &headers, "application/json", &b)
            .await
    }

    async fn form(&self, fields: &[(&str, String)]) -> Result<u16> {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.post(
            &self.form_path,
            &[],
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        )
        .await
    }

    /// One visitor's next step; returns false when their story is over.
    async fn step(&self, v: &mut Visitor, rng: &mut StdRng) -> Result<bool> {
        let now = crate::now();
        v.step += 1;
        match v.step {
            1 => {
                let (src, medium, campaign) = SOURCES[rng.gen_range(0..SOURCES.len())];
                let page = PAGES[rng.gen_range(0..PAGES.len())];
                self.land(v, page, (src, medium, campaign), now).await?;
            }
            2 => {
                let page = PAGES[rng.gen_range(0..PAGES.len())];
                self.view(v, page, now).await?;
            }
            3 => {
                // Some fill in the landing-page form (a partial first).
                if rng.gen_bool(0.35) {
                    self.start_form(v).await?;
                    if rng.gen_bool(0.7) {
                        self.finish_form(v).await?;
                    }
                    return Ok(rng.gen_bool(0.5));
                }
                self.identify(v, now).await?;
            }
            4 => {
                self.add_to_cart(v, now).await?;
                if rng.gen_bool(0.3) {
                    return Ok(false); // a window shopper: goes quiet
                }
            }
            5 => {
                let qty = rng.gen_range(1..4u32);
                self.start_checkout(v, qty, now).await?;
            }
            _ => {
                // Most finish the purchase; the rest leave the checkout to
                // be abandoned when the window closes.
                if rng.gen_bool(0.55) {
                    self.order(v, now).await?;
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A visitor lands from an ad or a link (a Segment `page` with UTM
    /// tags; a paid click carries its click id).
    pub async fn land(
        &self,
        v: &Visitor,
        page: &str,
        (src, medium, campaign): (&str, &str, &str),
        now: i64,
    ) -> Result<u16> {
        let click = if medium == "cpc" {
            format!("&gclid=demo{}", v.n)
        } else {
            String::new()
        };
        self.segment("page", serde_json::json!({
            "anonymousId": v.anon, "messageId": Uuid::new_v4().to_string(), "timestamp": bos_web::api::rfc3339(now), "name": page,
            "context": {"page": {"path": page, "url": format!("https://demo-shop.example{page}?utm_source={src}&utm_medium={medium}&utm_campaign={campaign}{click}")},
                        "campaign": {"source": src, "medium": medium, "name": campaign}}
        })).await
    }

    /// Another page view (a Segment `page`).
    pub async fn view(&self, v: &Visitor, page: &str, now: i64) -> Result<u16> {
        self.segment(
            "page",
            serde_json::json!({
                "anonymousId": v.anon, "messageId": Uuid::new_v4().to_string(), "timestamp": bos_web::api::rfc3339(now), "name": page,
                "context": {"page": {"path": page}}
            }),
        )
        .await
    }

    /// The visitor signs in or subscribes: a Segment `identify` with their
    /// e-mail, name and a few custom traits.
    pub async fn identify(&self, v: &Visitor, now: i64) -> Result<u16> {
        self.segment("identify", serde_json::json!({
            "anonymousId": v.anon, "userId": format!("cust-{}", v.n), "messageId": Uuid::new_v4().to_string(), "timestamp": bos_web::api::rfc3339(now),
            "traits": {"email": v.email, "firstName": v.first, "lastName": v.last,
                       "shirt_size": (["S", "M", "L", "XL"][(v.n % 4) as usize]),
                       "newsletter": v.n.is_multiple_of(3)},
            "context": {"timezone": (["America/New_York", "Europe/London", "America/Los_Angeles", "Europe/Berlin"][(v.n % 4) as usize])}
        })).await
    }

    /// Starts the landing-page form: a partial save with a name only, so
    /// the visitor is still anonymous (no address to write to).
    pub async fn start_form(&self, v: &Visitor) -> Result<u16> {
        self.form(&[
            ("name", format!("{} {}", v.first, v.last)),
            ("_sid", format!("demo-{}", v.n)),
            ("_partial", "1".into()),
        ])
        .await
    }

    /// Submits the landing-page form with an e-mail and a question.
    pub async fn finish_form(&self, v: &Visitor) -> Result<u16> {
        self.form(&[
            ("name", format!("{} {}", v.first, v.last)),
            ("email", v.email.clone()),
            ("message", "Do you ship to Canada?".into()),
            ("_sid", format!("demo-{}", v.n)),
        ])
        .await
    }

    /// A Segment `track` "Product Added" for the identified visitor.
    pub async fn add_to_cart(&self, v: &Visitor, now: i64) -> Result<u16> {
        self.segment("track", serde_json::json!({
            "userId": format!("cust-{}", v.n), "messageId": Uuid::new_v4().to_string(), "timestamp": bos_web::api::rfc3339(now),
            "event": "Product Added", "properties": {"name": "Linen shirt", "price": 59.0}
        })).await
    }

    /// A signed Shopify `checkouts/create` for `qty` linen shirts; the
    /// checkout is abandoned when the window closes unless [`Self::order`]
    /// completes it.
    pub async fn start_checkout(&self, v: &mut Visitor, qty: u32, now: i64) -> Result<u16> {
        let iso = bos_web::api::rfc3339(now);
        let id = 5_000_000 + v.n;
        v.checkout = Some(id);
        let total = format!("{}.00", 59 * qty + 8);
        self.shopify("checkouts/create", serde_json::json!({
            "id": id, "token": format!("demo-tok-{id}"), "cart_token": format!("demo-cart-{id}"),
            "email": v.email, "created_at": iso, "updated_at": iso, "currency": "USD", "completed_at": null,
            "subtotal_price": format!("{}.00", 59 * qty), "total_price": total,
            "line_items": [{"product_id": 101, "variant_id": 1011, "title": "Linen shirt", "quantity": qty, "price": "59.00"}],
            "customer": {"id": 900_000 + v.n, "email": v.email, "first_name": v.first, "last_name": v.last},
            "abandoned_checkout_url": format!("https://demo-shop.example/checkouts/{id}/recover")
        })).await
    }

    /// A signed Shopify `orders/create` completing the visitor's checkout
    /// (nothing when they never started one).
    pub async fn order(&self, v: &Visitor, now: i64) -> Result<Option<u16>> {
        let Some(id) = v.checkout else {
            return Ok(None);
        };
        let iso = bos_web::api::rfc3339(now);
        self.shopify("orders/create", serde_json::json!({
            "id": 7_000_000 + v.n, "name": format!("#{}", 1000 + v.n), "email": v.email,
            "currency": "USD", "total_price": "126.00", "financial_status": "paid",
            "checkout_token": format!("demo-tok-{id}"), "created_at": iso, "processed_at": iso,
            "customer": {"id": 900_000 + v.n, "email": v.email},
            "line_items": [{"product_id": 101, "variant_id": 1011, "title": "Linen shirt", "quantity": 2, "price": "59.00"}]
        })).await.map(Some)
    }

    /// Runs until the process ends: a visitor's step every second or two,
    /// a handful of visitors in flight at once.
    pub async fn run(self, bus: tokio::sync::oneshot::Receiver<bos_engine::Bus>) {
        let mut rng = StdRng::from_entropy();
        // Wait for the server to listen.
        for _ in 0..100 {
            if TcpStream::connect(&self.addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Customers writing in: through the inbox service on the serving
        // process's bus, so open inbox pages hear of it.
        let inbox = bus
            .await
            .ok()
            .map(|bus| bos_engine::inbox::Inbox::new(self.store.clone(), bus));
        let chatter = match crate::demo_inbox::Chatter::new(
            &self.store,
            self.org,
            self.meta.clone(),
            self.form_path.clone(),
        )
        .await
        {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "demo traffic: no inbox writers");
                None
            }
        };
        let base = rng.gen_range(0..1_000_000u64);
        let mut next = 0u64;
        let mut live: Vec<Visitor> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut turn = 0u64;
        loop {
            turn += 1;
            if turn.is_multiple_of(6) {
                if let (Some(inbox), Some(chatter)) = (&inbox, &chatter) {
                    match chatter.write(inbox, self.org, &mut rng, crate::now()).await {
                        Ok(Some(p)) => {
                            match self
                                .post(&p.path, &p.headers, p.content_type, &p.body)
                                .await
                            {
                                Ok(status) if status >= 300 => {
                                    tracing::debug!(status, path = %p.path, "demo traffic: a customer message was refused")
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::debug!(error = %e, "demo traffic: a customer message failed")
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "demo traffic: a customer message failed");
                        }
                    }
                }
            }
            if turn.is_multiple_of(8) {
                if let Err(e) = self.react(&mut rng, &mut seen).await {
                    tracing::debug!(error = %e, "demo traffic: reacting to nudges failed");
                }
            }
            if live.len() < 6 {
                next += 1;
                let n = base + next;
                let first = FIRST[rng.gen_range(0..FIRST.len())];
                let last = LAST[rng.gen_range(0..LAST.len())];
                live.push(Visitor::new(n, first, last));
            }
            let i = rng.gen_range(0..live.len());
            let mut v = live.swap_remove(i);
            match self.step(&mut v, &mut rng).await {
                Ok(true) => live.push(v),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "demo traffic: request failed");
                    live.push(v);
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(700..1_800))).await;
        }
    }
}

/// The demo's two campaigns, created once (a person's edits survive
/// restarts): abandoned carts and leads gone quiet, with demo-sized delays
/// so the funnels fill within minutes, on the development sink.
pub const CART_CAMPAIGN: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_ca57);
pub const QUIET_CAMPAIGN: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_9057);

async fn seed_campaigns(store: &Store, org: Uuid, now: i64) -> Result<()> {
    use bos_core::nudge::{Campaign, Channel, Step, StopConditions, Trigger, Variant};
    let v = |name: &str, weight: u32, subject: &str, body: &str| Variant {
        name: name.into(),
        weight,
        subject: Some(subject.into()),
        body: body.into(),
    };
    let cart = Campaign {
        name: "Abandoned cart rescue".into(),
        trigger: Trigger::CheckoutAbandoned,
        steps: vec![
            Step {
                delay_ms: 60_000,
                channel: Channel::Email,
                variants: vec![
                    v("Friendly", 50, "{{ first_name }}, your cart is waiting",
                      "Hi {{ first_name }},\n\nYou left {{ cart_total }} of linen in your cart. It is saved here: {{ cart_url }}\n\nThe Demo Shop team"),
                    v("Urgent", 50, "Your linen shirt is almost gone",
                      "Hi {{ first_name }}, only a few left in your size. Finish your order: {{ cart_url }}"),
                ],
            },
            Step {
                delay_ms: 2 * 60_000,
                channel: Channel::Email,
                variants: vec![v("A", 1, "10% off to finish your order",
                    "Hi {{ first_name }}, here is 10% off your cart ({{ cart_total }}) with code LINEN10: {{ cart_url }}")],
            },
        ],
        stop: StopConditions::default(),
        quiet_hours: None,
        max_attempts: 5,
        reentry_cooldown_ms: 24 * 3_600_000,
        priority: 0,
    };
    let quiet = Campaign {
        name: "Win back quiet leads".into(),
        trigger: Trigger::LeadGhosting,
        steps: vec![
            Step {
                delay_ms: 60_000,
                channel: Channel::Preferred,
                variants: vec![v(
                    "A",
                    1,
                    "Still looking, {{ first_name }}?",
                    "Hi {{ first_name }}, can we help you pick a size? Just reply to this message.",
                )],
            },
            Step {
                delay_ms: 3 * 60_000,
                channel: Channel::Email,
                variants: vec![v(
                    "A",
                    1,
                    "New colours are in",
                    "Hi {{ first_name }}, the linen shirt now comes in sage and sand.",
                )],
            },
        ],
        stop: StopConditions::default(),
        quiet_hours: None,
        max_attempts: 5,
        reentry_cooldown_ms: 24 * 3_600_000,
        priority: 0,
    };
    for (id, c) in [(CART_CAMPAIGN, cart), (QUIET_CAMPAIGN, quiet)] {
        c.validate(&[]).map_err(|e| anyhow!(e))?;
        if store.campaign(org, id).await?.is_none() {
            store
                .put_campaign(org, id, &c, bos_store::nudge::CampaignStatus::Active, now)
                .await?;
        }
    }
    Ok(())
}

impl Traffic {
    async fn get(&self, path: &str) -> Result<u16> {
        let mut s = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        s.write_all(head.as_bytes()).await?;
        let mut buf = vec![0u8; 64 * 1024];
        crate::http1::read_response(&mut s, &mut buf).await
    }

    /// The customers who got a nudge since the last look: most open it,
    /// some click through, some buy, a few answer.
    async fn react(
        &self,
        rng: &mut StdRng,
        seen: &mut std::collections::HashSet<Uuid>,
    ) -> Result<()> {
        for campaign in [CART_CAMPAIGN, QUIET_CAMPAIGN] {
            let sent = self
                .store
                .campaign_executions(self.org, campaign, 100_000)
                .await?;
            for e in sent.iter().filter(|e| e.sent_at.is_some()) {
                if !seen.insert(e.id) {
                    continue;
                }
                if e.channel == "email" && rng.gen_bool(0.6) {
                    self.get(&format!("/t/o/{}", e.token)).await?;
                }
                if rng.gen_bool(0.3) {
                    self.get(&format!("/t/c/{}", e.token)).await?;
                }
                if rng.gen_bool(0.12) {
                    let (channel, answer) = if e.channel == "sms" {
                        (bos_core::nudge::Channel::Sms, "Do you have it in blue?")
                    } else {
                        (
                            bos_core::nudge::Channel::Email,
                            "Does the medium run large?",
                        )
                    };
                    self.store
                        .inbound_message(
                            self.org,
                            bos_store::nudge::InboundMessage {
                                channel,
                                from: e.to.clone(),
                                to: "shop@demo-shop.example".into(),
                                subject: e.subject.as_ref().map(|s| format!("Re: {s}")),
                                text: answer.into(),
                                provider_id: format!("demo-reply-{}", e.id),
                                provider: "demo".into(),
                                in_reply_to: vec![format!("<{}>", e.message_id)],
                                opt: None,
                            },
                            crate::now(),
                        )
                        .await?;
                } else if rng.gen_bool(0.25) && e.channel == "email" {
                    let iso = bos_web::api::rfc3339(crate::now());
                    let n = rng.gen_range(0..1_000_000u64);
                    self.shopify("orders/create", serde_json::json!({
                        "id": 8_000_000 + n, "name": format!("#N{n}"), "email": e.to,
                        "currency": "USD", "total_price": "126.00", "financial_status": "paid",
                        "created_at": iso, "processed_at": iso,
                        "customer": {"email": e.to},
                        "line_items": [{"product_id": 101, "variant_id": 1011, "title": "Linen shirt", "quantity": 2, "price": "59.00"}]
                    })).await?;
                }
            }
        }
        Ok(())
    }
}

fn urlencode(s: &str) -> String {
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
