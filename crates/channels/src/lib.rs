//! Provider adapters for the nudge engine: sending outbound
//! email (SMTP) and SMS (Twilio), and verifying and parsing the providers'
//! inbound webhooks (Twilio, Mailgun, Postmark). Pure adapters: no database,
//! no queue. The engine owns retries, the outbox and the `unknown` state; this
//! crate's job is to classify every failure as safe-to-retry, never-retry or
//! outcome-unknown (so an outage is ridden out by retries and nothing is
//! sent twice), and to refuse forged or malformed webhooks and hosts a
//! tenant sets that point inside our network.

pub mod dev;
#[cfg(feature = "fake")]
pub mod fake;
pub mod guard;
pub mod keywords;
pub mod mailgun;
pub mod meta;
pub mod postmark;
pub mod smtp;
pub mod twilio;

mod address;

pub use dev::DevSink;
pub use keywords::{is_email_unsubscribe, keyword, Keyword};
pub use mailgun::MailgunAuth;
pub use smtp::{SmtpConfig, SmtpSender, SmtpTls};
pub use twilio::{DeliveryStatus, InboundSms, StatusUpdate, TwilioConfig, TwilioSender};

/// A boxed future, so `Sender` stays object-safe (`Arc<dyn Sender>` per tenant).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Which channel a message goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Email,
    Sms,
}

/// One message to send, already rendered.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub medium: Medium,
    /// Email address or E.164 phone number.
    pub to: String,
    /// `"Name <addr>"` for email; E.164 or a Messaging Service SID (`MG…`) for SMS.
    pub from: String,
    pub reply_to: Option<String>,
    /// Email only.
    pub subject: Option<String>,
    /// Plain-text body (the SMS body).
    pub text: String,
    /// Email HTML alternative.
    pub html: Option<String>,
    /// Our Message-ID without angle brackets, e.g. `"uuid@bos.local"`.
    pub message_id: String,
    /// Email: the Message-ID this answers (no angle brackets), so the
    /// customer's mail client threads the reply under it.
    pub in_reply_to: Option<String>,
    /// Email: the thread's Message-IDs, oldest first (no angle brackets).
    pub references: Vec<String>,
    pub idempotency_key: String,
    /// Email: `List-Unsubscribe: <url>` plus RFC 8058 one-click.
    pub unsubscribe_url: Option<String>,
    /// SMS: Twilio `StatusCallback` URL.
    pub status_callback: Option<String>,
}

/// What the provider said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub provider: &'static str,
    pub provider_id: Option<String>,
    pub status: String,
}

/// Why a send failed, classified by what the caller may do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 5xx, 429, connection refused, DNS, timeout before the request was
    /// fully written: the provider cannot have accepted it, safe to retry.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// 4xx (bad number, auth rejected, 550 mailbox unknown, invalid address):
    /// retrying would fail the same way.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The request was sent but no answer came: it may have been delivered,
    /// so it must NOT be retried (shown as `unknown`: never sent twice).
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
}

impl SendError {
    /// Whether the engine may try again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}

/// Sends one message through one provider account.
pub trait Sender: Send + Sync {
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, m: &'a Outgoing) -> BoxFuture<'a, Result<Receipt, SendError>>;
}

/// An inbound webhook that could not be turned into a message. Callers answer
/// 400 (or the provider's "don't retry" status) and keep the raw body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("required field `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("body is not valid {format}: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    #[error("unsupported content type `{0}`")]
    UnsupportedContentType(String),
    #[error("multipart (attachments) not supported; configure the route without attachments")]
    Multipart,
}

/// An inbound email from any provider, reduced to what threading and the
/// inbox need (Message-ID, In-Reply-To and References for threading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEmail {
    /// The provider's id, for deduplication of its retries.
    pub provider_message_id: String,
    /// RFC 5322 `Message-ID` without `<>`.
    pub message_id: Option<String>,
    /// Bare lowercase address.
    pub from: String,
    pub from_name: Option<String>,
    /// Bare lowercase address of the (first) recipient.
    pub to: String,
    pub subject: String,
    /// The stripped reply text when the provider gives one, else the full text.
    pub text: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// The `x` of `reply+x@…`, for matching a reply to its conversation.
    pub mailbox_hash: Option<String>,
}
