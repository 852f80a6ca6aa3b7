//! The stop rules that hold at every moment, whatever timer fires when.
//! A conversion (an order, or a person marking the lead won), a loss, a
//! reply or an opt-out ends a customer's running enrollments; these rules
//! also keep a trigger that fires later (an abandoned checkout's timer a
//! minute after the customer was marked won) from enrolling them again for
//! the rest of the campaign's window, and the sender from sending a step
//! whose customer stopped since the enrollment began. The caller loads the
//! customer's [`StopFacts`] and asks twice: before enrolling
//! ([`stop_before_enrolling`]) and before each send ([`stop_before_sending`]).
//!
//! Other reasons to hold a customer's nudges (a person talking with them in
//! the inbox, say) belong next to these as rules of their own; these cover
//! only the campaign's stop conditions and a lost lead.

use serde::{Deserialize, Serialize};

use super::campaign::{Campaign, Channel};
use super::enrollment::{Event, StopReason};
use crate::Millis;

/// What ended a customer's interest in being nudged, and when. Each time
/// is the latest such moment known; `None` when it never happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopFacts {
    /// The lead converted: an order, or a person marked it won.
    pub converted_at: Option<Millis>,
    /// The lead was marked lost (by a person or by running out of nudges).
    pub lost_at: Option<Millis>,
    /// The customer answered a nudge.
    pub replied_at: Option<Millis>,
    /// Opt-outs by channel (`Preferred`: every channel), with their time.
    pub opted_out: Vec<(Channel, Millis)>,
}

impl Campaign {
    /// How long a stop keeps a customer out of this campaign: its re-entry
    /// cooldown or the length of its whole sequence, whichever is longer,
    /// so no timer that belongs to the same episode (a checkout abandoned
    /// after the purchase, a form left after it was sent) can enroll them.
    pub fn stop_window_ms(&self) -> Millis {
        let sequence = self
            .steps
            .iter()
            .fold(0i64, |acc, s| acc.saturating_add(s.delay_ms.max(0)));
        sequence.max(self.reentry_cooldown_ms.max(0))
    }
}

/// Whether a trigger at `now` may enroll the customer: `Some(reason)` when
/// a stop the campaign honors happened within its window before `now` (or
/// after `now`, when the clock went back).
pub fn stop_before_enrolling(c: &Campaign, facts: &StopFacts, now: Millis) -> Option<StopReason> {
    stop_in_force(c, facts, now.saturating_sub(c.stop_window_ms()))
}

/// Whether a step of an enrollment that began at `started_at` may still be
/// sent: `Some(reason)` when a stop the campaign honors happened since the
/// enrollment began, or within the window before it (which would have
/// kept it from beginning). Checked at send time as well as at the stop
/// itself, so a stop that reached the enrollment late, or not at all (a
/// merge moved the customer, a timer was already running), still holds.
pub fn stop_before_sending(
    c: &Campaign,
    facts: &StopFacts,
    started_at: Millis,
) -> Option<StopReason> {
    stop_in_force(c, facts, started_at.saturating_sub(c.stop_window_ms()))
}

/// The event that ends a running enrollment for a stop found in force.
pub fn stop_event(reason: StopReason) -> Event {
    match reason {
        StopReason::Converted => Event::Converted,
        StopReason::Replied => Event::Replied,
        StopReason::OptedOut(c) => Event::OptedOut(c),
        StopReason::Lost => Event::Lost,
        StopReason::FormFinished => Event::FormFinished,
        StopReason::Completed | StopReason::Removed => Event::Removed,
    }
}

