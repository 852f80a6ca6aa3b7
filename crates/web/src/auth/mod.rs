//! Who is asking: browser sessions (cookie + CSRF) for the UI, bearer API
//! keys for `/api/v1`. The two never mix: no API route accepts a cookie and
//! no UI route accepts a key, so a key can never act as a user.

/// API keys: issuing, hashing, and the bearer extractor.
pub mod keys;
/// argon2id hashing and verification.
pub mod password;
/// Cookie sessions and CSRF.
pub mod session;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// `n` bytes from the OS CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> String {
    use base64::Engine;
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn sha256(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
