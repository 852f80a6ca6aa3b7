//! The overview of the current organization, and the organization switcher.

use super::{notice, relative, Chrome, NoticeQuery};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::Role;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    c: Chrome,
    org_slug: String,
    org_created: String,
    owners: usize,
    admins: usize,
    members: usize,
    pending_passwords: usize,
    keys_active: usize,
    keys_revoked: usize,
    last_key_use: Option<(String, String)>,
    engine: &'static str,
    version: &'static str,
    other_orgs: Vec<(String, String)>,
}

pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let members = st.store.members(s.org.id).await?;
    let keys = st.store.api_keys(s.org.id).await?;
    let now = st.now();
    let count = |r: Role| members.iter().filter(|m| m.role == r).count();
    let last_key_use = keys
        .iter()
        .filter(|k| k.last_used_at.is_some())
        .max_by_key(|k| k.last_used_at)
        .map(|k| (k.name.clone(), relative(k.last_used_at.unwrap_or(0), now)));
    let mut c = Chrome::new(&s, "Overview", "home");
    c.notice = notice(q.done.as_deref());
    let page = HomePage {
        org_slug: s.org.slug.clone(),
        org_created: super::fmt_time(s.org.created_at),
        owners: count(Role::Owner),
        admins: count(Role::Admin),
        members: count(Role::Member),
        pending_passwords: members.iter().filter(|m| m.must_change_password).count(),
        keys_active: keys.iter().filter(|k| k.revoked_at.is_none()).count(),
        keys_revoked: keys.iter().filter(|k| k.revoked_at.is_some()).count(),
        last_key_use,
        engine: match st.store.kind() {
            bos_store::EngineKind::Sqlite => "SQLite (embedded)",
            bos_store::EngineKind::Postgres => "PostgreSQL",
        },
        version: env!("CARGO_PKG_VERSION"),
        other_orgs: s
            .orgs
            .iter()
            .filter(|m| m.org.id != s.org.id)
            .map(|m| (m.org.name.clone(), m.role.as_str().to_string()))
            .collect(),
        c,
    };
    Ok(super::render(&page))
}

#[derive(Deserialize)]
pub struct SwitchForm {
    org_id: String,
}

pub async fn switch_org(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<SwitchForm>,
) -> PageResult<Response> {
    let id = uuid::Uuid::parse_str(f.org_id.trim()).map_err(|_| AppError::NotFound)?;
    // Only organizations this user belongs to; anything else is "not found".
    if !s.orgs.iter().any(|m| m.org.id == id) {
        return Err(AppError::NotFound.into());
    }
    st.store.set_session_org(&s.token_hash, id).await?;
    Ok(Redirect::to("/?done=switched").into_response())
}
