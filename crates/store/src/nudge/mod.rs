//! The nudge engine's storage: who is enrolled in which
//! campaign, every step execution and what became of it, opt-outs, and the
//! transactions that move them. The pure rules (when a step is due, which
//! variant, whether to stop, quiet hours, composing a message, attribution)
//! live in `bos_core::nudge`; these modules load their inputs and store
//! their answers, each decision in one transaction with its effects. The
//! public URLs a message carries come from the caller as a
//! [`MessageLinks`]: the storage knows no route and writes no HTML.
//!
//! "Never twice" (no message reaches a provider twice, even across crashes)
//! rests on one order of writes: a step's
//! execution row is committed as `sending`, under a unique idempotency key,
//! before the provider is called, and the enrollment has already moved past
//! the step in that same commit. A crash after that commit leaves the row in
//! `sending`; [`Store::sweep_sending`](crate::Store::sweep_sending) turns
//! such rows into `unknown` (shown to a person, never re-sent), because the
//! provider may have sent it.
//!
//! Triggers and stops run inside the transactions that observe them (the
//! pipeline's batch, the ghosting and abandonment timers), so an event can
//! never be processed without enrolling or stopping the customers it should.
//!
//! This file holds the shared vocabulary (the types callers see, the
//! stored names of statuses and channels) and the loaders every part
//! uses; the parts, one concern each:

/// The pages' reads: executions, enrollments, settings, previews.
mod admin;
/// Campaigns: the builder's and API's saves, status moves, live
/// figures and funnels.
mod campaigns;
/// Channel settings (sealed) and the webhook keys that name them.
mod channels;
/// Entering, stopping and converting: the triggers' and stops' writes.
mod enroll;
/// Messages customers send us: replies, and STOP/START keywords.
mod inbound;
/// What became of a claimed send: retries, provider answers, the sweep.
mod send;
/// A due step decided and its message claimed for sending.
mod step;
/// Opens, clicks, unsubscribes and opt-outs.
mod tracking;

pub use admin::{EnrollmentRow, Execution, ExecutionRow, Preview};
pub use bos_core::nudge::MessageLinks;
pub use campaigns::{CampaignRow, CampaignStats, CampaignSummary, VariantStat};
pub(crate) use channels::{load_channel, open_channel_config};
pub(crate) use enroll::{converted_tx, save_enrollment, set_step_timer, stop_tx, trigger_tx};
pub(crate) use tracking::opt_out_tx;

use crate::identity::NewEvent;
use crate::sql::{q, Db, Row};
use crate::{new_id, StoreError};
use bos_core::nudge::{
    Channel, Composed, Draft, FrequencyCap, SkipReason, StopFacts, StopReason, TemplateError,
    Trigger, Variant, Vars, Windows,
};
use bos_core::Millis;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A step falls due: payload `{"enrollment_id"}`, key `enroll:{id}`.
pub const STEP_JOB: &str = "nudge.step";
/// A failed send is tried again: payload `{"execution_id"}`, key `exec:{id}`.
pub const SEND_JOB: &str = "nudge.send";

/// An execution still `sending` this long after it was claimed was cut off
/// by a crash (providers answer within their own 30 s timeouts): its outcome
/// is unknown.
pub const SENDING_LEASE_MS: Millis = 2 * 60_000;

/// Our `Message-ID`s are the execution id at this domain, so a reply's
/// `In-Reply-To` names its execution without another index.
pub const MESSAGE_ID_DOMAIN: &str = "@bos.nudge";

/// The `From` of the development sink's email.
pub const DEV_FROM_EMAIL: &str = "BOS dev outbox <nudges@bos.invalid>";
pub const DEV_FROM_SMS: &str = "+15005550006";

/// A campaign's life: only `active` ones enroll and send. Pausing keeps
/// enrollments where they are; resuming sends what fell due meanwhile.
/// Archiving ends every enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Active,
    Paused,
    Archived,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Active => "active",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Archived => "archived",
        }
    }
    pub fn parse(s: &str) -> Option<CampaignStatus> {
        Some(match s {
            "draft" => CampaignStatus::Draft,
            "active" => CampaignStatus::Active,
            "paused" => CampaignStatus::Paused,
            "archived" => CampaignStatus::Archived,
            _ => return None,
        })
    }

    /// A stored status back; an unknown one is a damaged row.
    pub(crate) fn stored(s: &str) -> Result<CampaignStatus, StoreError> {
        CampaignStatus::parse(s)
            .ok_or_else(|| StoreError::Other(format!("unknown campaign status {s:?}")))
    }
}

