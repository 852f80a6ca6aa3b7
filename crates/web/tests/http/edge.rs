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
    let res = app
        .http
        .get(app.url("/login?next=/%00/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
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
    // Long enough that opening 2,000 connections and probing on a busy
    // machine ends well before the first of them is timed out.
    let header_timeout = Duration::from_secs(10);
    let started = Instant::now();
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
        "healthz with {HALF_OPEN} half-open connections held (opened and probed in {:?}): median {:?}, max {:?}",
        started.elapsed(),
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

fn content_type(res: &reqwest::Response) -> String {
    res.headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// NUL in a query string, a JSON body or a form is a clear 400 at the edge
/// — problem+json on the API, a page on the UI — on both engines
/// (PostgreSQL cannot store it in text, and answered 500).
#[tokio::test]
async fn nul_characters_are_refused_at_the_edge() {
    let app = spawn_app().await;
    let org = app.org("Nul Org").await;
    app.user("ann@example.com", &org, Role::Owner).await;
    let key = app.key(&org, "admin").await;
    let check_api = |res: reqwest::Response, what: &'static str| async move {
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(content_type(&res), "application/problem+json", "{what}");
        let v: serde_json::Value = res.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("NUL"), "{what}: {v}");
    };
    // A search.
    let res = app
        .call(reqwest::Method::GET, "/customers?q=ann%00", &key)
        .await;
    check_api(res, "search q").await;
    // A name in a JSON body.
    let res = app
        .api(reqwest::Method::POST, "/sources", &key)
        .await
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"kind":"webhook","name":"Shop\u0000"}"#)
        .send()
        .await
        .unwrap();
    check_api(res, "source name").await;
    // A customer's name and an identifier.
    let res = app
        .api(reqwest::Method::POST, "/identify", &key)
        .await
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"identifiers":{"email":"a@example.com"},"traits":{"first_name":"A\u0000nn"}}"#)
        .send()
        .await
        .unwrap();
    check_api(res, "customer name").await;
    // The text `\u0000` (an escaped backslash) is not a NUL and is kept.
    let res = app
        .api(reqwest::Method::POST, "/sources", &key)
        .await
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"kind":"webhook","name":"Shop \\u0000"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["source"]["name"], "Shop \\u0000");
    // The UI: a search, and a form post.
    let b = app.login("ann@example.com").await;
    let res = app.get("/customers?q=%00", &b.cookie).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(content_type(&res).starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("NUL"));
    let res = app
        .post_signed("/account/password", &b, &[("current_password", "A\0nn")])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(content_type(&res).starts_with("text/html"));
}

/// A query string or path the API cannot read is problem+json; the UI
/// answers it with its error page, not plain text.
#[tokio::test]
async fn query_string_errors_have_the_surfaces_shape() {
    let app = spawn_app().await;
    let org = app.org("Query Org").await;
    app.user("ann@example.com", &org, Role::Owner).await;
    let key = app.key(&org, "admin").await;
    for path in [
        "/customers?limit=lots",
        "/leads?limit=-1",
        "/customers?q=a&q=b",
    ] {
        let res = app.call(reqwest::Method::GET, path, &key).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(content_type(&res), "application/problem+json", "{path}");
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(v["type"], "urn:bos:problem:bad-request", "{path}");
        assert!(!v["detail"].as_str().unwrap().is_empty());
    }
    let b = app.login("ann@example.com").await;
    let res = app.get("/customers?q=a&q=b", &b.cookie).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(content_type(&res).starts_with("text/html"));
}

