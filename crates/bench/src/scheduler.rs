//! `bos-bench scheduler`: the durable scheduler against its budgets
//! (`docs/benchmarks.md`): draining N due no-op jobs (jobs/s; SQLite ≥ 20,000,
//! PostgreSQL ≥ graphile-worker at the same concurrency) and lateness of
//! jobs due spread over a window (p99 of start − `run_at` ≤ 10 ms). Both run
//! the real runner on the real system clock against a fresh database; the
//! graphile-worker baseline runs beside it from `bench/graphile/`.

use crate::percentiles;
use anyhow::{anyhow, bail, Result};
use bos_engine::clock::system_now_us;
use bos_engine::{Clock, RunnerConfig, Scheduler, SystemClock};
use bos_store::jobs::NewJob;
use bos_store::{Store, StoreOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct Options {
    pub jobs: u64,
    pub concurrency: usize,
    pub prefetch: usize,
    pub lateness_jobs: u64,
    pub spread_seconds: u64,
    pub database_url: Option<String>,
    pub drain: bool,
    pub lateness: bool,
}

/// Jobs per schedule call while seeding (one transaction each).
const SEED_CHUNK: u64 = 10_000;

async fn fresh_store(
    database_url: &Option<String>,
) -> Result<(Store, bos_store::testing::CleanupGuard)> {
    let server = match database_url.as_deref() {
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
    Ok((store, guard))
}

async fn bench_org(store: &Store) -> Result<Uuid> {
    Ok(store
        .create_org(
            &bos_core::OrgName::parse("Bench").map_err(|e| anyhow!(e))?,
            &bos_core::Slug::parse(&format!("bench-{}", Uuid::new_v4().simple()))
                .map_err(|e| anyhow!(e))?,
            bos::now(),
        )
        .await?
        .id)
}

pub async fn run(o: Options) -> Result<()> {
    let mut report = serde_json::Map::new();
    report.insert("bench".into(), "scheduler".into());
    if o.drain {
        let r = drain(&o).await?;
        report.insert("drain".into(), r);
    }
    if o.lateness {
        let r = lateness(&o).await?;
        report.insert("lateness".into(), r);
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

fn config(o: &Options) -> RunnerConfig {
    RunnerConfig {
        concurrency: o.concurrency,
        prefetch: o.prefetch,
        ..RunnerConfig::default()
    }
}

/// Seeds N jobs already due, then times a runner draining them: claim,
/// run a no-op handler, record the outcome (delete), all durable.
async fn drain(o: &Options) -> Result<serde_json::Value> {
    let (store, _guard) = fresh_store(&o.database_url).await?;
    let org = bench_org(&store).await?;
    let now = bos::now();
    let t = Instant::now();
    let mut seeded = 0;
    while seeded < o.jobs {
        let n = SEED_CHUNK.min(o.jobs - seeded);
        let jobs = (seeded..seeded + n)
            .map(|i| NewJob::new(org, "noop", now - 60_000 + (i % 60_000) as i64))
            .collect();
        store.schedule_jobs(jobs, now).await?;
        seeded += n;
        eprint!("\r  seeding due jobs: {seeded}/{}", o.jobs);
    }
    eprintln!();
    let seed_s = t.elapsed().as_secs_f64();
    store.optimize().await?;

    let sched = Scheduler::new(store.clone(), Arc::new(SystemClock));
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    let t = Instant::now();
    let runner = sched
        .runner(config(o))
        .handle("noop", move |_job| {
            r.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        })
        .start()
        .await?;
    runner.settled(SystemClock.now_ms()).await;
    let secs = t.elapsed().as_secs_f64();
    runner.shutdown().await;
    let left = store.job_counts(org).await?;
    let ran = ran.load(Ordering::Relaxed);
    if ran != o.jobs || left != Default::default() {
        bail!("drain incomplete: {ran} of {} ran, {left:?} left", o.jobs);
    }
    let rate = o.jobs as f64 / secs;
    println!(
        "scheduler drain, engine {:?}: {} due no-op jobs (seeded in {seed_s:.1} s), concurrency {}, prefetch {}: \
         {secs:.2} s = {rate:.0} jobs/s",
        store.kind(),
        o.jobs,
        o.concurrency,
        o.prefetch,
    );
    store.close().await;
    Ok(serde_json::json!({
        "engine": format!("{:?}", store.kind()), "jobs": o.jobs, "concurrency": o.concurrency,
        "prefetch": o.prefetch, "seconds": (secs * 1000.0).round() / 1000.0, "jobs_per_s": rate.round(),
    }))
}

/// Schedules jobs due over a window starting shortly after, with a runner
/// already waiting (as in production), and measures how late each handler
/// starts after its `run_at`.
async fn lateness(o: &Options) -> Result<serde_json::Value> {
    let (store, _guard) = fresh_store(&o.database_url).await?;
    let org = bench_org(&store).await?;
    let sched = Scheduler::new(store.clone(), Arc::new(SystemClock));
    let late_us: Arc<Mutex<Vec<i64>>> =
        Arc::new(Mutex::new(Vec::with_capacity(o.lateness_jobs as usize)));
    let l = late_us.clone();
    let runner = sched
        .runner(config(o))
        .handle("timer", move |job| {
            let late = system_now_us() - job.run_at * 1_000;
            l.lock().unwrap_or_else(|e| e.into_inner()).push(late);
            async { Ok(()) }
        })
        .start()
        .await?;
    let spread_ms = (o.spread_seconds * 1_000).max(1) as i64;
    let start = SystemClock.now_ms() + 2_000;
    // Evenly spread with a deterministic jitter, so times are not aligned
    // to the millisecond grid or to each other.
    let at = |i: u64| {
        start + (i as i64 * spread_ms) / o.lateness_jobs.max(1) as i64 + ((i * 7_919) % 5) as i64
    };
    let mut scheduled = 0;
    while scheduled < o.lateness_jobs {
        let n = 1_000.min(o.lateness_jobs - scheduled);
        let jobs = (scheduled..scheduled + n)
            .map(|i| NewJob::new(org, "timer", at(i)))
            .collect();
        sched.schedule_many(jobs).await?;
        scheduled += n;
    }
    if SystemClock.now_ms() >= start {
        bail!("scheduling took longer than the 2 s head start; lower --lateness-jobs");
    }
    let last = at(o.lateness_jobs.saturating_sub(1));
    println!(
        "scheduler lateness, engine {:?}: {} jobs due over {} s, concurrency {} (waiting {:.0} s)…",
        store.kind(),
        o.lateness_jobs,
        o.spread_seconds,
        o.concurrency,
        (last - SystemClock.now_ms()) as f64 / 1000.0
    );
    tokio::time::sleep(Duration::from_millis(
        (last - SystemClock.now_ms()).max(0) as u64
    ))
    .await;
    runner.settled(last).await;
    runner.shutdown().await;
    let v = std::mem::take(&mut *late_us.lock().unwrap_or_else(|e| e.into_inner()));
    if v.len() as u64 != o.lateness_jobs {
        bail!("{} of {} timers ran", v.len(), o.lateness_jobs);
    }
    let early = v.iter().filter(|&&x| x < 0).count();
    let us: Vec<u64> = v.iter().map(|&x| x.max(0) as u64).collect();
    let (p50, p90, p99, max) = percentiles(us);
    println!(
        "  start − run_at: p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms   started early: {early}",
        p50 as f64 / 1000.0,
        p90 as f64 / 1000.0,
        p99 as f64 / 1000.0,
        max as f64 / 1000.0
    );
    store.close().await;
    Ok(serde_json::json!({
        "engine": format!("{:?}", store.kind()), "jobs": o.lateness_jobs, "spread_s": o.spread_seconds,
        "concurrency": o.concurrency, "p50_us": p50, "p90_us": p90, "p99_us": p99, "max_us": max, "early": early,
    }))
}
