//! Segment single calls: arbitrary bytes posted to every endpoint, and an
//! arbitrary Authorization header for the write key. Must never panic.
#![no_main]

use bos_core::intake::segment::{parse_call, write_key_from_basic, CallType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str, i64)| {
    let (body, authorization, received_at) = input;
    let _ = write_key_from_basic(authorization);
    for endpoint in CallType::ALL {
        let _ = parse_call(endpoint, body, received_at);
    }
});
