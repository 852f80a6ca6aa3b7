//! Whether a campaign can reach a customer at all, and why a step was not
//! sent. A customer is enrolled only when some step has a channel they
//! have an address on and did not opt out of (a `preferred` step falls
//! back to the other channel); otherwise the campaign records them as not
//! reachable, with the reason. Every step that goes out late or not at all
//! is counted under a [`SkipReason`], so a campaign never sends nothing
//! and says nothing.

use serde::{Deserialize, Serialize};

use super::campaign::{Campaign, Channel};

/// Why a step was not sent when it fell due (or a customer not enrolled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No address on the step's channel.
    NoAddress,
    /// The customer opted out of the step's channel.
    OptedOut,
    /// Quiet hours moved the step later.
    QuietHours,
    /// The per-customer daily message cap moved the step later.
    Cap,
    /// A stop (a conversion, a loss, a reply, an opt-out) ended it.
    Stopped,
}

impl SkipReason {
    pub const ALL: [SkipReason; 5] = [
        SkipReason::NoAddress,
        SkipReason::OptedOut,
        SkipReason::QuietHours,
        SkipReason::Cap,
        SkipReason::Stopped,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoAddress => "no_address",
            SkipReason::OptedOut => "opted_out",
            SkipReason::QuietHours => "quiet_hours",
            SkipReason::Cap => "cap",
            SkipReason::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<SkipReason> {
        SkipReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What a person reads in the funnel.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::NoAddress => "no address",
            SkipReason::OptedOut => "opted out",
            SkipReason::QuietHours => "quiet hours moved it",
            SkipReason::Cap => "daily cap moved it",
            SkipReason::Stopped => "stopped",
        }
    }

    /// Whether the step still goes out later (only moved, not skipped).
    pub fn delays(self) -> bool {
        matches!(self, SkipReason::QuietHours | SkipReason::Cap)
    }
}

/// How a customer can be reached now: which addresses they have and which
/// channels they opted out of (`Preferred`: all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    pub has_email: bool,
    pub has_phone: bool,
    pub opted_out: Vec<Channel>,
}

impl Reach {
    /// Why a message on `channel` (email or SMS) cannot go, if it cannot.
    fn block(&self, channel: Channel) -> Option<SkipReason> {
        let has = match channel.medium() {
            Channel::Sms => self.has_phone,
            _ => self.has_email,
        };
        if !has {
            return Some(SkipReason::NoAddress);
        }
        let opted = self.opted_out.contains(&channel.medium())
            || self.opted_out.contains(&Channel::Preferred);
        opted.then_some(SkipReason::OptedOut)
    }

    /// Why a step on `channel` cannot reach the customer, if it cannot: a
    /// `Preferred` step is blocked only when both channels are, and then an
    /// opt-out is the reason when either channel had one (the customer's
    /// own choice says more than a missing address).
    pub fn step_block(&self, channel: Channel) -> Option<SkipReason> {
        match channel {
            Channel::Preferred => {
                let (e, s) = (self.block(Channel::Email), self.block(Channel::Sms));
                match (e, s) {
                    (Some(a), Some(b))
                        if a == SkipReason::OptedOut || b == SkipReason::OptedOut =>
                    {
                        Some(SkipReason::OptedOut)
                    }
                    (Some(a), Some(_)) => Some(a),
                    _ => None,
                }
            }
            c => self.block(c),
        }
    }

    /// The channels blocked for this customer (no address, or opted out).
    pub fn blocked(&self) -> Vec<Channel> {
        [Channel::Email, Channel::Sms]
            .into_iter()
            .filter(|c| self.block(*c).is_some())
            .collect()
    }
}

/// Whether some step of the campaign can reach the customer: `None` when
/// one can, else why none can (an opt-out when any step was blocked by one,
/// else no address).
pub fn unreachable(c: &Campaign, reach: &Reach) -> Option<SkipReason> {
    let mut why = None;
    for s in &c.steps {
        match reach.step_block(s.channel) {
            None => return None,
            Some(SkipReason::OptedOut) => why = Some(SkipReason::OptedOut),
            Some(r) => why = why.or(Some(r)),
        }
    }
    why.or(Some(SkipReason::NoAddress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nudge::campaign::tests::{campaign, step};
    use crate::nudge::campaign::HOUR_MS;

    fn anonymous() -> Reach {
        Reach::default()
    }

    #[test]
    fn an_anonymous_visitor_cannot_be_reached_by_email() {
        let c = campaign(vec![step(HOUR_MS, Channel::Email)]);
        assert_eq!(unreachable(&c, &anonymous()), Some(SkipReason::NoAddress));
        let with_email = Reach {
            has_email: true,
            ..Reach::default()
        };
        assert_eq!(unreachable(&c, &with_email), None);
    }

    #[test]
    fn preferred_falls_back_and_any_step_will_do() {
        let phone_only = Reach {
            has_phone: true,
            ..Reach::default()
        };
        let pref = campaign(vec![step(HOUR_MS, Channel::Preferred)]);
        assert_eq!(unreachable(&pref, &phone_only), None);
        let mixed = campaign(vec![
            step(HOUR_MS, Channel::Email),
            step(HOUR_MS, Channel::Sms),
        ]);
        assert_eq!(unreachable(&mixed, &phone_only), None);
        assert_eq!(
            phone_only.step_block(Channel::Email),
            Some(SkipReason::NoAddress)
        );
        assert_eq!(phone_only.blocked(), vec![Channel::Email]);
    }

    #[test]
    fn an_opt_out_is_the_reason_when_there_is_one() {
        let c = campaign(vec![
            step(HOUR_MS, Channel::Email),
            step(HOUR_MS, Channel::Sms),
        ]);
        let r = Reach {
            has_email: true,
            has_phone: false,
            opted_out: vec![Channel::Email],
        };
        assert_eq!(unreachable(&c, &r), Some(SkipReason::OptedOut));
        let all = Reach {
            has_email: true,
            has_phone: true,
            opted_out: vec![Channel::Preferred],
        };
        assert_eq!(
            all.step_block(Channel::Preferred),
            Some(SkipReason::OptedOut)
        );
    }

    #[test]
    fn skip_reasons_round_trip_their_stored_names() {
        for r in SkipReason::ALL {
            assert_eq!(SkipReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(SkipReason::parse("nope"), None);
    }
}