/// The stored name of a trigger, for the `campaigns.trigger_kind` index.
pub fn trigger_kind(t: &Trigger) -> &'static str {
    match t {
        Trigger::LeadGhosting => "lead_ghosting",
        Trigger::CheckoutAbandoned => "checkout_abandoned",
        Trigger::FormStartedNotFinished => "form_started_not_finished",
        Trigger::Event { .. } => "event",
    }
}

/// How a tenant's channel sends. Secrets stay in the database and are
/// never shown again once saved (the UI shows whether one is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// The development sink: nothing leaves the machine; the outbox shows it.
    Dev,
    Smtp {
        host: String,
        port: u16,
        /// `none`, `starttls` or `implicit`.
        tls: String,
        username: Option<String>,
        password: Option<String>,
        /// `Name <address>`.
        from: String,
        /// Mailgun inbound routes: the HTTP webhook signing key.
        #[serde(default)]
        mailgun_signing_key: Option<String>,
        /// Postmark inbound: the password of the basic-auth URL.
        #[serde(default)]
        postmark_password: Option<String>,
    },
    Twilio {
        account_sid: String,
        auth_token: String,
        /// E.164 number or a Messaging Service SID (`MG…`).
        from: String,
        /// The shared key of a Twilio Webhooks Rule that signs with
        /// HMAC-SHA256 (used when a webhook carries
        /// `X-Twilio-Webhooks-Signature-Settings`).
        #[serde(default)]
        webhook_shared_key: Option<String>,
    },
}

impl ChannelConfig {
    pub fn provider(&self) -> &'static str {
        match self {
            ChannelConfig::Dev => "dev",
            ChannelConfig::Smtp { .. } => "smtp",
            ChannelConfig::Twilio { .. } => "twilio",
        }
    }
    /// The From address (or SMS sender) of messages sent with these settings.
    pub fn sender_addr(&self, channel: Channel) -> String {
        match self {
            ChannelConfig::Smtp { from, .. } | ChannelConfig::Twilio { from, .. } => from.clone(),
            ChannelConfig::Dev if channel == Channel::Sms => DEV_FROM_SMS.into(),
            ChannelConfig::Dev => DEV_FROM_EMAIL.into(),
        }
    }
}

/// A tenant's nudge settings: the time zone for customers without one, the
/// attribution windows, and the daily message cap per customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NudgeSettings {
    pub timezone: String,
    pub windows: Windows,
    pub cap: FrequencyCap,
}

impl Default for NudgeSettings {
    fn default() -> Self {
        NudgeSettings {
            timezone: "UTC".into(),
            windows: Windows::default(),
            cap: FrequencyCap::default(),
        }
    }
}

/// A send claimed for the caller to hand to the provider: the row is
/// `sending` and committed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub org_id: Uuid,
    pub execution_id: Uuid,
    pub campaign_id: Uuid,
    pub profile_id: Uuid,
    pub channel: Channel,
    pub to: String,
    pub from: String,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub message_id: String,
    pub idem_key: String,
    pub unsubscribe_url: Option<String>,
    pub status_callback: Option<String>,
    /// This attempt, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    pub config: ChannelConfig,
}

/// What became of a due step.
#[derive(Debug, Clone)]
pub enum StepOutcome {
    /// Nothing to send (stopped, finished, campaign gone); the reason.
    Nothing(String),
    /// Not yet (early wake-up, quiet hours, paused): the step job is set
    /// again for this time.
    Wait(Millis),
    Send(Box<Claimed>),
    /// Delivered to the development sink in the same commit: there is no
    /// provider to call.
    Delivered {
        execution: Uuid,
        /// The conversation that shows it, written in the same commit;
        /// `None` when the inbox refused it and a timer will show it.
        shown_in: Option<Uuid>,
    },
    /// The step could not be rendered for this customer (a missing value):
    /// recorded as a failed execution, and the sequence moved on.
    Failed(String),
}

/// A due step for [`Store::nudge_steps`]: whose, and the number that
/// picks its A/B variant.
#[derive(Debug, Clone, Copy)]
pub struct StepRequest {
    pub org: Uuid,
    pub enrollment: Uuid,
    pub random: u32,
}

