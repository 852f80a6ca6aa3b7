//! Customers → Import: the upload form and the list of past imports, the
//! page of one import (a progress bar while it runs, the summary with the
//! rejected rows and links to the customers when it is done), and the
//! Server-Sent Events stream that `assets/import.js` follows to move the
//! bar without reloading. Without JavaScript the running page refreshes
//! itself every few seconds.

use super::customers::group_digits;
use super::{fmt_time, relative, Chrome, PathId};
use crate::auth::session::{cross_site, Session};
use crate::error::{AppError, PageResult};
use crate::live::{self, Heard, Step};
use crate::AppState;
use askama::Template;
use axum::extract::multipart::Field;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Redirect, Response};
use bos_engine::imports::driver::check_source;
use bos_engine::imports::runs::{clean_file_name, UploadMeta};
use bos_engine::Live;
use bos_store::import::{ImportRecord, ImportStatus};
use std::time::Duration;
use uuid::Uuid;

/// Past imports listed on the import page.
const LISTED: u32 = 50;
/// Customers from the file linked on a finished import's page.
const CUSTOMERS: u32 = 12;

/// One import as the pages show it.
pub struct ImportView {
    pub id: String,
    pub file_name: String,
    pub source: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub dot: &'static str,
    pub live: bool,
    pub percent: u8,
    pub processed: u64,
    pub total: u64,
    pub processed_s: String,
    pub total_s: String,
    pub created: String,
    pub matched: String,
    pub merged: String,
    pub unchanged: String,
    pub rejected: String,
    pub rejected_n: u64,
    pub absorbed: String,
    pub absorbed_n: u64,
    pub linked: String,
    pub dropped: String,
    pub warnings_n: u64,
    pub started_by: String,
    pub when: String,
    pub at: String,
    pub finished: Option<String>,
    pub error: Option<String>,
    pub ignored_columns: String,
}

/// The status in words, and its dot's class.
fn status_label(s: ImportStatus) -> (&'static str, &'static str) {
    match s {
        ImportStatus::Queued => ("Queued", "dot-wait"),
        ImportStatus::Running => ("Importing", "dot-run"),
        ImportStatus::Done => ("Done", "dot-ok"),
        ImportStatus::Failed => ("Failed", "dot-err"),
        ImportStatus::Interrupted => ("Interrupted", "dot-warn"),
    }
}

