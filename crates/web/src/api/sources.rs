//! `/sources` (admin scope): create an intake source and list them. A new
//! source comes with its endpoint and its credential, shown once: a Segment
//! write key (stored only as its SHA-256, like API keys) or a Standard
//! Webhooks `whsec_` secret (stored, because verifying needs the key). A
//! Shopify source is the exception: Shopify signs with the app's client
//! secret, so the merchant provides it, it is stored, and it is not echoed.
//! A form source's key (`fk_…`) is public — it sits in the landing page's
//! HTML — so it is stored in clear and shown every time, with the endpoint
//! and a ready-to-paste HTML form. A Meta source (Instagram, Messenger)
//! takes the app secret, verify token and page access token Meta gave the
//! business; they are stored sealed and never shown again, and the source
//! shows its webhook URL (`/hooks/meta/{id}`) to paste into Meta's app.

use super::{admin_actor, rfc3339, ApiJson};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bos_engine::sources;
use bos_store::inbox::MetaSource;
use bos_store::intake::{Source, SourceKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct SourceDto {
    pub id: uuid::Uuid,
    /// `segment`, `webhook`, `shopify`, `form` or `meta`.
    pub kind: String,
    pub name: String,
    /// Where the source sends its events. For `segment`, the SDKs' API
    /// host: they post `/v1/identify`, `/v1/track`, `/v1/page`,
    /// `/v1/screen`, `/v1/group`, `/v1/alias` and `/v1/batch` under it.
    /// Every intake endpoint takes `Content-Encoding: gzip` or `deflate`
    /// (limits apply to the decompressed body; another coding is 415), and
    /// a Segment endpoint's errors carry `code` and `message` besides the
    /// problem's members.
    pub endpoint: String,
    pub created_at: String,
    /// For `form` only: the public form key (it is part of `endpoint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_key: Option<String>,
    /// For `form` only: where a classic form post is sent after it was
    /// stored (a `_redirect` field in the form wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thank_you_url: Option<String>,
    /// For `form` only: an HTML form to paste into the landing page, with
    /// the honeypot and the "form started" script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_snippet: Option<String>,
}

fn dto(st: &AppState, s: &Source) -> SourceDto {
    let endpoint = st.urls().source_endpoint(s);
    let is_form = s.kind == SourceKind::Form;
    SourceDto {
        id: s.id,
        kind: s.kind.as_str().into(),
        name: s.name.clone(),
        html_snippet: is_form.then(|| form_snippet(&endpoint)),
        endpoint,
        created_at: rfc3339(s.created_at),
        form_key: if is_form { s.secret.clone() } else { None },
        thank_you_url: s.thank_you_url(),
    }
}

/// A Meta source as listed: its webhook URL, never its credentials.
fn meta_dto(st: &AppState, s: &MetaSource) -> SourceDto {
    SourceDto {
        id: s.id,
        kind: "meta".into(),
        name: s.name.clone(),
        endpoint: st.urls().meta_hook(s.id),
        created_at: rfc3339(s.created_at),
        form_key: None,
        thank_you_url: None,
        html_snippet: None,
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

/// A landing-page form posting to `endpoint`: a few example fields, the
/// honeypot `_hp` (off-screen, so people never fill it and bots do), and a
/// script that gives the visit an id (`_sid`), fills `_page` and
/// `_referrer`, and saves a "form started" (`_partial=1`) with the fields so
/// far when the visitor first changes a field — so a form left half done
/// can still be followed up.
fn form_snippet(endpoint: &str) -> String {
    let action = html_escape(endpoint);
    format!(
        r#"<form method="post" action="{action}" data-bos-form>
  <label>Name <input name="name" autocomplete="name"></label>
  <label>Email <input type="email" name="email" autocomplete="email" required></label>
  <label>Message <textarea name="message"></textarea></label>
  <div aria-hidden="true" style="position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden">
    <label>Leave this field empty <input type="text" name="_hp" value="" tabindex="-1" autocomplete="off"></label>
  </div>
  <input type="hidden" name="_sid"><input type="hidden" name="_page"><input type="hidden" name="_referrer">
  <button type="submit">Send</button>
</form>
<script>
(function () {{
  var f = document.currentScript.previousElementSibling, e = f.elements, started = false;
  e._sid.value = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : Date.now().toString(36) + '-' + Math.random().toString(36).slice(2);
  e._page.value = location.href.slice(0, 2000);
  e._referrer.value = document.referrer.slice(0, 2000);
  f.addEventListener('change', function () {{
    if (started) return;
    started = true;
    var d = new URLSearchParams(new FormData(f));
    d.set('_partial', '1');
    fetch(f.action, {{ method: 'POST', mode: 'cors', body: d, headers: {{ 'Accept': 'application/json' }} }})
      .catch(function () {{}});
  }});
}})();
</script>
"#
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    /// `segment` (Segment-compatible tracking), `webhook` (Standard
    /// Webhooks), `shopify` (Shopify webhooks), `form` (public web forms)
    /// or `meta` (Instagram and Messenger messages into the inbox).
    pub kind: String,
    pub name: String,
    /// For `shopify` only, and required there: the Shopify app's client
    /// secret, which Shopify signs its webhooks with.
    #[serde(default)]
    pub secret: Option<String>,
    /// For `form` only, optional: the page a classic form post is sent to
    /// after it was stored (an absolute `http`/`https` URL).
    #[serde(default)]
    pub thank_you_url: Option<String>,
    /// For `meta` only, and required there: the Meta app's secret, which
    /// signs every webhook delivery. Stored sealed, never shown again.
    #[serde(default)]
    pub app_secret: Option<String>,
    /// For `meta` only, and required there: a token of your choice that
    /// Meta echoes when the webhook is subscribed. Never shown again.
    #[serde(default)]
    pub verify_token: Option<String>,
    /// For `meta` only, and required there: the page access token replies
    /// are sent with. Stored sealed, never shown again.
    #[serde(default)]
    pub page_access_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedSource {
    pub source: SourceDto,
    /// The write key (segment) or the `whsec_` signing secret (webhook).
    /// Store it now: it is never shown again. Absent for `shopify` (the
    /// merchant provided that secret and already has it) and for `form`
    /// (its key is public: `source.form_key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The organization's intake sources, oldest first (no secrets).
#[utoipa::path(get, path = "/sources", tag = "sources",
    responses((status = 200, body = Vec<SourceDto>), (status = 403, body = crate::error::Problem)))]
pub async fn list(State(st): State<AppState>, p: ApiPrincipal) -> ApiResult<Json<Vec<SourceDto>>> {
    let a = admin_actor(&p)?;
    let sources = st.store.sources(a.org_id).await?;
    let meta = st.store.meta_sources(a.org_id).await?;
    Ok(Json(
        sources
            .iter()
            .map(|s| dto(&st, s))
            .chain(meta.iter().map(|s| meta_dto(&st, s)))
            .collect(),
    ))
}

/// Creates a source; the response holds its credential, once.
#[utoipa::path(post, path = "/sources", tag = "sources", request_body = CreateSource,
    responses((status = 201, body = CreatedSource), (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<CreateSource>, AppError>,
) -> ApiResult<(StatusCode, Json<CreatedSource>)> {
    let a = admin_actor(&p)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let meta_fields = [
        ("app_secret", body.app_secret.is_some()),
        ("verify_token", body.verify_token.is_some()),
        ("page_access_token", body.page_access_token.is_some()),
    ];
    if body.kind == "meta" {
        if body.secret.is_some() || body.thank_you_url.is_some() {
            return Err(AppError::invalid(
                "kind",
                "A meta source takes app_secret, verify_token and page_access_token, not secret or thank_you_url.",
            ));
        }
        let src = sources::create_meta(
            &st.store,
            a.org_id,
            &body.name,
            body.app_secret,
            body.verify_token,
            body.page_access_token,
            st.now(),
        )
        .await?;
        return Ok((
            StatusCode::CREATED,
            Json(CreatedSource {
                source: meta_dto(&st, &src),
                secret: None,
            }),
        ));
    }
    if let Some((field, _)) = meta_fields.iter().find(|(_, given)| *given) {
        return Err(AppError::invalid(
            field,
            format!("Only a meta source takes {field}."),
        ));
    }
    let (src, secret) = sources::create(
        &st.store,
        a.org_id,
        &body.kind,
        &body.name,
        body.secret,
        body.thank_you_url,
        st.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSource {
            source: dto(&st, &src),
            secret,
        }),
    ))
}