/// A message a customer sent us.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub channel: Channel,
    /// Sender address: email or phone as received.
    pub from: String,
    pub to: String,
    pub subject: Option<String>,
    pub text: String,
    /// Provider id for dedupe (`MessageSid`, Postmark `MessageID`, Mailgun
    /// `Message-Id`).
    pub provider_id: String,
    pub provider: String,
    /// Message-IDs this one answers (`In-Reply-To`, `References`).
    pub in_reply_to: Vec<String>,
    /// SMS STOP / START keyword, or an emailed "unsubscribe".
    pub opt: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOutcome {
    pub profile_id: Uuid,
    pub duplicate: bool,
    /// Enrollments the message ended.
    pub stopped: usize,
    /// `Some(true)` opted out, `Some(false)` opted back in.
    pub opted: Option<bool>,
}

/// The stored name of a message's channel: `email` or `sms` (a
/// `Preferred` step is resolved before anything is stored; see
/// [`Channel::medium`]).
pub(crate) fn channel_str(c: Channel) -> &'static str {
    c.medium().as_str()
}

/// A stored channel back. Rows only ever hold `email` or `sms`; anything
/// else is a damaged row, reported rather than read as email.
pub(crate) fn parse_channel(s: &str) -> Result<Channel, StoreError> {
    match Channel::parse(s) {
        Some(c) if c == c.medium() => Ok(c),
        _ => Err(StoreError::Other(format!("unknown stored channel {s:?}"))),
    }
}

/// The identifier kind of a channel's addresses (`identity_links.kind`).
pub(crate) fn address_kind(c: Channel) -> &'static str {
    match c.medium() {
        Channel::Sms => "phone",
        _ => "email",
    }
}

/// Where a step execution stands. `sending` is committed before the
/// provider is called; `retrying` waits for its retry job; `sent`,
/// `delivered`, `undelivered`, `failed` and `unknown` are what became of
/// it (`unknown`: the provider may have sent it, so it is never re-sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionStatus {
    Sending,
    Retrying,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Unknown,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Sending => "sending",
            ExecutionStatus::Retrying => "retrying",
            ExecutionStatus::Sent => "sent",
            ExecutionStatus::Delivered => "delivered",
            ExecutionStatus::Undelivered => "undelivered",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        Some(match s {
            "sending" => ExecutionStatus::Sending,
            "retrying" => ExecutionStatus::Retrying,
            "sent" => ExecutionStatus::Sent,
            "delivered" => ExecutionStatus::Delivered,
            "undelivered" => ExecutionStatus::Undelivered,
            "failed" => ExecutionStatus::Failed,
            "unknown" => ExecutionStatus::Unknown,
            _ => return None,
        })
    }

    /// A stored status back; an unknown one is a damaged row.
    pub(crate) fn stored(s: &str) -> Result<ExecutionStatus, StoreError> {
        ExecutionStatus::parse(s)
            .ok_or_else(|| StoreError::Other(format!("unknown execution status {s:?}")))
    }

    /// How far along a delivery report may move it: reports apply forward
    /// only (`sent → delivered | undelivered | failed`).
    pub(crate) fn rank(self) -> u8 {
        match self {
            ExecutionStatus::Sending | ExecutionStatus::Retrying => 0,
            ExecutionStatus::Sent | ExecutionStatus::Unknown => 1,
            ExecutionStatus::Delivered | ExecutionStatus::Undelivered | ExecutionStatus::Failed => {
                2
            }
        }
    }
}

/// An enrollment is `active` until a stop reason ends it (`stopped`).
pub(crate) const ENROLLMENT_ACTIVE: &str = "active";
pub(crate) const ENROLLMENT_STOPPED: &str = "stopped";

/// An execution's token for tracking and unsubscribe links: 32 hex
/// characters, the send time in milliseconds (48 bits) then 80 random bits.
/// The random part makes it unguessable (a link names one message only);
/// the time prefix makes tokens of a batch of sends neighbours in the
/// token index, so a commit of hundreds of sends writes a few index pages
/// instead of one random page each.
pub(crate) fn send_token(now: Millis) -> String {
    // The thread's CSPRNG, not a v4 UUID: that is a system call per token.
    let r = rand::Rng::gen::<u128>(&mut rand::thread_rng()) & ((1u128 << 80) - 1);
    format!("{:012x}{r:020x}", (now.max(0) as u64) & 0xffff_ffff_ffff)
}

