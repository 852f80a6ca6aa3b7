//! Provider secrets at rest: what the store writes instead of a Standard
//! Webhooks key, a Shopify secret, an SMTP password, a Mailgun or Postmark
//! key, a Twilio token or a voice agent's webhook secret, and how it
//! reads them back.
//!
//! Each value is sealed with ChaCha20-Poly1305 (decision 0018) under the
//! keyring's current key, with a fresh random 96-bit nonce, and bound to
//! where it is stored (the "context": table, organization and row), so a
//! sealed value copied into another tenant's row does not open. The text
//! stored is `bos1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`; the key
//! id (the first 4 bytes of the key's SHA-256, in hex) says which key
//! opens it, so a keyring can hold the new key and the old ones while
//! [`crate::Store::reseal_secrets`] moves every value to the new one.
//!
//! Values written before encryption existed have no `bos1:` prefix; they
//! are read as they are and sealed by the next reseal (at every start).

use crate::engine::write_db;
use crate::sql::{q, read_rows, Db};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "bos1:";
const NONCE_LEN: usize = 12;
/// Bytes of a key.
pub const KEY_LEN: usize = 32;

/// Why a stored secret cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "a stored secret was sealed with key {0}, which is not configured: set BOS_SECRET_KEY \
         (or the key file) to that key, or list it in BOS_SECRET_KEYS_OLD"
    )]
    UnknownKey(String),
    #[error(
        "a stored secret does not open with key {0}: it was changed, moved to another row, or \
         sealed by another key with the same id"
    )]
    Tampered(String),
    #[error("a stored secret is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "a secret key must be {KEY_LEN} bytes in base64 (e.g. `openssl rand -base64 32`): {0}"
    )]
    BadKey(String),
}

/// One key and its id.
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    cipher: ChaCha20Poly1305,
    bytes: [u8; KEY_LEN],
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SecretKey {
        let digest = Sha256::digest(bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        SecretKey {
            id,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
            bytes,
        }
    }

    /// A key from its base64 text (standard or URL-safe alphabet, with or
    /// without padding).
    pub fn parse(text: &str) -> Result<SecretKey, SecretError> {
        let t = text.trim();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(t))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
            .map_err(|_| SecretError::BadKey("it is not base64".into()))?;
        let bytes: [u8; KEY_LEN] = raw
            .try_into()
            .map_err(|v: Vec<u8>| SecretError::BadKey(format!("it has {} bytes", v.len())))?;
        Ok(SecretKey::from_bytes(bytes))
    }

    /// A new random key from the OS generator.
    pub fn generate() -> SecretKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretKey::from_bytes(bytes)
    }

    /// The key as base64, for a key file or `BOS_SECRET_KEY`.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The key new values are sealed with, and older keys that still open
/// what they sealed.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: SecretKey,
    old: Vec<SecretKey>,
}

impl Keyring {
    pub fn new(current: SecretKey, old: Vec<SecretKey>) -> Keyring {
        let old = old.into_iter().filter(|k| k.id != current.id).collect();
        Keyring { current, old }
    }

    /// A keyring of one random key, for a store nobody configured (tests,
    /// benchmarks): what it seals is unreadable after the process ends.
    pub fn ephemeral() -> Keyring {
        Keyring::new(SecretKey::generate(), Vec::new())
    }

    pub fn current(&self) -> &SecretKey {
        &self.current
    }

    fn key(&self, id: &str) -> Option<&SecretKey> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id == id)
    }

    /// Seals `plain` for the place `context` names.
    pub fn seal(&self, context: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            // Only fails past 256 GiB of plaintext.
            .expect("a secret of sane length seals");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!(
            "{PREFIX}{}:{}",
            self.current.id,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        )
    }

    /// Opens what [`Keyring::seal`] stored for `context`. A value without
    /// the `bos1:` prefix was stored before encryption and is returned as
    /// it is.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, SecretError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, body) = rest
            .split_once(':')
            .ok_or(SecretError::Malformed("no key id"))?;
        let key = self
            .key(id)
            .ok_or_else(|| SecretError::UnknownKey(id.to_string()))?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SecretError::Malformed("not base64"))?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SecretError::Malformed("too short"));
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered(id.to_string()))?;
        String::from_utf8(plain).map_err(|_| SecretError::Malformed("not UTF-8"))
    }

    /// Whether `stored` is sealed under the current key (nothing to do for
    /// a reseal).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once(':'))
            .is_some_and(|(id, _)| id == self.current.id)
    }
}

impl From<SecretError> for crate::StoreError {
    fn from(e: SecretError) -> Self {
        crate::StoreError::Other(e.to_string())
    }
}

