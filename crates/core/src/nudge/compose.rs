//! Composing one nudge message for one customer: the variant's templates
//! rendered with the customer's values, the cart link swapped for a
//! tracked click-through, the plain-text unsubscribe footer, and for email
//! the HTML part (values escaped, line breaks kept, an unsubscribe link and
//! the open pixel). The public addresses come from a [`MessageLinks`] the
//! caller hands in: the web layer owns the routes, so nothing here (or in
//! the storage below the web layer) spells one.

use super::campaign::{Channel, Variant};
use super::template::{render, Escape, TemplateError, Vars};

/// The public URLs a message carries, all keyed by the message's own
/// unguessable token (or, for delivery reports, the channel's webhook key).
pub trait MessageLinks: Send + Sync {
    /// The one-pixel image whose fetch records an open.
    fn open_pixel(&self, token: &str) -> String;
    /// The tracked click-through: records the click, then redirects to the
    /// message's link.
    fn click(&self, token: &str) -> String;
    /// The unsubscribe page (and RFC 8058 one-click POST target).
    fn unsubscribe(&self, token: &str) -> String;
    /// Where an SMS provider posts its delivery reports for the channel
    /// with this webhook key.
    fn delivery_status(&self, hook_key: &str) -> String;
}

/// One message ready to store and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: Option<String>,
    pub text: String,
    /// The HTML part of an email (none for SMS, or when not asked for).
    pub html: Option<String>,
    /// The link the click-through leads to (the customer's cart), when the
    /// message has one.
    pub link: Option<String>,
}

/// What one message is made of, besides the links.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    pub variant: &'a Variant,
    /// Email or SMS (a `Preferred` step resolved for this customer); any
    /// channel but SMS composes as email.
    pub channel: Channel,
    /// The customer's values, without `cart_url` and `unsubscribe_url`:
    /// those are the tracked links, added here.
    pub vars: &'a Vars,
    /// Where the message's link leads (the cart), if anywhere.
    pub link: Option<&'a str>,
    /// The message's token in its tracking and unsubscribe links.
    pub token: &'a str,
    /// Whether to build the HTML part of an email (the development sink
    /// keeps only the text).
    pub html: bool,
}

/// Renders a draft. A template that needs a value the customer lacks is an
/// error, never a blank.
pub fn compose(d: Draft<'_>, links: &dyn MessageLinks) -> Result<Composed, TemplateError> {
    let click = d.link.map(|_| links.click(d.token));
    let unsub = links.unsubscribe(d.token);
    let mut vars = d.vars.clone();
    if let Some(c) = &click {
        vars = vars.with("cart_url", c.as_str());
    }
    vars = vars.with("unsubscribe_url", unsub.as_str());
    let link = d.link.map(str::to_string);
    if d.channel == Channel::Sms {
        return Ok(Composed {
            subject: None,
            text: render(&d.variant.body, &vars, Escape::None)?,
            html: None,
            link,
        });
    }
    let subject = match &d.variant.subject {
        Some(s) => Some(render(s, &vars, Escape::None)?),
        None => None,
    };
    let text = render(&d.variant.body, &vars, Escape::None)?;
    let html = if d.html {
        let body = render(&d.variant.body, &vars, Escape::Html)?;
        Some(email_html(&body, d.token, links))
    } else {
        None
    };
    let text = if text.contains(&unsub) {
        text
    } else {
        format!("{text}{}", unsubscribe_footer(&unsub))
    };
    Ok(Composed {
        subject,
        text,
        html,
        link,
    })
}

/// The plain-text footer added to an email whose body has no unsubscribe
/// link of its own.
fn unsubscribe_footer(url: &str) -> String {
    format!("\n\nUnsubscribe: {url}")
}

/// The HTML part of an email whose text was rendered before (a retry: the
/// stored text holds the values substituted at the first try), so a retry
/// looks like the first send.
pub fn email_html_from_text(text: &str, token: &str, links: &dyn MessageLinks) -> String {
    let footer = unsubscribe_footer(&links.unsubscribe(token));
    let body = text.strip_suffix(&footer).unwrap_or(text);
    email_html(&html_escape(body), token, links)
}

