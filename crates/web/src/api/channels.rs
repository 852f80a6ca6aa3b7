//! Channel settings and opt-outs (admin scope), shared with Settings →
//! Channels: how each channel sends (the development sink, SMTP, Twilio),
//! validated with sentences, and the webhook URLs to paste into the
//! providers. Secrets (SMTP password, Twilio Auth Token, Mailgun signing
//! key, Postmark password) are stored because sending and verifying need
//! them, but never shown again: reads say only whether one is set, and a
//! save that leaves one empty keeps the stored one — except the SMTP
//! password when the host, port, user name or TLS mode changes, and the
//! Twilio Auth Token when the account SID changes: those credentials belong
//! to their endpoint and must be typed again. An SMTP host is
//! resolved at save and refused when it points inside our network (loopback, private,
//! link-local or metadata addresses), so a tenant cannot aim us at it.

use super::{admin_actor, rfc3339, ApiJson};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use bos_core::identity::{normalize, IdentifierKind};
use bos_core::nudge::Channel;
use bos_store::nudge::ChannelConfig;
use bos_store::nudge_hooks::{ChannelSetting, OptOut};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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

pub fn channel_name(c: Channel) -> &'static str {
    if c == Channel::Sms {
        "sms"
    } else {
        "email"
    }
}

/// The webhook URLs of a channel with this hook key.
pub fn webhooks(public_url: &str, channel: Channel, hook: Option<&str>) -> WebhooksDto {
    let Some(key) = hook else {
        return WebhooksDto::default();
    };
    let base = public_url.trim_end_matches('/');
    if channel == Channel::Sms {
        return WebhooksDto {
            twilio_sms: Some(format!("{base}/hooks/twilio/{key}/sms")),
            twilio_status: Some(format!("{base}/hooks/twilio/{key}/status")),
            ..Default::default()
        };
    }
    let postmark = match base.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://postmark:PASSWORD@{rest}/hooks/postmark/{key}"),
        None => format!("https://postmark:PASSWORD@{base}/hooks/postmark/{key}"),
    };
    WebhooksDto {
        mailgun: Some(format!("{base}/hooks/mailgun/{key}")),
        postmark: Some(postmark),
        ..Default::default()
    }
}

