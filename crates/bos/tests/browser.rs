//! Real-browser end-to-end suite: headless Chromium, driven over WebDriver
//! by chromedriver, against a BOS server running in this process on a fresh
//! database. It walks the path a person takes through the UI — sign in, see
//! the overview, switch organization with the top-bar selector (which
//! auto-submits through `app.js`), create an API key in Settings → API keys
//! and prove the shown secret works against the real `/api/v1/me`, check the
//! secret is never shown again, revoke the key through the confirmation
//! dialog and prove the API now refuses it, then sign out — so the
//! templates, the CSRF/cookie handling and the small script are exercised
//! together, as only a browser can.
//!
//! It needs `chromium` and `chromedriver` (override the paths with
//! `BOS_CHROMIUM` / `BOS_CHROMEDRIVER`), so it is ignored by default:
//! `cargo test -p bos --test browser -- --ignored`. Screenshots of each step
//! and the chromedriver log land in `target/browser-screenshots/`.

use anyhow::{anyhow, bail, ensure, Context};
use bos_web::Clock;
use fantoccini::{Client, ClientBuilder, Locator};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Unified Inbox flows and its XSS suite.
#[path = "browser/inbox.rs"]
mod inbox;

/// Settings → Intake's rules form and a form source's snippet.
#[path = "browser/rules_editor.rs"]
mod rules_editor;

/// Issue 20's three nudge stories, replayed on the demo's simulator.
#[path = "browser/nudge_stories.rs"]
mod nudge_stories;

/// The Command Center: live cards, the strip, pause → 409 → resume.
#[path = "browser/command_center.rs"]
mod command_center;

/// Intake at 1280 px, arrivals held while a menu is open, Won / Lost undo.
#[path = "browser/intake_live.rs"]
mod intake_live;

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "correct horse battery";
/// Upper bound for anything the browser or server has to do after an action.
const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "browser suite: needs chromium + chromedriver; run with --ignored"]
async fn owner_switches_org_creates_uses_and_revokes_a_key_then_signs_out() -> anyhow::Result<()> {
    let shots = Screenshots::new("platform")?;
    let (_db, base, port) = start_server().await?;
    let (_driver, client) = Chromedriver::session(&shots.dir).await?;

    // The flow runs in its own task so that a failed assertion *or* a panic
    // still lets us end the WebDriver session below: that is what makes
    // chromedriver quit Chromium instead of leaving it orphaned.
    let flow = tokio::spawn(flow(client.clone(), base, port, shots));
    finish(client, flow).await
}

/// God View: a customer seen on Instagram and on Shopify becomes one person
/// when a DM reveals the phone; the owner opens the merged profile, reads
/// why, unmerges it, and finds both customers back with their own events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "browser suite: needs chromium + chromedriver; run with --ignored"]
async fn owner_reads_a_merge_explanation_and_unmerges() -> anyhow::Result<()> {
    let shots = Screenshots::new("god-view")?;
    let (db, base, _port) = start_server().await?;
    let acme = db.store.org_by_slug("acme").await?.context("acme exists")?;
    seed_merged_customer(&db.store, acme.id).await?;
    let (_driver, client) = Chromedriver::session(&shots.dir).await?;
    let flow = tokio::spawn(god_view_flow(client.clone(), base, shots));
    finish(client, flow).await
}

/// Intake (issue 4): the owner keeps the intake dashboard open; a signed
/// Segment call arrives from a storefront; the lead appears in the live feed
/// without a reload, its intent badge explains the score; the owner opens
/// it and finds the intent reasons and the lead state on the profile and
/// its timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "browser suite: needs chromium + chromedriver; run with --ignored"]
async fn owner_watches_a_lead_arrive_live_and_opens_it() -> anyhow::Result<()> {
    let shots = Screenshots::new("intake")?;
    let (db, base, port) = start_server().await?;
    let acme = db.store.org_by_slug("acme").await?.context("acme exists")?;
    let key = storefront_source(&db.store, acme.id).await?;
    let (_driver, client) = Chromedriver::session(&shots.dir).await?;
    let flow = tokio::spawn(intake_flow(client.clone(), base, port, key, shots));
    finish(client, flow).await
}

/// A Segment source "Storefront" for `org`; returns its write key.
async fn storefront_source(store: &bos_store::Store, org: uuid::Uuid) -> anyhow::Result<String> {
    let key = format!("wk_browser_{}", uuid::Uuid::new_v4().simple());
    store
        .create_source(
            org,
            bos_store::intake::NewSource {
                kind: bos_store::intake::SourceKind::Segment,
                name: "Storefront".into(),
                secret: None,
                key_hash: Some(bos_web::auth::sha256(&key)),
                config: None,
            },
            bos_web::SystemClock.now_ms(),
        )
        .await?;
    Ok(key)
}

