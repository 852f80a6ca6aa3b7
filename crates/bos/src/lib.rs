//! The `bos` library: configuration, serving, the demo and the contacts
//! import, shared by the `bos` binary (its command line is in `main.rs`)
//! and by the benchmark harness in `crates/bench`, which measures what the
//! binary ships (the job runner's shape, the CLI import path) rather than a
//! copy of it (decision 0022).

pub mod config;
pub mod demo;
pub mod demo_agents;
mod demo_customers;
mod demo_inbox;
pub mod demo_traffic;
pub mod demo_voice;
pub mod http1;
pub mod import;
pub mod secret_keys;
pub mod serve;

use anyhow::{anyhow, Context, Result};
use bos_store::Store;
use clap::Args;
use config::Config;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 or 0.0.0.0:80.
    #[arg(long, env = "BOS_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory for the SQLite database (ignored with a postgres DATABASE_URL).
    #[arg(long, env = "BOS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The configuration in force: the file, the environment, then the flags.
pub fn load(cli_config: Option<&PathBuf>, at: Option<&ServeArgs>) -> Result<Config> {
    let mut c = Config::load(cli_config.map(|p| p.as_path()))?;
    if let Some(a) = at {
        if let Some(l) = &a.listen {
            c.set("listen", l.clone());
        }
        if let Some(d) = &a.data_dir {
            c.set("data_dir", d.display().to_string());
        }
    }
    Ok(c)
}

/// Opens the store with its provider-secret keys and reseals what an older
/// key or release left.
pub async fn open(c: &Config) -> Result<Store> {
    let (keys, source) = secret_keys::keyring(c)?;
    if let secret_keys::KeySource::File(path) = &source {
        if !c.database_url().starts_with("sqlite:") {
            // Each machine would make its own key file; a replica that
            // starts reseals everything under its key and the others can
            // no longer open the channels' and sources' secrets.
            tracing::warn!(
                file = %path.display(),
                "provider secrets are sealed with a key file on PostgreSQL: with several replicas set the same BOS_SECRET_KEY on each"
            );
        }
    }
    let store = Store::open(&c.store_options()?).await.with_context(|| {
        format!(
            "cannot open the database at {}",
            bos_store::redact_url(&c.database_url())
        )
    })?;
    store.set_secret_keys(keys);
    // Secrets stored in plaintext by an older release, or under an older
    // key, are sealed under the current key now.
    let n = store
        .reseal_secrets()
        .await
        .context("cannot seal the stored provider secrets")?;
    if n > 0 {
        tracing::info!(
            count = n,
            "sealed stored provider secrets under the current key"
        );
    }
    Ok(store)
}

/// Now in milliseconds since the Unix epoch, by the system clock.
pub fn now() -> i64 {
    bos_web::Clock::now_ms(&bos_web::SystemClock)
}

/// The organization with `slug`, or an error that says how to list them.
pub async fn org_by_slug(store: &Store, slug: &str) -> Result<bos_store::Org> {
    store
        .org_by_slug(slug)
        .await?
        .ok_or_else(|| anyhow!("no organization with slug '{slug}': see `bos org list`"))
}
