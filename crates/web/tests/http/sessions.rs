//! Sessions, CSRF, login throttling and enumeration.

use crate::support::*;
use bos_core::Role;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;

#[tokio::test]
async fn cookie_attributes_and_token_strength() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    app.user("ann@example.com", &org, Role::Owner).await;
    let res = app.post_login("ann@example.com", PASSWORD, None).await;
    let raw = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("__Host-bos_session="))
        .unwrap();
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(raw.contains(attr), "{raw} lacks {attr}");
    }
    assert!(!raw.contains("Domain="), "__Host- cookies carry no Domain");
    let token = set_cookie_value(&res, "__Host-bos_session").unwrap();
    assert_eq!(token.len(), 43, "32 random bytes, base64url");
}

#[tokio::test]
async fn session_rotates_at_login_and_dies_at_logout() {
    let app = spawn_app().await;
    let (_, first) = app.owner_of("Acme", "ann@example.com").await;
    assert!(app.signed_in(&first.cookie).await);

    // Logging in again from the same browser issues a new id and ends the old one.
    let res = app
        .post_login("ann@example.com", PASSWORD, Some(&first.cookie))
        .await;
    let second = set_cookie_value(&res, "__Host-bos_session").unwrap();
    assert_ne!(second, first.cookie);
    assert!(
        !app.signed_in(&first.cookie).await,
        "old session must be gone after re-login"
    );
    assert!(app.signed_in(&second).await);

    let csrf = app.csrf_of(&second).await;
    let res = app.post_form("/logout", &second, &[("_csrf", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!app.signed_in(&second).await, "logout must end the session");
}

#[tokio::test]
async fn password_change_ends_every_session() {
    let app = spawn_app().await;
    let (_, laptop) = app.owner_of("Acme", "ann@example.com").await;
    let phone = app.login("ann@example.com").await;
    let new_pw = "a much better password";
    let res = app
        .post_signed(
            "/account/password",
            &laptop,
            &[("current", PASSWORD), ("new", new_pw), ("confirm", new_pw)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let fresh =
        set_cookie_value(&res, "__Host-bos_session").expect("a new session for this browser");
    assert!(
        !app.signed_in(&phone.cookie).await,
        "other sessions end at password change"
    );
    assert!(
        !app.signed_in(&laptop.cookie).await,
        "this session's old id ends too"
    );
    assert!(app.signed_in(&fresh).await);
    assert_eq!(
        app.post_login("ann@example.com", PASSWORD, None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_login("ann@example.com", new_pw, None)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn idle_and_absolute_timeouts() {
    let app = spawn_app().await;
    let (_, b) = app.owner_of("Acme", "ann@example.com").await;
    app.clock.advance_ms(app.config.session_idle_ms - 120_000);
    assert!(
        app.signed_in(&b.cookie).await,
        "activity inside the idle window keeps it alive"
    );
    app.clock.advance_ms(app.config.session_idle_ms - 60_000);
    assert!(app.signed_in(&b.cookie).await);
    app.clock.advance_ms(app.config.session_idle_ms + 1);
    assert!(!app.signed_in(&b.cookie).await, "idle timeout");

    let b = app.login("ann@example.com").await;
    let step = app.config.session_idle_ms / 2;
    let mut elapsed = 0;
    while elapsed + step < app.config.session_absolute_ms {
        app.clock.advance_ms(step);
        elapsed += step;
        assert!(app.signed_in(&b.cookie).await);
    }
    app.clock.advance_ms(step);
    assert!(!app.signed_in(&b.cookie).await, "absolute timeout");
}

#[tokio::test]
async fn forged_csrf_posts_are_403() {
    let app = spawn_app().await;
    let (org, b) = app.owner_of("Acme", "ann@example.com").await;
    let before = app.store().api_keys(org.id).await.unwrap().len();
    // No token, a wrong token, another session's token.
    let other = app.login("ann@example.com").await;
    for token in ["", "forged", other.csrf.as_str()] {
        let res = app
            .post_form(
                "/settings/keys",
                &b.cookie,
                &[("_csrf", token), ("name", "x"), ("scope", "ingest")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "token {token:?}");
    }
    // The right token from a cross-site page.
    for (h, v) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "null"),
    ] {
        let res = app
            .http
            .post(app.url("/settings/keys"))
            .header(COOKIE, format!("__Host-bos_session={}", b.cookie))
            .header(h, v)
            .form(&[
                ("_csrf", b.csrf.as_str()),
                ("name", "x"),
                ("scope", "ingest"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{h}: {v}");
    }
    assert_eq!(
        app.store().api_keys(org.id).await.unwrap().len(),
        before,
        "no row written"
    );
    // Same-origin with the token works.
    let res = app
        .http
        .post(app.url("/settings/keys"))
        .header(COOKIE, format!("__Host-bos_session={}", b.cookie))
        .header("origin", &app.base)
        .form(&[
            ("_csrf", b.csrf.as_str()),
            ("name", "x"),
            ("scope", "ingest"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.store().api_keys(org.id).await.unwrap().len(),
        before + 1
    );
    // Login CSRF: a login post without the double-submit cookie.
    let (_, csrf) = app.login_form().await;
    let res = app
        .http
        .post(app.url("/login"))
        .form(&[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("_csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_state_changing_ui_route_checks_csrf() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let u = app.user("ann@example.com", &org, Role::Owner).await;
    let b = app.login("ann@example.com").await;
    for r in bos_web::ui::routes()
        .iter()
        .filter(|r| r.method == reqwest::Method::POST && !r.public)
    {
        let path = r
            .path
            .replace("{user_id}", &u.id.to_string())
            .replace("{key_id}", &u.id.to_string())
            .replace("{customer_id}", &u.id.to_string())
            .replace("{merge_id}", &u.id.to_string())
            .replace("{source_id}", &u.id.to_string())
            .replace("{delivery_id}", &u.id.to_string())
            .replace("{campaign_id}", &u.id.to_string())
            .replace("{enrollment_id}", &u.id.to_string())
            .replace("{invitation_id}", &u.id.to_string())
            .replace("{conversation_id}", &u.id.to_string())
            .replace("{agent_id}", &u.id.to_string());
        let res = app.post_form(&path, &b.cookie, &[("role", "member")]).await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "POST {path} without a CSRF token"
        );
    }
    assert!(
        app.signed_in(&b.cookie).await,
        "nothing changed, not even logout"
    );
}

async fn attempt_statuses(app: &TestApp, email: &str) -> Vec<(StatusCode, String)> {
    let mut out = Vec::new();
    for _ in 0..11 {
        let res = app.post_login(email, "wrong password!", None).await;
        let status = res.status();
        let body = res.text().await.unwrap();
        let msg = body
            .split("id=\"login-error\">")
            .nth(1)
            .unwrap_or("")
            .split('<')
            .next()
            .unwrap_or("")
            .to_string();
        out.push((status, msg));
    }
    out
}

#[tokio::test]
async fn eleven_wrong_passwords_throttle_the_account_and_unknown_users_look_the_same() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    app.user("ann@example.com", &org, Role::Owner).await;
    let known = attempt_statuses(&app, "ann@example.com").await;
    let unknown = attempt_statuses(&app, "nobody@example.com").await;
    assert_eq!(
        known, unknown,
        "known and unknown accounts get the same answers"
    );
    assert!(known[..10]
        .iter()
        .all(|(s, m)| *s == StatusCode::UNAUTHORIZED && m == "Email or password is incorrect."));
    assert_eq!(known[10].0, StatusCode::TOO_MANY_REQUESTS);
    assert!(known[10].1.starts_with("Too many failed sign-in attempts"));
    // Throttled even with the right password, from any IP: it is per account.
    assert_eq!(
        app.post_login("ann@example.com", PASSWORD, None)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another account is unaffected.
    app.user("bob@example.com", &org, Role::Member).await;
    assert_eq!(
        app.post_login("bob@example.com", PASSWORD, None)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // The lock lifts after its time.
    app.clock.advance_ms(16 * 60 * 1000);
    assert_eq!(
        app.post_login("ann@example.com", PASSWORD, None)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn operator_set_password_must_be_replaced_first() {
    // `bos user create` may give a one-time password; the member must
    // replace it before anything else (invitations never make one).
    let app = spawn_app().await;
    let (org, b) = app.owner_of("Acme", "ann@example.com").await;
    let otp = "one-time-password-16";
    let hash = bos_web::hash_password(otp).unwrap();
    let u = app
        .store()
        .create_user(
            &bos_core::Email::parse("new.person@example.com").unwrap(),
            "New Person",
            &hash,
            true,
            T0,
        )
        .await
        .unwrap();
    app.store()
        .upsert_membership(org.id, u.id, Role::Admin, T0)
        .await
        .unwrap();
    let m = app.store().members(org.id).await.unwrap();
    let added = m
        .iter()
        .find(|m| m.email == "new.person@example.com")
        .unwrap();
    assert!(added.must_change_password);
    // Signing in with it leads to the account page, and nowhere else, until changed.
    let res = app.post_login("new.person@example.com", otp, None).await;
    assert_eq!(location(&res), "/account");
    let cookie = set_cookie_value(&res, "__Host-bos_session").unwrap();
    let res = app.get("/settings/members", &cookie).await;
    assert_eq!(location(&res), "/account");
    let csrf = app.csrf_of(&cookie).await;
    let res = app
        .post_form(
            "/account/password",
            &cookie,
            &[
                ("_csrf", &csrf),
                ("current", otp),
                ("new", "my own password"),
                ("confirm", "my own password"),
            ],
        )
        .await;
    let fresh = set_cookie_value(&res, "__Host-bos_session").unwrap();
    assert_eq!(
        app.get("/settings/members", &fresh).await.status(),
        StatusCode::OK
    );
    // Inviting a member again is a clear conflict, not a 500.
    let res = app
        .post_signed(
            "/settings/members",
            &b,
            &[("email", "new.person@example.com"), ("role", "member")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("already a member"));
}

#[tokio::test]
async fn members_cannot_administer_and_switch_is_limited_to_own_orgs() {
    let app = spawn_app().await;
    let a = app.org("Acme").await;
    let other = app.org("Other").await;
    app.user("mem@example.com", &a, Role::Member).await;
    let b = app.login("mem@example.com").await;
    assert_eq!(
        app.get("/settings/keys", &b.cookie).await.status(),
        StatusCode::FORBIDDEN
    );
    let res = app
        .post_signed("/settings/keys", &b, &[("name", "x"), ("scope", "admin")])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .post_signed("/orgs/switch", &b, &[("org_id", &other.id.to_string())])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .post_signed("/orgs/switch", &b, &[("org_id", "not-a-uuid")])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn switching_organization() {
    let app = spawn_app().await;
    let a = app.org("Acme").await;
    let z = app.org("Zeta").await;
    let u = app.user("ann@example.com", &a, Role::Owner).await;
    app.store()
        .upsert_membership(z.id, u.id, Role::Member, T0)
        .await
        .unwrap();
    let b = app.login("ann@example.com").await;
    let home = app.get("/", &b.cookie).await.text().await.unwrap();
    assert!(home.contains("<h2>Organization</h2>") && home.contains("<dd>Acme</dd>"));
    let res = app
        .post_signed("/orgs/switch", &b, &[("org_id", &z.id.to_string())])
        .await;
    assert_eq!(location(&res), "/?done=switched");
    let home = app
        .get("/?done=switched", &b.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(home.contains("<dd>Zeta</dd>") && home.contains("Switched organization."));
    // As a member of Zeta, the keys page is not for them.
    assert_eq!(
        app.get("/settings/keys", &b.cookie).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn wrong_current_passwords_on_the_account_page_are_throttled() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    let ann = app.user("ann@example.com", &org, Role::Owner).await;
    let b = app.login("ann@example.com").await;
    let change = |current: &'static str| {
        let app = &app;
        let b = b.clone();
        async move {
            app.post_signed(
                "/account/password",
                &b,
                &[
                    ("current", current),
                    ("new", "a brand new password"),
                    ("confirm", "a brand new password"),
                ],
            )
            .await
        }
    };
    for _ in 0..10 {
        let res = change("a wrong guess!").await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    // The eleventh try is refused unchecked, even with the right password.
    let res = change(PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Too many wrong passwords"));
    assert_eq!(
        app.store().user(ann.id).await.unwrap().password_hash,
        ann.password_hash
    );
    // The same account's sign-in is locked too: one budget for both doors.
    assert_eq!(
        app.post_login("ann@example.com", PASSWORD, None)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The lock lifts after its time.
    app.clock.advance_ms(16 * 60 * 1000);
    let b = app.login("ann@example.com").await;
    let res = app
        .post_signed(
            "/account/password",
            &b,
            &[
                ("current", PASSWORD),
                ("new", "a brand new password"),
                ("confirm", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}
