//! BOS storage: one `Store` that runs on embedded SQLite or on PostgreSQL.
//!
//! The seam is deliberately small. Portable SQL (lowercase, `$1`
//! placeholders, integer-millisecond times, `on conflict`, `returning`) is
//! written once and executed on whichever pool the URL chose; the only
//! engine-specific parts are connection set-up, the SQLite single writer with
//! group commit, and each engine's migrations in its own native types. See
//! `docs/decisions/0002-storage-seam.md`.
//!
//! Storage: new code speaks one dialect (decision 0017). A write is a body
//! over `sql::Db` run by `write_db!`; a write another transaction must
//! include is an `async fn f<D: Db>(db: &mut D, …)` the caller awaits
//! inside its own body. A plain read is a `sql::Q` run by
//! `sql::read_rows`. Statements are portable (`$N` parameters, `D::UUID`
//! in casts, `D::LOCK` for reads that decide a write, `D::SQLITE` where
//! the two texts must differ); columns are read by name, never position;
//! a status column parses through its type's one `as_str`/`parse` and an
//! unknown value is an error. The `read!`/`write!` sqlx macros remain for
//! existing cold repositories only.

/// Sessions, login failures, API keys.
pub mod access;
/// AI agents: the registry, heartbeats, pauses, interactions and their totals.
pub mod agents;
mod engine;
mod error;
/// Profiles, identity links, merges and the timeline (God View).
pub mod identity;
/// Importing contacts: the rows in bulk through the identity rules, and
/// the record of each run (status, progress, summary).
pub mod import;
/// The Unified Inbox: conversations, messages, read marks, search.
pub mod inbox;
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
/// Timers: keyed jobs that later events move or cancel.
mod timers;
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