fn view(r: &ImportRecord, now: i64) -> ImportView {
    let t = &r.tally;
    let n = |v: u64| group_digits(v as i64);
    let (label, dot) = status_label(r.status);
    ImportView {
        id: r.id.to_string(),
        file_name: r.file_name.clone(),
        source: r.source.clone(),
        status: r.status.as_str(),
        status_label: label,
        dot,
        live: !r.status.is_final(),
        percent: r.percent(),
        processed: t.processed_rows.min(r.total_rows),
        total: r.total_rows,
        processed_s: n(t.processed_rows),
        total_s: n(r.total_rows),
        created: n(t.created),
        matched: n(t.matched),
        merged: n(t.merged),
        unchanged: n(t.unchanged),
        rejected: n(t.rejected),
        rejected_n: t.rejected,
        absorbed: n(t.absorbed),
        absorbed_n: t.absorbed,
        linked: n(t.linked),
        dropped: n(t.dropped),
        warnings_n: t.warnings,
        started_by: r.started_by.clone(),
        when: relative(r.created_at, now),
        at: fmt_time(r.created_at),
        finished: r.finished_at.map(fmt_time),
        error: r.error.clone(),
        ignored_columns: r.ignored_columns.join(", "),
    }
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportFormPage {
    c: Chrome,
    rows: Vec<ImportView>,
    error: Option<String>,
    limit_mib: u64,
    headers: Vec<(&'static str, &'static str)>,
}

/// What the form says about columns (the same table as the README).
const HEADERS: &[(&str, &str)] = &[
    ("E-mail", "email, e-mail, email_address, mail"),
    (
        "Phone",
        "phone, phone_number, mobile, mobile_phone, cell, telephone",
    ),
    ("Shopify id", "shopify_customer_id, shopify_id"),
    ("Instagram id", "instagram_id, igsid"),
    ("Facebook PSID", "facebook_psid, psid"),
    ("Segment ids", "segment_user_id, user_id, anonymous_id"),
    ("Name", "first_name, last_name, name, full_name"),
    ("Company", "company, organization"),
];

async fn form_page(st: &AppState, s: &Session, error: Option<&AppError>) -> PageResult<Response> {
    let now = st.now();
    let rows = st
        .store
        .list_imports(s.org.id, LISTED)
        .await?
        .iter()
        .map(|r| view(r, now))
        .collect();
    let page = ImportFormPage {
        c: Chrome::new(s, "Import customers", "customers"),
        rows,
        error: error.map(AppError::detail),
        limit_mib: st.config.import_limit_bytes.div_ceil(1 << 20),
        headers: HEADERS.to_vec(),
    };
    let status = error
        .map(AppError::status)
        .unwrap_or(axum::http::StatusCode::OK);
    Ok((status, super::render(&page)).into_response())
}

/// `GET /customers/import`.
pub async fn page(State(st): State<AppState>, s: Session) -> PageResult<Response> {
    form_page(&st, &s, None).await
}

/// Reads a small text field of the form, refusing one that is not small.
async fn small_text(field: &mut Field<'_>) -> Result<String, AppError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))?
    {
        buf.extend_from_slice(&chunk);
        if buf.len() > 1024 {
            return Err(AppError::BadRequest("A form field is too long.".into()));
        }
    }
    String::from_utf8(buf).map_err(|_| AppError::BadRequest("A form field is not text.".into()))
}

/// `POST /customers/import` (multipart: `_csrf`, optional `source`, then
/// `file`). The token must come before the file, as the form sends it, so
/// no byte of a forged upload is stored.
pub async fn upload(State(st): State<AppState>, s: Session, req: Request) -> PageResult<Response> {
    s.require_admin()?;
    if cross_site(req.headers(), &st) {
        tracing::warn!(user = %s.user.id, "CSRF check failed (cross-site upload)");
        return Err(AppError::Csrf.into());
    }
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !is_multipart {
        // Any other post is checked like every form of this UI (token
        // first, 403), then refused as no upload.
        let bytes = axum::body::to_bytes(req.into_body(), st.config.body_limit_bytes)
            .await
            .map_err(|_| AppError::body_too_large())?;
        let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v)
            .unwrap_or_default();
        if token.is_empty() || !crate::auth::constant_time_eq(token.as_bytes(), s.csrf.as_bytes()) {
            tracing::warn!(user = %s.user.id, "CSRF check failed (upload)");
            return Err(AppError::Csrf.into());
        }
        return Err(AppError::BadRequest(
            "Send the upload as multipart/form-data, as the import form does.".into(),
        )
        .into());
    }
    let mut form = Multipart::from_request(req, &st).await.map_err(|e| {
        AppError::BadRequest(format!("The upload could not be read: {}.", e.body_text()))
    })?;
    let mut csrf_ok = false;
    let mut source = String::new();
    let mut rec = None;
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| AppError::BadRequest(format!("The upload could not be read: {e}.")))?;
        let Some(mut field) = field else { break };
        match field.name().unwrap_or("") {
            "_csrf" => {
                let token = small_text(&mut field).await?;
                csrf_ok = !token.is_empty()
                    && crate::auth::constant_time_eq(token.as_bytes(), s.csrf.as_bytes());
            }
            "source" => source = small_text(&mut field).await?,
            // A form sent without choosing a file has an empty, nameless part.
            "file" if field.file_name().unwrap_or("").is_empty() => {}
            "file" if csrf_ok && rec.is_none() => {
                let source = if source.trim().is_empty() {
                    "import".to_string()
                } else {
                    source.clone()
                };
                let source = match check_source(&source) {
                    Ok(s) => s,
                    Err(e) => {
                        return form_page(
                            &st,
                            &s,
                            Some(&AppError::invalid("source", format!("The source {e}."))),
                        )
                        .await
                    }
                };
                let meta = UploadMeta {
                    file_name: clean_file_name(field.file_name().unwrap_or("")),
                    source,
                    started_by: s.user.email.clone(),
                    user_id: Some(s.user.id),
                };
                match st
                    .imports
                    .receive(s.org.id, &mut field, meta)
                    .await
                    .map_err(AppError::from)
                {
                    Ok(r) => rec = Some(r),
                    Err(e @ AppError::Internal(_)) | Err(e @ AppError::Unavailable) => {
                        return Err(e.into())
                    }
                    Err(e) => return form_page(&st, &s, Some(&e)).await,
                }
            }
            "file" if !csrf_ok => break,
            // Unknown fields are ignored (browsers may add some).
            _ => {}
        }
    }
    if !csrf_ok {
        tracing::warn!(user = %s.user.id, "CSRF check failed (upload)");
        return Err(AppError::Csrf.into());
    }
    match rec {
        Some(r) => Ok(Redirect::to(&format!("/customers/imports/{}", r.id)).into_response()),
        None => {
            form_page(
                &st,
                &s,
                Some(&AppError::invalid("file", "Choose a CSV file to import.")),
            )
            .await
        }
    }
}

