//! Secrets made here and only their digests kept: the random tokens behind
//! invitation links, sessions and API keys, and the SHA-256 the store
//! looks them up by. A fast hash is right for these: the secret is random,
//! not a password.

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
