//! `/members`: list, invite, change role, remove; `/invitations`: the
//! pending invitations, withdraw one (admin scope). Inviting never reads
//! out or changes an existing account: the person accepts through a link.

use super::{admin_actor, rfc3339, ApiJson, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bos_core::Role;
use bos_engine::admin;
use bos_store::invitations::Invitation;
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
    /// True until the member replaces a password set by an operator
    /// (`bos user create`).
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
    /// The address the invitation is for; the person accepts with an
    /// account of this address (signing in, or making one).
    pub email: String,
    /// `admin` or `member` (an API key cannot make owners).
    pub role: String,
}

/// An invitation to join the organization.
#[derive(Serialize, ToSchema)]
pub struct InvitationDto {
    pub id: uuid::Uuid,
    /// The address as it was invited (normalized).
    pub email: String,
    /// The role the person gets on accepting: `owner`, `admin` or `member`.
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub state: String,
    pub created_at: String,
    pub expires_at: String,
}

impl InvitationDto {
    pub fn of(i: &Invitation, now: i64) -> Self {
        InvitationDto {
            id: i.id,
            email: i.email.clone(),
            role: i.role.as_str().into(),
            state: i.state(now).as_str().into(),
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
        }
    }
}

/// The answer to an invitation, the same whether or not the address has
/// an account anywhere.
#[derive(Serialize, ToSchema)]
pub struct CreatedInvitation {
    pub invitation: InvitationDto,
    /// The link the person opens to accept. Give it to them: it is shown
    /// only in this answer (BOS keeps only its hash) and works once, until
    /// `expires_at`.
    pub accept_url: String,
    /// True when the link was also e-mailed to the address through the
    /// organization's SMTP channel (and the mail server accepted it); false
    /// with the development sink or when sending failed.
    pub emailed: bool,
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

/// Invites a person. They become a member only when they accept through
/// `accept_url` (signing in to their account, or making one). The answer is
/// the same whether or not the address has an account; no account is read
/// or changed.
#[utoipa::path(post, path = "/members", tag = "members", request_body = CreateMember,
    responses((status = 201, body = CreatedInvitation), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem, description = "Already a member of this organization"),
              (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<CreateMember>, AppError>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let inv = admin::invite(
        &st.store,
        &st.nudger,
        &st.urls(),
        &a,
        &body.email,
        role(&body.role)?,
        st.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            invitation: InvitationDto::of(&inv.invitation, st.now()),
            accept_url: inv.accept_url,
            emailed: inv.emailed,
        }),
    ))
}

/// Invitations not yet accepted or withdrawn (expired ones included).
#[utoipa::path(get, path = "/invitations", tag = "members",
    responses((status = 200, body = Vec<InvitationDto>), (status = 403, body = crate::error::Problem)))]
pub async fn invitations(
    State(st): State<AppState>,
    p: ApiPrincipal,
) -> ApiResult<Json<Vec<InvitationDto>>> {
    let a = admin_actor(&p)?;
    let now = st.now();
    Ok(Json(
        st.store
            .open_invitations(a.org_id)
            .await?
            .iter()
            .map(|i| InvitationDto::of(i, now))
            .collect(),
    ))
}

/// Withdraws an invitation: its link stops working.
#[utoipa::path(delete, path = "/invitations/{invitation_id}", tag = "members",
    params(("invitation_id" = uuid::Uuid, Path, description = "The invitation's id")),
    responses((status = 204), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem, description = "Already accepted or withdrawn")))]
pub async fn revoke_invitation(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    st.store.invitation(p.org.id, id).await?;
    let a = admin_actor(&p)?;
    admin::revoke_invitation(&st.store, &a, id, st.now()).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let m = admin::change_role(&st.store, &a, user_id, role(&body.role)?).await?;
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
    admin::remove(&st.store, &a, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
