//! How an organization's channels send, for every caller (Settings →
//! Channels and the API): the development sink, SMTP or Twilio, checked
//! with sentences that say what to fix. Secrets (SMTP password, Twilio Auth
//! Token, Mailgun signing key, Postmark password) are stored because
//! sending and verifying need them; a save that leaves one empty keeps the
//! stored one — except the SMTP password when the host, port, user name or
//! TLS mode changes, and the Twilio Auth Token when the account SID
//! changes: those credentials belong to their endpoint and must be typed
//! again. An SMTP host is resolved at save and refused when it points
//! inside the network (unless the server allows private hosts), so no
//! tenant can reach the server's neighbours.

use bos_core::nudge::Channel;
use bos_store::nudge::ChannelConfig;
use bos_store::nudge_hooks::ChannelSetting;
use bos_store::{Store, StoreError};
use uuid::Uuid;

/// Why a channel's settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// An input is not acceptable; the text says what to send.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, detail: impl Into<String>) -> ChannelError {
    ChannelError::Invalid {
        field,
        detail: detail.into(),
    }
}

/// A channel's new settings. Secret fields left out or empty keep the
/// stored secret, except the SMTP password when the host, port, user name
/// or TLS mode changes and the Twilio Auth Token when the account SID
/// changes: those are cleared and must be given again.
#[derive(Default, Debug, Clone)]
pub struct ChannelInput {
    /// `dev` or `smtp` for email; `dev` or `twilio` for SMS.
    pub provider: String,
    /// SMTP host name (no scheme, port or path).
    pub host: Option<String>,
    pub port: Option<u32>,
    /// `none`, `starttls` (default) or `implicit`.
    pub tls: Option<String>,
    pub username: Option<String>,
    /// Empty or left out: the stored password is kept, unless the host,
    /// port, user name or TLS mode changes: then it is cleared and must be
    /// given again (a stored password never goes to another server).
    pub password: Option<String>,
    /// Email: `Name <address>`; SMS: E.164 (`+14155550123`) or `MG…`.
    pub from: Option<String>,
    /// Mailgun inbound: the HTTP webhook signing key (kept when empty).
    pub mailgun_signing_key: Option<String>,
    pub remove_mailgun_signing_key: bool,
    /// Postmark inbound: the basic-auth password of the webhook URL (kept when empty).
    pub postmark_password: Option<String>,
    pub remove_postmark_password: bool,
    /// Twilio: `AC` and 32 hex characters.
    pub account_sid: Option<String>,
    /// Twilio: empty or left out keeps the stored token, unless the
    /// account SID changes: then it must be given again.
    pub auth_token: Option<String>,
    /// Twilio: the shared key of a Webhooks Rule that signs with
    /// HMAC-SHA256 (kept when empty). Only needed if you set up such a rule.
    pub webhook_shared_key: Option<String>,
    pub remove_webhook_shared_key: bool,
}

fn text(s: &Option<String>) -> &str {
    s.as_deref().map(str::trim).unwrap_or("")
}

/// `+` and 8 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// `AC…` / `MG…`: the prefix and 32 hex characters.
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `Name <addr>` or `addr`, checked and tidied.
pub fn check_from_email(s: &str) -> Result<String, ChannelError> {
    let bad = || {
        invalid(
            "from",
            "The From address must look like Shop Name <shop@example.com> or shop@example.com.",
        )
    };
    let s = s.trim();
    if s.is_empty() || s.chars().any(char::is_control) {
        return Err(bad());
    }
    let (name, addr) = match s.rfind('<') {
        Some(i) if s.ends_with('>') => (s[..i].trim(), &s[i + 1..s.len() - 1]),
        Some(_) => return Err(bad()),
        None => ("", s),
    };
    if name.contains(['<', '>', '"']) {
        return Err(bad());
    }
    let addr = bos_core::Email::parse(addr).map_err(|_| bad())?;
    Ok(if name.is_empty() {
        addr.as_str().to_string()
    } else {
        format!("{name} <{}>", addr.as_str())
    })
}

/// Kept, replaced or removed.
fn secret(new: &Option<String>, remove: bool, stored: Option<&String>) -> Option<String> {
    if remove {
        return None;
    }
    match text(new) {
        "" => stored.filter(|s| !s.is_empty()).cloned(),
        v => Some(v.to_string()),
    }
}

