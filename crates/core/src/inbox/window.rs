//! The messaging window of Instagram and Facebook Messenger: a business may
//! answer a customer freely for 24 hours after the customer's last message;
//! after that only a reply written by a person may go out, for 7 days,
//! marked with Meta's `HUMAN_AGENT` message tag; later still the platform
//! refuses every send. Knowing it before calling the provider lets the
//! composer say so instead of failing after the fact. Other channels have
//! no such window.

use crate::inbox::model::Channel;
use crate::Millis;

/// 24 hours: how long after the customer's last message a reply may go out.
pub const MESSAGING_WINDOW_MS: Millis = 24 * 60 * 60 * 1000;

/// 7 days: how long after the customer's last message a person (not an
/// automation or an integration) may still answer with Meta's
/// `HUMAN_AGENT` tag.
pub const HUMAN_AGENT_WINDOW_MS: Millis = 7 * MESSAGING_WINDOW_MS;

/// Whether a reply may be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyWindow {
    /// The channel has no window: reply any time.
    Always,
    /// Open until `closes_at`.
    Open { closes_at: Millis },
    /// Past the 24 hours, open to a person until `closes_at`: the reply
    /// goes out with Meta's `HUMAN_AGENT` tag.
    HumanAgent { closes_at: Millis },
    /// Closed; `reason` is the sentence the composer shows.
    Closed { reason: String },
}

impl ReplyWindow {
    pub fn can_send(&self) -> bool {
        !matches!(self, ReplyWindow::Closed { .. })
    }
}

/// "27 hours", "3 days": how long ago, in the unit a person would use.
fn ago(ms: Millis) -> String {
    let hours = ms / (60 * 60 * 1000);
    if hours < 48 {
        format!("{hours} hours")
    } else {
        format!("{} days", hours / 24)
    }
}

/// Whether a reply on `channel` may go out at `now`, given when the
/// customer last wrote to us (on that channel) and whether a person
/// (`human`) writes it.
pub fn reply_window(
    channel: Channel,
    last_inbound_at: Option<Millis>,
    now: Millis,
    human: bool,
) -> ReplyWindow {
    if !channel.has_messaging_window() {
        return ReplyWindow::Always;
    }
    let name = channel.label();
    let Some(last) = last_inbound_at else {
        return ReplyWindow::Closed {
            reason: format!(
                "{name} only allows replies after the customer has written to you there; \
                 they have not yet."
            ),
        };
    };
    let closes_at = last.saturating_add(MESSAGING_WINDOW_MS);
    if now < closes_at {
        return ReplyWindow::Open { closes_at };
    }
    let since = ago(now.saturating_sub(last));
    let human_closes_at = last.saturating_add(HUMAN_AGENT_WINDOW_MS);
    if now < human_closes_at {
        if human {
            return ReplyWindow::HumanAgent {
                closes_at: human_closes_at,
            };
        }
        return ReplyWindow::Closed {
            reason: format!(
                "{name} only allows automated replies within 24 hours of the customer's last \
                 message; their last message was {since} ago. A member can still answer from \
                 the inbox for 7 days."
            ),
        };
    }
    ReplyWindow::Closed {
        reason: format!(
            "{name} only allows replies within 24 hours of the customer's last message, or 7 \
             days for a person answering; their last message was {since} ago. Reply on \
             another channel, or wait until they write again."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: Millis = 60 * 60 * 1000;

    #[test]
    fn other_channels_have_no_window() {
        for c in [Channel::Sms, Channel::Email, Channel::Form] {
            assert_eq!(reply_window(c, None, 0, false), ReplyWindow::Always);
        }
    }

    #[test]
    fn open_for_24_hours_after_the_last_message() {
        let w = reply_window(Channel::Instagram, Some(1_000), 1_000 + 23 * H, false);
        assert_eq!(
            w,
            ReplyWindow::Open {
                closes_at: 1_000 + 24 * H
            }
        );
        assert!(w.can_send());
        let closed = reply_window(Channel::Facebook, Some(0), 24 * H, false);
        assert!(!closed.can_send());
        match closed {
            ReplyWindow::Closed { reason } => {
                assert!(reason.contains("Facebook"), "{reason}");
                assert!(reason.contains("24 hours ago"), "{reason}");
                assert!(reason.contains("member can still answer"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_person_may_answer_for_7_days_with_the_human_agent_tag() {
        assert_eq!(
            reply_window(Channel::Instagram, Some(0), 27 * H, true),
            ReplyWindow::HumanAgent {
                closes_at: 7 * 24 * H
            }
        );
        // Inside 24 hours a person's reply needs no tag.
        assert!(matches!(
            reply_window(Channel::Facebook, Some(0), 2 * H, true),
            ReplyWindow::Open { .. }
        ));
        match reply_window(Channel::Facebook, Some(0), 8 * 24 * H, true) {
            ReplyWindow::Closed { reason } => {
                assert!(reason.contains("7 days"), "{reason}");
                assert!(reason.contains("8 days ago"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn closed_until_the_customer_writes_first() {
        let w = reply_window(Channel::Instagram, None, 0, true);
        assert!(!w.can_send());
    }

    proptest! {
        #[test]
        fn open_exactly_inside_the_window(
            last in 0i64..1_000_000_000_000,
            after in 0i64..(3 * HUMAN_AGENT_WINDOW_MS),
            human in any::<bool>(),
        ) {
            let w = reply_window(Channel::Instagram, Some(last), last + after, human);
            let limit = if human { HUMAN_AGENT_WINDOW_MS } else { MESSAGING_WINDOW_MS };
            prop_assert_eq!(w.can_send(), after < limit);
            // The tag is used exactly past the 24 hours.
            prop_assert_eq!(
                matches!(w, ReplyWindow::HumanAgent { .. }),
                human && (MESSAGING_WINDOW_MS..HUMAN_AGENT_WINDOW_MS).contains(&after)
            );
        }

        #[test]
        fn extreme_times_do_not_overflow(last in any::<i64>(), now in any::<i64>(), human in any::<bool>()) {
            let _ = reply_window(Channel::Facebook, Some(last), now, human);
        }
    }
}
