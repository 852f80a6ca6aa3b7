//! E-mail threading, so a reply from the inbox lands in the same thread of
//! the customer's mail client: every message we send gets our own
//! Message-ID, a reply names its parent in `In-Reply-To` and the chain in
//! `References`, and the subject stays "Re: " plus the original (mail
//! clients also thread by subject). Ids are kept without angle brackets,
//! the way the senders take them; anything that could break a header line
//! is refused here, before it reaches one.

/// The most ids `References` carries. Long threads would otherwise grow the
/// header without bound; the first id (the thread's root) and the most
/// recent ones are what clients thread by, so the middle is dropped.
pub const MAX_REFERENCES: usize = 20;

/// Our Message-ID for an outbound message: `<id>@<domain>` without angle
/// brackets, where `id` is unique (a UUID) and `domain` is the sending
/// domain. Characters that may not appear in a Message-ID are dropped.
pub fn message_id(unique: &str, domain: &str) -> String {
    let left: String = unique.chars().filter(|c| id_char(*c)).collect();
    let mut right: String = domain
        .trim()
        .chars()
        .filter(|c| id_char(*c) && *c != '@')
        .collect();
    if right.is_empty() {
        right = "localhost".to_string();
    }
    format!("{left}@{right}")
}

/// Characters allowed inside a Message-ID: printable ASCII other than the
/// brackets, whitespace and the separators header parsers split on.
fn id_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '(' | ')' | ',' | ';' | '\\')
}

/// One stored Message-ID, cleaned: angle brackets and surrounding space
/// removed; `None` when what is left is not a usable id (empty, no `@`, or
/// a character that could break the header).
pub fn clean_id(raw: &str) -> Option<String> {
    let t = raw
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if t.is_empty() || !t.contains('@') || !t.chars().all(id_char) {
        return None;
    }
    Some(t.to_string())
}

/// What the conversation already knows about the message being answered:
/// its Message-ID and its own threading headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadIds {
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

/// The threading headers of a reply, ids without angle brackets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyHeaders {
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

/// The headers of a reply to `parent`: `In-Reply-To` is the parent's id;
/// `References` is the parent's `References` (or, when it has none, its
/// `In-Reply-To`) followed by the parent's id, without repeats, capped at
/// [`MAX_REFERENCES`] by dropping from the middle and keeping the first.
/// With no usable parent id the reply starts a thread of its own.
pub fn reply_headers(parent: &ThreadIds) -> ReplyHeaders {
    let Some(parent_id) = parent.message_id.as_deref().and_then(clean_id) else {
        return ReplyHeaders::default();
    };
    let mut chain: Vec<String> = if parent.references.is_empty() {
        parent
            .in_reply_to
            .iter()
            .filter_map(|r| clean_id(r))
            .collect()
    } else {
        parent
            .references
            .iter()
            .filter_map(|r| clean_id(r))
            .collect()
    };
    chain.push(parent_id.clone());
    let mut seen = std::collections::HashSet::new();
    chain.retain(|id| seen.insert(id.clone()));
    if chain.len() > MAX_REFERENCES {
        let keep_tail = MAX_REFERENCES - 1;
        let tail = chain.split_off(chain.len() - keep_tail);
        chain.truncate(1);
        chain.extend(tail);
    }
    ReplyHeaders {
        in_reply_to: Some(parent_id),
        references: chain,
    }
}

