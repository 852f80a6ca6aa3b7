//! `bos-bench agent-heartbeats`: AI agents reporting heartbeats over HTTP
//! to a real server (budget: 5,000 accepted heartbeats/s on SQLite). N
//! agents are registered through the agents service, each with its own
//! key; each agent posts `POST /api/v1/agents/{id}/heartbeat` on its own
//! keep-alive connection as fast as the answers come, for a fixed time.
//! Reported: accepted heartbeats per second (200s only), p50/p99 latency
//! and errors, beside the authenticated floor (`GET /api/v1/me` with the
//! same keys, same connections) measured in the same run.

use crate::percentiles;
use anyhow::{anyhow, Result};
use bos::http1::read_response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

pub struct Options {
    pub agents: usize,
    pub seconds: u64,
    pub database_url: Option<String>,
}

struct Run {
    accepted: u64,
    errors: u64,
    per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Each connection sends its own request over and over until `dur` ends.
async fn drive(addr: SocketAddr, requests: Vec<Arc<Vec<u8>>>, dur: Duration) -> Result<Run> {
    let deadline = Instant::now() + dur;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for req in requests {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 14);
            let mut errors = 0u64;
            let mut s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut buf = vec![0u8; 64 * 1024];
            while Instant::now() < deadline {
                let t = Instant::now();
                s.write_all(&req).await?;
                let status = read_response(&mut s, &mut buf).await?;
                if status == 200 {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((lat, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await??;
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64().max(dur.as_secs_f64());
    let accepted = all.len() as u64;
    let (p50, _, p99, _) = percentiles(all);
    Ok(Run {
        accepted,
        errors,
        per_s: accepted as f64 / secs,
        p50_us: p50,
        p99_us: p99,
    })
}

pub async fn run(o: Options) -> Result<()> {
    let (url, _guard) = match o.database_url {
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
    let state = bos_web::AppState::new(
        store.clone(),
        Arc::new(bos_web::SystemClock),
        bos_web::WebConfig::default(),
    );
    let mut agents = Vec::with_capacity(o.agents);
    for i in 0..o.agents {
        let (view, key) = state
            .agents
            .create(
                org.id,
                None,
                bos_engine::agents::CreateAgent {
                    name: format!("Agent {i:04}"),
                    kind: "chat".into(),
                    provider: "api".into(),
                    platform_agent_id: None,
                    webhook_secret: None,
                },
                now,
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
        agents.push((view.agent.id, key.secret));
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let app = bos_web::app(state);
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });

    let body =
        r#"{"status":"working","activity":"Handling a refund request","interval_seconds":30}"#;
    let beats: Vec<Arc<Vec<u8>>> = agents
        .iter()
        .map(|(id, key)| {
            Arc::new(
                format!(
                    "POST /api/v1/agents/{id}/heartbeat HTTP/1.1\r\nHost: bench\r\n\
                     Authorization: Bearer {key}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        })
        .collect();
    let floor: Vec<Arc<Vec<u8>>> = agents
        .iter()
        .map(|(_, key)| {
            Arc::new(
                format!(
                    "GET /api/v1/me HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\r\n"
                )
                .into_bytes(),
            )
        })
        .collect();
    println!(
        "agent heartbeats: {} agents, one keep-alive connection each, {} s per target, engine {:?}",
        o.agents,
        o.seconds,
        store.kind()
    );
    let dur = Duration::from_secs(o.seconds);
    let mut results = Vec::new();
    for (name, reqs) in [
        ("floor: GET /api/v1/me (same keys)", floor),
        ("POST /api/v1/agents/{id}/heartbeat", beats),
    ] {
        drive(addr, reqs.clone(), Duration::from_secs(1)).await?;
        let r = drive(addr, reqs, dur).await?;
        println!(
            "  {name:<40} {:>9.0} accepted/s   p50 {:>6} µs   p99 {:>6} µs   errors {}",
            r.per_s, r.p50_us, r.p99_us, r.errors
        );
        results.push(r);
    }
    let hb = &results[1];
    println!(
        "  heartbeats: {:.0}/s accepted (budget on SQLite: ≥ 5,000/s), {:.0}% of the floor",
        hb.per_s,
        hb.per_s / results[0].per_s.max(1.0) * 100.0
    );
    // Every agent's last heartbeat is stored.
    let stored = store
        .agents(org.id)
        .await?
        .iter()
        .filter(|a| a.last_heartbeat_at.is_some())
        .count();
    if stored != o.agents {
        return Err(anyhow!(
            "{stored} of {} agents have a heartbeat stored",
            o.agents
        ));
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "agent-heartbeats", "agents": o.agents, "seconds": o.seconds,
            "engine": format!("{:?}", store.kind()),
            "heartbeats_per_s": hb.per_s.round(), "accepted": hb.accepted,
            "p50_us": hb.p50_us, "p99_us": hb.p99_us, "errors": hb.errors,
            "floor_per_s": results[0].per_s.round(),
        })
    );
    store.close().await;
    Ok(())
}
