//! The Command Center in real Chromium (issue 21), on the demo's agents
//! (a chat agent, an SMS SDR, a voice receptionist, with two weeks of
//! history): the cards show each status in context (a live call's clock
//! counting, `error: API timeout`) beside the metrics strip; a heartbeat
//! posted through the API with the agent's key shows on its card without
//! a reload; pausing from the card's ⋯ menu makes the agent's next API
//! write 409, and resuming lets it write again. Screenshots at 1440×900:
//! `command-center/01-cards.png` and on.

use super::*;
use bos::demo_agents::DemoAgent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "browser suite: needs chromium + chromedriver; run with --ignored"]
async fn command_center_follows_heartbeats_and_pauses_an_agent() -> anyhow::Result<()> {
    let shots = Screenshots::new("command-center")?;
    let (db, base, port, _state) = start_server_with_state().await?;
    let acme = db.store.org_by_slug("acme").await?.context("acme exists")?;
    let now = bos_web::SystemClock.now_ms();
    let agents = bos::demo_agents::seed(&db.store, acme.id, 14, now).await?;
    let (_driver, client) = Chromedriver::session(&shots.dir).await?;
    let flow = tokio::spawn(cockpit_flow(client.clone(), base, port, agents, shots));
    finish(client, flow).await
}

fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}\r\n")
}

async fn beat(port: u16, a: &DemoAgent, body: serde_json::Value) -> anyhow::Result<()> {
    let status = http_post(
        port,
        &format!("/api/v1/agents/{}/heartbeat", a.id),
        &bearer(&a.key),
        &body.to_string(),
    )
    .await?;
    ensure!(status == 200, "heartbeat of {} answered {status}", a.name);
    Ok(())
}

async fn write(port: u16, a: &DemoAgent) -> anyhow::Result<u16> {
    let now = bos_web::SystemClock.now_ms();
    http_post(
        port,
        &format!("/api/v1/agents/{}/interactions", a.id),
        &bearer(&a.key),
        &serde_json::json!({"outcome": "success", "started_at": bos_web::api::rfc3339(now - 1000)})
            .to_string(),
    )
    .await
}

/// A card's text. The stream replaces cards as agents report, so an element
/// found a moment ago may be gone: read again until a read holds.
async fn card_text(c: &Client, id: uuid::Uuid) -> anyhow::Result<String> {
    poll(|| {
        let c = c.clone();
        async move {
            let read = async {
                let el = c.find(Locator::Css(&format!("#agent-{id}"))).await?;
                anyhow::Ok(el.text().await?)
            };
            Ok(read.await.ok())
        }
    })
    .await
    .with_context(|| format!("reading the card of {id}"))
}

/// Clicks `css` inside a card, finding it again if the stream replaced the
/// card between the find and the click.
async fn click_card(c: &Client, css: &str) -> anyhow::Result<()> {
    poll(|| {
        let c = c.clone();
        let css = css.to_string();
        async move {
            let done = async {
                c.find(Locator::Css(&css)).await?.click().await?;
                anyhow::Ok(())
            };
            Ok(done.await.ok())
        }
    })
    .await
    .with_context(|| format!("clicking {css}"))
}

