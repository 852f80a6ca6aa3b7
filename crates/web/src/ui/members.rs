//! Settings → Members: list, change role, remove; invite (the accept link
//! is shown once, to the inviting admin, to hand over) and the pending
//! invitations with a way to withdraw each.

use super::{fmt_time, notice, Chrome, NoticeQuery, PathId};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::Role;
use bos_engine::admin::{self, Actor};
use serde::Deserialize;

pub struct Row {
    user_id: String,
    name: String,
    email: String,
    role: &'static str,
    joined: String,
    pending: bool,
    is_you: bool,
    can_edit: bool,
}

/// A pending (or expired) invitation as the page lists it.
pub struct InviteRow {
    id: String,
    email: String,
    role: &'static str,
    state: &'static str,
    expires: String,
    can_revoke: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    c: Chrome,
    rows: Vec<Row>,
    invitations: Vec<InviteRow>,
    assignable: Vec<&'static str>,
    /// The address just invited, its accept link (shown once) and whether
    /// it was e-mailed too.
    invited: Option<(String, String, bool)>,
    error: Option<String>,
    form_email: String,
}

fn actor(s: &Session) -> Actor {
    Actor {
        org_id: s.org.id,
        role: s.role,
        user_id: Some(s.user.id),
    }
}

async fn render_page(
    st: &AppState,
    s: &Session,
    c: Chrome,
    invited: Option<(String, String, bool)>,
    error: Option<String>,
    form_email: String,
) -> PageResult<MembersPage> {
    let members = st.store.members(s.org.id).await?;
    let rows = members
        .iter()
        .map(|m| Row {
            user_id: m.user_id.to_string(),
            name: m.display_name.clone(),
            email: m.email.clone(),
            role: m.role.as_str(),
            joined: fmt_time(m.joined_at),
            pending: m.must_change_password,
            is_you: m.user_id == s.user.id,
            can_edit: s.role.may_assign(m.role),
        })
        .collect();
    let now = st.now();
    let invitations = if s.role.can_administer() {
        st.store
            .open_invitations(s.org.id)
            .await?
            .iter()
            .map(|i| InviteRow {
                id: i.id.to_string(),
                email: i.email.clone(),
                role: i.role.as_str(),
                state: i.state(now).as_str(),
                expires: fmt_time(i.expires_at),
                can_revoke: s.role.may_assign(i.role),
            })
            .collect()
    } else {
        Vec::new()
    };
    let assignable = Role::ALL
        .iter()
        .filter(|r| s.role.may_assign(**r))
        .map(|r| r.as_str())
        .collect();
    Ok(MembersPage {
        c,
        rows,
        invitations,
        assignable,
        invited,
        error,
        form_email,
    })
}

pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let mut c = Chrome::new(&s, "Members", "members");
    c.notice = notice(q.done.as_deref());
    let p = render_page(&st, &s, c, None, None, Default::default()).await?;
    Ok(super::render(&p))
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

pub async fn invite(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<InviteForm>,
) -> PageResult<Response> {
    let c = Chrome::new(&s, "Members", "members");
    let result = match Role::parse(&f.role) {
        Ok(role) => admin::invite(
            &st.store,
            &st.nudger,
            &st.urls(),
            &actor(&s),
            &f.email,
            role,
            st.now(),
        )
        .await
        .map_err(AppError::from),
        Err(e) => Err(AppError::invalid("role", e.0)),
    };
    match result {
        Ok(inv) => {
            let p = render_page(
                &st,
                &s,
                c,
                Some((inv.invitation.email, inv.accept_url, inv.emailed)),
                None,
                String::new(),
            )
            .await?;
            Ok(super::render(&p))
        }
        Err(e @ (AppError::Invalid { .. } | AppError::Conflict(_) | AppError::Forbidden(_))) => {
            let status = e.status();
            let p = render_page(&st, &s, c, None, Some(e.detail()), f.email).await?;
            Ok((status, super::render(&p)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub async fn change_role(
    State(st): State<AppState>,
    s: Session,
    PathId(user_id): PathId,
    CsrfForm(f): CsrfForm<RoleForm>,
) -> PageResult<Response> {
    let role = Role::parse(&f.role).map_err(|e| AppError::invalid("role", e.0))?;
    match admin::change_role(&st.store, &actor(&s), user_id, role)
        .await
        .map_err(AppError::from)
    {
        Ok(_) => Ok(Redirect::to("/settings/members?done=role").into_response()),
        Err(e @ (AppError::Conflict(_) | AppError::Forbidden(_))) => {
            let c = Chrome::new(&s, "Members", "members");
            let p = render_page(&st, &s, c, None, Some(e.detail()), Default::default()).await?;
            Ok((StatusCode::CONFLICT, super::render(&p)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn remove(
    State(st): State<AppState>,
    s: Session,
    PathId(user_id): PathId,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    match admin::remove(&st.store, &actor(&s), user_id)
        .await
        .map_err(AppError::from)
    {
        Ok(()) => Ok(Redirect::to("/settings/members?done=removed").into_response()),
        Err(e @ (AppError::Conflict(_) | AppError::Forbidden(_))) => {
            let c = Chrome::new(&s, "Members", "members");
            let p = render_page(&st, &s, c, None, Some(e.detail()), Default::default()).await?;
            Ok((e.status(), super::render(&p)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn revoke_invitation(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    match admin::revoke_invitation(&st.store, &actor(&s), id, st.now())
        .await
        .map_err(AppError::from)
    {
        Ok(()) => Ok(Redirect::to("/settings/members?done=invitation_revoked").into_response()),
        Err(e @ (AppError::Conflict(_) | AppError::Forbidden(_))) => {
            let c = Chrome::new(&s, "Members", "members");
            let p = render_page(&st, &s, c, None, Some(e.detail()), Default::default()).await?;
            Ok((e.status(), super::render(&p)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
