//! `bos`, the one binary: command-line interface, configuration and wiring.
//! Subcommands are thin: they parse, load configuration, open the store and
//! call into the library crates.

/// mimalloc for Rust and, through `override`, for the bundled SQLite's
/// `malloc` too (decision 0015).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{anyhow, bail, Context, Result};
use bos::{demo, import, load, now, open, org_by_slug, secret_keys, serve, ServeArgs};
use bos_core::{Email, OrgName, Role, ScopeSet, Slug};
use bos_store::Store;
use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "bos",
    version,
    about = "BOS, the Business Operating System: every customer, agent and lead in one cockpit.",
    long_about = "BOS, the Business Operating System.\n\n\
        Quick start:  bos demo            (a demo organization, then open the printed URL)\n\
        Production:   bos serve --listen 0.0.0.0:8080 --data-dir /var/lib/bos\n\
        PostgreSQL:   DATABASE_URL=postgres://user@host/db bos serve\n\n\
        Every option can also be set by environment variable or a TOML file; `bos config` lists them."
)]
struct Cli {
    /// TOML configuration file (also BOS_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web UI, API and workers (migrates the database first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: ServeArgs,
    },
    /// Create (or refresh) a demo organization, print how to sign in, and serve.
    Demo(ServeArgs),
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Provider secrets at rest: rotate the key that seals them.
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Show every configuration option, its value in force and its source.
    Config,
    /// Print the OpenAPI document of /api/v1.
    Openapi,
    /// Import contacts from a CSV file through the identity rules.
    Import(import::ImportArgs),
    /// Leads: bring lead states in line with the data.
    #[command(subcommand)]
    Leads(LeadsCmd),
}

