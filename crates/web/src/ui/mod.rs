//! The server-rendered UI. Every route is listed once, in [`routes`], which
//! both builds the router and feeds the tenant-matrix test. Pages are plain
//! links and forms first; the small script in `assets/app.js` only adds
//! conveniences (auto-submit of the organization switcher, copy buttons,
//! confirmation of destructive actions); `assets/import.js` follows an
//! import's progress live, `assets/intake.js` the intake feed and
//! `assets/inbox.js` the inbox.

mod account;
mod agents;
/// Campaigns: list, builder, funnels, previews, outbox, nudge settings.
pub mod campaigns;
mod channels;
/// The Command Center: agent cards, the metrics strip, live transcripts.
pub mod command_center;
mod customers;
mod home;
mod identity_rules;
mod imports;
/// The Unified Inbox: thread list, conversation, composer, live stream.
pub mod inbox;
/// The intake dashboard: live lead feed, counts, quick actions.
pub mod intake;
mod intake_rules;
mod invitations;
mod keys;
mod login;
mod members;
mod sources;

use crate::auth::session::Session;
use crate::error::{AppError, PageError};
use crate::AppState;
use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;

/// One UI route: what the tenant matrix needs to know about it.
#[derive(Debug, Clone)]
pub struct RouteDef {
    pub method: Method,
    pub path: &'static str,
    /// Reachable without a session (login page, login post).
    pub public: bool,
}

