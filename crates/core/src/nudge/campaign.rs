//! What a nudge campaign is and when it is fit to save: a
//! trigger, a sequence of delayed steps on a channel with A/B variants of a
//! message, the events that stop it, optional quiet hours, and how soon a
//! customer who left may enter again. [`Campaign::validate`] is the one gate
//! before a campaign is stored, so everything downstream (the scheduler, the
//! enrollment state machine, rendering) may assume a valid campaign.

use serde::{Deserialize, Serialize};

use super::template::{self, TemplateError};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// Shortest delay of a step: anything sooner is not a nudge but an echo.
pub const MIN_STEP_DELAY_MS: i64 = MINUTE_MS;
/// Longest delay of a step: after two months a nudge no longer reads as a
/// follow-up to whatever triggered it.
pub const MAX_STEP_DELAY_MS: i64 = 8 * WEEK_MS;
/// An A/B/C/D split is the most a small business can read results from.
pub const MAX_VARIANTS: usize = 4;
/// Longer sequences than this are spam, whatever the delays.
pub const MAX_STEPS: usize = 20;
/// Delivery attempts per step beyond this only hammer a failing provider.
pub const MAX_ATTEMPTS: u32 = 10;
/// Priorities run from 0 (the default) to this.
pub const MAX_PRIORITY: u32 = 100;
/// A cooldown longer than a year is the same as "never again"; say so with
/// the largest value rather than an arbitrary huge number.
pub const MAX_REENTRY_COOLDOWN_MS: i64 = 365 * DAY_MS;
const MAX_NAME_CHARS: usize = 100;
const MINUTES_PER_DAY: u16 = 24 * 60;

/// What enrolls a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// The lead entered `ghosting`.
    LeadGhosting,
    /// A cart or checkout was started and abandoned.
    CheckoutAbandoned,
    /// A form was started and not finished.
    FormStartedNotFinished,
    /// A named custom event arrived.
    Event { name: String },
}

/// Where a step's message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    /// Whichever of email and SMS the customer prefers; resolved per send.
    Preferred,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Preferred => "preferred",
        }
    }

    /// The stored name back: `None` for anything [`Channel::as_str`] never
    /// writes.
    pub fn parse(s: &str) -> Option<Channel> {
        Some(match s {
            "email" => Channel::Email,
            "sms" => Channel::Sms,
            "preferred" => Channel::Preferred,
            _ => return None,
        })
    }

    /// The medium a message on this channel goes out on: SMS, or email for
    /// anything else. A sent message, an opt-out and a channel's settings
    /// are always on one medium; `Preferred` is resolved per customer
    /// before a send, and where it is not (an opt-out or settings named by
    /// a caller) it counts as email, as it always has.
    pub fn medium(self) -> Channel {
        match self {
            Channel::Sms => Channel::Sms,
            _ => Channel::Email,
        }
    }

    /// Whether a message on this channel may go out as email and so needs a
    /// subject and HTML escaping.
    pub fn may_be_email(self) -> bool {
        matches!(self, Channel::Email | Channel::Preferred)
    }
}

/// One version of a step's message in an A/B split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    /// Relative share of sends. 0 pauses the variant without deleting it.
    pub weight: u32,
    /// Email subject template; required when the step may go out as email.
    pub subject: Option<String>,
    /// Message body template.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Wait before this step: from the trigger for the first step, from the
    /// previous step's send after that.
    pub delay_ms: i64,
    pub channel: Channel,
    pub variants: Vec<Variant>,
}

/// Events that end a customer's run through the campaign. A person removing
/// the customer always ends it, so it is not a setting. An opt-out always
/// blocks its channel whatever `opted_out` says (the law, not a preference);
/// the flag says whether it also ends the sequence on the other channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopConditions {
    pub converted: bool,
    pub replied: bool,
    pub opted_out: bool,
}

impl Default for StopConditions {
    fn default() -> Self {
        StopConditions {
            converted: true,
            replied: true,
            opted_out: true,
        }
    }
}

