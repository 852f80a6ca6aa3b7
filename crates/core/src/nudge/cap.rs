//! The frequency cap: at most so many messages per customer per channel
//! in any 24 hours, across every campaign of the organization. A step that
//! would go over the cap is moved later, never dropped; when two campaigns
//! want the same customer at once, the higher priority goes first and the
//! other waits.

use serde::{Deserialize, Serialize};

use super::campaign::{Channel, DAY_MS, MINUTE_MS};
use crate::Millis;

/// The window the cap counts over.
pub const CAP_WINDOW_MS: Millis = DAY_MS;

/// The most messages a cap may allow per day; more is no cap at all.
pub const MAX_CAP_PER_DAY: u32 = 50;

/// How soon a step held back for a higher-priority campaign looks again:
/// long enough for that campaign's send to be committed, short enough that
/// the wait is not noticed when the cap leaves room for both.
pub const PRIORITY_RECHECK_MS: Millis = MINUTE_MS;

/// Per organization: messages per customer per channel per 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrequencyCap {
    pub email_per_day: u32,
    pub sms_per_day: u32,
}

impl Default for FrequencyCap {
    /// Two e-mails and one text a day: a reminder and its follow-up can go
    /// out the same day by e-mail, while texts, which interrupt, stay rare.
    fn default() -> Self {
        FrequencyCap {
            email_per_day: 2,
            sms_per_day: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    #[error("the {channel} cap is {value} a day; use from 1 to {MAX_CAP_PER_DAY}")]
    OutOfRange { channel: &'static str, value: u32 },
}

impl FrequencyCap {
    pub fn limit(&self, channel: Channel) -> u32 {
        match channel.medium() {
            Channel::Sms => self.sms_per_day,
            _ => self.email_per_day,
        }
    }

    pub fn validate(&self) -> Result<(), CapError> {
        for (channel, value) in [("e-mail", self.email_per_day), ("SMS", self.sms_per_day)] {
            if !(1..=MAX_CAP_PER_DAY).contains(&value) {
                return Err(CapError::OutOfRange { channel, value });
            }
        }
        Ok(())
    }
}

/// What the sender knows about a customer's recent messages on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recent {
    /// Messages on the channel in the last [`CAP_WINDOW_MS`].
    pub sent: u32,
    /// The oldest of them, when there are any.
    pub oldest_at: Option<Millis>,
    /// Steps of higher-priority campaigns due for this customer now, which
    /// go first.
    pub ahead: u32,
}

/// When a step that may go at `now` must wait for the cap: `None` to send
/// now, else the time to look again. Over the cap, that is when the oldest
/// counted message leaves the window; with only higher-priority steps in
/// the way, shortly (they are sent by then, and counted).
pub fn cap_wait(limit: u32, recent: Recent, now: Millis) -> Option<Millis> {
    if recent.sent >= limit.max(1) {
        let freed = recent
            .oldest_at
            .map_or(now, |t| t.saturating_add(CAP_WINDOW_MS));
        return Some(freed.max(now.saturating_add(PRIORITY_RECHECK_MS)));
    }
    if recent.sent.saturating_add(recent.ahead) >= limit.max(1) {
        return Some(now.saturating_add(PRIORITY_RECHECK_MS));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn under_the_cap_sends_now() {
        assert_eq!(cap_wait(2, Recent::default(), 5), None);
        let one = Recent {
            sent: 1,
            oldest_at: Some(0),
            ahead: 0,
        };
        assert_eq!(cap_wait(2, one, 5), None);
    }

    #[test]
    fn at_the_cap_waits_for_the_oldest_to_leave_the_window() {
        let full = Recent {
            sent: 1,
            oldest_at: Some(1_000),
            ahead: 0,
        };
        assert_eq!(cap_wait(1, full, 2_000), Some(1_000 + CAP_WINDOW_MS));
    }

    #[test]
    fn a_higher_priority_campaign_goes_first() {
        let behind = Recent {
            sent: 0,
            oldest_at: None,
            ahead: 1,
        };
        assert_eq!(cap_wait(1, behind, 10), Some(10 + PRIORITY_RECHECK_MS));
        assert_eq!(cap_wait(2, behind, 10), None, "room for both");
    }

    #[test]
    fn defaults_are_valid_and_bounds_checked() {
        assert_eq!(FrequencyCap::default().validate(), Ok(()));
        let zero = FrequencyCap {
            email_per_day: 0,
            sms_per_day: 1,
        };
        assert!(zero.validate().is_err());
        assert_eq!(FrequencyCap::default().limit(Channel::Preferred), 2);
    }

    proptest! {
        /// Sending only when `cap_wait` says so never puts more than the
        /// limit in any window, and a wait is always in the future.
        #[test]
        fn never_more_than_the_limit_in_a_day(
            limit in 1u32..4,
            times in prop::collection::vec(0i64..5 * DAY_MS, 1..60),
        ) {
            let mut times = times;
            times.sort_unstable();
            let mut sent: Vec<Millis> = vec![];
            for now in times {
                let inside: Vec<_> = sent.iter().copied().filter(|t| now - t < CAP_WINDOW_MS).collect();
                let recent = Recent {
                    sent: inside.len() as u32,
                    oldest_at: inside.iter().copied().min(),
                    ahead: 0,
                };
                match cap_wait(limit, recent, now) {
                    None => sent.push(now),
                    Some(at) => prop_assert!(at > now),
                }
                let last_day = sent.iter().filter(|t| now - **t < CAP_WINDOW_MS).count();
                prop_assert!(last_day as u32 <= limit);
            }
        }
    }
}
