//! BOS domain types and pure business rules.
//!
//! Everything here is plain synchronous Rust over plain data: no I/O, no
//! clock, no randomness of its own (callers pass time and random bytes in).
//! That is what lets the rules carry exhaustive unit and property tests while
//! storage, HTTP and providers stay a thin shell around them.

/// Login, password, session and API-key rules.
pub mod auth;
/// Rules at the HTTP edge: safe redirect targets, client addresses behind proxies.
pub mod edge;
/// Organizations, roles, scopes and the values that name them.
pub mod tenancy;

pub use auth::{ApiKeyParts, LoginThrottle, PasswordPolicyError, ThrottleDecision};
pub use tenancy::{
    Email, InvitationState, OrgName, Role, Scope, ScopeSet, Slug, ValueError, INVITATION_TTL_MS,
};

/// Milliseconds since the Unix epoch, UTC. The one time representation shared
/// by both storage engines (a plain integer sorts and compares the same in
/// SQLite and PostgreSQL, and a test clock can move it freely).
pub type Millis = i64;
/// AI agents as workers: status with context, metrics, voice-platform reports.
pub mod agents;
/// Identity resolution: identifier kinds, normalization, rules, merge planning.
pub mod identity;
/// The Unified Inbox: conversations, priority, e-mail threading and safe HTML.
pub mod inbox;
/// Webhook and tracking intake: signature checks and payload parsing.
pub mod intake;
/// Intent classification: per-tenant rules that score and categorize events.
pub mod intent;
/// Intent rules as a settings form edits them: rows of plain conditions.
pub mod intent_form;
/// The scheduler's rules: backoff with jitter, retry or park.
pub mod jobs;
/// The lead state machine: new, engaged, ghosting, converted, lost.
pub mod leads;
/// The nudge engine: campaigns, templates, quiet hours, enrollment, attribution.
pub mod nudge;