/// Checks `input` for `channel` and builds the settings to store, keeping
/// the stored secrets the input leaves empty. The SMTP host is resolved
/// and refused when it is internal, unless the server allows private hosts.
pub async fn build_config(
    channel: Channel,
    input: &ChannelInput,
    current: &ChannelConfig,
    allow_private_hosts: bool,
) -> Result<ChannelConfig, ChannelError> {
    let provider = input.provider.trim();
    match (channel, provider) {
        (_, "dev") => {
            // The development sink stores nothing but its name: a key sent
            // with it would be dropped, and the sender would believe it saved.
            let given = |s: &Option<String>| !text(s).is_empty();
            let dropped = [
                (
                    "mailgun_signing_key",
                    &input.mailgun_signing_key,
                    "Mailgun signing key",
                ),
                (
                    "postmark_password",
                    &input.postmark_password,
                    "Postmark inbound password",
                ),
                ("password", &input.password, "SMTP password"),
                ("auth_token", &input.auth_token, "Twilio Auth Token"),
                (
                    "webhook_shared_key",
                    &input.webhook_shared_key,
                    "Twilio shared key",
                ),
            ];
            if let Some((field, _, what)) = dropped.iter().find(|(_, v, _)| given(v)) {
                let needs = if channel == Channel::Sms {
                    "twilio"
                } else {
                    "smtp"
                };
                return Err(invalid(
                    field,
                    format!(
                        "The development sink (dev) keeps no keys, so the {what} would be lost: \
                         save it with provider {needs}, or leave it out to use the development sink."
                    ),
                ));
            }
            Ok(ChannelConfig::Dev)
        }
        (Channel::Sms, "twilio") => {
            let sid = text(&input.account_sid);
            if !is_sid(sid, "AC") {
                return Err(invalid(
                    "account_sid",
                    "The Account SID starts with AC followed by 32 letters and digits; copy it from the Twilio console.",
                ));
            }
            // The Auth Token belongs to its account: another account SID
            // must not be sent the stored one.
            let (stored_token, same_account) = match current {
                ChannelConfig::Twilio {
                    auth_token,
                    account_sid,
                    ..
                } => (Some(auth_token), account_sid == sid),
                _ => (None, false),
            };
            let stored_token = stored_token.filter(|_| same_account);
            let stored_shared = match current {
                ChannelConfig::Twilio {
                    webhook_shared_key, ..
                } => webhook_shared_key.as_ref(),
                _ => None,
            };
            let token =
                match text(&input.auth_token) {
                    "" => stored_token
                        .cloned()
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| {
                            invalid(
                        "auth_token",
                        if current.provider() == "twilio" && !same_account {
                            "The Account SID changed, so the stored Auth Token was cleared: enter the Auth Token of this account."
                        } else {
                            "Enter the Auth Token shown beside the Account SID in the Twilio console."
                        },
                    )
                        })?,
                    t if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => t.to_string(),
                    _ => return Err(invalid(
                        "auth_token",
                        "The Auth Token is 32 letters and digits; copy it from the Twilio console.",
                    )),
                };
            let from = text(&input.from);
            if !(is_e164(from) || is_sid(from, "MG")) {
                return Err(invalid(
                    "from",
                    "From must be a phone number in E.164 form, like +14155550123, or a Messaging Service SID starting with MG.",
                ));
            }
            Ok(ChannelConfig::Twilio {
                account_sid: sid.to_string(),
                auth_token: token,
                from: from.to_string(),
                webhook_shared_key: secret(
                    &input.webhook_shared_key,
                    input.remove_webhook_shared_key,
                    stored_shared,
                ),
            })
        }
        (Channel::Email, "smtp") => {
            let (stored_pw, stored_mg, stored_pm) = match current {
                ChannelConfig::Smtp {
                    password,
                    mailgun_signing_key,
                    postmark_password,
                    ..
                } => (
                    password.as_ref(),
                    mailgun_signing_key.as_ref(),
                    postmark_password.as_ref(),
                ),
                _ => (None, None, None),
            };
            let host = text(&input.host).trim_end_matches('.').to_ascii_lowercase();
            if host.is_empty() {
                return Err(invalid(
                    "host",
                    "Enter the SMTP host, for example smtp.mailgun.org.",
                ));
            }
            if host.len() > 253
                || host.contains("://")
                || host
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#'))
            {
                return Err(invalid(
                    "host",
                    "Enter only the SMTP server's host name, like smtp.mailgun.org, without a scheme, user or path.",
                ));
            }
            let port = match input.port {
                Some(p @ 1..=65535) => p as u16,
                _ => {
                    return Err(invalid(
                        "port",
                        "The port must be a number from 1 to 65535: usually 587 with STARTTLS, 465 with implicit TLS.",
                    ))
                }
            };
            let tls = match text(&input.tls) {
                "" | "starttls" => "starttls",
                "implicit" => "implicit",
                "none" => "none",
                _ => {
                    return Err(invalid(
                        "tls",
                        "Choose how the connection is secured: none, starttls or implicit.",
                    ))
                }
            };
            let from = check_from_email(text(&input.from))?;
            let username = Some(text(&input.username).to_string()).filter(|u| !u.is_empty());
            // The stored password was given for one server, user and kind
            // of connection: it is never handed to another host or over a
            // weaker connection unless it is typed again.
            let endpoint_changed = match current {
                ChannelConfig::Smtp {
                    host: h,
                    port: p,
                    tls: t,
                    username: u,
                    ..
                } => *h != host || *p != port || t != tls || *u != username,
                _ => false,
            };
            let stored_pw = stored_pw.filter(|_| !endpoint_changed);
            let password = if username.is_some() {
                secret(&input.password, false, stored_pw)
            } else {
                None
            };
            if username.is_some() && password.is_none() {
                return Err(invalid(
                    "password",
                    if endpoint_changed {
                        "The host, port, user name or TLS mode changed, so the stored password was cleared: enter the SMTP password again."
                    } else {
                        "Enter the SMTP password for this user name."
                    },
                ));
            }
            bos_channels::guard::check_host(&host, port, allow_private_hosts)
                .await
                .map_err(|why| invalid("host", format!("The SMTP host is refused: {why}.")))?;
            Ok(ChannelConfig::Smtp {
                host,
                port,
                tls: tls.into(),
                username,
                password,
                from,
                mailgun_signing_key: secret(
                    &input.mailgun_signing_key,
                    input.remove_mailgun_signing_key,
                    stored_mg,
                ),
                postmark_password: secret(
                    &input.postmark_password,
                    input.remove_postmark_password,
                    stored_pm,
                ),
            })
        }
        (Channel::Sms, _) => Err(invalid(
            "provider",
            "SMS can use the development sink (dev) or Twilio (twilio).",
        )),
        (_, _) => Err(invalid(
            "provider",
            "Email can use the development sink (dev) or SMTP (smtp).",
        )),
    }
}

