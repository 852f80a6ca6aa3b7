//! Settings → Intake's rules form and a form source's snippet, over HTTP,
//! as a browser without JavaScript posts them: the untouched form saves the
//! rules unchanged (compound rules included), a rule added in the form is
//! stored and shown, bad input comes back next to its field with what was
//! typed kept (422, never 500), "Add rule" and "Remove" work as plain posts;
//! a form source shows a ready-to-paste HTML form that, filled in as a
//! visitor would, is accepted and names the customer; and the wording of
//! the source, customer and customer-list pages.

use crate::support::*;
use bos_core::intent::{Condition, IntentRules};
use bos_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// An attribute of one tag's text.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    Some(unescape(&tag[i..i + tag[i..].find('"')?]))
}

/// What a browser posts for the form with this id: its inputs' names and
/// values and each select's selected option, skipping the `<template>` a
/// script clones rows from, and no submit button (the caller adds `op`).
fn form_fields(html: &str, id: &str) -> Vec<(String, String)> {
    let start = html.find(&format!("id=\"{id}\"")).expect("the form");
    let form = &html[start..start + html[start..].find("</form>").unwrap()];
    let form = match (form.find("<template"), form.find("</template>")) {
        (Some(a), Some(b)) => format!("{}{}", &form[..a], &form[b..]),
        _ => form.to_string(),
    };
    let mut out = Vec::new();
    let mut rest = form.as_str();
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        let end = rest.find('>').unwrap();
        let tag = &rest[..=end];
        if tag.starts_with("<input") {
            if let Some(name) = attr(tag, "name") {
                out.push((name, attr(tag, "value").unwrap_or_default()));
            }
        } else if tag.starts_with("<select") {
            let name = attr(tag, "name").unwrap();
            let body = &rest[..rest.find("</select>").unwrap()];
            let chosen = body
                .split("<option")
                .skip(1)
                .find(|o| o.contains(" selected"))
                .or_else(|| body.split("<option").nth(1))
                .and_then(|o| attr(o, "value"))
                .unwrap_or_default();
            out.push((name, chosen));
        }
        rest = &rest[end + 1..];
    }
    out
}

fn set(fields: &mut [(String, String)], name: &str, value: &str) {
    let f = fields
        .iter_mut()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no field {name}"));
    f.1 = value.to_string();
}

async fn post_fields(
    app: &TestApp,
    t: &Tenant,
    fields: &[(String, String)],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "_csrf")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    form.extend_from_slice(extra);
    app.post_signed("/settings/intake", &t.browser, &form).await
}

