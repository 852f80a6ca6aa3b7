//! Demo customers for the God View: a few thousand people whose identities
//! overlap across Shopify, Instagram, Facebook, web forms and the website,
//! fed through the real resolution (`Store::identify`), so the profile
//! pages show merges, platform badges, possible duplicates and long
//! journeys. Deterministic: the same seed gives the same shop.

use anyhow::Result;
use bos_core::identity::{Identifier, IdentifierKind as K, IdentityRules};
use bos_store::identity::{IdentifyInput, NewEvent, Traits};
use bos_store::Store;
use uuid::Uuid;

const FIRST: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Isabella",
    "Amir", "Chloe", "Kenji", "Priya", "Diego", "Zoe", "Omar", "Hana", "Leo", "Nora", "Ravi",
    "Elena", "Jonas", "Maya", "Theo", "Aisha", "Felix", "Grace", "Ivan", "Lena", "Marco", "Nina",
    "Oscar", "Rosa", "Sami", "Tara", "Yusuf", "Clara", "Hugo",
];
const LAST: &[&str] = &[
    "Smith", "Garcia", "Chen", "Okafor", "Muller", "Rossi", "Kim", "Patel", "Silva", "Nguyen",
    "Johnson", "Lopez", "Haddad", "Tanaka", "Novak", "Dubois", "Costa", "Ivanova", "Brown",
    "Martin", "Larsen", "Ahmed", "Fischer", "Moreau", "Kowalski",
];
const COMPANIES: &[&str] = &[
    "",
    "",
    "",
    "Northwind",
    "Bluebird Studio",
    "Cafe Luma",
    "Greenleaf",
    "Atlas Fitness",
    "Pine & Co",
];
const PRODUCTS: &[(&str, i64)] = &[
    ("Linen shirt", 6900),
    ("Canvas tote", 2900),
    ("Merino scarf", 8900),
    ("Ceramic mug set", 4500),
    ("Leather wallet", 7500),
    ("Rain jacket", 15900),
    ("Wool beanie", 3200),
    ("Desk lamp", 11900),
];
const CAMPAIGNS: &[(&str, &str)] = &[
    ("instagram", "spring_drop"),
    ("facebook", "retarget_cart"),
    ("google", "brand_search"),
    ("tiktok", "ugc_video"),
];

/// splitmix64: tiny, seedable, good enough for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

struct Step {
    ids: Vec<Identifier>,
    source: &'static str,
    kind: &'static str,
    summary: String,
    at: i64,
    revenue: i64,
    key: String,
}

fn person_script(i: u64, rng: &mut Rng, now: i64) -> (Traits, Vec<Step>) {
    let first = *rng.pick(FIRST);
    let last = *rng.pick(LAST);
    let company = *rng.pick(COMPANIES);
    let email = format!(
        "{}.{}{}@{}",
        first.to_lowercase(),
        last.to_lowercase(),
        i,
        rng.pick(&["gmail.com", "outlook.com", "icloud.com", "proton.me"])
    );
    let phone = format!("+1415{:03}{:04}", 200 + rng.below(700), rng.below(10_000));
    let ig = format!("178414{:011}", i * 7919 + 13);
    let shop = format!("{}", 7_000_000_000 + i * 31);
    let anon = format!("anon-{:x}", rng.next() & 0xffff_ffff_ffff);
    let day = 86_400_000;
    let mut t = now - (5 + rng.below(85)) as i64 * day - rng.below(day as u64) as i64;
    let mut steps = Vec::new();
    let mut push =
        |ids: Vec<Identifier>, source, kind, summary: String, at: &mut i64, revenue, gap: i64| {
            let key = format!("demo-{i}-{}", steps.len());
            steps.push(Step {
                ids,
                source,
                kind,
                summary,
                at: *at,
                revenue,
                key,
            });
            *at += gap;
        };
    let id = |k: K, v: &str| Identifier::new(k, v);
    let (src, camp) = *rng.pick(CAMPAIGNS);
    push(
        vec![id(K::AnonymousId, &anon)],
        "web",
        "ad_click",
        format!("Clicked {src} ad · utm_campaign={camp}"),
        &mut t,
        0,
        60_000,
    );
    for _ in 0..(1 + rng.below(4)) {
        let (p, _) = *rng.pick(PRODUCTS);
        push(
            vec![id(K::AnonymousId, &anon)],
            "web",
            "page_view",
            format!("Viewed {p}"),
            &mut t,
            0,
            90_000 + rng.below(600_000) as i64,
        );
    }
    let (product, price) = *rng.pick(PRODUCTS);
    let on_instagram = rng.chance(55);
    if on_instagram {
        push(
            vec![id(K::InstagramId, &ig)],
            "instagram",
            "message_in",
            format!("DM: is the {} still in stock?", product.to_lowercase()),
            &mut t,
            0,
            3_600_000,
        );
        push(
            vec![id(K::InstagramId, &ig)],
            "instagram",
            "message_out",
            "Reply: yes — ships tomorrow".into(),
            &mut t,
            0,
            day / 3,
        );
    }
    if rng.chance(35) {
        push(
            vec![id(K::AnonymousId, &anon), id(K::Email, &email)],
            "web",
            "form_submit",
            "Newsletter signup (10% off)".into(),
            &mut t,
            0,
            day / 2,
        );
    }
    push(
        vec![id(K::AnonymousId, &anon), id(K::Email, &email)],
        "shopify",
        "cart_add",
        format!("Added {product} to cart"),
        &mut t,
        0,
        600_000,
    );
    let buys = rng.chance(60);
    if buys {
        let qty = 1 + rng.below(2) as i64;
        push(
            vec![
                id(K::ShopifyCustomerId, &shop),
                id(K::Email, &email),
                id(K::Phone, &phone),
            ],
            "shopify",
            "purchase",
            format!("Order #{} — {qty} × {product}", 1000 + i),
            &mut t,
            price * qty,
            day * (3 + rng.below(20) as i64),
        );
        if rng.chance(30) {
            let (p2, pr2) = *rng.pick(PRODUCTS);
            push(
                vec![id(K::ShopifyCustomerId, &shop)],
                "shopify",
                "purchase",
                format!("Order #{} — {p2}", 50_000 + i),
                &mut t,
                pr2,
                day,
            );
        }
    } else {
        push(
            vec![id(K::Email, &email), id(K::Phone, &phone)],
            "shopify",
            "checkout_abandoned",
            format!("Checkout abandoned — {product} ({})", price as f64 / 100.0),
            &mut t,
            0,
            day,
        );
    }
    // The DM that reveals the phone: Instagram and Shopify become one person.
    if on_instagram && rng.chance(70) {
        push(
            vec![id(K::InstagramId, &ig), id(K::Phone, &phone)],
            "instagram",
            "message_in",
            format!("DM: my number is {phone}, can you text me the tracking?"),
            &mut t,
            0,
            3_600_000,
        );
    }
    if rng.chance(15) {
        let psid = format!("2{:015}", i * 104_729);
        push(
            vec![id(K::FacebookPsid, &psid), id(K::Email, &email)],
            "facebook",
            "message_in",
            "Messenger: question about returns".into(),
            &mut t,
            0,
            day,
        );
    }
    steps.retain(|s| s.at <= now);
    (
        Traits {
            first_name: first.into(),
            last_name: last.into(),
            company: company.into(),
            custom: Default::default(),
        },
        steps,
    )
}