/// Checks and stores a channel's settings; returns them as read back.
/// Senders are rebuilt from the stored settings on the next send.
pub async fn save(
    store: &Store,
    org: Uuid,
    channel: Channel,
    input: &ChannelInput,
    allow_private_hosts: bool,
    now: i64,
) -> Result<ChannelSetting, ChannelError> {
    let current = store.channel_config(org, channel).await?;
    let cfg = build_config(channel, input, &current, allow_private_hosts).await?;
    store.put_channel_config(org, channel, &cfg, now).await?;
    store
        .channel_settings(org)
        .await?
        .into_iter()
        .find(|s| s.channel == channel)
        .ok_or(ChannelError::Store(StoreError::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_e164("+14155550123"));
        assert!(!is_e164("14155550123"));
        assert!(!is_e164("+04155550123"));
        assert!(!is_e164("+1415555012a"));
        assert!(!is_e164("+1234567"));
        assert!(is_sid("AC0123456789abcdef0123456789ABCDEF", "AC"));
        assert!(!is_sid("MG0123456789abcdef0123456789abcdef", "AC"));
        assert!(!is_sid("AC0123456789abcdef0123456789abcde", "AC"));
        assert!(!is_sid("AC0123456789abcdef0123456789abcdeg", "AC"));
    }

    #[test]
    fn from_addresses() {
        assert_eq!(
            check_from_email(" Shop Name <Shop@Example.com> ").unwrap(),
            "Shop Name <shop@example.com>"
        );
        assert_eq!(
            check_from_email("shop@example.com").unwrap(),
            "shop@example.com"
        );
        for bad in [
            "",
            "Shop <shop@example.com",
            "Shop \"x\" <shop@example.com>",
            "Shop <not-an-address>",
            "Shop <a@b.com>\r\nBcc: x@y.com",
        ] {
            assert!(check_from_email(bad).is_err(), "{bad:?}");
        }
    }
}
