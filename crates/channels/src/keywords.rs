//! Opt-out / opt-in keywords (carrier and Twilio standard lists) and the
//! "reply unsubscribe" rule for email. A match must be the whole message, so
//! "stop by tomorrow?" is a conversation, not an opt-out.

/// What an inbound SMS asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Start,
    Help,
}

const STOP: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const START: &[&str] = &["START", "YES", "UNSTOP"];
const HELP: &[&str] = &["HELP", "INFO"];

/// The message trimmed, trailing punctuation dropped (people type "STOP!" or
/// "Stop."), compared case-insensitively.
fn normalise(s: &str) -> &str {
    s.trim()
        .trim_end_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .trim()
}

/// The keyword a whole SMS body is, if any.
pub fn keyword(body: &str) -> Option<Keyword> {
    let word = normalise(body);
    let is = |list: &[&str]| list.iter().any(|k| k.eq_ignore_ascii_case(word));
    if is(STOP) {
        Some(Keyword::Stop)
    } else if is(START) {
        Some(Keyword::Start)
    } else if is(HELP) {
        Some(Keyword::Help)
    } else {
        None
    }
}

/// A reply email whose subject (after any `Re:`) or first non-empty line is
/// just "unsubscribe" or "stop".
pub fn is_email_unsubscribe(subject: &str, text: &str) -> bool {
    let is = |s: &str| {
        let w = normalise(s);
        w.eq_ignore_ascii_case("unsubscribe") || w.eq_ignore_ascii_case("stop")
    };
    let mut subj = subject.trim();
    loop {
        let lower = subj.get(..3).map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some("re:") | Some("aw:") => subj = subj[3..].trim_start(),
            _ => break,
        }
    }
    let first_line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    is(subj) || is(first_line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keyword_table() {
        let table: &[(&str, Option<Keyword>)] = &[
            ("STOP", Some(Keyword::Stop)),
            ("stop", Some(Keyword::Stop)),
            ("  Stop.  ", Some(Keyword::Stop)),
            ("STOP!!", Some(Keyword::Stop)),
            ("stopall", Some(Keyword::Stop)),
            ("Unsubscribe", Some(Keyword::Stop)),
            ("cancel", Some(Keyword::Stop)),
            ("END", Some(Keyword::Stop)),
            ("quit", Some(Keyword::Stop)),
            ("revoke", Some(Keyword::Stop)),
            ("optout", Some(Keyword::Stop)),
            ("START", Some(Keyword::Start)),
            ("yes", Some(Keyword::Start)),
            ("Unstop", Some(Keyword::Start)),
            ("help", Some(Keyword::Help)),
            ("HELP?", Some(Keyword::Help)),
            ("info", Some(Keyword::Help)),
            ("stop by tomorrow?", None),
            ("please stop", None),
            ("opt out", None),
            ("yes please", None),
            ("", None),
            ("!!!", None),
            ("STOPP", None),
        ];
        for (body, want) in table {
            assert_eq!(keyword(body), *want, "{body:?}");
        }
    }

    #[test]
    fn email_unsubscribe() {
        assert!(is_email_unsubscribe("unsubscribe", ""));
        assert!(is_email_unsubscribe("Re: Unsubscribe", "whatever"));
        assert!(is_email_unsubscribe("RE: re: stop", ""));
        assert!(is_email_unsubscribe(
            "Re: Your order",
            "\n\n  STOP.\n\nOn Mon, Shop wrote:\n> hi"
        ));
        assert!(!is_email_unsubscribe(
            "Re: Your order",
            "Please don't stop sending these"
        ));
        assert!(!is_email_unsubscribe(
            "How do I unsubscribe from the newsletter?",
            "thanks"
        ));
        assert!(!is_email_unsubscribe("", ""));
    }

    proptest! {
        #[test]
        fn never_panics(a in "\\PC{0,40}", b in "\\PC{0,80}") {
            let _ = keyword(&a);
            let _ = is_email_unsubscribe(&a, &b);
        }
    }
}