async fn intake_flow(
    c: Client,
    base: String,
    port: u16,
    key: String,
    shots: Screenshots,
) -> anyhow::Result<()> {
    sign_in(&c, &base).await?;
    click_and_wait(&c, "nav.sidenav a[href='/intake']", "#lead-feed").await?;
    // The page is connected to its live stream before the event is sent.
    wait_css(&c, "#live-status.on")
        .await
        .context("the intake page should open its live stream")?;
    let url_before = c.current_url().await?;
    shots.save(&c, "01-intake-empty").await?;

    // A storefront sends a Segment call (write key as HTTP Basic).
    let body = serde_json::json!({
        "userId": "shopper-42", "messageId": "browser-m-1", "event": "Checkout Started",
        "properties": {"value": 180.0},
        "context": {"traits": {"email": "ines.moreau@example.com", "firstName": "Ines", "lastName": "Moreau"},
                    "campaign": {"source": "google", "medium": "cpc", "name": "spring"}}
    })
    .to_string();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    let status = http_post(
        port,
        "/v1/track",
        &format!("Authorization: Basic {auth}\r\n"),
        &body,
    )
    .await?;
    ensure!(
        status == 200,
        "the track call should be accepted, got {status}"
    );

    // The lead appears without a reload.
    let row = wait_xpath(&c, "//tr[contains(@class,'lead')][.//span[contains(@class,'person-name') and normalize-space()='Ines Moreau']]")
        .await
        .context("the new lead should appear in the live feed")?;
    ensure!(
        c.current_url().await? == url_before,
        "no navigation happened"
    );
    let badge = row.find(Locator::Css(".intent")).await?;
    let reasons = badge.attr("title").await?.unwrap_or_default();
    ensure!(
        reasons.contains("started a checkout")
            && reasons.contains("+50")
            && reasons.contains("cart value ≥ 100.00"),
        "the intent badge should say why: {reasons:?}"
    );
    ensure!(
        badge.text().await?.contains("High value"),
        "a $180 checkout from a paid ad is high value"
    );
    shots.save(&c, "02-intake-live-lead").await?;

    // Open it: the profile shows the reasons and the state, and the
    // timeline carries the state change with its reason.
    row.find(Locator::Css("a.person")).await?.click().await?;
    wait_css(&c, "#lead-panel").await?;
    let panel = c.find(Locator::Css("#lead-panel")).await?.text().await?;
    ensure!(
        panel.contains("Engaged"),
        "lead state on the profile: {panel}"
    );
    let listed = c
        .find(Locator::Css("#intent-reasons"))
        .await?
        .text()
        .await?;
    ensure!(
        listed.contains("started a checkout"),
        "intent reasons on the profile: {listed}"
    );
    let history = c.find(Locator::Css("#lead-history")).await?.text().await?;
    ensure!(
        history.contains("New") && history.contains("Engaged"),
        "state history: {history}"
    );
    let page = c.source().await?;
    ensure!(
        page.contains("New → Engaged"),
        "the timeline should show the lead state change"
    );
    shots.save(&c, "03-profile-lead").await?;

    // The delivery is in the source's log, processed, linked to Ines.
    c.goto(&format!("{base}/settings/sources")).await?;
    wait_xpath(&c, "//a[normalize-space()='Storefront']")
        .await?
        .click()
        .await?;
    let row = wait_css(&c, "#deliveries tr[data-status='processed']").await?;
    ensure!(
        row.text().await?.contains("track"),
        "the delivery log should list the track call"
    );
    shots.save(&c, "04-source-deliveries").await?;
    // The rules that scored it, in words.
    c.goto(&format!("{base}/settings/intake")).await?;
    let rules = wait_css(&c, "#intent-rules").await?.text().await?;
    ensure!(rules.contains("cart value"), "intent rules table: {rules}");
    shots.save(&c, "05-intake-rules").await?;
    Ok(())
}

/// A minimal HTTP/1.1 POST of a JSON body; returns the status.
async fn http_post(port: u16, path: &str, headers: &str, body: &str) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .context("POST timed out")??;
    let head = String::from_utf8_lossy(&raw);
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status line in response to POST {path}"))
}

/// Instagram DM (John), a Shopify order (email + phone), then a DM that
/// carries the phone: the real resolution merges them.
async fn seed_merged_customer(store: &bos_store::Store, org: uuid::Uuid) -> anyhow::Result<()> {
    use bos_core::identity::{Identifier, IdentifierKind as K, IdentityRules};
    use bos_store::identity::{IdentifyInput, NewEvent, Traits};
    let rules = IdentityRules::default();
    let now = bos_web::SystemClock.now_ms();
    let step =
        |ids: Vec<Identifier>, first: &str, kind: &str, summary: &str, ago_h: i64, revenue: i64| {
            IdentifyInput {
                identifiers: ids,
                traits: Traits {
                    first_name: first.into(),
                    last_name: if first.is_empty() {
                        String::new()
                    } else {
                        "Rivera".into()
                    },
                    company: String::new(),
                    custom: Default::default(),
                },
                source: if kind == "purchase" {
                    "shopify".into()
                } else {
                    "instagram".into()
                },
                event: Some(NewEvent {
                    kind: kind.into(),
                    summary: summary.into(),
                    occurred_at: now - ago_h * 3_600_000,
                    data: "{}".into(),
                    key: Some(summary.into()),
                    revenue_cents: revenue,
                    is_order: kind == "purchase",
                }),
                now,
            }
        };
    let ig = || Identifier::new(K::InstagramId, "17841400000777");
    let phone = || Identifier::new(K::Phone, "+14155550177");
    store
        .identify(
            org,
            &rules,
            &step(
                vec![ig()],
                "John",
                "message_in",
                "DM: do you ship to Canada?",
                48,
                0,
            ),
        )
        .await?;
    store
        .identify(
            org,
            &rules,
            &step(
                vec![
                    Identifier::new(K::Email, "john.rivera@example.com"),
                    phone(),
                ],
                "",
                "purchase",
                "Order #1001 — Rain jacket",
                24,
                12999,
            ),
        )
        .await?;
    store
        .identify(
            org,
            &rules,
            &step(
                vec![ig(), phone()],
                "",
                "message_in",
                "DM: my number is +1 415 555 0177",
                2,
                0,
            ),
        )
        .await?;
    Ok(())
}

/// Campaigns: the owner builds a two-step abandoned-checkout
/// campaign in the builder, adds a third step without losing what was
/// typed, saves it as active, and previews step 1 for a real customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "browser suite: needs chromium + chromedriver; run with --ignored"]
async fn owner_builds_a_campaign_and_previews_it() -> anyhow::Result<()> {
    let shots = Screenshots::new("campaigns")?;
    let (db, base, port) = start_server().await?;
    let acme = db.store.org_by_slug("acme").await?.context("acme exists")?;
    db.store
        .identify(
            acme.id,
            &bos_core::identity::IdentityRules::default(),
            &bos_store::identity::IdentifyInput {
                identifiers: vec![bos_core::identity::Identifier::new(
                    bos_core::identity::IdentifierKind::Email,
                    "maya@example.com",
                )],
                traits: bos_store::identity::Traits {
                    first_name: "Maya".into(),
                    last_name: "Lopez".into(),
                    company: String::new(),
                    custom: Default::default(),
                },
                source: "browser-test".into(),
                event: None,
                now: bos_web::SystemClock.now_ms(),
            },
        )
        .await?;
    let (_driver, client) = Chromedriver::session(&shots.dir).await?;
    let key = storefront_source(&db.store, acme.id).await?;
    let seed = Seed {
        store: db.store.clone(),
        org: acme.id,
        port,
        key,
        base: base.clone(),
    };
    let flow = tokio::spawn(campaign_flow(client.clone(), base, seed, shots));
    finish(client, flow).await
}

struct Seed {
    store: bos_store::Store,
    org: uuid::Uuid,
    port: u16,
    key: String,
    base: String,
}

