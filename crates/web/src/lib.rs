//! BOS over HTTP: the `/api/v1` JSON API, the server-rendered web UI, and the
//! operational endpoints, assembled into one axum `Router` by [`app`].
//!
//! Routes are listed in exactly two places — the API's `OpenApiRouter` (so
//! the OpenAPI document *is* the API route list) and the UI's route table in
//! [`ui::routes`] — and the tenant-matrix test walks both, so a route that
//! nobody added to the matrix fails the suite.

/// `/api/v1`: bearer API keys, problem+json errors, the OpenAPI document.
pub mod api;
/// Embedded static assets served at content-hashed URLs.
pub mod assets;
/// Passwords, sessions, CSRF and API-key credentials.
pub mod auth;
/// Wall clock or test clock.
pub mod clock;
/// The request edge: client address behind proxies, NUL refused,
/// rejections in the API's and UI's shapes.
pub mod edge;
/// The one error type: problem+json for the API, an HTML page for the UI.
pub mod error;
/// Public intake endpoints: Segment-compatible tracking, Standard Webhooks,
/// Shopify webhooks, public web forms.
pub mod intake;
/// gzip and deflate request bodies on the intake endpoints, within limits.
pub mod intake_body;
/// Live pages over server-sent events: one organization's bus events,
/// for signed-in members only, with keep-alives.
pub mod live;
/// Meta's webhook: Instagram and Messenger messages into the inbox.
pub mod meta_hooks;
/// Nudge webhooks (Twilio, Mailgun, Postmark), open and click tracking,
/// and the unsubscribe page.
pub mod nudge_hooks;
/// `/healthz`, `/readyz`, `/metrics`, security headers, request metrics.
pub mod ops;
/// Query parameters the API and the UI both read (cursors, sorts, times,
/// filters), parsed in one place so neither door borrows from the other.
pub mod params;
/// The public URLs handed to services (invitation links).
pub mod paths;
/// The HTTP server loop: connection cap, header-read and idle timeouts.
pub mod server;
/// The server-rendered UI: login, organization switcher, settings.
pub mod ui;
/// What the API and the UI both show of a record (times, a channel's
/// masked settings and webhook URLs, a stored payload), rendered once.
pub mod views;
/// Vapi's and Retell's signed call reports for a voice agent.
pub mod voice_hooks;

use axum::Router;
use bos_store::Store;
use std::sync::Arc;

pub use clock::{Clock, SystemClock, TestClock};

/// Settings the HTTP layer needs (the binary maps its configuration here).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` and use the `__Host-` prefix. On for https and
    /// for localhost (browsers treat it as a secure context); off only for a
    /// plain-http deployment on another host.
    pub secure_cookies: bool,
    /// The URL people use to reach BOS; cross-site form posts are refused
    /// by comparing `Origin` with it (and with the request's own host).
    pub public_url: String,
    pub session_idle_ms: i64,
    pub session_absolute_ms: i64,
    /// Largest accepted request body, in bytes (413 above).
    pub body_limit_bytes: usize,
    /// Largest contacts file accepted for an import upload, in bytes.
    pub import_limit_bytes: u64,
    /// Where uploads wait while they are imported (deleted after).
    pub import_dir: std::path::PathBuf,
    /// Twilio's API base URL (tests point it at a local fake).
    pub twilio_base_url: String,
    /// Meta's Graph API base URL for Instagram and Facebook replies (tests
    /// point it at a local fake).
    pub meta_base_url: String,
    /// Let tenants' SMTP hosts be on private networks (a relay on the same
    /// machine); off by default, so no tenant can reach inside.
    pub allow_private_outbound: bool,
    /// How long a provider may take to answer one send before its outcome
    /// is called unknown.
    pub nudge_send_timeout_ms: u64,
    /// A nudge still `sending` this long after its claim was cut off by a
    /// crash and becomes `unknown`.
    pub nudge_sending_lease_ms: i64,
    /// Reverse proxies whose `X-Forwarded-For` names the client; none by
    /// default (the client is the TCP peer).
    pub trusted_proxies: bos_core::edge::TrustedProxies,
    /// Timeouts and the connection cap of [`server::serve`].
    pub serve_limits: server::ServeLimits,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            secure_cookies: true,
            public_url: "http://127.0.0.1:8080".into(),
            session_idle_ms: 8 * 3600 * 1000,
            session_absolute_ms: 7 * 24 * 3600 * 1000,
            body_limit_bytes: 1024 * 1024,
            import_limit_bytes: 200 * 1024 * 1024,
            import_dir: std::env::temp_dir(),
            twilio_base_url: "https://api.twilio.com".into(),
            meta_base_url: bos_channels::meta::MetaConfig::DEFAULT_BASE_URL.into(),
            allow_private_outbound: false,
            nudge_send_timeout_ms: 30_000,
            nudge_sending_lease_ms: bos_store::nudge::SENDING_LEASE_MS,
            trusted_proxies: Default::default(),
            serve_limits: Default::default(),
        }
    }
}

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<ops::Metrics>,
    /// Imports running in the background in this process.
    pub imports: Arc<bos_engine::imports::ImportRuns>,
    /// Schedules durable jobs (timers, retries) and wakes this process's
    /// job runner; `bos serve` starts the runner from it.
    pub scheduler: bos_engine::Scheduler,
    /// The intake pipeline: endpoints wake it after storing events; it
    /// publishes what it applies on the bus. `bos serve` starts its worker.
    pub pipeline: bos_engine::Pipeline,
    /// The live bus the live pages follow (through [`live`]); `bos serve`
    /// links it to the other processes on PostgreSQL.
    pub bus: bos_engine::Bus,
    /// Sends nudges: `bos serve` registers its job handlers and sweeper.
    pub nudger: bos_engine::nudge::Nudger,
    /// The Unified Inbox: every door a message comes in through records it
    /// here, and the composer's replies go out through it (`bos serve`
    /// starts the sweep of replies a crash cut off).
    pub inbox: bos_engine::inbox::Inbox,
    /// AI agents: registry, heartbeats, pauses, interactions, metrics.
    pub agents: bos_engine::agents::Agents,
    /// Rate limits of public form posts, per form and client address.
    pub(crate) form_limiter: Arc<intake::FormLimiter>,
    pub(crate) passwords: Arc<auth::password::Hasher>,
}

