//! One customer's run through one campaign, as a pure state
//! machine. The caller stores the [`Enrollment`], feeds it what happened (the
//! trigger, a step falling due, a conversion, reply, opt-out or removal) and
//! acts on the [`Decision`] it gets back, saving the new state in the same
//! transaction as the send it claims. Two rules hold whatever order inputs
//! arrive in, including a clock that jumps forward or back: a step is
//! sent at most once per enrollment, under an idempotency key that names it,
//! and nothing is sent after an event that stops the campaign or on a
//! channel the customer opted out of.

use serde::{Deserialize, Serialize};

use super::campaign::{Campaign, Channel, Variant};
use crate::Millis;

/// A step that was handed to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentStep {
    /// Index into the campaign's steps, from 0.
    pub step: usize,
    pub at: Millis,
    /// Idempotency key for the send: `campaign:customer:enrollment:step`.
    pub key: String,
}

/// Why an enrollment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "channel", rename_all = "snake_case")]
pub enum StopReason {
    /// Every step was sent or skipped.
    Completed,
    Converted,
    Replied,
    OptedOut(Channel),
    /// A person took the customer out of the campaign.
    Removed,
    /// The lead was marked lost.
    Lost,
    /// The customer finished the form whose abandonment enrolled them:
    /// what the campaign asked for happened, which is not a purchase.
    FormFinished,
}

impl StopReason {
    /// Why the enrollment ended, in the words a person uses.
    pub fn label(self) -> &'static str {
        match self {
            StopReason::Completed => "finished: every step went out or was skipped",
            StopReason::Converted => "stopped: bought or marked won",
            StopReason::Replied => "stopped: replied",
            StopReason::OptedOut(Channel::Email) => "stopped: unsubscribed from email",
            StopReason::OptedOut(Channel::Sms) => "stopped: texted STOP",
            StopReason::OptedOut(Channel::Preferred) => "stopped: opted out of all messages",
            StopReason::Removed => "stopped: taken out by a person",
            StopReason::Lost => "stopped: lead marked lost",
            StopReason::FormFinished => "stopped: finished the form",
        }
    }
}

/// Something that happened to the customer while enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "channel", rename_all = "snake_case")]
pub enum Event {
    Converted,
    Replied,
    /// Unsubscribe link or SMS STOP. `Preferred` means every channel.
    OptedOut(Channel),
    Removed,
    /// The lead was marked lost: always stops.
    Lost,
    /// The form the customer left was finished after all: always stops
    /// (the caller sends it only to the form trigger's enrollments).
    FormFinished,
}

/// What to do when a step's time may have come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send `variant` of `step` (both indices from 0) on `channel` (never
    /// `Preferred`), with `key` as the provider idempotency key.
    Send {
        step: usize,
        variant: usize,
        channel: Channel,
        key: String,
    },
    /// Nothing yet; ask again at this time (before quiet hours, which the
    /// scheduler applies with [`super::quiet::next_allowed`]).
    Wait(Millis),
    /// Nothing more will be sent: not triggered yet, stopped, or finished.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub campaign_id: String,
    pub customer_id: String,
    pub enrollment_id: String,
    /// The next step to send, from 0.
    pub step_index: usize,
    /// When `step_index` falls due; `None` before the trigger and after the
    /// end.
    pub next_due: Option<Millis>,
    pub sent: Vec<SentStep>,
    pub stopped: Option<StopReason>,
    /// Channels the customer opted out of. Never sent on, whether or not
    /// the campaign stops on opt-out.
    pub opted_out: Vec<Channel>,
}

impl Enrollment {
    /// A fresh enrollment, waiting for its trigger. `opted_out` lists the
    /// channels the customer had already opted out of; they block those
    /// channels without stopping the campaign.
    pub fn new(
        campaign_id: impl Into<String>,
        customer_id: impl Into<String>,
        enrollment_id: impl Into<String>,
        opted_out: Vec<Channel>,
    ) -> Self {
        Enrollment {
            campaign_id: campaign_id.into(),
            customer_id: customer_id.into(),
            enrollment_id: enrollment_id.into(),
            step_index: 0,
            next_due: None,
            sent: Vec::new(),
            stopped: None,
            opted_out,
        }
    }