/// The stored name of why an enrollment ended (an opt-out's channel is in
/// the enrollment's state, not in this column).
pub(crate) fn stop_reason_str(r: StopReason) -> &'static str {
    match r {
        StopReason::Completed => "completed",
        StopReason::Converted => "converted",
        StopReason::Replied => "replied",
        StopReason::OptedOut(_) => "opted_out",
        StopReason::Removed => "removed",
        StopReason::Lost => "lost",
        StopReason::FormFinished => "form_finished",
    }
}

/// The query and row reading of a tenant's nudge settings, shared by the
/// write path ([`load_settings`]) and the read path (`Store::nudge_settings`).
pub(crate) const SETTINGS_SQL: &str =
    "select timezone, email_window_ms, sms_window_ms, email_cap_per_day, sms_cap_per_day \
     from nudge_settings where org_id = $1";

pub(crate) fn settings_row(r: Option<&Row>) -> Result<NudgeSettings, StoreError> {
    Ok(match r {
        Some(r) => NudgeSettings {
            timezone: r.text("timezone")?,
            windows: Windows {
                email_ms: r.i64("email_window_ms")?,
                sms_ms: r.i64("sms_window_ms")?,
            },
            cap: FrequencyCap {
                email_per_day: cap_of(r.i64("email_cap_per_day")?),
                sms_per_day: cap_of(r.i64("sms_cap_per_day")?),
            },
        },
        None => NudgeSettings::default(),
    })
}

/// A stored cap back, held to the range saving allows (a damaged value
/// caps rather than floods).
fn cap_of(n: i64) -> u32 {
    u32::try_from(n.clamp(1, i64::from(bos_core::nudge::cap::MAX_CAP_PER_DAY))).unwrap_or(1)
}

pub(crate) async fn load_settings<D: Db>(
    db: &mut D,
    org: Uuid,
) -> Result<NudgeSettings, StoreError> {
    settings_row(db.opt(q(SETTINGS_SQL).bind(org)).await?.as_ref())
}

/// What a profile offers a template and a sender.
#[derive(Debug, Clone, Default)]
pub(crate) struct Person {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub traits: serde_json::Map<String, Value>,
}

pub(crate) async fn load_person<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
) -> Result<Person, StoreError> {
    Ok(load_person_of(db, org, root, (true, true)).await?.1)
}

/// The person a profile id belongs to now (its cluster's root): the root's
/// id and what it offers. `need` says whether a missing email and a missing
/// phone should be looked up among the cluster's other identifiers (a send
/// on one channel does not need the other).
pub(crate) async fn load_person_of<D: Db>(
    db: &mut D,
    org: Uuid,
    profile: Uuid,
    need: (bool, bool),
) -> Result<(Uuid, Person), StoreError> {
    let r = db
        .opt(
            q("select r.id, r.first_name, r.last_name, r.company, r.primary_email, r.primary_phone, r.traits \
               from profiles p join profiles r on r.org_id = p.org_id and r.id = p.root_id \
               where p.org_id = $1 and p.id = $2")
            .bind(org)
            .bind(profile),
        )
        .await?;
    let Some(r) = r else {
        return Ok((profile, Person::default()));
    };
    let root = r.uuid("id")?;
    let mut p = Person {
        first_name: r.text("first_name")?,
        last_name: r.text("last_name")?,
        company: r.text("company")?,
        email: Some(r.text("primary_email")?).filter(|s| !s.is_empty()),
        phone: Some(r.text("primary_phone")?).filter(|s| !s.is_empty()),
        traits: serde_json::from_str(&r.text("traits")?).unwrap_or_default(),
    };
    if (need.0 && p.email.is_none()) || (need.1 && p.phone.is_none()) {
        let links = db
            .rows(
                q(
                    "select kind, value from identity_links where org_id = $1 and root_id = $2 \
                   and kind in ('email', 'phone') order by last_seen_at desc",
                )
                .bind(org)
                .bind(root),
            )
            .await?;
        for l in links {
            let (k, v) = (l.text("kind")?, l.text("value")?);
            if k == address_kind(Channel::Email) && p.email.is_none() {
                p.email = Some(v);
            } else if k == address_kind(Channel::Sms) && p.phone.is_none() {
                p.phone = Some(v);
            }
        }
    }
    Ok((root, p))
}

