//! Settings → Members: list, invite (new accounts get a one-time password
//! shown once), change role, remove.

use super::{fmt_time, notice, Chrome, NoticeQuery, PathId};
use crate::admin::{self, Actor};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::Role;
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

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    c: Chrome,
    rows: Vec<Row>,
    assignable: Vec<&'static str>,
    invited: Option<(String, Option<String>)>,
    error: Option<String>,
    form_email: String,
    form_name: String,
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
    invited: Option<(String, Option<String>)>,
    error: Option<String>,
    form: (String, String),
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
    let assignable = Role::ALL
        .iter()
        .filter(|r| s.role.may_assign(**r))
        .map(|r| r.as_str())
        .collect();
    Ok(MembersPage {
        c,
        rows,
        assignable,
        invited,
        error,
        form_email: form.0,
        form_name: form.1,
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
    name: String,
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
        Ok(role) => admin::invite(&st, &actor(&s), &f.email, &f.name, role).await,
        Err(e) => Err(AppError::invalid("role", e.0)),
    };
    match result {
        Ok(inv) => {
            let p = render_page(
                &st,
                &s,
                c,
                Some((inv.member.email, inv.one_time_password)),
                None,
                Default::default(),
            )
            .await?;
            Ok(super::render(&p))
        }
        Err(e @ (AppError::Invalid { .. } | AppError::Conflict(_) | AppError::Forbidden(_))) => {
            let status = e.status();
            let p = render_page(&st, &s, c, None, Some(e.detail()), (f.email, f.name)).await?;
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
    match admin::change_role(&st, &actor(&s), user_id, role).await {
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
    match admin::remove(&st, &actor(&s), user_id).await {
        Ok(()) => Ok(Redirect::to("/settings/members?done=removed").into_response()),
        Err(e @ (AppError::Conflict(_) | AppError::Forbidden(_))) => {
            let c = Chrome::new(&s, "Members", "members");
            let p = render_page(&st, &s, c, None, Some(e.detail()), Default::default()).await?;
            Ok((e.status(), super::render(&p)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