/// A second campaign with real activity, for the screenshots: twelve trial
/// sign-ups enter it through the pipeline; step 1 (an A/B split) is sent to
/// each as the scheduler would, most are delivered, some opened and
/// clicked; five get step 2; three buy.
async fn seed_activity(s: &Seed) -> anyhow::Result<uuid::Uuid> {
    use base64::Engine as _;
    use bos_core::nudge::{Campaign, Channel, Step, StopConditions, Trigger, Variant};
    let v = |name: &str, weight: u32, subject: &str, body: &str| Variant {
        name: name.into(),
        weight,
        subject: Some(subject.into()),
        body: body.into(),
    };
    let campaign = Campaign {
        name: "Trial follow-up".into(),
        trigger: Trigger::Event {
            name: "Trial Started".into(),
        },
        steps: vec![
            Step {
                delay_ms: 2 * 86_400_000,
                channel: Channel::Email,
                variants: vec![
                    v(
                        "A",
                        50,
                        "How is your trial going, {{ first_name }}?",
                        "Hi {{ first_name }}, reply with any question.",
                    ),
                    v(
                        "B",
                        50,
                        "{{ first_name }}, 3 tips for your first week",
                        "Hi {{ first_name }}, here are three tips.",
                    ),
                ],
            },
            Step {
                delay_ms: 3 * 86_400_000,
                channel: Channel::Email,
                variants: vec![v(
                    "A",
                    1,
                    "Your trial ends soon",
                    "Hi {{ first_name }}, upgrade to keep your data.",
                )],
            },
        ],
        stop: StopConditions::default(),
        quiet_hours: None,
        max_attempts: 5,
        reentry_cooldown_ms: 30 * 86_400_000,
        priority: 0,
    };
    let now = bos_web::SystemClock.now_ms();
    let id = s
        .store
        .create_campaign(
            s.org,
            &campaign,
            bos_store::nudge::CampaignStatus::Active,
            now,
        )
        .await?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:", s.key));
    let names = [
        "Ava", "Ben", "Chloe", "Dev", "Emma", "Finn", "Gia", "Hugo", "Iris", "Jon", "Kai", "Lena",
    ];
    for (i, n) in names.iter().enumerate() {
        let body = serde_json::json!({
            "userId": format!("trial-{i}"), "messageId": format!("trial-m-{i}"), "event": "Trial Started",
            "context": {"traits": {"email": format!("{}@example.com", n.to_lowercase()), "firstName": n, "lastName": "Sample"}}
        })
        .to_string();
        let status = http_post(
            s.port,
            "/v1/track",
            &format!("Authorization: Basic {auth}\r\n"),
            &body,
        )
        .await?;
        ensure!(status == 200, "track accepted, got {status}");
    }
    poll(|| async {
        let c = s.store.campaigns(s.org).await?;
        Ok(c.iter()
            .find(|c| c.row.id == id)
            .is_some_and(|c| c.stats.active == names.len() as i64)
            .then_some(()))
    })
    .await
    .context("every trial sign-up enters the campaign")?;
    for step in 0..2 {
        for (i, n) in names.iter().enumerate() {
            if step == 1 && i >= 5 {
                continue;
            }
            let email = format!("{}@example.com", n.to_lowercase());
            let p = s
                .store
                .profile_by_email(s.org, &email)
                .await?
                .context("customer")?;
            let e = s.store.enrollments_for_profile(s.org, p).await?;
            let e = e.iter().find(|e| e.campaign_id == id).context("enrolled")?;
            let due = e.next_due.context("a step is due")?;
            let (out, _) = s
                .store
                .nudge_step(
                    s.org,
                    e.id,
                    due,
                    (i as u32).wrapping_mul(2_654_435_761),
                    std::sync::Arc::new(bos_web::paths::PublicUrls::new(&s.base)),
                )
                .await?;
            // No channel is configured: the development sink delivers it
            // in the step's own commit.
            let bos_store::nudge::StepOutcome::Delivered {
                execution: exec, ..
            } = out
            else {
                bail!("step {step} for {n}: {out:?}");
            };
            let token = s
                .store
                .campaign_executions(s.org, id, 1_000)
                .await?
                .into_iter()
                .find(|e| e.id == exec)
                .context("the execution")?
                .token;
            if i < 8 {
                s.store.track_open(token.clone(), due + 60_000).await?;
            }
            if i < 4 {
                s.store.track_click(token, due + 120_000).await?;
            }
        }
    }
    Ok(id)
}

async fn fill(c: &Client, name: &str, value: &str) -> anyhow::Result<()> {
    let e = wait_css(c, &format!("[name='{name}']")).await?;
    e.clear().await?;
    e.send_keys(value).await?;
    Ok(())
}

/// Step `n`'s delay (from 0, as the builder numbers its fields).
async fn step_delay(c: &Client, n: usize, delay: &str, unit: &str) -> anyhow::Result<()> {
    fill(c, &format!("s{n}_delay"), delay).await?;
    choose(c, &format!("s{n}_unit"), unit).await
}

async fn choose(c: &Client, name: &str, value: &str) -> anyhow::Result<()> {
    wait_css(c, &format!("select[name='{name}']"))
        .await?
        .select_by_value(value)
        .await?;
    Ok(())
}

