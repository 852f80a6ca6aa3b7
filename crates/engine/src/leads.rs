//! The quick actions on a lead, whichever door they come through (the
//! dashboard's forms, the profile page, the API): mark converted or lost,
//! reopen, assign to a member, tag. Each checks its input, moves the lead
//! in the store, wakes the scheduler for a new ghosting timer and tells
//! open dashboards.

use crate::bus::{Bus, BusEvent, LeadChange};
use crate::scheduler::Scheduler;
use bos_core::intent::Fired;
use bos_core::leads::Input;
use bos_store::pipeline::Lead;
use bos_store::{Store, StoreError};
use uuid::Uuid;

/// The longest tag a person can add.
pub const MAX_TAG_CHARS: usize = 40;

/// Why a lead action was refused.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    /// An input is not acceptable; the text says what to send.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One quick action, its input already checked ([`assignee`], [`clean_tag`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    MarkConverted,
    MarkLost,
    Reopen,
    /// A member's email, or `None` to unassign.
    Assign(Option<String>),
    Tag(String),
}

impl Action {
    /// The action's wire name: `mark_converted`, `assign`…
    pub fn name(&self) -> &'static str {
        match self {
            Action::MarkConverted => "mark_converted",
            Action::MarkLost => "mark_lost",
            Action::Reopen => "reopen",
            Action::Assign(_) => "assign",
            Action::Tag(_) => "tag",
        }
    }
}

/// What a quick action did: the notice code of a move, or nothing because
/// the move does not apply to the lead's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Moved(&'static str),
    Unchanged,
}

/// The fired rules, in rule order, from a lead's stored `fired` JSON.
pub fn fired_rules(v: &serde_json::Value) -> Vec<Fired> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// The tags of a lead (a JSON array of strings).
pub fn tags_of(v: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// A feed cursor, the same for the dashboard and the API: the last row's
/// `updated_at` and profile id, `ms.uuid`.
pub fn feed_cursor(l: &Lead) -> String {
    format!("{}.{}", l.updated_at, l.profile_id)
}

/// Reads a feed cursor (`ms.uuid`, or a bare `ms` for "updated before").
pub fn parse_feed_cursor(s: &str) -> Option<(Option<i64>, Option<Uuid>)> {
    match s.split_once('.') {
        Some((ms, id)) => Some((Some(ms.parse().ok()?), Some(Uuid::parse_str(id).ok()?))),
        None => Some((Some(s.parse().ok()?), None)),
    }
}

/// Checks a tag a person typed: trimmed, 1 to 40 characters, printable.
pub fn clean_tag(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("Type a tag, for example 'vip' or 'call back'.".into());
    }
    if t.chars().count() > MAX_TAG_CHARS {
        return Err(format!(
            "A tag is at most {MAX_TAG_CHARS} characters; this one has {}.",
            t.chars().count()
        ));
    }
    if t.chars().any(char::is_control) {
        return Err("A tag cannot contain control characters.".into());
    }
    Ok(t.to_string())
}

/// A tag as an action's input (a refused tag names the `tag` field).
pub fn tag(raw: &str) -> Result<Action, LeadError> {
    clean_tag(raw)
        .map(Action::Tag)
        .map_err(|detail| LeadError::Invalid {
            field: "tag",
            detail,
        })
}

/// Checks an assignee against the organization's members (by email, any
/// case): the member's stored email, or `None` for an empty one (unassign).
pub async fn assignee(store: &Store, org: Uuid, email: &str) -> Result<Option<String>, LeadError> {
    let e = email.trim();
    if e.is_empty() {
        return Ok(None);
    }
    store
        .members(org)
        .await?
        .into_iter()
        .find(|m| m.email.eq_ignore_ascii_case(e))
        .map(|m| Some(m.email))
        .ok_or_else(|| LeadError::Invalid {
            field: "assignee",
            detail: format!("'{e}' is not a member of this organization: send a member's email, or nothing to unassign."),
        })
}

/// Where a lead action reports: the scheduler (a reopened lead's new
/// ghosting timer) and the live bus (open dashboards).
pub struct LeadDeps<'a> {
    pub store: &'a Store,
    pub scheduler: &'a Scheduler,
    pub bus: &'a Bus,
}

/// Runs one action on a lead of `org` (the caller found it there) as
/// `actor` (a member's email or `api key <name>`, kept in the history).
pub async fn act(
    deps: &LeadDeps<'_>,
    org: Uuid,
    profile: Uuid,
    action: Action,
    actor: &str,
    now: i64,
) -> Result<Done, LeadError> {
    let store = deps.store;
    let state_move = |input: Input, code: &'static str| async move {
        Ok::<Done, LeadError>(
            match store
                .lead_action(org, profile, input, actor.to_string(), now)
                .await?
            {
                Some(changed) => {
                    if let Some(at) = changed.ghost_timer_at {
                        deps.scheduler.wake(at);
                    }
                    Done::Moved(code)
                }
                None => Done::Unchanged,
            },
        )
    };
    let done = match action {
        Action::MarkConverted => state_move(Input::MarkConverted, "converted").await?,
        Action::MarkLost => state_move(Input::MarkLost, "lost").await?,
        Action::Reopen => state_move(Input::Reopen, "reopened").await?,
        Action::Assign(assignee) => {
            let code = if assignee.is_some() {
                "assigned"
            } else {
                "unassigned"
            };
            store.assign_lead(org, profile, assignee, now).await?;
            Done::Moved(code)
        }
        Action::Tag(tag) => {
            store.tag_profile(org, profile, tag, now).await?;
            Done::Moved("tagged")
        }
    };
    if let Done::Moved(_) = done {
        deps.bus
            .publish(BusEvent::lead(org, profile, LeadChange::State, false));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_checked() {
        assert!(clean_tag("  ").is_err());
        assert_eq!(clean_tag(" vip ").unwrap(), "vip");
        assert!(clean_tag(&"x".repeat(41)).is_err());
        assert!(clean_tag("a\u{7}b").is_err());
    }

    #[test]
    fn cursors_read_back() {
        let id = Uuid::from_u128(7);
        assert_eq!(
            parse_feed_cursor(&format!("5.{id}")),
            Some((Some(5), Some(id)))
        );
        assert_eq!(parse_feed_cursor("5"), Some((Some(5), None)));
        assert_eq!(parse_feed_cursor("x.y"), None);
    }
}
