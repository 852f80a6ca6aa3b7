//! Contacts import, shared by `bos import` and the uploads in the UI and the
//! API: the driver that takes a CSV through the identity rules batch by
//! batch, the spool that receives an upload into a temporary file, and the
//! background runs of uploaded files. No HTTP here: the web layer hands the
//! request's bytes to [`ImportRuns::receive`] and renders the result; the
//! CLI runs the driver over a file.

/// CSV → batches → `Store::import_rows`, with counts and rejections.
pub mod driver;
/// Uploaded files imported in the background: progress, heartbeat,
/// sweep of interrupted runs.
pub mod runs;
/// An upload streamed to a temporary file: digest, row count, checks.
pub mod spool;

pub use driver::{ImportError, Importer, Step, Warning, DEFAULT_BATCH};
pub use runs::{ImportRuns, RunError, UploadMeta};
pub use spool::{Spooled, Spooler, UploadError};
