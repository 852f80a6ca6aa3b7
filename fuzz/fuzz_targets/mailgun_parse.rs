//! Mailgun inbound routes: arbitrary bytes as the body under an arbitrary
//! Content-Type, arbitrary strings as the signature fields and clock. Must
//! never panic.
#![no_main]

use bos_channels::keywords::is_email_unsubscribe;
use bos_channels::mailgun::{parse, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], Option<&str>, &str, &str, i64, i64)| {
    let (body, content_type, timestamp, signature, now, max_age) = input;
    if let Ok((mail, auth)) = parse(content_type, body) {
        let _ = verify("signing-key", &auth.timestamp, &auth.token, &auth.signature, now, max_age);
        let _ = is_email_unsubscribe(&mail.subject, &mail.text);
    }
    let _ = verify("signing-key", timestamp, signature, signature, now, max_age);
});
