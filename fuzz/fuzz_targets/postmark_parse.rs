//! Postmark inbound JSON: arbitrary bytes as the body. Must never panic.
#![no_main]

use bos_channels::keywords::is_email_unsubscribe;
use bos_channels::postmark::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(mail) = parse(body) {
        let _ = is_email_unsubscribe(&mail.subject, &mail.text);
    }
});
