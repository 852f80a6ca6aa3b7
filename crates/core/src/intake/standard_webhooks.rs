//! Standard Webhooks v1, our default signed intake format:
//! the `whsec_` secret, the signed content `{id}.{timestamp}.{body}`, the
//! `webhook-signature` header with one or more `v1,<base64>` entries, and the
//! ±5 minute replay window. Verification compares in constant time
//! (`Mac::verify_slice`) and takes `now` from the caller, never the clock.
//! `sign` produces the same header, for tests, the demo simulator and our own
//! outbound webhooks.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Millis;

type HmacSha256 = Hmac<Sha256>;

/// How far a delivery's timestamp may be from `now`, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// The spec's secret length: 24 to 64 random bytes.
pub const SECRET_MIN_BYTES: usize = 24;
pub const SECRET_MAX_BYTES: usize = 64;
/// Longest `webhook-id` we accept; it becomes a dedupe key in the database.
pub const MAX_ID_LEN: usize = 256;
/// At most this many signature entries are tried, so a hostile header cannot
/// make us compute thousands of HMACs (senders list one per live secret).
pub const MAX_SIGNATURES: usize = 16;

const SECRET_PREFIX: &str = "whsec_";

/// Why a delivery was refused. Every variant means 401 at the HTTP edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-id is empty, too long or not printable ASCII")]
    BadId,
    #[error("webhook-timestamp is not a whole number of Unix seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {skew_secs} s away from now; the limit is ±{TOLERANCE_SECS} s")]
    TimestampOutsideWindow { skew_secs: i64 },
    #[error("webhook-signature has no well-formed \"v1,<base64>\" entry")]
    MalformedSignature,
    #[error("no webhook-signature entry matches the secret")]
    NoMatchingSignature,
}

/// Why a secret string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a Standard Webhooks secret starts with \"whsec_\"")]
    MissingPrefix,
    #[error("the part after \"whsec_\" is not standard base64")]
    NotBase64,
    #[error("the secret is {0} bytes; it must be {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES}")]
    BadLength(usize),
}

/// The HMAC key, decoded from `whsec_<base64>`. Debug output hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn parse(s: &str) -> Result<Secret, SecretError> {
        let b64 = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
        Secret::from_bytes(key)
    }

    /// Wraps freshly generated random bytes (the shell supplies them).
    pub fn from_bytes(key: Vec<u8>) -> Result<Secret, SecretError> {
        if !(SECRET_MIN_BYTES..=SECRET_MAX_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Secret(key))
    }

    /// The `whsec_<base64>` form to show a tenant once and store.
    pub fn encode(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail; the fallback
        // keeps the function total without an unwrap.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <HmacSha256 as Mac>::new_from_slice(&[]).expect("empty key"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The three header values as received (`None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A delivery that passed: its id is the idempotency key (same across retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub id: String,
    pub timestamp_secs: i64,
}