/// The first stop the campaign honors that happened at or after `from`.
/// A loss always stops (a person gave up on the lead); the others follow
/// the campaign's stop conditions.
fn stop_in_force(c: &Campaign, facts: &StopFacts, from: Millis) -> Option<StopReason> {
    let since = |at: Option<Millis>| at.is_some_and(|t| t >= from);
    if since(facts.lost_at) {
        return Some(StopReason::Lost);
    }
    if c.stop.converted && since(facts.converted_at) {
        return Some(StopReason::Converted);
    }
    if c.stop.replied && since(facts.replied_at) {
        return Some(StopReason::Replied);
    }
    if c.stop.opted_out {
        if let Some((ch, _)) = facts.opted_out.iter().find(|(_, at)| *at >= from) {
            return Some(StopReason::OptedOut(*ch));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nudge::campaign::tests::{campaign, step};
    use crate::nudge::campaign::{StopConditions, Trigger, DAY_MS, HOUR_MS, MINUTE_MS};
    use crate::nudge::enrollment::{Decision, Enrollment};
    use proptest::prelude::*;

    fn cart() -> Campaign {
        let mut c = campaign(vec![
            step(HOUR_MS, Channel::Email),
            step(DAY_MS, Channel::Email),
        ]);
        c.trigger = Trigger::CheckoutAbandoned;
        c.reentry_cooldown_ms = 0;
        c
    }

    #[test]
    fn a_checkout_abandoned_after_the_conversion_does_not_enroll() {
        let c = cart();
        let won = StopFacts {
            converted_at: Some(10 * MINUTE_MS),
            ..StopFacts::default()
        };
        // The abandonment timer fires a minute after the lead was won.
        assert_eq!(
            stop_before_enrolling(&c, &won, 11 * MINUTE_MS),
            Some(StopReason::Converted)
        );
        // After the campaign's window (its sequence: 25 h) it may again.
        let later = 10 * MINUTE_MS + HOUR_MS + DAY_MS + 1;
        assert_eq!(stop_before_enrolling(&c, &won, later), None);
        // A conversion "in the future" (the clock went back) also holds.
        assert_eq!(
            stop_before_enrolling(&c, &won, 0),
            Some(StopReason::Converted)
        );
    }

    #[test]
    fn stops_follow_the_campaign_conditions_but_a_loss_always_stops() {
        let mut c = cart();
        c.stop = StopConditions {
            converted: false,
            replied: false,
            opted_out: false,
        };
        let facts = StopFacts {
            converted_at: Some(5),
            replied_at: Some(5),
            opted_out: vec![(Channel::Sms, 5)],
            lost_at: None,
        };
        assert_eq!(stop_before_enrolling(&c, &facts, 10), None);
        let lost = StopFacts {
            lost_at: Some(5),
            ..facts
        };
        assert_eq!(stop_before_enrolling(&c, &lost, 10), Some(StopReason::Lost));
    }

    #[test]
    fn a_stop_since_the_enrollment_began_holds_at_send_time() {
        let c = cart();
        let started = 100 * DAY_MS;
        let replied = StopFacts {
            replied_at: Some(started + HOUR_MS),
            ..StopFacts::default()
        };
        assert_eq!(
            stop_before_sending(&c, &replied, started),
            Some(StopReason::Replied)
        );
        // One long before the enrollment (outside the window) does not.
        let old = StopFacts {
            replied_at: Some(started - 30 * DAY_MS),
            ..StopFacts::default()
        };
        assert_eq!(stop_before_sending(&c, &old, started), None);
    }

    /// What happens to the customer over time, in any order.
    #[derive(Debug, Clone)]
    enum Happening {
        /// The campaign's trigger fires (any trigger: the rules do not
        /// depend on which).
        Trigger(Millis),
        /// A step's timer fires.
        Due(Millis),
        Converted(Millis),
        Lost(Millis),
        Replied(Millis),
        OptedOut(Channel, Millis),
        /// The next stop does not reach the running enrollment (it belonged
        /// to a profile merged away, or a writer missed it): only the
        /// send-time rule can hold it.
        Missed,
    }

    fn happening() -> impl Strategy<Value = Happening> {
        let t = 0i64..20 * DAY_MS;
        let ch = prop_oneof![
            Just(Channel::Email),
            Just(Channel::Sms),
            Just(Channel::Preferred)
        ];
        prop_oneof![
            3 => t.clone().prop_map(Happening::Trigger),
            6 => t.clone().prop_map(Happening::Due),
            1 => t.clone().prop_map(Happening::Converted),
            1 => t.clone().prop_map(Happening::Lost),
            1 => t.clone().prop_map(Happening::Replied),
            1 => (ch, t).prop_map(|(c, t)| Happening::OptedOut(c, t)),
            2 => Just(Happening::Missed),
        ]
    }

    fn any_trigger() -> impl Strategy<Value = Trigger> {
        prop_oneof![
            Just(Trigger::LeadGhosting),
            Just(Trigger::CheckoutAbandoned),
            Just(Trigger::FormStartedNotFinished),
            Just(Trigger::Event {
                name: "viewed_pricing".into()
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]
        /// Runs the store's protocol (check before enrolling, feed stops to
        /// the running enrollment, check again before each send) and
        /// asserts what a customer sees: no enrollment and no message
        /// within the campaign's window after any stop it honors.
        #[test]
        fn no_send_after_any_stop_across_every_trigger(
            trigger in any_trigger(),
            delays in prop::collection::vec(MINUTE_MS..2 * DAY_MS, 1..5),
            cooldown in 0i64..10 * DAY_MS,
            flags in any::<[bool; 3]>(),
            happenings in prop::collection::vec(happening(), 0..40),
        ) {
            let mut c = campaign(delays.iter().map(|d| step(*d, Channel::Email)).collect());
            c.trigger = trigger;
            c.reentry_cooldown_ms = cooldown;
            c.stop = StopConditions { converted: flags[0], replied: flags[1], opted_out: flags[2] };
            let window = c.stop_window_ms();
            let mut facts = StopFacts::default();
            // Every stop the campaign honors, with its time.
            let mut stops: Vec<Millis> = vec![];
            let mut current: Option<(Enrollment, Millis)> = None;
            let mut n = 0;
            let mut missed = false;
            for h in happenings {
                let event = match h {
                    Happening::Missed => {
                        missed = true;
                        continue;
                    }
                    Happening::Trigger(at) => {
                        let running = current.as_ref().is_some_and(|(e, _)| e.stopped.is_none());
                        if !running && stop_before_enrolling(&c, &facts, at).is_none() {
                            let recent = stops.iter().any(|s| *s <= at && at - *s < window);
                            prop_assert!(!recent, "enrolled at {at} within the window of a stop: {stops:?}");
                            n += 1;
                            let mut e = Enrollment::new("c", "u", n.to_string(), vec![]);
                            e.on_trigger(&c, at);
                            current = Some((e, at));
                        }
                        None
                    }
                    Happening::Due(now) => {
                        if let Some((e, started)) = current.as_mut() {
                            if let Some(reason) = stop_before_sending(&c, &facts, *started) {
                                e.on_event(&c, stop_event(reason));
                            }
                            if let Decision::Send { .. } = e.on_step_due(&c, now, 0, Channel::Email) {
                                let recent = stops.iter().any(|s| *s <= now && now - *s < window);
                                prop_assert!(!recent, "sent at {now} within the window of a stop: {stops:?}");
                                let since_start = stops.iter().any(|s| *s >= *started && *s <= now);
                                prop_assert!(!since_start, "sent at {now} after a stop since the start");
                            }
                        }
                        None
                    }
                    Happening::Converted(at) => {
                        facts.converted_at = Some(facts.converted_at.map_or(at, |t| t.max(at)));
                        if c.stop.converted { stops.push(at); }
                        Some(Event::Converted)
                    }
                    Happening::Lost(at) => {
                        facts.lost_at = Some(facts.lost_at.map_or(at, |t| t.max(at)));
                        stops.push(at);
                        Some(Event::Lost)
                    }
                    Happening::Replied(at) => {
                        facts.replied_at = Some(facts.replied_at.map_or(at, |t| t.max(at)));
                        if c.stop.replied { stops.push(at); }
                        Some(Event::Replied)
                    }
                    Happening::OptedOut(ch, at) => {
                        facts.opted_out.push((ch, at));
                        if c.stop.opted_out { stops.push(at); }
                        Some(Event::OptedOut(ch))
                    }
                };
                if let (Some(ev), Some((e, _))) = (event, current.as_mut()) {
                    if !std::mem::take(&mut missed) {
                        e.on_event(&c, ev);
                    }
                }
            }
        }
    }
}
