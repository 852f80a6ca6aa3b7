//! Login and credential rules: the password policy, the per-account login
//! throttle, and the shape of API keys. Hashing and randomness live in the
//! shell; these are the decisions.

use crate::Millis;

/// OWASP password storage: argon2id, m = 19 MiB, t = 2, p = 1.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("a password needs at least {0} characters")]
    TooShort(usize),
    #[error("a password has at most 256 characters")]
    TooLong,
}

pub const MIN_PASSWORD_CHARS: usize = 10;

/// NIST 800-63B style: length, not composition rules.
pub fn check_password(p: &str) -> Result<(), PasswordPolicyError> {
    let n = p.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(PasswordPolicyError::TooShort(MIN_PASSWORD_CHARS));
    }
    if n > 256 {
        return Err(PasswordPolicyError::TooLong);
    }
    Ok(())
}

/// The per-account login throttle (ASVS: after 10 failures per account,
/// whatever the IP). Keyed by the normalized login name, not by user id, so
/// that unknown accounts throttle exactly like known ones.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    /// Failures tolerated inside `window_ms` before the account is locked.
    pub max_failures: u32,
    pub window_ms: Millis,
    /// How long a lock lasts after the last failure.
    pub lock_ms: Millis,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            max_failures: 10,
            window_ms: 15 * 60 * 1000,
            lock_ms: 15 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleDecision {
    /// Check the password.
    Allow,
    /// Refuse without checking; the caller may retry after this many ms.
    Locked { retry_after_ms: Millis },
}

impl LoginThrottle {
    /// `failures` are the times of recent failed attempts for this login name.
    pub fn decide(&self, failures: &[Millis], now: Millis) -> ThrottleDecision {
        let recent: Vec<Millis> = failures
            .iter()
            .copied()
            .filter(|t| now - *t < self.window_ms.max(self.lock_ms))
            .collect();
        let in_window = recent.iter().filter(|t| now - **t < self.window_ms).count();
        if in_window as u32 >= self.max_failures {
            let last = recent.iter().copied().max().unwrap_or(now);
            let retry = (last + self.lock_ms - now).max(1000);
            return ThrottleDecision::Locked {
                retry_after_ms: retry,
            };
        }
        ThrottleDecision::Allow
    }
}

/// API keys look like `bos_<40 base64url chars>`: the prefix lets secret
/// scanners recognise them, the body carries 240 random bits. Only a SHA-256
/// of the whole key is stored; `display_prefix` is kept for the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyParts {
    pub full: String,
    pub display_prefix: String,
}

pub const API_KEY_PREFIX: &str = "bos_";

impl ApiKeyParts {
    /// Builds a key from 30 random bytes (base64url-encoded by the caller).
    pub fn from_encoded_secret(encoded: &str) -> ApiKeyParts {
        let full = format!("{API_KEY_PREFIX}{encoded}");
        let display_prefix = full.chars().take(12).collect();
        ApiKeyParts {
            full,
            display_prefix,
        }
    }

    /// A quick shape check before any database work, so garbage in an
    /// Authorization header costs nothing.
    pub fn looks_valid(candidate: &str) -> bool {
        candidate.len() == API_KEY_PREFIX.len() + 40
            && candidate.starts_with(API_KEY_PREFIX)
            && candidate[API_KEY_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn password_policy() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough pass").is_ok());
        assert!(check_password(&"x".repeat(300)).is_err());
    }

    #[test]
    fn ten_failures_allowed_eleventh_locked() {
        let t = LoginThrottle::default();
        let now = 1_000_000_000;
        let mut fails = vec![];
        for i in 0..10 {
            assert_eq!(t.decide(&fails, now + i), ThrottleDecision::Allow);
            fails.push(now + i);
        }
        assert!(matches!(
            t.decide(&fails, now + 11),
            ThrottleDecision::Locked { .. }
        ));
        // After the lock expires the account is open again.
        assert_eq!(
            t.decide(&fails, now + 10 + t.lock_ms.max(t.window_ms)),
            ThrottleDecision::Allow
        );
    }

    #[test]
    fn api_key_shape() {
        let k = ApiKeyParts::from_encoded_secret(&"a".repeat(40));
        assert!(ApiKeyParts::looks_valid(&k.full));
        assert_eq!(k.display_prefix.len(), 12);
        assert!(!ApiKeyParts::looks_valid("bos_short"));
        assert!(!ApiKeyParts::looks_valid(&format!(
            "bos_{}",
            "a/".repeat(20)
        )));
    }

    proptest! {
        #[test]
        fn throttle_never_locks_below_max(n in 0u32..10, spread in 0i64..1_000_000) {
            let t = LoginThrottle::default();
            let fails: Vec<Millis> = (0..n as i64).map(|i| i * spread / 10).collect();
            prop_assert_eq!(t.decide(&fails, spread), ThrottleDecision::Allow);
        }

        #[test]
        fn throttle_lock_has_positive_retry(extra in 0u32..20, at in 0i64..(15*60*1000)) {
            let t = LoginThrottle::default();
            let fails: Vec<Millis> = (0..(10 + extra) as i64).collect();
            if let ThrottleDecision::Locked { retry_after_ms } = t.decide(&fails, at) {
                prop_assert!(retry_after_ms > 0);
            }
        }
    }
}