/// The `webhook-signature` value for one secret: `v1,<base64>`. While a
/// secret rotates, send one entry per secret joined by a space.
pub fn sign(secret: &Secret, id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let tag = secret.mac(id, timestamp_secs, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// Verifies a delivery against any of `secrets` (more than one while a
/// tenant rotates). Checks, in order: all headers present, id sane,
/// timestamp within ±5 min of `now`, then each `v1` entry in constant time.
/// The timestamp check comes before any HMAC so stale replays cost nothing.
pub fn verify(
    secrets: &[Secret],
    headers: Headers<'_>,
    body: &[u8],
    now: Millis,
) -> Result<Verified, VerifyError> {
    let id = headers.id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let ts = headers
        .timestamp
        .ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let sig = headers
        .signature
        .ok_or(VerifyError::MissingHeader("webhook-signature"))?;

    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(VerifyError::BadId);
    }
    // Digits only: `i64::from_str` would also take a leading '+', which the
    // sender did not sign as such.
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadTimestamp);
    }
    let timestamp: i64 = ts.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew_secs = timestamp.saturating_sub(now.div_euclid(1000));
    if skew_secs.saturating_abs() > TOLERANCE_SECS {
        return Err(VerifyError::TimestampOutsideWindow { skew_secs });
    }

    let candidates: Vec<Vec<u8>> = sig
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, b64)| STANDARD.decode(b64).ok())
        .take(MAX_SIGNATURES)
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    for secret in secrets {
        let mac = secret.mac(id, timestamp, body);
        if candidates
            .iter()
            .any(|c| mac.clone().verify_slice(c).is_ok())
        {
            return Ok(Verified {
                id: id.to_owned(),
                timestamp_secs: timestamp,
            });
        }
    }
    Err(VerifyError::NoMatchingSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW_SECS: i64 = 1_700_000_000;
    const NOW: Millis = NOW_SECS * 1000;

    fn secret() -> Secret {
        // The spec's own example secret.
        Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("example secret")
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> Headers<'a> {
        Headers {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn matches_the_reference_implementation() {
        // Test vector from standard-webhooks' libraries (msg_p5jXN8AQM9LWM0D4loKWxJek).
        let s = secret();
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&s, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn round_trip_and_multiple_entries() {
        let s = secret();
        let ts = NOW_SECS.to_string();
        let sig = sign(&s, "msg_1", NOW_SECS, b"{}");
        let v = verify(
            std::slice::from_ref(&s),
            headers("msg_1", &ts, &sig),
            b"{}",
            NOW,
        )
        .expect("valid");
        assert_eq!(v.id, "msg_1");
        let other = Secret::from_bytes(vec![7; 32]).expect("32 bytes");
        let both = format!("v1a,AAAA {} v1,bm90IGl0 {sig}", sign(&other, "x", 1, b""));
        assert!(verify(
            &[other.clone(), s],
            headers("msg_1", &ts, &both),
            b"{}",
            NOW
        )
        .is_ok());
        assert_eq!(
            verify(&[other], headers("msg_1", &ts, &sig), b"{}", NOW),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn header_errors() {
        let s = [secret()];
        let ts = NOW_SECS.to_string();
        let no_id = Headers {
            id: None,
            ..headers("", &ts, "v1,AAAA")
        };
        assert_eq!(
            verify(&s, no_id, b"", NOW),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
        let no_sig = Headers {
            signature: None,
            ..headers("m", &ts, "")
        };
        assert_eq!(
            verify(&s, no_sig, b"", NOW),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
        assert_eq!(
            verify(&s, headers("m", "+1700000000", "v1,AAAA"), b"", NOW),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(&s, headers("m", &ts, "v2,AAAA"), b"", NOW),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(
            verify(&s, headers("m", &ts, "v1,%%%"), b"", NOW),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(
            verify(&s, headers("", &ts, "v1,AAAA"), b"", NOW),
            Err(VerifyError::BadId)
        );
    }

    #[test]
    fn secret_format() {
        assert_eq!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(Secret::parse("whsec_***"), Err(SecretError::NotBase64));
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::BadLength(3)));
        let s = secret();
        assert_eq!(Secret::parse(&s.encode()), Ok(s));
        assert_eq!(format!("{:?}", secret()), "Secret(..)");
    }

    #[test]
    fn window_edges() {
        let s = secret();
        for (skew, ok) in [
            (0, true),
            (300, true),
            (-300, true),
            (301, false),
            (-301, false),
        ] {
            let t = NOW_SECS + skew;
            let sig = sign(&s, "m", t, b"x");
            let r = verify(
                std::slice::from_ref(&s),
                headers("m", &t.to_string(), &sig),
                b"x",
                NOW,
            );
            assert_eq!(r.is_ok(), ok, "skew {skew}: {r:?}");
            if !ok {
                assert_eq!(
                    r,
                    Err(VerifyError::TimestampOutsideWindow { skew_secs: skew })
                );
            }
        }
    }

    proptest! {
        #[test]
        fn sign_verify_round_trip(
            key in proptest::collection::vec(any::<u8>(), 24..=64),
            id in "[a-zA-Z0-9_]{1,40}",
            skew in -TOLERANCE_SECS..=TOLERANCE_SECS,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let s = Secret::from_bytes(key).expect("in range");
            let t = NOW_SECS + skew;
            let sig = sign(&s, &id, t, &body);
            prop_assert!(verify(&[s], headers(&id, &t.to_string(), &sig), &body, NOW).is_ok());
        }

        #[test]
        fn any_flipped_byte_fails(
            key in proptest::collection::vec(any::<u8>(), 24..=64),
            body in proptest::collection::vec(any::<u8>(), 1..256),
            which in 0usize..3,
            pos in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let s = Secret::from_bytes(key.clone()).expect("in range");
            let ts = NOW_SECS.to_string();
            let sig = sign(&s, "msg", NOW_SECS, &body);
            let (mut body2, mut key2) = (body.clone(), key.clone());
            let mut tag = STANDARD.decode(&sig[3..]).expect("own output");
            match which {
                0 => { let i = pos.index(body2.len()); body2[i] ^= 1 << bit; }
                1 => { let i = pos.index(tag.len()); tag[i] ^= 1 << bit; }
                _ => { let i = pos.index(key2.len()); key2[i] ^= 1 << bit; }
            }
            let sig2 = format!("v1,{}", STANDARD.encode(&tag));
            let s2 = Secret::from_bytes(key2).expect("in range");
            prop_assert_eq!(
                verify(&[s2], headers("msg", &ts, &sig2), &body2, NOW),
                Err(VerifyError::NoMatchingSignature)
            );
        }

        #[test]
        fn outside_window_fails(skew in prop_oneof![301i64..1_000_000, -1_000_000i64..-300]) {
            let s = secret();
            let t = NOW_SECS + skew;
            let sig = sign(&s, "m", t, b"x");
            let r = verify(&[s], headers("m", &t.to_string(), &sig), b"x", NOW);
            prop_assert!(
                matches!(r, Err(VerifyError::TimestampOutsideWindow { .. })),
                "{:?}", r
            );
        }
    }
}
