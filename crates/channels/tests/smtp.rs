//! SmtpSender against the fake SMTP server: the message on the wire, and the
//! mapping of each failure mode onto Transient / Permanent / Ambiguous.

use std::time::Duration;

use tokio::task::JoinHandle;

use bos_channels::fake::{FakeSmtp, SmtpFail};
use bos_channels::{Medium, Outgoing, SendError, Sender, SmtpConfig, SmtpSender, SmtpTls};

fn mail(html: bool) -> Outgoing {
    Outgoing {
        medium: Medium::Email,
        to: "jane@example.com".into(),
        from: "Corner Shop <shop@example.org>".into(),
        reply_to: Some("reply+c42@in.example.org".into()),
        subject: Some("Your cart is waiting".into()),
        text: "Hi Jane,\n.\nA line that is just a dot, to test dot-stuffing.".into(),
        html: html.then(|| "<p>Hi Jane</p>".into()),
        message_id: "0191c6a4-1111-7000-8000-000000000001@bos.local".into(),
        in_reply_to: None,
        references: Vec::new(),
        idempotency_key: "send-1".into(),
        unsubscribe_url: Some("https://shop.example.org/u/abc".into()),
        status_callback: None,
    }
}

fn sender(fake: &FakeSmtp) -> SmtpSender {
    SmtpSender::new(fake.config(Duration::from_secs(5))).unwrap()
}

#[tokio::test]
async fn sends_with_threading_and_unsubscribe_headers() {
    let fake = FakeSmtp::start().await;
    let receipt = sender(&fake).send(&mail(true)).await.unwrap();
    assert_eq!(receipt.provider, "smtp");
    assert_eq!(receipt.status, "sent");
    assert_eq!(receipt.provider_id.as_deref(), Some("FAKE1"));

    let got = fake.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.from, "shop@example.org");
    assert_eq!(m.to, vec!["jane@example.com"]);
    let d = &m.data;
    assert!(
        d.contains("Message-ID: <0191c6a4-1111-7000-8000-000000000001@bos.local>\r\n"),
        "{d}"
    );
    assert!(
        d.contains("List-Unsubscribe: <https://shop.example.org/u/abc>\r\n"),
        "{d}"
    );
    assert!(
        d.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{d}"
    );
    assert!(
        d.contains("From: \"Corner Shop\" <shop@example.org>\r\n"),
        "{d}"
    );
    assert!(d.contains("Reply-To: reply+c42@in.example.org\r\n"), "{d}");
    assert!(d.contains("Subject: Your cart is waiting\r\n"), "{d}");
    assert!(d.contains("Content-Type: multipart/alternative;"), "{d}");
    assert!(d.contains("Content-Type: text/plain"), "{d}");
    assert!(d.contains("Content-Type: text/html"), "{d}");
    assert!(d.contains("<p>Hi Jane</p>"), "{d}");
    // The lone "." line survived dot-stuffing (client stuffs, fake unstuffs).
    assert!(d.contains("\r\n.\r\nA line that is just a dot"), "{d}");
    assert_eq!(fake.attempts(), 1);
}

#[tokio::test]
async fn plain_text_only_is_not_multipart() {
    let fake = FakeSmtp::start().await;
    let mut m = mail(false);
    m.unsubscribe_url = None;
    sender(&fake).send(&m).await.unwrap();
    let d = &fake.messages()[0].data;
    assert!(!d.contains("multipart"), "{d}");
    assert!(!d.contains("List-Unsubscribe"), "{d}");
    assert!(d.contains("Content-Type: text/plain"), "{d}");
}

#[tokio::test]
async fn auth_is_used_when_configured() {
    let fake = FakeSmtp::start().await;
    let mut cfg = fake.config(Duration::from_secs(5));
    cfg.username = Some("user".into());
    cfg.password = Some("pass".into());
    SmtpSender::new(cfg)
        .unwrap()
        .send(&mail(false))
        .await
        .unwrap();
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn mailbox_unknown_550_is_permanent() {
    let fake = FakeSmtp::start().await;
    fake.set_failing(SmtpFail::Reply550);
    let err = sender(&fake).send(&mail(false)).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(m) if m.contains("550")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn try_later_451_is_transient_and_recovers() {
    let fake = FakeSmtp::start().await;
    fake.set_failing(SmtpFail::Reply451);
    let err = sender(&fake).send(&mail(false)).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Transient(m) if m.contains("451")),
        "{err:?}"
    );
    assert!(fake.messages().is_empty());
    // The outage ends; the retry goes through once.
    fake.set_failing(SmtpFail::None);
    sender(&fake).send(&mail(false)).await.unwrap();
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(fake.attempts(), 2);
}