/// Seeds `people` demo customers into `org` unless it already has customers.
/// Returns how many people were created (0 when already seeded).
pub async fn seed(store: &Store, org: Uuid, people: u64, now: i64) -> Result<u64> {
    if store.count_profiles(org).await? > 0 {
        return Ok(0);
    }
    let rules = store.identity_rules(org).await?;
    let mut scripts = Vec::new();
    let mut rng = Rng(0xB05_DE30);
    for i in 0..people {
        scripts.push(person_script(i, &mut rng, now));
    }
    // Households: some people share a family e-mail with someone else. The
    // identity limits keep two Shopify customers apart.
    for i in (0..people as usize).step_by(97) {
        if let Some((traits, steps)) = scripts.get_mut(i) {
            let fam = format!("the.{}s@family.example", traits.last_name.to_lowercase());
            let at = steps.last().map(|s| s.at).unwrap_or(now).min(now);
            steps.push(Step {
                ids: vec![
                    Identifier::new(K::Email, &fam),
                    Identifier::new(
                        K::ShopifyCustomerId,
                        format!("{}", 9_000_000_000u64 + i as u64),
                    ),
                ],
                source: "shopify",
                kind: "purchase",
                summary: "Order paid with the family account".into(),
                at,
                revenue: 3900,
                key: format!("demo-fam-{i}"),
            });
        }
    }
    // Run people concurrently (group commit batches their writes); each
    // person's own events stay in order.
    let mut set = tokio::task::JoinSet::new();
    let rules = std::sync::Arc::new(rules);
    let mut it = scripts.into_iter();
    let mut done = 0u64;
    loop {
        while set.len() < 64 {
            let Some((traits, steps)) = it.next() else {
                break;
            };
            let store = store.clone();
            let rules = rules.clone();
            set.spawn(async move { run_person(&store, org, &rules, traits, steps, now).await });
        }
        match set.join_next().await {
            Some(r) => {
                r??;
                done += 1;
            }
            None => break,
        }
    }
    // A few exact name twins with no shared identifier: possible duplicates.
    for (n, (first, last)) in [("Maria", "Lopez"), ("James", "Okafor"), ("Lena", "Fischer")]
        .into_iter()
        .enumerate()
    {
        for (j, email) in [
            format!(
                "{}.{}@work.example",
                first.to_lowercase(),
                last.to_lowercase()
            ),
            format!("{}{}@home.example", first.to_lowercase(), n),
        ]
        .iter()
        .enumerate()
        {
            let traits = Traits {
                first_name: first.into(),
                last_name: last.into(),
                company: "Northwind".into(),
                custom: Default::default(),
            };
            let step = Step {
                ids: vec![Identifier::new(K::Email, email)],
                source: "web",
                kind: "form_submit",
                summary: if j == 0 {
                    "Wholesale enquiry form".into()
                } else {
                    "Contact form: order status".into()
                },
                at: now - (n as i64 + 1) * 3_600_000,
                revenue: 0,
                key: format!("demo-twin-{n}-{j}"),
            };
            run_person(store, org, &rules, traits, vec![step], now).await?;
        }
    }
    Ok(done)
}

async fn run_person(
    store: &Store,
    org: Uuid,
    rules: &IdentityRules,
    traits: Traits,
    steps: Vec<Step>,
    now: i64,
) -> Result<()> {
    for s in steps {
        let input = IdentifyInput {
            identifiers: s.ids,
            traits: traits.clone(),
            source: s.source.into(),
            event: Some(NewEvent {
                kind: s.kind.into(),
                summary: s.summary,
                occurred_at: s.at,
                data: "{}".into(),
                key: Some(s.key),
                revenue_cents: s.revenue,
                is_order: s.kind == "purchase",
            }),
            now,
        };
        store.identify(org, rules, &input).await?;
    }
    Ok(())
}
