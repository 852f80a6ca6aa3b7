//! The accept page of an invitation (`/invitations/{token}`): the link an
//! admin handed over. Someone signed in to the invited address's account
//! joins with one button; someone new sets a name and password and their
//! account is made with the membership, in one transaction. The token is
//! the only thing that names the invitation, and only its hash is stored.
//!
//! The page has no organization session to lean on, so its forms carry
//! their own CSRF proof: the session's token when signed in, otherwise the
//! same double-submit cookie as the login form.

use crate::auth::session::{
    self, cross_site, pre_cookie_name, read_cookie, session_cookie_name, set_cookie,
};
use crate::auth::{constant_time_eq, random_token, sha256};
use crate::error::{AppError, PageError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use bos_core::InvitationState;
use bos_store::invitations::{AcceptError, Acceptor, Invitation};
use bos_store::{Org, User};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    css: &'static str,
    token: String,
    org_name: String,
    email: String,
    role: &'static str,
    /// Why the link cannot be used; nothing else is offered then.
    refusal: Option<String>,
    error: Option<String>,
    /// Signed in: (the account's address, its CSRF token, whether it is
    /// the invited address).
    signed_in: Option<(String, String, bool)>,
    /// The double-submit token of the new-account form.
    pre: String,
    name: String,
    min_len: usize,
}

/// The token of an accept link: 32 random bytes, base64url (43 characters).
/// Anything else is not looked up.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn find(st: &AppState, token: &str) -> Result<(Invitation, Org), AppError> {
    if !well_formed(token) {
        return Err(AppError::NotFound);
    }
    st.store
        .invitation_by_token(&sha256(token))
        .await?
        .ok_or(AppError::NotFound)
}

struct View {
    status: StatusCode,
    error: Option<String>,
    name: String,
}

async fn render(
    st: &AppState,
    headers: &HeaderMap,
    token: &str,
    inv: &Invitation,
    org: &Org,
    view: View,
) -> PageResult<Response> {
    let state = inv.state(st.now());
    let signed_in: Option<(String, String, bool)> =
        session::current(headers, st)
            .await?
            .map(|(rec, user): (_, User)| {
                let same = user.email == inv.email;
                (user.email, rec.csrf_token, same)
            });
    let pre = random_token(32);
    let status = match state {
        InvitationState::Pending => view.status,
        _ => StatusCode::GONE,
    };
    let page = InvitationPage {
        css: crate::assets::url("app.css"),
        token: token.to_string(),
        org_name: org.name.clone(),
        email: inv.email.clone(),
        role: inv.role.as_str(),
        refusal: state.refusal().map(str::to_string),
        error: view.error,
        signed_in,
        pre: pre.clone(),
        name: view.name,
        min_len: bos_core::auth::MIN_PASSWORD_CHARS,
    };
    let mut res = (status, super::render(&page)).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(st, pre_cookie_name(st), &pre, 3600),
    );
    // The link is a credential: keep it out of caches and referrers.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    Ok(res)
}