/// The server received the whole message and closed without the final
/// reply. lettre reports this as an "incomplete response", which on its own
/// could come from any phase; because SmtpSender drives the SMTP phases
/// itself, it knows this happened after the body's final "." was written,
/// so the outcome is Ambiguous (the fake did store the mail: a retry would
/// have sent it twice).
#[tokio::test]
async fn dropped_after_data_is_ambiguous() {
    let fake = FakeSmtp::start().await;
    fake.set_failing(SmtpFail::DropAfterData);
    let err = sender(&fake).send(&mail(false)).await.unwrap_err();
    assert!(matches!(err, SendError::Ambiguous(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let s = SmtpSender::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let err = s.send(&mail(false)).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}

/// A server that greets and then never answers EHLO: the timeout is before
/// anything was sent, so Transient.
#[tokio::test]
async fn silent_server_before_data_is_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"220 hi\r\n").await.unwrap();
        // Hold the connection open without answering.
        std::future::pending::<()>().await;
    });
    let s = SmtpSender::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    let err = s.send(&mail(false)).await.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    server.abort();
}

/// A scripted SMTP server that answers normally until the line `hang_at`
/// (e.g. "MAIL" or the body's final ".") and from then on says nothing but
/// keeps reading until the client closes the connection. The task returns
/// the lines received after that point, or None if it was never reached.
async fn hanging_server(hang_at: &'static str) -> (u16, JoinHandle<Option<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 hi\r\n").await.unwrap();
        let mut in_data = false;
        let mut after: Option<Vec<String>> = None;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return after;
            }
            if let Some(after) = after.as_mut() {
                after.push(line.clone());
                continue;
            }
            if line.trim_end() == hang_at || (!in_data && line.starts_with(hang_at)) {
                after = Some(Vec::new());
                continue;
            }
            if in_data {
                continue;
            }
            let reply: &[u8] = match line.get(..4).unwrap_or("") {
                "EHLO" => b"250 hi\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go\r\n"
                }
                _ => b"250 ok\r\n",
            };
            w.write_all(reply).await.unwrap();
        }
    });
    (port, server)
}

fn local_sender(port: u16, timeout: Duration) -> SmtpSender {
    SmtpSender::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        timeout,
    })
    .unwrap()
}

/// The whole message went out and no reply came: Ambiguous.
#[tokio::test]
async fn no_reply_after_the_body_is_ambiguous() {
    let (port, server) = hanging_server(".").await;
    let err = local_sender(port, Duration::from_millis(300))
        .send(&mail(false))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Ambiguous(m) if m.contains("timed out")),
        "{err:?}"
    );
    // The server really did receive the complete message (the sender has
    // closed the connection, so the server task has finished).
    assert!(server.await.unwrap().is_some());
}

/// No reply to MAIL FROM: nothing was sent yet, so Transient; and the dead
/// connection is closed without a QUIT that would wait for a reply.
#[tokio::test]
async fn no_reply_to_mail_from_is_transient() {
    let (port, server) = hanging_server("MAIL").await;
    let err = local_sender(port, Duration::from_millis(300))
        .send(&mail(false))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    let after = server.await.unwrap().expect("the server saw MAIL FROM");
    assert!(after.iter().all(|l| !l.starts_with("QUIT")), "{after:?}");
}

#[tokio::test]
async fn wrong_medium_is_permanent() {
    let fake = FakeSmtp::start().await;
    let mut m = mail(false);
    m.medium = Medium::Sms;
    let err = sender(&fake).send(&m).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert_eq!(fake.attempts(), 0);
}

#[tokio::test]
async fn starttls_not_offered_is_permanent() {
    let fake = FakeSmtp::start().await;
    let mut cfg = fake.config(Duration::from_secs(5));
    cfg.tls = SmtpTls::StartTls;
    let err = SmtpSender::new(cfg)
        .unwrap()
        .send(&mail(false))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(m) if m.contains("STARTTLS")),
        "{err:?}"
    );
    assert_eq!(fake.attempts(), 0);
}

#[tokio::test]
async fn invalid_address_is_permanent_without_connecting() {
    let fake = FakeSmtp::start().await;
    let mut m = mail(false);
    m.to = "jane at example".into();
    let err = sender(&fake).send(&m).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(msg) if msg.contains("To")),
        "{err:?}"
    );
    assert_eq!(fake.attempts(), 0);
}
