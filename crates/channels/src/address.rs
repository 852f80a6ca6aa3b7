//! Small header helpers shared by the inbound email parsers: splitting a
//! `"Name" <addr>` mailbox, and message-id lists. Deliberately forgiving: a
//! provider already parsed the MIME; we only need a stable bare address and
//! bare ids to match threads on.

/// `"Jane Doe" <Jane@Example.com>` → (Some("Jane Doe"), "jane@example.com").
/// Takes the first mailbox of a list.
pub(crate) fn split_mailbox(raw: &str) -> (Option<String>, String) {
    let raw = raw.trim();
    if let (Some(open), Some(close)) = (raw.find('<'), raw.rfind('>')) {
        if open < close {
            let addr = raw[open + 1..close].trim().to_ascii_lowercase();
            let name = raw[..open].trim().trim_matches('"').trim();
            let name = (!name.is_empty()).then(|| name.to_string());
            return (name, addr);
        }
    }
    // A bare list "a@x, b@y": the first one.
    let first = raw.split(',').next().unwrap_or("").trim();
    (None, first.to_ascii_lowercase())
}

/// `<abc@x>` → `abc@x`; empty → None.
pub(crate) fn bare_id(raw: &str) -> Option<String> {
    let id = raw
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// A `References` header → its ids in order, without `<>`.
pub(crate) fn id_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(bare_id)
        .collect()
}

/// `reply+abc@x` → Some("abc"): the plus-address token of a recipient.
pub(crate) fn plus_token(addr: &str) -> Option<String> {
    let local = addr.split('@').next()?;
    let (_, token) = local.split_once('+')?;
    (!token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes() {
        assert_eq!(
            split_mailbox("\"Jane Doe\" <Jane@Example.COM>"),
            (Some("Jane Doe".into()), "jane@example.com".into())
        );
        assert_eq!(split_mailbox("Bob@X.org"), (None, "bob@x.org".into()));
        assert_eq!(split_mailbox("a@x, b@y"), (None, "a@x".into()));
        assert_eq!(split_mailbox("<a@x>"), (None, "a@x".into()));
    }

    #[test]
    fn ids() {
        assert_eq!(bare_id(" <a@b> "), Some("a@b".into()));
        assert_eq!(bare_id("<>"), None);
        assert_eq!(id_list("<a@x>\r\n <b@y>,<c@z>"), vec!["a@x", "b@y", "c@z"]);
        assert_eq!(plus_token("reply+c42@in.bos"), Some("c42".into()));
        assert_eq!(plus_token("reply@in.bos"), None);
    }
}