/// The HTML part of a nudge email: the (already escaped) body with its
/// line breaks, the unsubscribe link and the open pixel.
fn email_html(body_html: &str, token: &str, links: &dyn MessageLinks) -> String {
    format!(
        "<!doctype html><html><body><div style=\"font-family:sans-serif;font-size:15px;line-height:1.5\">{}</div>\
         <p style=\"font-size:12px;color:#888\"><a href=\"{}\">Unsubscribe</a></p>\
         <img src=\"{}\" width=\"1\" height=\"1\" alt=\"\"></body></html>",
        body_html.replace('\n', "<br>\n"),
        links.unsubscribe(token),
        links.open_pixel(token),
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Links under a base that says where they came from.
    struct Fake(&'static str);

    impl MessageLinks for Fake {
        fn open_pixel(&self, t: &str) -> String {
            format!("{}/open/{t}", self.0)
        }
        fn click(&self, t: &str) -> String {
            format!("{}/click/{t}", self.0)
        }
        fn unsubscribe(&self, t: &str) -> String {
            format!("{}/unsub/{t}", self.0)
        }
        fn delivery_status(&self, h: &str) -> String {
            format!("{}/status/{h}", self.0)
        }
    }

    fn variant(subject: Option<&str>, body: &str) -> Variant {
        Variant {
            name: "A".into(),
            weight: 1,
            subject: subject.map(str::to_string),
            body: body.into(),
        }
    }

    fn draft<'a>(v: &'a Variant, vars: &'a Vars, channel: Channel) -> Draft<'a> {
        Draft {
            variant: v,
            channel,
            vars,
            link: Some("https://shop.example/cart/1"),
            token: "tok",
            html: true,
        }
    }

    #[test]
    fn email_links_come_from_the_given_links() {
        let v = variant(
            Some("Hi {{ first_name }}"),
            "Your cart: {{ cart_url }}\nBye",
        );
        let vars = Vars::new().with("first_name", "Ana");
        let m = compose(draft(&v, &vars, Channel::Email), &Fake("https://x.test")).unwrap();
        assert_eq!(m.subject.as_deref(), Some("Hi Ana"));
        assert_eq!(
            m.text,
            "Your cart: https://x.test/click/tok\nBye\n\nUnsubscribe: https://x.test/unsub/tok"
        );
        assert_eq!(m.link.as_deref(), Some("https://shop.example/cart/1"));
        let html = m.html.unwrap();
        assert!(html.contains("<br>\nBye"), "{html}");
        assert!(html.contains("href=\"https://x.test/unsub/tok\""), "{html}");
        assert!(html.contains("src=\"https://x.test/open/tok\""), "{html}");
    }

    #[test]
    fn a_body_with_its_own_unsubscribe_link_gets_no_footer() {
        let v = variant(Some("s"), "Stop: {{ unsubscribe_url }}");
        let vars = Vars::new();
        let m = compose(draft(&v, &vars, Channel::Email), &Fake("b")).unwrap();
        assert_eq!(m.text, "Stop: b/unsub/tok");
    }

    #[test]
    fn sms_is_plain_text_without_footer_or_html() {
        let v = variant(None, "Hi {{ first_name }} <3 {{ cart_url }}");
        let vars = Vars::new().with("first_name", "Tom & Jerry");
        let m = compose(draft(&v, &vars, Channel::Sms), &Fake("b")).unwrap();
        assert_eq!(m.text, "Hi Tom & Jerry <3 b/click/tok");
        assert_eq!((m.subject, m.html), (None, None));
    }

    #[test]
    fn no_link_means_no_cart_url() {
        let v = variant(Some("s"), "{{ cart_url }}");
        let vars = Vars::new();
        let mut d = draft(&v, &vars, Channel::Email);
        d.link = None;
        assert_eq!(
            compose(d, &Fake("b")),
            Err(TemplateError::MissingValue {
                name: "cart_url".into()
            })
        );
    }

    #[test]
    fn a_retry_rebuilds_the_same_html_from_the_text() {
        let v = variant(Some("s"), "Hi {{ first_name }}\nsee you");
        let vars = Vars::new().with("first_name", "Ana");
        let links = Fake("https://x.test");
        let m = compose(draft(&v, &vars, Channel::Email), &links).unwrap();
        assert_eq!(
            email_html_from_text(&m.text, "tok", &links),
            m.html.unwrap()
        );
    }

    proptest! {
        // Whatever a customer's name or a stored text holds, the HTML part
        // never carries live markup from it, and every link in the message
        // points under the base the links were built from.
        #[test]
        fn html_never_lets_markup_through(name in "\\PC{0,40}", stored in "\\PC{0,80}") {
            let v = variant(Some("Hi"), "Hi {{ first_name }}, {{ cart_url }}");
            let vars = Vars::new().with("first_name", format!("<script>{name}"));
            let links = Fake("https://base.test");
            let m = compose(draft(&v, &vars, Channel::Email), &links).unwrap();
            let html = m.html.unwrap();
            prop_assert!(!html.to_lowercase().contains("<script"), "{}", html);
            for part in html.split("href=\"").skip(1).chain(html.split("src=\"").skip(1)) {
                prop_assert!(part.starts_with("https://base.test/"), "{}", part);
            }
            prop_assert!(m.text.contains("https://base.test/click/tok"));
            let retry = email_html_from_text(&format!("<script>{stored}"), "tok", &links);
            prop_assert!(!retry.to_lowercase().contains("<script"), "{}", retry);
        }
    }
}