/// The template values for one customer and one message, but for the
/// tracked links (`cart_url`, `unsubscribe_url`), which composing adds.
pub(crate) fn vars_for(p: &Person, ctx: &Value) -> Vars {
    let mut v = Vars::new();
    for (name, val) in [
        ("first_name", &p.first_name),
        ("last_name", &p.last_name),
        ("company", &p.company),
    ] {
        if !val.trim().is_empty() {
            v = v.with(name, val.trim());
        }
    }
    if let Some(t) = ctx.get("cart_total").and_then(Value::as_str) {
        v = v.with("cart_total", t);
    }
    for (k, val) in &p.traits {
        let s = match val {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        if !s.is_empty() {
            v = v.with_trait(k, s);
        }
    }
    v
}

/// Composes one variant for one person with the caller's links (the
/// rules are core's; this supplies the person's values and the cart).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(
    variant: &Variant,
    channel: Channel,
    person: &Person,
    ctx: &Value,
    links: &dyn MessageLinks,
    token: &str,
    html: bool,
) -> Result<Composed, TemplateError> {
    let vars = vars_for(person, ctx);
    let draft = Draft {
        variant,
        channel,
        vars: &vars,
        link: cart_link(ctx),
        token,
        html,
    };
    bos_core::nudge::compose(draft, links)
}

/// Where a message's link leads: the cart the trigger saw, if any.
pub(crate) fn cart_link(ctx: &Value) -> Option<&str> {
    ctx.get("cart_url").and_then(Value::as_str)
}

/// This person's opt-outs with their time, one query for both addresses:
/// by address, so an opt-out holds across merges and profiles. (A channel
/// without an address is blocked too, by the caller.)
pub(crate) async fn opt_outs_of<D: Db>(
    db: &mut D,
    org: Uuid,
    p: &Person,
) -> Result<Vec<(Channel, Millis)>, StoreError> {
    if p.email.is_none() && p.phone.is_none() {
        return Ok(Vec::new());
    }
    let rows = db
        .rows(
            q("select channel, at from opt_outs where org_id = $1 and \
               ((channel = 'email' and address = $2) or (channel = 'sms' and address = $3))")
            .bind(org)
            .bind(p.email.clone().unwrap_or_default())
            .bind(p.phone.clone().unwrap_or_default()),
        )
        .await?;
    rows.iter()
        .map(|r| Ok((parse_channel(&r.text("channel")?)?, r.i64("at")?)))
        .collect()
}

/// What ended this customer's interest in being nudged, and when (see
/// [`bos_core::nudge::stops`]): the lead's conversion or loss, their
/// latest reply to a nudge, and their opt-outs (`opt_outs`, loaded by the
/// caller with [`opt_outs_of`]).
pub(crate) async fn load_stop_facts<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    opt_outs: Vec<(Channel, Millis)>,
) -> Result<StopFacts, StoreError> {
    let r = db
        .opt(
            q("select l.state as lead_state, l.state_at as lead_state_at, l.last_converted_at, \
               (select max(x.replied_at) from nudge_executions x where x.org_id = l.org_id and x.profile_id in \
               (select id from profiles where org_id = l.org_id and root_id = l.profile_id)) as replied_at \
               from leads l where l.org_id = $1 and l.profile_id = $2")
            .bind(org)
            .bind(root),
        )
        .await?;
    let mut facts = match r {
        Some(r) => stop_facts_of(&r)?,
        None => StopFacts::default(),
    };
    facts.opted_out = opt_outs;
    Ok(facts)
}

/// The lead's part of [`StopFacts`] from a row with `lead_state`,
/// `lead_state_at`, `last_converted_at` and `replied_at` (each may be null:
/// no lead row).
pub(crate) fn stop_facts_of(r: &Row) -> Result<StopFacts, StoreError> {
    let state = r.opt_text("lead_state")?;
    let state_at = r.opt_i64("lead_state_at")?;
    let at_if = |s: &str| state_at.filter(|_| state.as_deref() == Some(s));
    let converted_at = [r.opt_i64("last_converted_at")?, at_if("converted")]
        .into_iter()
        .flatten()
        .max();
    Ok(StopFacts {
        converted_at,
        lost_at: at_if("lost"),
        replied_at: r.opt_i64("replied_at")?,
        opted_out: Vec::new(),
    })
}

