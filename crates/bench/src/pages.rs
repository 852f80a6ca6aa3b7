//! `bos-bench pages`: server time of the God View pages at a large
//! population (the budget: dashboard pages p95 ≤ 50 ms at
//! 1,000,000 profiles). Seeds customers in bulk, signs a member in through
//! a real session, and requests each page over HTTP on loopback one at a
//! time, reporting p50/p95/p99 per page.

use crate::percentiles;
use anyhow::{anyhow, Context, Result};
use bos::http1::read_response;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

pub async fn run(profiles: u64, requests: u64, database_url: Option<String>) -> Result<()> {
    let (url, _guard) = match database_url {
        Some(u) => (u, None),
        None => {
            let (u, g) = bos_store::testing::fresh_url().await?;
            (u, Some(g))
        }
    };
    let store = bos_store::Store::open(&bos_store::StoreOptions {
        url,
        max_connections: 8,
    })
    .await?;
    let now = bos::now();
    let org = store
        .create_org(
            &bos_core::OrgName::parse("Bench").map_err(|e| anyhow!(e))?,
            &bos_core::Slug::parse(&format!("bench-{}", Uuid::new_v4().simple()))
                .map_err(|e| anyhow!(e))?,
            now,
        )
        .await?;
    let t = Instant::now();
    let mut seeded = 0;
    while seeded < profiles {
        let n = 100_000.min(profiles - seeded);
        store.bulk_seed_profiles(org.id, seeded, n, now).await?;
        seeded += n;
        eprint!("\r  seeding customers: {seeded}/{profiles}");
    }
    eprintln!();
    // A running server refreshes planner statistics periodically; do it once here.
    store.optimize().await?;
    println!(
        "pages bench: {profiles} customers seeded in {:.1} s, engine {:?}",
        t.elapsed().as_secs_f64(),
        store.kind()
    );
    // Some history on one customer, through the real resolution.
    let rules = store.identity_rules(org.id).await?;
    let some = bos_core::identity::Identifier::new(
        bos_core::identity::IdentifierKind::Email,
        "bench7@example.com",
    );
    for k in 0..200 {
        let input = bos_store::identity::IdentifyInput {
            identifiers: vec![some.clone()],
            traits: Default::default(),
            source: "bench".into(),
            event: Some(bos_store::identity::NewEvent {
                kind: if k % 3 == 0 {
                    "purchase".into()
                } else {
                    "page_view".into()
                },
                summary: format!("Event {k}"),
                occurred_at: now - k * 60_000,
                data: "{}".into(),
                key: Some(format!("p{k}")),
                revenue_cents: if k % 3 == 0 { 1000 } else { 0 },
                is_order: k % 3 == 0,
            }),
            now,
        };
        store.identify(org.id, &rules, &input).await?;
    }
    let profile = store
        .list_profiles(
            org.id,
            &bos_store::identity::ProfileQuery {
                q: "bench7@example.com".into(),
                limit: 1,
                ..Default::default()
            },
        )
        .await?
        .first()
        .map(|p| p.id)
        .context("the seeded customer is searchable")?;

    // A member and a live session, as the browser would hold it.
    let token = crate::pages::signed_in_member(&store, org.id, "bench", now).await?;
    let state = bos_web::AppState::new(
        store.clone(),
        Arc::new(bos_web::SystemClock),
        bos_web::WebConfig::default(),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move { axum::serve(l, bos_web::app(state)).await });

    let pages = [
        ("customers, last active", "/customers".to_string()),
        (
            "customers, by lifetime value",
            "/customers?sort=ltv".to_string(),
        ),
        ("customers, by name", "/customers?sort=name".to_string()),
        (
            "search name prefix",
            "/customers?q=bench+customer12345".to_string(),
        ),
        (
            "search e-mail prefix",
            "/customers?q=bench4242%40".to_string(),
        ),
        ("search phone digits", "/customers?q=5550123456".to_string()),
        ("profile with 200 events", format!("/customers/{profile}")),
    ];
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut out = Vec::new();
    for (name, path) in pages {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: bench\r\nCookie: __Host-bos_session={token}\r\n\r\n"
        );
        let mut lat = Vec::new();
        for i in 0..requests + 3 {
            let t = Instant::now();
            s.write_all(req.as_bytes()).await?;
            let status = read_response(&mut s, &mut buf).await?;
            if status != 200 {
                return Err(anyhow!("{path} answered {status}"));
            }
            if i >= 3 {
                lat.push(t.elapsed().as_micros() as u64);
            }
        }
        let (p50, _, p99, _) = percentiles(lat.clone());
        let p95 = {
            let mut v = lat;
            v.sort_unstable();
            v[((v.len() as f64 * 0.95) as usize).min(v.len() - 1)]
        };
        println!(
            "  {name:<30} p50 {:>7.1} ms   p95 {:>7.1} ms   p99 {:>7.1} ms",
            p50 as f64 / 1000.0,
            p95 as f64 / 1000.0,
            p99 as f64 / 1000.0
        );
        out.push(serde_json::json!({"page": name, "p50_ms": p50 as f64 / 1000.0, "p95_ms": p95 as f64 / 1000.0, "p99_ms": p99 as f64 / 1000.0}));
    }
    println!(
        "{}",
        serde_json::json!({"bench": "pages", "profiles": profiles, "requests_per_page": requests, "pages": out})
    );
    Ok(())
}

/// A member (owner of `org`) with a live session, as a signed-in browser
/// holds it; returns the session token for the cookie. The benches that
/// read pages or follow live streams sign in this way.
pub async fn signed_in_member(
    store: &bos_store::Store,
    org: Uuid,
    email_prefix: &str,
    now: i64,
) -> Result<String> {
    let hash = bos_web::hash_password("bench password 123").map_err(|e| anyhow!(e))?;
    let user = store
        .create_user(
            &bos_core::Email::parse(&format!(
                "{email_prefix}-{}@example.com",
                Uuid::new_v4().simple()
            ))
            .map_err(|e| anyhow!(e))?,
            "Bench",
            &hash,
            false,
            now,
        )
        .await?;
    store
        .upsert_membership(org, user.id, bos_core::Role::Owner, now)
        .await?;
    let token = bos_web::auth::random_token(32);
    store
        .create_session(&bos_store::SessionRecord {
            token_hash: bos_web::auth::sha256(&token),
            user_id: user.id,
            org_id: Some(org),
            csrf_token: bos_web::auth::random_token(32),
            created_at: now,
            last_seen_at: now,
            expires_at: now + 86_400_000,
        })
        .await?;
    Ok(token)
}
