//! Outbound email over SMTP (lettre 0.11): builds the MIME
//! message (our Message-ID, RFC 8058 one-click unsubscribe, text+HTML) and
//! sends it on a fresh connection, classifying every failure by the SMTP
//! phase it happened in. Before the body is sent nothing can have been
//! accepted (Transient/Permanent by reply code); once the body and its final
//! `.` are on the wire, a missing reply is Ambiguous.
//!
//! lettre's `AsyncSmtpTransport::send` runs MAIL, RCPT, DATA and the body as
//! one call and reports an EOF or a timeout the same way whichever phase it
//! hit, so it cannot tell "never sent" from "maybe accepted". We therefore
//! drive lettre's own `AsyncSmtpConnection` (the type the transport uses
//! inside) step by step, with the same connect/STARTTLS/AUTH sequence.

use std::time::Duration;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::Message;

use crate::{BoxFuture, Medium, Outgoing, Receipt, SendError, Sender};

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plaintext. Only for a relay on the same host or network (and tests).
    None,
    /// Plain connect, then mandatory STARTTLS (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// One tenant's relay.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Applies to the connect and to each phase (commands, body + reply).
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never goes to a log.
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends through one SMTP relay, a new connection per message.
#[derive(Clone)]
pub struct SmtpSender {
    cfg: SmtpConfig,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("SmtpSender")
            .field("host", &self.cfg.host)
            .field("port", &self.cfg.port)
            .field("tls", &self.cfg.tls)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    pub fn new(cfg: SmtpConfig) -> Result<SmtpSender, String> {
        if cfg.host.trim().is_empty() {
            return Err("the SMTP host is empty".to_string());
        }
        let tls = match cfg.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Implicit => Some(
                TlsParameters::new(cfg.host.clone())
                    .map_err(|e| format!("cannot set up TLS for `{}`: {e}", cfg.host))?,
            ),
        };
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.clone())),
            (None, None) => None,
            _ => return Err("give both an SMTP user name and a password, or neither".to_string()),
        };
        Ok(SmtpSender {
            cfg,
            tls,
            credentials,
            hello: ClientId::default(),
        })
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        let implicit = match self.cfg.tls {
            SmtpTls::Implicit => self.tls.clone(),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.cfg.host.as_str(), self.cfg.port),
            Some(self.cfg.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await?;
        if let (SmtpTls::StartTls, Some(tls)) = (self.cfg.tls, &self.tls) {
            conn.starttls(tls.clone(), &self.hello).await?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await?;
        }
        Ok(conn)
    }

    async fn send_mail(&self, m: &Outgoing) -> Result<Receipt, SendError> {
        if m.medium != Medium::Email {
            return Err(SendError::Permanent(
                "the SMTP sender only sends email".to_string(),
            ));
        }
        let msg = build_message(m)?;
        let envelope = msg.envelope().clone();
        let raw = msg.formatted();
        let t = self.cfg.timeout;
        let where_ = format!("{}:{}", self.cfg.host, self.cfg.port);

        let mut conn = match tokio::time::timeout(t, self.connect()).await {
            Err(_) => {
                return Err(SendError::Transient(format!(
                    "{where_}: no greeting in time"
                )))
            }
            Ok(Err(e)) => return Err(before_body(&where_, e)),
            Ok(Ok(c)) => c,
        };

        let mut params = Vec::new();
        if !raw.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                abort(&mut conn).await;
                return Err(SendError::Permanent(format!(
                    "{where_}: the message has 8-bit content and the server does not offer 8BITMIME"
                )));
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        // MAIL, RCPT, DATA: the server has not got the message yet.
        let envelope_phase = async {
            let non_ascii = envelope
                .from()
                .is_some_and(|a| !AsRef::<str>::as_ref(a).is_ascii())
                || envelope
                    .to()
                    .iter()
                    .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
            if non_ascii {
                if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                    return Err(None);
                }
                params.push(MailParameter::SmtpUtfEight);
            }
            conn.command(Mail::new(envelope.from().cloned(), params))
                .await
                .map_err(Some)?;
            for rcpt in envelope.to() {
                conn.command(Rcpt::new(rcpt.clone(), vec![]))
                    .await
                    .map_err(Some)?;
            }
            conn.command(Data).await.map_err(Some)?;
            Ok::<(), Option<lettre::transport::smtp::Error>>(())
        };
        match tokio::time::timeout(t, envelope_phase).await {
            Err(_) => {
                // The peer is unresponsive: no polite QUIT, just close.
                drop(conn);
                return Err(SendError::Transient(format!(
                    "{where_}: no reply to MAIL/RCPT/DATA in time"
                )));
            }
            Ok(Err(Some(e))) => {
                abort(&mut conn).await;
                return Err(before_body(&where_, e));
            }
            Ok(Err(None)) => {
                abort(&mut conn).await;
                return Err(SendError::Permanent(format!(
                    "{where_}: the addresses are not ASCII and the server does not offer SMTPUTF8"
                )));
            }
            Ok(Ok(())) => {}
        }

        // The body and the final "." go out, then we wait for the verdict. A
        // reply code is definite; anything else means the server may have
        // queued the message.
        let reply = match tokio::time::timeout(t, conn.message(&raw)).await {
            Err(_) => {
                return Err(SendError::Ambiguous(format!(
                    "{where_}: no reply after the message was sent (timed out after {t:?}); it may have been accepted"
                )))
            }
            Ok(Err(e)) if e.is_permanent() => return Err(SendError::Permanent(format!("{where_}: {e}"))),
            Ok(Err(e)) if e.is_transient() => return Err(SendError::Transient(format!("{where_}: {e}"))),
            Ok(Err(e)) => {
                return Err(SendError::Ambiguous(format!(
                    "{where_}: connection failed after the message was sent ({e}); it may have been accepted"
                )))
            }
            Ok(Ok(reply)) => reply,
        };
        let text = reply.message().collect::<Vec<_>>().join(" ");
        // Accepted; a failing QUIT changes nothing.
        let _ = tokio::time::timeout(t, conn.quit()).await;
        Ok(Receipt {
            provider: "smtp",
            provider_id: queue_id(&text),
            status: "sent".to_string(),
        })
    }
}

