//! `bos-bench nudges`: the nudge sender against its budgets (issue 5):
//! 100,000 due nudges delivered to the development sink (SQLite ≤ 10 s),
//! and 10,000 nudges due spread over 30 s, each sent within p99 ≤ 10 ms of
//! its time. Both run the real path — events through the intake pipeline
//! enroll customers in an event-triggered campaign, and the real job runner
//! runs the real step handler (decide, render, claim as `sending`, send,
//! record) on the system clock against a fresh database.

use crate::percentiles;
use anyhow::{anyhow, bail, Result};
use bos_core::nudge::{Campaign, Channel, Step, StopConditions, Trigger, Variant};
use bos_engine::nudge::{NudgeConfig, Nudger};
use bos_engine::{Clock, Pipeline, RunnerConfig, Scheduler, SystemClock};
use bos_store::intake::{NewInbound, NewSource, SourceKind};
use bos_store::nudge::CampaignStatus;
use bos_store::{Store, StoreOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct Options {
    pub nudges: u64,
    pub lateness_nudges: u64,
    pub spread_seconds: u64,
    /// Time to enroll the lateness run's customers before the first is due.
    pub head_seconds: u64,
    pub concurrency: usize,
    pub database_url: Option<String>,
    pub drain: bool,
    pub lateness: bool,
}

const EVENT: &str = "bench.nudge";
const DELAY_MS: i64 = 60_000;

struct Setup {
    store: Store,
    _guard: bos_store::testing::CleanupGuard,
    org: Uuid,
    source: Uuid,
    campaign: Uuid,
    scheduler: Scheduler,
}

async fn setup(o: &Options) -> Result<Setup> {
    let server = match o.database_url.as_deref() {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => Some(u.to_string()),
        Some(u) => bail!("--database-url takes a postgres:// server URL (a fresh database is created on it); got {}", bos_store::redact_url(u)),
        None => None,
    };
    let (url, guard) = bos_store::testing::fresh_url_on(server).await?;
    let store = Store::open(&StoreOptions {
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
        .await?
        .id;
    let source = store
        .create_source(
            org,
            NewSource {
                kind: SourceKind::Webhook,
                name: "bench".into(),
                secret: None,
                key_hash: None,
                config: None,
            },
            now,
        )
        .await?
        .id;
    let campaign = Campaign {
        name: "Bench welcome".into(),
        trigger: Trigger::Event { name: EVENT.into() },
        steps: vec![Step {
            delay_ms: DELAY_MS,
            channel: Channel::Email,
            variants: vec![
                Variant {
                    name: "A".into(),
                    weight: 1,
                    subject: Some("Welcome".into()),
                    body: "Thanks for signing up. Reply if you need anything.".into(),
                },
                Variant {
                    name: "B".into(),
                    weight: 1,
                    subject: Some("Good to see you".into()),
                    body: "Anything we can help with? Just reply.".into(),
                },
            ],
        }],
        stop: StopConditions::default(),
        quiet_hours: None,
        max_attempts: 5,
        reentry_cooldown_ms: 0,
        priority: 0,
    };
    campaign.validate(&[]).map_err(|e| anyhow!(e))?;
    let id = Uuid::now_v7();
    store
        .put_campaign(org, id, &campaign, CampaignStatus::Active, now)
        .await?;
    let scheduler = Scheduler::new(store.clone(), Arc::new(SystemClock));
    Ok(Setup {
        store,
        _guard: guard,
        org,
        source,
        campaign: id,
        scheduler,
    })
}

/// Stores one event per customer, due at `due(i)`, and runs the pipeline
/// over them: the customers are enrolled and their step timers set.
async fn enroll(s: &Setup, n: u64, tag: &str, due: impl Fn(u64) -> i64) -> Result<f64> {
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let k = 5_000.min(n - done);
        let events = (done..done + k)
            .map(|i| NewInbound {
                external_id: format!("{tag}-{i}"),
                kind: EVENT.into(),
                payload: serde_json::json!({
                    "type": EVENT,
                    "timestamp": bos_web::api::rfc3339(due(i) - DELAY_MS),
                    "data": {"email": format!("{tag}{i}@bench.test")}
                })
                .to_string(),
            })
            .collect();
        s.store.ingest(s.org, s.source, events, bos::now()).await?;
        done += k;
    }
    let pass = Pipeline::new(s.scheduler.clone()).drain().await?;
    if pass.failed > 0 {
        bail!("the pipeline failed {} events", pass.failed);
    }
    Ok(t.elapsed().as_secs_f64())
}

fn runner_config(o: &Options) -> RunnerConfig {
    bos::serve::runner_config(o.concurrency)
}

fn nudger(s: &Setup) -> Nudger {
    Nudger::new(
        s.scheduler.clone(),
        NudgeConfig::new(std::sync::Arc::new(bos_web::paths::PublicUrls::new(
            "http://127.0.0.1:8080",
        ))),
    )
}

pub async fn run(o: Options) -> Result<()> {
    let mut report = serde_json::Map::new();
    report.insert("bench".into(), "nudges".into());
    if o.drain {
        report.insert("drain".into(), drain(&o).await?);
    }
    if o.lateness {
        report.insert("lateness".into(), lateness(&o).await?);
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

/// N customers whose step is already due; times the runner sending them
/// all to the development sink.
async fn drain(o: &Options) -> Result<serde_json::Value> {
    let s = setup(o).await?;
    let now = bos::now();
    eprintln!("  enrolling {} customers through the pipeline…", o.nudges);
    // Due over the last minute in the order they enrolled, as steps of
    // customers who entered one after another fall due.
    let n = o.nudges.max(1) as i64;
    let seed_s = enroll(&s, o.nudges, "d", |i| {
        now - 61_000 + (i as i64 * 60_000) / n
    })
    .await?;
    s.store.optimize().await?;
    let n = nudger(&s);
    let t = Instant::now();
    let runner = n
        .handlers(s.scheduler.runner(runner_config(o)))
        .start()
        .await?;
    runner.settled(SystemClock.now_ms()).await;
    let secs = t.elapsed().as_secs_f64();
    runner.shutdown().await;
    let stats = n.stats();
    let x = s
        .store
        .campaign_executions(s.org, s.campaign, o.nudges as u32 + 10)
        .await?;
    let delivered = x.iter().filter(|e| e.status == "delivered").count() as u64;
    if delivered != o.nudges {
        bail!(
            "drain incomplete: {delivered} of {} delivered ({stats:?})",
            o.nudges
        );
    }
    let rate = o.nudges as f64 / secs;
    println!(
        "nudges drain, engine {:?}: {} due nudges (enrolled in {seed_s:.1} s) to the dev sink, concurrency {}: \
         {secs:.2} s = {rate:.0} nudges/s (budget: 100,000 in ≤ 10 s on SQLite)",
        s.store.kind(),
        o.nudges,
        o.concurrency,
    );
    s.store.close().await;
    Ok(serde_json::json!({
        "engine": format!("{:?}", s.store.kind()), "nudges": o.nudges, "concurrency": o.concurrency,
        "seconds": (secs * 1000.0).round() / 1000.0, "nudges_per_s": rate.round(),
    }))
}

/// Customers whose step falls due over a window that starts after they are
/// enrolled, with the runner already waiting; lateness is the stored send
/// time minus the step's time.
async fn lateness(o: &Options) -> Result<serde_json::Value> {
    let s = setup(o).await?;
    let n = nudger(&s);
    let runner = n
        .handlers(s.scheduler.runner(runner_config(o)))
        .start()
        .await?;
    let spread_ms = (o.spread_seconds * 1_000).max(1) as i64;
    let head = (o.head_seconds * 1_000) as i64;
    let start = SystemClock.now_ms() + head;
    let count = o.lateness_nudges.max(1);
    let due =
        move |i: u64| start + (i as i64 * spread_ms) / count as i64 + ((i * 7_919) % 5) as i64;
    enroll(&s, o.lateness_nudges, "l", due).await?;
    if SystemClock.now_ms() >= start {
        bail!("enrolling took longer than the {head} ms head start; raise --head-seconds");
    }
    let last = due(count - 1);
    println!(
        "nudges lateness, engine {:?}: {} nudges due over {} s (waiting {:.0} s)…",
        s.store.kind(),
        o.lateness_nudges,
        o.spread_seconds,
        (last - SystemClock.now_ms()) as f64 / 1000.0
    );
    tokio::time::sleep(Duration::from_millis(
        (last - SystemClock.now_ms()).max(0) as u64 + 200,
    ))
    .await;
    runner.settled(last).await;
    runner.shutdown().await;
    let x = s
        .store
        .campaign_executions(s.org, s.campaign, o.lateness_nudges as u32 + 10)
        .await?;
    if x.len() as u64 != o.lateness_nudges {
        bail!("{} of {} nudges sent", x.len(), o.lateness_nudges);
    }
    let mut late = Vec::with_capacity(x.len());
    let mut early = 0;
    for e in &x {
        let i: u64 =
            e.to.trim_start_matches('l')
                .split('@')
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| anyhow!("unexpected address {}", e.to))?;
        let sent = e
            .sent_at
            .ok_or_else(|| anyhow!("{} has no send time", e.to))?;
        let d = sent - due(i);
        if d < 0 {
            early += 1;
        }
        late.push(d.max(0) as u64);
    }
    let (p50, p90, p99, max) = percentiles(late);
    println!(
        "nudges lateness, engine {:?}: send − due p50 {p50} ms, p90 {p90} ms, p99 {p99} ms, max {max} ms, \
         early {early} (budget p99 ≤ 10 ms)",
        s.store.kind()
    );
    s.store.close().await;
    Ok(serde_json::json!({
        "engine": format!("{:?}", s.store.kind()), "nudges": o.lateness_nudges,
        "spread_s": o.spread_seconds, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max, "early": early,
    }))
}
