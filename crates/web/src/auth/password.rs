//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB,
//! t = 2, p = 1). Hashing runs on the blocking pool so a login burst cannot
//! stall the async workers. Unknown users are verified against a dummy hash
//! so that known and unknown accounts take the same time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use bos_core::auth::{ARGON2_M_KIB, ARGON2_P, ARGON2_T};

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("valid OWASP argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

fn verify(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

pub struct Hasher {
    dummy: String,
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    pub fn new() -> Hasher {
        let dummy = hash_password(&crate::auth::random_token(24)).unwrap_or_default();
        Hasher { dummy }
    }

    /// Verifies `password` against `stored`, or against the dummy hash when
    /// there is no such user (always false then, after the same work).
    pub async fn verify(&self, stored: Option<String>, password: String) -> bool {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy.clone());
        let ok = tokio::task::spawn_blocking(move || verify(&hash, &password))
            .await
            .unwrap_or(false);
        ok && known
    }

    pub async fn hash(&self, password: String) -> Result<String, String> {
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| e.to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_parameters_are_owasp() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse battery!"));
        assert!(!verify("garbage", "x"));
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = Hasher::new();
        assert!(!hasher.verify(None, "anything at all".into()).await);
    }
}
