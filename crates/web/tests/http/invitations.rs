//! Membership by invitation: adding a member never reads out or changes an
//! existing account — another tenant's admin learns nothing about an
//! address and cannot pull its account in; the answer is the same for
//! known and unknown addresses; the person joins only by accepting the
//! link (signed in to the invited account, or as a new account); used,
//! withdrawn and expired links fail; invitations stay in their tenant.

use crate::support::*;
use bos_core::{Email, Role};
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ANN_NAME: &str = "Ann Canary-Q7";

/// Tenant A with Ann, whose account and name tenant B must never see.
async fn ann_in_a(app: &TestApp) -> (bos_store::Org, bos_store::User) {
    let a = app.org("Alpha Shop").await;
    let hash = bos_web::hash_password(PASSWORD).unwrap();
    let ann = app
        .store()
        .create_user(
            &Email::parse("ann@alpha.example").unwrap(),
            ANN_NAME,
            &hash,
            false,
            T0,
        )
        .await
        .unwrap();
    app.store()
        .upsert_membership(a.id, ann.id, Role::Owner, T0)
        .await
        .unwrap();
    (a, ann)
}

async fn invite(app: &TestApp, key: &str, email: &str, role: &str) -> (StatusCode, Value) {
    let res = app
        .send_json(
            Method::POST,
            "/members",
            key,
            &json!({"email": email, "role": role}),
        )
        .await;
    let status = res.status();
    (status, res.json().await.unwrap())
}

/// The token at the end of an accept link, and the page's path.
fn link_path(v: &Value) -> String {
    let url = v["accept_url"].as_str().unwrap();
    let i = url.find("/invitations/").unwrap();
    url[i..].to_string()
}

/// The keys of a JSON value, recursively, with the types of the leaves.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
    }
}

