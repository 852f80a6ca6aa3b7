//! The HTTP edge under attack: redirect targets after sign-in, slow and
//! half-open clients, NUL characters, a database that refuses connections,
//! forwarded client addresses, the API's error shapes and scope order.

use crate::support::*;
use bos_core::Role;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Reads until the server closes the connection; a reset is a close too.
/// Bounded so a server that never closes fails the test instead of hanging.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut got)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("reading failed: {e}"),
        Err(_) => panic!("the server left the connection open for {limit:?}"),
    }
    got
}

/// 2,000 clients that send half a request head and stop hold nobody else
/// up: `/healthz` answers over new connections while every one of them is
/// still connected, and the header-read timeout then closes them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_do_not_starve_healthz_and_are_timed_out() {
    const HALF_OPEN: usize = 2_000;
    let header_timeout = Duration::from_secs(5);
    let app = spawn_with(|c| c.serve_limits.header_read_timeout = header_timeout).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut held = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bos\r\nX-Slow: 1")
            .await
            .unwrap();
        held.push(s);
    }
    // Each probe on a connection of its own, as a monitor would.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let res = probe.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.bytes().await.unwrap();
        latencies.push(t.elapsed());
    }
    // Every half-open connection was still held while the probes answered.
    let mut buf = [0u8; 64];
    for s in &held {
        match s.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a half-open connection was closed before the probes ended: {other:?}"),
        }
    }
    latencies.sort();
    eprintln!(
        "healthz with {HALF_OPEN} half-open connections held: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // Then the server closes every one of them.
    for s in &mut held {
        until_closed(s, header_timeout * 6).await;
    }
    let res = probe.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// A request whose body stops arriving is closed by the idle timeout (the
/// header-read timeout no longer applies once the head is in).
#[tokio::test]
async fn a_body_that_stops_arriving_is_closed_by_the_idle_timeout() {
    let idle = Duration::from_secs(1);
    let app = spawn_with(|c| {
        c.serve_limits.idle_timeout = idle;
        c.serve_limits.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let mut s = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let t = Instant::now();
    s.write_all(
        b"POST /login HTTP/1.1\r\nHost: bos\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nemail=a",
    )
    .await
    .unwrap();
    until_closed(&mut s, Duration::from_secs(30)).await;
    assert!(t.elapsed() >= idle, "closed after {:?}", t.elapsed());
}
