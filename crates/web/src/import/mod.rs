//! Contacts import over HTTP: the background runs that import uploads
//! while their pages follow along, and the path from request bytes to a
//! queued import. The driver and the spool they use live in
//! [`bos_engine::imports`], shared with `bos import`.

/// Background import runs of uploaded files, their tracking and recovery.
pub mod jobs;
/// From request bytes to a queued import with its run started.
pub mod upload;

pub use jobs::ImportJobs;
