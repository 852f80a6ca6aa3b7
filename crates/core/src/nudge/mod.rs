//! The nudge engine's pure rules: what a campaign is and
//! when it is well formed, how its message templates are checked and
//! rendered, when quiet hours push a send later, how one customer moves
//! through one campaign, and which nudge a conversion is credited to.
//! Storage, the durable scheduler and the channel providers live outside this
//! crate; they pass the time, the customer's time zone and random numbers in
//! and act on the decisions they get back.

/// Conversion attribution: which nudge earned a conversion.
pub mod attribution;
/// Campaign definitions and their validation.
pub mod campaign;
/// The per-customer daily message cap across campaigns.
pub mod cap;
/// One message for one customer: rendering, tracked links, the HTML part.
pub mod compose;
/// One customer's progress through one campaign.
pub mod enrollment;
/// Quiet hours in the customer's time zone.
pub mod quiet;
/// Whether a campaign can reach a customer, and why a step was skipped.
pub mod reach;
/// Stop rules that hold at every moment: before enrolling and before
/// each send.
pub mod stops;
/// Message templates: save-time checks and strict rendering.
pub mod template;

pub use attribution::{attribute, Touch, Windows};
pub use campaign::{
    Campaign, CampaignError, Channel, QuietHours, Step, StopConditions, Trigger, Variant,
};
pub use cap::{cap_wait, FrequencyCap, Recent};
pub use compose::{compose, email_html_from_text, Composed, Draft, MessageLinks};
pub use enrollment::{
    can_reenter, pick_variant, Decision, Enrollment, Event, SentStep, StopReason,
};
pub use quiet::{next_allowed, TzError};
pub use reach::{unreachable, Reach, SkipReason};
pub use stops::{stop_before_enrolling, stop_before_sending, stop_event, StopFacts};
pub use template::{check, render, Escape, TemplateError, Vars};