async fn cockpit_flow(
    c: Client,
    base: String,
    port: u16,
    agents: Vec<DemoAgent>,
    shots: Screenshots,
) -> anyhow::Result<()> {
    let by = |kind: &str| {
        agents
            .iter()
            .find(|a| a.kind == kind)
            .cloned()
            .context("a demo agent")
    };
    let (ava, rex, nova) = (by("chat")?, by("sdr")?, by("voice")?);
    let now = bos_web::SystemClock.now_ms();
    beat(
        port,
        &ava,
        serde_json::json!({"status": "working", "activity": "Reading new messages"}),
    )
    .await?;
    beat(
        port,
        &rex,
        serde_json::json!({"status": "error", "error": "API timeout"}),
    )
    .await?;
    beat(
        port,
        &nova,
        serde_json::json!({"status": "talking", "call_started_at": bos_web::api::rfc3339(now - 95_000)}),
    )
    .await?;

    sign_in(&c, &base).await?;
    click_and_wait(&c, "a[href='/command-center']", "#agent-strip").await?;
    wait_css(&c, "#live-status.on").await?;
    let strip = wait_css(&c, "#agent-strip").await?.text().await?;
    for metric in [
        "SUCCESS RATE",
        "AVG FIRST RESPONSE",
        "COST PER INTERACTION",
        "CSAT",
    ] {
        ensure!(
            strip.to_uppercase().contains(metric),
            "strip lacks {metric}: {strip}"
        );
    }
    ensure!(
        strip.contains('▲') || strip.contains('▼') || strip.contains('–'),
        "trend arrows: {strip}"
    );
    ensure!(card_text(&c, ava.id)
        .await?
        .contains("Reading new messages"));
    ensure!(card_text(&c, rex.id).await?.contains("error: API timeout"));
    let talking = card_text(&c, nova.id).await?;
    ensure!(talking.contains("talking · "), "a live call: {talking}");
    let clock = |c: Client, id: uuid::Uuid| async move {
        poll(|| {
            let c = c.clone();
            async move {
                let read = async {
                    let el = c
                        .find(Locator::Css(&format!("#agent-{id} .ac-clock")))
                        .await?;
                    anyhow::Ok(el.text().await?)
                };
                Ok(read.await.ok())
            }
        })
        .await
    };
    let first = clock(c.clone(), nova.id).await?;
    ensure!(
        first.len() >= 4 && first.contains(':'),
        "the call's clock reads m:ss: {first}"
    );
    // The clock counts on its own, between heartbeats.
    poll(|| {
        let (c, first) = (c.clone(), first.clone());
        let id = nova.id;
        async move { Ok((clock(c, id).await? != first).then_some(())) }
    })
    .await
    .context("the call's clock should move")?;
    shots.save(&c, "01-cards").await?;

    // A heartbeat shows on the card without a reload.
    c.execute("window.__stayed = true;", vec![]).await?;
    let sent = std::time::Instant::now();
    beat(
        port,
        &ava,
        serde_json::json!({"status": "working", "activity": "Looking up order #4410 for Rosa"}),
    )
    .await?;
    poll(|| {
        let c = c.clone();
        let id = ava.id;
        async move {
            Ok(card_text(&c, id)
                .await?
                .contains("order #4410")
                .then_some(()))
        }
    })
    .await
    .context("the heartbeat should reach the card live")?;
    let took = sent.elapsed();
    let stayed = c
        .execute("return window.__stayed === true;", vec![])
        .await?;
    ensure!(stayed == serde_json::Value::Bool(true), "the page reloaded");
    println!("heartbeat to card: {took:?}");
    shots.save(&c, "02-heartbeat-live").await?;

    // Pause from the card's menu: its next write is 409.
    click_card(&c, &format!("#agent-{} .ac-more > summary", ava.id)).await?;
    wait_css(&c, &format!("#agent-{} .ac-pause", ava.id)).await?;
    shots.save(&c, "03-menu").await?;
    click_card(&c, &format!("#agent-{} .ac-pause", ava.id)).await?;
    wait_css(&c, &format!("#agent-{}.agent-paused", ava.id)).await?;
    ensure!(card_text(&c, ava.id).await?.contains("paused"));
    let status = write(port, &ava).await?;
    ensure!(status == 409, "a paused agent's write answered {status}");
    shots.save(&c, "04-paused").await?;
    // Resume: it writes again.
    click_card(&c, &format!("#agent-{} .ac-more > summary", ava.id)).await?;
    wait_css(&c, &format!("#agent-{} .ac-resume", ava.id)).await?;
    click_card(&c, &format!("#agent-{} .ac-resume", ava.id)).await?;
    wait_css(&c, &format!("#agent-{}:not(.agent-paused)", ava.id)).await?;
    let status = write(port, &ava).await?;
    ensure!(status == 201, "a resumed agent's write answered {status}");

    // Its details, and Settings → Agents.
    click_card(&c, &format!("#agent-{} .ac-name", ava.id)).await?;
    wait_css(&c, "#agent-interactions").await?;
    shots.save(&c, "05-details").await?;
    c.goto(&format!("{base}/settings/agents")).await?;
    wait_css(&c, "#agents").await?;
    shots.save(&c, "06-settings-agents").await?;
    Ok(())
}