/// Every UI route with its handler. The single source of the UI's routes.
fn table() -> Vec<(RouteDef, MethodRouter<AppState>)> {
    let r = |method: Method, path: &'static str, public: bool, h: MethodRouter<AppState>| {
        (
            RouteDef {
                method,
                path,
                public,
            },
            h,
        )
    };
    vec![
        r(Method::GET, "/login", true, get(login::page)),
        r(Method::POST, "/login", true, post(login::submit)),
        r(Method::POST, "/logout", false, post(login::logout)),
        r(Method::GET, "/", false, get(home::page)),
        r(Method::POST, "/orgs/switch", false, post(home::switch_org)),
        r(Method::GET, "/settings/members", false, get(members::page)),
        r(
            Method::POST,
            "/settings/members",
            false,
            post(members::invite),
        ),
        r(
            Method::POST,
            "/settings/members/{user_id}/role",
            false,
            post(members::change_role),
        ),
        r(
            Method::POST,
            "/settings/members/{user_id}/remove",
            false,
            post(members::remove),
        ),
        r(
            Method::POST,
            "/settings/members/invitations/{invitation_id}/revoke",
            false,
            post(members::revoke_invitation),
        ),
        // The accept page: the link's token names the invitation; the
        // person may have no session (a new account) or any account's.
        r(
            Method::GET,
            "/invitations/{token}",
            true,
            get(invitations::page),
        ),
        r(
            Method::POST,
            "/invitations/{token}",
            true,
            post(invitations::submit),
        ),
        r(Method::GET, "/settings/keys", false, get(keys::page)),
        r(Method::POST, "/settings/keys", false, post(keys::create)),
        r(
            Method::POST,
            "/settings/keys/{key_id}/revoke",
            false,
            post(keys::revoke),
        ),
        r(Method::GET, "/customers", false, get(customers::list)),
        r(Method::GET, "/inbox", false, get(inbox::page)),
        r(Method::GET, "/inbox/stream", false, get(inbox::stream)),
        r(
            Method::GET,
            "/inbox/{conversation_id}",
            false,
            get(inbox::conversation),
        ),
        r(
            Method::POST,
            "/inbox/{conversation_id}/assign",
            false,
            post(inbox::assign),
        ),
        r(
            Method::POST,
            "/inbox/{conversation_id}/reply",
            false,
            post(inbox::reply),
        ),
        r(
            Method::POST,
            "/inbox/{conversation_id}/resolve",
            false,
            post(inbox::resolve),
        ),
        r(
            Method::POST,
            "/inbox/{conversation_id}/reopen",
            false,
            post(inbox::reopen),
        ),
        r(Method::GET, "/intake", false, get(intake::page)),
        r(Method::GET, "/intake/stream", false, get(intake::stream)),
        r(
            Method::POST,
            "/intake/{customer_id}/action",
            false,
            post(intake::action),
        ),
        r(Method::GET, "/customers/import", false, get(imports::page)),
        // The upload enforces the import size limit itself while it
        // streams the file to disk (the general body limit is far smaller).
        r(
            Method::POST,
            "/customers/import",
            false,
            post(imports::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        ),
        r(
            Method::GET,
            "/customers/imports/{import_id}",
            false,
            get(imports::show),
        ),
        r(
            Method::GET,
            "/customers/imports/{import_id}/events",
            false,
            get(imports::events),
        ),
        r(
            Method::GET,
            "/customers/{customer_id}",
            false,
            get(customers::show),
        ),
        r(
            Method::POST,
            "/customers/{customer_id}/merge",
            false,
            post(customers::merge),
        ),
        r(
            Method::GET,
            "/customers/{customer_id}/export",
            false,
            get(customers::export),
        ),
        r(
            Method::POST,
            "/customers/{customer_id}/erase",
            false,
            post(customers::erase),
        ),
        r(
            Method::POST,
            "/merges/{merge_id}/undo",
            false,
            post(customers::unmerge),
        ),
        r(
            Method::GET,
            "/settings/identity",
            false,
            get(identity_rules::page),
        ),
        r(
            Method::POST,
            "/settings/identity",
            false,
            post(identity_rules::save),
        ),
        r(Method::GET, "/settings/sources", false, get(sources::list)),
        r(
            Method::POST,
            "/settings/sources",
            false,
            post(sources::create),
        ),
        r(
            Method::GET,
            "/settings/sources/{source_id}",
            false,
            get(sources::show),
        ),
        r(
            Method::GET,
            "/settings/sources/{source_id}/deliveries/{delivery_id}",
            false,
            get(sources::delivery),
        ),
        r(
            Method::POST,
            "/settings/sources/{source_id}/deliveries/{delivery_id}/replay",
            false,
            post(sources::replay),
        ),
        r(
            Method::GET,
            "/settings/intake/parked",
            false,
            get(sources::parked),
        ),
        r(
            Method::POST,
            "/settings/intake/parked/retry-all",
            false,
            post(sources::retry_all),
        ),
        r(
            Method::POST,
            "/settings/intake/parked/{delivery_id}/retry",
            false,
            post(sources::retry),
        ),
        r(
            Method::GET,
            "/settings/intake",
            false,
            get(intake_rules::page),
        ),
        r(
            Method::POST,
            "/settings/intake",
            false,
            post(intake_rules::save),
        ),
        r(
            Method::POST,
            "/settings/intake/reset",
            false,
            post(intake_rules::reset),
        ),
        r(
            Method::POST,
            "/settings/intake/leads",
            false,
            post(intake_rules::save_lead_settings),
        ),
        r(
            Method::GET,
            "/settings/channels",
            false,
            get(channels::page),
        ),
        r(
            Method::POST,
            "/settings/channels/email",
            false,
            post(channels::save_email),
        ),
        r(
            Method::POST,
            "/settings/channels/sms",
            false,
            post(channels::save_sms),
        ),
        r(Method::GET, "/campaigns", false, get(campaigns::list)),
        r(Method::POST, "/campaigns", false, post(campaigns::create)),
        r(
            Method::GET,
            "/campaigns/new",
            false,
            get(campaigns::new_page),
        ),
        r(
            Method::POST,
            "/campaigns/preview",
            false,
            post(campaigns::preview_new),
        ),
        r(
            Method::GET,
            "/campaigns/{campaign_id}",
            false,
            get(campaigns::show),
        ),
        r(
            Method::POST,
            "/campaigns/{campaign_id}",
            false,
            post(campaigns::save),
        ),
        r(
            Method::POST,
            "/campaigns/{campaign_id}/status",
            false,
            post(campaigns::set_status),
        ),
        r(
            Method::POST,
            "/campaigns/{campaign_id}/preview",
            false,
            post(campaigns::preview_saved),
        ),
        r(Method::GET, "/outbox", false, get(campaigns::outbox)),
        r(
            Method::GET,
            "/settings/nudges",
            false,
            get(campaigns::settings_page),
        ),
        r(
            Method::POST,
            "/settings/nudges",
            false,
            post(campaigns::settings_save),
        ),
        r(
            Method::POST,
            "/customers/{customer_id}/enrollments/{enrollment_id}/remove",
            false,
            post(campaigns::remove_enrollment),
        ),
        r(
            Method::GET,
            "/command-center",
            false,
            get(command_center::page),
        ),
        r(
            Method::GET,
            "/command-center/stream",
            false,
            get(command_center::stream),
        ),
        r(
            Method::GET,
            "/command-center/agents/{agent_id}",
            false,
            get(command_center::details),
        ),
        r(
            Method::POST,
            "/command-center/agents/{agent_id}/pause",
            false,
            post(command_center::pause),
        ),
        r(
            Method::POST,
            "/command-center/agents/{agent_id}/resume",
            false,
            post(command_center::resume),
        ),
        r(
            Method::POST,
            "/command-center/conversations/{conversation_id}/takeover",
            false,
            post(command_center::takeover),
        ),
        r(Method::GET, "/settings/agents", false, get(agents::page)),
        r(
            Method::POST,
            "/settings/agents",
            false,
            post(agents::create),
        ),
        r(
            Method::POST,
            "/settings/agents/{agent_id}/key",
            false,
            post(agents::rekey),
        ),
        r(Method::GET, "/account", false, get(account::page)),
        r(
            Method::POST,
            "/account/password",
            false,
            post(account::change_password),
        ),
    ]
}