#[tokio::test]
async fn another_tenants_admin_learns_nothing_and_adds_no_one() {
    let app = spawn_app().await;
    let (_a, ann) = ann_in_a(&app).await;
    let b = app.org("Beta Shop").await;
    let key_b = app.key(&b, "admin").await;

    let (known_status, known) = invite(&app, &key_b, "ann@alpha.example", "admin").await;
    let (unknown_status, unknown) = invite(&app, &key_b, "nobody@nowhere.example", "admin").await;
    // Same status and same shape, whatever the address.
    assert_eq!(known_status, StatusCode::CREATED);
    assert_eq!(unknown_status, known_status);
    assert_eq!(shape(&known), shape(&unknown));
    assert_eq!(known["invitation"]["state"], "pending");
    assert_eq!(unknown["invitation"]["state"], "pending");
    // Nothing of Ann's account is in the answer.
    let text = known.to_string();
    assert!(!text.contains(&ann.id.to_string()), "{text}");
    assert!(!text.contains(ANN_NAME), "{text}");
    assert!(known.get("one_time_password").is_none());
    assert!(unknown.get("one_time_password").is_none());
    // And she is not in B: not by the API, the store or the UI.
    assert_eq!(app.store().membership(b.id, ann.id).await.unwrap(), None);
    let members: Value = app.read(Method::GET, "/members", &key_b).await;
    assert_eq!(members.as_array().unwrap().len(), 0, "{members}");
    // No account was made for the unknown address either.
    assert!(app
        .store()
        .user_by_email(&Email::parse("nobody@nowhere.example").unwrap())
        .await
        .unwrap()
        .is_none());
    // The UI answers both the same way too (a 200 page with a link).
    app.user("owner@beta.example", &b, Role::Owner).await;
    let owner_b = app.login("owner@beta.example").await;
    for email in ["ann@alpha.example", "nobody2@nowhere.example"] {
        let res = app
            .post_signed(
                "/settings/members",
                &owner_b,
                &[("email", email), ("role", "member")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{email}");
        let html = res.text().await.unwrap();
        assert!(html.contains("id=\"invite-link\""), "{html}");
        assert!(!html.contains(ANN_NAME));
    }
    assert_eq!(app.store().membership(b.id, ann.id).await.unwrap(), None);
}

#[tokio::test]
async fn an_existing_account_joins_by_signing_in_and_accepting() {
    let app = spawn_app().await;
    let (a, ann) = ann_in_a(&app).await;
    let b = app.org("Beta Shop").await;
    let key_b = app.key(&b, "admin").await;
    let (_, v) = invite(&app, &key_b, "Ann@Alpha.example", "admin").await;
    let path = link_path(&v);

    // Not signed in: the page offers to sign in (and to make an account).
    let res = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Join Beta Shop"), "{html}");
    assert!(html.contains(&format!("/login?next={path}")));
    // Signed in as Ann: one button.
    let ann_b = app.login("ann@alpha.example").await;
    let res = app.get(&path, &ann_b.cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"accept-form\""), "{html}");
    let csrf = csrf_in(&html);
    // A forged post (no CSRF token) does nothing.
    let res = app
        .post_form(&path, &ann_b.cookie, &[("action", "accept")])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.store().membership(b.id, ann.id).await.unwrap(), None);
    let res = app
        .post_form(
            &path,
            &ann_b.cookie,
            &[("_csrf", &csrf), ("action", "accept")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/?done=joined");
    assert_eq!(
        app.store().membership(b.id, ann.id).await.unwrap(),
        Some(Role::Admin)
    );
    // Her place in A is untouched, and her session now shows B.
    assert_eq!(
        app.store().membership(a.id, ann.id).await.unwrap(),
        Some(Role::Owner)
    );
    let home = app.get("/", &ann_b.cookie).await.text().await.unwrap();
    assert!(home.contains("Beta Shop"));
    // The link works once.
    let res = app
        .post_form(
            &path,
            &ann_b.cookie,
            &[("_csrf", &csrf), ("action", "accept")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::GONE);
    assert!(res.text().await.unwrap().contains("used already"));
    let res = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::GONE);
}

#[tokio::test]
async fn another_account_cannot_accept_someone_elses_invitation() {
    let app = spawn_app().await;
    let (_a, ann) = ann_in_a(&app).await;
    let b = app.org("Beta Shop").await;
    let mallory = app.user("mallory@beta.example", &b, Role::Member).await;
    let c = app.org("Gamma Shop").await;
    let key_c = app.key(&c, "admin").await;
    let (_, v) = invite(&app, &key_c, "ann@alpha.example", "admin").await;
    let path = link_path(&v);
    let m = app.login("mallory@beta.example").await;
    let res = app.get(&path, &m.cookie).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"other-account\""), "{html}");
    let res = app.post_signed(&path, &m, &[("action", "accept")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.store().membership(c.id, mallory.id).await.unwrap(),
        None
    );
    assert_eq!(app.store().membership(c.id, ann.id).await.unwrap(), None);
    // Still pending for Ann.
    let list: Value = app.read(Method::GET, "/invitations", &key_c).await;
    assert_eq!(list[0]["state"], "pending");
}

/// Opens the page without a session: (pre-session cookie, its CSRF token).
async fn open_fresh(app: &TestApp, path: &str) -> (StatusCode, String, String) {
    let res = app.http.get(app.url(path)).send().await.unwrap();
    let status = res.status();
    let pre = set_cookie_value(&res, "__Host-bos_pre").unwrap_or_default();
    let html = res.text().await.unwrap();
    let csrf = if html.contains("id=\"create-form\"") {
        let i = html.find("id=\"create-form\"").unwrap();
        csrf_in(&html[i..])
    } else {
        String::new()
    };
    (status, pre, csrf)
}

async fn create_account(
    app: &TestApp,
    path: &str,
    name: &str,
    password: &str,
) -> reqwest::Response {
    let (_, pre, csrf) = open_fresh(app, path).await;
    app.http
        .post(app.url(path))
        .header(COOKIE, format!("__Host-bos_pre={pre}"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("action", "create"),
            ("name", name),
            ("password", password),
            ("confirm", password),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_person_sets_a_name_and_password_and_joins() {
    let app = spawn_app().await;
    let b = app.org("Beta Shop").await;
    let key_b = app.key(&b, "admin").await;
    let (_, v) = invite(&app, &key_b, "newbie@example.com", "member").await;
    let path = link_path(&v);
    // Bad input: clear sentences, nothing made.
    let res = create_account(&app, &path, "Newbie", "short").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("at least 10 characters"));
    let res = create_account(&app, &path, &"n".repeat(101), "a long password").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("at most 100 characters"));
    // Without the double-submit cookie: refused.
    let (_, _, csrf) = open_fresh(&app, &path).await;
    let res = app
        .http
        .post(app.url(&path))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("action", "create"),
            ("name", "Newbie"),
            ("password", "a long password"),
            ("confirm", "a long password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let email = Email::parse("newbie@example.com").unwrap();
    assert!(app.store().user_by_email(&email).await.unwrap().is_none());

    let res = create_account(&app, &path, "  Nia Newbie ", "a long password").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/?done=joined");
    let cookie = set_cookie_value(&res, "__Host-bos_session").unwrap();
    assert!(app.signed_in(&cookie).await);
    let user = app.store().user_by_email(&email).await.unwrap().unwrap();
    assert_eq!(user.display_name, "Nia Newbie");
    assert!(!user.must_change_password);
    assert_eq!(
        app.store().membership(b.id, user.id).await.unwrap(),
        Some(Role::Member)
    );
    // Their own password signs them in.
    let res = app
        .post_login("newbie@example.com", "a long password", None)
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // The link is used: a second account cannot be made with it.
    let res = create_account(&app, &path, "Other", "another long password").await;
    assert_eq!(res.status(), StatusCode::GONE);
}

#[tokio::test]
async fn a_new_account_is_not_made_over_an_existing_one() {
    let app = spawn_app().await;
    let (_a, ann) = ann_in_a(&app).await;
    let b = app.org("Beta Shop").await;
    let key_b = app.key(&b, "admin").await;
    let (_, v) = invite(&app, &key_b, "ann@alpha.example", "member").await;
    let path = link_path(&v);
    let res = create_account(&app, &path, "Not Ann", "a long password").await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("sign in"));
    let still = app.store().user(ann.id).await.unwrap();
    assert_eq!(still.display_name, ANN_NAME);
    assert_eq!(still.password_hash, ann.password_hash);
    assert_eq!(app.store().membership(b.id, ann.id).await.unwrap(), None);
}

#[tokio::test]
async fn expired_revoked_and_unknown_links_fail() {
    let app = spawn_app().await;
    let b = app.org("Beta Shop").await;
    let key_b = app.key(&b, "admin").await;
    // Unknown and malformed tokens: 404.
    for p in [
        "/invitations/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/invitations/short",
    ] {
        let res = app.http.get(app.url(p)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{p}");
    }
    // Withdrawn.
    let (_, v) = invite(&app, &key_b, "wendy@example.com", "member").await;
    let id = v["invitation"]["id"].as_str().unwrap().to_string();
    let withdrawn = link_path(&v);
    let res = app
        .call(Method::DELETE, &format!("/invitations/{id}"), &key_b)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .call(Method::DELETE, &format!("/invitations/{id}"), &key_b)
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let (status, _, _) = open_fresh(&app, &withdrawn).await;
    assert_eq!(status, StatusCode::GONE);
    let res = create_account(&app, &withdrawn, "Wendy", "a long password").await;
    assert_eq!(res.status(), StatusCode::GONE);
    assert!(res.text().await.unwrap().contains("withdrawn"));
    // Inviting the same address again replaces the older link.
    let (_, first) = invite(&app, &key_b, "twice@example.com", "member").await;
    let (_, second) = invite(&app, &key_b, "twice@example.com", "member").await;
    assert_eq!(
        open_fresh(&app, &link_path(&first)).await.0,
        StatusCode::GONE
    );
    assert_eq!(
        open_fresh(&app, &link_path(&second)).await.0,
        StatusCode::OK
    );
    // Expired: a week later.
    let (_, v) = invite(&app, &key_b, "late@example.com", "member").await;
    let late = link_path(&v);
    app.clock.advance_ms(bos_core::INVITATION_TTL_MS);
    let (status, _, _) = open_fresh(&app, &late).await;
    assert_eq!(status, StatusCode::GONE);
    let res = create_account(&app, &late, "Late", "a long password").await;
    assert_eq!(res.status(), StatusCode::GONE);
    assert!(res.text().await.unwrap().contains("expired"));
    let email = Email::parse("late@example.com").unwrap();
    assert!(app.store().user_by_email(&email).await.unwrap().is_none());
    let list: Value = app.read(Method::GET, "/invitations", &key_b).await;
    let late_row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "late@example.com")
        .unwrap();
    assert_eq!(late_row["state"], "expired");
    assert!(!list.to_string().contains("wendy@example.com"));
}

#[tokio::test]
async fn invitations_stay_in_their_tenant() {
    let app = spawn_app().await;
    let a = app.org("Alpha Shop").await;
    let key_a = app.key(&a, "admin").await;
    let b = app.org("Beta Shop").await;
    let key_b = app.key(&b, "admin").await;
    let (_, v) = invite(&app, &key_a, "canary-invitee@alpha.example", "member").await;
    let id = v["invitation"]["id"].as_str().unwrap().to_string();
    // B cannot see or withdraw A's invitation.
    let list_b = app
        .call(Method::GET, "/invitations", &key_b)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(list_b, "[]");
    let res = app
        .call(Method::DELETE, &format!("/invitations/{id}"), &key_b)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    app.user("owner@beta.example", &b, Role::Owner).await;
    let owner_b = app.login("owner@beta.example").await;
    let res = app
        .post_signed(
            &format!("/settings/members/invitations/{id}/revoke"),
            &owner_b,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let page = app
        .get("/settings/members", &owner_b.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("canary-invitee"));
    // A's is intact and listed on A's page with a withdraw button.
    let list_a: Value = app.read(Method::GET, "/invitations", &key_a).await;
    assert_eq!(list_a[0]["state"], "pending");
    app.user("owner@alpha.example", &a, Role::Owner).await;
    let owner_a = app.login("owner@alpha.example").await;
    let page = app
        .get("/settings/members", &owner_a.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("canary-invitee@alpha.example"));
    assert!(page.contains(&format!("/settings/members/invitations/{id}/revoke")));
    // A member (not admin) of A cannot invite or list invitations.
    let ingest = app.key(&a, "ingest").await;
    let res = app.call(Method::GET, "/invitations", &ingest).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .post_signed(
            &format!("/settings/members/invitations/{id}/revoke"),
            &owner_a,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(list_a.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_link_is_also_emailed_where_the_organization_sends_email() {
    let smtp = bos_channels::fake::FakeSmtp::start().await;
    let app = spawn_with(|c| c.allow_private_outbound = true).await;
    let b = app.org("Beta Shop").await;
    let key_b = app.key(&b, "admin").await;
    // The development sink: nothing is sent, the answer says so.
    let (_, v) = invite(&app, &key_b, "first@example.com", "member").await;
    assert_eq!(v["emailed"], false);
    app.store()
        .put_channel_config(
            b.id,
            bos_core::nudge::Channel::Email,
            &bos_store::nudge::ChannelConfig::Smtp {
                host: "127.0.0.1".into(),
                port: smtp.port(),
                tls: "none".into(),
                username: None,
                password: None,
                from: "Beta Shop <team@beta.example>".into(),
                mailgun_signing_key: None,
                postmark_password: None,
            },
            T0,
        )
        .await
        .unwrap();
    let (_, known_a) = ann_in_a(&app).await;
    let (_, v) = invite(&app, &key_b, "ann@alpha.example", "admin").await;
    assert_eq!(v["emailed"], true);
    let (_, w) = invite(&app, &key_b, "newcomer@example.com", "member").await;
    assert_eq!(w["emailed"], true, "the same answer for an unknown address");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2);
    let to_ann = mails
        .iter()
        .find(|m| m.to.iter().any(|r| r.contains("ann@alpha.example")))
        .expect("a mail to Ann");
    let link = v["accept_url"].as_str().unwrap();
    // Quoted-printable: long lines carry soft breaks.
    let text = to_ann.data.replace("=\r\n", "");
    assert!(text.contains(link), "{}", to_ann.data);
    assert!(to_ann.data.contains("Beta Shop"));
    assert!(!to_ann.data.contains(ANN_NAME), "nothing of her account");
    assert_eq!(
        app.store().membership(b.id, known_a.id).await.unwrap(),
        None
    );
}
