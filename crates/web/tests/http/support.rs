//! `spawn_app()` and typed helpers shared by the HTTP tests.

use bos_core::{Email, OrgName, Role, ScopeSet, Slug};
use bos_store::testing::TestDb;
use bos_store::{Org, User};
use bos_web::{AppState, TestClock, WebConfig};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use std::sync::Arc;

pub const PASSWORD: &str = "correct horse battery";
pub const T0: i64 = 1_780_000_000_000;

pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub clock: Arc<TestClock>,
    pub http: Client,
    pub config: WebConfig,
    /// The server's state: tests await background imports through it.
    pub state: AppState,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut WebConfig)) -> TestApp {
    let db = TestDb::new().await.expect("test database");
    let clock = Arc::new(TestClock::new(T0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = WebConfig {
        public_url: format!("http://{addr}"),
        secure_cookies: true,
        ..Default::default()
    };
    // Each test spools its uploads in a directory of its own.
    config.import_dir =
        std::env::temp_dir().join(format!("bos-test-imports-{}", uuid::Uuid::new_v4()));
    tweak(&mut config);
    let state = AppState::new(db.store.clone(), clock.clone(), config.clone());
    let serve_state = state.clone();
    let limits = config.serve_limits;
    tokio::spawn(async move {
        // The server loop `bos serve` runs, with its timeouts and cap.
        bos_web::serve(
            listener,
            bos_web::app(serve_state),
            limits,
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    let http = Client::builder().redirect(Policy::none()).build().unwrap();
    TestApp {
        base: format!("http://{addr}"),
        db,
        clock,
        http,
        config,
        state,
    }
}

/// A signed-in browser: its session cookie and the page's CSRF token.
#[derive(Clone, Debug)]
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

pub fn set_cookie_value(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            v[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_string()
        })
}

pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let i = html.find(marker).expect("page has a CSRF field") + marker.len();
    html[i..].split('"').next().unwrap().to_string()
}

pub fn location(res: &Response) -> String {
    res.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

impl TestApp {
    /// A second server process over the same database and clock (another
    /// replica behind a load balancer); returns its base URL.
    pub async fn spawn_replica(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(
            self.db.store.clone(),
            self.clock.clone(),
            self.config.clone(),
        );
        tokio::spawn(async move {
            axum::serve(
                listener,
                bos_web::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        format!("http://{addr}")
    }

    /// Another server process on the same database: its own connection
    /// pool, pipeline and live bus, the bus linked to the others (on
    /// PostgreSQL). Returns its base URL and state.
    pub async fn spawn_peer(&self) -> (String, AppState) {
        let store = bos_store::Store::open(&bos_store::StoreOptions {
            url: self.db.url.clone(),
            max_connections: 4,
        })
        .await
        .expect("a second pool on the test database");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(store, self.clock.clone(), self.config.clone());
        state.bus.start().await.expect("the peer's bus listens");
        let serve_state = state.clone();
        let limits = self.config.serve_limits;
        tokio::spawn(async move {
            bos_web::serve(
                listener,
                bos_web::app(serve_state),
                limits,
                std::future::pending(),
            )
            .await
            .unwrap();
        });
        (format!("http://{addr}"), state)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn store(&self) -> &bos_store::Store {
        &self.db.store
    }

    pub async fn org(&self, name: &str) -> Org {
        self.store()
            .create_org(
                &OrgName::parse(name).unwrap(),
                &Slug::from_name(name).unwrap(),
                T0,
            )
            .await
            .unwrap()
    }

    pub async fn user(&self, email: &str, org: &Org, role: Role) -> User {
        let hash = bos_web::hash_password(PASSWORD).unwrap();
        let u = self
            .store()
            .create_user(&Email::parse(email).unwrap(), email, &hash, false, T0)
            .await
            .unwrap();
        self.store()
            .upsert_membership(org.id, u.id, role, T0)
            .await
            .unwrap();
        u
    }

    pub async fn key(&self, org: &Org, scopes: &str) -> String {
        bos_web::issue_api_key(
            self.store(),
            org.id,
            "test",
            &ScopeSet::parse(scopes).unwrap(),
            None,
            T0,
        )
        .await
        .unwrap()
        .secret
    }

    /// Loads the login form and returns (pre-session cookie, CSRF token).
    pub async fn login_form(&self) -> (String, String) {
        let res = self.http.get(self.url("/login")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let pre = set_cookie_value(&res, "__Host-bos_pre").expect("pre-session cookie");
        let html = res.text().await.unwrap();
        (pre, csrf_in(&html))
    }

    /// Posts the login form; `extra_cookie` lets a test send an old session.
    pub async fn post_login(
        &self,
        email: &str,
        password: &str,
        extra_cookie: Option<&str>,
    ) -> Response {
        let (pre, csrf) = self.login_form().await;
        let mut cookie = format!("__Host-bos_pre={pre}");
        if let Some(c) = extra_cookie {
            cookie.push_str(&format!("; __Host-bos_session={c}"));
        }
        self.http
            .post(self.url("/login"))
            .header(COOKIE, cookie)
            .form(&[
                ("email", email),
                ("password", password),
                ("_csrf", &csrf),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, email: &str) -> Browser {
        let res = self.post_login(email, PASSWORD, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login should redirect");
        let cookie = set_cookie_value(&res, "__Host-bos_session").expect("session cookie");
        let csrf = self.csrf_of(&cookie).await;
        Browser { cookie, csrf }
    }

    /// The CSRF token a page shows to this session.
    pub async fn csrf_of(&self, cookie: &str) -> String {
        let res = self.get("/account", cookie).await;
        assert_eq!(res.status(), StatusCode::OK);
        csrf_in(&res.text().await.unwrap())
    }

    pub async fn get(&self, path: &str, cookie: &str) -> Response {
        self.http
            .get(self.url(path))
            .header(COOKIE, format!("__Host-bos_session={cookie}"))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url(path))
            .header(COOKIE, format!("__Host-bos_session={cookie}"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// True when the cookie still opens a signed-in page.
    pub async fn signed_in(&self, cookie: &str) -> bool {
        let res = self.get("/", cookie).await;
        match res.status() {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER => {
                assert!(location(&res).starts_with("/login"));
                false
            }
            s => panic!("unexpected status {s}"),
        }
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(key)
    }

    /// Sends an API request without a body.
    pub async fn call(&self, method: reqwest::Method, path: &str, key: &str) -> Response {
        self.api(method, path, key).await.send().await.unwrap()
    }

    /// Sends an API request with a JSON body.
    pub async fn send_json<B: serde::Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: &B,
    ) -> Response {
        self.api(method, path, key)
            .await
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates an intake source of `kind` through the API.
    pub async fn post_source(&self, key: &str, kind: &str, name: &str) -> Response {
        let body = serde_json::json!({"kind": kind, "name": name});
        self.send_json(reqwest::Method::POST, "/sources", key, &body)
            .await
    }

    /// Sends an API request without a body and reads its JSON answer,
    /// whatever the status.
    pub async fn read<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
    ) -> T {
        self.call(method, path, key).await.json().await.unwrap()
    }

    /// Sends an API request with an optional JSON body; the status and the
    /// answer's JSON (its text as a string when it is not JSON).
    pub async fn api_json(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = self.api(method, path, key).await;
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Posts a form as the signed-in browser `b`, with its CSRF token first.
    pub async fn post_signed(&self, path: &str, b: &Browser, form: &[(&str, &str)]) -> Response {
        let mut fields = vec![("_csrf", b.csrf.as_str())];
        fields.extend_from_slice(form);
        self.post_form(path, &b.cookie, &fields).await
    }

    /// A new organization with an owner `email` signed in.
    pub async fn owner_of(&self, org_name: &str, email: &str) -> (Org, Browser) {
        let org = self.org(org_name).await;
        self.user(email, &org, Role::Owner).await;
        (org, self.login(email).await)
    }

    /// A new organization with an admin API key and an owner
    /// (`owner@<org id>.example`) signed in.
    pub async fn tenant(&self, org_name: &str) -> Tenant {
        let org = self.org(org_name).await;
        let email = format!("owner@{}.example", org.id.simple());
        self.tenant_of(org, &email, Role::Owner).await
    }

    /// A new organization with an admin API key and a member `email` in
    /// `role`, signed in.
    pub async fn tenant_with(&self, org_name: &str, email: &str, role: Role) -> Tenant {
        let org = self.org(org_name).await;
        self.tenant_of(org, email, role).await
    }

    async fn tenant_of(&self, org: Org, email: &str, role: Role) -> Tenant {
        let key = self.key(&org, "admin").await;
        self.user(email, &org, role).await;
        let browser = self.login(email).await;
        Tenant { org, key, browser }
    }

    /// A customer's timeline, newest first (up to 500 entries).
    pub async fn timeline(
        &self,
        org: uuid::Uuid,
        profile: uuid::Uuid,
    ) -> Vec<bos_store::identity::TimelineEntry> {
        self.store()
            .timeline(
                org,
                profile,
                &bos_store::identity::TimelineQuery {
                    limit: 500,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }
}

/// An organization with an admin API key and its owner signed in.
pub struct Tenant {
    pub org: Org,
    pub key: String,
    pub browser: Browser,
}
