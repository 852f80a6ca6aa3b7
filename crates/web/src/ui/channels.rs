//! Settings → Channels (admins): how email and SMS nudges are sent — the
//! development sink (messages go to the Outbox), SMTP, or Twilio — and the
//! webhook URLs to paste into Twilio, Mailgun and Postmark. Secrets are
//! never put back into the page: it says "set ••••", and a save that
//! leaves a secret empty keeps the stored one. Validation and storage are
//! the channels service's (`bos_engine::channels`), as for the API.

use super::{Chrome, NoticeQuery};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::views::{channel_dto as dto, ChannelDto};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::nudge::Channel;
use bos_engine::channels::{self, ChannelError, ChannelInput};
use serde::Deserialize;

/// The email form's visible values (typed ones are kept after an error).
pub struct EmailView {
    provider: String,
    host: String,
    port: String,
    tls: String,
    username: String,
    from: String,
    has_password: bool,
    has_mailgun_signing_key: bool,
    has_postmark_password: bool,
    mailgun_url: String,
    postmark_url: String,
}

pub struct SmsView {
    provider: String,
    account_sid: String,
    from: String,
    has_auth_token: bool,
    has_webhook_shared_key: bool,
    sms_url: String,
    status_url: String,
}

#[derive(Template)]
#[template(path = "channels.html")]
struct ChannelsPage {
    c: Chrome,
    email: EmailView,
    sms: SmsView,
    email_error: Option<String>,
    sms_error: Option<String>,
    tls_modes: [(&'static str, &'static str); 3],
}

fn email_view(d: &ChannelDto) -> EmailView {
    EmailView {
        provider: d.provider.clone(),
        host: d.host.clone().unwrap_or_default(),
        port: d
            .port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "587".into()),
        tls: d.tls.clone().unwrap_or_else(|| "starttls".into()),
        username: d.username.clone().unwrap_or_default(),
        from: d.from.clone().unwrap_or_default(),
        has_password: d.has_password,
        has_mailgun_signing_key: d.has_mailgun_signing_key,
        has_postmark_password: d.has_postmark_password,
        mailgun_url: d.webhooks.mailgun.clone().unwrap_or_default(),
        postmark_url: d.webhooks.postmark.clone().unwrap_or_default(),
    }
}

fn sms_view(d: &ChannelDto) -> SmsView {
    SmsView {
        provider: d.provider.clone(),
        account_sid: d.account_sid.clone().unwrap_or_default(),
        from: d.from.clone().unwrap_or_default(),
        has_auth_token: d.has_auth_token,
        has_webhook_shared_key: d.has_webhook_shared_key,
        sms_url: d.webhooks.twilio_sms.clone().unwrap_or_default(),
        status_url: d.webhooks.twilio_status.clone().unwrap_or_default(),
    }
}

async fn page_for(st: &AppState, s: &Session) -> Result<ChannelsPage, AppError> {
    let all = st.store.channel_settings(s.org.id).await?;
    let find = |c: Channel| {
        all.iter()
            .find(|x| x.channel == c)
            .map(|x| dto(&st.config.public_url, x))
            .ok_or(AppError::NotFound)
    };
    Ok(ChannelsPage {
        c: Chrome::new(s, "Channels", "channels"),
        email: email_view(&find(Channel::Email)?),
        sms: sms_view(&find(Channel::Sms)?),
        email_error: None,
        sms_error: None,
        tls_modes: [
            ("starttls", "STARTTLS (port 587)"),
            ("implicit", "Implicit TLS (port 465)"),
            ("none", "None (a relay on your own network)"),
        ],
    })
}

pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    s.require_admin()?;
    let mut p = page_for(&st, &s).await?;
    p.c.notice = match q.done.as_deref() {
        Some("email") => Some("Email settings saved. The next email is sent with them.".into()),
        Some("sms") => Some("SMS settings saved. The next text is sent with them.".into()),
        _ => None,
    };
    Ok(super::render(&p))
}

/// Both forms' fields; each form posts the ones of its channel.
#[derive(Deserialize, Default)]
pub struct ChannelForm {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    tls: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    mailgun_signing_key: String,
    #[serde(default)]
    remove_mailgun_signing_key: Option<String>,
    #[serde(default)]
    postmark_password: String,
    #[serde(default)]
    remove_postmark_password: Option<String>,
    #[serde(default)]
    account_sid: String,
    #[serde(default)]
    auth_token: String,
    #[serde(default)]
    webhook_shared_key: String,
    #[serde(default)]
    remove_webhook_shared_key: Option<String>,
}

fn input(f: &ChannelForm) -> ChannelInput {
    let port = f.port.trim();
    ChannelInput {
        provider: f.provider.clone(),
        host: Some(f.host.clone()),
        // Anything that is not a number is reported as out of range.
        port: Some(port.parse::<u32>().unwrap_or(0)),
        tls: Some(f.tls.clone()),
        username: Some(f.username.clone()),
        password: Some(f.password.clone()),
        from: Some(f.from.clone()),
        mailgun_signing_key: Some(f.mailgun_signing_key.clone()),
        remove_mailgun_signing_key: f.remove_mailgun_signing_key.is_some(),
        postmark_password: Some(f.postmark_password.clone()),
        remove_postmark_password: f.remove_postmark_password.is_some(),
        account_sid: Some(f.account_sid.clone()),
        auth_token: Some(f.auth_token.clone()),
        webhook_shared_key: Some(f.webhook_shared_key.clone()),
        remove_webhook_shared_key: f.remove_webhook_shared_key.is_some(),
    }
}

async fn save(st: AppState, s: Session, channel: Channel, f: ChannelForm) -> PageResult<Response> {
    s.require_admin()?;
    let saved = channels::save(
        &st.store,
        s.org.id,
        channel,
        &input(&f),
        st.config.allow_private_outbound,
        st.now(),
    )
    .await;
    match saved {
        Ok(_) => {
            let to = if channel == Channel::Sms {
                "/settings/channels?done=sms"
            } else {
                "/settings/channels?done=email"
            };
            Ok(Redirect::to(to).into_response())
        }
        Err(ChannelError::Invalid { detail, .. }) => {
            // The page again, with what was typed (never the secrets).
            let mut p = page_for(&st, &s).await?;
            if channel == Channel::Sms {
                if f.provider == "twilio" {
                    p.sms.account_sid = f.account_sid;
                    p.sms.from = f.from;
                }
                p.sms_error = Some(detail);
            } else {
                if f.provider == "smtp" {
                    p.email.host = f.host;
                    p.email.port = f.port;
                    p.email.tls = f.tls;
                    p.email.username = f.username;
                    p.email.from = f.from;
                }
                p.email_error = Some(detail);
            }
            Ok((StatusCode::UNPROCESSABLE_ENTITY, super::render(&p)).into_response())
        }
        Err(e) => Err(AppError::from(e).into()),
    }
}

pub async fn save_email(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<ChannelForm>,
) -> PageResult<Response> {
    save(st, s, Channel::Email, f).await
}

pub async fn save_sms(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<ChannelForm>,
) -> PageResult<Response> {
    save(st, s, Channel::Sms, f).await
}