/// Local times of day when nothing is sent, as minutes after midnight:
/// `start_minute` inclusive, `end_minute` exclusive. `start > end` wraps past
/// midnight (22:00–08:00 is `1320..480`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl QuietHours {
    /// Whether a local minute of the day falls in the quiet window.
    pub fn contains(&self, minute_of_day: u16) -> bool {
        let (s, e, m) = (self.start_minute, self.end_minute, minute_of_day);
        if s <= e {
            s <= m && m < e
        } else {
            m >= s || m < e
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub name: String,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    pub stop: StopConditions,
    pub quiet_hours: Option<QuietHours>,
    /// Delivery attempts per step (the first try plus retries after provider
    /// failures) before the scheduler gives that step up.
    pub max_attempts: u32,
    /// How long after leaving the campaign a customer must wait before the
    /// trigger may enroll them again.
    pub reentry_cooldown_ms: i64,
    /// Who goes first when the daily cap has room for fewer messages than
    /// campaigns want to send a customer: higher first. Campaigns saved
    /// before priorities existed are 0.
    #[serde(default)]
    pub priority: u32,
}

/// Why a campaign cannot be saved. Steps and variants are numbered from 1,
/// as the builder shows them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error(
        "the campaign has no name; give it one people will recognise, such as \"Cart reminder\""
    )]
    EmptyName,
    #[error("the campaign name has {chars} characters; shorten it to {MAX_NAME_CHARS} or fewer")]
    NameTooLong { chars: usize },
    #[error("the custom event trigger has no event name; enter the event that should start the campaign")]
    EmptyEventName,
    #[error("the campaign has no steps; add at least one message")]
    NoSteps,
    #[error("the campaign has {count} steps; keep it to {MAX_STEPS} or fewer")]
    TooManySteps { count: usize },
    #[error("step {step}: delay is {delay_ms} ms; use from 1 minute to 8 weeks")]
    DelayOutOfRange { step: usize, delay_ms: i64 },
    #[error("step {step}: it has no variants; add a message")]
    NoVariants { step: usize },
    #[error("step {step}: it has {count} variants; use at most {MAX_VARIANTS}")]
    TooManyVariants { step: usize, count: usize },
    #[error("step {step}, variant {variant}: it has no name; name it, such as \"A\"")]
    EmptyVariantName { step: usize, variant: usize },
    #[error("step {step}: two variants are named {name:?}; give each its own name")]
    DuplicateVariantName { step: usize, name: String },
    #[error("step {step}: every variant has weight 0; give at least one a weight above 0")]
    ZeroTotalWeight { step: usize },
    #[error("step {step}, variant {variant}: email needs a subject; add one")]
    MissingSubject { step: usize, variant: usize },
    #[error("step {step}, variant {variant}: the body is empty; write the message")]
    EmptyBody { step: usize, variant: usize },
    #[error("step {step}, variant {variant}, {field}: {source}")]
    Template {
        step: usize,
        variant: usize,
        field: &'static str,
        source: TemplateError,
    },
    #[error("quiet hours: {field} is minute {minute}; use 0 (midnight) to 1439 (23:59)")]
    QuietMinuteOutOfRange { field: &'static str, minute: u16 },
    #[error("quiet hours start and end at the same time; change one, or turn quiet hours off")]
    QuietHoursEmpty,
    #[error("max attempts is {0}; use from 1 to {MAX_ATTEMPTS}")]
    AttemptsOutOfRange(u32),
    #[error("re-entry cooldown is {0} ms; use from 0 to 365 days")]
    CooldownOutOfRange(i64),
    #[error("priority is {0}; use from 0 to {MAX_PRIORITY} (higher goes first)")]
    PriorityOutOfRange(u32),
}

impl Campaign {
    /// Checks everything a campaign must satisfy before it is saved,
    /// including that every template only uses the standard variables and
    /// the tenant's `custom_traits`. Reports the first problem found, in the
    /// order the builder shows the fields.
    pub fn validate(&self, custom_traits: &[&str]) -> Result<(), CampaignError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(CampaignError::EmptyName);
        }
        let chars = name.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(CampaignError::NameTooLong { chars });
        }
        if let Trigger::Event { name } = &self.trigger {
            if name.trim().is_empty() {
                return Err(CampaignError::EmptyEventName);
            }
        }
        if self.steps.is_empty() {
            return Err(CampaignError::NoSteps);
        }
        if self.steps.len() > MAX_STEPS {
            return Err(CampaignError::TooManySteps {
                count: self.steps.len(),
            });
        }
        for (i, s) in self.steps.iter().enumerate() {
            validate_step(i + 1, s, custom_traits)?;
        }
        if let Some(q) = self.quiet_hours {
            for (field, minute) in [("start", q.start_minute), ("end", q.end_minute)] {
                if minute >= MINUTES_PER_DAY {
                    return Err(CampaignError::QuietMinuteOutOfRange { field, minute });
                }
            }
            if q.start_minute == q.end_minute {
                return Err(CampaignError::QuietHoursEmpty);
            }
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(CampaignError::AttemptsOutOfRange(self.max_attempts));
        }
        if !(0..=MAX_REENTRY_COOLDOWN_MS).contains(&self.reentry_cooldown_ms) {
            return Err(CampaignError::CooldownOutOfRange(self.reentry_cooldown_ms));
        }
        if self.priority > MAX_PRIORITY {
            return Err(CampaignError::PriorityOutOfRange(self.priority));
        }
        Ok(())
    }
}