/// The UI's routes, for tests and documentation.
pub fn routes() -> Vec<RouteDef> {
    table().into_iter().map(|(d, _)| d).collect()
}

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for (def, handler) in table() {
        router = router.route(def.path, handler);
    }
    router
}

/// What the layout shows around every signed-in page.
pub struct Chrome {
    pub title: String,
    pub nav: &'static str,
    pub user_name: String,
    pub user_email: String,
    pub org_name: String,
    pub org_id: String,
    pub role: &'static str,
    pub is_admin: bool,
    pub orgs: Vec<(String, String, bool)>,
    pub csrf: String,
    pub notice: Option<String>,
}

impl Chrome {
    pub fn new(s: &Session, title: &str, nav: &'static str) -> Chrome {
        Chrome {
            title: title.to_string(),
            nav,
            user_name: s.user.display_name.clone(),
            user_email: s.user.email.clone(),
            org_name: s.org.name.clone(),
            org_id: s.org.id.to_string(),
            role: s.role.as_str(),
            is_admin: s.role.can_administer(),
            orgs: s
                .orgs
                .iter()
                .map(|m| {
                    (
                        m.org.id.to_string(),
                        m.org.name.clone(),
                        m.org.id == s.org.id,
                    )
                })
                .collect(),
            csrf: s.csrf.clone(),
            notice: None,
        }
    }

    pub fn css(&self) -> &'static str {
        crate::assets::url("app.css")
    }

    pub fn js(&self) -> &'static str {
        crate::assets::url("app.js")
    }

    pub fn initials(&self) -> String {
        self.user_name
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .take(2)
            .collect::<String>()
            .to_uppercase()
    }
}

/// Renders a template into a response, or a 500 page if rendering fails.
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => PageError(AppError::Internal(format!("template: {e}"))).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    detail: String,
    css: &'static str,
}