impl AppState {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: WebConfig) -> AppState {
        let scheduler = bos_engine::Scheduler::new(store.clone(), clock.clone());
        let bus = bos_engine::Bus::new(store.clone());
        let inbox = bos_engine::inbox::Inbox::new(store.clone(), bus.clone()).with_outbound(
            bos_engine::inbox::Outbound {
                twilio_base_url: config.twilio_base_url.clone(),
                meta_base_url: config.meta_base_url.clone(),
                send_timeout: std::time::Duration::from_millis(config.nudge_send_timeout_ms),
                allow_private_hosts: config.allow_private_outbound,
                pending_lease_ms: config.nudge_sending_lease_ms,
                links: Some(Arc::new(paths::PublicUrls::new(&config.public_url))),
                pages: Arc::new(bos_engine::inbox::StoredMetaPages(store.clone())),
                ..Default::default()
            },
        );
        let nudger = bos_engine::nudge::Nudger::new(
            scheduler.clone(),
            bos_engine::nudge::NudgeConfig {
                twilio_base_url: config.twilio_base_url.clone(),
                allow_private_hosts: config.allow_private_outbound,
                send_timeout: std::time::Duration::from_millis(config.nudge_send_timeout_ms),
                sending_lease_ms: config.nudge_sending_lease_ms,
                inbox: Some(inbox.clone()),
                ..bos_engine::nudge::NudgeConfig::new(Arc::new(paths::PublicUrls::new(
                    &config.public_url,
                )))
            },
        );
        let imports = bos_engine::imports::ImportRuns::new(
            store.clone(),
            bus.clone(),
            clock.clone(),
            config.import_dir.clone(),
            config.import_limit_bytes,
        );
        AppState {
            nudger,
            agents: bos_engine::agents::Agents::new(store.clone(), bus.clone()),
            inbox,
            pipeline: bos_engine::Pipeline::with_bus(scheduler.clone(), bus.clone()),
            bus,
            scheduler,
            store,
            clock,
            imports: Arc::new(imports),
            config: Arc::new(config),
            metrics: Arc::new(ops::Metrics::default()),
            form_limiter: Arc::new(intake::FormLimiter::default()),
            passwords: Arc::new(auth::password::Hasher::new()),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The public URLs, from the configured public address.
    pub fn urls(&self) -> paths::PublicUrls {
        paths::PublicUrls::new(&self.config.public_url)
    }

    /// What the lead service reports to: the store, the scheduler, the bus.
    pub fn lead_deps(&self) -> bos_engine::leads::LeadDeps<'_> {
        bos_engine::leads::LeadDeps {
            store: &self.store,
            scheduler: &self.scheduler,
            bus: &self.bus,
        }
    }
}

/// The whole application: API, UI, assets and operations endpoints.
pub fn app(state: AppState) -> Router {
    let (api, _doc) = api::router_and_doc();
    let limit = state.config.body_limit_bytes;
    Router::new()
        .nest(
            "/api/v1",
            api.fallback(api::not_found)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    edge::api_edge,
                )),
        )
        .merge(ui::router().layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::page_edge,
        )))
        .merge(ops::router())
        .merge(intake::router())
        .merge(nudge_hooks::router())
        .merge(meta_hooks::router())
        .merge(voice_hooks::router())
        .merge(assets::router())
        .fallback(ui::not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::client_addr,
        ))
        .layer(axum::middleware::from_fn(ops::security_headers))
        .with_state(state)
}

/// Creates users with hashed passwords, for the CLI and the demo.
pub use auth::password::hash_password;
pub use bos_engine::admin::{issue_api_key, IssuedKey};
pub use server::{serve, ServeLimits};
