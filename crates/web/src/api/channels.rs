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
use crate::views::{channel_dto as dto, channel_name, ChannelDto};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use bos_core::identity::{normalize, IdentifierKind};
use bos_core::nudge::Channel;
use bos_engine::channels;
use bos_store::nudge_hooks::OptOut;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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

impl From<ChannelInput> for channels::ChannelInput {
    fn from(i: ChannelInput) -> Self {
        channels::ChannelInput {
            provider: i.provider,
            host: i.host,
            port: i.port,
            tls: i.tls,
            username: i.username,
            password: i.password,
            from: i.from,
            mailgun_signing_key: i.mailgun_signing_key,
            remove_mailgun_signing_key: i.remove_mailgun_signing_key,
            postmark_password: i.postmark_password,
            remove_postmark_password: i.remove_postmark_password,
            account_sid: i.account_sid,
            auth_token: i.auth_token,
            webhook_shared_key: i.webhook_shared_key,
            remove_webhook_shared_key: i.remove_webhook_shared_key,
        }
    }
}

/// `email` or `sms`: a channel with settings of its own.
pub fn parse_channel(s: &str) -> Option<Channel> {
    Channel::parse(s).filter(|c| *c == c.medium())
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
    let saved = channels::save(
        &st.store,
        a.org_id,
        channel,
        &input.into(),
        st.config.allow_private_outbound,
        st.now(),
    )
    .await?;
    Ok(Json(dto(&st.config.public_url, &saved)))
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
