//! The conversation model: one conversation per customer, open or resolved,
//! holding every message in and out on every channel. Each kind of value
//! here has exactly one string form (`as_str`) and one way back (`parse`),
//! used by storage, the API and the UI alike, so a value never has two
//! spellings. The transitions say what an inbound message, a resolve or a
//! reopen does to a conversation, and when it is unread for a member.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Generates the `ALL`, `as_str` and `parse` of a fieldless enum from one
/// table, so the string form and the parse cannot drift apart.
macro_rules! string_enum {
    ($name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),+
                }
            }

            /// The value a stored or submitted string names; `None` for
            /// anything else (callers answer 400, never guess).
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($s => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Whether a conversation still wants attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Resolved,
}
string_enum!(Status { Open => "open", Resolved => "resolved" });

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    /// The customer the conversation belongs to.
    Customer,
    /// A named member of the organization, writing by hand.
    Member,
    /// An AI agent acting for the organization.
    Agent,
    /// A nudge or another rule-driven send nobody typed.
    Automation,
}
string_enum!(AuthorKind {
    Customer => "customer",
    Member => "member",
    Agent => "agent",
    Automation => "automation",
});

impl AuthorKind {
    /// Which way a message by this author travels: only the customer writes in.
    pub fn direction(self) -> Direction {
        match self {
            AuthorKind::Customer => Direction::Inbound,
            _ => Direction::Outbound,
        }
    }

    /// Whether this author counts as AI for the inbox's "AI vs human" filter.
    pub fn is_ai(self) -> bool {
        matches!(self, AuthorKind::Agent)
    }
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}
string_enum!(Direction { Inbound => "inbound", Outbound => "outbound" });

/// The channels a conversation's messages travel on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Email,
    Instagram,
    Facebook,
    /// A form submitted on the organization's site: it arrives, but cannot
    /// be answered on the same channel.
    Form,
    /// A phone call an AI voice agent (Vapi, Retell) took: its transcript,
    /// turn by turn. What was said cannot be answered on the same channel.
    Voice,
}
string_enum!(Channel {
    Sms => "sms",
    Email => "email",
    Instagram => "instagram",
    Facebook => "facebook",
    Form => "form",
    Voice => "voice",
});

impl Channel {
    /// Whether a reply can go out on this channel.
    pub fn can_reply(self) -> bool {
        !matches!(self, Channel::Form | Channel::Voice)
    }

    /// Whether the provider only accepts replies within a window after the
    /// customer's last message (see [`crate::inbox::window`]).
    pub fn has_messaging_window(self) -> bool {
        matches!(self, Channel::Instagram | Channel::Facebook)
    }

    /// The label the UI shows.
    pub fn label(self) -> &'static str {
        match self {
            Channel::Sms => "SMS",
            Channel::Email => "E-mail",
            Channel::Instagram => "Instagram",
            Channel::Facebook => "Facebook",
            Channel::Form => "Form",
            Channel::Voice => "Voice",
        }
    }
}

/// Where a message is in its delivery. Inbound messages are `Received`;
/// outbound ones start `Pending` (written before the provider is called)
/// and move forward only, since provider callbacks arrive out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Received,
    /// Written, provider not yet answered.
    Pending,
    /// The provider accepted it.
    Sent,
    Delivered,
    Read,
    /// The provider refused it, or it bounced.
    Failed,
    /// The request went out but no answer came back: it may have been
    /// delivered, so it is never sent again.
    Unknown,
}
string_enum!(DeliveryStatus {
    Received => "received",
    Pending => "pending",
    Sent => "sent",
    Delivered => "delivered",
    Read => "read",
    Failed => "failed",
    Unknown => "unknown",
});

