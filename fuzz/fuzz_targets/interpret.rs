//! The pipeline's reader of stored payloads: arbitrary bytes as any source
//! kind and event kind. Stored payloads passed their endpoint's checks, but
//! a generic webhook's body is only JSON, so this must never panic.
#![no_main]

use bos_core::intake::interpret::interpret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str, i64)| {
    let (body, kind, now) = input;
    for (src, k) in [
        ("segment", "track"),
        ("segment", "identify"),
        ("segment", "page"),
        ("segment", "alias"),
        ("shopify", "checkouts/update"),
        ("shopify", "orders/create"),
        ("shopify", "carts/create"),
        ("shopify", "customers/create"),
        ("form", "form_submitted"),
        ("webhook", kind),
    ] {
        let _ = interpret(src, k, body, now);
    }
});