async fn campaign_flow(
    c: Client,
    base: String,
    seed: Seed,
    shots: Screenshots,
) -> anyhow::Result<()> {
    sign_in(&c, &base).await?;
    click_and_wait(&c, "nav.sidenav a[href='/campaigns']", "#no-campaigns").await?;
    shots.save(&c, "01-campaigns-empty").await?;
    click_and_wait(&c, "#new-campaign", "#campaign-form").await?;
    fill(&c, "name", "Cart rescue").await?;
    choose(&c, "trigger", "checkout_abandoned").await?;
    step_delay(&c, 0, "1", "hours").await?;
    fill(
        &c,
        "s0_a_subject",
        "{{ first_name }}, you left something behind",
    )
    .await?;
    fill(
        &c,
        "s0_a_body",
        "Hi {{ first_name }},\n\nYour cart is still here. Pick up where you left off.\n\nThe Acme team",
    )
    .await?;
    // A second step: the form comes back with step 1 as typed.
    click_and_wait(&c, "#add-step", "[name='s1_delay']").await?;
    let kept = c
        .find(Locator::Css("[name='s0_a_subject']"))
        .await?
        .prop("value")
        .await?
        .unwrap_or_default();
    ensure!(
        kept == "{{ first_name }}, you left something behind",
        "step 1 kept: {kept:?}"
    );
    step_delay(&c, 1, "1", "days").await?;
    choose(&c, "s1_channel", "sms").await?;
    fill(
        &c,
        "s1_a_body",
        "{{ first_name }}, your Acme cart is waiting. Reply STOP to opt out.",
    )
    .await?;
    // And a third, with an A/B test.
    click_and_wait(&c, "#add-step", "[name='s2_delay']").await?;
    // Saving with step 3 still empty: the sentence, and nothing lost.
    click(&c, "#save-campaign").await?;
    let err = wait_css(&c, "#campaign-error").await?.text().await?;
    ensure!(
        err.contains("Step 3, variant 1: the body is empty"),
        "the error says what to fix: {err:?}"
    );
    let kept = c
        .find(Locator::Css("[name='s1_a_body']"))
        .await?
        .prop("value")
        .await?
        .unwrap_or_default();
    ensure!(
        kept.contains("your Acme cart is waiting"),
        "step 2 kept: {kept:?}"
    );
    shots.save(&c, "02a-builder-error").await?;
    step_delay(&c, 2, "3", "days").await?;
    // A new step starts on the previous step's channel (SMS here).
    choose(&c, "s2_channel", "email").await?;
    fill(&c, "s2_a_subject", "Last call, {{ first_name }}").await?;
    fill(&c, "s2_a_body", "Your cart expires soon.").await?;
    click(&c, "[name='s2_b_on']").await?;
    fill(&c, "s2_b_subject", "10% off if you finish today").await?;
    fill(&c, "s2_b_body", "Use code COMEBACK at checkout.").await?;
    fill(&c, "s2_split", "60").await?;
    choose(&c, "status", "active").await?;
    shots.save(&c, "02-builder").await?;
    click_and_wait(&c, "#save-campaign", "#campaign-status.cstatus-active").await?;
    wait_xpath(&c, "//h1[normalize-space()='Cart rescue']").await?;
    let rows = c.find_all(Locator::Css("#funnel tbody tr")).await?;
    ensure!(rows.len() == 3, "a funnel row per step, got {}", rows.len());
    shots.save(&c, "03-campaign").await?;
    // Preview step 1 for Maya.
    fill(&c, "preview_email", "maya@example.com").await?;
    click_and_wait(&c, "#preview-button", "#preview").await?;
    let subject = wait_css(&c, "#preview-subject").await?.text().await?;
    ensure!(
        subject == "Maya, you left something behind",
        "subject {subject:?}"
    );
    wait_css(&c, "iframe#preview-html[sandbox]").await?;
    c.execute(
        "document.getElementById('preview').scrollIntoView()",
        vec![],
    )
    .await?;
    shots.save(&c, "04-preview").await?;
    c.goto(&format!("{base}/campaigns")).await?;
    wait_xpath(
        &c,
        "//table[@id='campaigns']//a[normalize-space()='Cart rescue']",
    )
    .await?;
    shots.save(&c, "05-campaigns").await?;
    // A campaign with sends: its page, the list, the outbox, a profile.
    let trial = seed_activity(&seed).await?;
    c.goto(&format!("{base}/campaigns/{trial}")).await?;
    let sent = wait_css(&c, "#funnel tr[data-step='1'] td:nth-child(2)")
        .await?
        .text()
        .await?;
    ensure!(sent == "12", "step 1 sent to all twelve: {sent}");
    shots.save(&c, "06-campaign-with-sends").await?;
    c.execute("document.getElementById('recent').scrollIntoView()", vec![])
        .await?;
    shots.save(&c, "07-campaign-recent-sends").await?;
    c.goto(&format!("{base}/campaigns")).await?;
    wait_xpath(
        &c,
        "//table[@id='campaigns']//a[normalize-space()='Trial follow-up']",
    )
    .await?;
    shots.save(&c, "08-campaigns-with-sends").await?;
    c.goto(&format!("{base}/outbox")).await?;
    wait_css(&c, "#outbox tbody tr").await?;
    shots.save(&c, "09-outbox").await?;
    let ava = seed
        .store
        .profile_by_email(seed.org, "ava@example.com")
        .await?
        .context("Ava")?;
    c.goto(&format!("{base}/customers/{ava}")).await?;
    wait_css(&c, "#nudges").await?;
    c.execute("document.getElementById('nudges').scrollIntoView()", vec![])
        .await?;
    shots.save(&c, "10-profile-nudges").await?;
    watch_a_nudge_go_out(&c, &base, &seed, &shots).await
}

/// Builds an event-triggered campaign in the UI, then sends the event for
/// a customer whose step is already due (the event happened two minutes
/// ago and the step waits one), and watches the real job runner put the
/// message in the development sink's outbox.
async fn watch_a_nudge_go_out(
    c: &Client,
    base: &str,
    s: &Seed,
    shots: &Screenshots,
) -> anyhow::Result<()> {
    use base64::Engine as _;
    c.goto(&format!("{base}/campaigns/new")).await?;
    wait_css(c, "#campaign-form").await?;
    fill(c, "name", "Demo follow-up").await?;
    choose(c, "trigger", "event").await?;
    fill(c, "event_name", "Demo Booked").await?;
    step_delay(c, 0, "1", "minutes").await?;
    choose(c, "s0_channel", "email").await?;
    fill(c, "s0_a_subject", "{{ first_name }}, thanks for booking").await?;
    fill(c, "s0_a_body", "Hi {{ first_name }}, see you at the demo.").await?;
    choose(c, "status", "active").await?;
    click_and_wait(c, "#save-campaign", "#campaign-status.cstatus-active").await?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:", s.key));
    let two_minutes_ago = bos_web::api::rfc3339(bos_web::SystemClock.now_ms() - 120_000);
    let body = serde_json::json!({
        "userId": "maya-1", "messageId": "demo-booked-maya", "event": "Demo Booked",
        "timestamp": two_minutes_ago,
        "context": {"traits": {"email": "maya@example.com", "firstName": "Maya"}}
    })
    .to_string();
    let status = http_post(
        s.port,
        "/v1/track",
        &format!("Authorization: Basic {auth}\r\n"),
        &body,
    )
    .await?;
    ensure!(status == 200, "track accepted, got {status}");
    // The outbox, reloaded until the runner has sent it.
    let url = format!("{base}/outbox");
    poll(|| async {
        c.goto(&url).await?;
        let text = c.find(Locator::Css("main")).await?.text().await?;
        Ok(text.contains("Maya, thanks for booking").then_some(()))
    })
    .await
    .context("the nudge reaches the outbox")?;
    c.execute("window.scrollTo(0, document.body.scrollHeight)", vec![])
        .await?;
    shots.save(c, "11-outbox-live-send").await?;
    Ok(())
}

