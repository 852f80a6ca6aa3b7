//! The public URLs BOS hands out, built in one place from the configured
//! public address: the routes are this crate's, so the services below it
//! get the URLs they send (through [`bos_engine::links::Links`]) and never
//! spell a route themselves.

use bos_store::intake::{Source, SourceKind};

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

    /// Twilio: the number's "A message comes in" webhook.
    pub fn twilio_sms(&self, hook: &str) -> String {
        format!("{}/hooks/twilio/{hook}/sms", self.base)
    }

    /// Twilio: the status callback.
    pub fn twilio_status(&self, hook: &str) -> String {
        format!("{}/hooks/twilio/{hook}/status", self.base)
    }

    /// Mailgun: an inbound route's `forward()` URL.
    pub fn mailgun_inbound(&self, hook: &str) -> String {
        format!("{}/hooks/mailgun/{hook}", self.base)
    }

    /// Postmark: the inbound webhook URL, with the basic-auth user in it
    /// and PASSWORD standing for the password saved with the channel.
    pub fn postmark_inbound(&self, hook: &str) -> String {
        match self.base.split_once("://") {
            Some((scheme, rest)) => {
                format!("{scheme}://postmark:PASSWORD@{rest}/hooks/postmark/{hook}")
            }
            None => format!(
                "https://postmark:PASSWORD@{}/hooks/postmark/{hook}",
                self.base
            ),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slash_between_base_and_path() {
        let u = PublicUrls::new("https://bos.example/");
        assert_eq!(u.invitation("t0k"), "https://bos.example/invitations/t0k");
    }
}