    /// Starts the sequence: the first step falls due its delay after `at`.
    /// A repeated trigger is ignored (returns false), so a re-delivered
    /// webhook cannot restart the sequence; re-entry is a new enrollment,
    /// gated by [`can_reenter`].
    pub fn on_trigger(&mut self, campaign: &Campaign, at: Millis) -> bool {
        if self.stopped.is_some() || self.next_due.is_some() || self.step_index > 0 {
            return false;
        }
        match campaign.steps.first() {
            Some(first) => self.next_due = Some(at.saturating_add(first.delay_ms)),
            None => self.stop(StopReason::Completed),
        }
        true
    }

    /// Called when the scheduler thinks the next step may be due. `random`
    /// picks the A/B variant by weight; `preferred` is the customer's
    /// preferred channel (Email or Sms) for `Preferred` steps, falling back
    /// to the other one if the customer opted out of it. A step whose
    /// channel is opted out is skipped, and the next one counts its delay
    /// from when the skipped one was due. The state advances before the
    /// send happens: retrying a failed delivery is the scheduler's job, with
    /// the same key, not a reason to decide again.
    pub fn on_step_due(
        &mut self,
        campaign: &Campaign,
        now: Millis,
        random: u32,
        preferred: Channel,
    ) -> Decision {
        loop {
            if self.stopped.is_some() {
                return Decision::Done;
            }
            let Some(due) = self.next_due else {
                return Decision::Done;
            };
            let index = self.step_index;
            let Some(step) = campaign.steps.get(index) else {
                self.stop(StopReason::Completed);
                return Decision::Done;
            };
            if now < due {
                return Decision::Wait(due);
            }
            // The sent list is the record of truth for "at most once", so an
            // enrollment restored from an inconsistent row still cannot resend.
            let already = self.sent.iter().any(|s| s.step == index);
            let channel = self.resolve(step.channel, preferred);
            let (false, Some(channel)) = (already, channel) else {
                self.advance(campaign, due);
                continue;
            };
            let variant = pick_variant(&step.variants, random);
            let key = format!(
                "{}:{}:{}:{}",
                self.campaign_id, self.customer_id, self.enrollment_id, index
            );
            self.sent.push(SentStep {
                step: index,
                at: now,
                key: key.clone(),
            });
            // Later steps count from the actual send, so a send held back by
            // quiet hours does not squeeze the gap to the next one.
            self.advance(campaign, now);
            return Decision::Send {
                step: index,
                variant,
                channel,
                key,
            };
        }
    }

    /// The caller could not send the step it was just told to (the daily
    /// cap is full): the send is taken back, and that step falls due again
    /// at `until`, under the same key. Returns false when there was no
    /// send to take back.
    pub fn hold_last_send(&mut self, until: Millis) -> bool {
        let Some(last) = self.sent.pop() else {
            return false;
        };
        self.step_index = last.step;
        // Advancing past the last step completed the enrollment; holding
        // it back reopens it (nothing else can have stopped it since).
        if self.stopped == Some(StopReason::Completed) {
            self.stopped = None;
        }
        self.next_due = Some(until);
        true
    }

    /// Applies an event. Returns true when it ended the enrollment.
    pub fn on_event(&mut self, campaign: &Campaign, event: Event) -> bool {
        if let Event::OptedOut(channel) = event {
            // Recorded even after the end, so a later re-entry copying these
            // still honors it.
            if !self.opted_out.contains(&channel) {
                self.opted_out.push(channel);
            }
        }
        if self.stopped.is_some() {
            return false;
        }
        let reason = match event {
            Event::Removed => StopReason::Removed,
            Event::Lost => StopReason::Lost,
            Event::FormFinished => StopReason::FormFinished,
            Event::Converted if campaign.stop.converted => StopReason::Converted,
            Event::Replied if campaign.stop.replied => StopReason::Replied,
            Event::OptedOut(channel) if campaign.stop.opted_out => StopReason::OptedOut(channel),
            _ => return false,
        };
        self.stop(reason);
        true
    }