/// Behind a trusted proxy each visitor has a form limit of their own (the
/// rightmost hop the proxy appended); a forged hop to the left changes
/// nothing, and without `trusted_proxies` the header is ignored.
#[tokio::test]
async fn the_form_limit_follows_x_forwarded_for_only_from_trusted_proxies() {
    for trusted in [true, false] {
        let app = spawn_with(|c| {
            if trusted {
                c.trusted_proxies = bos_core::edge::TrustedProxies::parse("127.0.0.1").unwrap();
            }
        })
        .await;
        let org = app.org("Proxy Org").await;
        let key = app.key(&org, "admin").await;
        let v: serde_json::Value = app
            .send_json(
                reqwest::Method::POST,
                "/sources",
                &key,
                &serde_json::json!({"kind": "form", "name": "Landing"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let endpoint = v["source"]["endpoint"].as_str().unwrap().to_string();
        let post = |xff: &'static str, n: usize| {
            let req = app
                .http
                .post(&endpoint)
                .header("x-forwarded-for", xff)
                .form(&[("email", format!("v{n}@example.com"))]);
            async move { req.send().await.unwrap().status() }
        };
        for i in 0..10 {
            assert_eq!(post("198.51.100.1", i).await, StatusCode::OK, "post {i}");
        }
        assert_eq!(
            post("198.51.100.1", 10).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // The client forges a hop; the proxy appended the real address.
        assert_eq!(
            post("198.51.100.2, 198.51.100.1", 11).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // Another visitor behind the same proxy.
        let other = post("198.51.100.2", 12).await;
        if trusted {
            assert_eq!(other, StatusCode::OK);
        } else {
            assert_eq!(other, StatusCode::TOO_MANY_REQUESTS);
        }
    }
}

/// Every API operation that takes a body checks the key's scope before it
/// reads the body: a key without the scope is 403 even with a malformed
/// body (it was 400 or 422, telling it what the route expects). Walks the
/// OpenAPI document, so a new route is covered when it is added.
#[tokio::test]
async fn the_scope_is_checked_before_the_body() {
    let app = spawn_app().await;
    let org = app.org("Scope Org").await;
    let ingest = app.key(&org, "ingest").await;
    let agent = app.key(&org, "agent").await;
    let doc = serde_json::to_value(bos_web::api::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            // Identify takes `ingest`; nothing with a body takes only `agent`
            // and `ingest` together, so one of the two lacks the scope.
            let key = if path == "/identify" { &agent } else { &ingest };
            let concrete = path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        uuid::Uuid::now_v7().to_string()
                    } else {
                        s.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let res = app
                .api(method.to_uppercase().parse().unwrap(), &concrete, key)
                .await
                .header(CONTENT_TYPE, "application/json")
                .body("{\"broken\": ")
                .send()
                .await
                .unwrap();
            // A route naming a resource may answer 404 first (another
            // organization's id is 404 whatever else is wrong); never 400
            // or 422 from reading the body.
            let status = res.status();
            let allowed = status == StatusCode::FORBIDDEN
                || (path.contains('{') && status == StatusCode::NOT_FOUND);
            assert!(
                allowed,
                "{method} {path}: {status} {}",
                res.text().await.unwrap()
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} operations with a body");
}

/// A TCP relay in front of PostgreSQL that the test can cut, as a database
/// that goes down (or a network that drops) does: open connections die and
/// new ones are refused.
struct Relay {
    addr: std::net::SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(to: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = to.clone();
                held.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        Relay {
            addr,
            accept,
            conns,
        }
    }

    async fn cut(self) {
        self.accept.abort();
        let _ = self.accept.await;
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for c in conns {
            c.abort();
            let _ = c.await;
        }
    }
}

/// With the database refusing connections, every path that needs it — an
/// API call, a Segment delivery, a form post, a page — answers 503 with
/// `Retry-After` (problem+json on the API and intake, a page on the UI),
/// never a 500. On PostgreSQL the connection is cut under a running
/// server; on SQLite the store is closed.
#[tokio::test]
async fn a_database_that_refuses_connections_is_503_with_retry_after() {
    for outage in [Outage::Cut, Outage::Refusing] {
        outage_answers(outage).await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outage {
    /// The network to the server is cut: connections die, new ones are
    /// refused (SQLite: the store is closed).
    Cut,
    /// The server is up but refuses this database: its sessions are
    /// terminated and new ones turned away (PostgreSQL only).
    Refusing,
}

async fn outage_answers(outage: Outage) {
    let db = bos_store::testing::TestDb::new().await.unwrap();
    if outage == Outage::Refusing && db.engine_name() != "postgres" {
        return;
    }
    let (store, relay) = if db.engine_name() == "postgres" {
        // postgres://user@host:port/db → the same through the relay.
        let (head, rest) = db.url.split_once('@').unwrap();
        let (hostport, tail) = rest.split_once('/').unwrap();
        let relay = Relay::start(hostport.to_string()).await;
        let url = format!("{head}@{}/{tail}", relay.addr);
        let store = bos_store::Store::open(&bos_store::StoreOptions {
            url,
            max_connections: 4,
        })
        .await
        .unwrap();
        (store, Some(relay))
    } else {
        (db.store.clone(), None)
    };
    let clock = std::sync::Arc::new(bos_web::TestClock::new(T0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = bos_web::WebConfig {
        public_url: base.clone(),
        ..Default::default()
    };
    let state = bos_web::AppState::new(store.clone(), clock, config);
    tokio::spawn(bos_web::serve(
        listener,
        bos_web::app(state),
        Default::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Set up while the database is there: a key, a Segment source, a form,
    // a signed-in browser.
    let org = store
        .create_org(
            &bos_core::OrgName::parse("Down Org").unwrap(),
            &bos_core::Slug::from_name("Down Org").unwrap(),
            T0,
        )
        .await
        .unwrap();
    let hash = bos_web::hash_password(PASSWORD).unwrap();
    let user = store
        .create_user(
            &bos_core::Email::parse("ann@example.com").unwrap(),
            "Ann",
            &hash,
            false,
            T0,
        )
        .await
        .unwrap();
    store
        .upsert_membership(org.id, user.id, Role::Owner, T0)
        .await
        .unwrap();
    let key = bos_web::issue_api_key(
        &store,
        org.id,
        "test",
        &bos_core::ScopeSet::parse("admin").unwrap(),
        None,
        T0,
    )
    .await
    .unwrap()
    .secret;
    let source = |kind: &'static str| {
        let req = http
            .post(format!("{base}/api/v1/sources"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"kind": kind, "name": kind}));
        async move {
            let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            v
        }
    };
    let segment = source("segment").await;
    let write_key = segment["secret"].as_str().unwrap().to_string();
    let form = source("form").await;
    let form_url = form["source"]["endpoint"].as_str().unwrap().to_string();
    let login = http.get(format!("{base}/login")).send().await.unwrap();
    let pre = set_cookie_value(&login, "__Host-bos_pre").unwrap();
    let csrf = csrf_in(&login.text().await.unwrap());
    let res = http
        .post(format!("{base}/login"))
        .header(COOKIE, format!("__Host-bos_pre={pre}"))
        .form(&[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("_csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let session = set_cookie_value(&res, "__Host-bos_session").expect("signed in");

    // The outage.
    match (outage, relay) {
        (Outage::Cut, Some(r)) => r.cut().await,
        (Outage::Cut, None) => store.close().await,
        (Outage::Refusing, _) => {
            use sqlx::Connection as _;
            let admin = bos_store::testing::pg_url().unwrap();
            let name = db
                .url
                .rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string();
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("alter database {name} allow_connections false"))
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1",
            )
            .bind(&name)
            .execute(&mut c)
            .await
            .unwrap();
        }
    }
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"))
    );
    let (api, ingest, form_post, page) = tokio::join!(
        http.get(format!("{base}/api/v1/customers"))
            .bearer_auth(&key)
            .send(),
        http.post(format!("{base}/v1/batch"))
            .header("authorization", basic)
            .json(&serde_json::json!({"batch": [{"type": "track", "event": "Viewed", "messageId": "m-1", "anonymousId": "a-1"}]}))
            .send(),
        http.post(&form_url)
            .form(&[("email", "lead@example.com")])
            .send(),
        http.get(format!("{base}/customers"))
            .header(COOKIE, format!("__Host-bos_session={session}"))
            .send(),
    );
    for (what, res, html) in [
        ("API", api.unwrap(), false),
        ("Segment ingest", ingest.unwrap(), false),
        ("form post", form_post.unwrap(), false),
        ("page", page.unwrap(), true),
    ] {
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{outage:?}: {what}"
        );
        assert!(res.headers().contains_key("retry-after"), "{what}");
        let ct = content_type(&res);
        if html {
            assert!(ct.starts_with("text/html"), "{what}: {ct}");
        } else {
            assert_eq!(ct, "application/problem+json", "{what}");
        }
    }
    if outage == Outage::Refusing {
        // Let the test database be dropped.
        use sqlx::Connection as _;
        let name = db
            .url
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_string();
        let mut c = sqlx::PgConnection::connect(&bos_store::testing::pg_url().unwrap())
            .await
            .unwrap();
        sqlx::query(&format!("alter database {name} allow_connections true"))
            .execute(&mut c)
            .await
            .unwrap();
    }
    drop(db);
}

/// One request and its whole answer on a kept-alive connection.
async fn roundtrip(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bos\r\n\r\n")
        .await
        .unwrap();
    read_response(s).await
}

/// Reads one response (head and `Content-Length` body), bounded in time.
async fn read_response(s: &mut TcpStream) -> String {
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    return text;
                }
            }
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed mid-response: {text}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("an answer")
}

/// At the connection cap a new client waits to be accepted — it holds no
/// descriptor of the server's — and is served as soon as one closes.
#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let app = spawn_with(|c| c.serve_limits.max_connections = 1).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut first = TcpStream::connect(&addr).await.unwrap();
    // Served: it holds the one place.
    assert!(roundtrip(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut waiting = TcpStream::connect(&addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: bos\r\n\r\n")
        .await
        .unwrap();
    // The server keeps answering the first connection while the second
    // one's request sits unread.
    for _ in 0..20 {
        assert!(roundtrip(&mut first).await.starts_with("HTTP/1.1 200"));
    }
    let mut buf = [0u8; 64];
    match waiting.try_read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the connection over the cap was served: {other:?}"),
    }
    drop(first);
    assert!(read_response(&mut waiting)
        .await
        .starts_with("HTTP/1.1 200"));
}
