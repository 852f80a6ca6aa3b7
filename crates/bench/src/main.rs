//! `bos-bench`, the project's benchmark harness and test-data generators,
//! kept out of the shipped `bos` binary: `cargo run --release -p bos-bench
//! -- …`. Each benchmark runs its baseline side by side in the same
//! invocation on the same machine and reports figures and the ratio, never
//! a pass/fail timing. It builds the server from the `bos` library, so it
//! measures the wiring the binary ships (decision 0022).
//!
//! The load generator is a minimal HTTP/1.1 keep-alive client over raw TCP
//! (`bos::http1`): it costs little CPU, so on a 2-core machine more of it
//! goes to the server.
//!
//! `gen-contacts` and `resolve` measure the batch resolution engine; its
//! baselines (Splink 5 and plain SQL on DuckDB) run beside it from
//! `bench/resolve.sh`, which compares the partitions.

mod agents;
mod command_center;
mod gen;
mod identify;
mod import;
mod inbox;
mod inbox_live;
mod intake;
mod nudges;
mod pages;
mod resolve;
mod scheduler;

/// The same allocator as the `bos` binary (decision 0015), so that the
/// figures are those of what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{anyhow, Result};
use bos::http1::read_response;
use clap::Parser;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(
    name = "bos-bench",
    version,
    about = "BOS benchmarks and test-data generators (not part of the shipped binary)."
)]
struct Cli {
    #[command(flatten)]
    bench: import::BenchCli,
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(import::run(cli.bench)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// The HTTP floor: an authenticated API route (`GET /api/v1/me`, bearer
    /// key → hash → store) against a bare axum route, same load, same run.
    HttpFloor {
        /// Measured seconds per target (after a 1 s warm-up).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Database URL for BOS (default: a temporary SQLite file).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Streaming identity resolution against a large existing population:
    /// latency of attach (two and three identifiers), create and merge
    /// events, one at a time, then
    /// throughput with concurrent callers.
    Identify {
        /// Existing customers seeded before measuring.
        #[arg(long, default_value_t = 1_000_000)]
        profiles: u64,
        /// Measured events per kind (attach, attach3, create, merge).
        #[arg(long, default_value_t = 5_000)]
        events: u64,
        /// Concurrent callers for the throughput run.
        #[arg(long, default_value_t = 32)]
        concurrency: u64,
        /// Unmeasured attach events run first, so that the measured ones
        /// meet a server in its steady state (see `identify.rs`).
        #[arg(long, default_value_t = 1_000)]
        warmup: u64,
        /// Database URL (default: a temporary SQLite file).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Server time of the customers list, searches and a profile page at a
    /// large population.
    Pages {
        #[arg(long, default_value_t = 1_000_000)]
        profiles: u64,
        /// Requests per page (after 3 warm-up requests).
        #[arg(long, default_value_t = 50)]
        requests: u64,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// The Command Center with many agents: the page's server time
    /// (today, 7 and 30 days) and one agent's details.
    CommandCenter {
        #[arg(long, default_value_t = 200)]
        agents: u64,
        /// Interactions in all, spread over the last 60 days.
        #[arg(long, default_value_t = 20_000)]
        interactions: u64,
        /// Requests per page (after 3 warm-up requests).
        #[arg(long, default_value_t = 50)]
        requests: u64,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// The Unified Inbox at scale: list (each filter and sort, first page
    /// and deep) and search latency over seeded conversations and messages.
    Inbox {
        #[arg(long, default_value_t = 1_000_000)]
        conversations: u64,
        /// Messages in all (at least one per conversation).
        #[arg(long, default_value_t = 10_000_000)]
        messages: u64,
        /// Measured calls per case (fewer when a case passes 3 s).
        #[arg(long, default_value_t = 50)]
        requests: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A PostgreSQL server (`postgres://…`; a fresh database is
        /// created on it). Default: SQLite in a temporary file.
        #[arg(long)]
        database_url: Option<String>,
        /// A database to seed and keep (`sqlite:///path/bos.db` or a
        /// `postgres://…/db` URL), reused as it is by a later run with the
        /// same seed and sizes: seed 10M messages once, measure many times.
        #[arg(long, conflicts_with = "database_url")]
        keep: Option<String>,
    },
    /// An inbound message's way to an open inbox: signed Twilio SMS hooks
    /// posted one at a time to a server on port 0 while a client follows
    /// the inbox's live stream; from each hook's 200 to the stream's event
    /// and to the message readable over the API.
    InboxLive {
        /// Hooks posted (the first 20, one per customer, are not measured).
        #[arg(long, default_value_t = 520)]
        hooks: u64,
        /// A PostgreSQL server (a fresh database is created on it).
        /// Default: SQLite in a temporary file.
        #[arg(long)]
        database_url: Option<String>,
        /// A kept database (as `inbox --keep` made it) to run in.
        #[arg(long, conflicts_with = "database_url", requires = "org")]
        keep: Option<String>,
        /// The organization of the kept database, by slug (e.g. the big
        /// one of an `inbox` seed: `inbox-0-s1-c100000-m1000000`).
        #[arg(long, requires = "keep")]
        org: Option<String>,
    },
    /// AI agents posting heartbeats over HTTP to a real server, one
    /// keep-alive connection per agent: accepted heartbeats/s (budget on
    /// SQLite: 5,000/s) beside the authenticated floor.
    AgentHeartbeats {
        #[arg(long, default_value_t = 100)]
        agents: usize,
        /// Measured seconds per target (after a 1 s warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Database URL (default: a temporary SQLite file).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// The durable scheduler: drain N due no-op jobs (jobs/s), then
    /// lateness of jobs due spread over a window (start − run_at).
    Scheduler {
        /// Due no-op jobs to drain.
        #[arg(long, default_value_t = 200_000)]
        jobs: u64,
        /// Handlers running at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Jobs claimed ahead and held locally at most (≥ concurrency).
        #[arg(long, default_value_t = 256)]
        prefetch: usize,
        /// Jobs of the lateness run.
        #[arg(long, default_value_t = 10_000)]
        lateness_jobs: u64,
        /// Window over which the lateness jobs fall due.
        #[arg(long, default_value_t = 30)]
        spread_seconds: u64,
        /// A PostgreSQL server (`postgres://…`): each run creates a fresh
        /// database on it and drops it afterwards. Default: SQLite in a
        /// temporary file.
        #[arg(long)]
        database_url: Option<String>,
        /// Run only the drain (`drain`) or only the lateness run (`lateness`).
        #[arg(long, value_parser = ["drain", "lateness"])]
        only: Option<String>,
    },
    /// Nudges: N due nudges sent to the development sink (nudges/s), then
    /// lateness of nudges due spread over a window (send − due).
    Nudges {
        #[arg(long, default_value_t = 100_000)]
        nudges: u64,
        #[arg(long, default_value_t = 10_000)]
        lateness_nudges: u64,
        #[arg(long, default_value_t = 30)]
        spread_seconds: u64,
        /// Seconds to enroll the lateness run's customers before the first
        /// step is due (PostgreSQL's pipeline needs more).
        #[arg(long, default_value_t = 8)]
        head_seconds: u64,
        /// Handlers running at once (`bos serve`'s `job_concurrency`,
        /// 16 by default there).
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// A PostgreSQL server (`postgres://…`; a fresh database is
        /// created on it). Default: SQLite in a temporary file.
        #[arg(long)]
        database_url: Option<String>,
        /// Run only the drain (`drain`) or only the lateness run (`lateness`).
        #[arg(long, value_parser = ["drain", "lateness"])]
        only: Option<String>,
    },
    /// Intake: HTTP ingest of Segment `/v1/track` calls (closed loop, then
    /// acknowledgement latency at a fixed offered rate), then the pipeline
    /// alone draining every stored event.
    Intake {
        /// Measured seconds of the closed-loop run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Offered requests per second of the latency run.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        rate_seconds: u64,
        /// Offered events per second while the pipeline worker runs (lag).
        #[arg(long, default_value_t = 5_000)]
        lag_rate: u64,
        /// Run the fast-acknowledgement test instead: signed webhooks of this many KiB at
        /// --rate for --rate-seconds (e.g. --webhook-kb 64 --rate 100
        /// --rate-seconds 600).
        #[arg(long)]
        webhook_kb: Option<usize>,
        /// Distinct people the events are about.
        #[arg(long, default_value_t = 20_000)]
        users: u64,
        /// A PostgreSQL server (`postgres://…`; a fresh database is
        /// created on it). Default: SQLite in a temporary file.
        #[arg(long)]
        database_url: Option<String>,
        /// Also measure ingest with gzipped bodies (`Content-Encoding:
        /// gzip`) in rounds alternating with plain JSON, and print both.
        #[arg(long)]
        gzip: bool,
    },
    /// Writes a deterministic CSV of contacts from several platforms (people
    /// appearing in 1–5 rows, households sharing an e-mail, typos, invalid
    /// values), and the true person of each row to FILE.truth.
    GenContacts {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// The resolution engine alone: a CSV (read into memory first, not
    /// timed) into a partition of its rows, timed per stage; scored against
    /// FILE.truth when it exists.
    Resolve {
        #[arg(long, value_name = "FILE")]
        csv: std::path::PathBuf,
        /// Identifier limits and blocklist (the default rules), none (pure
        /// transitive closure), or both on the same parsed rows.
        #[arg(long, value_enum, default_value = "both")]
        limits: resolve::Limits,
        /// Write the partition (row,cluster) to PREFIX.limits-on.csv /
        /// PREFIX.limits-off.csv.
        #[arg(long, value_name = "PREFIX")]
        out_partition: Option<std::path::PathBuf>,
        /// The true person of each row (row,person); default FILE.truth if present.
        #[arg(long, value_name = "FILE")]
        truth: Option<std::path::PathBuf>,
        /// Write the normalized identifiers as CSV (unique_id = row), for
        /// other engines to link exactly the same identifiers.
        #[arg(long, value_name = "FILE")]
        write_normalized: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Default phone region for numbers without a country code.
        #[arg(long, default_value = "US")]
        region: String,
        /// Also run the reference engine (`batch::partition`, slow) and
        /// check that it gives the same partition.
        #[arg(long)]
        check_reference: bool,
        /// Run the timed stages this many times and report the median.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
}

/// Latency percentiles in microseconds from a list of samples.
pub fn percentiles(mut v: Vec<u64>) -> (u64, u64, u64, u64) {
    v.sort_unstable();
    let pct = |p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    (
        pct(0.5),
        pct(0.9),
        pct(0.99),
        v.last().copied().unwrap_or(0),
    )
}

pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// Sends `request` repeatedly over `connections` keep-alive connections for
/// `dur`, counting 2xx answers and recording each latency.
pub async fn load(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    connections: usize,
    dur: Duration,
) -> Result<LoadResult> {
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let req = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut buf = vec![0u8; 64 * 1024];
            while Instant::now() < deadline {
                let t = Instant::now();
                s.write_all(&req).await?;
                let status = read_response(&mut s, &mut buf).await?;
                lat.push(t.elapsed().as_micros() as u64);
                if !(200..300).contains(&status) {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((lat, errors))
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await??;
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64().max(dur.as_secs_f64());
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(LoadResult {
        requests: all.len() as u64,
        errors,
        rps: all.len() as f64 / secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}

async fn spawn(router: axum::Router) -> Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    Ok(addr)
}

fn get(path: &str, extra: &str) -> Arc<Vec<u8>> {
    Arc::new(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n").into_bytes())
}

pub async fn run(args: BenchArgs) -> Result<()> {
    match args.which {
        Which::HttpFloor {
            seconds,
            connections,
            database_url,
        } => http_floor(seconds, connections, database_url).await,
        Which::Identify {
            profiles,
            events,
            concurrency,
            warmup,
            database_url,
        } => crate::identify::run(profiles, events, concurrency, warmup, database_url).await,
        Which::Pages {
            profiles,
            requests,
            database_url,
        } => crate::pages::run(profiles, requests, database_url).await,
        Which::CommandCenter {
            agents,
            interactions,
            requests,
            database_url,
        } => crate::command_center::run(agents, interactions, requests, database_url).await,
        Which::Inbox {
            conversations,
            messages,
            requests,
            seed,
            database_url,
            keep,
        } => crate::inbox::run(conversations, messages, requests, seed, database_url, keep).await,
        Which::InboxLive {
            hooks,
            database_url,
            keep,
            org,
        } => {
            crate::inbox_live::run(crate::inbox_live::Options {
                hooks,
                database_url,
                keep,
                org,
            })
            .await
        }
        Which::AgentHeartbeats {
            agents,
            seconds,
            database_url,
        } => {
            crate::agents::run(crate::agents::Options {
                agents,
                seconds,
                database_url,
            })
            .await
        }
        Which::Scheduler {
            jobs,
            concurrency,
            prefetch,
            lateness_jobs,
            spread_seconds,
            database_url,
            only,
        } => {
            crate::scheduler::run(crate::scheduler::Options {
                jobs,
                concurrency,
                prefetch,
                lateness_jobs,
                spread_seconds,
                database_url,
                drain: only.as_deref() != Some("lateness"),
                lateness: only.as_deref() != Some("drain"),
            })
            .await
        }
        Which::Nudges {
            nudges,
            lateness_nudges,
            spread_seconds,
            head_seconds,
            concurrency,
            database_url,
            only,
        } => {
            crate::nudges::run(crate::nudges::Options {
                nudges,
                lateness_nudges,
                spread_seconds,
                head_seconds,
                concurrency,
                database_url,
                drain: only.as_deref() != Some("lateness"),
                lateness: only.as_deref() != Some("drain"),
            })
            .await
        }
        Which::Intake {
            seconds,
            connections,
            rate,
            rate_seconds,
            lag_rate,
            webhook_kb,
            users,
            database_url,
            gzip,
        } => {
            crate::intake::run(crate::intake::Options {
                seconds,
                connections,
                rate,
                rate_seconds,
                lag_rate,
                webhook_kb,
                users,
                database_url,
                gzip,
            })
            .await
        }
        Which::GenContacts { rows, seed, out } => crate::gen::run(rows, seed, &out),
        Which::Resolve {
            csv,
            limits,
            out_partition,
            truth,
            write_normalized,
            threads,
            region,
            check_reference,
            repeat,
        } => resolve::run(resolve::Options {
            csv,
            limits,
            out_partition,
            truth,
            normalized: write_normalized,
            threads,
            region,
            check_reference,
            repeat,
        }),
    }
}

async fn http_floor(seconds: u64, connections: usize, database_url: Option<String>) -> Result<()> {
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
    let org = store
        .create_org(
            &bos_core::OrgName::parse("Bench").map_err(|e| anyhow!(e))?,
            &bos_core::Slug::parse(&format!("bench-{}", uuid::Uuid::new_v4().simple()))
                .map_err(|e| anyhow!(e))?,
            bos::now(),
        )
        .await?;
    let scopes = bos_core::ScopeSet::parse("ingest").map_err(|e| anyhow!(e))?;
    let key = bos_web::issue_api_key(&store, org.id, "bench", &scopes, None, bos::now()).await?;
    let state = bos_web::AppState::new(
        store.clone(),
        Arc::new(bos_web::SystemClock),
        bos_web::WebConfig::default(),
    );
    let bos = spawn(bos_web::app(state)).await?;
    let bare =
        spawn(axum::Router::new().route("/hello", axum::routing::get(|| async { "ok" }))).await?;

    let targets = [
        ("bare axum GET /hello", bare, get("/hello", "")),
        (
            "bos GET /api/v1/me (bearer key, store lookup)",
            bos,
            get(
                "/api/v1/me",
                &format!("Authorization: Bearer {}\r\n", key.secret),
            ),
        ),
    ];
    println!(
        "HTTP floor: {connections} keep-alive connections, {seconds} s per target, engine {:?}",
        store.kind()
    );
    let mut results = Vec::new();
    for (name, addr, req) in targets {
        load(addr, req.clone(), connections, Duration::from_secs(1)).await?;
        let r = load(addr, req, connections, Duration::from_secs(seconds)).await?;
        println!(
            "  {name:<48} {:>9.0} req/s   p50 {:>6} µs   p99 {:>6} µs   errors {}",
            r.rps, r.p50_us, r.p99_us, r.errors
        );
        results.push(r);
    }
    let ratio = results[1].rps / results[0].rps.max(1.0);
    println!(
        "  ratio bos/bare: {:.1}% (budget for the ingest route: ≥ 25%)",
        ratio * 100.0
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "http-floor", "connections": connections, "seconds": seconds,
            "bare_rps": results[0].rps.round(), "bos_rps": results[1].rps.round(),
            "bos_p99_us": results[1].p99_us, "requests": results[0].requests + results[1].requests, "ratio": (ratio * 1000.0).round() / 1000.0,
            "errors": results[0].errors + results[1].errors
        })
    );
    store.close().await;
    Ok(())
}
