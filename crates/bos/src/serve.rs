//! `bos serve`: logging, the HTTP server, the job runner, background
//! housekeeping (expired sessions, interrupted imports) and a graceful
//! shutdown that lets in-flight requests and running jobs finish.

use crate::config::Config;
use anyhow::{Context, Result};
use bos_engine::{Clock, RunnerBuilder, RunnerConfig};
use bos_store::Store;
use bos_web::{AppState, SystemClock};
use std::sync::Arc;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init_logging(c: &Config) -> Result<()> {
    let filter: Targets = c.get("log").parse().with_context(|| {
        format!(
            "BOS_LOG '{}' is not a valid filter (e.g. info,sqlx=warn)",
            c.get("log")
        )
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    let res = if c.get("log_format") == "json" {
        registry
            .with(tracing_subscriber::fmt::layer().json())
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().compact())
            .try_init()
    };
    res.ok();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Where each capability registers the handlers of its job kinds (ghosting
/// timers, abandonment windows, nudge steps…) as it arrives. A job whose
/// kind has no handler here is retried with backoff and, in the end,
/// parked with "no handler" as its error.
fn job_handlers(state: &AppState, runner: RunnerBuilder) -> RunnerBuilder {
    state.nudger.handlers(state.pipeline.handlers(runner))
}

/// The runner's shape for `concurrency` handlers at once, shared with the
/// nudge benchmark so it measures the runner `bos serve` builds: handlers
/// are cheap tasks that mostly wait (the store batches their writes,
/// decision 0013), and a prefetch of sixteen batches keeps them fed.
pub fn runner_config(concurrency: usize) -> RunnerConfig {
    RunnerConfig {
        concurrency,
        prefetch: (concurrency * 16).max(256),
        ..RunnerConfig::default()
    }
}

pub async fn serve(c: &Config, store: Store, banner: Option<String>) -> Result<()> {
    serve_with(c, store, banner, None).await
}

/// [`serve`], handing the serving process's live bus to `bus_to` once it
/// exists: the demo's simulator records inbox messages through the
/// engine, and open pages only hear of them on this process's bus.
pub async fn serve_with(
    c: &Config,
    store: Store,
    banner: Option<String>,
    bus_to: Option<tokio::sync::oneshot::Sender<bos_engine::Bus>>,
) -> Result<()> {
    let web = c.web()?;
    let idle_ms = web.session_idle_ms;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = AppState::new(store.clone(), clock, web);
    if let Some(tx) = bus_to {
        // The simulator may have stopped already; nothing to hand then.
        let _ = tx.send(state.bus.clone());
    }
    // Imports a crashed server left running become `interrupted` (their
    // page says how to resume); the sweep runs now and every half minute.
    let sweeper = state.imports.start_sweeper();
    // Nudges a crash left `sending` become `unknown` (never re-sent); the
    // sweep runs now and every minute.
    let nudge_sweeper = state.nudger.start_sweeper();
    // Inbox replies a crash left pending become `unknown` the same way.
    let reply_sweeper = state.inbox.start_sweeper(state.clock.clone());
    // The durable scheduler: every replica runs one runner; they share the
    // job table (on PostgreSQL they claim with SKIP LOCKED and wake each
    // other with LISTEN/NOTIFY). Jobs scheduled through the app state's
    // scheduler wake it in-process.
    let lease_ms = c.job_lease_ms()?;
    let runner_config = RunnerConfig {
        lease_ms,
        reclaim_every_ms: lease_ms.min(RunnerConfig::default().reclaim_every_ms),
        ..runner_config(c.job_concurrency()?)
    };
    let runner = job_handlers(&state, state.scheduler.runner(runner_config))
        .start()
        .await
        .context("cannot start the job runner")?;
    tracing::info!(owner = runner.owner(), "job runner started");
    // The live bus: on PostgreSQL, what any replica publishes reaches the
    // live pages every replica serves (LISTEN/NOTIFY).
    let bus = state
        .bus
        .start()
        .await
        .context("cannot listen for live updates")?;
    // The intake pipeline: processes stored events (identity, timeline,
    // intent, lead state, timers) in arrival order.
    let pipeline = state.pipeline.start();
    let listener = tokio::net::TcpListener::bind(c.listen())
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another program using it? Choose another with --listen",
                c.listen()
            )
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, engine = ?store.kind(), "BOS is serving");
    if let Some(b) = banner {
        println!("{}", b.replace("{url}", &c.public_url()));
    }
    // Housekeeping: expired sessions and old login failures.
    let purge_store = store.clone();
    let purge = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            let now = bos_web::Clock::now_ms(&SystemClock);
            match purge_store
                .purge_expired(now, idle_ms, 24 * 3_600_000)
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::info!(rows = n, "purged expired sessions and login failures")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
            if let Err(e) = purge_store.optimize().await {
                tracing::warn!(error = %e, "refreshing planner statistics failed");
            }
        }
    });
    // Header-read and idle timeouts and a connection cap (slow clients
    // cannot hold the server); handlers see the peer address.
    bos_web::serve(
        listener,
        bos_web::app(state.clone()),
        state.config.serve_limits,
        shutdown_signal(),
    )
    .await
    .context("HTTP server failed")?;
    state.imports.interrupt_running().await;
    purge.abort();
    sweeper.abort();
    nudge_sweeper.abort();
    reply_sweeper.abort();
    tracing::info!("stopping the intake pipeline: finishing the batch in progress");
    pipeline.shutdown().await;
    tracing::info!("stopping the job runner: finishing running jobs");
    runner.shutdown().await;
    bus.shutdown();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
