//! `bos-bench command-center`: server time of the Command Center with many
//! agents (the budget: 200 agents, p95 ≤ 50 ms). Registers the agents with
//! their keys, a heartbeat each and a history of interactions spread over
//! the last 60 days, signs a member in through a real session, and
//! requests the page (today, 7 and 30 days) and one agent's details over
//! HTTP on loopback one at a time, reporting p50/p95/p99 per page.

use crate::percentiles;
use anyhow::{anyhow, Result};
use bos::http1::read_response;
use bos_core::agents::{AgentKind, AgentProvider, Heartbeat, Outcome};
use bos_store::agents::{AgentKey, NewAgent, NewInteraction};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

const DAY: i64 = 86_400_000;

pub async fn run(
    agents: u64,
    interactions: u64,
    requests: u64,
    database_url: Option<String>,
) -> Result<()> {
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
    let kinds = AgentKind::ALL;
    let mut ids = Vec::new();
    for n in 0..agents {
        let (a, _) = store
            .create_agent(
                org.id,
                &NewAgent {
                    name: format!("Agent {n:03}"),
                    kind: kinds[n as usize % kinds.len()],
                    provider: AgentProvider::Api,
                    platform_agent_id: None,
                    webhook_secret: None,
                },
                &AgentKey {
                    display_prefix: format!("bos_b{n:05}"),
                    key_hash: bos_web::auth::sha256(&format!("bench key {n} {}", org.id)),
                    created_by: None,
                },
                now,
            )
            .await?;
        let status = ["idle", "working", "talking", "error"][n as usize % 4];
        let beat = Heartbeat::new(
            status,
            Some("Handling a refund request"),
            (status == "error").then_some("API timeout"),
            Some(now - 60_000),
            Some(30_000),
            now,
        )
        .map_err(|e| anyhow!(e))?;
        store.agent_heartbeat(org.id, a.id, &beat, now).await?;
        ids.push(a.id);
    }
    let per = interactions / agents.max(1);
    let mut k = 0u64;
    for (n, id) in ids.iter().enumerate() {
        for j in 0..per {
            k += 1;
            let at = now - ((k * 7_919) % (60 * DAY as u64)) as i64;
            store
                .record_agent_interaction(
                    org.id,
                    &NewInteraction {
                        agent_id: *id,
                        profile_id: None,
                        conversation_id: None,
                        outcome: [
                            Outcome::Success,
                            Outcome::Success,
                            Outcome::Failure,
                            Outcome::HandedOff,
                        ][(j as usize + n) % 4],
                        started_at: at,
                        ended_at: Some(at + 120_000),
                        first_response_ms: Some(500 + (k % 5_000) as i64),
                        cost_micros: 20_000 + (k % 40_000) as i64,
                        tokens: 1_000,
                        csat: Some((k % 11) as u8),
                        sentiment: Some((k % 101) as f64 / 10.0),
                        human_intervened: k.is_multiple_of(9),
                        summary: Some("Bench interaction".into()),
                        transcript: Vec::new(),
                        external_id: None,
                    },
                    now,
                )
                .await?;
        }
        eprint!("\r  seeding: agent {}/{agents}", n + 1);
    }
    eprintln!();
    store.optimize().await?;
    println!(
        "command-center bench: {agents} agents, {} interactions seeded in {:.1} s, engine {:?}",
        per * agents,
        t.elapsed().as_secs_f64(),
        store.kind()
    );
    let token = crate::pages::signed_in_member(&store, org.id, "cockpit", now).await?;
    let state = bos_web::AppState::new(
        store.clone(),
        Arc::new(bos_web::SystemClock),
        bos_web::WebConfig::default(),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move { axum::serve(l, bos_web::app(state)).await });
    let one = ids.first().copied().unwrap_or_default();
    let pages = [
        ("command center, today", "/command-center".to_string()),
        (
            "command center, 7 days",
            "/command-center?period=7d".to_string(),
        ),
        (
            "command center, 30 days",
            "/command-center?period=30d".to_string(),
        ),
        (
            "one agent's details",
            format!("/command-center/agents/{one}"),
        ),
    ];
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 4 << 20];
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
        serde_json::json!({"bench": "command-center", "agents": agents, "interactions": per * agents, "requests_per_page": requests, "pages": out})
    );
    Ok(())
}
