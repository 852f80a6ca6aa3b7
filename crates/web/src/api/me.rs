//! `GET /me` and `GET /organization`: who is calling, on behalf of whom.

use super::rfc3339;
use crate::auth::keys::ApiPrincipal;
use crate::error::ApiResult;
use axum::Json;
use bos_store::Org;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct OrgDto {
    pub id: uuid::Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: String,
}

impl From<&Org> for OrgDto {
    fn from(o: &Org) -> Self {
        OrgDto {
            id: o.id,
            slug: o.slug.clone(),
            name: o.name.clone(),
            created_at: rfc3339(o.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    /// Always `api_key`: the API is for programs; people use the web UI.
    pub principal: &'static str,
    pub key: super::keys::KeyDto,
    pub organization: OrgDto,
}

/// The calling API key and its organization.
#[utoipa::path(get, path = "/me", tag = "organization",
    responses((status = 200, body = Me), (status = 401, body = crate::error::Problem)))]
pub async fn me(p: ApiPrincipal) -> ApiResult<Json<Me>> {
    Ok(Json(Me {
        principal: "api_key",
        key: (&p.key).into(),
        organization: (&p.org).into(),
    }))
}

/// The caller's organization.
#[utoipa::path(get, path = "/organization", tag = "organization",
    responses((status = 200, body = OrgDto), (status = 401, body = crate::error::Problem)))]
pub async fn organization(p: ApiPrincipal) -> ApiResult<Json<OrgDto>> {
    Ok(Json((&p.org).into()))
}