impl DeliveryStatus {
    /// How far along the lifecycle a status is. `Failed` and `Unknown` sit
    /// beside `Sent`: a later delivery or read receipt proves the message
    /// arrived after all, so it may still move them forward.
    fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Received => 0,
            DeliveryStatus::Pending => 1,
            DeliveryStatus::Sent | DeliveryStatus::Failed | DeliveryStatus::Unknown => 2,
            DeliveryStatus::Delivered => 3,
            DeliveryStatus::Read => 4,
        }
    }

    /// Whether a report of `next` may replace `self`: only forward moves,
    /// plus `Pending` settling into any outcome. A late `sent` never
    /// overwrites `delivered`, and an inbound message keeps `received`.
    pub fn may_become(self, next: DeliveryStatus) -> bool {
        if self == DeliveryStatus::Received || next == DeliveryStatus::Received {
            return false;
        }
        next.rank() > self.rank()
    }
}

/// Something that happens to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadEvent {
    /// The customer wrote: a resolved conversation reopens rather than a
    /// second conversation starting.
    Inbound,
    /// We wrote: the status stays as it is (answering does not resolve).
    Outbound,
    /// A member marks it done.
    Resolve,
    /// A member opens it again.
    Reopen,
}

/// Why a member's action does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the conversation is already resolved")]
    AlreadyResolved,
    #[error("the conversation is already open")]
    AlreadyOpen,
}

/// The status after `event`. Inbound and outbound messages always apply;
/// resolving a resolved conversation or reopening an open one is refused,
/// so two members acting at once learn that the other was first.
pub fn transition(current: Status, event: ThreadEvent) -> Result<Status, TransitionError> {
    match (current, event) {
        (_, ThreadEvent::Inbound) => Ok(Status::Open),
        (s, ThreadEvent::Outbound) => Ok(s),
        (Status::Open, ThreadEvent::Resolve) => Ok(Status::Resolved),
        (Status::Resolved, ThreadEvent::Resolve) => Err(TransitionError::AlreadyResolved),
        (Status::Resolved, ThreadEvent::Reopen) => Ok(Status::Open),
        (Status::Open, ThreadEvent::Reopen) => Err(TransitionError::AlreadyOpen),
    }
}

