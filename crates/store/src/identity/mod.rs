//! The God View store: profiles, identity links, merges and the journey
//! timeline, and the transactional application of a merge plan.
//!
//! Merges never move rows. Every profile, link and timeline entry keeps the
//! profile it was first recorded on (`profile_id`) and carries the root of
//! its cluster (`root_id`); a merge rewrites `root_id` from the absorbed
//! cluster to the survivor, and an unmerge rewrites it back for exactly the
//! absorbed profile's subtree. That is what makes every merge reversible
//! with both profiles' events intact, and lets old ids keep resolving.
//!
//!
//! The transactional bodies are written once over `sql::Db` for both
//! engines (the only difference is the row lock, `D::LOCK`, which SQLite's
//! single writer does not need). The rooms: `resolve` (one event's
//! identifiers to a profile), `merge` (merge, unmerge, erase), `fields`
//! (the profile fields a resolution or merge decides), `read` (profiles,
//! links, merges, the timeline, lists and the export), `rules` (the
//! tenant's identity rules and bulk seeding).

mod fields;
mod merge;
mod read;
mod resolve;
mod rules;

pub(crate) use merge::merge_tx;
pub(crate) use resolve::{identify_tx, insert_entry, resolve_tx};

use bos_core::identity::{Dropped, Identifier};
use serde::Serialize;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Profile {
    pub id: Uuid,
    pub root_id: Uuid,
    pub merged_into: Option<Uuid>,
    pub first_name: String,
    pub last_name: String,
    pub display_name: String,
    pub company: String,
    pub primary_email: String,
    pub primary_phone: String,
    pub ltv_cents: i64,
    pub order_count: i64,
    pub currency: String,
    pub last_active_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub status: String,
    pub lead_state: String,
    pub tags: String,
    pub traits: String,
}

impl Profile {
    /// The lowercase name the customers list sorts and searches by.
    pub fn name_lc(&self) -> String {
        self.display_name.to_lowercase()
    }
}

/// The profile columns qualified by a table alias (`p.id, p.root_id, …`).
pub(crate) fn profile_cols(alias: &str) -> String {
    PROFILE_COLS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const PROFILE_COLS: &str = "id, root_id, merged_into, first_name, last_name, display_name, company, primary_email, \
    primary_phone, ltv_cents, order_count, currency, last_active_at, created_at, updated_at, status, lead_state, tags, traits";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct IdentityLink {
    pub kind: String,
    pub value: String,
    pub profile_id: Uuid,
    pub root_id: Uuid,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MergeRecord {
    pub id: Uuid,
    pub survivor_id: Uuid,
    pub absorbed_id: Uuid,
    pub via_kind: String,
    pub via_value: String,
    pub event_key: Option<String>,
    pub reason: String,
    pub actor: String,
    pub created_at: i64,
    pub undone_at: Option<i64>,
    pub undone_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TimelineEntry {
    pub id: Uuid,
    pub profile_id: Uuid,
    pub root_id: Uuid,
    pub occurred_at: i64,
    pub kind: String,
    pub source: String,
    pub summary: String,
    pub data: String,
}

/// Profile fields an event may carry. Empty means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traits {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    /// Custom traits laid over the profile's (`bos_core::identity::traits`):
    /// given names win, the rest stay.
    pub custom: BTreeMap<String, serde_json::Value>,
}

/// A touchpoint to put on the timeline together with the resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: String,
    pub summary: String,
    pub occurred_at: i64,
    /// JSON object with the event's details.
    pub data: String,
    /// Idempotency key: the same key twice is a replay and changes nothing.
    pub key: Option<String>,
    /// Revenue this event adds to lifetime value (a purchase), in cents.
    pub revenue_cents: i64,
    pub is_order: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyInput {
    /// Normalized identifiers, at least one not blocklisted.
    pub identifiers: Vec<Identifier>,
    pub traits: Traits,
    /// Where the identifiers came from (`api`, `import`, `shopify`, …).
    pub source: String,
    pub event: Option<NewEvent>,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifyAction {
    Created,
    Attached,
    Merged,
    /// The event's key was seen before: nothing changed.
    Replayed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentifyOutcome {
    pub profile_id: Uuid,
    pub action: IdentifyAction,
    /// Profiles absorbed into `profile_id`, with the identifier that joined each.
    pub merged: Vec<(Uuid, Identifier)>,
    pub linked: Vec<Identifier>,
    pub dropped: Vec<Dropped>,
}

/// Sort orders of the customers list (an allowlist: never raw SQL from input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileSort {
    LastActive,
    Ltv,
    Created,
    Name,
}

impl ProfileSort {
    pub fn parse(s: &str) -> Option<ProfileSort> {
        Some(match s {
            "last_active" | "" => ProfileSort::LastActive,
            "ltv" => ProfileSort::Ltv,
            "created" => ProfileSort::Created,
            "name" => ProfileSort::Name,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileSort::LastActive => "last_active",
            ProfileSort::Ltv => "ltv",
            ProfileSort::Created => "created",
            ProfileSort::Name => "name",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProfileQuery {
    /// Name prefix, e-mail prefix (contains `@`), or phone digits.
    pub q: String,
    pub sort: Option<ProfileSort>,
    /// Keyset cursor: the last row of the previous page.
    pub after: Option<(i64, String, Uuid)>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct TimelineQuery {
    pub kinds: Vec<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Keyset cursor: (occurred_at, id) of the last entry seen.
    pub before: Option<(i64, Uuid)>,
    pub limit: u32,
}

/// What one customer's export holds.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileExport {
    pub profile: Profile,
    pub members: Vec<Profile>,
    pub identities: Vec<IdentityLink>,
    pub merges: Vec<MergeRecord>,
    pub timeline: Vec<TimelineEntry>,
}

pub(crate) fn display_name(first: &str, last: &str, email: &str, phone: &str) -> String {
    let n = format!("{} {}", first.trim(), last.trim())
        .trim()
        .to_string();
    if !n.is_empty() {
        n
    } else if !email.is_empty() {
        email.to_string()
    } else {
        phone.to_string()
    }
}

/// The normalized name + company used to suggest duplicates.
pub fn name_key(first: &str, last: &str, company: &str) -> String {
    let name = format!("{} {}", first.trim(), last.trim())
        .trim()
        .to_lowercase();
    if name.is_empty() || !name.contains(' ') {
        return String::new();
    }
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    format!("{}|{}", norm(&name), norm(company))
}