pub fn dto(public_url: &str, s: &ChannelSetting) -> ChannelDto {
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

/// A channel's new settings. Secret fields left out or empty keep the
/// stored secret, except the SMTP password when the host, port, user name
/// or TLS mode changes and the Twilio Auth Token when the account SID
/// changes: those are cleared and must be given again.
#[derive(Deserialize, ToSchema, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// `dev` or `smtp` for email; `dev` or `twilio` for SMS.
    pub provider: String,
    /// SMTP host name (no scheme, port or path).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u32>,
    /// `none`, `starttls` (default) or `implicit`.
    #[serde(default)]
    pub tls: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// Empty or left out: the stored password is kept, unless the host,
    /// port, user name or TLS mode changes: then it is cleared and must be
    /// given again (a stored password never goes to another server).
    #[serde(default)]
    pub password: Option<String>,
    /// Email: `Name <address>`; SMS: E.164 (`+14155550123`) or `MG…`.
    #[serde(default)]
    pub from: Option<String>,
    /// Mailgun inbound: the HTTP webhook signing key (kept when empty).
    #[serde(default)]
    pub mailgun_signing_key: Option<String>,
    #[serde(default)]
    pub remove_mailgun_signing_key: bool,
    /// Postmark inbound: the basic-auth password of the webhook URL (kept when empty).
    #[serde(default)]
    pub postmark_password: Option<String>,
    #[serde(default)]
    pub remove_postmark_password: bool,
    /// Twilio: `AC` and 32 hex characters.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// Twilio: empty or left out keeps the stored token, unless the
    /// account SID changes: then it must be given again.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Twilio: the shared key of a Webhooks Rule that signs with
    /// HMAC-SHA256 (kept when empty). Only needed if you set up such a rule.
    #[serde(default)]
    pub webhook_shared_key: Option<String>,
    #[serde(default)]
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
pub fn check_from_email(s: &str) -> Result<String, AppError> {
    let bad = || {
        AppError::invalid(
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
    st: &AppState,
    channel: Channel,
    input: &ChannelInput,
    current: &ChannelConfig,
) -> Result<ChannelConfig, AppError> {
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
                return Err(AppError::invalid(
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
                return Err(AppError::invalid(
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
                            AppError::invalid(
                        "auth_token",
                        if current.provider() == "twilio" && !same_account {
                            "The Account SID changed, so the stored Auth Token was cleared: enter the Auth Token of this account."
                        } else {
                            "Enter the Auth Token shown beside the Account SID in the Twilio console."
                        },
                    )
                        })?,
                    t if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => t.to_string(),
                    _ => return Err(AppError::invalid(
                        "auth_token",
                        "The Auth Token is 32 letters and digits; copy it from the Twilio console.",
                    )),
                };
            let from = text(&input.from);
            if !(is_e164(from) || is_sid(from, "MG")) {
                return Err(AppError::invalid(
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
                return Err(AppError::invalid(
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
                return Err(AppError::invalid(
                    "host",
                    "Enter only the SMTP server's host name, like smtp.mailgun.org, without a scheme, user or path.",
                ));
            }
            let port = match input.port {
                Some(p @ 1..=65535) => p as u16,
                _ => {
                    return Err(AppError::invalid(
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
                    return Err(AppError::invalid(
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
                return Err(AppError::invalid(
                    "password",
                    if endpoint_changed {
                        "The host, port, user name or TLS mode changed, so the stored password was cleared: enter the SMTP password again."
                    } else {
                        "Enter the SMTP password for this user name."
                    },
                ));
            }
            bos_channels::guard::check_host(&host, port, st.config.allow_private_outbound)
                .await
                .map_err(|why| {
                    AppError::invalid("host", format!("The SMTP host is refused: {why}."))
                })?;
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
        (Channel::Sms, _) => Err(AppError::invalid(
            "provider",
            "SMS can use the development sink (dev) or Twilio (twilio).",
        )),
        (_, _) => Err(AppError::invalid(
            "provider",
            "Email can use the development sink (dev) or SMTP (smtp).",
        )),
    }
}

/// Validates and stores a channel's settings; returns them as read back.
pub async fn save_channel(
    st: &AppState,
    org: uuid::Uuid,
    channel: Channel,
    input: &ChannelInput,
) -> Result<ChannelDto, AppError> {
    let current = st.store.channel_config(org, channel).await?;
    let cfg = build_config(st, channel, input, &current).await?;
    st.store
        .put_channel_config(org, channel, &cfg, st.now())
        .await?;
    // Senders are rebuilt from the stored settings on the next send.
    let all = st.store.channel_settings(org).await?;
    let s = all
        .iter()
        .find(|s| s.channel == channel)
        .ok_or(AppError::NotFound)?;
    Ok(dto(&st.config.public_url, s))
}

pub fn parse_channel(s: &str) -> Option<Channel> {
    match s {
        "email" => Some(Channel::Email),
        "sms" => Some(Channel::Sms),
        _ => None,
    }
}

/// Both channels' settings, secrets masked.
#[utoipa::path(get, path = "/settings/channels", tag = "channels",
    responses((status = 200, body = Vec<ChannelDto>), (status = 403, body = crate::error::Problem)))]
pub async fn list(State(st): State<AppState>, p: ApiPrincipal) -> ApiResult<Json<Vec<ChannelDto>>> {
    let a = admin_actor(&p)?;
    let all = st.store.channel_settings(a.org_id).await?;
    Ok(Json(
        all.iter().map(|s| dto(&st.config.public_url, s)).collect(),
    ))
}

/// Sets how a channel sends. Secrets left out keep the stored ones.
#[utoipa::path(put, path = "/settings/channels/{channel}", tag = "channels",
    params(("channel" = String, Path, description = "`email` or `sms`")),
    request_body = ChannelInput,
    responses((status = 200, body = ChannelDto), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn put(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Path(channel): Path<String>,
    input: Result<ApiJson<ChannelInput>, AppError>,
) -> ApiResult<Json<ChannelDto>> {
    let channel = parse_channel(&channel).ok_or(AppError::NotFound)?;
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(input) = input?;
    Ok(Json(save_channel(&st, a.org_id, channel, &input).await?))
}

#[derive(Serialize, ToSchema)]
pub struct OptOutDto {
    /// `email` or `sms`.
    pub channel: String,
    pub address: String,
    pub profile_id: Option<uuid::Uuid>,
    /// What opted it out: `unsubscribe link`, `SMS keyword`, `api`, …
    pub source: String,
    pub at: String,
}

impl From<&OptOut> for OptOutDto {
    fn from(o: &OptOut) -> Self {
        OptOutDto {
            channel: channel_name(o.channel).into(),
            address: o.address.clone(),
            profile_id: o.profile_id,
            source: o.source.clone(),
            at: rfc3339(o.at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OptOutQuery {
    /// At most this many, newest first (1–1000, default 100).
    pub limit: Option<u32>,
}

/// Addresses that get no nudges, newest first.
#[utoipa::path(get, path = "/opt-outs", tag = "channels", params(OptOutQuery),
    responses((status = 200, body = Vec<OptOutDto>), (status = 422, body = crate::error::Problem)))]
pub async fn opt_outs(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Query(q): Query<OptOutQuery>,
) -> ApiResult<Json<Vec<OptOutDto>>> {
    let a = admin_actor(&p)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::invalid("limit", "Ask for 1 to 1000 opt-outs."));
    }
    let rows = st.store.opt_outs(a.org_id, limit).await?;
    Ok(Json(rows.iter().map(OptOutDto::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOptOut {
    /// `email` or `sms`.
    pub channel: String,
    /// An email address or a phone number (normalized like identities).
    pub address: String,
    /// true opts the address out of the channel; false opts it back in.
    pub opted_out: bool,
}

#[derive(Serialize, ToSchema)]
pub struct OptOutState {
    pub channel: String,
    /// The address as stored (normalized).
    pub address: String,
    pub opted_out: bool,
}

/// Opts an address out of a channel, or back in. Stops its sequences on
/// that channel at once.
#[utoipa::path(post, path = "/opt-outs", tag = "channels", request_body = SetOptOut,
    responses((status = 200, body = OptOutState), (status = 422, body = crate::error::Problem)))]
pub async fn set_opt_out(
    State(st): State<AppState>,
    p: ApiPrincipal,
    b: Result<ApiJson<SetOptOut>, AppError>,
) -> ApiResult<Json<OptOutState>> {
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(b) = b?;
    let channel = parse_channel(b.channel.trim())
        .ok_or_else(|| AppError::invalid("channel", "The channel is email or sms."))?;
    let (kind, what) = if channel == Channel::Sms {
        (IdentifierKind::Phone, "a phone number, like +14155550123")
    } else {
        (IdentifierKind::Email, "an email address")
    };
    let region = st
        .store
        .pipeline_settings(a.org_id)
        .await?
        .identity
        .default_region;
    let address = normalize(&kind, &b.address, &region)
        .map_err(|_| AppError::invalid("address", format!("The address must be {what}.")))?
        .value;
    st.store
        .set_opt_out(
            a.org_id,
            channel,
            address.clone(),
            b.opted_out,
            "api".into(),
            st.now(),
        )
        .await?;
    Ok(Json(OptOutState {
        channel: channel_name(channel).into(),
        address,
        opted_out: b.opted_out,
    }))
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