/// Whether a conversation is unread for one member: the customer wrote after
/// the member last read it. Our own replies never make a thread unread (the
/// customer's words are what needs reading), and a member who never opened
/// it has unread messages as soon as the customer wrote once.
pub fn is_unread(last_inbound_at: Option<Millis>, read_at: Option<Millis>) -> bool {
    match (last_inbound_at, read_at) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(inbound), Some(read)) => inbound > read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_string_form_parses_back() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(*s));
        }
        for a in AuthorKind::ALL {
            assert_eq!(AuthorKind::parse(a.as_str()), Some(*a));
        }
        for d in Direction::ALL {
            assert_eq!(Direction::parse(d.as_str()), Some(*d));
        }
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(*c));
        }
        for d in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(d.as_str()), Some(*d));
        }
        assert_eq!(Channel::parse("SMS"), None);
        assert_eq!(Channel::parse(""), None);
        assert_eq!(Status::parse("closed"), None);
    }

    #[test]
    fn serde_uses_the_same_strings() {
        for c in Channel::ALL {
            assert_eq!(
                serde_json::to_string(c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        for d in DeliveryStatus::ALL {
            assert_eq!(
                serde_json::to_string(d).unwrap(),
                format!("\"{}\"", d.as_str())
            );
        }
    }

    #[test]
    fn an_inbound_message_reopens_a_resolved_conversation() {
        assert_eq!(
            transition(Status::Resolved, ThreadEvent::Inbound),
            Ok(Status::Open)
        );
        assert_eq!(
            transition(Status::Open, ThreadEvent::Inbound),
            Ok(Status::Open)
        );
    }

    #[test]
    fn replying_does_not_change_the_status() {
        assert_eq!(
            transition(Status::Resolved, ThreadEvent::Outbound),
            Ok(Status::Resolved)
        );
        assert_eq!(
            transition(Status::Open, ThreadEvent::Outbound),
            Ok(Status::Open)
        );
    }

    #[test]
    fn resolve_and_reopen_refuse_a_no_op() {
        assert_eq!(
            transition(Status::Open, ThreadEvent::Resolve),
            Ok(Status::Resolved)
        );
        assert_eq!(
            transition(Status::Resolved, ThreadEvent::Resolve),
            Err(TransitionError::AlreadyResolved)
        );
        assert_eq!(
            transition(Status::Resolved, ThreadEvent::Reopen),
            Ok(Status::Open)
        );
        assert_eq!(
            transition(Status::Open, ThreadEvent::Reopen),
            Err(TransitionError::AlreadyOpen)
        );
    }

    #[test]
    fn unread_compares_the_last_inbound_with_the_read_mark() {
        assert!(!is_unread(None, None));
        assert!(!is_unread(None, Some(5)));
        assert!(is_unread(Some(5), None));
        assert!(is_unread(Some(6), Some(5)));
        assert!(!is_unread(Some(5), Some(5)));
        assert!(!is_unread(Some(4), Some(5)));
    }

    #[test]
    fn authors_and_directions_agree() {
        assert_eq!(AuthorKind::Customer.direction(), Direction::Inbound);
        for a in [
            AuthorKind::Member,
            AuthorKind::Agent,
            AuthorKind::Automation,
        ] {
            assert_eq!(a.direction(), Direction::Outbound);
        }
        assert!(AuthorKind::Agent.is_ai());
        assert!(!AuthorKind::Member.is_ai());
        assert!(!Channel::Form.can_reply());
        assert!(!Channel::Voice.can_reply());
        assert!(Channel::Instagram.has_messaging_window());
        assert!(!Channel::Email.has_messaging_window());
    }

    #[test]
    fn delivery_status_moves_forward_only() {
        use DeliveryStatus::*;
        assert!(Pending.may_become(Sent));
        assert!(Pending.may_become(Failed));
        assert!(Pending.may_become(Unknown));
        assert!(Sent.may_become(Delivered));
        assert!(Delivered.may_become(Read));
        assert!(Unknown.may_become(Delivered));
        assert!(!Delivered.may_become(Sent));
        assert!(!Read.may_become(Delivered));
        assert!(!Sent.may_become(Pending));
        assert!(!Sent.may_become(Failed));
        assert!(!Received.may_become(Read));
        assert!(!Pending.may_become(Received));
    }

    fn any_status() -> impl Strategy<Value = DeliveryStatus> {
        proptest::sample::select(DeliveryStatus::ALL.to_vec())
    }

    fn any_event() -> impl Strategy<Value = ThreadEvent> {
        proptest::sample::select(vec![
            ThreadEvent::Inbound,
            ThreadEvent::Outbound,
            ThreadEvent::Resolve,
            ThreadEvent::Reopen,
        ])
    }

    proptest! {
        /// Applying any order of callbacks that are allowed never moves a
        /// status backwards: the same reports in any order end no earlier.
        #[test]
        fn delivery_never_moves_backwards(reports in proptest::collection::vec(any_status(), 0..12)) {
            let mut s = DeliveryStatus::Pending;
            for r in reports {
                if s.may_become(r) {
                    prop_assert!(r.rank() > s.rank());
                    s = r;
                }
            }
        }

        /// Whatever happened before, the customer writing leaves the
        /// conversation open, and a refused action changes nothing.
        #[test]
        fn inbound_always_ends_open(events in proptest::collection::vec(any_event(), 0..20)) {
            let mut s = Status::Open;
            for e in events {
                if let Ok(next) = transition(s, e) {
                    s = next;
                }
            }
            prop_assert_eq!(transition(s, ThreadEvent::Inbound), Ok(Status::Open));
        }

        #[test]
        fn unread_iff_customer_wrote_after_reading(inbound in proptest::option::of(0i64..1000), read in proptest::option::of(0i64..1000)) {
            let expected = match (inbound, read) {
                (Some(i), Some(r)) => i > r,
                (Some(_), None) => true,
                (None, _) => false,
            };
            prop_assert_eq!(is_unread(inbound, read), expected);
        }
    }
}
