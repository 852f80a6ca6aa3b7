//! `/imports`: upload a contacts CSV (the body is the file), follow its
//! progress, read its summary, list past imports (admin scope).

use super::{admin_actor, rfc3339, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bos_engine::imports::driver::check_source;
use bos_engine::imports::runs::{clean_file_name, UploadMeta};
use bos_store::import::ImportRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A row of the file that was not imported, or a value left out of one.
#[derive(Serialize, ToSchema)]
pub struct RowIssue {
    /// Line number in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// What an import did so far.
#[derive(Serialize, ToSchema)]
pub struct ImportCountsDto {
    /// Data rows read and resolved so far.
    pub processed: u64,
    /// Rows that made a new customer.
    pub created: u64,
    /// Rows that matched one existing customer.
    pub matched: u64,
    /// Rows that joined several customers into one (reversibly).
    pub merged: u64,
    /// Rows imported before from this same file: left unchanged.
    pub unchanged: u64,
    /// Rows not imported (see `rejected_rows`).
    pub rejected: u64,
    /// Customers absorbed by the merges.
    pub absorbed: u64,
    /// Identifiers newly linked to customers.
    pub linked: u64,
    /// Identifiers left out by the organization's identity rules.
    pub dropped: u64,
    /// Values left out of imported rows (invalid ones next to valid ones).
    pub warnings: u64,
}

/// One import: its status, progress and summary.
#[derive(Serialize, ToSchema)]
pub struct ImportDto {
    pub id: uuid::Uuid,
    pub file_name: String,
    /// Hex SHA-256 of the file; with a line number it keys each row.
    pub digest: String,
    pub source: String,
    /// `queued`, `running`, `done`, `failed` or `interrupted`.
    pub status: String,
    /// Data rows in the file (header not counted).
    pub total_rows: u64,
    /// 0–100.
    pub percent: u8,
    pub counts: ImportCountsDto,
    /// The first rejected rows (up to 1,000), by line; `counts.rejected` has them all.
    pub rejected_rows: Vec<RowIssue>,
    /// The first values left out of imported rows (up to 1,000).
    pub warnings: Vec<RowIssue>,
    /// Columns whose header names nothing known: ignored.
    pub ignored_columns: Vec<String>,
    /// Why it failed or stopped, and what to do.
    pub error: Option<String>,
    pub started_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl From<&ImportRecord> for ImportDto {
    fn from(r: &ImportRecord) -> Self {
        let t = &r.tally;
        ImportDto {
            id: r.id,
            file_name: r.file_name.clone(),
            digest: r.digest.clone(),
            source: r.source.clone(),
            status: r.status.as_str().into(),
            total_rows: r.total_rows,
            percent: r.percent(),
            counts: ImportCountsDto {
                processed: t.processed_rows,
                created: t.created,
                matched: t.matched,
                merged: t.merged,
                unchanged: t.unchanged,
                rejected: t.rejected,
                absorbed: t.absorbed,
                linked: t.linked,
                dropped: t.dropped,
                warnings: t.warnings,
            },
            rejected_rows: t
                .rejections
                .iter()
                .map(|x| RowIssue {
                    line: x.line,
                    reason: x.reason.clone(),
                })
                .collect(),
            warnings: t
                .warning_notes
                .iter()
                .map(|x| RowIssue {
                    line: x.line,
                    reason: x.message.clone(),
                })
                .collect(),
            ignored_columns: r.ignored_columns.clone(),
            error: r.error.clone(),
            started_by: r.started_by.clone(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            finished_at: r.finished_at.map(rfc3339),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Recorded on each identity and timeline entry (default `import`),
    /// e.g. `hubspot`.
    pub source: Option<String>,
    /// The file name shown on the timeline (default `upload.csv`).
    pub file_name: Option<String>,
}

/// Imports a contacts CSV: the request body is the file (`Content-Type:
/// text/csv`, UTF-8, a header row). Columns are matched by header name;
/// every row is resolved through the organization's identity rules, in the
/// background. Answers 202 with the import (`queued`) and its `Location`;
/// follow it with `GET /imports/{import_id}`. Uploading the same file again
/// changes nothing that was imported (and resumes an interrupted import).
#[utoipa::path(post, path = "/imports", tag = "customers", params(UploadParams),
    request_body(content = String, content_type = "text/csv", description = "The CSV file"),
    responses(
        (status = 202, body = ImportDto, headers(("location" = String, description = "The import's URL"))),
        (status = 409, body = crate::error::Problem, description = "The same file is being imported"),
        (status = 413, body = crate::error::Problem, description = "The file is over the import size limit"),
        (status = 415, body = crate::error::Problem, description = "Not sent as text/csv"),
        (status = 422, body = crate::error::Problem, description = "Empty, not CSV text, or no identifier column")))]
pub async fn create(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Query(q): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let a = admin_actor(&p)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(ct.as_str(), "text/csv" | "application/csv" | "text/plain") {
        return Err(AppError::UnsupportedMediaType(
            "Send the CSV file itself as the request body with 'Content-Type: text/csv' \
             (e.g. curl --data-binary @contacts.csv -H 'content-type: text/csv')."
                .into(),
        ));
    }
    let source = check_source(q.source.as_deref().unwrap_or("import"))
        .map_err(|e| AppError::invalid("source", format!("The source {e}.")))?;
    let meta = UploadMeta {
        file_name: clean_file_name(q.file_name.as_deref().unwrap_or("")),
        source,
        started_by: format!("API key \"{}\"", p.key.name),
        user_id: None,
    };
    let rec = st
        .imports
        .receive(a.org_id, body.into_data_stream(), meta)
        .await?;
    let mut res = (StatusCode::ACCEPTED, Json(ImportDto::from(&rec))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/imports/{}", rec.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many (1–200, default 50), newest first.
    pub limit: Option<u32>,
}

/// The organization's imports, newest first, without their row lists.
#[utoipa::path(get, path = "/imports", tag = "customers", params(ListParams),
    responses((status = 200, body = Vec<ImportDto>), (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<Vec<ImportDto>>> {
    let a = admin_actor(&p)?;
    let rows = st
        .store
        .list_imports(a.org_id, q.limit.unwrap_or(50).clamp(1, 200))
        .await?;
    Ok(Json(rows.iter().map(ImportDto::from).collect()))
}

/// One import: progress while it runs, the summary with the rejected rows
/// (line and reason) once it is done.
#[utoipa::path(get, path = "/imports/{import_id}", tag = "customers",
    params(("import_id" = uuid::Uuid, Path, description = "The import's id")),
    responses((status = 200, body = ImportDto), (status = 404, body = crate::error::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<ImportDto>> {
    // Look up first: another tenant's id is "not found" whatever the key's scopes.
    let r = st.store.import_record(p.org.id, id).await?;
    admin_actor(&p)?;
    Ok(Json((&r).into()))
}
