//! Sessions, login failures and API keys. Secrets never reach this layer in
//! the clear: sessions and keys are looked up by the SHA-256 of the token.

use crate::engine::{read, write};
use crate::{new_id, Org, StoreError};
use bos_core::ScopeSet;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub org_id: Option<Uuid>,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub display_prefix: String,
    pub scopes: Vec<String>,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The agent a key of scope `agent` was made for: it speaks only for
    /// that agent (decision 0039).
    pub agent_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    display_prefix: String,
    scopes: String,
    created_by: Option<Uuid>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    agent_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct KeyOrgRow {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    org_slug: String,
    org_name: String,
    org_created_at: i64,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        ApiKey {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            display_prefix: r.display_prefix,
            scopes: r
                .scopes
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            created_by: r.created_by,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            agent_id: r.agent_id,
        }
    }
}

const KEY_COLS: &str =
    "id, org_id, name, display_prefix, scopes, created_by, created_at, last_used_at, revoked_at, agent_id";
const SESSION_COLS: &str =
    "token_hash, user_id, org_id, csrf_token, created_at, last_seen_at, expires_at";

impl crate::Store {
    pub async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let s = s.clone();
        write!(self, |c| {
            sqlx::query(
                "insert into sessions (token_hash, user_id, org_id, csrf_token, created_at, last_seen_at, expires_at)
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.token_hash)
            .bind(s.user_id)
            .bind(s.org_id)
            .bind(&s.csrf_token)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.expires_at)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    pub async fn session(&self, token_hash: &[u8]) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("select {SESSION_COLS} from sessions where token_hash = $1");
        read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(token_hash)
                .fetch_optional(&mut *c)
                .await?)
        })
    }

    pub async fn touch_session(&self, token_hash: &[u8], now: i64) -> Result<(), StoreError> {
        let h = token_hash.to_vec();
        write!(self, |c| {
            sqlx::query("update sessions set last_seen_at = $2 where token_hash = $1")
                .bind(&h)
                .bind(now)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    pub async fn set_session_org(&self, token_hash: &[u8], org_id: Uuid) -> Result<(), StoreError> {
        let h = token_hash.to_vec();
        write!(self, |c| {
            sqlx::query("update sessions set org_id = $2 where token_hash = $1")
                .bind(&h)
                .bind(org_id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        let h = token_hash.to_vec();
        write!(self, |c| {
            sqlx::query("delete from sessions where token_hash = $1")
                .bind(&h)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Deletes expired sessions and old login failures; returns rows removed.
    pub async fn purge_expired(
        &self,
        now: i64,
        idle_ms: i64,
        failure_ttl_ms: i64,
    ) -> Result<u64, StoreError> {
        write!(self, |c| {
            let a =
                sqlx::query("delete from sessions where expires_at <= $1 or last_seen_at <= $2")
                    .bind(now)
                    .bind(now - idle_ms)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
            let b = sqlx::query("delete from login_failures where at <= $1")
                .bind(now - failure_ttl_ms)
                .execute(&mut *c)
                .await?
                .rows_affected();
            Ok(a + b)
        })
    }

    pub async fn record_login_failure(&self, login: &str, at: i64) -> Result<(), StoreError> {
        let login = login.to_string();
        write!(self, |c| {
            sqlx::query("insert into login_failures (login, at) values ($1, $2)")
                .bind(&login)
                .bind(at)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    pub async fn login_failures_since(
        &self,
        login: &str,
        since: i64,
    ) -> Result<Vec<i64>, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_scalar(
                "select at from login_failures where login = $1 and at > $2 order by at",
            )
            .bind(login)
            .bind(since)
            .fetch_all(&mut *c)
            .await?)
        })
    }

    pub async fn clear_login_failures(&self, login: &str) -> Result<(), StoreError> {
        let login = login.to_string();
        write!(self, |c| {
            sqlx::query("delete from login_failures where login = $1")
                .bind(&login)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn create_api_key(
        &self,
        org_id: Uuid,
        name: &str,
        display_prefix: &str,
        key_hash: &[u8],
        scopes: &ScopeSet,
        created_by: Option<Uuid>,
        now: i64,
    ) -> Result<ApiKey, StoreError> {
        let id = new_id();
        let (name, prefix, hash, sc) = (
            name.trim().to_string(),
            display_prefix.to_string(),
            key_hash.to_vec(),
            scopes.to_db(),
        );
        let key = ApiKey {
            id,
            org_id,
            name: name.clone(),
            display_prefix: prefix.clone(),
            scopes: scopes.iter().map(|s| s.as_str().to_string()).collect(),
            created_by,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            agent_id: None,
        };
        write!(self, |c| {
            sqlx::query(
                "insert into api_keys (id, org_id, name, display_prefix, key_hash, scopes, created_by, created_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(org_id)
            .bind(&name)
            .bind(&prefix)
            .bind(&hash)
            .bind(&sc)
            .bind(created_by)
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(())
        })?;
        Ok(key)
    }

    /// The live (not revoked) key with this hash, whatever its organization.
    pub async fn api_key_by_hash(&self, key_hash: &[u8]) -> Result<Option<ApiKey>, StoreError> {
        let sql =
            format!("select {KEY_COLS} from api_keys where key_hash = $1 and revoked_at is null");
        let r: Option<ApiKeyRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(key_hash)
                .fetch_optional(&mut *c)
                .await?)
        })?;
        Ok(r.map(Into::into))
    }

    /// The live key with this hash and its organization, in one round trip
    /// (this runs on every API request).
    pub async fn api_key_with_org_by_hash(
        &self,
        key_hash: &[u8],
    ) -> Result<Option<(ApiKey, Org)>, StoreError> {
        let r: Option<KeyOrgRow> = read!(self, |c| {
            Ok(sqlx::query_as(
                "select k.id, k.org_id, k.name, k.display_prefix, k.scopes, k.created_by, k.created_at,
                        k.last_used_at, k.revoked_at, k.agent_id, o.slug as org_slug, o.name as org_name, o.created_at as org_created_at
                 from api_keys k join organizations o on o.id = k.org_id
                 where k.key_hash = $1 and k.revoked_at is null",
            )
            .bind(key_hash)
            .fetch_optional(&mut *c)
            .await?)
        })?;
        Ok(r.map(|r| {
            let org = Org {
                id: r.key.org_id,
                slug: r.org_slug,
                name: r.org_name,
                created_at: r.org_created_at,
            };
            (r.key.into(), org)
        }))
    }

    pub async fn api_keys(&self, org_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
        let sql =
            format!("select {KEY_COLS} from api_keys where org_id = $1 order by created_at desc");
        let r: Vec<ApiKeyRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql).bind(org_id).fetch_all(&mut *c).await?)
        })?;
        Ok(r.into_iter().map(Into::into).collect())
    }

    pub async fn api_key(&self, org_id: Uuid, id: Uuid) -> Result<ApiKey, StoreError> {
        let sql = format!("select {KEY_COLS} from api_keys where org_id = $1 and id = $2");
        let r: ApiKeyRow = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org_id)
                .bind(id)
                .fetch_one(&mut *c)
                .await?)
        })?;
        Ok(r.into())
    }

    /// Revokes a key of `org_id`. NotFound if it is not that tenant's key;
    /// revoking twice keeps the first revocation time.
    pub async fn revoke_api_key(&self, org_id: Uuid, id: Uuid, now: i64) -> Result<(), StoreError> {
        write!(self, |c| {
            let n = sqlx::query(
                "update api_keys set revoked_at = coalesce(revoked_at, $3) where org_id = $1 and id = $2",
            )
            .bind(org_id)
            .bind(id)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    pub async fn touch_api_key(&self, id: Uuid, now: i64) -> Result<(), StoreError> {
        write!(self, |c| {
            sqlx::query("update api_keys set last_used_at = $2 where id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Every stored credential column, for the "no plaintext at rest" test.
    pub async fn dump_credential_columns(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        read!(self, |c| {
            let mut out: Vec<Vec<u8>> = sqlx::query_scalar("select key_hash from api_keys")
                .fetch_all(&mut *c)
                .await?;
            let prefixes: Vec<String> = sqlx::query_scalar("select display_prefix from api_keys")
                .fetch_all(&mut *c)
                .await?;
            out.extend(prefixes.into_iter().map(String::into_bytes));
            let hashes: Vec<String> = sqlx::query_scalar("select password_hash from users")
                .fetch_all(&mut *c)
                .await?;
            out.extend(hashes.into_iter().map(String::into_bytes));
            let tokens: Vec<Vec<u8>> = sqlx::query_scalar("select token_hash from sessions")
                .fetch_all(&mut *c)
                .await?;
            out.extend(tokens);
            Ok(out)
        })
    }
}
