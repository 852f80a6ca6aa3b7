//! Segment `/v1/batch`: arbitrary bytes as the request body. Must never panic.
#![no_main]

use bos_core::intake::segment::parse_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_batch(data, 1_700_000_000_000);
});
