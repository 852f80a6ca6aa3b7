//! E-mail HTML made safe to show inside the inbox. Customers' mail is
//! attacker-controlled markup: it is parsed the way a browser parses it
//! (`ammonia`, on html5ever) and rebuilt from an allow-list of formatting
//! tags and attributes. Scripts, event handlers, forms, frames, `style`
//! (CSS can load URLs and so report that the mail was opened, and the
//! pages' content security policy refuses inline styles anyway) and every
//! URL scheme but http, https and mailto are removed. Remote images are
//! off until the member clicks: an image's address moves from `src` to
//! [`REMOTE_SRC_ATTR`], which the UI copies back on request, so opening a
//! mail does not tell its sender.

use std::collections::HashSet;
use std::sync::OnceLock;

/// The attribute a remote image's address is kept in until the member
/// chooses to load images.
pub const REMOTE_SRC_ATTR: &str = "data-remote-src";

/// Formatting that is safe to show: text structure, lists, tables, links
/// and images (the images without their source, see the module comment).
const TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "center",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
];

fn builder() -> &'static ammonia::Builder<'static> {
    static B: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    B.get_or_init(|| {
        let mut b = ammonia::Builder::empty();
        b.tags(TAGS.iter().copied().collect())
            // Whatever is inside these is not text a person should read.
            .clean_content_tags(
                ["script", "style", "title", "head", "noscript", "template"]
                    .into_iter()
                    .collect(),
            )
            .generic_attributes(["title", "lang", "dir"].into_iter().collect())
            .tag_attributes(
                [
                    ("a", ["href"].into_iter().collect::<HashSet<_>>()),
                    (
                        "img",
                        ["src", "alt", "width", "height"].into_iter().collect(),
                    ),
                    ("td", ["colspan", "rowspan", "align"].into_iter().collect()),
                    ("th", ["colspan", "rowspan", "align"].into_iter().collect()),
                    ("ol", ["start"].into_iter().collect()),
                    ("font", ["color"].into_iter().collect()),
                    ("p", ["align"].into_iter().collect()),
                    ("div", ["align"].into_iter().collect()),
                ]
                .into_iter()
                .collect(),
            )
            .url_schemes(["http", "https", "mailto"].into_iter().collect())
            // A relative link means nothing outside the sender's site.
            .url_relative(ammonia::UrlRelative::Deny)
            // Links open away from the inbox and tell the target nothing.
            .link_rel(Some("noopener noreferrer nofollow"))
            .set_tag_attribute_value("a", "target", "_blank")
            .strip_comments(true)
            .attribute_filter(|element, attribute, value| {
                // An image may only come from the web (no cid: or data:
                // tricks); the src is then moved aside, below.
                if element == "img" && attribute == "src" {
                    let lower = value.trim_start().to_ascii_lowercase();
                    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                        return None;
                    }
                }
                Some(value.into())
            });
        b
    })
}

/// Sanitizes one e-mail's HTML for display.
pub fn sanitize_email_html(html: &str) -> String {
    let clean = builder().clean(html).to_string();
    park_image_sources(&clean)
}

/// The length of the tag `rest` starts with (`rest` starts with `<`): up to
/// the first `>` outside a quoted value. Ammonia's output is serialized
/// HTML: a literal `<` only ever starts a tag (text has `&lt;`), and every
/// attribute is written `name="value"` with `"` escaped inside values, but
/// `>` and `<` may stand unescaped inside a value, so quotes are tracked.
fn tag_len(rest: &str) -> usize {
    let mut quoted = false;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return i + 1,
            _ => {}
        }
    }
    rest.len()
}

/// The position of ` src="` outside quoted values in one tag.
fn src_attr(tag: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in tag.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted && tag[i..].starts_with(" src=\"") => return Some(i),
            _ => {}
        }
    }
    None
}

