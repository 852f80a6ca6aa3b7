//! Shopify: arbitrary bytes as the body of every topic, arbitrary strings as
//! the HMAC header, topic and delivery ids. Must never panic.
#![no_main]

use bos_core::intake::shopify::{dedupe_key, parse, verify, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str)| {
    let (body, header) = input;
    let _ = verify(&[b"secret".as_slice()], Some(header), body);
    let _ = Topic::parse(header);
    for topic in Topic::ALL {
        let _ = parse(topic, body);
        let _ = dedupe_key(topic, Some(header), Some(header));
    }
});
