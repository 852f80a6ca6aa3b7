//! `bos demo`: a demo organization, ready to sign in to. Idempotent: running
//! it again keeps the data and issues a fresh password for the demo owner
//! (passwords are stored hashed, so the old one cannot be shown again).

use crate::config::Config;
use anyhow::{anyhow, Result};
use bos_core::{Email, OrgName, Role, ScopeSet, Slug};
use bos_store::Store;

pub const OWNER_EMAIL: &str = "owner@demo.bos.local";

pub use crate::demo_inbox::start_send_api_stand_in;

async fn ensure_org(store: &Store, name: &str, slug: &str, now: i64) -> Result<bos_store::Org> {
    if let Some(o) = store.org_by_slug(slug).await? {
        return Ok(o);
    }
    let n = OrgName::parse(name).map_err(|e| anyhow!(e))?;
    let s = Slug::parse(slug).map_err(|e| anyhow!(e))?;
    Ok(store.create_org(&n, &s, now).await?)
}

async fn ensure_user(
    store: &Store,
    email: &str,
    name: &str,
    now: i64,
) -> Result<(bos_store::User, bool)> {
    let e = Email::parse(email).map_err(|e| anyhow!(e))?;
    if let Some(u) = store.user_by_email(&e).await? {
        return Ok((u, false));
    }
    let hash = bos_web::hash_password(&bos_web::auth::random_token(16)).map_err(|e| anyhow!(e))?;
    Ok((store.create_user(&e, name, &hash, false, now).await?, true))
}

/// Creates or refreshes the demo data; returns the banner to print once the
/// server listens (`{url}` is replaced by the public URL).
pub async fn prepare(store: &Store, c: &Config) -> Result<(String, crate::demo_traffic::Traffic)> {
    let now = crate::now();
    let traffic = seed(store, c.listen(), DEMO_PEOPLE, now).await?;
    // Vapi and Retell calls through the real voice hooks, once it listens.
    crate::demo_voice::start(store, c.listen()).await?;
    // The Command Center's agents, played through the API once it listens.
    let shop = store
        .org_by_slug("demo-shop")
        .await?
        .ok_or_else(|| anyhow!("no demo shop"))?;
    tokio::spawn(
        crate::demo_agents::prepare(store, shop.id, c.listen(), now)
            .await?
            .run(),
    );
    let owner = store
        .user_by_email(&Email::parse(OWNER_EMAIL).map_err(|e| anyhow!(e))?)
        .await?
        .ok_or_else(|| anyhow!("the demo owner was not created"))?;
    let password = bos_web::auth::random_token(12);
    let hash = bos_web::hash_password(&password).map_err(|e| anyhow!(e))?;
    store.set_password(owner.id, &hash, false, now).await?;
    Ok((format!(
        "\n  BOS demo is running.\n\n    Open      {{url}}/login\n    Email     {OWNER_EMAIL}\n    Password  {password}\n\n  \
         (A new password is issued each time `bos demo` starts. Ctrl-C stops the server; the data stays in the data directory.)\n  \
         A traffic simulator posts signed Shopify, Segment and form events to this server and customers write in (Instagram and Facebook as signed Meta deliveries): watch Intake and the Inbox.\n  \
         Three AI agents report through the API (a chat agent, a voice receptionist, an SMS SDR that times out now and then): watch the Command Center.\n"
    ), traffic))
}

/// How many customers `bos demo` seeds into the demo shop.
pub const DEMO_PEOPLE: u64 = 2500;

/// The demo's data as of `now`, without the owner's password: the
/// organizations and members, an API key, `people` seeded customers (with
/// lead states from their orders), the simulator's sources and campaigns
/// and a full inbox. Returns the simulator for a server that will listen on
/// `listen`. The browser suite seeds its server with this, on its test
/// clock, so the stories it replays run on the demo as a person sees it.
pub async fn seed(
    store: &Store,
    listen: &str,
    people: u64,
    now: i64,
) -> Result<crate::demo_traffic::Traffic> {
    let shop = ensure_org(store, "Demo Shop", "demo-shop", now).await?;
    let agency = ensure_org(store, "Northwind Agency", "northwind", now).await?;
    let (owner, _) = ensure_user(store, OWNER_EMAIL, "Dana Owner", now).await?;
    store
        .upsert_membership(shop.id, owner.id, Role::Owner, now)
        .await?;
    store
        .upsert_membership(agency.id, owner.id, Role::Admin, now)
        .await?;
    for (email, name, role) in [
        ("maya@demo.bos.local", "Maya Chen", Role::Admin),
        ("sam@demo.bos.local", "Sam Ortiz", Role::Member),
        ("lee@demo.bos.local", "Lee Park", Role::Member),
    ] {
        let (u, _) = ensure_user(store, email, name, now).await?;
        if store.membership(shop.id, u.id).await?.is_none() {
            store.upsert_membership(shop.id, u.id, role, now).await?;
        }
    }
    let (boss, _) = ensure_user(store, "jo@northwind.example", "Jo Northwind", now).await?;
    store
        .upsert_membership(agency.id, boss.id, Role::Owner, now)
        .await?;
    if store.api_keys(shop.id).await?.is_empty() {
        let scopes = ScopeSet::parse("ingest").map_err(|e| anyhow!(e))?;
        bos_web::issue_api_key(
            store,
            shop.id,
            "Storefront tracking",
            &scopes,
            Some(owner.id),
            now,
        )
        .await?;
    }
    let seeded = crate::demo_customers::seed(store, shop.id, people, now).await?;
    if seeded > 0 {
        tracing::info!(people = seeded, "seeded demo customers");
    }
    // Seeded customers with orders are converted leads, the others new
    // ones (a demo database from before this was done is repaired too).
    store.sync_lead_states(shop.id, "demo", now).await?;
    // Sources for the traffic simulator, which posts signed provider
    // traffic to this server's own endpoints once it listens.
    let traffic = crate::demo_traffic::prepare(store, shop.id, listen, now).await?;
    // The inbox opens full; nobody follows it yet, so a bus of its own.
    let inbox = bos_engine::inbox::Inbox::new(store.clone(), bos_engine::Bus::new(store.clone()));
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(19);
    let messages = crate::demo_inbox::seed(&inbox, shop.id, now, &mut rng).await?;
    if messages > 0 {
        tracing::info!(messages, "seeded the demo inbox");
    }
    Ok(traffic)
}
