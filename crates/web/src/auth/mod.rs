//! Who is asking: browser sessions (cookie + CSRF) for the UI, bearer API
//! keys for `/api/v1`. The two never mix: no API route accepts a cookie and
//! no UI route accepts a key, so a key can never act as a user.

/// API keys: issuing, hashing, and the bearer extractor.
pub mod keys;
/// argon2id hashing and verification.
pub mod password;
/// Cookie sessions and CSRF.
pub mod session;

pub use bos_engine::tokens::{random_token, sha256};

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
