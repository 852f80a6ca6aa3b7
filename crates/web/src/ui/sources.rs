//! Settings → Sources: the intake sources with their event counts, creating
//! one (the credential is shown once), a source's delivery log (a form
//! source also shows its HTML snippet to paste into a page), one
//! delivery's raw payload with Replay, and the parked events across sources
//! with Retry. Ids of another tenant are 404 before any permission check.

use super::{fmt_time, notice, relative, Chrome, NoticeQuery};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageError, PageResult};
use crate::params::{status_filter, STATUSES};
use crate::views::payload_value;
use crate::AppState;
use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::intake::form;
use bos_engine::sources::{self, SourceError};
use bos_store::intake::{Source, SourceKind};
use bos_store::pipeline::Delivery;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

const LOG_LIMIT: u32 = 100;
const PARKED_LIMIT: u32 = 500;

/// Two UUIDs in the path; one that does not parse is a 404 page.
pub struct PathIds(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<(Uuid, Uuid)>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path((a, b))) => Ok(PathIds(a, b)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(PageError(AppError::NotFound))
            }
            Err(e) => Err(PageError(AppError::Internal(e.body_text()))),
        }
    }
}

/// Event counts of one source by status.
#[derive(Default, Clone)]
pub struct Counts {
    pub pending: i64,
    pub processed: i64,
    pub skipped: i64,
    pub parked: i64,
}

impl Counts {
    fn add(&mut self, status: &str, n: i64) {
        match status {
            "pending" => self.pending += n,
            "processed" => self.processed += n,
            "skipped" => self.skipped += n,
            "parked" => self.parked += n,
            _ => {}
        }
    }
    pub fn total(&self) -> i64 {
        self.pending + self.processed + self.skipped + self.parked
    }
}

pub struct SourceRow {
    id: String,
    kind: &'static str,
    name: String,
    endpoint: String,
    created: String,
    counts: Counts,
}

#[derive(Template)]
#[template(path = "sources.html")]
struct SourcesPage {
    c: Chrome,
    rows: Vec<SourceRow>,
    totals: Counts,
    /// (source name, kind, endpoint, credential) of a source just created.
    created: Option<(String, String, String, Option<String>)>,
    /// A form source just created: its ready-to-paste HTML form.
    snippet: Option<String>,
    error: Option<String>,
    form_kind: String,
    form_name: String,
}

