//! Small header helpers shared by the inbound email parsers: splitting a
//! `"Name" <addr>` mailbox, and message-id lists. Deliberately forgiving: a
//! provider already parsed the MIME; we only need a stable bare address and
//! bare ids to match threads on.

/// `"Jane Doe" <Jane@Example.com>` → (Some("Jane Doe"), "jane@example.com").
/// Takes the first mailbox of a list. Quoted display names follow RFC 5322:
/// `<`, `>`, `,` and `"` inside the quotes (the last escaped as `\"`) are
/// part of the name, so `"Shop <ops>" <jane@x>` is Jane's address, not
/// `ops>" <jane@x`.
pub(crate) fn split_mailbox(raw: &str) -> (Option<String>, String) {
    let raw = raw.trim();
    let (mut quoted, mut escaped) = (false, false);
    let (mut open, mut close, mut end) = (None, None, raw.len());
    for (i, c) in raw.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted && open.is_none() => open = Some(i),
            '>' if !quoted && open.is_some() => {
                close = Some(i);
                break;
            }
            // The end of a bare first mailbox of a list.
            ',' if !quoted && open.is_none() => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    if let (Some(open), Some(close)) = (open, close) {
        let addr = raw[open + 1..close].trim().to_ascii_lowercase();
        let name = unquote(raw[..open].trim());
        let name = (!name.is_empty()).then_some(name);
        return (name, addr);
    }
    (None, raw[..end].trim().to_ascii_lowercase())
}

/// A display name without its RFC 5322 quotes and escapes.
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return s.trim_matches('"').trim().to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
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
    fn quoted_names_may_hold_angle_brackets_commas_and_quotes() {
        assert_eq!(
            split_mailbox("\"Shop <ops>\" <Jane@Example.com>"),
            (Some("Shop <ops>".into()), "jane@example.com".into())
        );
        assert_eq!(
            split_mailbox("\"Doe, Jane\" <jane@x.org>, b@y.org"),
            (Some("Doe, Jane".into()), "jane@x.org".into())
        );
        assert_eq!(
            split_mailbox(r#""Jane \"JJ\" Doe" <jane@x.org>"#),
            (Some("Jane \"JJ\" Doe".into()), "jane@x.org".into())
        );
        assert_eq!(
            split_mailbox(r#""a \\ b>" <jane@x.org>"#),
            (Some("a \\ b>".into()), "jane@x.org".into())
        );
        assert_eq!(
            split_mailbox("Plain Name <p@x.org>"),
            (Some("Plain Name".into()), "p@x.org".into())
        );
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
