//! Idempotency keys of inbox replies: the first request with a key claims
//! it and later stores its answer; a repeat from the same caller within
//! [`IDEMPOTENCY_TTL_MS`] gets that answer back instead of sending again,
//! a repeat with another request is told so, and a repeat while the first
//! is still running is told to wait. The claim is one insert that only the
//! first of concurrent requests wins (the primary key decides, on both
//! engines), so concurrent duplicates send once. Keys older than the TTL
//! are taken over by the next request and swept.

use bos_core::Millis;
use uuid::Uuid;

use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::{Store, StoreError};

/// How long a key answers for its first request: 24 hours.
pub const IDEMPOTENCY_TTL_MS: Millis = 24 * 60 * 60 * 1000;

/// The longest key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// New (or older than the TTL): this request runs and then stores its
    /// answer with [`Store::answer_idempotency_key`].
    Claimed,
    /// The first request with this key finished: its answer.
    Answered { status: u16, body: String },
    /// The first request with this key is still running (or was cut off
    /// by a crash); `since` is when it started.
    Running { since: Millis },
    /// The key was first used for a different request.
    Mismatch,
}

async fn claim_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    principal: String,
    key: String,
    fingerprint: String,
    now: Millis,
) -> Result<KeyClaim, StoreError> {
    let inserted = db
        .exec(
            q("insert into reply_idempotency (org_id, principal, idem_key, fingerprint, created_at) \
               values ($1, $2, $3, $4, $5) on conflict (org_id, principal, idem_key) do nothing")
            .bind(org)
            .bind(principal.as_str())
            .bind(key.as_str())
            .bind(fingerprint.as_str())
            .bind(now),
        )
        .await?;
    if inserted == 1 {
        return Ok(KeyClaim::Claimed);
    }
    let row = db
        .opt(
            q(format!(
                "select fingerprint, answer_status, answer_body, created_at from reply_idempotency \
                 where org_id = $1 and principal = $2 and idem_key = $3{}",
                D::LOCK
            ))
            .bind(org)
            .bind(principal.as_str())
            .bind(key.as_str()),
        )
        .await?
        .ok_or_else(|| StoreError::Other("idempotency key vanished while claimed".into()))?;
    let created_at = row.i64("created_at")?;
    if created_at <= now - IDEMPOTENCY_TTL_MS {
        // Expired: the key starts over with this request.
        db.exec(
            q(
                "update reply_idempotency set fingerprint = $4, answer_status = null, \
               answer_body = null, created_at = $5 \
               where org_id = $1 and principal = $2 and idem_key = $3",
            )
            .bind(org)
            .bind(principal.as_str())
            .bind(key.as_str())
            .bind(fingerprint.as_str())
            .bind(now),
        )
        .await?;
        return Ok(KeyClaim::Claimed);
    }
    if row.text("fingerprint")? != fingerprint {
        return Ok(KeyClaim::Mismatch);
    }
    match (row.opt_i64("answer_status")?, row.opt_text("answer_body")?) {
        (Some(status), Some(body)) => Ok(KeyClaim::Answered {
            status: u16::try_from(status).unwrap_or(500),
            body,
        }),
        _ => Ok(KeyClaim::Running { since: created_at }),
    }
}

impl Store {
    /// Claims `key` for `principal`'s request (its `fingerprint`); see
    /// [`KeyClaim`].
    pub async fn claim_idempotency_key(
        &self,
        org: Uuid,
        principal: &str,
        key: &str,
        fingerprint: &str,
        now: Millis,
    ) -> Result<KeyClaim, StoreError> {
        let (principal, key, fingerprint) = (
            principal.to_string(),
            key.to_string(),
            fingerprint.to_string(),
        );
        write_db!(self, |db| claim_tx(
            db,
            org,
            principal,
            key,
            fingerprint,
            now
        ))
    }

    /// Stores the answer of the request that claimed `key`.
    pub async fn answer_idempotency_key(
        &self,
        org: Uuid,
        principal: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        let (principal, key, body) = (principal.to_string(), key.to_string(), body.to_string());
        write_db!(self, |db| async move {
            db.exec(
                q(
                    "update reply_idempotency set answer_status = $4, answer_body = $5 \
                   where org_id = $1 and principal = $2 and idem_key = $3",
                )
                .bind(org)
                .bind(principal.as_str())
                .bind(key.as_str())
                .bind(i64::from(status))
                .bind(body.as_str()),
            )
            .await?;
            Ok(())
        })
    }

    /// Forgets a key that has no answer yet (its request was refused
    /// before anything was written), so it can be used again.
    pub async fn release_idempotency_key(
        &self,
        org: Uuid,
        principal: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        let (principal, key) = (principal.to_string(), key.to_string());
        write_db!(self, |db| async move {
            db.exec(
                q("delete from reply_idempotency \
                   where org_id = $1 and principal = $2 and idem_key = $3 and answer_status is null")
                .bind(org)
                .bind(principal.as_str())
                .bind(key.as_str()),
            )
            .await?;
            Ok(())
        })
    }

    /// Forgets keys older than the TTL, every organization's (a system
    /// task). Returns how many.
    pub async fn sweep_idempotency_keys(&self, now: Millis) -> Result<u64, StoreError> {
        write_db!(self, |db| async move {
            db.exec(
                q("delete from reply_idempotency where created_at <= $1")
                    .bind(now - IDEMPOTENCY_TTL_MS),
            )
            .await
        })
    }
}
