//! Contacts import, shared by `bos import` and the uploads in the UI and the
//! API: the driver that takes a CSV through the identity rules batch by
//! batch, and the spool that receives an upload into a temporary file. No
//! HTTP here: the web layer streams request bytes into the spool and runs
//! the driver in the background; the CLI runs the driver over a file.

/// CSV → batches → `Store::import_rows`, with counts and rejections.
pub mod driver;
/// An upload streamed to a temporary file: digest, row count, checks.
pub mod spool;

pub use driver::{ImportError, Importer, Step, Warning, DEFAULT_BATCH};
pub use spool::{Spooled, Spooler, UploadError};