fn validate_step(step: usize, s: &Step, custom_traits: &[&str]) -> Result<(), CampaignError> {
    if !(MIN_STEP_DELAY_MS..=MAX_STEP_DELAY_MS).contains(&s.delay_ms) {
        return Err(CampaignError::DelayOutOfRange {
            step,
            delay_ms: s.delay_ms,
        });
    }
    if s.variants.is_empty() {
        return Err(CampaignError::NoVariants { step });
    }
    if s.variants.len() > MAX_VARIANTS {
        return Err(CampaignError::TooManyVariants {
            step,
            count: s.variants.len(),
        });
    }
    for (j, v) in s.variants.iter().enumerate() {
        let variant = j + 1;
        if v.name.trim().is_empty() {
            return Err(CampaignError::EmptyVariantName { step, variant });
        }
        if s.variants[..j]
            .iter()
            .any(|o| o.name.trim() == v.name.trim())
        {
            return Err(CampaignError::DuplicateVariantName {
                step,
                name: v.name.trim().to_string(),
            });
        }
        let subject = v.subject.as_deref().filter(|t| !t.trim().is_empty());
        if s.channel.may_be_email() && subject.is_none() {
            return Err(CampaignError::MissingSubject { step, variant });
        }
        if v.body.trim().is_empty() {
            return Err(CampaignError::EmptyBody { step, variant });
        }
        let tpl = |field, text| {
            template::check(text, custom_traits).map_err(|source| CampaignError::Template {
                step,
                variant,
                field,
                source,
            })
        };
        if let Some(subject) = subject {
            tpl("subject", subject)?;
        }
        tpl("body", &v.body)?;
    }
    // u64: four u32 weights cannot overflow it.
    if s.variants.iter().map(|v| u64::from(v.weight)).sum::<u64>() == 0 {
        return Err(CampaignError::ZeroTotalWeight { step });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn variant(name: &str, weight: u32) -> Variant {
        Variant {
            name: name.into(),
            weight,
            subject: Some("Hi {{ first_name }}".into()),
            body: "Your cart: {{ cart_url }}".into(),
        }
    }

    pub(crate) fn step(delay_ms: i64, channel: Channel) -> Step {
        Step {
            delay_ms,
            channel,
            variants: vec![variant("A", 1), variant("B", 1)],
        }
    }

    pub(crate) fn campaign(steps: Vec<Step>) -> Campaign {
        Campaign {
            name: "Cart reminder".into(),
            trigger: Trigger::CheckoutAbandoned,
            steps,
            stop: StopConditions::default(),
            quiet_hours: Some(QuietHours {
                start_minute: 21 * 60,
                end_minute: 8 * 60,
            }),
            max_attempts: 3,
            reentry_cooldown_ms: 7 * DAY_MS,
            priority: 0,
        }
    }

    fn valid() -> Campaign {
        campaign(vec![
            step(HOUR_MS, Channel::Email),
            step(DAY_MS, Channel::Sms),
        ])
    }

    #[test]
    fn a_plain_campaign_is_valid() {
        assert_eq!(valid().validate(&[]), Ok(()));
    }

    #[test]
    fn serde_round_trips() {
        let mut c = valid();
        c.trigger = Trigger::Event {
            name: "trial_ending".into(),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""kind":"event""#), "{json}");
        assert_eq!(serde_json::from_str::<Campaign>(&json).unwrap(), c);
    }

    #[test]
    fn errors_name_the_step_and_field() {
        let mut c = valid();
        c.steps[1].delay_ms = 30_000;
        assert_eq!(
            c.validate(&[]),
            Err(CampaignError::DelayOutOfRange {
                step: 2,
                delay_ms: 30_000
            })
        );
        c.steps[1].delay_ms = MAX_STEP_DELAY_MS + 1;
        assert!(c.validate(&[]).is_err());
        c.steps[1].delay_ms = MAX_STEP_DELAY_MS;
        assert_eq!(c.validate(&[]), Ok(()));

        let mut c = valid();
        c.steps[0].variants[1].subject = Some("  ".into());
        let err = c.validate(&[]).unwrap_err();
        assert_eq!(
            err,
            CampaignError::MissingSubject {
                step: 1,
                variant: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "step 1, variant 2: email needs a subject; add one"
        );

        let mut c = valid();
        c.steps[1].variants[0].body = "Hi {{ nickname }}".into();
        let err = c.validate(&[]).unwrap_err();
        assert!(
            matches!(
                err,
                CampaignError::Template {
                    step: 2,
                    variant: 1,
                    field: "body",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("nickname"), "{err}");
    }

    #[test]
    fn sms_needs_no_subject_but_preferred_does() {
        let mut c = valid();
        c.steps[1].variants[0].subject = None;
        assert_eq!(c.validate(&[]), Ok(()));
        c.steps[1].channel = Channel::Preferred;
        assert_eq!(
            c.validate(&[]),
            Err(CampaignError::MissingSubject {
                step: 2,
                variant: 1
            })
        );
    }

    #[test]
    fn variants_are_bounded_named_uniquely_and_weighted() {
        let mut c = valid();
        c.steps[0].variants.clear();
        assert_eq!(c.validate(&[]), Err(CampaignError::NoVariants { step: 1 }));
        c.steps[0].variants = ["A", "B", "C", "D", "E"].map(|n| variant(n, 1)).to_vec();
        assert_eq!(
            c.validate(&[]),
            Err(CampaignError::TooManyVariants { step: 1, count: 5 })
        );
        c.steps[0].variants = vec![variant("A", 1), variant(" A ", 1)];
        assert!(matches!(
            c.validate(&[]),
            Err(CampaignError::DuplicateVariantName { step: 1, .. })
        ));
        c.steps[0].variants = vec![variant("A", 0), variant("B", 0)];
        assert_eq!(
            c.validate(&[]),
            Err(CampaignError::ZeroTotalWeight { step: 1 })
        );
        c.steps[0].variants = vec![variant("A", 0), variant("B", u32::MAX)];
        assert_eq!(c.validate(&[]), Ok(()));
    }

    #[test]
    fn campaign_level_fields_are_checked() {
        let mut c = valid();
        c.name = " ".into();
        assert_eq!(c.validate(&[]), Err(CampaignError::EmptyName));
        let mut c = valid();
        c.steps.clear();
        assert_eq!(c.validate(&[]), Err(CampaignError::NoSteps));
        let mut c = valid();
        c.trigger = Trigger::Event { name: "".into() };
        assert_eq!(c.validate(&[]), Err(CampaignError::EmptyEventName));
        let mut c = valid();
        c.max_attempts = 0;
        assert_eq!(c.validate(&[]), Err(CampaignError::AttemptsOutOfRange(0)));
        let mut c = valid();
        c.reentry_cooldown_ms = -1;
        assert_eq!(c.validate(&[]), Err(CampaignError::CooldownOutOfRange(-1)));
        let mut c = valid();
        c.quiet_hours = Some(QuietHours {
            start_minute: 600,
            end_minute: 600,
        });
        assert_eq!(c.validate(&[]), Err(CampaignError::QuietHoursEmpty));
        c.quiet_hours = Some(QuietHours {
            start_minute: 1440,
            end_minute: 600,
        });
        assert!(matches!(
            c.validate(&[]),
            Err(CampaignError::QuietMinuteOutOfRange { field: "start", .. })
        ));
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q = QuietHours {
            start_minute: 22 * 60,
            end_minute: 8 * 60,
        };
        assert!(q.contains(22 * 60));
        assert!(q.contains(0));
        assert!(q.contains(8 * 60 - 1));
        assert!(!q.contains(8 * 60));
        assert!(!q.contains(22 * 60 - 1));
        let day = QuietHours {
            start_minute: 12 * 60,
            end_minute: 13 * 60,
        };
        assert!(day.contains(12 * 60) && !day.contains(13 * 60) && !day.contains(0));
    }
}
