//! Cookie sessions (ASVS V7) and CSRF (V3/V4).
//!
//! A session token is 32 random bytes; only its SHA-256 is stored. A new
//! token is issued at every login (the old one, if any, is deleted), the
//! session dies at logout and at password change, and it expires after an
//! idle period and an absolute lifetime. The cookie is `__Host-` prefixed,
//! `Secure`, `HttpOnly`, `SameSite=Lax`.
//!
//! Every state-changing UI request carries a per-session synchronizer token
//! (`_csrf` form field) and, when the browser sends `Origin` or
//! `Sec-Fetch-Site`, must come from this site. The login form, which has no
//! session yet, uses a double-submit cookie instead.

use super::{constant_time_eq, random_token, sha256};
use crate::error::{AppError, PageError};
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::Role;
use bos_store::{Org, OrgMembership, SessionRecord, User};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uuid::Uuid;

pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies {
        "__Host-bos_session"
    } else {
        "bos_session"
    }
}

pub fn pre_cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies {
        "__Host-bos_pre"
    } else {
        "bos_pre"
    }
}

/// A `Set-Cookie` value with our fixed attributes.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A new session for `user` in `org`: returns the cookie value.
pub async fn start_session(
    state: &AppState,
    user_id: Uuid,
    org_id: Option<Uuid>,
) -> Result<String, AppError> {
    let token = random_token(32);
    let now = state.now();
    state
        .store
        .create_session(&SessionRecord {
            token_hash: sha256(&token),
            user_id,
            org_id,
            csrf_token: random_token(32),
            created_at: now,
            last_seen_at: now,
            expires_at: now + state.config.session_absolute_ms,
        })
        .await?;
    Ok(token)
}

/// The signed-in person, their current organization and role there.
#[derive(Clone)]
pub struct Session {
    pub token_hash: Vec<u8>,
    pub user: User,
    pub org: Org,
    pub role: Role,
    pub orgs: Vec<OrgMembership>,
    pub csrf: String,
}

impl Session {
    /// 403 unless the member is an admin or owner here.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.role.can_administer() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "Only admins and owners of this organization can do that. Ask one of them.".into(),
            ))
        }
    }
}

/// Why there is no usable session.
pub enum SessionRejection {
    /// Not signed in (or the session ended): go to the login page.
    Login {
        next: String,
    },
    /// Signed in, but a member of no organization.
    NoOrganization,
    /// Signed in with a one-time password that must be replaced first.
    ChangePassword,
    Error(AppError),
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self {
            SessionRejection::Login { next } => {
                let q = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                Redirect::to(&format!("/login?{q}")).into_response()
            }
            SessionRejection::ChangePassword => Redirect::to("/account").into_response(),
            SessionRejection::NoOrganization => PageError(AppError::Forbidden(
                "Your account is not a member of any organization. Ask an owner to add you, or create one with `bos org create`."
                    .into(),
            ))
            .into_response(),
            SessionRejection::Error(e) => PageError(e).into_response(),
        }
    }
}

impl From<bos_store::StoreError> for SessionRejection {
    fn from(e: bos_store::StoreError) -> Self {
        SessionRejection::Error(e.into())
    }
}

/// Looks up the session behind the request's cookie, if it is live.
pub async fn current(
    parts_headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<(SessionRecord, User)>, AppError> {
    let Some(token) = read_cookie(parts_headers, session_cookie_name(state)) else {
        return Ok(None);
    };
    let hash = sha256(&token);
    let Some(rec) = state.store.session(&hash).await? else {
        return Ok(None);
    };
    let now = state.now();
    if now >= rec.expires_at || now - rec.last_seen_at >= state.config.session_idle_ms {
        state.store.delete_session(&hash).await?;
        return Ok(None);
    }
    let user = match state.store.user(rec.user_id).await {
        Ok(u) => u,
        Err(bos_store::StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some((rec, user)))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(s) = parts.extensions.get::<Session>() {
            return Ok(s.clone());
        }
        let next = if parts.method == Method::GET {
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into())
        } else {
            "/".into()
        };
        let Some((rec, user)) = current(&parts.headers, state)
            .await
            .map_err(SessionRejection::Error)?
        else {
            return Err(SessionRejection::Login { next });
        };
        let path = parts.uri.path();
        if user.must_change_password
            && !(path == "/account" || path == "/account/password" || path == "/logout")
        {
            return Err(SessionRejection::ChangePassword);
        }
        let orgs = state.store.user_orgs(user.id).await?;
        let chosen = rec
            .org_id
            .and_then(|id| orgs.iter().find(|m| m.org.id == id))
            .or_else(|| orgs.first())
            .cloned();
        let Some(m) = chosen else {
            return Err(SessionRejection::NoOrganization);
        };
        let now = state.now();
        if rec.org_id != Some(m.org.id) {
            state
                .store
                .set_session_org(&rec.token_hash, m.org.id)
                .await?;
        }
        // Idle tracking costs a write; once a minute is precise enough.
        if now - rec.last_seen_at > 60_000 {
            state.store.touch_session(&rec.token_hash, now).await?;
        }
        let s = Session {
            token_hash: rec.token_hash,
            user,
            org: m.org,
            role: m.role,
            orgs,
            csrf: rec.csrf_token,
        };
        parts.extensions.insert(s.clone());
        Ok(s)
    }
}

/// True when the browser says the request came from another site.
pub fn cross_site(headers: &HeaderMap, state: &AppState) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site == "cross-site" || site == "same-site" {
            return true;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // No Origin (old browsers, curl): the synchronizer token alone decides.
        return false;
    };
    if origin == "null" {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    let public = state.config.public_url.trim_end_matches('/');
    !(origin_host == host || origin == public)
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// A form body from a signed-in user, accepted only with this session's CSRF
/// token and from this site. Must come after [`Session`] in the handler's
/// arguments (it reads the session that extractor stored).
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let cross = cross_site(&parts.headers, state);
        let bytes = axum::body::to_bytes(body, state.config.body_limit_bytes)
            .await
            .map_err(|_| PageError(AppError::body_too_large()).into_response())?;
        let field: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        if cross
            || field.csrf.is_empty()
            || !constant_time_eq(field.csrf.as_bytes(), session.csrf.as_bytes())
        {
            tracing::warn!(user = %session.user.id, cross, "CSRF check failed");
            return Err(PageError(AppError::Csrf).into_response());
        }
        let value = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            PageError(AppError::BadRequest(format!(
                "The form could not be read: {e}."
            )))
            .into_response()
        })?;
        Ok(CsrfForm(value))
    }
}
