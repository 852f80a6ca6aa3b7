//! Contacts import, shared by `bos import`, the upload page and
//! the API: the driver that takes a CSV through the identity rules batch by
//! batch, the spool that receives an upload, and the background runs that
//! import uploads while their pages follow along.

/// CSV → batches → `Store::import_rows`, with counts and rejections.
pub mod driver;
/// Background import runs of uploaded files, their tracking and recovery.
pub mod jobs;
/// An upload streamed to a temporary file: digest, row count, checks.
pub mod spool;
/// From request bytes to a queued import with its run started.
pub mod upload;

pub use driver::{ImportError, Importer, Step, Warning, DEFAULT_BATCH};
pub use jobs::ImportJobs;