/// Moves every `<img src="…">` to [`REMOTE_SRC_ATTR`].
fn park_image_sources(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 16);
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let from_tag = &rest[start..];
        let len = tag_len(from_tag);
        let tag = &from_tag[..len];
        let is_img = tag
            .strip_prefix("<img")
            .is_some_and(|after| after.is_empty() || after.starts_with([' ', '>', '/']));
        match (is_img, src_attr(tag)) {
            (true, Some(at)) => {
                out.push_str(&tag[..at]);
                out.push(' ');
                out.push_str(REMOTE_SRC_ATTR);
                out.push_str(&tag[at + " src".len()..]);
            }
            _ => out.push_str(tag),
        }
        rest = &from_tag[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The tags of serialized HTML, each as (name, [(attr, value)]), values
    /// with the entities the serializer writes decoded.
    fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let from_tag = &rest[start..];
            let len = tag_len(from_tag);
            let inner = from_tag[1..len].trim_end_matches('>');
            rest = &from_tag[len..];
            let inner = inner.trim_start_matches('/').trim_end_matches('/');
            let (name, mut attrs_src) = inner.split_once(' ').unwrap_or((inner, ""));
            let mut attrs = Vec::new();
            while let Some(eq) = attrs_src.find("=\"") {
                let name = attrs_src[..eq].trim().to_string();
                let v_start = eq + 2;
                let v_end = attrs_src[v_start..]
                    .find('"')
                    .map_or(attrs_src.len(), |e| v_start + e);
                let value = attrs_src[v_start..v_end]
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&")
                    .replace("&nbsp;", "\u{a0}");
                attrs.push((name, value));
                attrs_src = &attrs_src[(v_end + 1).min(attrs_src.len())..];
            }
            out.push((name.to_ascii_lowercase(), attrs));
        }
        out
    }

    fn assert_safe(out: &str) {
        let lower = out.to_ascii_lowercase();
        assert!(!lower.contains("<script"), "script in {out}");
        assert!(!lower.contains("<style"), "style in {out}");
        assert!(!lower.contains("<iframe"), "iframe in {out}");
        for (tag, attrs) in tags(out) {
            for (name, value) in attrs {
                let n = name.to_ascii_lowercase();
                assert!(!n.starts_with("on"), "handler {n} on {tag} in {out}");
                assert!(n != "style", "style attribute in {out}");
                assert!(!(tag == "img" && n == "src"), "live image in {out}");
                let v: String = value
                    .chars()
                    .filter(|c| !c.is_whitespace() && !c.is_control())
                    .collect::<String>()
                    .to_ascii_lowercase();
                assert!(!v.contains("javascript:"), "javascript: URL in {out}");
                assert!(!v.contains("vbscript:"), "vbscript: URL in {out}");
                assert!(!v.starts_with("data:"), "data: URL in {out}");
            }
        }
    }

    #[test]
    fn keeps_formatting_and_links() {
        let out = sanitize_email_html(
            "<p>Hello <b>there</b>, see <a href=\"https://shop.example/o/1\">your order</a></p>",
        );
        assert_eq!(
            out,
            "<p>Hello <b>there</b>, see <a href=\"https://shop.example/o/1\" \
             target=\"_blank\" rel=\"noopener noreferrer nofollow\">your order</a></p>"
        );
    }

    #[test]
    fn removes_scripts_handlers_and_dangerous_urls() {
        let cases = [
            "<script>alert(1)</script>hi",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"  JaVaScRiPt:alert(1)\">x</a>",
            "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
            "<svg><script>alert(1)</script></svg>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<div style=\"background:url(https://track.example/open)\">x</div>",
            "<style>@import 'https://track.example/x.css';</style>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<form action=\"https://evil.example\"><input name=p></form>",
            "<body onload=alert(1)>",
            "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
            "<object data=\"x\"></object><embed src=\"x\">",
            "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
            "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
        ];
        for c in cases {
            let out = sanitize_email_html(c);
            assert_safe(&out);
        }
        assert_eq!(sanitize_email_html("<script>alert(1)</script>hi"), "hi");
    }

    #[test]
    fn remote_images_wait_for_a_click() {
        let out = sanitize_email_html("<img src=\"https://cdn.example/a.png\" alt=\"logo\">");
        assert_eq!(
            out,
            "<img data-remote-src=\"https://cdn.example/a.png\" alt=\"logo\">"
        );
        // Not a web address: dropped outright.
        let out = sanitize_email_html("<img src=\"cid:part1\" alt=\"x\">");
        assert_eq!(out, "<img alt=\"x\">");
        let out = sanitize_email_html("<img src=\"data:image/png;base64,AAAA\">");
        assert_eq!(out, "<img>");
        // A `>` inside another attribute does not hide the src.
        let out = sanitize_email_html("<img alt=\"a>b\" src=\"https://t.example/p.gif\">");
        assert_eq!(
            out,
            "<img alt=\"a&gt;b\" data-remote-src=\"https://t.example/p.gif\">"
        );
        // Text that looks like the attribute inside a value is left alone.
        let out = sanitize_email_html("<img alt=\"x src=&quot;y\">");
        assert_eq!(out, "<img alt=\"x src=&quot;y\">");
        // The attribute itself cannot be smuggled in.
        let out = sanitize_email_html("<img data-remote-src=\"javascript:alert(1)\">");
        assert_eq!(out, "<img>");
    }

    #[test]
    fn text_that_looks_like_a_tag_stays_text() {
        let out = sanitize_email_html("1 &lt; 2 and &lt;img src=x&gt;");
        assert_eq!(out, "1 &lt; 2 and &lt;img src=x&gt;");
    }

    fn fragment() -> impl Strategy<Value = String> {
        proptest::sample::select(vec![
            "<script>",
            "</script>",
            "<img",
            " src=",
            "\"",
            "'",
            "javascript:",
            "JAVASCRIPT:",
            "java\tscript:",
            " onerror=",
            " onclick=",
            "ONload=",
            ">",
            "<",
            "/",
            "<a",
            " href=",
            "<svg",
            "<math",
            "<style>",
            "<iframe",
            "<!--",
            "-->",
            "<![CDATA[",
            "]]>",
            "&#106;",
            "&#x6A;",
            "avascript:",
            "data:",
            "<p",
            "<b>",
            "</b>",
            "x",
            " ",
            "=",
            "<div",
            " style=",
            "expression(",
            "url(",
            "<noscript>",
            "<template>",
            "<textarea>",
            "<title>",
            "</title>",
            "<table>",
            "<td",
            "`",
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the input, no output has a script, an event handler, a
        /// style, a live image or a script URL in any attribute.
        #[test]
        fn output_is_always_safe(parts in proptest::collection::vec(fragment(), 0..40)) {
            let input: String = parts.concat();
            assert_safe(&sanitize_email_html(&input));
        }

        #[test]
        fn arbitrary_text_is_safe(input in "\\PC{0,200}") {
            assert_safe(&sanitize_email_html(&input));
        }

        /// Sanitizing what is already sanitized changes nothing except that
        /// parked images stay parked.
        #[test]
        fn sanitizing_twice_is_stable(parts in proptest::collection::vec(fragment(), 0..30)) {
            let once = sanitize_email_html(&parts.concat());
            let twice = sanitize_email_html(&once);
            assert_safe(&twice);
        }
    }
}
