//! Standard Webhooks: arbitrary header values, body and clock into `verify`,
//! and an arbitrary secret string into `Secret::parse`. Must never panic.
#![no_main]

use bos_core::intake::standard_webhooks::{verify, Headers, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, String, String, String, Vec<u8>, i64)| {
    let (secret, id, timestamp, signature, body, now) = input;
    let _ = Secret::parse(&secret);
    let Ok(key) = Secret::from_bytes(vec![0x5a; 32]) else {
        return;
    };
    let headers = Headers {
        id: Some(&id),
        timestamp: Some(&timestamp),
        signature: Some(&signature),
    };
    let _ = verify(&[key], headers, &body, now);
});
