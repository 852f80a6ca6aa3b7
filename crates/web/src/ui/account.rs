//! The signed-in person's own account: change password. A change ends every
//! session of the account (ASVS) and starts a fresh one for this browser;
//! wrong current passwords are throttled with the sign-in failures.

use super::{notice, Chrome, NoticeQuery};
use crate::auth::session::{session_cookie_name, set_cookie, start_session, CsrfForm, Session};
use crate::error::PageResult;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::{LoginThrottle, ThrottleDecision};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    c: Chrome,
    must_change: bool,
    error: Option<String>,
    min_len: usize,
}

pub async fn page(s: Session, Query(q): Query<NoticeQuery>) -> PageResult<Response> {
    let mut c = Chrome::new(&s, "Account", "account");
    c.notice = notice(q.done.as_deref());
    let p = AccountPage {
        c,
        must_change: s.user.must_change_password,
        error: None,
        min_len: bos_core::auth::MIN_PASSWORD_CHARS,
    };
    Ok(super::render(&p))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<PasswordForm>,
) -> PageResult<Response> {
    let fail = |msg: String| {
        let c = Chrome::new(&s, "Account", "account");
        let p = AccountPage {
            c,
            must_change: s.user.must_change_password,
            error: Some(msg),
            min_len: bos_core::auth::MIN_PASSWORD_CHARS,
        };
        Ok((StatusCode::UNPROCESSABLE_ENTITY, super::render(&p)).into_response())
    };
    // Guessing the current password from a signed-in session (a stolen
    // cookie) is throttled like sign-in: the failures count against the
    // same account name, so neither door allows more guesses.
    let login = s.user.email.to_lowercase();
    let now = st.now();
    let throttle = LoginThrottle::default();
    let since = now - throttle.window_ms.max(throttle.lock_ms);
    let failures = st.store.login_failures_since(&login, since).await?;
    if let ThrottleDecision::Locked { retry_after_ms } = throttle.decide(&failures, now) {
        let minutes = (retry_after_ms + 59_999) / 60_000;
        tracing::warn!(user = %s.user.id, "password change throttled");
        let c = Chrome::new(&s, "Account", "account");
        let p = AccountPage {
            c,
            must_change: s.user.must_change_password,
            error: Some(format!(
                "Too many wrong passwords for this account. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
            min_len: bos_core::auth::MIN_PASSWORD_CHARS,
        };
        let mut res = (StatusCode::TOO_MANY_REQUESTS, super::render(&p)).into_response();
        if let Ok(v) = (retry_after_ms / 1000).max(1).to_string().parse() {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(res);
    }
    if !st
        .passwords
        .verify(Some(s.user.password_hash.clone()), f.current)
        .await
    {
        st.store.record_login_failure(&login, now).await?;
        return fail("Your current password is not correct.".into());
    }
    st.store.clear_login_failures(&login).await?;
    if let Err(e) = bos_core::auth::check_password(&f.new) {
        return fail(format!("The new password is not acceptable: {e}."));
    }
    if f.new != f.confirm {
        return fail("The two new passwords differ. Type the same password twice.".into());
    }
    let hash = st
        .passwords
        .hash(f.new)
        .await
        .map_err(crate::error::AppError::Internal)?;
    st.store
        .set_password(s.user.id, &hash, false, st.now())
        .await?;
    let token = start_session(&st, s.user.id, Some(s.org.id)).await?;
    let mut res = Redirect::to("/account?done=password").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &st,
            session_cookie_name(&st),
            &token,
            st.config.session_absolute_ms / 1000,
        ),
    );
    Ok(res)
}
