//! Settings → Intake's rules form and a form source's snippet in real
//! Chromium: the owner removes a rule and adds one in place (the small
//! script, no page load), saves, and finds the new rule stored and shown;
//! then copies a form source's HTML snippet, once through the clipboard API
//! and once through the fallback that selects the text. Screenshots of
//! Settings → Intake at 1440×900 before and after.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "browser suite: needs chromium + chromedriver; run with --ignored"]
async fn owner_edits_intent_rules_in_the_form_and_copies_a_form_snippet() -> anyhow::Result<()> {
    let shots = Screenshots::new("rules-editor")?;
    let (db, base, _port) = start_server().await?;
    let acme = db.store.org_by_slug("acme").await?.context("acme exists")?;
    let (form, _) = bos_engine::sources::create(
        &db.store,
        acme.id,
        "form",
        "Landing page",
        None,
        None,
        bos_web::SystemClock.now_ms(),
    )
    .await
    .map_err(|e| anyhow!("creating the form source: {e:?}"))?;
    let (_driver, client) = Chromedriver::session(&shots.dir).await?;
    let flow = tokio::spawn(rules_flow(
        client.clone(),
        base,
        db.store.clone(),
        acme.id,
        form.id,
        shots,
    ));
    finish(client, flow).await
}

async fn rules_flow(
    c: Client,
    base: String,
    store: bos_store::Store,
    org: uuid::Uuid,
    form: uuid::Uuid,
    shots: Screenshots,
) -> anyhow::Result<()> {
    sign_in(&c, &base).await?;
    c.goto(&format!("{base}/settings/intake")).await?;
    wait_css(&c, "#rules-form").await?;
    shots.save(&c, "01-intake-rules-1440x900").await?;
    let before = store.pipeline_settings(org).await?.intent;
    let url = c.current_url().await?;

    // Remove the first rule and add one, in place.
    click(&c, "#intent-rules tbody tr:first-child .rule-remove").await?;
    click(&c, "#add-rule").await?;
    ensure!(c.current_url().await? == url, "no page load");
    let row = wait_css(&c, "#intent-rules tbody tr:last-child").await?;
    let name = row
        .find(Locator::Css(".rule-name input[type=text]"))
        .await?;
    name.send_keys("Came from Google").await?;
    row.find(Locator::Css("select"))
        .await?
        .select_by_value("utm_source")
        .await?;
    let equals = row.find(Locator::Css(".cond-equals")).await?;
    ensure!(
        !equals.is_displayed().await?,
        "the form-field value box is hidden for a UTM source"
    );
    row.find(Locator::Css(".cond-value"))
        .await?
        .send_keys("google")
        .await?;
    let points = row.find(Locator::Css("input[type=number]")).await?;
    points.clear().await?;
    points.send_keys("25").await?;
    shots.save(&c, "02-rule-added").await?;
    click(&c, "#save-rules").await?;
    wait_xpath(&c, "//*[contains(., 'Intent rules saved')]").await?;

    // Stored: the first rule gone, the new one last; shown in the form.
    let saved = store.pipeline_settings(org).await?.intent;
    ensure!(
        saved.rules.len() == before.rules.len()
            && saved.rules[..saved.rules.len() - 1] == before.rules[1..],
        "the other rules are kept as they were"
    );
    let added = saved.rules.last().context("a rule")?;
    ensure!(
        added.id == "came-from-google" && added.points == 25,
        "the new rule: {added:?}"
    );
    let table = wait_css(&c, "#intent-rules").await?.text().await?;
    ensure!(
        table.contains("UTM source is “google”"),
        "the new rule in words: {table}"
    );
    shots.save(&c, "03-rule-saved-1440x900").await?;

    // The form source's snippet, copied through the clipboard API…
    c.goto(&format!("{base}/settings/sources/{form}")).await?;
    let code = wait_css(&c, "#snippet-code").await?.text().await?;
    ensure!(
        code.starts_with("<form action=\"") && code.contains("/f/fk_"),
        "a form posting to the source: {code}"
    );
    c.execute(
        "Object.defineProperty(navigator, 'clipboard', {configurable: true, value: {writeText: async (t) => { window.__copied = t; }}});",
        vec![],
    )
    .await?;
    click(&c, "#copy-snippet").await?;
    let copied = poll(|| async {
        let v = c.execute("return window.__copied || null;", vec![]).await?;
        Ok(v.as_str().map(str::to_string))
    })
    .await
    .context("the snippet should reach the clipboard")?;
    ensure!(copied == code.trim(), "copied: {copied}");
    ensure!(
        wait_css(&c, "#copy-snippet").await?.text().await? == "Copied",
        "the button says so"
    );
    shots.save(&c, "04-snippet-copied").await?;

    // …and without it: the text is selected for Ctrl+C.
    c.goto(&format!("{base}/settings/sources/{form}")).await?;
    wait_css(&c, "#snippet-code").await?;
    c.execute(
        "Object.defineProperty(navigator, 'clipboard', {configurable: true, value: undefined});",
        vec![],
    )
    .await?;
    click(&c, "#copy-snippet").await?;
    let selected = poll(|| async {
        let v = c
            .execute("return String(window.getSelection());", vec![])
            .await?;
        Ok(v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
    })
    .await
    .context("the fallback selects the snippet")?;
    ensure!(selected.trim() == code.trim(), "selected: {selected}");
    Ok(())
}
