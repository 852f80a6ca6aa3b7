//! Conversion attribution: a conversion within the attribution
//! window after a nudge is credited to it. The rule, last touch:
//!
//! 1. Among nudges the customer interacted with (opened, clicked, replied)
//!    before converting, where the conversion came within the channel's
//!    window of that interaction, the most recent interaction wins.
//! 2. If none qualifies, the most recently *sent* nudge whose window (from
//!    the send) covers the conversion wins. Open tracking misses a large
//!    share of real opens (image blocking, privacy proxies) and SMS has no
//!    opens at all, so requiring an interaction would credit almost no SMS
//!    nudge; an interaction, when there is one, is the stronger evidence and
//!    so comes first.
//! 3. Otherwise the conversion is not credited to a nudge.
//!
//! Touches in the future of the conversion never count (a clock that jumped
//! cannot make a nudge earn a sale it came after).

use serde::{Deserialize, Serialize};

use super::campaign::{Channel, DAY_MS, HOUR_MS};
use crate::Millis;

/// One nudge that reached the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    /// The send's idempotency key (`campaign:customer:enrollment:step`).
    pub nudge_key: String,
    /// The channel it went out on (email or SMS).
    pub channel: Channel,
    pub sent_at: Millis,
    /// The latest open, click or reply, if any.
    pub interacted_at: Option<Millis>,
}

/// How long after a nudge a conversion still counts, per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    pub email_ms: i64,
    pub sms_ms: i64,
}

impl Default for Windows {
    /// Email is read hours or days later; an SMS is read at once, so its
    /// influence fades within a day.
    fn default() -> Self {
        Windows {
            email_ms: 5 * DAY_MS,
            sms_ms: 24 * HOUR_MS,
        }
    }
}

impl Windows {
    /// `Preferred` never reaches a touch (sends resolve it); should one
    /// appear, it gets the longer, email window.
    pub fn for_channel(&self, channel: Channel) -> i64 {
        match channel {
            Channel::Sms => self.sms_ms,
            Channel::Email | Channel::Preferred => self.email_ms,
        }
    }
}

/// The touch credited with a conversion at `conversion_at`, if any. Ties go
/// to the touch listed later.
pub fn attribute(conversion_at: Millis, touches: &[Touch], windows: Windows) -> Option<&Touch> {
    let within = |t: &Touch, from: Millis| {
        from <= conversion_at
            && t.sent_at <= conversion_at
            && conversion_at.saturating_sub(from) <= windows.for_channel(t.channel)
    };
    let interacted = touches
        .iter()
        .filter_map(|t| Some((t.interacted_at?, t)))
        .filter(|(at, t)| within(t, *at))
        .max_by_key(|(at, t)| (*at, t.sent_at));
    if let Some((_, t)) = interacted {
        return Some(t);
    }
    touches
        .iter()
        .filter(|t| within(t, t.sent_at))
        .max_by_key(|t| t.sent_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(key: &str, channel: Channel, sent_at: Millis, interacted_at: Option<Millis>) -> Touch {
        Touch {
            nudge_key: key.into(),
            channel,
            sent_at,
            interacted_at,
        }
    }

    fn key(t: Option<&Touch>) -> Option<&str> {
        t.map(|t| t.nudge_key.as_str())
    }

    const W: Windows = Windows {
        email_ms: 5 * DAY_MS,
        sms_ms: 24 * HOUR_MS,
    };

    #[test]
    fn defaults_are_five_days_and_one_day() {
        assert_eq!(Windows::default(), W);
    }

    #[test]
    fn the_last_interaction_wins_over_a_later_send() {
        let touches = [
            touch("clicked", Channel::Email, 0, Some(2 * HOUR_MS)),
            touch("ignored", Channel::Sms, 3 * HOUR_MS, None),
        ];
        assert_eq!(key(attribute(4 * HOUR_MS, &touches, W)), Some("clicked"));
        let touches = [
            touch("early", Channel::Email, 0, Some(HOUR_MS)),
            touch("late", Channel::Email, 10, Some(2 * HOUR_MS)),
        ];
        assert_eq!(key(attribute(3 * HOUR_MS, &touches, W)), Some("late"));
    }

    #[test]
    fn windows_are_per_channel_and_count_from_the_interaction() {
        // Email sent day 0, clicked day 3, conversion day 7: within 5 days
        // of the click.
        let touches = [touch("email", Channel::Email, 0, Some(3 * DAY_MS))];
        assert_eq!(key(attribute(7 * DAY_MS, &touches, W)), Some("email"));
        assert_eq!(attribute(8 * DAY_MS + 1, &touches, W), None);
        // SMS: a day, inclusive.
        let touches = [touch("sms", Channel::Sms, 0, None)];
        assert_eq!(key(attribute(DAY_MS, &touches, W)), Some("sms"));
        assert_eq!(attribute(DAY_MS + 1, &touches, W), None);
    }

    #[test]
    fn falls_back_to_the_last_send_when_nothing_was_interacted_with() {
        let touches = [
            touch("first", Channel::Email, 0, None),
            touch("second", Channel::Email, DAY_MS, None),
            // Interacted, but too long ago to count.
            touch("stale", Channel::Sms, 0, Some(HOUR_MS)),
        ];
        assert_eq!(key(attribute(3 * DAY_MS, &touches, W)), Some("second"));
    }

    #[test]
    fn nothing_after_the_conversion_counts() {
        let touches = [
            touch("after", Channel::Email, 2 * HOUR_MS, Some(3 * HOUR_MS)),
            touch("interacted_after", Channel::Email, 0, Some(2 * HOUR_MS)),
        ];
        // The second was sent before but interacted with after: it still
        // earns the sale through the send fallback.
        assert_eq!(
            key(attribute(HOUR_MS, &touches, W)),
            Some("interacted_after")
        );
        assert_eq!(attribute(HOUR_MS, &touches[..1], W), None);
        assert_eq!(attribute(0, &[], W), None);
    }
}
