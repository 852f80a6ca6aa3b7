//! Signing in and out. The login form has no session yet, so it is
//! protected by a double-submit cookie; failures are throttled per login
//! name (known or not) and answered identically for known and unknown users.

use crate::auth::session::{
    self, cross_site, pre_cookie_name, read_cookie, session_cookie_name, set_cookie, CsrfForm,
    Session,
};
use crate::auth::{constant_time_eq, random_token, sha256};
use crate::error::{AppError, PageError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use bos_core::{Email, LoginThrottle, ThrottleDecision};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    css: &'static str,
    pre: String,
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    done: Option<String>,
}

/// Only paths on this site (see [`bos_core::edge::safe_local_path`]);
/// anything else signs in to the dashboard.
fn safe_next(next: Option<&str>) -> String {
    next.and_then(bos_core::edge::safe_local_path)
        .unwrap_or_else(|| "/".to_string())
}

fn login_form(
    state: &AppState,
    status: StatusCode,
    next: String,
    email: String,
    error: Option<String>,
) -> Response {
    login_form_with(state, status, next, email, error, None)
}

fn login_form_with(
    state: &AppState,
    status: StatusCode,
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let pre = random_token(32);
    let page = LoginPage {
        css: crate::assets::url("app.css"),
        pre: pre.clone(),
        next,
        email,
        error,
        notice,
    };
    let mut res = (status, super::render(&page)).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, pre_cookie_name(state), &pre, 3600),
    );
    res
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> PageResult<Response> {
    let next = safe_next(q.next.as_deref());
    if session::current(&headers, &state).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let notice = super::notice(q.done.as_deref());
    Ok(login_form_with(
        &state,
        StatusCode::OK,
        next,
        String::new(),
        None,
        notice,
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(rename = "_csrf", default)]
    csrf: String,
    next: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> PageResult<Response> {
    let pre = read_cookie(&headers, pre_cookie_name(&state)).unwrap_or_default();
    if cross_site(&headers, &state)
        || pre.is_empty()
        || !constant_time_eq(pre.as_bytes(), f.csrf.as_bytes())
    {
        return Err(PageError(AppError::Csrf));
    }
    let next = safe_next(f.next.as_deref());
    let login = f.email.trim().to_lowercase();
    let now = state.now();
    let throttle = LoginThrottle::default();
    let since = now - throttle.window_ms.max(throttle.lock_ms);
    let failures = state.store.login_failures_since(&login, since).await?;
    if let ThrottleDecision::Locked { retry_after_ms } = throttle.decide(&failures, now) {
        let minutes = (retry_after_ms + 59_999) / 60_000;
        tracing::warn!("login throttled");
        let mut res = login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            f.email.trim().to_string(),
            Some(format!(
                "Too many failed sign-in attempts for this account. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
        if let Ok(v) = (retry_after_ms / 1000).max(1).to_string().parse() {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(res);
    }
    let user = match Email::parse(&login) {
        Ok(e) => state.store.user_by_email(&e).await?,
        Err(_) => None,
    };
    let ok = state
        .passwords
        .verify(user.as_ref().map(|u| u.password_hash.clone()), f.password)
        .await;
    let Some(user) = user.filter(|_| ok) else {
        state.store.record_login_failure(&login, now).await?;
        return Ok(login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            f.email.trim().to_string(),
            Some("Email or password is incorrect.".into()),
        ));
    };
    state.store.clear_login_failures(&login).await?;
    // Rotate: whatever session the browser held before is ended.
    if let Some(old) = read_cookie(&headers, session_cookie_name(&state)) {
        state.store.delete_session(&sha256(&old)).await?;
    }
    let token = session::start_session(&state, user.id, None).await?;
    let to = if user.must_change_password {
        "/account".to_string()
    } else {
        next
    };
    let mut res = Redirect::to(&to).into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            &state,
            session_cookie_name(&state),
            &token,
            state.config.session_absolute_ms / 1000,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, pre_cookie_name(&state), "", 0),
    );
    tracing::info!(user = %user.id, "signed in");
    Ok(res)
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(
    State(state): State<AppState>,
    s: Session,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    state.store.delete_session(&s.token_hash).await?;
    let mut res = Redirect::to("/login?done=signed_out").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, session_cookie_name(&state), "", 0),
    );
    Ok(res)
}