    fn blocked(&self, channel: Channel) -> bool {
        self.opted_out.contains(&channel) || self.opted_out.contains(&Channel::Preferred)
    }

    fn resolve(&self, channel: Channel, preferred: Channel) -> Option<Channel> {
        let order = match (channel, preferred) {
            (Channel::Preferred, Channel::Sms) => [Channel::Sms, Channel::Email],
            (Channel::Preferred, _) => [Channel::Email, Channel::Sms],
            (c, _) => [c, c],
        };
        order.into_iter().find(|c| !self.blocked(*c))
    }

    fn advance(&mut self, campaign: &Campaign, from: Millis) {
        self.step_index += 1;
        match campaign.steps.get(self.step_index) {
            Some(next) => self.next_due = Some(from.saturating_add(next.delay_ms)),
            None => self.stop(StopReason::Completed),
        }
    }

    fn stop(&mut self, reason: StopReason) {
        self.stopped = Some(reason);
        self.next_due = None;
    }
}

/// Whether a customer who left the campaign at `last_exit` may be enrolled
/// again at `now`. A clock that jumped back (now before the exit) says no.
pub fn can_reenter(campaign: &Campaign, now: Millis, last_exit: Millis) -> bool {
    now.saturating_sub(last_exit) >= campaign.reentry_cooldown_ms
}