async fn abort(conn: &mut AsyncSmtpConnection) {
    // abort() sends QUIT and closes; bounded so a peer that stops answering
    // cannot hold the sender (the error is already decided).
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.abort()).await;
}

/// An error before the body was sent: by reply code when there is one,
/// otherwise transient (network, TLS, a garbled reply), except for client
/// side refusals (no STARTTLS offered, no matching AUTH mechanism) which
/// will not fix themselves.
fn before_body(where_: &str, e: lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() || e.is_client() {
        SendError::Permanent(format!("{where_}: {e}"))
    } else {
        SendError::Transient(format!("{where_}: {e}"))
    }
}

/// "2.0.0 Ok: queued as 4F2C1" → "4F2C1".
fn queue_id(reply: &str) -> Option<String> {
    let lower = reply.to_ascii_lowercase();
    let at = lower.find("queued as ")? + "queued as ".len();
    let id: String = reply[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ')')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// `List-Unsubscribe: <url>` (RFC 2369).
#[derive(Debug, Clone)]
pub struct ListUnsubscribe(pub String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(
            s.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        ))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), which
/// mailbox providers require of bulk senders for a one-click button.
#[derive(Debug, Clone)]
pub struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_string())
    }
}

fn mailbox(field: &str, raw: &str) -> Result<Mailbox, SendError> {
    raw.parse::<Mailbox>()
        .map_err(|e| SendError::Permanent(format!("invalid {field} address `{raw}`: {e}")))
}

/// `<id>` for a threading header; an id that could break the header line
/// (whitespace, brackets, control characters, no `@`) is refused.
fn bracketed(id: &str) -> Result<String, SendError> {
    let bare = id.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = bare.contains('@')
        && bare
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | ',' | ';' | '\\'));
    if !ok {
        return Err(SendError::Permanent(format!(
            "invalid message id `{}` for a threading header",
            id.escape_debug()
        )));
    }
    Ok(format!("<{bare}>"))
}