/// The subject of a reply: the original with exactly one "Re: " in front,
/// however many reply prefixes it had already (`Re:`, `RE:`, `re :`), and
/// with line breaks folded to spaces so it cannot start a new header.
pub fn reply_subject(original: &str) -> String {
    let one_line: String = original
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    let mut rest = one_line.trim();
    loop {
        let lower = rest.get(..2).map(|s| s.to_ascii_lowercase());
        if lower.as_deref() != Some("re") {
            break;
        }
        let after = rest[2..].trim_start();
        match after.strip_prefix(':') {
            Some(r) => rest = r.trim_start(),
            None => break,
        }
    }
    if rest.is_empty() {
        "Re:".to_string()
    } else {
        format!("Re: {rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn our_message_id_is_unique_at_our_domain() {
        assert_eq!(
            message_id("0190c0de-aaaa", "mail.shop.example"),
            "0190c0de-aaaa@mail.shop.example"
        );
        assert_eq!(message_id("a<b>", " x@y\r\n"), "ab@xy");
        assert_eq!(message_id("a", ""), "a@localhost");
    }

    #[test]
    fn a_reply_names_its_parent_and_the_chain() {
        let parent = ThreadIds {
            message_id: Some("<c@x>".into()),
            in_reply_to: Some("b@x".into()),
            references: vec!["a@x".into(), "b@x".into()],
        };
        let h = reply_headers(&parent);
        assert_eq!(h.in_reply_to.as_deref(), Some("c@x"));
        assert_eq!(h.references, vec!["a@x", "b@x", "c@x"]);
    }

    #[test]
    fn without_references_the_parents_in_reply_to_starts_the_chain() {
        let parent = ThreadIds {
            message_id: Some("b@x".into()),
            in_reply_to: Some("<a@x>".into()),
            references: vec![],
        };
        assert_eq!(reply_headers(&parent).references, vec!["a@x", "b@x"]);
        let first = ThreadIds {
            message_id: Some("a@x".into()),
            ..ThreadIds::default()
        };
        assert_eq!(reply_headers(&first).references, vec!["a@x"]);
    }

    #[test]
    fn no_usable_parent_id_starts_a_new_thread() {
        assert_eq!(
            reply_headers(&ThreadIds::default()),
            ReplyHeaders::default()
        );
        let bad = ThreadIds {
            message_id: Some("no at sign".into()),
            ..ThreadIds::default()
        };
        assert_eq!(reply_headers(&bad), ReplyHeaders::default());
        let injected = ThreadIds {
            message_id: Some("a@x\r\nBcc: evil@x".into()),
            ..ThreadIds::default()
        };
        assert_eq!(reply_headers(&injected), ReplyHeaders::default());
    }

    #[test]
    fn long_chains_keep_the_root_and_the_latest() {
        let refs: Vec<String> = (0..50).map(|i| format!("m{i}@x")).collect();
        let parent = ThreadIds {
            message_id: Some("last@x".into()),
            in_reply_to: None,
            references: refs,
        };
        let h = reply_headers(&parent);
        assert_eq!(h.references.len(), MAX_REFERENCES);
        assert_eq!(h.references[0], "m0@x");
        assert_eq!(h.references.last().unwrap(), "last@x");
        assert_eq!(h.references[MAX_REFERENCES - 2], "m49@x");
    }

    #[test]
    fn subjects_get_exactly_one_re() {
        assert_eq!(reply_subject("Order 12"), "Re: Order 12");
        assert_eq!(reply_subject("Re: Order 12"), "Re: Order 12");
        assert_eq!(reply_subject("RE: re: Re:Order 12"), "Re: Order 12");
        assert_eq!(reply_subject("re : Order"), "Re: Order");
        assert_eq!(reply_subject("Regarding order"), "Re: Regarding order");
        assert_eq!(reply_subject(""), "Re:");
        assert_eq!(reply_subject("Re:"), "Re:");
        assert_eq!(reply_subject("a\r\nBcc: x"), "Re: a  Bcc: x");
    }

    proptest! {
        #[test]
        fn reply_subject_is_idempotent_and_one_line(s in "\\PC{0,40}") {
            let once = reply_subject(&s);
            prop_assert!(once.starts_with("Re:"));
            prop_assert!(!once.contains('\n') && !once.contains('\r'));
            prop_assert_eq!(reply_subject(&once), once.clone());
            prop_assert!(!once.to_ascii_lowercase().starts_with("re: re:"));
        }

        #[test]
        fn references_are_capped_unique_and_end_with_the_parent(
            n in 0usize..60,
            parent in "[a-z0-9]{1,8}@[a-z]{1,5}",
        ) {
            let refs: Vec<String> = (0..n).map(|i| format!("r{}@x", i % 30)).collect();
            let h = reply_headers(&ThreadIds {
                message_id: Some(parent.clone()),
                in_reply_to: None,
                references: refs,
            });
            prop_assert!(h.references.len() <= MAX_REFERENCES);
            prop_assert_eq!(h.references.last(), Some(&parent));
            let set: std::collections::HashSet<_> = h.references.iter().collect();
            prop_assert_eq!(set.len(), h.references.len());
        }
    }
}