/// Counts a step that went out late or not at all (or, with no step, a
/// customer the campaign could not enroll) under its reason, once per
/// enrollment, step and reason, and says so on the customer's timeline.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_skip<D: Db>(
    db: &mut D,
    org: Uuid,
    campaign: Uuid,
    root: Uuid,
    enrollment: Option<Uuid>,
    step: Option<usize>,
    reason: SkipReason,
    summary: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let n = db
        .exec(
            q("insert into nudge_skips (org_id, id, campaign_id, profile_id, enrollment_id, step, reason, detail, at) \
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict do nothing")
            .bind(org)
            .bind(new_id())
            .bind(campaign)
            .bind(root)
            .bind(enrollment)
            .bind(step.map(|s| s as i64))
            .bind(reason.as_str())
            .bind(summary)
            .bind(now),
        )
        .await?;
    if n == 0 {
        return Ok(());
    }
    let key = match (enrollment, step) {
        (Some(e), Some(s)) => format!("skip:{e}:{s}:{}", reason.as_str()),
        _ => format!("skip:{campaign}:{root}:{now}"),
    };
    timeline(
        db,
        org,
        root,
        now,
        "nudge_skipped",
        summary,
        serde_json::json!({
            "campaign_id": campaign,
            "enrollment_id": enrollment,
            "step": step,
            "reason": reason.as_str(),
        }),
        &key,
    )
    .await
}

/// The channel a customer prefers: the `preferred_channel` trait when set,
/// else the one they last wrote to us on, else email when they have one.
pub(crate) fn preferred(p: &Person) -> Channel {
    let named = p
        .traits
        .get("preferred_channel")
        .and_then(Value::as_str)
        .and_then(Channel::parse);
    match named {
        Some(c @ (Channel::Sms | Channel::Email)) => c,
        _ if p.email.is_none() && p.phone.is_some() => Channel::Sms,
        _ => Channel::Email,
    }
}

/// Writes a nudge entry on a customer's timeline (once per key).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn timeline<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    at: Millis,
    kind: &str,
    summary: &str,
    data: Value,
    key: &str,
) -> Result<(), StoreError> {
    let e = NewEvent {
        kind: kind.into(),
        summary: summary.into(),
        occurred_at: at,
        data: data.to_string(),
        key: Some(key.into()),
        revenue_cents: 0,
        is_order: false,
    };
    timeline_event(db, org, root, &e).await
}

/// Writes an event on a customer's timeline as the nudge engine's (once
/// per key).
pub(crate) async fn timeline_event<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    e: &NewEvent,
) -> Result<(), StoreError> {
    db.exec(
        q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, data, event_key) \
           values ($1, $2, $3, $3, $4, $5, 'nudge', $6, $7, $8) on conflict do nothing")
        .bind(org)
        .bind(new_id())
        .bind(root)
        .bind(e.occurred_at)
        .bind(e.kind.as_str())
        .bind(e.summary.as_str())
        .bind(e.data.as_str())
        .bind(e.key.clone()),
    )
    .await?;
    Ok(())
}

/// Status sums per step: the funnel a campaign page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepFunnel {
    pub step: i64,
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub replied: i64,
    pub converted: i64,
    pub failed: i64,
    pub unknown: i64,
    pub pending: i64,
    pub converted_cents: i64,
    /// Customers this step went out late for, or not at all, by reason
    /// (every reason, zeros included, in [`SkipReason::ALL`] order).
    pub skipped: Vec<SkipCount>,
}

/// How many customers a step (or the enrollment itself) skipped or moved
/// for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkipCount {
    /// The stored name: `no_address`, `opted_out`, `quiet_hours`, `cap` or
    /// `stopped`.
    pub reason: String,
    /// What a person reads.
    pub label: String,
    pub count: i64,
}

impl SkipCount {
    /// Every reason at zero, for a step nothing was skipped on yet.
    pub fn zeros() -> Vec<SkipCount> {
        SkipReason::ALL
            .into_iter()
            .map(|r| SkipCount {
                reason: r.as_str().into(),
                label: r.label().into(),
                count: 0,
            })
            .collect()
    }
}
