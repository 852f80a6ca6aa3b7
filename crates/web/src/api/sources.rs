//! `/sources` (admin scope): create an intake source and list them. A new
//! source comes with its endpoint and its credential, shown once: a Segment
//! write key (stored only as its SHA-256, like API keys) or a Standard
//! Webhooks `whsec_` secret (stored, because verifying needs the key). A
//! Shopify source is the exception: Shopify signs with the app's client
//! secret, so the merchant provides it, it is stored, and it is not echoed.

use super::{admin_actor, rfc3339, ApiJson};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bos_core::intake::standard_webhooks::Secret;
use bos_store::intake::{NewSource, Source, SourceKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const MAX_NAME_CHARS: usize = 200;

#[derive(Serialize, ToSchema)]
pub struct SourceDto {
    pub id: uuid::Uuid,
    /// `segment`, `webhook` or `shopify`.
    pub kind: String,
    pub name: String,
    /// Where the source sends its events.
    pub endpoint: String,
    pub created_at: String,
}

fn dto(st: &AppState, s: &Source) -> SourceDto {
    let base = st.config.public_url.trim_end_matches('/');
    let endpoint = match s.kind {
        // The SDKs' API host; they post to /v1/track, /v1/batch and so on.
        SourceKind::Segment => format!("{base}/v1"),
        SourceKind::Shopify => format!("{base}/hooks/shopify/{}", s.id),
        _ => format!("{base}/hooks/{}", s.id),
    };
    SourceDto {
        id: s.id,
        kind: s.kind.as_str().into(),
        name: s.name.clone(),
        endpoint,
        created_at: rfc3339(s.created_at),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    /// `segment` (Segment-compatible tracking), `webhook` (Standard
    /// Webhooks) or `shopify` (Shopify webhooks).
    pub kind: String,
    pub name: String,
    /// For `shopify` only, and required there: the Shopify app's client
    /// secret, which Shopify signs its webhooks with.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedSource {
    pub source: SourceDto,
    /// The write key (segment) or the `whsec_` signing secret (webhook).
    /// Store it now: it is never shown again. Absent for `shopify`: the
    /// merchant provided that secret and already has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The organization's intake sources, oldest first (no secrets).
#[utoipa::path(get, path = "/sources", tag = "sources",
    responses((status = 200, body = Vec<SourceDto>), (status = 403, body = crate::error::Problem)))]
pub async fn list(State(st): State<AppState>, p: ApiPrincipal) -> ApiResult<Json<Vec<SourceDto>>> {
    let a = admin_actor(&p)?;
    let sources = st.store.sources(a.org_id).await?;
    Ok(Json(sources.iter().map(|s| dto(&st, s)).collect()))
}

/// Creates a source; the response holds its credential, once.
#[utoipa::path(post, path = "/sources", tag = "sources", request_body = CreateSource,
    responses((status = 201, body = CreatedSource), (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: ApiPrincipal,
    ApiJson(body): ApiJson<CreateSource>,
) -> ApiResult<(StatusCode, Json<CreatedSource>)> {
    let a = admin_actor(&p)?;
    let (src, secret) = create_source(&st, a.org_id, &body.kind, &body.name, body.secret).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSource {
            source: dto(&st, &src),
            secret,
        }),
    ))
}

/// The endpoint a source sends its events to.
pub(crate) fn endpoint(st: &AppState, s: &Source) -> String {
    dto(st, s).endpoint
}

/// Creates a source of `kind` (validated) and returns it with its
/// credential, shown once (`None` for shopify, whose secret the merchant
/// gave). Shared by the API and Settings → Sources.
pub(crate) async fn create_source(
    st: &AppState,
    org: uuid::Uuid,
    kind: &str,
    name: &str,
    secret: Option<String>,
) -> Result<(Source, Option<String>), AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::invalid(
            "name",
            format!("Give the source a name of 1 to {MAX_NAME_CHARS} characters."),
        ));
    }
    if secret.is_some() && kind != "shopify" {
        return Err(AppError::invalid(
            "secret",
            "Only a shopify source takes a secret; segment and webhook sources get one generated.",
        ));
    }
    let (kind, secret, new) = match kind {
        "segment" => {
            // 192 random bits; Segment SDKs send it in clear, so only its
            // hash is stored.
            let key = crate::auth::random_token(24);
            let hash = crate::auth::sha256(&key);
            (SourceKind::Segment, Some(key), (None, Some(hash)))
        }
        "webhook" => {
            use rand::RngCore;
            let mut raw = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let s = Secret::from_bytes(raw)
                .map_err(|e| AppError::Internal(e.to_string()))?
                .encode();
            (SourceKind::Webhook, Some(s.clone()), (Some(s), None))
        }
        "shopify" => {
            // Kept as given (not trimmed): the HMAC key is the exact bytes.
            let s = secret.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                AppError::invalid(
                    "secret",
                    "A shopify source needs \"secret\": the Shopify app's client secret \
                     (Shopify signs its webhooks with it).",
                )
            })?;
            (SourceKind::Shopify, None, (Some(s), None))
        }
        other => {
            return Err(AppError::invalid(
                "kind",
                format!(
                    "Unknown source kind {:?}: use \"segment\" (Segment-compatible tracking), \"webhook\" (Standard Webhooks) or \"shopify\" (Shopify webhooks).",
                    other.chars().take(40).collect::<String>()
                ),
            ))
        }
    };
    let src = st
        .store
        .create_source(
            org,
            NewSource {
                kind,
                name: name.to_string(),
                secret: new.0,
                key_hash: new.1,
            },
            st.now(),
        )
        .await?;
    Ok((src, secret))
}
