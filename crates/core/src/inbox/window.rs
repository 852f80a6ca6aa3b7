//! The messaging window of Instagram and Facebook Messenger: a business may
//! answer a customer freely for 24 hours after the customer's last message;
//! after that the platform refuses the send. Knowing it before calling the
//! provider lets the composer say so instead of failing after the fact.
//! Other channels have no such window.

use crate::inbox::model::Channel;
use crate::Millis;

/// 24 hours: how long after the customer's last message a reply may go out.
pub const MESSAGING_WINDOW_MS: Millis = 24 * 60 * 60 * 1000;

/// Whether a reply may be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyWindow {
    /// The channel has no window: reply any time.
    Always,
    /// Open until `closes_at`.
    Open { closes_at: Millis },
    /// Closed; `reason` is the sentence the composer shows.
    Closed { reason: String },
}

impl ReplyWindow {
    pub fn can_send(&self) -> bool {
        !matches!(self, ReplyWindow::Closed { .. })
    }
}

/// Whether a reply on `channel` may go out at `now`, given when the
/// customer last wrote to us (on that channel).
pub fn reply_window(channel: Channel, last_inbound_at: Option<Millis>, now: Millis) -> ReplyWindow {
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
    let hours = (now.saturating_sub(last)) / (60 * 60 * 1000);
    ReplyWindow::Closed {
        reason: format!(
            "{name} only allows replies within 24 hours of the customer's last message; \
             their last message was {hours} hours ago. Reply on another channel, or wait \
             until they write again."
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
            assert_eq!(reply_window(c, None, 0), ReplyWindow::Always);
        }
    }

    #[test]
    fn open_for_24_hours_after_the_last_message() {
        let w = reply_window(Channel::Instagram, Some(1_000), 1_000 + 23 * H);
        assert_eq!(
            w,
            ReplyWindow::Open {
                closes_at: 1_000 + 24 * H
            }
        );
        assert!(w.can_send());
        let closed = reply_window(Channel::Facebook, Some(0), 24 * H);
        assert!(!closed.can_send());
        match closed {
            ReplyWindow::Closed { reason } => {
                assert!(reason.contains("Facebook"), "{reason}");
                assert!(reason.contains("24 hours ago"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn closed_until_the_customer_writes_first() {
        let w = reply_window(Channel::Instagram, None, 0);
        assert!(!w.can_send());
    }

    proptest! {
        #[test]
        fn open_exactly_inside_the_window(last in 0i64..1_000_000_000_000, after in 0i64..(3 * MESSAGING_WINDOW_MS)) {
            let w = reply_window(Channel::Instagram, Some(last), last + after);
            prop_assert_eq!(w.can_send(), after < MESSAGING_WINDOW_MS);
        }

        #[test]
        fn extreme_times_do_not_overflow(last in any::<i64>(), now in any::<i64>()) {
            let _ = reply_window(Channel::Facebook, Some(last), now);
        }
    }
}
