//! What both doors show of a record, rendered once: times in RFC 3339, a
//! channel's settings with its secrets masked and the webhook URLs to paste
//! into the providers, a delivery's stored payload. The API serializes these;
//! the UI's pages read them.

use crate::paths::PublicUrls;
use bos_core::nudge::Channel;
use bos_store::nudge::ChannelConfig;
use bos_store::nudge_hooks::ChannelSetting;
use serde::Serialize;
use utoipa::ToSchema;

/// RFC 3339 rendering of our millisecond times.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The URLs to paste into the providers' consoles.
#[derive(Serialize, ToSchema, Default, Clone)]
pub struct WebhooksDto {
    /// Twilio: the number's "A message comes in" webhook (HTTP POST).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_sms: Option<String>,
    /// Twilio: the status callback; BOS sets it on every send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_status: Option<String>,
    /// Mailgun: an inbound route's `forward()` URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailgun: Option<String>,
    /// Postmark: the inbound webhook URL; replace PASSWORD with the
    /// Postmark password saved here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postmark: Option<String>,
}

/// A channel's settings, secrets masked.
#[derive(Serialize, ToSchema, Clone)]
pub struct ChannelDto {
    /// `email` or `sms`.
    pub channel: String,
    /// `dev` (the development sink: messages go to the Outbox), `smtp` or `twilio`.
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `none`, `starttls` or `implicit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Email: `Name <address>`; SMS: an E.164 number or a Messaging Service SID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    /// Whether an SMTP password is stored.
    pub has_password: bool,
    /// Whether a Twilio Auth Token is stored.
    pub has_auth_token: bool,
    /// Whether a Twilio Webhooks Rule shared key (HMAC-SHA256) is stored.
    pub has_webhook_shared_key: bool,
    /// Whether a Mailgun webhook signing key is stored (inbound email).
    pub has_mailgun_signing_key: bool,
    /// Whether a Postmark inbound password is stored (inbound email).
    pub has_postmark_password: bool,
    /// Present once the channel was saved (the URLs carry its key).
    pub webhooks: WebhooksDto,
    pub updated_at: Option<String>,
}

fn set(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

/// A channel's settings are for email or SMS (`Preferred` counts as email).
pub fn channel_name(c: Channel) -> &'static str {
    c.medium().as_str()
}

/// The webhook URLs of a channel with this hook key.
pub fn webhooks(public_url: &str, channel: Channel, hook: Option<&str>) -> WebhooksDto {
    let Some(key) = hook else {
        return WebhooksDto::default();
    };
    let urls = PublicUrls::new(public_url);
    if channel == Channel::Sms {
        return WebhooksDto {
            twilio_sms: Some(urls.twilio_sms(key)),
            twilio_status: Some(urls.twilio_status(key)),
            ..Default::default()
        };
    }
    WebhooksDto {
        mailgun: Some(urls.mailgun_inbound(key)),
        postmark: Some(urls.postmark_inbound(key)),
        ..Default::default()
    }
}

pub fn channel_dto(public_url: &str, s: &ChannelSetting) -> ChannelDto {
    let mut d = ChannelDto {
        channel: channel_name(s.channel).into(),
        provider: s.config.provider().into(),
        host: None,
        port: None,
        tls: None,
        username: None,
        from: None,
        account_sid: None,
        has_password: false,
        has_auth_token: false,
        has_webhook_shared_key: false,
        has_mailgun_signing_key: false,
        has_postmark_password: false,
        webhooks: webhooks(public_url, s.channel, s.hook_key.as_deref()),
        updated_at: s.updated_at.map(rfc3339),
    };
    match &s.config {
        ChannelConfig::Dev => {}
        ChannelConfig::Smtp {
            host,
            port,
            tls,
            username,
            password,
            from,
            mailgun_signing_key,
            postmark_password,
        } => {
            d.host = Some(host.clone());
            d.port = Some(*port);
            d.tls = Some(tls.clone());
            d.username = username.clone();
            d.from = Some(from.clone());
            d.has_password = set(password);
            d.has_mailgun_signing_key = set(mailgun_signing_key);
            d.has_postmark_password = set(postmark_password);
        }
        ChannelConfig::Twilio {
            account_sid,
            auth_token,
            from,
            webhook_shared_key,
        } => {
            d.account_sid = Some(account_sid.clone());
            d.from = Some(from.clone());
            d.has_auth_token = !auth_token.is_empty();
            d.has_webhook_shared_key = set(webhook_shared_key);
        }
    }
    d
}

/// The raw payload, pretty-printed when it is JSON.
pub fn payload_value(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        let w = webhooks("https://bos.example/", Channel::Email, Some("k1"));
        assert_eq!(
            w.mailgun.as_deref(),
            Some("https://bos.example/hooks/mailgun/k1")
        );
        assert_eq!(
            w.postmark.as_deref(),
            Some("https://postmark:PASSWORD@bos.example/hooks/postmark/k1")
        );
        assert!(w.twilio_sms.is_none());
        let w = webhooks("https://bos.example", Channel::Sms, Some("k2"));
        assert_eq!(
            w.twilio_status.as_deref(),
            Some("https://bos.example/hooks/twilio/k2/status")
        );
        assert!(webhooks("https://bos.example", Channel::Sms, None)
            .twilio_sms
            .is_none());
    }
}
