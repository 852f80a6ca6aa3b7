//! Settings → API keys: list, create (the secret is shown once), revoke.

use super::{fmt_time, notice, relative, Chrome, NoticeQuery, PathId};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::Scope;
use bos_engine::admin::{self, Actor};
use serde::Deserialize;

pub struct Row {
    id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    c: Chrome,
    rows: Vec<Row>,
    all_scopes: Vec<&'static str>,
    created: Option<(String, String)>,
    error: Option<String>,
}

async fn render_page(
    st: &AppState,
    s: &Session,
    c: Chrome,
    created: Option<(String, String)>,
    error: Option<String>,
) -> PageResult<Response> {
    s.require_admin()?;
    let now = st.now();
    let rows = st
        .store
        .api_keys(s.org.id)
        .await?
        .into_iter()
        .map(|k| Row {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.display_prefix,
            scopes: k.scopes,
            created: fmt_time(k.created_at),
            last_used: k
                .last_used_at
                .map(|t| relative(t, now))
                .unwrap_or_else(|| "never".into()),
            revoked: k.revoked_at.map(fmt_time),
        })
        .collect();
    let status = if error.is_some() {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    let page = KeysPage {
        c,
        rows,
        all_scopes: Scope::ALL.iter().map(|s| s.as_str()).collect(),
        created,
        error,
    };
    Ok((status, super::render(&page)).into_response())
}

pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let mut c = Chrome::new(&s, "API keys", "keys");
    c.notice = notice(q.done.as_deref());
    render_page(&st, &s, c, None, None).await
}

pub async fn create(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<Vec<(String, String)>>,
) -> PageResult<Response> {
    let name = f
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let scopes: Vec<String> = f
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let c = Chrome::new(&s, "API keys", "keys");
    let actor = Actor {
        org_id: s.org.id,
        role: s.role,
        user_id: Some(s.user.id),
    };
    match admin::create_key(&st.store, &actor, &name, &scopes, st.now())
        .await
        .map_err(AppError::from)
    {
        Ok(issued) => render_page(&st, &s, c, Some((issued.key.name, issued.secret)), None).await,
        Err(e @ AppError::Invalid { .. }) => render_page(&st, &s, c, None, Some(e.detail())).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn revoke(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    let actor = Actor {
        org_id: s.org.id,
        role: s.role,
        user_id: Some(s.user.id),
    };
    admin::revoke_key(&st.store, &actor, id, st.now()).await?;
    Ok(Redirect::to("/settings/keys?done=revoked").into_response())
}
