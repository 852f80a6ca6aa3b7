//! God View over HTTP: identify with explanations, search, the profile and
//! its timeline, merge and unmerge, duplicates, export and erase, rules —
//! through the API and through the pages.

use crate::support::*;
use bos_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn identify(app: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    let res = app.send_json(Method::POST, "/identify", key, &body).await;
    let s = res.status();
    (s, res.json().await.unwrap())
}

#[tokio::test]
async fn identify_explains_create_attach_merge_and_rejections() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let key = app.key(&org, "ingest,admin").await;
    let (s, ig) = identify(
        &app,
        &key,
        json!({"identifiers": {"instagram_id": "17841400000001"}, "traits": {"first_name": "John", "last_name": "Doe"},
               "event": {"type": "message_in", "summary": "Is the blue one in stock?", "id": "ig-1", "occurred_at": "2026-05-01T10:00:00Z"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{ig}");
    assert_eq!(ig["action"], "created");
    let (_, shop) = identify(
        &app,
        &key,
        json!({"identifiers": {"shopify_customer_id": "gid://shopify/Customer/42", "email": " John.Doe@Example.com", "phone": "(415) 555-2671"},
               "event": {"type": "purchase", "id": "order-1001", "revenue_cents": 12999}}),
    )
    .await;
    assert_eq!(shop["action"], "created");
    assert_eq!(shop["linked"].as_array().unwrap().len(), 3);
    let (_, m) = identify(
        &app,
        &key,
        json!({"identifiers": {"instagram_id": "17841400000001", "phone": "+1 415 555 2671", "email": "not-an-email"}}),
    )
    .await;
    assert_eq!(m["action"], "merged", "{m}");
    assert_eq!(m["profile_id"], ig["profile_id"]);
    assert_eq!(m["merged"][0]["profile_id"], shop["profile_id"]);
    assert_eq!(m["merged"][0]["via_kind"], "phone");
    assert!(m["explanation"].as_str().unwrap().contains("merged"));
    assert_eq!(m["rejected"][0]["kind"], "email");
    // Replay.
    let (_, r) = identify(&app, &key, json!({"identifiers": {"email": "john.doe@example.com"}, "event": {"type": "purchase", "id": "order-1001", "revenue_cents": 12999}})).await;
    assert_eq!(r["action"], "replayed");
    // Nothing usable: a clear 422.
    let (s, v) = identify(
        &app,
        &key,
        json!({"identifiers": {"phone": "12", "email": "test@test.com"}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let d = v["detail"].as_str().unwrap();
    assert!(d.contains("phone '12'") && d.contains("blocklist"), "{d}");
    let (s, _) = identify(&app, &key, json!({"identifiers": {"fax": "123"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = identify(
        &app,
        &key,
        json!({"identifiers": {"email": "a@b.com"}, "event": {"type": "teleport"}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "event.type");
    // Custom traits: kept when they can be, a clear 422 (and nothing
    // written) when one cannot.
    for (bad, says) in [
        (json!({"address": {"city": "Paris"}}), "lists and objects"),
        (json!({"favourite colour": "red"}), "letters, digits"),
        (json!({"email": "x@y.com"}), "identifiers"),
    ] {
        let (s, v) = identify(
            &app,
            &key,
            json!({"identifiers": {"email": "traits@b.com"}, "traits": {"custom": bad}}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], "traits.custom");
        assert!(v["detail"].as_str().unwrap().contains(says), "{v}");
    }
    let (s, v) = identify(
        &app,
        &key,
        json!({"identifiers": {"email": "traits@b.com"}, "traits": {"custom": {"plan": "gold", "seats": 3}}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["action"], "created", "the refused calls wrote nothing");
    let p: Value = app
        .read(
            Method::GET,
            &format!("/customers/{}", v["profile_id"].as_str().unwrap()),
            &key,
        )
        .await;
    assert_eq!(p["traits"], json!({"plan": "gold", "seats": 3}));

    // The profile: one person, LTV from the Shopify order, old id resolves.
    let pid = m["profile_id"].as_str().unwrap();
    let old = shop["profile_id"].as_str().unwrap();
    let v: Value = app
        .read(Method::GET, &format!("/customers/{old}"), &key)
        .await;
    assert_eq!(v["id"], pid);
    assert_eq!(v["resolved_from"], old);
    assert_eq!(v["lifetime_value_cents"], 12999);
    assert_eq!(v["identities"].as_array().unwrap().len(), 4);
    assert_eq!(v["merges"][0]["via_value"], "+14155552671");
    let tl: Value = app
        .read(
            Method::GET,
            &format!("/customers/{pid}/timeline?kind=purchase,message_in"),
            &key,
        )
        .await;
    assert_eq!(tl["entries"].as_array().unwrap().len(), 2);
    let res = app
        .call(
            Method::GET,
            &format!("/customers/{pid}/timeline?kind=bogus"),
            &key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Unmerge over the API, then both are back.
    let mid = v["merges"][0]["id"].as_str().unwrap();
    let res = app
        .call(Method::POST, &format!("/merges/{mid}/undo"), &key)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let again = app
        .call(Method::POST, &format!("/merges/{mid}/undo"), &key)
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let v: Value = app
        .read(Method::GET, &format!("/customers/{old}"), &key)
        .await;
    assert_eq!(v["id"], old);
    assert_eq!(v["lifetime_value_cents"], 12999);
    let a: Value = app
        .read(Method::GET, &format!("/customers/{pid}"), &key)
        .await;
    assert_eq!(a["lifetime_value_cents"], 0);
    assert_eq!(a["identities"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn list_duplicates_merge_export_erase_and_rules() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let key = app.key(&org, "ingest,admin").await;
    let reader = app.key(&org, "ingest").await;
    for (email, company) in [
        ("ann@a.com", "Acme"),
        ("ann.doe@b.com", "ACME"),
        ("bob@c.com", "Acme"),
    ] {
        let first = if email.starts_with("ann") {
            "Ann"
        } else {
            "Bob"
        };
        identify(&app, &key, json!({"identifiers": {"email": email}, "traits": {"first_name": first, "last_name": "Doe", "company": company}})).await;
    }
    let res = app.call(Method::GET, "/customers", &reader).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "an ingest key cannot read customers"
    );
    let page: Value = app
        .read(Method::GET, "/customers?sort=name&limit=2", &key)
        .await;
    assert_eq!(page["profiles"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .read(
            Method::GET,
            &format!("/customers?sort=name&limit=2&cursor={cursor}"),
            &key,
        )
        .await;
    assert_eq!(rest["profiles"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let res = app
        .api(Method::GET, "/customers?sort=email;drop table users", &key)
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .call(Method::GET, "/customers?cursor=garbage", &key)
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let anns: Value = app.read(Method::GET, "/customers?q=ann", &key).await;
    let ann = anns["profiles"][0]["id"].as_str().unwrap().to_string();
    let dups: Value = app
        .read(Method::GET, &format!("/customers/{ann}/duplicates"), &key)
        .await;
    assert_eq!(
        dups.as_array().unwrap().len(),
        1,
        "same name and company, no shared identifier"
    );
    let other = dups[0]["id"].as_str().unwrap().to_string();
    let res = app
        .send_json(
            Method::POST,
            &format!("/customers/{ann}/merge"),
            &key,
            &json!({"other_profile_id": other}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["reason"], "manual");
    let export: Value = app
        .read(Method::GET, &format!("/customers/{other}/export"), &key)
        .await;
    assert_eq!(export["identities"].as_array().unwrap().len(), 2);
    assert_eq!(export["members"].as_array().unwrap().len(), 2);
    let res = app
        .call(Method::DELETE, &format!("/customers/{ann}"), &key)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .call(Method::GET, &format!("/customers/{other}"), &key)
        .await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "erased with everything merged into it"
    );

    // Rules: tighten e-mail to one per customer and block a front-desk number.
    let mut rules: Value = app.read(Method::GET, "/identity-rules", &key).await;
    for k in rules["kinds"].as_array_mut().unwrap() {
        if k["kind"] == "email" {
            k["max_per_profile"] = json!(1);
        }
    }
    rules["blocklist"]
        .as_array_mut()
        .unwrap()
        .push(json!("phone:(415) 555-0000"));
    let res = app
        .send_json(Method::PUT, "/identity-rules", &key, &rules)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let saved: Value = res.json().await.unwrap();
    assert!(saved["blocklist"]
        .as_array()
        .unwrap()
        .contains(&json!("phone:+14155550000")));
    let (_, v) = identify(
        &app,
        &key,
        json!({"identifiers": {"email": "x@x.com", "phone": "4155550000"}}),
    )
    .await;
    assert_eq!(v["dropped"][0]["kind"], "phone");
    let (_, v2) = identify(
        &app,
        &key,
        json!({"identifiers": {"email": "y@x.com", "phone": "4155550000"}}),
    )
    .await;
    assert_ne!(
        v["profile_id"], v2["profile_id"],
        "a blocklisted number never matches"
    );
    rules["default_region"] = json!("Narnia");
    let res = app
        .send_json(Method::PUT, "/identity-rules", &key, &rules)
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn customer_pages_show_the_journey_and_unmerge() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    app.user("ann@example.com", &org, Role::Owner).await;
    let key = app.key(&org, "ingest,admin").await;
    let (_, a) = identify(&app, &key, json!({"identifiers": {"instagram_id": "555"}, "traits": {"first_name": "Maria", "last_name": "Lopez", "custom": {"favourite_store": "<b>Soho</b>"}}, "event": {"type": "message_in", "summary": "<script>alert(1)</script> hi"}})).await;
    let (_, b) = identify(&app, &key, json!({"identifiers": {"email": "maria@x.com", "phone": "4155550123"}, "event": {"type": "purchase", "summary": "Order #1001", "revenue_cents": 4500}})).await;
    identify(
        &app,
        &key,
        json!({"identifiers": {"instagram_id": "555", "email": "maria@x.com"}}),
    )
    .await;
    let br = app.login("ann@example.com").await;
    let list = app
        .get("/customers?q=mar", &br.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("Maria Lopez") && list.contains("$45.00") && list.contains("idb-instagram")
    );
    let pid = a["profile_id"].as_str().unwrap();
    let page = app
        .get(&format!("/customers/{pid}"), &br.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Why is this one person?"));
    assert!(
        page.contains("same email maria@x.com"),
        "the explanation names the shared identifier"
    );
    assert!(page.contains("Order #1001"), "{page}");
    assert!(
        page.contains("&#60;script&#62;alert(1)"),
        "customer content is escaped"
    );
    assert!(!page.contains("<script>alert"));
    assert!(
        page.contains("favourite_store") && page.contains("&#60;b&#62;Soho"),
        "custom traits are shown, escaped"
    );
    let merge_form = page
        .split("action=\"/merges/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let res = app
        .post_signed(&format!("/merges/{merge_form}/undo"), &br, &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = app
        .get(&format!("/customers/{pid}?done=unmerged"), &br.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Unmerged.") && !page.contains("Order #1001"));
    let other = app
        .get(
            &format!("/customers/{}", b["profile_id"].as_str().unwrap()),
            &br.cookie,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(other.contains("Order #1001") && other.contains("$45.00"));
    // Filters: a kind and a date range that excludes everything.
    let only = app
        .get(&format!("/customers/{pid}?kind=purchase"), &br.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(only.contains("No activity matches these filters"));
    let res = app
        .get(&format!("/customers/{pid}?from=yesterday"), &br.cookie)
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Identity rules page saves.
    let res = app
        .post_signed(
            "/settings/identity",
            &br,
            &[
                ("priority_email", "60"),
                ("max_email", "2"),
                ("blocklist", "email:frontdesk@shop.com"),
                ("default_region", "gb"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let rules = app.store().identity_rules(org.id).await.unwrap();
    assert_eq!(rules.default_region, "GB");
    assert_eq!(
        rules
            .rule(&bos_core::identity::IdentifierKind::Email)
            .max_per_profile,
        2
    );
    let res = app
        .post_signed(
            "/settings/identity",
            &br,
            &[
                ("priority_email", "x"),
                ("max_email", "2"),
                ("default_region", "GB"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn names_and_traits_over_their_caps_are_refused_with_a_sentence() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let key = app.key(&org, "ingest,admin").await;
    let long = "x".repeat(10_000);
    for field in ["first_name", "last_name", "company"] {
        let (s, v) = identify(
            &app,
            &key,
            json!({"identifiers": {"email": "long@example.com"}, "traits": {field: long}}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {v}");
        assert_eq!(v["field"], format!("traits.{field}"));
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("at most 200 characters"),
            "{v}"
        );
    }
    // Traits over 16 KiB together (each within its own limit).
    let mut custom = serde_json::Map::new();
    for i in 0..40 {
        custom.insert(format!("t{i:02}"), json!("v".repeat(490)));
    }
    let (s, v) = identify(
        &app,
        &key,
        json!({"identifiers": {"email": "long@example.com"}, "traits": {"custom": custom}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("16 KiB"), "{v}");
    // Nothing was written; a name at the cap is fine.
    let (s, v) = identify(
        &app,
        &key,
        json!({"identifiers": {"email": "long@example.com"}, "traits": {"first_name": "é".repeat(200)}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["action"], "created");
}

/// The API's first paths, `/profiles/...`, still answer as the
/// `/customers/...` ones do, for integrations written before the rename,
/// and the OpenAPI document lists only the new ones.
#[tokio::test]
async fn old_profiles_paths_still_answer() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let key = app.key(&org, "ingest,admin").await;
    let (s, v) = identify(&app, &key, json!({"identifiers": {"email": "ann@a.com"}})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["profile_id"].as_str().unwrap().to_string();
    for path in [
        "/customers".to_string(),
        format!("/customers/{id}"),
        format!("/customers/{id}/timeline"),
        format!("/customers/{id}/duplicates"),
        format!("/customers/{id}/export"),
        format!("/customers/{id}/nudges"),
    ] {
        let new = app.call(Method::GET, &path, &key).await;
        let old_path = path.replacen("/customers", "/profiles", 1);
        let old = app.call(Method::GET, &old_path, &key).await;
        assert_eq!(old.status(), StatusCode::OK, "GET {old_path}");
        assert_eq!(new.status(), StatusCode::OK, "GET {path}");
        let (new, old): (Value, Value) = (new.json().await.unwrap(), old.json().await.unwrap());
        assert_eq!(old, new, "GET {old_path} answers as GET {path}");
    }
    let other = app.org("Other").await;
    let other_key = app.key(&other, "ingest,admin").await;
    let res = app
        .call(Method::GET, &format!("/profiles/{id}"), &other_key)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "another tenant's id");
    let res = app
        .call(Method::DELETE, &format!("/profiles/{id}"), &key)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let doc = serde_json::to_value(bos_web::api::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/customers/{customer_id}"));
    assert!(!paths.keys().any(|p| p.starts_with("/profiles")));
}