async fn god_view_flow(c: Client, base: String, shots: Screenshots) -> anyhow::Result<()> {
    sign_in(&c, &base).await?;

    // Find John through the customers search.
    click(&c, "nav.sidenav a[href='/customers']").await?;
    wait_css(&c, "#customer-search")
        .await?
        .send_keys("john")
        .await?;
    click(&c, "form[role=search] button[type=submit]").await?;
    // Wait for the results page itself, not the list it replaces.
    poll(|| async {
        Ok(c.current_url()
            .await?
            .query()
            .is_some_and(|q| q.contains("q=john"))
            .then_some(()))
    })
    .await
    .context("searching should load /customers?q=john")?;
    wait_xpath(
        &c,
        "//table[@id='customers']//a[contains(., 'John Rivera')]",
    )
    .await?
    .click()
    .await?;
    let explanation = wait_css(&c, "#why-one-person .merge")
        .await
        .context("a merged profile explains itself")?;
    let text = explanation.text().await?;
    ensure!(
        text.contains("same phone +14155550177"),
        "the explanation names the shared phone: {text}"
    );
    let timeline = c.find(Locator::Css("#timeline")).await?.text().await?;
    ensure!(
        timeline.contains("Order #1001") && timeline.contains("do you ship to Canada"),
        "one journey: {timeline}"
    );
    ensure!(c.find(Locator::Css("#ltv")).await?.text().await? == "$129.99");
    let badges = c
        .find(Locator::Css("#identity-badges"))
        .await?
        .text()
        .await?;
    ensure!(
        badges.contains("Instagram") && badges.contains("Phone") && badges.contains("Email"),
        "badges: {badges}"
    );
    shots.save(&c, "01-merged-profile").await?;

    // Unmerge, through the confirmation dialog.
    explanation
        .find(Locator::Css("button.unmerge"))
        .await?
        .click()
        .await?;
    poll(|| async { Ok(c.get_alert_text().await.ok()) })
        .await
        .context("the unmerge asks for confirmation")?;
    c.accept_alert().await?;
    wait_xpath(&c, "//*[@role='status' and contains(., 'Unmerged.')]").await?;
    let timeline = c.find(Locator::Css("#timeline")).await?.text().await?;
    ensure!(
        !timeline.contains("Order #1001"),
        "the order went back with its profile: {timeline}"
    );
    ensure!(
        timeline.contains("do you ship to Canada") && timeline.contains("Unmerged"),
        "{timeline}"
    );
    ensure!(c.find(Locator::Css("#ltv")).await?.text().await? == "$0.00");
    shots.save(&c, "02-after-unmerge").await?;

    // The other customer is back with its own identities and its order.
    c.find(Locator::Css(".merges-past a"))
        .await
        .context("merge history links the other customer")?
        .click()
        .await?;
    let tl = wait_css(&c, "#timeline").await?.text().await?;
    ensure!(tl.contains("Order #1001"), "{tl}");
    ensure!(c.find(Locator::Css("#ltv")).await?.text().await? == "$129.99");
    let badges = c
        .find(Locator::Css("#identity-badges"))
        .await?
        .text()
        .await?;
    ensure!(
        badges.contains("Email") && badges.contains("Phone") && !badges.contains("Instagram"),
        "badges: {badges}"
    );
    shots.save(&c, "03-other-customer").await?;
    Ok(())
}

