//! The development sender: accepts everything and sends nothing. The engine
//! still records each message in its outbox, so the flow can be followed end
//! to end on a laptop without any provider account.

use crate::{BoxFuture, Outgoing, Receipt, SendError, Sender};

/// Never leaves the machine; always reports `delivered`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DevSink;

impl Sender for DevSink {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn send<'a>(&'a self, m: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(std::future::ready(Ok(Receipt {
            provider: "dev",
            provider_id: Some(format!("dev-{}", m.idempotency_key)),
            status: "delivered".to_string(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Medium;

    #[tokio::test]
    async fn dev_sink_delivers_with_key() {
        let m = Outgoing {
            medium: Medium::Sms,
            to: "+15550001".into(),
            from: "+15550002".into(),
            reply_to: None,
            subject: None,
            text: "hi".into(),
            html: None,
            message_id: "m@bos.local".into(),
            in_reply_to: None,
            references: Vec::new(),
            idempotency_key: "k1".into(),
            unsubscribe_url: None,
            status_callback: None,
        };
        let r = DevSink.send(&m).await.unwrap();
        assert_eq!(r.provider, "dev");
        assert_eq!(r.provider_id.as_deref(), Some("dev-k1"));
        assert_eq!(r.status, "delivered");
    }
}