/// The variant `random` lands on when the range of u32 is split by weight.
/// Scaling rather than `%` keeps the split exact to within one part in 2^32.
/// Zero-weight variants are never picked (unless all are zero, which
/// validation refuses; then the first).
pub fn pick_variant(variants: &[Variant], random: u32) -> usize {
    let total: u128 = variants.iter().map(|v| u128::from(v.weight)).sum();
    if total == 0 {
        return 0;
    }
    let mut r = (u128::from(random) * total) >> 32;
    for (i, v) in variants.iter().enumerate() {
        let w = u128::from(v.weight);
        if r < w {
            return i;
        }
        r -= w;
    }
    variants.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nudge::campaign::tests::{campaign, step, variant};
    use crate::nudge::campaign::{Step, DAY_MS, HOUR_MS};
    use proptest::prelude::*;

    fn two_steps() -> Campaign {
        campaign(vec![
            step(HOUR_MS, Channel::Email),
            step(DAY_MS, Channel::Sms),
        ])
    }

    fn fresh() -> Enrollment {
        Enrollment::new("cmp", "cus", "enr", vec![])
    }

    #[test]
    fn runs_through_the_steps_in_order() {
        let c = two_steps();
        let mut e = fresh();
        assert_eq!(e.on_step_due(&c, 0, 0, Channel::Email), Decision::Done);
        assert!(e.on_trigger(&c, 1_000));
        assert!(!e.on_trigger(&c, 5_000), "a second trigger is ignored");
        assert_eq!(
            e.on_step_due(&c, 1_000, 0, Channel::Email),
            Decision::Wait(1_000 + HOUR_MS)
        );
        let late = 1_000 + HOUR_MS + 7;
        assert_eq!(
            e.on_step_due(&c, late, 0, Channel::Email),
            Decision::Send {
                step: 0,
                variant: 0,
                channel: Channel::Email,
                key: "cmp:cus:enr:0".into()
            }
        );
        // The second step counts from the actual send.
        assert_eq!(
            e.on_step_due(&c, late, 0, Channel::Email),
            Decision::Wait(late + DAY_MS)
        );
        assert!(matches!(
            e.on_step_due(&c, late + DAY_MS, u32::MAX, Channel::Email),
            Decision::Send {
                step: 1,
                variant: 1,
                channel: Channel::Sms,
                ..
            }
        ));
        assert_eq!(e.stopped, Some(StopReason::Completed));
        assert_eq!(
            e.on_step_due(&c, i64::MAX, 0, Channel::Email),
            Decision::Done
        );
        assert_eq!(e.sent.len(), 2);
    }

    #[test]
    fn stop_events_follow_the_campaign_settings() {
        let mut c = two_steps();
        c.stop.converted = false;
        let mut e = fresh();
        e.on_trigger(&c, 0);
        assert!(
            !e.on_event(&c, Event::Converted),
            "this campaign keeps going"
        );
        assert!(e.on_event(&c, Event::Replied));
        assert_eq!(e.stopped, Some(StopReason::Replied));
        assert_eq!(
            e.on_step_due(&c, DAY_MS * 9, 0, Channel::Email),
            Decision::Done
        );

        // Removal always stops.
        c.stop = crate::nudge::StopConditions {
            converted: false,
            replied: false,
            opted_out: false,
        };
        let mut e = fresh();
        e.on_trigger(&c, 0);
        assert!(e.on_event(&c, Event::Removed));
        assert_eq!(e.stopped, Some(StopReason::Removed));
    }

    #[test]
    fn an_opt_out_blocks_its_channel_even_when_it_does_not_stop() {
        let mut c = two_steps();
        c.stop.opted_out = false;
        let mut e = fresh();
        e.on_trigger(&c, 0);
        assert!(!e.on_event(&c, Event::OptedOut(Channel::Email)));
        // Step 1 (email) is skipped; step 2 (SMS) counts from when step 1
        // was due.
        assert_eq!(
            e.on_step_due(&c, HOUR_MS, 0, Channel::Email),
            Decision::Wait(HOUR_MS + DAY_MS)
        );
        assert!(matches!(
            e.on_step_due(&c, HOUR_MS + DAY_MS, 0, Channel::Email),
            Decision::Send {
                step: 1,
                channel: Channel::Sms,
                ..
            }
        ));
    }

    #[test]
    fn preferred_falls_back_to_the_other_channel() {
        let c = campaign(vec![step(HOUR_MS, Channel::Preferred)]);
        let mut e = Enrollment::new("c", "u", "e", vec![Channel::Sms]);
        e.on_trigger(&c, 0);
        assert!(matches!(
            e.on_step_due(&c, HOUR_MS, 0, Channel::Sms),
            Decision::Send {
                channel: Channel::Email,
                ..
            }
        ));
        let mut e = Enrollment::new("c", "u", "e", vec![Channel::Preferred]);
        e.on_trigger(&c, 0);
        assert_eq!(e.on_step_due(&c, HOUR_MS, 0, Channel::Sms), Decision::Done);
        assert!(e.sent.is_empty());
    }

    #[test]
    fn a_held_send_falls_due_again_under_the_same_key() {
        let c = two_steps();
        let mut e = fresh();
        e.on_trigger(&c, 0);
        let Decision::Send { key, .. } = e.on_step_due(&c, HOUR_MS, 0, Channel::Email) else {
            panic!("step 1 is due");
        };
        assert!(e.hold_last_send(HOUR_MS + DAY_MS));
        assert!(e.sent.is_empty());
        assert_eq!(
            e.on_step_due(&c, HOUR_MS + 5, 0, Channel::Email),
            Decision::Wait(HOUR_MS + DAY_MS)
        );
        let again = e.on_step_due(&c, HOUR_MS + DAY_MS, 0, Channel::Email);
        assert!(matches!(again, Decision::Send { step: 0, key: k, .. } if k == key));
        // Held on the last step, the enrollment is open again.
        let one = campaign(vec![step(HOUR_MS, Channel::Email)]);
        let mut e = fresh();
        e.on_trigger(&one, 0);
        e.on_step_due(&one, HOUR_MS, 0, Channel::Email);
        assert_eq!(e.stopped, Some(StopReason::Completed));
        assert!(e.hold_last_send(2 * HOUR_MS));
        assert_eq!(e.stopped, None);
        assert!(!fresh().hold_last_send(5), "nothing to take back");
    }

    #[test]
    fn reentry_waits_for_the_cooldown() {
        let c = two_steps(); // 7 days
        assert!(!can_reenter(&c, 6 * DAY_MS, 0));
        assert!(can_reenter(&c, 7 * DAY_MS, 0));
        assert!(!can_reenter(&c, -5, 0), "a clock that jumped back says no");
    }

    #[test]
    fn variants_split_by_weight() {
        let vs = vec![variant("A", 1), variant("B", 3)];
        assert_eq!(pick_variant(&vs, 0), 0);
        assert_eq!(pick_variant(&vs, (1 << 30) - 1), 0);
        assert_eq!(pick_variant(&vs, 1 << 30), 1);
        assert_eq!(pick_variant(&vs, u32::MAX), 1);
        let paused = vec![variant("A", 0), variant("B", 5), variant("C", 0)];
        assert_eq!(pick_variant(&paused, 0), 1);
        assert_eq!(pick_variant(&paused, u32::MAX), 1);
    }

    #[derive(Debug, Clone)]
    enum Input {
        Trigger(Millis),
        Due(Millis, u32, bool),
        Event(Event),
    }

    fn channel() -> impl Strategy<Value = Channel> {
        prop_oneof![
            Just(Channel::Email),
            Just(Channel::Sms),
            Just(Channel::Preferred)
        ]
    }

    fn input() -> impl Strategy<Value = Input> {
        // Times over a few weeks, in any order: the clock may jump both ways.
        let t = 0i64..30 * DAY_MS;
        prop_oneof![
            1 => t.clone().prop_map(Input::Trigger),
            4 => (t, any::<u32>(), any::<bool>()).prop_map(|(t, r, s)| Input::Due(t, r, s)),
            1 => prop_oneof![
                Just(Event::Converted),
                Just(Event::Replied),
                Just(Event::Removed),
                Just(Event::Lost),
                Just(Event::FormFinished),
                channel().prop_map(Event::OptedOut),
            ]
            .prop_map(Input::Event),
        ]
    }

    fn any_campaign() -> impl Strategy<Value = Campaign> {
        (
            prop::collection::vec(
                (
                    60_000i64..3 * DAY_MS,
                    channel(),
                    prop::collection::vec(0u32..5, 1..5),
                ),
                1..6,
            ),
            any::<[bool; 3]>(),
        )
            .prop_map(|(steps, [converted, replied, opted_out])| {
                let mut c = campaign(
                    steps
                        .into_iter()
                        .map(|(delay, ch, weights)| Step {
                            delay_ms: delay,
                            channel: ch,
                            variants: weights
                                .iter()
                                .enumerate()
                                .map(|(i, w)| variant(&i.to_string(), *w))
                                .collect(),
                        })
                        .collect(),
                );
                c.stop = crate::nudge::StopConditions {
                    converted,
                    replied,
                    opted_out,
                };
                c
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]
        #[test]
        fn at_most_once_and_never_after_a_stop(
            c in any_campaign(),
            inputs in prop::collection::vec(input(), 0..40),
        ) {
            let mut e = fresh();
            let mut sends_per_step = vec![0; c.steps.len()];
            let mut stopped = false;
            let mut blocked: Vec<Channel> = vec![];
            for i in inputs {
                match i {
                    Input::Trigger(at) => { e.on_trigger(&c, at); }
                    Input::Event(ev) => {
                        let stops = match ev {
                            Event::Removed | Event::Lost | Event::FormFinished => true,
                            Event::Converted => c.stop.converted,
                            Event::Replied => c.stop.replied,
                            Event::OptedOut(ch) => {
                                blocked.push(ch);
                                c.stop.opted_out
                            }
                        };
                        stopped |= stops;
                        e.on_event(&c, ev);
                    }
                    Input::Due(now, random, sms) => {
                        let preferred = if sms { Channel::Sms } else { Channel::Email };
                        if let Decision::Send { step, variant, channel, key } =
                            e.on_step_due(&c, now, random, preferred)
                        {
                            prop_assert!(!stopped, "sent after a stop");
                            prop_assert!(channel != Channel::Preferred);
                            prop_assert!(
                                !blocked.contains(&channel) && !blocked.contains(&Channel::Preferred),
                                "sent on opted-out {channel:?}"
                            );
                            sends_per_step[step] += 1;
                            prop_assert!(sends_per_step[step] == 1, "step {step} sent twice");
                            prop_assert!(c.steps[step].variants[variant].weight > 0
                                || c.steps[step].variants.iter().all(|v| v.weight == 0));
                            prop_assert_eq!(key, format!("cmp:cus:enr:{step}"));
                        }
                    }
                }
            }
            prop_assert_eq!(e.sent.len(), sends_per_step.iter().sum::<usize>());
        }
    }
}
