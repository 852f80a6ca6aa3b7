//! One upload, from the bytes of a request to a queued import with its
//! background run started — the part the upload page and the API share.
//! The file is spooled and checked completely before anything is recorded,
//! so a refused file leaves no trace but its error.

use crate::error::AppError;
use crate::AppState;
use axum::body::Bytes;
use bos_engine::imports::spool::{Spooler, UploadError};
use bos_store::import::{ImportRecord, NewImport};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

/// Who uploads what.
pub struct UploadMeta {
    pub file_name: String,
    pub source: String,
    pub started_by: String,
    pub user_id: Option<Uuid>,
}

impl From<UploadError> for AppError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::TooLarge { .. } => AppError::PayloadTooLarge(e.to_string()),
            UploadError::Cut(_) => AppError::BadRequest(e.to_string()),
            UploadError::Io(e) => AppError::Internal(format!("import spool: {e}")),
            e => AppError::invalid("file", e.to_string()),
        }
    }
}

/// A file name as people see it: the last path segment, printable, short.
pub fn clean_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let s: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if s.is_empty() {
        "upload.csv".into()
    } else {
        s
    }
}

/// Receives `body` into a spool file, checks it, records the import and
/// starts its run. Returns the `queued` import.
pub async fn receive<S, E>(
    st: &AppState,
    org: Uuid,
    mut body: S,
    meta: UploadMeta,
) -> Result<ImportRecord, AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut spool = Spooler::create(
        &st.imports.spool_dir,
        &Uuid::new_v4().simple().to_string(),
        st.config.import_limit_bytes,
    )?;
    while let Some(chunk) = body.next().await {
        // A chunk is small and its write lands in the page cache: inline,
        // not worth a trip to the blocking pool.
        let res = match chunk {
            Ok(c) => spool.push(&c),
            Err(e) => Err(UploadError::Cut(e.to_string())),
        };
        if let Err(e) = res {
            spool.abandon();
            return Err(e.into());
        }
    }
    // Flushing, syncing and reading the header back are blocking file work.
    let file = tokio::task::spawn_blocking(move || spool.finish())
        .await
        .map_err(|e| AppError::Internal(format!("import spool task: {e}")))??;
    if let Some(active) = st.store.active_import_of(org, &file.digest).await? {
        file.remove();
        return Err(AppError::Conflict(format!(
            "This file is already being imported (import {}, started by {}). Wait for it to finish; \
             uploading it again afterwards changes nothing.",
            active.id, active.started_by
        )));
    }
    let rec = st
        .store
        .create_import(
            org,
            &NewImport {
                file_name: meta.file_name,
                digest: file.digest.clone(),
                source: meta.source,
                total_rows: file.rows,
                ignored_columns: file.ignored_columns.clone(),
                started_by: meta.started_by,
                user_id: meta.user_id,
            },
            st.now(),
        )
        .await
        .inspect_err(|_| file.remove())?;
    tracing::info!(org = %org, import = %rec.id, rows = rec.total_rows, bytes = file.bytes, "import queued");
    st.imports.spawn(st.clone(), rec.clone(), file);
    Ok(rec)
}
