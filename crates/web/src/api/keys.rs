//! `/keys`: list, create (secret shown once), revoke (admin scope).

use super::{admin_actor, rfc3339, ApiJson, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bos_engine::admin;
use bos_store::ApiKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct KeyDto {
    pub id: uuid::Uuid,
    pub name: String,
    /// The first characters of the key, to recognise it; never the secret.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for KeyDto {
    fn from(k: &ApiKey) -> Self {
        KeyDto {
            id: k.id,
            name: k.name.clone(),
            prefix: k.display_prefix.clone(),
            scopes: k.scopes.clone(),
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    /// Any of `ingest`, `agent`, `admin`.
    pub scopes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub key: KeyDto,
    /// The key itself. Store it now: it is never shown again.
    pub secret: String,
}

/// API keys of the organization, newest first (revoked ones included).
#[utoipa::path(get, path = "/keys", tag = "keys",
    responses((status = 200, body = Vec<KeyDto>), (status = 403, body = crate::error::Problem)))]
pub async fn list(State(st): State<AppState>, p: ApiPrincipal) -> ApiResult<Json<Vec<KeyDto>>> {
    let a = admin_actor(&p)?;
    Ok(Json(
        st.store
            .api_keys(a.org_id)
            .await?
            .iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Creates a key; the response holds the secret, once.
#[utoipa::path(post, path = "/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<CreateKey>, AppError>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let issued = admin::create_key(&st.store, &a, &body.name, &body.scopes, st.now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: (&issued.key).into(),
            secret: issued.secret,
        }),
    ))
}

/// One key (without its secret).
#[utoipa::path(get, path = "/keys/{key_id}", tag = "keys",
    params(("key_id" = uuid::Uuid, Path, description = "The key's id")),
    responses((status = 200, body = KeyDto), (status = 404, body = crate::error::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<KeyDto>> {
    // Look up first: another tenant's id is "not found" whatever the key's scopes.
    let k = st.store.api_key(p.org.id, id).await?;
    admin_actor(&p)?;
    Ok(Json((&k).into()))
}

/// Revokes a key at once. Revoking a revoked key changes nothing.
#[utoipa::path(delete, path = "/keys/{key_id}", tag = "keys",
    params(("key_id" = uuid::Uuid, Path, description = "The key's id")),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub async fn revoke(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    st.store.api_key(p.org.id, id).await?;
    let a = admin_actor(&p)?;
    admin::revoke_key(&st.store, &a, id, st.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