/// Where a channel's settings are stored.
pub(crate) fn channel_context(org: uuid::Uuid, channel: &str) -> String {
    format!("channel_settings:{org}:{channel}")
}

/// Where a source's secret is stored.
pub(crate) fn source_context(org: uuid::Uuid, id: uuid::Uuid) -> String {
    format!("sources:{org}:{id}")
}

/// Where an agent's webhook secret is stored.
pub(crate) fn agent_context(org: uuid::Uuid, id: uuid::Uuid) -> String {
    format!("agents:{org}:{id}")
}

/// Where a Meta source's credentials are stored.
pub(crate) fn meta_source_context(org: uuid::Uuid, id: uuid::Uuid) -> String {
    format!("meta_sources:{org}:{id}")
}

impl crate::Store {
    /// Seals every stored provider secret under the current key: values
    /// stored in plaintext (before encryption existed) and values sealed
    /// under an older key of the keyring. Runs at every start and is the
    /// work of `bos secrets rotate`. Each row is replaced only if it is
    /// still what was read, so a settings save meanwhile is never undone.
    /// Returns how many values were sealed anew.
    pub async fn reseal_secrets(&self) -> Result<u64, crate::StoreError> {
        let keys = self.keyring();
        let mut n = 0;
        let rows = read_rows(
            self,
            q("select org_id, channel, config from channel_settings"),
        )
        .await?;
        for r in rows {
            let (org, channel, stored) = (r.uuid("org_id")?, r.text("channel")?, r.text("config")?);
            if keys.is_current(&stored) {
                continue;
            }
            let ctx = channel_context(org, &channel);
            let sealed = keys.seal(&ctx, &keys.open(&ctx, &stored)?);
            n += write_db!(self, |db| async move {
                db.exec(
                    q("update channel_settings set config = $3 where org_id = $1 and channel = $2 and config = $4")
                        .bind(org)
                        .bind(channel)
                        .bind(sealed)
                        .bind(stored),
                )
                .await
            })?;
        }
        let rows = read_rows(
            self,
            q("select org_id, id, secret from sources where secret is not null"),
        )
        .await?;
        for r in rows {
            let (org, id, stored) = (r.uuid("org_id")?, r.uuid("id")?, r.text("secret")?);
            if keys.is_current(&stored) {
                continue;
            }
            let ctx = source_context(org, id);
            let sealed = keys.seal(&ctx, &keys.open(&ctx, &stored)?);
            n += write_db!(self, |db| async move {
                db.exec(
                    q("update sources set secret = $3 where org_id = $1 and id = $2 and secret = $4")
                        .bind(org)
                        .bind(id)
                        .bind(sealed)
                        .bind(stored),
                )
                .await
            })?;
        }
        let rows = read_rows(self, q("select org_id, id, secret from meta_sources")).await?;
        for r in rows {
            let (org, id, stored) = (r.uuid("org_id")?, r.uuid("id")?, r.text("secret")?);
            if keys.is_current(&stored) {
                continue;
            }
            let ctx = meta_source_context(org, id);
            let sealed = keys.seal(&ctx, &keys.open(&ctx, &stored)?);
            n += write_db!(self, |db| async move {
                db.exec(
                    q("update meta_sources set secret = $3 where org_id = $1 and id = $2 and secret = $4")
                        .bind(org)
                        .bind(id)
                        .bind(sealed)
                        .bind(stored),
                )
                .await
            })?;
        }
        let rows = read_rows(
            self,
            q("select org_id, id, webhook_secret from agents where webhook_secret is not null"),
        )
        .await?;
        for r in rows {
            let (org, id, stored) = (r.uuid("org_id")?, r.uuid("id")?, r.text("webhook_secret")?);
            if keys.is_current(&stored) {
                continue;
            }
            let ctx = agent_context(org, id);
            let sealed = keys.seal(&ctx, &keys.open(&ctx, &stored)?);
            n += write_db!(self, |db| async move {
                db.exec(
                    q("update agents set webhook_secret = $3 where org_id = $1 and id = $2 and webhook_secret = $4")
                        .bind(org)
                        .bind(id)
                        .bind(sealed)
                        .bind(stored),
                )
                .await
            })?;
        }
        Ok(n)
    }

    /// Every stored provider secret column as stored, for the "no
    /// plaintext at rest" tests.
    #[doc(hidden)]
    pub async fn dump_provider_secret_columns(&self) -> Result<Vec<String>, crate::StoreError> {
        let mut out = Vec::new();
        for sql in [
            "select config as stored from channel_settings",
            "select secret as stored from sources where secret is not null",
            "select secret as stored from meta_sources",
            "select webhook_secret as stored from agents where webhook_secret is not null",
        ] {
            for r in read_rows(self, q(sql)).await? {
                out.push(r.text("stored")?);
            }
        }
        Ok(out)
    }