#[derive(Subcommand)]
enum LeadsCmd {
    /// Give every customer a lead whose state matches their orders:
    /// `converted` (with the reason) when they have orders, else `new`.
    /// For databases from before imports and the demo did this themselves;
    /// safe to run again (it changes nothing the second time).
    Backfill {
        /// Only this organization (slug); every organization when omitted.
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Create an organization.
    Create {
        /// Display name, e.g. "Acme Store".
        name: String,
        /// URL-safe handle; derived from the name when omitted.
        #[arg(long)]
        slug: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List organizations.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user (or add an existing one) as a member of an organization.
    Create {
        email: String,
        /// Organization slug the user joins.
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "member", value_parser = ["owner", "admin", "member"])]
        role: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from standard input instead of generating a
        /// one-time password (which must be changed at first sign-in).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SecretsCmd {
    /// Seal every stored provider secret under a new key. With the key
    /// file, the new key is written to it (the old one kept below it, still
    /// readable); with BOS_SECRET_KEY, the new key is printed once. Stop the
    /// server first, or restart every replica right after.
    Rotate {
        /// Read the new key (base64, 32 bytes) from standard input instead
        /// of generating one.
        #[arg(long)]
        new_key_stdin: bool,
        #[command(flatten)]
        at: ServeArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create an API key; prints the secret once.
    Create {
        /// Organization slug.
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// Comma-separated: ingest, agent, admin.
        #[arg(long, default_value = "ingest")]
        scopes: String,
        #[arg(long)]
        json: bool,
    },
    /// List an organization's API keys.
    List {
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by id.
    Revoke {
        #[arg(long)]
        org: String,
        id: uuid::Uuid,
        #[arg(long)]
        json: bool,
    },
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
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let cfg_path = cli.config.as_ref();
    match cli.command {
        Command::Serve(a) => {
            let c = load(cfg_path, Some(&a))?;
            serve::init_logging(&c)?;
            let store = open(&c).await?;
            serve::serve(&c, store, None).await
        }
        Command::Demo(a) => {
            let mut c = load(cfg_path, Some(&a))?;
            serve::init_logging(&c)?;
            // Instagram and Facebook replies go to a local stand-in of
            // Meta's Send API unless another one is configured.
            if c.is_default("meta_base_url") {
                c.set("meta_base_url", demo::start_send_api_stand_in().await?);
            }
            let store = open(&c).await?;
            let (banner, traffic) = demo::prepare(&store, &c).await?;
            let (bus_tx, bus_rx) = tokio::sync::oneshot::channel();
            let sim = tokio::spawn(traffic.run(bus_rx));
            let r = serve::serve_with(&c, store, Some(banner), Some(bus_tx)).await;
            sim.abort();
            r
        }
        Command::Migrate { json, at } => {
            let c = load(cfg_path, Some(&at))?;
            let store = Store::connect(&c.store_options()?).await?;
            let ran = store.migrate().await?;
            if json {
                println!("{}", json!({ "applied": ran }));
            } else {
                println!("{ran} migration(s) applied; the schema is up to date.");
            }
            Ok(())
        }
        Command::Org(cmd) => {
            let c = load(cfg_path, None)?;
            let store = open(&c).await?;
            match cmd {
                OrgCmd::Create { name, slug, json } => {
                    let n = OrgName::parse(&name).map_err(|e| anyhow!(e))?;
                    let s = match slug {
                        Some(s) => Slug::parse(&s),
                        None => Slug::from_name(&name),
                    }
                    .map_err(|e| anyhow!(e))?;
                    let org = match store.create_org(&n, &s, now()).await {
                        Err(bos_store::StoreError::Conflict(_)) => {
                            bail!("an organization with slug '{}' exists already: choose another with --slug", s.as_str())
                        }
                        r => r?,
                    };
                    if json {
                        println!("{}", serde_json::to_string(&org)?);
                    } else {
                        println!(
                            "Created organization {} (slug {}, id {}).",
                            org.name, org.slug, org.id
                        );
                        println!(
                            "Next: bos user create you@example.com --org {} --role owner",
                            org.slug
                        );
                    }
                }
                OrgCmd::List { json } => {
                    let orgs = store.list_orgs().await?;
                    if json {
                        println!("{}", serde_json::to_string(&orgs)?);
                    } else {
                        for o in orgs {
                            println!("{:<24} {:<36} {}", o.slug, o.id, o.name);
                        }
                    }
                }
            }
            Ok(())
        }
        Command::User(UserCmd::Create {
            email,
            org,
            role,
            name,
            password_stdin,
            json,
        }) => {
            let c = load(cfg_path, None)?;
            let store = open(&c).await?;
            let org = org_by_slug(&store, &org).await?;
            let email = Email::parse(&email).map_err(|e| anyhow!(e))?;
            let role = Role::parse(&role).map_err(|e| anyhow!(e))?;
            let (password, one_time) = if password_stdin {
                let mut p = String::new();
                std::io::stdin().read_line(&mut p)?;
                let p = p.trim_end_matches(['\n', '\r']).to_string();
                bos_core::auth::check_password(&p).map_err(|e| anyhow!(e))?;
                (p, false)
            } else {
                (bos_web::auth::random_token(12), true)
            };
            let existing = store.user_by_email(&email).await?;
            let (user, created) = match existing {
                Some(u) => (u, false),
                None => {
                    let hash = bos_web::hash_password(&password).map_err(|e| anyhow!(e))?;
                    let display = if name.trim().is_empty() {
                        email.as_str().split('@').next().unwrap_or("").to_string()
                    } else {
                        name
                    };
                    (
                        store
                            .create_user(&email, &display, &hash, one_time, now())
                            .await?,
                        true,
                    )
                }
            };
            store
                .upsert_membership(org.id, user.id, role, now())
                .await?;
            let shown = created.then_some(password).filter(|_| one_time);
            if json {
                println!(
                    "{}",
                    json!({ "user_id": user.id, "email": user.email, "org": org.slug, "role": role.as_str(),
                            "created": created, "one_time_password": shown })
                );
            } else {
                println!("{} is now {} of {}.", user.email, role, org.name);
                match shown {
                    Some(p) => println!(
                        "One-time password (shown once; to be changed at first sign-in): {p}"
                    ),
                    None if created => {
                        println!("Signs in with the password given on standard input.")
                    }
                    None => println!("The account existed already; its password is unchanged."),
                }
            }
            Ok(())
        }
        Command::Key(cmd) => {
            let c = load(cfg_path, None)?;
            let store = open(&c).await?;
            match cmd {
                KeyCmd::Create {
                    org,
                    name,
                    scopes,
                    json,
                } => {
                    let org = org_by_slug(&store, &org).await?;
                    let scopes = ScopeSet::parse(&scopes).map_err(|e| anyhow!(e))?;
                    if name.trim().is_empty() {
                        bail!("give the key a name with --name");
                    }
                    let issued =
                        bos_web::issue_api_key(&store, org.id, &name, &scopes, None, now()).await?;
                    if json {
                        println!(
                            "{}",
                            json!({ "id": issued.key.id, "org": org.slug, "name": issued.key.name,
                                              "scopes": issued.key.scopes, "secret": issued.secret })
                        );
                    } else {
                        println!("{}", issued.secret);
                        eprintln!(
                            "API key '{}' for {} (id {}). Store it now: it is never shown again.",
                            issued.key.name, org.name, issued.key.id
                        );
                    }
                }
                KeyCmd::List { org, json } => {
                    let org = org_by_slug(&store, &org).await?;
                    let keys = store.api_keys(org.id).await?;
                    if json {
                        println!("{}", serde_json::to_string(&keys)?);
                    } else {
                        for k in keys {
                            println!(
                                "{}  {:<14} {:<24} {:<20} {}",
                                k.id,
                                k.display_prefix,
                                k.name,
                                k.scopes.join(","),
                                if k.revoked_at.is_some() {
                                    "revoked"
                                } else {
                                    "active"
                                }
                            );
                        }
                    }
                }
                KeyCmd::Revoke { org, id, json } => {
                    let org = org_by_slug(&store, &org).await?;
                    match store.revoke_api_key(org.id, id, now()).await {
                        Err(bos_store::StoreError::NotFound) => bail!(
                            "{} has no API key {id}: see `bos key list --org {}`",
                            org.name,
                            org.slug
                        ),
                        r => r?,
                    }
                    if json {
                        println!("{}", json!({ "id": id, "org": org.slug, "revoked": true }));
                    } else {
                        println!("Revoked {id}.");
                    }
                }
            }
            Ok(())
        }
        Command::Secrets(SecretsCmd::Rotate {
            new_key_stdin,
            at,
            json,
        }) => {
            let c = load(cfg_path, Some(&at))?;
            let new = if new_key_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                bos_store::secrets::SecretKey::parse(&line).context("the new key is unusable")?
            } else {
                bos_store::secrets::SecretKey::generate()
            };
            let (before, source) = secret_keys::keyring(&c)?;
            // Opening reseals anything left under older keys first.
            let store = open(&c).await?;
            let old = before.current().clone();
            // Both keys open while every value moves to the new one.
            store.set_secret_keys(bos_store::secrets::Keyring::new(
                new.clone(),
                vec![old.clone()],
            ));
            if let secret_keys::KeySource::File(path) = &source {
                // The file first, so that a crash midway leaves a key file
                // that opens every value (the old key stays below the new).
                secret_keys::write_key_file(path, &[&new, &old])?;
            }
            let n = store.reseal_secrets().await?;
            store.close().await;
            match source {
                secret_keys::KeySource::File(path) => {
                    if json {
                        println!(
                            "{}",
                            json!({"resealed": n, "key_id": new.id(), "key_file": path.display().to_string()})
                        );
                    } else {
                        println!(
                            "{n} secret(s) sealed under the new key {} ({}).\n\
                             The previous key stays below it in the file so that nothing becomes unreadable; \
                             restart the server now. Once it runs, you may delete the old key line.",
                            new.id(),
                            path.display()
                        );
                    }
                }
                secret_keys::KeySource::Config => {
                    if json {
                        println!(
                            "{}",
                            json!({"resealed": n, "key_id": new.id(), "new_key": new.to_base64(), "old_key": old.to_base64()})
                        );
                    } else {
                        println!(
                            "{n} secret(s) sealed under the new key {}.\n\
                             Set BOS_SECRET_KEY={} and BOS_SECRET_KEYS_OLD={} on every replica and restart them;\n\
                             once all run with the new key, remove BOS_SECRET_KEYS_OLD. The new key is shown only now.",
                            new.id(),
                            new.to_base64(),
                            old.to_base64()
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Leads(LeadsCmd::Backfill { org, json }) => {
            let c = load(cfg_path, None)?;
            let store = open(&c).await?;
            let orgs = match org {
                Some(slug) => vec![org_by_slug(&store, &slug).await?],
                None => store.list_orgs().await?,
            };
            let mut out = Vec::new();
            for o in orgs {
                let done = store.sync_lead_states(o.id, "backfill", now()).await?;
                if !json {
                    println!(
                        "{:<24} {} customer(s) marked converted from their orders, {} given a new lead",
                        o.slug, done.converted, done.created_new
                    );
                }
                out.push(json!({"org": o.slug, "converted": done.converted, "created_new": done.created_new}));
            }
            store.close().await;
            if json {
                println!("{}", serde_json::Value::Array(out));
            }
            Ok(())
        }
        Command::Config => {
            let c = load(cfg_path, None)?;
            print!("{}", c.describe());
            Ok(())
        }
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&bos_web::api::openapi())?
            );
            Ok(())
        }
        Command::Import(a) => import::run(cfg_path, a).await,
    }
}
