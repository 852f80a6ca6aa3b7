//! Contacts import over HTTP: upload through the page (multipart,
//! CSRF) and through the API (text/csv), the background run reaching
//! `done` (awaited through the server's own task tracking, never by
//! sleeping), the summary with its counts and rejected lines, the live
//! event stream, idempotent re-uploads and resuming, refused files with
//! their reasons, the recovery of runs a dead server left behind, and
//! tenants kept apart.

use crate::support::*;
use bos_core::Role;
use reqwest::header::COOKIE;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

/// Five data rows: two new people, one row that matches Ann by phone, one
/// row with nothing usable (line 5), one with a bad phone next to a good
/// e-mail (imported, with a warning).
const CONTACTS: &str = "email,phone,first_name,last_name,notes\n\
    ann@example.com,(415) 555-2671,Ann,Lee,vip\n\
    bob@example.com,,Bob,Ray,\n\
    ,+1 415 555 2671,,,same phone as Ann\n\
    not-an-email,12,Nobody,,\n\
    cleo@example.com,12,Cleo,Park,\n";

async fn upload_page(
    app: &TestApp,
    b: &Browser,
    csrf: &str,
    name: &str,
    body: &[u8],
) -> reqwest::Response {
    let form = Form::new()
        .text("_csrf", csrf.to_string())
        .text("source", "crm")
        .part(
            "file",
            Part::bytes(body.to_vec())
                .file_name(name.to_string())
                .mime_str("text/csv")
                .unwrap(),
        );
    app.http
        .post(app.url("/customers/import"))
        .header(COOKIE, format!("__Host-bos_session={}", b.cookie))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn upload_api(
    app: &TestApp,
    key: &str,
    query: &str,
    ct: &str,
    body: &[u8],
) -> reqwest::Response {
    app.api(Method::POST, &format!("/imports{query}"), key)
        .await
        .header("content-type", ct)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn json(app: &TestApp, key: &str, path: &str) -> (StatusCode, Value) {
    let res = app.call(Method::GET, path, key).await;
    let s = res.status();
    (s, res.json().await.unwrap())
}

fn import_id(location: &str) -> Uuid {
    location
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .expect("an import id")
}

#[tokio::test]
async fn upload_page_runs_the_import_and_shows_the_summary() {
    let app = spawn_app().await;
    let (org, b) = app.owner_of("Acme", "owner@acme.example").await;

    let res = app.get("/customers/import", &b.cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("enctype=\"multipart/form-data\"") && html.contains("No imports yet"));
    let csrf = csrf_in(&html);

    let res = upload_page(&app, &b, &csrf, "contacts.csv", CONTACTS.as_bytes()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = location(&res);
    assert!(page.starts_with("/customers/imports/"), "{page}");
    let id = import_id(&page);
    app.state.imports.wait(id).await;

    let html = app.get(&page, &b.cookie).await.text().await.unwrap();
    assert!(html.contains("data-status=\"done\""), "{html}");
    let count = |name: &str| {
        let marker = format!("id=\"count-{name}\">");
        let i = html
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} count"))
            + marker.len();
        html[i..].split('<').next().unwrap().to_string()
    };
    assert_eq!(
        ["created", "matched", "merged", "unchanged", "rejected"].map(count),
        ["3", "1", "0", "0", "1"]
    );
    // The rejected row, by line, with its reason; the bad phone next to a
    // good e-mail is a warning, not a rejection.
    assert!(
        html.contains("<tr data-line=\"5\"><td class=\"num mono\">5</td>"),
        "{html}"
    );
    assert!(html.contains("no other identifier"));
    assert!(html.contains("id=\"warnings\"") && html.contains("is not a phone number"));
    assert!(html.contains("Ignored columns: <span class=\"mono\">notes</span>"));
    // Links to the customers of the file, Ann first (line 2).
    let ann = app
        .store()
        .list_profiles(
            org.id,
            &bos_store::identity::ProfileQuery {
                q: "ann@".into(),
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()[0]
        .clone();
    let links = &html[html
        .find("id=\"import-customers\"")
        .expect("customer links")..];
    assert!(
        links.find(&format!("/customers/{}", ann.id)).unwrap() < links.find("Bob Ray").unwrap()
    );
    assert_eq!(ann.display_name, "Ann Lee");
    // The timeline says where the person came from.
    let profile = app
        .get(&format!("/customers/{}", ann.id), &b.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        profile.contains("Imported from contacts.csv, line 2"),
        "{profile}"
    );

    // The finished import's event stream: one final event, then it ends.
    let res = app.get(&format!("{page}/events"), &b.cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = res.text().await.unwrap();
    let data: Value = serde_json::from_str(
        body.lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("an event"),
    )
    .unwrap();
    assert_eq!(body.matches("event: progress").count(), 1, "{body}");
    assert_eq!(
        (data["status"].as_str(), data["final"].as_bool()),
        (Some("done"), Some(true))
    );
    assert_eq!(
        (
            data["processed"].as_u64(),
            data["total"].as_u64(),
            data["percent"].as_u64()
        ),
        (Some(5), Some(5), Some(100))
    );

    // The list shows it; uploading the same file again changes nothing.
    let html = app
        .get("/customers/import", &b.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("data-import=\"{id}\"")) && html.contains(">crm<"));
    let res = upload_page(&app, &b, &csrf, "contacts.csv", CONTACTS.as_bytes()).await;
    let again = import_id(&location(&res));
    assert_ne!(again, id);
    app.state.imports.wait(again).await;
    let r = app.store().import_record(org.id, again).await.unwrap();
    assert_eq!(
        (
            r.tally.created,
            r.tally.matched,
            r.tally.unchanged,
            r.tally.rejected
        ),
        (0, 0, 4, 1)
    );
    assert_eq!(app.store().count_profiles(org.id).await.unwrap(), 3);
}

#[tokio::test]
async fn live_progress_follows_a_running_import() {
    let app = spawn_app().await;
    let (_, b) = app.owner_of("Acme", "owner@acme.example").await;
    let csrf = csrf_in(
        &app.get("/customers/import", &b.cookie)
            .await
            .text()
            .await
            .unwrap(),
    );
    // Enough rows for several batches (1,000 rows each).
    let mut file = String::from("email,first_name\n");
    for i in 0..2500 {
        file.push_str(&format!("p{i}@example.com,P{i}\n"));
    }
    let res = upload_page(&app, &b, &csrf, "many.csv", file.as_bytes()).await;
    let page = location(&res);
    let id = import_id(&page);
    // Its page while it runs (or already done), then the stream to the end:
    // the events only move forward and the last one says done.
    let html = app.get(&page, &b.cookie).await.text().await.unwrap();
    assert!(
        html.contains("<progress id=\"import-progress\" max=\"2500\""),
        "{html}"
    );
    let body = app
        .get(&format!("{page}/events"), &b.cookie)
        .await
        .text()
        .await
        .unwrap();
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let done: Vec<u64> = events
        .iter()
        .map(|e| e["processed"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert_eq!(events.last().unwrap()["status"], "done");
    assert_eq!(events.last().unwrap()["created"], 2500);
    app.state.imports.wait(id).await;
    let html = app.get(&page, &b.cookie).await.text().await.unwrap();
    // A finished page neither follows the stream nor refreshes itself.
    assert!(!html.contains("data-import-events") && !html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("id=\"count-created\">2,500<"));
}

#[tokio::test]
async fn the_upload_form_checks_csrf_role_and_the_file() {
    let app = spawn_app_with_small_imports().await;
    let org = app.org("Acme").await;
    app.user("owner@acme.example", &org, Role::Owner).await;
    app.user("member@acme.example", &org, Role::Member).await;
    let owner = app.login("owner@acme.example").await;
    let member = app.login("member@acme.example").await;
    let csrf = csrf_in(
        &app.get("/customers/import", &owner.cookie)
            .await
            .text()
            .await
            .unwrap(),
    );

    // No token, a wrong token, another session's token: refused, nothing stored.
    for token in ["", "forged", member.csrf.as_str()] {
        let res = upload_page(&app, &owner, token, "c.csv", CONTACTS.as_bytes()).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "token {token:?}");
    }
    // A token after the file does not count: the file is not read first.
    let form = Form::new()
        .part(
            "file",
            Part::bytes(CONTACTS.as_bytes().to_vec()).file_name("c.csv"),
        )
        .text("_csrf", csrf.clone());
    let res = app
        .http
        .post(app.url("/customers/import"))
        .header(COOKIE, format!("__Host-bos_session={}", owner.cookie))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Members see the imports but cannot start one.
    let html = app
        .get("/customers/import", &member.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("id=\"import-form\"") && html.contains("Only admins and owners"));
    let res = upload_page(&app, &member, &member.csrf, "c.csv", CONTACTS.as_bytes()).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(app
        .store()
        .list_imports(org.id, 10)
        .await
        .unwrap()
        .is_empty());

    // Refused files come back on the form with what to do.
    for (body, status, says) in [
        (
            &b""[..],
            StatusCode::UNPROCESSABLE_ENTITY,
            "The file is empty",
        ),
        (
            b"email,phone\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "no contacts under it",
        ),
        (
            b"name,company\nAnn,Acme\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "No identifier column among the headers (name, company)",
        ),
        (
            b"PK\x03\x04\x14\x00binary",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Excel or Numbers workbook",
        ),
        (
            b"email\n\xe9t\xe9@example.com\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not UTF-8",
        ),
        (
            &[b'x'; 3000][..],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the 1 MiB",
        ),
    ] {
        let res = upload_page(&app, &owner, &csrf, "c.csv", body).await;
        assert_eq!(res.status(), status, "{says}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("id=\"import-error\"") && html.contains(says),
            "{says}: {html}"
        );
        assert!(
            html.contains("id=\"import-form\""),
            "the form is shown again"
        );
    }
    // No file chosen.
    let form = Form::new()
        .text("_csrf", csrf.clone())
        .part("file", Part::bytes(Vec::new()).file_name(""));
    let res = app
        .http
        .post(app.url("/customers/import"))
        .header(COOKIE, format!("__Host-bos_session={}", owner.cookie))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("Choose a CSV file"));
    // A plain form post is not an upload.
    let res = app
        .post_form("/customers/import", &owner.cookie, &[("_csrf", &csrf)])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(app
        .store()
        .list_imports(org.id, 10)
        .await
        .unwrap()
        .is_empty());
    // And no spooled file is left behind.
    let left = std::fs::read_dir(&app.config.import_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        left,
        0,
        "spool files left in {}",
        app.config.import_dir.display()
    );
}

/// An app whose import limit is small enough to exceed in a test.
async fn spawn_app_with_small_imports() -> TestApp {
    spawn_with(|c| c.import_limit_bytes = 2048).await
}

#[tokio::test]
async fn the_api_imports_a_csv_body_and_reports_progress() {
    let app = spawn_app_with_small_imports().await;
    let org = app.org("Acme").await;
    let key = app.key(&org, "admin").await;

    let res = upload_api(
        &app,
        &key,
        "?source=hubspot&file_name=export.csv",
        "text/csv",
        CONTACTS.as_bytes(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let loc = location(&res);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        loc,
        format!("/api/v1/imports/{}", v["id"].as_str().unwrap())
    );
    assert_eq!(
        (v["status"].as_str(), v["total_rows"].as_u64()),
        (Some("queued"), Some(5))
    );
    assert_eq!(v["source"], "hubspot");
    let id = import_id(&loc);
    app.state.imports.wait(id).await;

    let (s, v) = json(&app, &key, &format!("/imports/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "done");
    assert_eq!(v["percent"], 100);
    assert_eq!(v["file_name"], "export.csv");
    let c = &v["counts"];
    assert_eq!(
        [
            &c["processed"],
            &c["created"],
            &c["matched"],
            &c["merged"],
            &c["unchanged"],
            &c["rejected"],
            &c["warnings"]
        ],
        [5, 3, 1, 0, 0, 1, 1]
    );
    assert_eq!(v["rejected_rows"][0]["line"], 5);
    assert!(v["rejected_rows"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not an e-mail address"));
    assert_eq!(v["warnings"][0]["line"], 6);
    assert_eq!(v["ignored_columns"][0], "notes");
    assert_eq!(v["started_by"], "API key \"test\"");
    assert!(v["finished_at"].is_string());

    // Idempotent: the same bytes again leave everything as it was.
    let res = upload_api(
        &app,
        &key,
        "",
        "text/csv; charset=utf-8",
        CONTACTS.as_bytes(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let again = import_id(&location(&res));
    app.state.imports.wait(again).await;
    let (_, v) = json(&app, &key, &format!("/imports/{again}")).await;
    assert_eq!(
        (
            v["counts"]["unchanged"].as_u64(),
            v["counts"]["created"].as_u64()
        ),
        (Some(4), Some(0))
    );
    let (_, list) = json(&app, &key, "/imports").await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![again.to_string(), id.to_string()]);
    assert!(
        list[0]["rejected_rows"].as_array().unwrap().is_empty(),
        "the list leaves row lists out"
    );

    // Problems, as problem+json that says what to do.
    for (ct, body, status, says) in [
        (
            "application/json",
            &b"{}"[..],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: text/csv",
        ),
        ("text/csv", b"", StatusCode::UNPROCESSABLE_ENTITY, "empty"),
        (
            "text/csv",
            b"name\nAnn\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "email/e-mail",
        ),
        (
            "text/csv",
            b"\xff\xfee\x00",
            StatusCode::UNPROCESSABLE_ENTITY,
            "UTF-16",
        ),
        (
            "text/csv",
            &[b'a'; 4096][..],
            StatusCode::PAYLOAD_TOO_LARGE,
            "BOS_IMPORT_LIMIT_MB",
        ),
    ] {
        let res = upload_api(&app, &key, "", ct, body).await;
        assert_eq!(res.status(), status, "{says}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let p: Value = res.json().await.unwrap();
        assert!(p["detail"].as_str().unwrap().contains(says), "{says}: {p}");
    }
    let res = upload_api(
        &app,
        &key,
        "?source=no%20spaces",
        "text/csv",
        CONTACTS.as_bytes(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "source");
    // Only admin keys import.
    let ingest = app.key(&org, "ingest,agent").await;
    assert_eq!(
        upload_api(&app, &ingest, "", "text/csv", CONTACTS.as_bytes())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        json(&app, &ingest, &format!("/imports/{id}")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.store().list_imports(org.id, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_interrupted_import_resumes_on_reupload() {
    let app = spawn_app().await;
    let (org, b) = app.owner_of("Acme", "owner@acme.example").await;
    let key = app.key(&org, "admin").await;

    // A server died while importing this file: two rows were in, and its
    // row still says running.
    let digest = bos_engine::imports::driver::digest_of(CONTACTS.as_bytes()).unwrap();
    let rules = app.store().identity_rules(org.id).await.unwrap();
    let src = bos_store::import::ImportSource {
        source: "import".into(),
        file_name: "contacts.csv".into(),
        file_hash: digest.clone(),
    };
    // Lines 2 and 3, mapped exactly as the import maps them.
    let mut lines = CONTACTS.lines();
    let headers: Vec<&str> = lines.next().unwrap().split(',').collect();
    let map = bos_core::identity::import::HeaderMap::new(&headers).unwrap();
    let first_rows: Vec<bos_store::import::ImportRow> = lines
        .take(2)
        .enumerate()
        .map(|(i, l)| {
            let cells: Vec<&str> = l.split(',').collect();
            let m = map.map_row(i as u64 + 2, &cells, &rules).unwrap();
            bos_store::import::ImportRow {
                line: m.line,
                identifiers: m.identifiers,
                traits: bos_store::identity::Traits {
                    first_name: m.first_name,
                    last_name: m.last_name,
                    company: m.company,
                    custom: Default::default(),
                },
            }
        })
        .collect();
    app.store()
        .import_rows(org.id, &rules, first_rows, &src, T0)
        .await
        .unwrap();
    let dead = app
        .store()
        .create_import(
            org.id,
            &bos_store::import::NewImport {
                file_name: "contacts.csv".into(),
                digest,
                source: "import".into(),
                total_rows: 5,
                ignored_columns: vec![],
                started_by: "owner@acme.example".into(),
                user_id: None,
            },
            T0,
        )
        .await
        .unwrap();
    app.store().start_import(org.id, dead.id, T0).await.unwrap();
    // While it looks alive, a re-upload is refused (two runs would race).
    let res = upload_api(&app, &key, "", "text/csv", CONTACTS.as_bytes()).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // Its page follows it: live with JavaScript (the event stream), and
    // refreshing itself without.
    let html = app
        .get(&format!("/customers/imports/{}", dead.id), &b.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!(
        "data-import-events=\"/customers/imports/{}/events\"",
        dead.id
    )));
    assert!(html.contains("<noscript><meta http-equiv=\"refresh\" content=\"3\"></noscript>"));
    assert!(
        html.contains("/assets/import."),
        "the page loads its script"
    );
    // The sweep (at start-up and every half minute) finds it silent for a minute.
    assert_eq!(app.state.imports.sweep().await.unwrap(), 0);
    app.clock
        .advance_ms(bos_engine::imports::runs::STALE_MS + 1);
    assert_eq!(app.state.imports.sweep().await.unwrap(), 1);
    let html = app
        .get(&format!("/customers/imports/{}", dead.id), &b.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-status=\"interrupted\""));
    assert!(
        html.contains("re-upload the same file to resume — rows already imported are skipped"),
        "{html}"
    );

    // Re-uploading the same file picks up where it stopped.
    let res = upload_api(&app, &key, "", "text/csv", CONTACTS.as_bytes()).await;
    let id = import_id(&location(&res));
    app.state.imports.wait(id).await;
    let r = app.store().import_record(org.id, id).await.unwrap();
    assert_eq!(r.status, bos_store::import::ImportStatus::Done);
    assert_eq!(
        (
            r.tally.unchanged,
            r.tally.created,
            r.tally.matched,
            r.tally.rejected
        ),
        (2, 1, 1, 1)
    );
}

#[tokio::test]
async fn another_tenant_never_sees_an_import() {
    let app = spawn_app().await;
    let a = app.org("Acme").await;
    let b = app.org("Beta").await;
    let a_key = app.key(&a, "admin").await;
    let b_key = app.key(&b, "admin").await;
    app.user("owner@beta.example", &b, Role::Owner).await;
    let bb = app.login("owner@beta.example").await;
    let res = upload_api(
        &app,
        &a_key,
        "?file_name=secret-a.csv",
        "text/csv",
        CONTACTS.as_bytes(),
    )
    .await;
    let id = import_id(&location(&res));
    app.state.imports.wait(id).await;

    assert_eq!(
        json(&app, &b_key, &format!("/imports/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = json(&app, &b_key, "/imports").await;
    assert_eq!(list, serde_json::json!([]));
    for path in [
        format!("/customers/imports/{id}"),
        format!("/customers/imports/{id}/events"),
    ] {
        let res = app.get(&path, &bb.cookie).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!res.text().await.unwrap().contains("secret-a"));
    }
    let html = app
        .get("/customers/import", &bb.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("secret-a") && !html.contains(&id.to_string()));
    // The same file in B is B's own import, with B's own customers.
    let res = upload_api(&app, &b_key, "", "text/csv", CONTACTS.as_bytes()).await;
    let bid = import_id(&location(&res));
    app.state.imports.wait(bid).await;
    let r = app.store().import_record(b.id, bid).await.unwrap();
    assert_eq!((r.tally.created, r.tally.unchanged), (3, 0));
}