/// The MIME message for `m`. Invalid addresses are permanent: no retry will
/// make them valid.
pub fn build_message(m: &Outgoing) -> Result<Message, SendError> {
    if let Some(url) = &m.unsubscribe_url {
        // A header value with a line break would let a tenant inject headers.
        if url.contains(['\r', '\n', '<', '>'])
            || !url.starts_with("http") && !url.starts_with("mailto:")
        {
            return Err(SendError::Permanent(format!(
                "invalid unsubscribe URL `{url}`"
            )));
        }
    }
    let mut b = Message::builder()
        .from(mailbox("From", &m.from)?)
        .to(mailbox("To", &m.to)?)
        .subject(m.subject.clone().unwrap_or_default())
        .message_id(Some(format!("<{}>", m.message_id.trim_matches(['<', '>']))));
    if let Some(r) = &m.reply_to {
        b = b.reply_to(mailbox("Reply-To", r)?);
    }
    // Threading headers: ids are checked here, where a stored id with a line
    // break or a bracket would otherwise become a header of its own.
    if let Some(parent) = &m.in_reply_to {
        b = b.in_reply_to(bracketed(parent)?);
    }
    if !m.references.is_empty() {
        let refs = m
            .references
            .iter()
            .map(|r| bracketed(r))
            .collect::<Result<Vec<_>, _>>()?;
        b = b.references(refs.join(" "));
    }
    if let Some(url) = &m.unsubscribe_url {
        b = b
            .header(ListUnsubscribe(url.clone()))
            .header(ListUnsubscribePost);
    }
    let built = match &m.html {
        Some(html) => b.multipart(MultiPart::alternative_plain_html(
            m.text.clone(),
            html.clone(),
        )),
        None => b.singlepart(SinglePart::plain(m.text.clone())),
    };
    built.map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

impl Sender for SmtpSender {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn send<'a>(&'a self, m: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.send_mail(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Outgoing {
        Outgoing {
            medium: Medium::Email,
            to: "jane@example.com".into(),
            from: "Shop <shop@example.org>".into(),
            reply_to: Some("reply+c1@in.example.org".into()),
            subject: Some("Your cart".into()),
            text: "Hello".into(),
            html: None,
            message_id: "abc@bos.local".into(),
            in_reply_to: None,
            references: Vec::new(),
            idempotency_key: "k".into(),
            unsubscribe_url: Some("https://example.org/u/1".into()),
            status_callback: None,
        }
    }

    #[test]
    fn headers_are_built() {
        let raw = String::from_utf8(build_message(&sample()).unwrap().formatted()).unwrap();
        assert!(raw.contains("Message-ID: <abc@bos.local>\r\n"), "{raw}");
        assert!(
            raw.contains("List-Unsubscribe: <https://example.org/u/1>\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("Reply-To: reply+c1@in.example.org\r\n"),
            "{raw}"
        );
    }

    #[test]
    fn threading_headers_name_the_parent_and_the_chain() {
        let mut m = sample();
        m.in_reply_to = Some("p2@mail.example.com".into());
        m.references = vec!["<p1@mail.example.com>".into(), "p2@mail.example.com".into()];
        let raw = String::from_utf8(build_message(&m).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("In-Reply-To: <p2@mail.example.com>\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("References: <p1@mail.example.com> <p2@mail.example.com>\r\n"),
            "{raw}"
        );
        for bad in ["a@x\r\nBcc: evil@x", "no-at-sign", "a b@x", "a@x>b"] {
            let mut m = sample();
            m.in_reply_to = Some(bad.into());
            assert!(
                matches!(build_message(&m), Err(SendError::Permanent(_))),
                "{bad:?}"
            );
            let mut m = sample();
            m.references = vec![bad.into()];
            assert!(
                matches!(build_message(&m), Err(SendError::Permanent(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_addresses_are_permanent() {
        for (field, f) in [
            (
                "From",
                (|m: &mut Outgoing| m.from = "not an address".into()) as fn(&mut Outgoing),
            ),
            ("To", |m| m.to = "jane@".into()),
            ("Reply-To", |m| m.reply_to = Some("@x".into())),
        ] {
            let mut m = sample();
            f(&mut m);
            match build_message(&m) {
                Err(SendError::Permanent(msg)) => assert!(msg.contains(field), "{msg}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut m = sample();
        m.unsubscribe_url = Some("https://x/\r\nBcc: evil@x".into());
        assert!(matches!(build_message(&m), Err(SendError::Permanent(_))));
    }

    #[test]
    fn debug_hides_the_password() {
        let cfg = SmtpConfig {
            host: "smtp.example.org".into(),
            port: 587,
            tls: SmtpTls::StartTls,
            username: Some("u".into()),
            password: Some("hunter2".into()),
            timeout: Duration::from_secs(5),
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let sender = SmtpSender::new(cfg).unwrap();
        assert!(!format!("{sender:?}").contains("hunter2"));
    }

    #[test]
    fn queue_ids() {
        assert_eq!(queue_id("2.0.0 Ok: queued as 4F2C1"), Some("4F2C1".into()));
        assert_eq!(queue_id("OK"), None);
    }
}