async fn page(app: &TestApp, t: &Tenant, path: &str) -> String {
    let res = app.get(path, &t.browser.cookie).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

#[tokio::test]
async fn the_rules_form_saves_rows_keeps_compound_rules_and_shows_errors_in_place() {
    let app = spawn_app().await;
    let t = app
        .tenant_with("Form Rules", "admin@form-rules.example", Role::Admin)
        .await;
    let html = page(&app, &t, "/settings/intake").await;
    assert!(html.contains("id=\"rules-form\"") && html.contains("Advanced: JSON"));
    assert!(
        html.contains("compound — edit in the JSON view"),
        "the default rules that group conditions are read-only"
    );
    assert!(
        html.contains("<details id=\"rules-json\">"),
        "closed at first"
    );
    let fields = form_fields(&html, "rules-form");
    let defaults = IntentRules::default();
    assert_eq!(
        fields.iter().filter(|(k, _)| k.ends_with("_kind")).count(),
        defaults.rules.len()
    );

    // The untouched form saves the rules exactly as they were.
    let res = post_fields(&app, &t, &fields, &[("op", "save")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let saved = app.store().pipeline_settings(t.org.id).await.unwrap();
    assert_eq!(saved.intent, defaults);

    // "Add rule" without JavaScript: the form comes back with a blank row,
    // nothing saved yet.
    let res = post_fields(&app, &t, &fields, &[("op", "add")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"rules-unsaved\""));
    let mut fields = form_fields(&html, "rules-form");
    let n = defaults.rules.len();
    assert!(fields.iter().any(|(k, _)| *k == format!("r{n}_kind")));
    // Filled in: a new plain rule, and the thresholds moved.
    set(&mut fields, &format!("r{n}_name"), "Came from Google");
    set(&mut fields, &format!("r{n}_kind"), "utm_source");
    set(&mut fields, &format!("r{n}_value"), "google");
    set(&mut fields, &format!("r{n}_points"), "25");
    set(&mut fields, "high_value", "75");

    // Points out of range: 422, the core's message next to the row, and
    // everything typed kept; nothing stored.
    let mut bad = fields.clone();
    set(&mut bad, &format!("r{n}_points"), "500");
    let res = post_fields(&app, &t, &bad, &[("op", "save")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"rules-form-error\""));
    assert!(html.contains("class=\"field-error\"") && html.contains("-100 to 100"));
    assert!(html.contains("value=\"500\"") && html.contains("value=\"Came from Google\""));
    assert!(html.contains("aria-invalid=\"true\""));
    assert_eq!(
        app.store()
            .pipeline_settings(t.org.id)
            .await
            .unwrap()
            .intent,
        defaults
    );
    // Words where a number belongs, an empty value, an unknown kind, bad
    // thresholds, a tampered group: each in words, never a 500.
    for (field, value, words) in [
        (
            format!("r{n}_points"),
            "lots",
            "Points must be a whole number",
        ),
        (format!("r{n}_value"), " ", "Fill in the UTM source."),
        (
            format!("r{n}_kind"),
            "all",
            "Choose what the rule looks at.",
        ),
        ("engaged".to_string(), "90", "thresholds must go down"),
        (
            "window_shopper".to_string(),
            "-1",
            "whole number from 0 to 100",
        ),
        ("r0_group".to_string(), "{", "could not be read"),
        ("r2_name".to_string(), "", "has no name"),
    ] {
        let mut bad = fields.clone();
        set(&mut bad, &field, value);
        let res = post_fields(&app, &t, &bad, &[("op", "save")]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let html = res.text().await.unwrap();
        assert!(html.contains(words), "{field}: {words}");
        assert!(html.contains("Came from Google"), "{field}: input kept");
    }

    // Saved: the new rule gets an id from its name; the compound rules are
    // kept exactly.
    let res = post_fields(&app, &t, &fields, &[("op", "save")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let saved = app
        .store()
        .pipeline_settings(t.org.id)
        .await
        .unwrap()
        .intent;
    assert_eq!(saved.rules.len(), n + 1);
    assert_eq!(saved.rules[..n], defaults.rules[..]);
    let added = &saved.rules[n];
    assert_eq!(
        (added.id.as_str(), added.name.as_str(), added.points),
        ("came-from-google", "Came from Google", 25)
    );
    assert_eq!(
        added.when,
        Condition::UtmSource {
            is: "google".into()
        }
    );
    assert_eq!(saved.thresholds.high_value, 75);
    let html = page(&app, &t, "/settings/intake?done=intent").await;
    assert!(html.contains("value=\"Came from Google\"") && html.contains("UTM source is “google”"));
    assert!(html.contains("high value ≥ 75"));

    // "Remove" without JavaScript drops the row from the form; Save stores it.
    let fields = form_fields(&html, "rules-form");
    let res = post_fields(&app, &t, &fields, &[("op", "remove-0")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(!html.contains("value=\"order-placed\""));
    let res = post_fields(&app, &t, &form_fields(&html, "rules-form"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let saved = app
        .store()
        .pipeline_settings(t.org.id)
        .await
        .unwrap()
        .intent;
    assert!(saved.rules.iter().all(|r| r.id != "order-placed"));
    assert_eq!(saved.rules.len(), n);

    // The JSON view still saves, and its error opens it with the text kept.
    let res = app
        .post_signed(
            "/settings/intake",
            &t.browser,
            &[("rules_json", "{\"rules\": 3}")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("<details id=\"rules-json\" open>") && html.contains("id=\"rules-error\"")
    );

    // Another tenant's rules are untouched.
    let other = app.tenant("Other Form Rules").await;
    assert_eq!(
        app.store()
            .pipeline_settings(other.org.id)
            .await
            .unwrap()
            .intent,
        defaults
    );
}

/// The snippet on a page, as the text a person copies.
fn snippet_of(html: &str) -> Option<String> {
    let start = html.find("id=\"snippet-code\">")? + "id=\"snippet-code\">".len();
    Some(unescape(
        &html[start..start + html[start..].find("</pre>")?],
    ))
}

#[tokio::test]
async fn a_form_source_shows_a_snippet_that_posts_as_pasted() {
    let app = spawn_app().await;
    let t = app
        .tenant_with("Snippet Shop", "admin@snippet.example", Role::Admin)
        .await;
    let res = app
        .post_signed(
            "/settings/sources",
            &t.browser,
            &[("kind", "form"), ("name", "Landing"), ("secret", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("Shopify signs with the app secret"),
        "a form source is not signed by Shopify"
    );
    let created = snippet_of(&html).expect("the snippet right after creating");
    let src = app.store().sources(t.org.id).await.unwrap()[0].clone();
    let html = page(&app, &t, &format!("/settings/sources/{}", src.id)).await;
    assert!(html.contains("id=\"copy-snippet\"") && html.contains("data-copy=\"#snippet-code\""));
    let snippet = snippet_of(&html).expect("the snippet on the source's page");
    assert_eq!(snippet, created);
    // It posts to the source's real public URL.
    let endpoint = attr(&snippet, "action").unwrap();
    assert!(snippet.starts_with("<form action=") && snippet.contains("method=\"post\""));
    assert!(
        endpoint.starts_with("http")
            && endpoint.ends_with(&format!("/f/{}", src.secret.clone().unwrap())),
        "{snippet}"
    );

    // Pasted into a page and filled in: every named field as the browser
    // sends it, the honeypot empty.
    let names: Vec<String> = snippet
        .split("name=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect();
    for want in ["first_name", "email", "phone", "_hp"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let value = |n: &str| match n {
        "first_name" => "Ada",
        "last_name" => "Lovelace",
        "email" => "ada@snippet.example",
        "message" => "Call me",
        _ => "",
    };
    let form: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value(n))).collect();
    let res = app
        .http
        .post(&endpoint)
        .header("referer", "https://landing.example/")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    app.state.pipeline.drain().await.unwrap();
    let d = app
        .store()
        .deliveries(t.org.id, Some(src.id), None, 10)
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, "processed");
    let profile = app
        .store()
        .profile(t.org.id, d[0].profile_id.unwrap())
        .await
        .unwrap();
    assert_eq!(profile.primary_email, "ada@snippet.example");

    // Not on other kinds; a Shopify source still says how it signs.
    let res = app
        .post_signed(
            "/settings/sources",
            &t.browser,
            &[("kind", "shopify"), ("name", "Shop"), ("secret", "shpss_x")],
        )
        .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("Shopify signs with the app secret") && snippet_of(&html).is_none());
    let shop = app
        .store()
        .sources(t.org.id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "Shop")
        .unwrap();
    let html = page(&app, &t, &format!("/settings/sources/{}", shop.id)).await;
    assert!(!html.contains("id=\"form-snippet\""));
    // The tile counts one source as one.
    let list = page(&app, &t, "/settings/sources").await;
    assert!(list.contains("across 2 sources"));
}

#[tokio::test]
async fn customer_pages_count_in_words_and_explain_merges_truly() {
    let app = spawn_app().await;
    let t = app.tenant("Words Shop").await;
    let identify = |body: Value| {
        let (app, key) = (&app, &t.key);
        async move {
            let res = app.send_json(Method::POST, "/identify", key, &body).await;
            assert_eq!(res.status(), StatusCode::OK);
            let v: Value = res.json().await.unwrap();
            v["profile_id"].as_str().unwrap().to_string()
        }
    };
    let ann = identify(
        json!({"identifiers": {"email": "ann@words.example"}, "traits": {"first_name": "Ann"},
        "event": {"type": "purchase", "id": "o-1", "summary": "Order #1", "revenue_cents": 1000}}),
    )
    .await;
    let html = page(&app, &t, &format!("/customers/{ann}")).await;
    assert!(
        html.contains("1 order<") && !html.contains("1 orders"),
        "one order"
    );
    assert!(html.contains("id=\"never-merged\""));
    let list = page(&app, &t, "/customers").await;
    assert!(list.contains("1 customer<") && !list.contains("1 customers"));

    // Merged by hand: said in plain words; undone: no "never merged" above
    // the history.
    let bo = identify(
        json!({"identifiers": {"email": "bo@words.example"}, "traits": {"first_name": "Bo"}}),
    )
    .await;
    let res = app
        .post_signed(
            &format!("/customers/{ann}/merge"),
            &t.browser,
            &[("other_id", &bo)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = page(&app, &t, &format!("/customers/{ann}")).await;
    assert!(
        html.contains("Merged with Bo by hand"),
        "timeline says it plainly"
    );
    assert!(!html.contains("chosen by a person") && !html.contains("same manual"));
    let list = page(&app, &t, "/customers").await;
    assert!(list.contains("1 customer<"));
    let merge = html
        .split("action=\"/merges/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let res = app
        .post_signed(&format!("/merges/{merge}/undo"), &t.browser, &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = page(&app, &t, &format!("/customers/{ann}")).await;
    assert!(html.contains("Merge history") && html.contains("id=\"no-live-merges\""));
    assert!(!html.contains("never merged"), "there is a merge history");
    let list = page(&app, &t, "/customers").await;
    assert!(list.contains("2 customers<"));
}
