//! API keys: 240 random bits behind a recognisable `bos_` prefix, shown
//! once, stored as SHA-256 (a fast hash is right here: the secret is random,
//! not a password), bound to one organization and a set of scopes.

use crate::error::AppError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use bos_core::{ApiKeyParts, Scope};
use bos_store::{ApiKey, Org};

pub use bos_engine::admin::{issue_api_key, IssuedKey};

/// The caller of an API route: a live key and its organization.
#[derive(Clone)]
pub struct ApiPrincipal {
    pub key: ApiKey,
    pub org: Org,
}

impl ApiPrincipal {
    pub fn has(&self, scope: Scope) -> bool {
        self.key.scopes.iter().any(|s| s == scope.as_str())
    }

    /// 403 unless the key carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "This API key lacks the '{}' scope. Create a key with that scope in Settings → API keys.",
                scope.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for ApiPrincipal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let missing = || {
            AppError::Unauthorized(
                "Send an API key as 'Authorization: Bearer bos_…'. Create one in Settings → API keys or with `bos key create`."
                    .into(),
            )
        };
        let raw = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(missing)?;
        let token = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .ok_or_else(missing)?
            .trim();
        let invalid = || {
            AppError::Unauthorized(
                "This API key is not valid: it is unknown or was revoked.".into(),
            )
        };
        if !ApiKeyParts::looks_valid(token) {
            return Err(invalid());
        }
        let (key, org) = state
            .store
            .api_key_with_org_by_hash(&super::sha256(token))
            .await?
            .ok_or_else(invalid)?;
        let now = state.now();
        // Record use at most once a minute per key: enough for "last used", cheap on the writer.
        if key.last_used_at.is_none_or(|t| now - t > 60_000) {
            let store = state.store.clone();
            let id = key.id;
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(id, now).await {
                    tracing::debug!(error = %e, "could not record API key use");
                }
            });
        }
        Ok(ApiPrincipal { key, org })
    }
}
