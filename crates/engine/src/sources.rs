//! Intake sources, for every caller (the API and Settings → Sources):
//! creating one of a known kind with its credential made here and shown
//! once — a Segment write key and a form key stored only as digests, a
//! Standard Webhooks signing secret, or the Shopify app's secret as the
//! merchant gave it; connecting a Meta page or Instagram account with the
//! credentials Meta gave the business (kept sealed, never shown again);
//! and replaying one of a source's deliveries.

use crate::pipeline::Pipeline;
use crate::tokens::{random_token, sha256};
use bos_core::intake::form;
use bos_core::intake::standard_webhooks::Secret;
use bos_store::inbox::{MetaCredentials, MetaSource};
use bos_store::intake::{form_config, NewSource, Source, SourceKind};
use bos_store::pipeline::Delivery;
use bos_store::{Store, StoreError};
use uuid::Uuid;

/// The longest source name.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a source was not created.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An input is not acceptable; the text says what to send.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// The random signing secret could not be encoded (a fault here).
    #[error("signing secret: {0}")]
    Secret(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends one stored delivery through the pipeline again (events are
/// idempotent, so a replay changes nothing that was applied) and wakes the
/// pipeline; returns the delivery as it is now.
pub async fn replay_delivery(
    store: &Store,
    pipeline: &Pipeline,
    org: Uuid,
    id: Uuid,
    now: i64,
) -> Result<Delivery, StoreError> {
    store.requeue_inbound(org, id, now).await?;
    pipeline.notify();
    Ok(store.delivery_payload(org, id).await?.0)
}

fn invalid(field: &'static str, detail: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        field,
        detail: detail.into(),
    }
}

/// Creates a source of `kind` (validated) and returns it with its
/// credential, shown once (`None` for shopify, whose secret the merchant
/// gave). The API and Settings → Sources both create through here.
pub async fn create(
    store: &Store,
    org: Uuid,
    kind: &str,
    name: &str,
    secret: Option<String>,
    thank_you_url: Option<String>,
    now: i64,
) -> Result<(Source, Option<String>), SourceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("Give the source a name of 1 to {MAX_NAME_CHARS} characters."),
        ));
    }
    if secret.is_some() && kind != "shopify" {
        return Err(invalid(
            "secret",
            "Only a shopify source takes a secret; segment, webhook and form sources get their credential generated.",
        ));
    }
    if thank_you_url.is_some() && kind != "form" {
        return Err(invalid(
            "thank_you_url",
            "Only a form source takes a thank_you_url.",
        ));
    }
    let mut config = None;
    let (kind, secret, new) = match kind {
        "segment" => {
            // 192 random bits; Segment SDKs send it in clear, so only its
            // hash is stored.
            let key = random_token(24);
            let hash = sha256(&key);
            (SourceKind::Segment, Some(key), (None, Some(hash)))
        }
        "webhook" => {
            use rand::RngCore;
            let mut raw = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let s = Secret::from_bytes(raw)
                .map_err(|e| SourceError::Secret(e.to_string()))?
                .encode();
            (SourceKind::Webhook, Some(s.clone()), (Some(s), None))
        }
        "shopify" => {
            // Kept as given (not trimmed): the HMAC key is the exact bytes.
            let s = secret.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                invalid(
                    "secret",
                    "A shopify source needs \"secret\": the Shopify app's client secret \
                     (Shopify signs its webhooks with it).",
                )
            })?;
            (SourceKind::Shopify, None, (Some(s), None))
        }
        "form" => {
            let thanks = match thank_you_url.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(u) => Some(form::valid_redirect(u).ok_or_else(|| {
                    invalid(
                        "thank_you_url",
                        "thank_you_url must be an absolute http:// or https:// URL, like https://example.com/thanks.",
                    )
                })?),
            };
            config = form_config(thanks.as_deref());
            // 144 random bits, URL-safe: "fk_" and 24 characters. Public
            // (it is in the page's HTML); looked up by its hash like a
            // write key, so the lookup is by an exact, indexed value.
            let key = format!("fk_{}", random_token(18));
            let hash = sha256(&key);
            (SourceKind::Form, None, (Some(key), Some(hash)))
        }
        other => {
            return Err(invalid(
                "kind",
                format!(
                    "Unknown source kind {:?}: use \"segment\" (Segment-compatible tracking), \"webhook\" (Standard Webhooks), \"shopify\" (Shopify webhooks), \"form\" (public web forms) or \"meta\" (Instagram and Messenger).",
                    other.chars().take(40).collect::<String>()
                ),
            ))
        }
    };
    let src = store
        .create_source(
            org,
            NewSource {
                kind,
                name: name.to_string(),
                secret: new.0,
                key_hash: new.1,
                config,
            },
            now,
        )
        .await?;
    Ok((src, secret))
}

/// The longest credential Meta hands out that we accept: its tokens are a
/// few hundred characters; far longer is a paste gone wrong.
pub const MAX_META_CREDENTIAL_CHARS: usize = 1_000;

/// Connects a Meta page or Instagram account: the app secret (Meta signs
/// deliveries with it), the verify token (Meta echoes it in the
/// subscription handshake) and the page access token (replies are sent
/// with it). All three are required; they are stored sealed and never
/// shown again.
pub async fn create_meta(
    store: &Store,
    org: Uuid,
    name: &str,
    app_secret: Option<String>,
    verify_token: Option<String>,
    page_access_token: Option<String>,
    now: i64,
) -> Result<MetaSource, SourceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("Give the source a name of 1 to {MAX_NAME_CHARS} characters."),
        ));
    }
    // Kept as given (not trimmed inside): the HMAC key is the exact bytes.
    let need = |field: &'static str, v: Option<String>, what: &str| {
        let v = v.unwrap_or_default();
        if v.trim().is_empty() || v.chars().count() > MAX_META_CREDENTIAL_CHARS {
            return Err(invalid(
                field,
                format!(
                    "A meta source needs \"{field}\": {what} (1 to {MAX_META_CREDENTIAL_CHARS} characters)."
                ),
            ));
        }
        Ok(v)
    };
    let credentials = MetaCredentials {
        app_secret: need(
            "app_secret",
            app_secret,
            "the Meta app's secret, which signs every webhook delivery",
        )?,
        verify_token: need(
            "verify_token",
            verify_token,
            "a token of your choice that Meta echoes when you subscribe the webhook",
        )?,
        page_access_token: need(
            "page_access_token",
            page_access_token,
            "the page access token replies are sent with",
        )?,
    };
    Ok(store
        .create_meta_source(org, name, &credentials, now)
        .await?)
}
