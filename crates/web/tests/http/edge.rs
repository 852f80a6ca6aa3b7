//! The HTTP edge under attack: redirect targets after sign-in, slow and
//! half-open clients, NUL characters, a database that refuses connections,
//! forwarded client addresses, the API's error shapes and scope order.

use crate::support::*;
use bos_core::Role;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::StatusCode;

/// `next` that a browser would read as another host never ends up in
/// `Location`, whether the sign-in page is opened already signed in or the
/// form is posted; and no `next` is a 500.
#[tokio::test]
async fn sign_in_never_redirects_off_site() {
    let app = spawn_app().await;
    let org = app.org("Acme").await;
    app.user("ann@example.com", &org, Role::Owner).await;
    let nasty = [
        "/%09/evil.example",
        "/%0A/x",
        "/%0D%0A/evil.example",
        "//evil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
        "https://evil.example",
        "/%E2%80%AE/x",
    ];
    // Signed out: the form carries a safe `next` and posting it lands on it.
    for n in nasty {
        let res = app
            .http
            .get(app.url(&format!("/login?next={n}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{n}");
    }
    // Signed in: opening the login page redirects at once.
    let b = app.login("ann@example.com").await;
    for n in nasty {
        let res = app
            .http
            .get(app.url(&format!("/login?next={n}")))
            .header(COOKIE, format!("__Host-bos_session={}", b.cookie))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{n}");
        let to = location(&res);
        assert!(
            to.starts_with('/') && !to.starts_with("//") && !to.contains(['\t', '\\', '\n']),
            "{n} -> {to:?}"
        );
    }
    // A local target survives, encoded where it must be.
    let res = app
        .http
        .get(app.url("/login?next=/customers%3Fq%3Djos%C3%A9"))
        .header(COOKIE, format!("__Host-bos_session={}", b.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/customers?q=jos%C3%A9");
    // Posting the form with a raw tab in `next`.
    let (pre, csrf) = app.login_form().await;
    let res = app
        .http
        .post(app.url("/login"))
        .header(COOKIE, format!("__Host-bos_pre={pre}"))
        .form(&[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("_csrf", &csrf),
            ("next", "/\t/evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/");
    // A NUL is refused with a page, never a 500.
    let res = app.http.get(app.url("/login?next=/%00/x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
}