    /// Writes a provider secret as an older release did (in plaintext),
    /// for the upgrade test.
    #[doc(hidden)]
    pub async fn put_plaintext_channel_config_for_test(
        &self,
        org: uuid::Uuid,
        channel: &str,
        config_json: &str,
    ) -> Result<(), crate::StoreError> {
        let (channel, config) = (channel.to_string(), config_json.to_string());
        write_db!(self, |db| async move {
            db.exec(
                q("update channel_settings set config = $3 where org_id = $1 and channel = $2")
                    .bind(org)
                    .bind(channel)
                    .bind(config),
            )
            .await?;
            Ok(())
        })
    }

    /// Writes a source's secret in plaintext, as an older release did.
    #[doc(hidden)]
    pub async fn put_plaintext_source_secret_for_test(
        &self,
        org: uuid::Uuid,
        id: uuid::Uuid,
        secret: &str,
    ) -> Result<(), crate::StoreError> {
        let secret = secret.to_string();
        write_db!(self, |db| async move {
            db.exec(
                q("update sources set secret = $3 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(id)
                    .bind(secret),
            )
            .await?;
            Ok(())
        })?;
        self.source_cache.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = Keyring::ephemeral();
        let a = k.seal("ctx", "Sm7p-Secret-Pw");
        let b = k.seal("ctx", "Sm7p-Secret-Pw");
        assert!(a.starts_with("bos1:") && !a.contains("Sm7p"));
        assert_ne!(a, b, "each seal has its own nonce");
        assert_eq!(k.open("ctx", &a).unwrap(), "Sm7p-Secret-Pw");
        assert_eq!(k.open("ctx", &b).unwrap(), "Sm7p-Secret-Pw");
        assert_eq!(k.open("ctx", &k.seal("ctx", "")).unwrap(), "");
        assert!(k.is_current(&a));
        // Values stored before encryption read as they are.
        assert_eq!(k.open("ctx", "legacy plain").unwrap(), "legacy plain");
        assert!(!k.is_current("legacy plain"));
    }

    #[test]
    fn tampering_and_moving_are_detected() {
        let k = Keyring::ephemeral();
        let s = k.seal("sources:a:1", "whsec_secret");
        // Another row (context) does not open it.
        assert!(matches!(
            k.open("sources:b:1", &s),
            Err(SecretError::Tampered(_))
        ));
        // One flipped byte of the body.
        let (head, body) = s.rsplit_once(':').unwrap();
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let flipped = format!(
            "{head}:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw)
        );
        assert!(matches!(
            k.open("sources:a:1", &flipped),
            Err(SecretError::Tampered(_))
        ));
        for bad in ["bos1:", "bos1:abcd", "bos1:abcd:!!", "bos1:abcd:AAAA"] {
            assert!(k.open("sources:a:1", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_wrong_key_does_not_open() {
        let a = Keyring::ephemeral();
        let b = Keyring::ephemeral();
        let s = a.seal("ctx", "token");
        assert!(matches!(b.open("ctx", &s), Err(SecretError::UnknownKey(_))));
        // A different key that claims the same id fails authentication.
        let forged = s.replacen(a.current().id(), b.current().id(), 1);
        assert!(matches!(
            b.open("ctx", &forged),
            Err(SecretError::Tampered(_))
        ));
    }

    #[test]
    fn rotation_keeps_old_values_readable_until_resealed() {
        let old = SecretKey::generate();
        let before = Keyring::new(old.clone(), vec![]);
        let sealed_old = before.seal("ctx", "twilio-token");
        let new = SecretKey::generate();
        let during = Keyring::new(new.clone(), vec![old.clone()]);
        assert_eq!(during.open("ctx", &sealed_old).unwrap(), "twilio-token");
        assert!(!during.is_current(&sealed_old));
        let resealed = during.seal("ctx", &during.open("ctx", &sealed_old).unwrap());
        assert!(during.is_current(&resealed));
        // After the old key is dropped, only resealed values open.
        let after = Keyring::new(new, vec![]);
        assert_eq!(after.open("ctx", &resealed).unwrap(), "twilio-token");
        assert!(matches!(
            after.open("ctx", &sealed_old),
            Err(SecretError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_parse_from_base64() {
        let k = SecretKey::generate();
        let again = SecretKey::parse(&k.to_base64()).unwrap();
        assert_eq!(again.id(), k.id());
        assert!(matches!(
            SecretKey::parse("c2hvcnQ="),
            Err(SecretError::BadKey(_))
        ));
        assert!(matches!(
            SecretKey::parse("not base64 at all!"),
            Err(SecretError::BadKey(_))
        ));
    }
}