pub async fn page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> PageResult<Response> {
    let (inv, org) = find(&st, &token).await?;
    render(
        &st,
        &headers,
        &token,
        &inv,
        &org,
        View {
            status: StatusCode::OK,
            error: None,
            name: String::new(),
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    /// `accept` (signed in) or `create` (a new account).
    #[serde(default)]
    action: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<AcceptForm>,
) -> PageResult<Response> {
    let (inv, org) = find(&st, &token).await?;
    let again = |status: StatusCode, error: String, name: String| View {
        status,
        error: Some(error),
        name,
    };
    let now = st.now();
    // A used, withdrawn or expired link says so before anything else, as
    // its page does.
    if inv.state(now) != InvitationState::Pending {
        return render(
            &st,
            &headers,
            &token,
            &inv,
            &org,
            View {
                status: StatusCode::GONE,
                error: None,
                name: String::new(),
            },
        )
        .await;
    }
    let hash = sha256(&token);
    let (who, new_session) = match f.action.as_str() {
        "accept" => {
            let Some((rec, user)) = session::current(&headers, &st).await? else {
                return render(
                    &st,
                    &headers,
                    &token,
                    &inv,
                    &org,
                    again(
                        StatusCode::UNAUTHORIZED,
                        "Your session ended. Sign in again, then accept.".into(),
                        String::new(),
                    ),
                )
                .await;
            };
            if cross_site(&headers, &st)
                || f.csrf.is_empty()
                || !constant_time_eq(f.csrf.as_bytes(), rec.csrf_token.as_bytes())
            {
                return Err(PageError(AppError::Csrf));
            }
            (Acceptor::Existing(user.id), None)
        }
        "create" => {
            let pre = read_cookie(&headers, pre_cookie_name(&st)).unwrap_or_default();
            if cross_site(&headers, &st)
                || pre.is_empty()
                || !constant_time_eq(pre.as_bytes(), f.csrf.as_bytes())
            {
                return Err(PageError(AppError::Csrf));
            }
            let name = match bos_core::tenancy::display_name(&f.name) {
                Ok(n) => n,
                Err(e) => {
                    return render(
                        &st,
                        &headers,
                        &token,
                        &inv,
                        &org,
                        again(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!("Your name: {e}."),
                            f.name,
                        ),
                    )
                    .await
                }
            };
            if let Err(e) = bos_core::auth::check_password(&f.password) {
                return render(
                    &st,
                    &headers,
                    &token,
                    &inv,
                    &org,
                    again(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("The password is not acceptable: {e}."),
                        name,
                    ),
                )
                .await;
            }
            if f.password != f.confirm {
                return render(
                    &st,
                    &headers,
                    &token,
                    &inv,
                    &org,
                    again(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "The two passwords differ. Type the same password twice.".into(),
                        name,
                    ),
                )
                .await;
            }
            let password_hash = st
                .passwords
                .hash(f.password)
                .await
                .map_err(AppError::Internal)?;
            (
                Acceptor::New {
                    display_name: name,
                    password_hash,
                },
                Some(()),
            )
        }
        _ => {
            return Err(PageError(AppError::BadRequest(
                "The form could not be read: use the buttons on the invitation page.".into(),
            )))
        }
    };
    let name_back = match &who {
        Acceptor::New { display_name, .. } => display_name.clone(),
        Acceptor::Existing(_) => String::new(),
    };
    let (inv, user) = match st.store.accept_invitation(&hash, who, now).await? {
        Ok(x) => x,
        Err(e) => {
            let (status, msg) = match e {
                AcceptError::Unknown => return Err(PageError(AppError::NotFound)),
                AcceptError::NotPending(s) => (
                    StatusCode::GONE,
                    s.refusal().unwrap_or("This invitation cannot be used.").to_string(),
                ),
                AcceptError::WrongAccount => (
                    StatusCode::FORBIDDEN,
                    format!(
                        "This invitation is for {}. Sign out, then sign in with that account to accept.",
                        inv.email
                    ),
                ),
                AcceptError::AccountExists => (
                    StatusCode::CONFLICT,
                    "An account with this address exists already: sign in with it to accept.".into(),
                ),
            };
            return render(
                &st,
                &headers,
                &token,
                &inv,
                &org,
                again(status, msg, name_back),
            )
            .await;
        }
    };
    tracing::info!(user = %user.id, org = %inv.org_id, "invitation accepted");
    let mut res = Redirect::to("/?done=joined").into_response();
    match new_session {
        // A new account: signed in at once, in the organization it joined.
        Some(()) => {
            if let Some(old) = read_cookie(&headers, session_cookie_name(&st)) {
                st.store.delete_session(&sha256(&old)).await?;
            }
            let cookie = session::start_session(&st, user.id, Some(inv.org_id)).await?;
            res.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    &st,
                    session_cookie_name(&st),
                    &cookie,
                    st.config.session_absolute_ms / 1000,
                ),
            );
        }
        // Signed in already: this session moves to the organization joined.
        None => {
            if let Some(old) = read_cookie(&headers, session_cookie_name(&st)) {
                st.store.set_session_org(&sha256(&old), inv.org_id).await?;
            }
        }
    }
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&st, pre_cookie_name(&st), "", 0),
    );
    Ok(res)
}