async fn sources_page(
    st: &AppState,
    s: &Session,
    c: Chrome,
    created: Option<(String, String, String, Option<String>)>,
    snippet: Option<String>,
    error: Option<(String, String, String)>,
) -> PageResult<Response> {
    s.require_admin()?;
    let mut counts: HashMap<Uuid, Counts> = HashMap::new();
    let mut totals = Counts::default();
    for (src, status, n) in st.store.source_status_counts(s.org.id).await? {
        counts.entry(src).or_default().add(&status, n);
        totals.add(&status, n);
    }
    let rows = st
        .store
        .sources(s.org.id)
        .await?
        .iter()
        .map(|src| SourceRow {
            id: src.id.to_string(),
            kind: src.kind.as_str(),
            name: src.name.clone(),
            endpoint: st.urls().source_endpoint(src),
            created: fmt_time(src.created_at),
            counts: counts.get(&src.id).cloned().unwrap_or_default(),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (error, form_kind, form_name) = match error {
        Some((e, k, n)) => (Some(e), k, n),
        None => (None, "segment".into(), String::new()),
    };
    let page = SourcesPage {
        c,
        rows,
        totals,
        created,
        snippet,
        error,
        form_kind,
        form_name,
    };
    Ok((status, super::render(&page)).into_response())
}

pub async fn list(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let mut c = Chrome::new(&s, "Sources", "sources");
    c.notice = notice(q.done.as_deref());
    sources_page(&st, &s, c, None, None, None).await
}

pub async fn create(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(f): CsrfForm<Vec<(String, String)>>,
) -> PageResult<Response> {
    s.require_admin()?;
    let get = |k: &str| {
        f.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (kind, name) = (get("kind"), get("name"));
    // The secret field only means something for shopify.
    let secret = Some(get("secret")).filter(|v| kind == "shopify" || !v.is_empty());
    let thanks = Some(get("thank_you_url")).filter(|v| kind == "form" && !v.trim().is_empty());
    let c = Chrome::new(&s, "Sources", "sources");
    match sources::create(&st.store, s.org.id, &kind, &name, secret, thanks, st.now()).await {
        Ok((src, credential)) => {
            let created = Some((
                src.name.clone(),
                src.kind.as_str().to_string(),
                st.urls().source_endpoint(&src),
                credential,
            ));
            sources_page(&st, &s, c, created, snippet_of(&st, &src), None).await
        }
        Err(SourceError::Invalid { detail, .. }) => {
            sources_page(&st, &s, c, None, None, Some((detail, kind, name))).await
        }
        Err(e) => Err(AppError::from(e).into()),
    }
}

/// A form source's ready-to-paste HTML form, posting to its public URL;
/// nothing for other kinds (they are posted to by programs, not pages).
fn snippet_of(st: &AppState, src: &Source) -> Option<String> {
    (src.kind == SourceKind::Form).then(|| {
        form::snippet(
            &st.urls().source_endpoint(src),
            src.thank_you_url().is_some(),
        )
    })
}

pub struct DeliveryRow {
    id: String,
    time: String,
    ago: String,
    kind: String,
    external_id: String,
    status: String,
    attempts: i64,
    error: String,
    profile: Option<String>,
    source_id: String,
    source_name: String,
}

impl DeliveryRow {
    /// The status pill's color class.
    pub fn pill(&self) -> &'static str {
        pill(&self.status)
    }
}

/// processed green, parked red, skipped yellow, pending blue.
pub fn pill(status: &str) -> &'static str {
    match status {
        "processed" => "status-done",
        "parked" => "status-failed",
        "skipped" => "status-interrupted",
        _ => "status-running",
    }
}

fn row(d: &Delivery, now: i64, source_name: &str) -> DeliveryRow {
    DeliveryRow {
        id: d.id.to_string(),
        time: fmt_time(d.received_at),
        ago: relative(d.received_at, now),
        kind: d.kind.clone(),
        external_id: d.external_id.clone(),
        status: d.status.clone(),
        attempts: d.attempts,
        error: d.error.clone().unwrap_or_default(),
        profile: d.profile_id.map(|p| p.to_string()),
        source_id: d.source_id.to_string(),
        source_name: source_name.to_string(),
    }
}

#[derive(Template)]
#[template(path = "source.html")]
struct SourcePage {
    c: Chrome,
    id: String,
    kind: &'static str,
    endpoint: String,
    created: String,
    counts: Counts,
    filter: String,
    statuses: [&'static str; 4],
    rows: Vec<DeliveryRow>,
    limit: u32,
    snippet: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LogQuery {
    pub status: Option<String>,
}

pub async fn show(
    State(st): State<AppState>,
    s: Session,
    super::PathId(id): super::PathId,
    Query(q): Query<LogQuery>,
) -> PageResult<Response> {
    let src = st.store.source(s.org.id, id).await?;
    s.require_admin()?;
    let filter = status_filter(q.status.as_deref())
        .unwrap_or(None)
        .map(str::to_string);
    let mut counts = Counts::default();
    for (sid, status, n) in st.store.source_status_counts(s.org.id).await? {
        if sid == id {
            counts.add(&status, n);
        }
    }
    let now = st.now();
    let rows = st
        .store
        .deliveries(s.org.id, Some(id), filter.as_deref(), LOG_LIMIT)
        .await?
        .iter()
        .map(|d| row(d, now, &src.name))
        .collect();
    let page = SourcePage {
        c: Chrome::new(&s, &src.name, "sources"),
        id: src.id.to_string(),
        kind: src.kind.as_str(),
        endpoint: st.urls().source_endpoint(&src),
        created: fmt_time(src.created_at),
        counts,
        filter: filter.unwrap_or_default(),
        statuses: STATUSES,
        rows,
        limit: LOG_LIMIT,
        snippet: snippet_of(&st, &src),
    };
    Ok(super::render(&page))
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    c: Chrome,
    source_id: String,
    source_name: String,
    d: DeliveryRow,
    processed: String,
    payload: String,
}

pub async fn delivery(
    State(st): State<AppState>,
    s: Session,
    PathIds(source_id, id): PathIds,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let src = st.store.source(s.org.id, source_id).await?;
    let (d, raw) = st.store.delivery_payload(s.org.id, id).await?;
    if d.source_id != src.id {
        return Err(AppError::NotFound.into());
    }
    s.require_admin()?;
    let payload = match payload_value(&raw) {
        serde_json::Value::String(s) => s,
        v => serde_json::to_string_pretty(&v).unwrap_or(raw),
    };
    let mut c = Chrome::new(&s, &format!("{} · {}", d.kind, src.name), "sources");
    c.notice = notice(q.done.as_deref());
    let page = DeliveryPage {
        c,
        source_id: src.id.to_string(),
        source_name: src.name.clone(),
        processed: d.processed_at.map(fmt_time).unwrap_or_default(),
        d: row(&d, st.now(), &src.name),
        payload,
    };
    Ok(super::render(&page))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn replay(
    State(st): State<AppState>,
    s: Session,
    PathIds(source_id, id): PathIds,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    let src = st.store.source(s.org.id, source_id).await?;
    let (d, _) = st.store.delivery_payload(s.org.id, id).await?;
    if d.source_id != src.id {
        return Err(AppError::NotFound.into());
    }
    s.require_admin()?;
    sources::replay_delivery(&st.store, &st.pipeline, s.org.id, id, st.now()).await?;
    Ok(Redirect::to(&format!(
        "/settings/sources/{source_id}/deliveries/{id}?done=replayed"
    ))
    .into_response())
}

#[derive(Template)]
#[template(path = "parked.html")]
struct ParkedPage {
    c: Chrome,
    rows: Vec<DeliveryRow>,
}

pub async fn parked(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    s.require_admin()?;
    let names: HashMap<Uuid, String> = st
        .store
        .sources(s.org.id)
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let now = st.now();
    let rows = st
        .store
        .deliveries(s.org.id, None, Some("parked"), PARKED_LIMIT)
        .await?
        .iter()
        .map(|d| {
            row(
                d,
                now,
                names.get(&d.source_id).map(String::as_str).unwrap_or("?"),
            )
        })
        .collect();
    let mut c = Chrome::new(&s, "Parked events", "parked");
    c.notice = notice(q.done.as_deref());
    Ok(super::render(&ParkedPage { c, rows }))
}

pub async fn retry(
    State(st): State<AppState>,
    s: Session,
    super::PathId(id): super::PathId,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    st.store.delivery_payload(s.org.id, id).await?;
    s.require_admin()?;
    sources::replay_delivery(&st.store, &st.pipeline, s.org.id, id, st.now()).await?;
    Ok(Redirect::to("/settings/intake/parked?done=retried").into_response())
}

pub async fn retry_all(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    s.require_admin()?;
    let now = st.now();
    for d in st
        .store
        .deliveries(s.org.id, None, Some("parked"), PARKED_LIMIT)
        .await?
    {
        st.store.requeue_inbound(s.org.id, d.id, now).await?;
    }
    st.pipeline.notify();
    Ok(Redirect::to("/settings/intake/parked?done=retried_all").into_response())
}
