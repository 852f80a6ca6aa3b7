//! When a person at the business is talking with a customer, automated
//! nudges to that customer hold back: a nudge landing in the middle of a
//! human conversation reads as if nobody is listening. This module owns
//! the rule that says whether a customer's conversation is such a human
//! conversation in progress, and until when the customer's nudges wait.
//! (A customer's own reply ends their sequences outright; that rule lives
//! with the nudge engine's events.)

use crate::inbox::model::Status;
use crate::Millis;

/// How long a member's reply keeps the customer's nudges waiting: long
/// enough for the customer to answer a person (a day and a night, in any
/// time zone), short enough that a conversation left open and forgotten
/// does not silence the customer's sequence for good.
pub const MEMBER_REPLY_HOLD_MS: Millis = 48 * 60 * 60 * 1000;

/// How often a nudge held by an assigned conversation looks again: the
/// conversation has no end time of its own, it ends when a member resolves
/// or unassigns it.
pub const ASSIGNED_RECHECK_MS: Millis = 60 * 60 * 1000;

/// What the rule needs to know about the customer's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanActivity {
    pub status: Status,
    /// Assigned to a member of the organization (agents do not count: an
    /// AI agent's conversation is automation too).
    pub assigned_to_member: bool,
    /// When a member last replied in this conversation.
    pub last_member_reply_at: Option<Millis>,
}

/// `Some(t)`: a human conversation is in progress, the customer's next
/// nudge waits and the question is asked again at `t` (> `now`). `None`:
/// nudges go on (no conversation, a resolved one, or an open one nobody
/// at the business has taken up).
pub fn nudges_held_until(conversation: Option<&HumanActivity>, now: Millis) -> Option<Millis> {
    let c = conversation?;
    if c.status == Status::Resolved {
        return None;
    }
    let by_reply = c
        .last_member_reply_at
        .map(|at| at.saturating_add(MEMBER_REPLY_HOLD_MS))
        .filter(|until| *until > now);
    let by_assignment = c
        .assigned_to_member
        .then(|| now.saturating_add(ASSIGNED_RECHECK_MS));
    by_reply.max(by_assignment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: Millis = 1_800_000_000_000;

    fn open(assigned: bool, reply: Option<Millis>) -> HumanActivity {
        HumanActivity {
            status: Status::Open,
            assigned_to_member: assigned,
            last_member_reply_at: reply,
        }
    }

    #[test]
    fn no_conversation_or_nobody_on_it_sends() {
        assert_eq!(nudges_held_until(None, NOW), None);
        assert_eq!(nudges_held_until(Some(&open(false, None)), NOW), None);
    }

    #[test]
    fn a_recent_member_reply_holds_until_the_hold_ends() {
        let at = NOW - 60_000;
        assert_eq!(
            nudges_held_until(Some(&open(false, Some(at))), NOW),
            Some(at + MEMBER_REPLY_HOLD_MS)
        );
    }

    #[test]
    fn an_old_member_reply_no_longer_holds() {
        let at = NOW - MEMBER_REPLY_HOLD_MS;
        assert_eq!(nudges_held_until(Some(&open(false, Some(at))), NOW), None);
    }

    #[test]
    fn an_assigned_open_conversation_holds_and_looks_again() {
        assert_eq!(
            nudges_held_until(Some(&open(true, None)), NOW),
            Some(NOW + ASSIGNED_RECHECK_MS)
        );
        // A fresh reply holds longer than the recheck: the later one wins.
        assert_eq!(
            nudges_held_until(Some(&open(true, Some(NOW))), NOW),
            Some(NOW + MEMBER_REPLY_HOLD_MS)
        );
    }

    #[test]
    fn a_resolved_conversation_never_holds() {
        let c = HumanActivity {
            status: Status::Resolved,
            assigned_to_member: true,
            last_member_reply_at: Some(NOW),
        };
        assert_eq!(nudges_held_until(Some(&c), NOW), None);
    }

    proptest! {
        /// A hold is always in the future (a step never waits for a time
        /// already past, which would spin), and never longer than the
        /// longer of the two holds.
        #[test]
        fn a_hold_is_in_the_future_and_bounded(
            assigned in any::<bool>(),
            ago in proptest::option::of(-MEMBER_REPLY_HOLD_MS..3 * MEMBER_REPLY_HOLD_MS),
            resolved in any::<bool>(),
        ) {
            let c = HumanActivity {
                status: if resolved { Status::Resolved } else { Status::Open },
                assigned_to_member: assigned,
                last_member_reply_at: ago.map(|a| NOW - a),
            };
            if let Some(until) = nudges_held_until(Some(&c), NOW) {
                prop_assert!(until > NOW);
                prop_assert!(!resolved);
                prop_assert!(until <= NOW + MEMBER_REPLY_HOLD_MS.max(ASSIGNED_RECHECK_MS) + MEMBER_REPLY_HOLD_MS);
            } else {
                prop_assert!(resolved || (!assigned && ago.is_none_or(|a| a >= MEMBER_REPLY_HOLD_MS)));
            }
        }
    }
}
