//! Public web forms: arbitrary bytes under an arbitrary Content-Type, and
//! the dedupe key of whatever parses. Must never panic.
#![no_main]

use bos_core::intake::form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str)| {
    let (body, content_type) = input;
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("application/json"),
        Some(content_type),
    ] {
        if let Ok(s) = form::parse(ct, body) {
            let _ = form::dedupe_key(&s, &form::body_sha256_hex(body));
        }
    }
    let _ = form::valid_redirect(content_type);
});
