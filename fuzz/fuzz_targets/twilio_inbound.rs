//! Twilio inbound webhooks: arbitrary bytes as the form body, arbitrary
//! strings as the signature header and the public URL; the parsed body also
//! goes through the SMS keyword matcher. Must never panic.
#![no_main]

use bos_channels::keywords::keyword;
use bos_channels::twilio::{
    inbound_sms, parse_form, signature, status_update, verify, verify_body_sha256, verify_with,
    SignatureAlgorithm,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str, &str)| {
    let (body, header, url) = input;
    let params = parse_form(body);
    let _ = verify("auth-token", url, &params, header);
    let _ = signature("auth-token", url, &params);
    let _ = verify_body_sha256("auth-token", url, body, header);
    // The settings header is attacker-chosen text too.
    if let Ok(alg) = SignatureAlgorithm::from_settings(header) {
        let _ = verify_with(alg, "shared-key", url, &params, header);
    }
    if let Ok(sms) = inbound_sms(&params) {
        let _ = keyword(&sms.body);
    }
    let _ = status_update(&params);
});
