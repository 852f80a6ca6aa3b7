//! TwilioSender against the fake Twilio: the request on the wire (fields,
//! Basic auth, idempotency header) and the failure classes.

use std::time::Duration;

use bos_channels::fake::{FakeTwilio, TwilioFail};
use bos_channels::{Medium, Outgoing, SendError, Sender, TwilioConfig, TwilioSender};

fn sms(to: &str, from: &str) -> Outgoing {
    Outgoing {
        medium: Medium::Sms,
        to: to.into(),
        from: from.into(),
        reply_to: None,
        subject: None,
        text: "Your cart is waiting & so are we: 20% off".into(),
        html: None,
        message_id: "m1@bos.local".into(),
        in_reply_to: None,
        references: Vec::new(),
        idempotency_key: "send-42".into(),
        unsubscribe_url: None,
        status_callback: Some("https://bos.example/hooks/twilio/status?t=1".into()),
    }
}

fn sender(fake: &FakeTwilio) -> TwilioSender {
    TwilioSender::new(fake.config(Duration::from_secs(5))).unwrap()
}

#[tokio::test]
async fn sends_fields_auth_and_idempotency_token() {
    let fake = FakeTwilio::start().await;
    let r = sender(&fake)
        .send(&sms("+15551230001", "+15559870002"))
        .await
        .unwrap();
    assert_eq!(r.provider, "twilio");
    assert_eq!(r.status, "queued");
    assert!(
        r.provider_id
            .as_deref()
            .is_some_and(|s| s.starts_with("SM")),
        "{r:?}"
    );
    let got = fake.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, "+15551230001");
    assert_eq!(got[0].from, "+15559870002");
    assert_eq!(got[0].body, "Your cart is waiting & so are we: 20% off");
    assert_eq!(
        got[0].status_callback.as_deref(),
        Some("https://bos.example/hooks/twilio/status?t=1")
    );
    assert_eq!(got[0].idempotency_token.as_deref(), Some("send-42"));
    assert_eq!(fake.attempts(), 1);
}

#[tokio::test]
async fn messaging_service_sid_is_sent_as_such() {
    let fake = FakeTwilio::start().await;
    let r = sender(&fake)
        .send(&sms("+15551230001", "MG00000000000000000000000000000009"))
        .await
        .unwrap();
    assert_eq!(r.status, "accepted");
    assert_eq!(
        fake.messages()[0].from,
        "MG00000000000000000000000000000009"
    );
}

#[tokio::test]
async fn wrong_token_is_permanent() {
    let fake = FakeTwilio::start().await;
    let mut cfg = fake.config(Duration::from_secs(5));
    cfg.auth_token = "someone-elses".into();
    let err = TwilioSender::new(cfg)
        .unwrap()
        .send(&sms("+15551230001", "+15559870002"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(m) if m.contains("401") && m.contains("20003")),
        "{err:?}"
    );
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn bad_number_400_is_permanent_with_twilio_code() {
    let fake = FakeTwilio::start().await;
    let err = sender(&fake)
        .send(&sms("12345", "+15559870002"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(m) if m.contains("21211") && m.contains("not a valid phone number")),
        "{err:?}"
    );
    let err = sender(&fake)
        .send(&sms("+15551230001", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent(m) if m.contains("21603")),
        "{err:?}"
    );
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn server_errors_and_throttling_are_transient() {
    let fake = FakeTwilio::start().await;
    for mode in [TwilioFail::Status500, TwilioFail::Status429] {
        fake.set_failing(mode);
        let err = sender(&fake)
            .send(&sms("+15551230001", "+15559870002"))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Transient(_)), "{mode:?}: {err:?}");
        assert!(err.is_retryable());
    }
    assert!(fake.messages().is_empty());
    fake.set_failing(TwilioFail::None);
    sender(&fake)
        .send(&sms("+15551230001", "+15559870002"))
        .await
        .unwrap();
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(fake.attempts(), 3);
}

#[tokio::test]
async fn no_answer_after_sending_is_ambiguous() {
    let fake = FakeTwilio::start().await;
    fake.set_failing(TwilioFail::Hang);
    let s = TwilioSender::new(fake.config(Duration::from_millis(300))).unwrap();
    let err = s
        .send(&sms("+15551230001", "+15559870002"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Ambiguous(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(fake.attempts(), 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let s = TwilioSender::new(TwilioConfig {
        base_url: format!("http://127.0.0.1:{port}"),
        account_sid: "AC1".into(),
        auth_token: "t".into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let err = s
        .send(&sms("+15551230001", "+15559870002"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}
