//! The public URLs BOS hands out, built in one place from the configured
//! public address: the routes are this crate's, so the services below it
//! get the URLs they send (through [`bos_engine::links::Links`] and
//! [`bos_engine::links::MessageLinks`]) and never spell a route
//! themselves. The nudge routes' patterns are here too, so the router
//! and the links are the same text.

use bos_engine::links::MessageLinks;
use bos_store::intake::{Source, SourceKind};

/// The open pixel a nudge email carries.
pub const OPEN_PIXEL: &str = "/t/o/{token}";
/// A nudge's tracked click-through.
pub const CLICK: &str = "/t/c/{token}";
/// A nudge's unsubscribe page (and one-click POST).
pub const UNSUBSCRIBE: &str = "/u/{token}";
/// Twilio: a message comes in.
pub const TWILIO_SMS: &str = "/hooks/twilio/{hook_key}/sms";
/// Twilio: a message's delivery report.
pub const TWILIO_STATUS: &str = "/hooks/twilio/{hook_key}/status";
/// Mailgun: an inbound route's forward.
pub const MAILGUN_INBOUND: &str = "/hooks/mailgun/{hook_key}";
/// Postmark: the inbound webhook.
pub const POSTMARK_INBOUND: &str = "/hooks/postmark/{hook_key}";
/// Meta: a connected page's or Instagram account's webhook (handshake
/// and deliveries).
pub const META_HOOK: &str = "/hooks/meta/{source_id}";
/// Vapi: a voice agent's server URL (its signed server messages).
pub const VAPI_HOOK: &str = "/hooks/vapi/{agent_id}";
/// Retell: a voice agent's webhook URL.
pub const RETELL_HOOK: &str = "/hooks/retell/{agent_id}";

/// A route pattern with its one `{…}` placeholder filled in.
fn fill(pattern: &str, value: &str) -> String {
    match (pattern.find('{'), pattern.find('}')) {
        (Some(a), Some(b)) if a < b => format!("{}{value}{}", &pattern[..a], &pattern[b + 1..]),
        _ => pattern.to_string(),
    }
}

/// Absolute URLs under the server's public address.
#[derive(Debug, Clone)]
pub struct PublicUrls {
    base: String,
}

impl PublicUrls {
    pub fn new(public_url: &str) -> PublicUrls {
        PublicUrls {
            base: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// Where an intake source sends its events: for Segment, the SDKs'
    /// API host (they post to /v1/track, /v1/batch and so on).
    pub fn source_endpoint(&self, s: &Source) -> String {
        let base = &self.base;
        match s.kind {
            SourceKind::Segment => format!("{base}/v1"),
            SourceKind::Shopify => format!("{base}/hooks/shopify/{}", s.id),
            SourceKind::Form => format!("{base}/f/{}", s.secret.as_deref().unwrap_or("")),
            SourceKind::Webhook => format!("{base}/hooks/{}", s.id),
        }
    }

    /// Meta: the webhook URL of a connected page or Instagram account.
    pub fn meta_hook(&self, source: uuid::Uuid) -> String {
        self.at(META_HOOK, &source.to_string())
    }

    /// Vapi or Retell: where a voice agent's platform posts its calls;
    /// `None` for agents that report over the API.
    pub fn voice_hook(
        &self,
        provider: bos_core::agents::AgentProvider,
        agent: uuid::Uuid,
    ) -> Option<String> {
        use bos_core::agents::AgentProvider::*;
        match provider {
            Vapi => Some(self.at(VAPI_HOOK, &agent.to_string())),
            Retell => Some(self.at(RETELL_HOOK, &agent.to_string())),
            Api | Builtin => None,
        }
    }

    /// Twilio: the number's "A message comes in" webhook.
    pub fn twilio_sms(&self, hook: &str) -> String {
        self.at(TWILIO_SMS, hook)
    }

    /// Twilio: the status callback.
    pub fn twilio_status(&self, hook: &str) -> String {
        self.at(TWILIO_STATUS, hook)
    }

    /// Mailgun: an inbound route's `forward()` URL.
    pub fn mailgun_inbound(&self, hook: &str) -> String {
        self.at(MAILGUN_INBOUND, hook)
    }

    /// Postmark: the inbound webhook URL, with the basic-auth user in it
    /// and PASSWORD standing for the password saved with the channel.
    pub fn postmark_inbound(&self, hook: &str) -> String {
        let path = fill(POSTMARK_INBOUND, hook);
        match self.base.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://postmark:PASSWORD@{rest}{path}"),
            None => format!("https://postmark:PASSWORD@{}{path}", self.base),
        }
    }

    /// The absolute URL of a route pattern with its placeholder filled.
    fn at(&self, pattern: &str, value: &str) -> String {
        format!("{}{}", self.base, fill(pattern, value))
    }

    /// The page where an invitation is accepted.
    pub fn invitation(&self, token: &str) -> String {
        format!("{}/invitations/{token}", self.base)
    }
}

impl bos_engine::links::Links for PublicUrls {
    fn invitation(&self, token: &str) -> String {
        PublicUrls::invitation(self, token)
    }
}

impl MessageLinks for PublicUrls {
    fn open_pixel(&self, token: &str) -> String {
        self.at(OPEN_PIXEL, token)
    }
    fn click(&self, token: &str) -> String {
        self.at(CLICK, token)
    }
    fn unsubscribe(&self, token: &str) -> String {
        self.at(UNSUBSCRIBE, token)
    }
    fn delivery_status(&self, hook_key: &str) -> String {
        self.twilio_status(hook_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_links_fill_the_routes_patterns() {
        let u = PublicUrls::new("https://bos.example");
        assert_eq!(u.open_pixel("t1"), "https://bos.example/t/o/t1");
        assert_eq!(u.click("t1"), "https://bos.example/t/c/t1");
        assert_eq!(u.unsubscribe("t1"), "https://bos.example/u/t1");
        assert_eq!(
            u.delivery_status("h"),
            "https://bos.example/hooks/twilio/h/status"
        );
        assert_eq!(
            u.postmark_inbound("h"),
            "https://postmark:PASSWORD@bos.example/hooks/postmark/h"
        );
    }

    #[test]
    fn one_slash_between_base_and_path() {
        let u = PublicUrls::new("https://bos.example/");
        assert_eq!(u.invitation("t0k"), "https://bos.example/invitations/t0k");
    }
}