/// The HTML page for an error: status, what happened, what to do.
pub fn error_page(e: &AppError) -> Response {
    let page = ErrorPage {
        status: e.status().as_u16(),
        title: e.title(),
        detail: e.detail(),
        css: crate::assets::url("app.css"),
    };
    let mut res = match page.render() {
        Ok(html) => (e.status(), Html(html)).into_response(),
        Err(_) => (e.status(), e.detail()).into_response(),
    };
    crate::error::add_retry_after(e, &mut res);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub async fn not_found() -> Response {
    error_page(&AppError::NotFound)
}

/// A UUID path parameter; one that does not parse is a 404 page.
pub struct PathId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<uuid::Uuid>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(PathId(id)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(PageError(AppError::NotFound))
            }
            Err(e) => Err(PageError(AppError::Internal(e.body_text()))),
        }
    }
}

/// "2026-11-25 14:05 UTC".
pub fn fmt_time(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// A number a noun is counted with. Templates hand fields over by
/// reference, so references count too.
pub trait Countable {
    fn is_one(&self) -> bool;
}

macro_rules! countable {
    ($($t:ty),*) => {$(
        impl Countable for $t {
            fn is_one(&self) -> bool {
                *self == 1
            }
        }
    )*};
}
countable!(i32, i64, u32, u64, usize);

impl<T: Countable + ?Sized> Countable for &T {
    fn is_one(&self) -> bool {
        (**self).is_one()
    }
}

/// The noun for a count: `noun(1, "order", "orders")` is "order", any
/// other number takes the plural. For pages where the number is shown on
/// its own (formatted, or in a live-updated element).
pub fn noun(n: impl Countable, one: &'static str, many: &'static str) -> &'static str {
    if n.is_one() {
        one
    } else {
        many
    }
}

/// A count with its noun, "1 order" or "3 orders": every "{n} things" on
/// a page goes through this, so none reads "1 orders".
pub fn count<N: Countable + std::fmt::Display>(
    n: N,
    one: &'static str,
    many: &'static str,
) -> String {
    format!("{n} {}", noun(&n, one, many))
}

/// "3m ago", "5h ago", "2d ago", or the date for older times.
pub fn relative(ms: i64, now: i64) -> String {
    let s = (now - ms).max(0) / 1000;
    match s {
        0..=59 => "just now".into(),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        86_400..=604_799 => format!("{}d ago", s / 86_400),
        _ => fmt_time(ms),
    }
}

/// Messages shown after a redirect, chosen by code so that no text from the
/// URL is ever reflected into the page.
pub fn notice(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "role" => "Role changed.",
        "removed" => "Member removed.",
        "invitation_revoked" => "Invitation withdrawn. Its link no longer works.",
        "joined" => "Welcome: you are now a member of this organization.",
        "revoked" => "API key revoked. Requests with it now fail.",
        "switched" => "Switched organization.",
        "password" => "Password changed. Your other sessions were signed out.",
        "signed_out" => "You are signed out.",
        "merged" => {
            "Merged. The explanation below says why they are one customer; Unmerge undoes it."
        }
        "unmerged" => "Unmerged. Both customers are back with their own identities and events.",
        "erased" => "Customer erased: their details, identifiers and timeline are deleted.",
        "rules" => "Identity rules saved. They apply to new events.",
        "replayed" => {
            "Queued for replay. Its effects are idempotent: only what is missing changes."
        }
        "retried" => "Queued for retry.",
        "retried_all" => "Every parked event is queued for retry.",
        "intent" => "Intent rules saved. They score the next event.",
        "intent_reset" => "Intent rules reset to the defaults.",
        "leads" => "Lead settings saved. They apply to the next event.",
        "campaign_created" => "Campaign saved.",
        "campaign_saved" => {
            "Campaign saved. Customers already in it get the edited steps from their next one."
        }
        "status_active" => "Campaign active: it enrolls customers and sends.",
        "status_paused" => "Campaign paused: nothing is sent; customers stay where they are.",
        "status_draft" => "Campaign set to draft: it enrolls nobody.",
        "status_archived" => "Campaign archived: every customer in it was taken out.",
        "nudges" => "Nudge settings saved.",
        "enrollment_removed" => "Taken out of the campaign. Nothing more is sent.",
        _ => return None,
    };
    Some(text.to_string())
}

#[derive(serde::Deserialize, Default)]
pub struct NoticeQuery {
    pub done: Option<String>,
}
