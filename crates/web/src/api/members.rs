//! `/members`: list, invite, change role, remove (admin scope).

use super::{admin_actor, rfc3339, ApiJson, Id};
use crate::admin;
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bos_core::Role;
use bos_store::Member;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct MemberDto {
    pub user_id: uuid::Uuid,
    pub email: String,
    pub display_name: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
    /// True until the member replaces their one-time password.
    pub must_change_password: bool,
    pub joined_at: String,
}

impl From<&Member> for MemberDto {
    fn from(m: &Member) -> Self {
        MemberDto {
            user_id: m.user_id,
            email: m.email.clone(),
            display_name: m.display_name.clone(),
            role: m.role.as_str().into(),
            must_change_password: m.must_change_password,
            joined_at: rfc3339(m.joined_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMember {
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    /// `admin` or `member` (an API key cannot make owners).
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedMember {
    pub member: MemberDto,
    /// Present when a new account was created: give it to the person; it
    /// must be changed at first login and is never shown again.
    pub one_time_password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    pub role: String,
}

fn role(s: &str) -> Result<Role, AppError> {
    Role::parse(s).map_err(|e| AppError::invalid("role", e.0))
}

/// Members of the organization.
#[utoipa::path(get, path = "/members", tag = "members",
    responses((status = 200, body = Vec<MemberDto>), (status = 403, body = crate::error::Problem)))]
pub async fn list(State(st): State<AppState>, p: ApiPrincipal) -> ApiResult<Json<Vec<MemberDto>>> {
    let a = admin_actor(&p)?;
    Ok(Json(
        st.store
            .members(a.org_id)
            .await?
            .iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Adds a person; creates their account with a one-time password if new.
#[utoipa::path(post, path = "/members", tag = "members", request_body = CreateMember,
    responses((status = 201, body = CreatedMember), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<CreateMember>, AppError>,
) -> ApiResult<(StatusCode, Json<CreatedMember>)> {
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let inv = admin::invite(&st, &a, &body.email, &body.display_name, role(&body.role)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedMember {
            member: (&inv.member).into(),
            one_time_password: inv.one_time_password,
        }),
    ))
}

/// One member.
#[utoipa::path(get, path = "/members/{user_id}", tag = "members",
    params(("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    responses((status = 200, body = MemberDto), (status = 404, body = crate::error::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(user_id): Id,
) -> ApiResult<Json<MemberDto>> {
    // Look up first: another tenant's id is "not found" whatever the key's scopes.
    let m = st.store.member(p.org.id, user_id).await?;
    admin_actor(&p)?;
    Ok(Json((&m).into()))
}

/// Changes a member's role.
#[utoipa::path(patch, path = "/members/{user_id}", tag = "members", request_body = UpdateMember,
    params(("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    responses((status = 200, body = MemberDto), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
pub async fn update(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(user_id): Id,
    body: Result<ApiJson<UpdateMember>, AppError>,
) -> ApiResult<Json<MemberDto>> {
    st.store.member(p.org.id, user_id).await?;
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let m = admin::change_role(&st, &a, user_id, role(&body.role)?).await?;
    Ok(Json((&m).into()))
}

/// Removes a member from the organization (their account remains).
#[utoipa::path(delete, path = "/members/{user_id}", tag = "members",
    params(("user_id" = uuid::Uuid, Path, description = "The member's user id")),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(user_id): Id,
) -> ApiResult<StatusCode> {
    st.store.member(p.org.id, user_id).await?;
    let a = admin_actor(&p)?;
    admin::remove(&st, &a, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
