//! BOS storage: one `Store` that runs on embedded SQLite or on PostgreSQL.
//!
//! The seam is deliberately small. Portable SQL (lowercase, `$1`
//! placeholders, integer-millisecond times, `on conflict`, `returning`) is
//! written once and executed on whichever pool the URL chose; the only
//! engine-specific parts are connection set-up, the SQLite single writer with
//! group commit, and each engine's migrations in its own native types. See
//! `docs/decisions/0002-storage-seam.md`.

/// Sessions, login failures, API keys.
pub mod access;
mod engine;
mod error;
/// Profiles, identity links, merges and the timeline (God View).
pub mod identity;
/// Bulk import of contacts through the identity rules.
pub mod import;
/// Import runs from the UI and API: status, progress, summary.
pub mod imports;
/// Intake sources and the raw inbound events, stored before the 2xx.
pub mod intake;
/// Invitations to join an organization, accepted by the invited person.
pub mod invitations;
/// The durable job table of the scheduler: schedule, claim, finish, reclaim.
pub mod jobs;
/// Live notifications between server processes (PostgreSQL `NOTIFY`/`LISTEN`).
pub mod live;
mod migrate;
/// The nudge engine's storage: enrollments, sends, tracking, opt-outs,
/// campaigns and their figures (one module per concern inside).
pub mod nudge;
/// Campaigns, stats, outbox, previews and nudge settings for the UI and
/// API: the older path of what [`nudge`] exports.
pub use nudge as nudge_admin;
/// Channel settings with their webhook keys, opt-out reads.
pub mod nudge_hooks;
/// The intake pipeline: the event queue, leads, lead history, checkouts.
pub mod pipeline;
/// Provider secrets sealed at rest (ChaCha20-Poly1305, keyed and rotatable).
pub mod secrets;
mod sql;
/// Organizations, users, memberships.
pub mod tenancy;
/// Fresh stores for tests: a temp SQLite file, or a new PostgreSQL database.
pub mod testing;
mod writer;

pub use access::{ApiKey, SessionRecord};
pub use engine::{redact as redact_url, EngineKind, Store, StoreOptions};
pub use error::StoreError;
pub use tenancy::{Member, Org, OrgMembership, User};

use uuid::Uuid;

/// A new time-ordered id (UUIDv7): index-friendly on both engines.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}