/// Customers → Import: the owner uploads a contacts file with one bad row,
/// watches the progress bar (moved by `import.js` over Server-Sent Events)
/// reach done, reads the summary — counts and the rejected line with its
/// reason — and opens one of the imported customers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "browser suite: needs chromium + chromedriver; run with --ignored"]
async fn owner_uploads_contacts_and_watches_the_import() -> anyhow::Result<()> {
    let shots = Screenshots::new("import")?;
    let (_db, base, _port) = start_server().await?;
    // Enough rows for the import to run over several batches while the
    // page follows it; line 3 has nothing usable.
    let dir = std::env::temp_dir().join(format!("bos-browser-csv-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("contacts.csv");
    let mut csv = String::from("email,phone,first_name,last_name\n");
    csv.push_str("maria@example.com,(415) 555-0142,Maria,Lopez\n");
    csv.push_str("not-an-email,12,Nobody,\n");
    for i in 0..30_000 {
        csv.push_str(&format!("c{i}@example.com,,Customer,N{i}\n"));
    }
    std::fs::write(&file, csv)?;
    std::fs::write(dir.join("names.csv"), "name,company\nAnn Lee,Acme\n")?;
    let (_driver, client) = Chromedriver::session(&shots.dir).await?;
    let flow = tokio::spawn(import_flow(client.clone(), base, file, shots));
    let outcome = flow.await;
    let closed = client.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(result) => result?,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
    closed.context("closing the WebDriver session")?;
    Ok(())
}

async fn import_flow(
    c: Client,
    base: String,
    file: PathBuf,
    shots: Screenshots,
) -> anyhow::Result<()> {
    sign_in(&c, &base).await?;

    click(&c, "nav.sidenav a[href='/customers']").await?;
    wait_css(&c, "#import-link").await?.click().await?;

    // A file without any identifier column is refused, saying which
    // headers would do.
    let form = wait_css(&c, "#import-form")
        .await
        .context("an owner sees the upload form")?;
    let names = file.with_file_name("names.csv");
    form.find(Locator::Css("input[type=file]"))
        .await?
        .send_keys(&names.display().to_string())
        .await?;
    form.find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    let error = wait_css(&c, "#import-error")
        .await
        .context("a refused file is explained on the form")?
        .text()
        .await?;
    ensure!(
        error.contains("No identifier column among the headers (name, company)")
            && error.contains("phone"),
        "the error lists the accepted headers: {error}"
    );
    shots.save(&c, "00-refused-file").await?;

    let form = wait_css(&c, "#import-form").await?;
    let source = form.find(Locator::Css("input[name=source]")).await?;
    source.clear().await?;
    source.send_keys("crm-export").await?;
    form.find(Locator::Css("input[type=file]"))
        .await?
        .send_keys(&file.display().to_string())
        .await?;
    shots.save(&c, "01-upload-form").await?;
    form.find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;

    // The import's own page: a progress bar that moves without a reload
    // while the rows go through, then the summary.
    wait_css(&c, "#import-progress")
        .await
        .context("the upload should land on the import's page")?;
    let mut seen_running = false;
    let mut values = Vec::new();
    // The import may take a while in a debug build; the page must get
    // there by itself (import.js reloads it when the stream says done).
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let status = loop {
        // The page reloads itself at the end: an element may vanish
        // between two calls, which only means "look again".
        let status = match c.find(Locator::Css("#import")).await {
            Ok(e) => e
                .attr("data-status")
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        if matches!(status.as_str(), "done" | "failed" | "interrupted") {
            break status;
        }
        if status == "running" {
            if let Ok(v) = c
                .execute(
                    "return document.querySelector('#import-progress').value",
                    vec![],
                )
                .await
            {
                values.push(v.as_f64().unwrap_or(0.0));
            }
            if !seen_running && values.iter().any(|v| *v > 0.0) {
                seen_running = true;
                shots.save(&c, "02-import-running").await?;
            }
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the import did not finish in time (status {status}, bar {values:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(status == "done", "the import ended {status}");
    ensure!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "the bar only moves forward: {values:?}"
    );
    let count = |id: &'static str| {
        let c = c.clone();
        async move {
            anyhow::Ok(
                c.find(Locator::Css(&format!("#count-{id}")))
                    .await?
                    .text()
                    .await?,
            )
        }
    };
    ensure!(count("created").await? == "30,001", "created");
    ensure!(count("rejected").await? == "1", "rejected");
    ensure!(count("unchanged").await? == "0", "unchanged");
    let rejected = wait_css(&c, "#rejected tr[data-line='3']")
        .await
        .context("the rejected row is listed by its line")?
        .text()
        .await?;
    ensure!(
        rejected.contains("not an e-mail address") && rejected.contains("no other identifier"),
        "the reason is given: {rejected}"
    );
    shots.save(&c, "03-import-summary").await?;

    // One of the imported customers, from the summary's links.
    c.find(Locator::XPath(
        "//ul[@id='import-customers']//a[contains(., 'Maria Lopez')]",
    ))
    .await
    .context("the summary links the file's customers")?
    .click()
    .await?;
    let timeline = wait_css(&c, "#timeline").await?.text().await?;
    ensure!(
        timeline.contains("Imported from contacts.csv, line 2"),
        "the timeline says where she came from: {timeline}"
    );
    let badges = c
        .find(Locator::Css("#identity-badges"))
        .await?
        .text()
        .await?;
    ensure!(
        badges.contains("Email") && badges.contains("Phone"),
        "badges: {badges}"
    );
    shots.save(&c, "04-imported-customer").await?;

    // Customers → Import lists it, done.
    c.goto(&format!("{base}/customers/import")).await?;
    let row = wait_css(&c, "#imports tbody tr").await?.text().await?;
    ensure!(
        row.contains("contacts.csv") && row.contains("Done") && row.contains("crm-export"),
        "{row}"
    );
    shots.save(&c, "05-imports-list").await?;
    Ok(())
}

/// The user journey itself. Every assertion returns an error rather than
/// panicking, with enough context to tell which step broke.
async fn flow(c: Client, base: String, port: u16, shots: Screenshots) -> anyhow::Result<()> {
    c.set_window_size(1440, 900).await?;

    // --- Sign in -------------------------------------------------------
    c.goto(&format!("{base}/login")).await?;
    let email = wait_css(&c, "input[name=email]").await?;
    shots.save(&c, "01-login").await?;
    email.send_keys(EMAIL).await?;
    c.find(Locator::Css("input[name=password]"))
        .await?
        .send_keys(PASSWORD)
        .await?;
    click(&c, "#login-submit").await?;
    wait_xpath(&c, "//h1[normalize-space()='Overview']")
        .await
        .context("after signing in, the Overview page should appear")?;
    ensure!(
        c.current_url().await?.path() == "/",
        "signing in should land on /"
    );
    // Acme Shop sorts first, so it is the organization a fresh session opens.
    expect_current_org(&c, "Acme Shop").await?;
    shots.save(&c, "02-overview").await?;

    // --- Switch organization ------------------------------------------
    // Choosing an option must be enough: app.js submits the form on change
    // (the "Switch" button is hidden when JS runs, so we never click it).
    c.find(Locator::Css("#org-select"))
        .await?
        .select_by_label("Beta Agency")
        .await?;
    wait_xpath(
        &c,
        "//*[@role='status' and contains(normalize-space(), 'Switched organization.')]",
    )
    .await
    .context("choosing another organization should reload with a notice")?;
    expect_current_org(&c, "Beta Agency").await?;
    shots.save(&c, "03-switched-org").await?;

    // --- Create an API key --------------------------------------------
    c.find(Locator::Css("nav.sidenav a[href='/settings/keys']"))
        .await
        .context("an owner should see the API keys link in the left nav")?
        .click()
        .await?;
    let form = wait_css(&c, "#key-form").await?;
    ensure!(
        c.title().await?.contains("Beta Agency"),
        "the keys page should belong to Beta Agency"
    );
    form.find(Locator::Css("input[name=name]"))
        .await?
        .send_keys("Browser key")
        .await?;
    for (scope, wanted) in [("ingest", true), ("agent", false), ("admin", true)] {
        let checkbox = form
            .find(Locator::Css(&format!("input[name=scope][value={scope}]")))
            .await
            .with_context(|| format!("scope checkbox {scope}"))?;
        if checkbox.is_selected().await? != wanted {
            checkbox.click().await?;
        }
    }
    form.find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    let secret = wait_css(&c, "#key-created code#new-key-secret")
        .await
        .context("creating a key should show its secret once")?
        .text()
        .await?
        .trim()
        .to_string();
    ensure!(
        secret.starts_with("bos_") && secret.len() == 44,
        "the secret should look like bos_ + 40 characters, got {} characters",
        secret.len()
    );
    let row = c
        .find(Locator::Css("#keys tr[data-key-name='Browser key']"))
        .await
        .context("the new key should be listed")?;
    let row_text = row.text().await?;
    ensure!(
        row_text.contains("ingest") && row_text.contains("admin") && !row_text.contains("agent"),
        "the listed scopes should be exactly ingest and admin: {row_text:?}"
    );
    shots.save(&c, "04-key-created").await?;

    // --- The secret works against the real API ------------------------
    let (status, body) = http_get(port, "/api/v1/me", Some(&secret)).await?;
    ensure!(
        status == 200,
        "GET /api/v1/me with the new key: {status} {body}"
    );
    let me: serde_json::Value = serde_json::from_str(&body).context("/me should be JSON")?;
    ensure!(
        me["organization"]["name"] == "Beta Agency" && me["key"]["name"] == "Browser key",
        "the key should act for Beta Agency: {me}"
    );

    // --- The secret is never shown again ------------------------------
    // Navigate instead of refresh: a refresh would re-POST the create form.
    c.goto(&format!("{base}/settings/keys")).await?;
    wait_css(&c, "#keys tr[data-key-name='Browser key']").await?;
    ensure!(
        c.find_all(Locator::Css("#new-key-secret"))
            .await?
            .is_empty()
            && !c.source().await?.contains(&secret),
        "the secret must not appear again after reloading the keys page"
    );

    // --- Revoke through the confirmation dialog -----------------------
    c.find(Locator::Css(
        "#keys tr[data-key-name='Browser key'] form[data-confirm] button[type=submit]",
    ))
    .await
    .context("an active key should have a Revoke button")?
    .click()
    .await?;
    let question = poll(|| async {
        match c.get_alert_text().await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.is_no_such_alert() => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await
    .context("revoking should ask for confirmation")?;
    ensure!(
        question.contains("Revoke Browser key?"),
        "unexpected confirmation text: {question:?}"
    );
    c.accept_alert().await?;
    wait_xpath(
        &c,
        "//*[@role='status' and contains(normalize-space(), 'API key revoked')]",
    )
    .await
    .context("accepting the dialog should revoke and say so")?;
    let row = wait_css(&c, "#keys tr[data-key-name='Browser key']").await?;
    let class = row.attr("class").await?.unwrap_or_default();
    let row_text = row.text().await?;
    ensure!(
        class.split_whitespace().any(|c| c == "revoked") && row_text.contains("revoked"),
        "the row should be marked revoked (class {class:?}, text {row_text:?})"
    );
    ensure!(
        row.find_all(Locator::Css("button")).await?.is_empty(),
        "a revoked key should have no Revoke button left"
    );
    shots.save(&c, "05-key-revoked").await?;

    let (status, body) = http_get(port, "/api/v1/me", Some(&secret)).await?;
    ensure!(
        status == 401,
        "a revoked key must be refused: {status} {body}"
    );

    // --- Sign out -------------------------------------------------------
    click(&c, "#logout").await?;
    wait_css(&c, "#login-submit")
        .await
        .context("signing out should show the login page")?;
    ensure!(c.current_url().await?.path() == "/login");
    wait_xpath(
        &c,
        "//*[@role='status' and normalize-space()='You are signed out.']",
    )
    .await
    .context("the login page should confirm the sign-out")?;
    shots.save(&c, "06-logged-out").await?;
    c.goto(&format!("{base}/")).await?;
    wait_css(&c, "#login-submit")
        .await
        .context("after signing out, / should send us to the login page")?;
    let url = c.current_url().await?;
    ensure!(url.path() == "/login", "expected /login, got {url}");
    Ok(())
}

/// Checks the organization the page is about, in the three places it shows:
/// the tab title, the top-bar selector (as rendered by the server, not just
/// the live DOM state) and the Overview's organization panel.
async fn expect_current_org(c: &Client, name: &str) -> anyhow::Result<()> {
    let title = c.title().await?;
    ensure!(title.contains(name), "title {title:?} should name {name}");
    let selected = c
        .find(Locator::Css("#org-select option[selected]"))
        .await
        .context("the server should mark the current organization as selected")?
        .text()
        .await?;
    ensure!(
        selected.trim() == name,
        "selector shows {selected:?}, expected {name}"
    );
    let live = c
        .execute(
            "return document.querySelector('#org-select').selectedOptions[0].textContent",
            vec![],
        )
        .await?;
    ensure!(
        live == name,
        "selector's live value is {live}, expected {name}"
    );
    c.find(Locator::XPath(&format!(
        "//dl[contains(@class,'kv')]/dd[normalize-space()='{name}']"
    )))
    .await
    .with_context(|| format!("the Overview should show {name} as the organization"))?;
    Ok(())
}

/// Signs the owner in at 1440×900 and waits for the Overview.
async fn sign_in(c: &Client, base: &str) -> anyhow::Result<()> {
    c.set_window_size(1440, 900).await?;
    c.goto(&format!("{base}/login")).await?;
    wait_css(c, "input[name=email]")
        .await?
        .send_keys(EMAIL)
        .await?;
    c.find(Locator::Css("input[name=password]"))
        .await?
        .send_keys(PASSWORD)
        .await?;
    click(c, "#login-submit").await?;
    wait_xpath(c, "//h1[normalize-space()='Overview']").await?;
    Ok(())
}

/// Waits for a flow, then ends the WebDriver session whatever happened (a
/// failed assertion *or* a panic), so chromedriver quits Chromium instead
/// of leaving it orphaned; then reports the flow's outcome.
async fn finish(
    client: Client,
    flow: tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let outcome = flow.await;
    let closed = client.close().await;
    match outcome {
        Ok(result) => result?,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
    closed.context("closing the WebDriver session")?;
    Ok(())
}

/// Clicks the element `css` finds (it is on the page already).
async fn click(c: &Client, css: &str) -> anyhow::Result<()> {
    c.find(Locator::Css(css)).await?.click().await?;
    Ok(())
}

/// Clicks `css`, then waits for `then` (the page or part it brings).
async fn click_and_wait(c: &Client, css: &str, then: &str) -> anyhow::Result<()> {
    click(c, css).await?;
    wait_css(c, then).await?;
    Ok(())
}

async fn wait_css(c: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("waiting for {css}"))
}

async fn wait_xpath(c: &Client, xpath: &str) -> anyhow::Result<fantoccini::elements::Element> {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(xpath))
        .await
        .with_context(|| format!("waiting for {xpath}"))
}

/// Retries `probe` every 50 ms until it yields a value, for at most [`WAIT`].
async fn poll<T, F, Fut>(mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let period = Duration::from_millis(50);
    let tries = WAIT.as_millis() / period.as_millis();
    for _ in 0..tries {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        tokio::time::sleep(period).await;
    }
    bail!("gave up after {WAIT:?}")
}

/// Seeds two organizations and their owner, then serves BOS on a free port.
/// Returns the database (keep it alive: dropping it deletes it), the base
/// URL and the port.
async fn start_server() -> anyhow::Result<(bos_store::testing::TestDb, String, u16)> {
    let (db, base, port, _state) = start_server_with_state().await?;
    Ok((db, base, port))
}

/// [`start_server`], also returning the server's state: a test that records
/// through the engine's services uses its bus, so live pages hear of it.
async fn start_server_with_state(
) -> anyhow::Result<(bos_store::testing::TestDb, String, u16, bos_web::AppState)> {
    let db = bos_store::testing::TestDb::new().await?;
    let store = db.store.clone();
    let now = bos_web::SystemClock.now_ms();
    let acme = store
        .create_org(
            &bos_core::OrgName::parse("Acme Shop")?,
            &bos_core::Slug::parse("acme")?,
            now,
        )
        .await?;
    let beta = store
        .create_org(
            &bos_core::OrgName::parse("Beta Agency")?,
            &bos_core::Slug::parse("beta")?,
            now,
        )
        .await?;
    let hash = bos_web::hash_password(PASSWORD).map_err(|e| anyhow!(e))?;
    let user = store
        .create_user(
            &bos_core::Email::parse(EMAIL)?,
            "Olivia Owner",
            &hash,
            false,
            now,
        )
        .await?;
    store
        .upsert_membership(acme.id, user.id, bos_core::Role::Owner, now)
        .await?;
    store
        .upsert_membership(beta.id, user.id, bos_core::Role::Admin, now)
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let state = bos_web::AppState::new(
        store,
        std::sync::Arc::new(bos_web::SystemClock),
        bos_web::WebConfig {
            public_url: base.clone(),
            // Secure `__Host-` cookies work on http://127.0.0.1: browsers
            // treat loopback as a secure context, so this is what production
            // behaviour looks like.
            secure_cookies: true,
            ..Default::default()
        },
    );
    // The intake pipeline's worker and the job runner (timers, nudges), as
    // `bos serve` runs them.
    let _worker = state.pipeline.start();
    let runner = state
        .nudger
        .handlers(
            state
                .pipeline
                .handlers(state.scheduler.runner(bos_engine::RunnerConfig::default())),
        )
        .start()
        .await?;
    tokio::spawn(async move {
        let _runner = runner;
        std::future::pending::<()>().await
    });
    let serving = state.clone();
    tokio::spawn(async move { axum::serve(listener, bos_web::app(serving)).await });
    Ok((db, base, port, state))
}

/// A chromedriver child process and Chromium's throwaway profile; both are
/// cleaned up on drop, so a failing test leaves nothing running behind.
struct Chromedriver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Chromedriver {
    /// Starts chromedriver, waits for it and opens a session. Keep the
    /// driver for as long as the client: dropping it stops chromedriver.
    async fn session(log_dir: &Path) -> anyhow::Result<(Chromedriver, Client)> {
        let mut driver = Chromedriver::start(log_dir)?;
        driver.wait_ready().await?;
        let client = driver.connect().await?;
        Ok((driver, client))
    }

    fn start(log_dir: &Path) -> anyhow::Result<Chromedriver> {
        let exe =
            std::env::var("BOS_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        // Bind-and-release to learn a free port; chromedriver takes it next.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let profile = std::env::temp_dir().join(format!("bos-browser-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile)?;
        let child = Command::new(&exe)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                log_dir.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {exe} (is chromedriver installed?)"))?;
        Ok(Chromedriver {
            child,
            port,
            profile,
        })
    }

    /// Polls `/status` until chromedriver reports ready, a bounded number
    /// of times, failing at once if the process has already exited.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..100 {
            if let Some(exit) = self.child.try_wait()? {
                bail!("chromedriver exited early ({exit}); see chromedriver.log");
            }
            if let Ok((200, body)) = http_get(self.port, "/status", None).await {
                let status: serde_json::Value = serde_json::from_str(&body)?;
                if status["value"]["ready"] == true {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("chromedriver on port {} never became ready", self.port)
    }

    async fn connect(&self) -> anyhow::Result<Client> {
        let chromium = std::env::var("BOS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = serde_json::json!({
            "browserName": "chrome",
            // Leave dialogs open until the test handles them explicitly,
            // instead of chromedriver silently dismissing them.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    // We run as root in CI containers.
                    "--no-sandbox",
                    "--disable-gpu",
                    // No internet: keep Chromium from phoning home and stalling.
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1440,900",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .context("starting a Chromium session through chromedriver")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where screenshots go: `<workspace>/target/browser-screenshots/NN-name.png`.
struct Screenshots {
    dir: PathBuf,
}

impl Screenshots {
    fn new(suite: &str) -> anyhow::Result<Screenshots> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/browser-screenshots")
            .join(suite);
        std::fs::create_dir_all(&dir)?;
        // A failed run must not leave a previous run's later steps lying
        // around, looking as if they had passed.
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "png") {
                std::fs::remove_file(path)?;
            }
        }
        Ok(Screenshots { dir })
    }

    async fn save(&self, c: &Client, name: &str) -> anyhow::Result<()> {
        let png = c.screenshot().await?;
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// A minimal HTTP/1.1 GET on 127.0.0.1, enough for chromedriver's `/status`
/// and BOS's JSON API (both answer with a Content-Length body), so the suite
/// needs no HTTP client dependency beyond what fantoccini brings. It reads
/// exactly Content-Length bytes rather than to end of stream, because
/// chromedriver keeps the connection open despite `Connection: close`.
async fn http_get(port: u16, path: &str, bearer: Option<&str>) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nConnection: close\r\n"
        );
        if let Some(token) = bearer {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_string();
                let length = content_length(&head)
                    .ok_or_else(|| anyhow!("no Content-Length in response to GET {path}"))?;
                if raw.len() >= end + 4 + length {
                    let body = String::from_utf8(raw[end + 4..end + 4 + length].to_vec())?;
                    return anyhow::Ok((head, body));
                }
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed mid-response to GET {path}");
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    let (head, body) = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .with_context(|| format!("GET {path} timed out"))??;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status line in response to GET {path}"))?;
    Ok((status, body))
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}