pub struct CustomerLink {
    id: String,
    name: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "import_run.html")]
struct RunPage {
    c: Chrome,
    r: ImportView,
    rejections: Vec<(u64, String)>,
    warnings: Vec<(u64, String)>,
    customers: Vec<CustomerLink>,
    js: &'static str,
}

/// `GET /customers/imports/{import_id}`.
pub async fn show(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
) -> PageResult<Response> {
    let rec = st.store.import_record(s.org.id, id).await?;
    let customers = if rec.status.is_final() {
        st.store
            .import_profiles(s.org.id, &rec.digest, CUSTOMERS)
            .await?
            .into_iter()
            .map(|p| CustomerLink {
                id: p.id.to_string(),
                name: if p.display_name.is_empty() {
                    "Unnamed".into()
                } else {
                    p.display_name
                },
                detail: if p.primary_email.is_empty() {
                    p.primary_phone
                } else {
                    p.primary_email
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = RunPage {
        c: Chrome::new(&s, "Import", "customers"),
        r: view(&rec, st.now()),
        rejections: rec
            .tally
            .rejections
            .iter()
            .map(|r| (r.line, r.reason.clone()))
            .collect(),
        warnings: rec
            .tally
            .warning_notes
            .iter()
            .map(|w| (w.line, w.message.clone()))
            .collect(),
        customers,
        js: crate::assets::url("import.js"),
    };
    Ok(super::render(&page))
}

/// The progress an event carries (what `import.js` reads).
fn progress_json(r: &ImportRecord) -> String {
    let t = &r.tally;
    let (label, dot) = status_label(r.status);
    serde_json::json!({
        "status": r.status.as_str(),
        "status_label": label,
        "dot": dot,
        "final": r.status.is_final(),
        "percent": r.percent(),
        "total": r.total_rows,
        "processed": t.processed_rows.min(r.total_rows),
        "created": t.created,
        "matched": t.matched,
        "merged": t.merged,
        "unchanged": t.unchanged,
        "rejected": t.rejected,
        "absorbed": t.absorbed,
        "linked": t.linked,
        "dropped": t.dropped,
    })
    .to_string()
}

/// How long the stream waits for news of a run before it reads the row
/// anyway: runs publish after every batch (from whichever server runs
/// them), so this only covers a run whose server stopped (the sweep marks
/// it interrupted without a word on the bus).
const PATIENCE: Duration = Duration::from_secs(5);

/// `GET /customers/imports/{import_id}/events`: one `progress` event at
/// once, then one whenever the import moves on; the stream ends after the
/// event that says it is over.
pub async fn events(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
) -> PageResult<Response> {
    // Subscribe first: batches before this moment are in `first`.
    let opened = live::open(&st, &s);
    let org = s.org.id;
    let first = st.store.import_record(org, id).await?;
    let mut view = ImportFollow {
        org,
        id,
        last: String::new(),
    };
    let first = view.step(first);
    Ok(opened.sse(st, first, view))
}

/// An import page's live view: the run's row, sent when it changed.
struct ImportFollow {
    org: Uuid,
    id: Uuid,
    last: String,
}

impl ImportFollow {
    fn step(&mut self, rec: ImportRecord) -> Step {
        let data = progress_json(&rec);
        if data == self.last && !rec.status.is_final() {
            return Step::Skip;
        }
        self.last = data.clone();
        let ev = Event::default().event("progress").data(data);
        if rec.status.is_final() {
            Step::Last(ev)
        } else {
            Step::Send(ev)
        }
    }
}

impl live::View for ImportFollow {
    fn patience(&self) -> Option<Duration> {
        Some(PATIENCE)
    }

    fn wants(&self, l: &Live) -> bool {
        matches!(l, Live::ImportProgress { import_id } if *import_id == self.id)
    }

    async fn on(&mut self, st: &AppState, _heard: Heard) -> Step {
        // Whatever was heard (its own news, missed news, a quiet spell):
        // the row says where the run is.
        match st.store.import_record(self.org, self.id).await {
            Ok(rec) => self.step(rec),
            // Erased organization, database down: end the stream; the page
            // still shows the last state.
            Err(e) => {
                tracing::warn!(import = %self.id, error = %e, "import events ended");
                Step::End
            }
        }
    }
}
