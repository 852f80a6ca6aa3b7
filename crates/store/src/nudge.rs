//! The nudge engine's storage: who is enrolled in which
//! campaign, every step execution and what became of it, opt-outs, and the
//! transactions that move them. The pure rules (when a step is due, which
//! variant, whether to stop, quiet hours, rendering, attribution) live in
//! `bos_core::nudge`; this module loads their inputs and stores their
//! answers, each decision in one transaction with its effects.
//!
//! "Never twice" (no message reaches a provider twice, even across crashes)
//! rests on one order of writes: a step's
//! execution row is committed as `sending`, under a unique idempotency key,
//! before the provider is called, and the enrollment has already moved past
//! the step in that same commit. A crash after that commit leaves the row in
//! `sending`; [`Store::sweep_sending`] turns such rows into `unknown` (shown
//! to a person, never re-sent), because the provider may have sent it.
//!
//! Triggers and stops run inside the transactions that observe them (the
//! pipeline's batch, the ghosting and abandonment timers), so an event can
//! never be processed without enrolling or stopping the customers it should.

use crate::engine::write_db;
use crate::identity::{identify_tx, IdentifyInput, NewEvent, Traits};
use crate::secrets::{channel_context, Keyring};
use crate::sql::{q, Db, Row};
use crate::{new_id, StoreError};
use bos_core::identity::{normalize, IdentifierKind};
use bos_core::nudge::{
    self, attribute, Campaign, Channel, Decision, Enrollment, Escape, Event, StopReason, Touch,
    Trigger, Vars, Windows,
};
use bos_core::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
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

/// Where the unsubscribe page and tracking routes live, under the public URL.
pub const UNSUBSCRIBE_PATH: &str = "/u/";
pub const CLICK_PATH: &str = "/t/c/";
pub const OPEN_PATH: &str = "/t/o/";

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
    fn sender_addr(&self, channel: Channel) -> String {
        match self {
            ChannelConfig::Smtp { from, .. } | ChannelConfig::Twilio { from, .. } => from.clone(),
            ChannelConfig::Dev if channel == Channel::Sms => DEV_FROM_SMS.into(),
            ChannelConfig::Dev => DEV_FROM_EMAIL.into(),
        }
    }
}

/// A tenant's nudge settings: the time zone for customers without one, and
/// the attribution windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NudgeSettings {
    pub timezone: String,
    pub windows: Windows,
}

impl Default for NudgeSettings {
    fn default() -> Self {
        NudgeSettings {
            timezone: "UTC".into(),
            windows: Windows::default(),
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
    /// Delivered to the development sink in the same commit (this
    /// execution): there is no provider to call.
    Delivered(Uuid),
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

pub(crate) fn channel_str(c: Channel) -> &'static str {
    match c {
        Channel::Sms => "sms",
        _ => "email",
    }
}

pub(crate) fn parse_channel(s: &str) -> Channel {
    if s == "sms" {
        Channel::Sms
    } else {
        Channel::Email
    }
}

/// 128 random bits from the operating system's CSPRNG, hex: a channel's
/// webhook key. (A v4 UUID fixes six of its bits, leaving 122.)
fn token() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    format!("{:032x}", u128::from_be_bytes(b))
}

/// An execution's token for tracking and unsubscribe links: 32 hex
/// characters, the send time in milliseconds (48 bits) then 80 random bits.
/// The random part makes it unguessable (a link names one message only);
/// the time prefix makes tokens of a batch of sends neighbours in the
/// token index, so a commit of hundreds of sends writes a few index pages
/// instead of one random page each.
fn send_token(now: Millis) -> String {
    // The thread's CSPRNG, not a v4 UUID: that is a system call per token.
    let r = rand::Rng::gen::<u128>(&mut rand::thread_rng()) & ((1u128 << 80) - 1);
    format!("{:012x}{r:020x}", (now.max(0) as u64) & 0xffff_ffff_ffff)
}

fn stop_reason_str(r: StopReason) -> &'static str {
    match r {
        StopReason::Completed => "completed",
        StopReason::Converted => "converted",
        StopReason::Replied => "replied",
        StopReason::OptedOut(_) => "opted_out",
        StopReason::Removed => "removed",
    }
}

/// The query and row reading of a tenant's nudge settings, shared by the
/// write path ([`load_settings`]) and the read path (`Store::nudge_settings`).
pub(crate) const SETTINGS_SQL: &str =
    "select timezone, email_window_ms, sms_window_ms from nudge_settings where org_id = $1";

pub(crate) fn settings_row(r: Option<&Row>) -> Result<NudgeSettings, StoreError> {
    Ok(match r {
        Some(r) => NudgeSettings {
            timezone: r.text(0)?,
            windows: Windows {
                email_ms: r.i64(1)?,
                sms_ms: r.i64(2)?,
            },
        },
        None => NudgeSettings::default(),
    })
}

pub(crate) async fn load_settings<D: Db>(
    db: &mut D,
    org: Uuid,
) -> Result<NudgeSettings, StoreError> {
    settings_row(db.opt(q(SETTINGS_SQL).bind(org)).await?.as_ref())
}

pub(crate) async fn load_channel<D: Db>(
    db: &mut D,
    keys: &Keyring,
    org: Uuid,
    channel: Channel,
) -> Result<(ChannelConfig, Option<String>), StoreError> {
    let r = db
        .opt(
            q("select config, hook_key from channel_settings where org_id = $1 and channel = $2")
                .bind(org)
                .bind(channel_str(channel)),
        )
        .await?;
    Ok(match r {
        Some(r) => (
            open_channel_config(keys, org, channel, &r.text(0)?)?,
            Some(r.text(1)?),
        ),
        None => (ChannelConfig::Dev, None),
    })
}

/// A channel's stored settings, opened (they hold its secrets, sealed).
/// A key that does not open them is an error, never the development sink:
/// sends must not quietly go nowhere.
pub(crate) fn open_channel_config(
    keys: &Keyring,
    org: Uuid,
    channel: Channel,
    stored: &str,
) -> Result<ChannelConfig, StoreError> {
    let json = keys.open(&channel_context(org, channel_str(channel)), stored)?;
    Ok(serde_json::from_str(&json).unwrap_or(ChannelConfig::Dev))
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
    let root = r.uuid(0)?;
    let mut p = Person {
        first_name: r.text(1)?,
        last_name: r.text(2)?,
        company: r.text(3)?,
        email: Some(r.text(4)?).filter(|s| !s.is_empty()),
        phone: Some(r.text(5)?).filter(|s| !s.is_empty()),
        traits: serde_json::from_str(&r.text(6)?).unwrap_or_default(),
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
            let (k, v) = (l.text(0)?, l.text(1)?);
            if k == "email" && p.email.is_none() {
                p.email = Some(v);
            } else if k == "phone" && p.phone.is_none() {
                p.phone = Some(v);
            }
        }
    }
    Ok((root, p))
}

/// The template values for one customer and one message. `links` carries
/// the tracked click-through and unsubscribe URLs when a message is being
/// built (a preview shows them too).
pub(crate) fn vars_for(
    p: &Person,
    ctx: &Value,
    cart_link: Option<&str>,
    unsubscribe: Option<&str>,
) -> Vars {
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
    if let Some(url) = cart_link {
        v = v.with("cart_url", url);
    }
    if let Some(t) = ctx.get("cart_total").and_then(Value::as_str) {
        v = v.with("cart_total", t);
    }
    if let Some(u) = unsubscribe {
        v = v.with("unsubscribe_url", u);
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

/// The channels this person opted out of: by address, so an opt-out holds
/// across merges and profiles. (A channel without an address is blocked
/// too, by the caller.)
pub(crate) async fn opted_out_channels<D: Db>(
    db: &mut D,
    org: Uuid,
    p: &Person,
) -> Result<Vec<Channel>, StoreError> {
    let mut out = Vec::new();
    for (ch, addr) in [(Channel::Email, &p.email), (Channel::Sms, &p.phone)] {
        if let Some(a) = addr {
            let r = db
                .opt(
                    q("select 1 from opt_outs where org_id = $1 and channel = $2 and address = $3")
                        .bind(org)
                        .bind(channel_str(ch))
                        .bind(a.as_str()),
                )
                .await?;
            if r.is_some() {
                out.push(ch);
            }
        }
    }
    Ok(out)
}

/// The channel a customer prefers: the `preferred_channel` trait when set,
/// else the one they last wrote to us on, else email when they have one.
pub(crate) fn preferred(p: &Person) -> Channel {
    match p.traits.get("preferred_channel").and_then(Value::as_str) {
        Some("sms") => Channel::Sms,
        Some("email") => Channel::Email,
        _ if p.email.is_none() && p.phone.is_some() => Channel::Sms,
        _ => Channel::Email,
    }
}

/// When quiet hours end for this person: in their own time zone (a
/// `timezone` trait) when it is a real one, else the tenant's, else UTC.
fn quiet_until(
    p: &Person,
    settings: &NudgeSettings,
    now: Millis,
    quiet: &nudge::QuietHours,
) -> Millis {
    let own = ["timezone", "time_zone", "tz"]
        .iter()
        .find_map(|k| p.traits.get(*k).and_then(Value::as_str));
    own.into_iter()
        .chain([settings.timezone.as_str(), "UTC"])
        .find_map(|tz| nudge::next_allowed(now, tz, quiet).ok())
        .unwrap_or(now)
}

pub(crate) async fn set_step_timer<D: Db>(
    db: &mut D,
    org: Uuid,
    enrollment: Uuid,
    run_at: Millis,
    now: Millis,
    timers: &mut Vec<Millis>,
) -> Result<(), StoreError> {
    crate::pipeline::set_timer(
        db,
        org,
        STEP_JOB,
        &format!("enroll:{enrollment}"),
        json!({ "enrollment_id": enrollment }).to_string(),
        run_at,
        now,
    )
    .await?;
    timers.push(run_at);
    Ok(())
}

/// Enrolls `root` in every active campaign with this trigger (and event
/// name), unless already in it or inside its re-entry cooldown. `ctx` holds
/// what the trigger knows (`cart_url`, `cart_total`), for templates.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn trigger_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    kind: &str,
    event_name: Option<&str>,
    ctx: &Value,
    at: Millis,
    now: Millis,
    timers: &mut Vec<Millis>,
) -> Result<usize, StoreError> {
    let campaigns = db
        .rows(
            q("select id, definition, name from campaigns where org_id = $1 and trigger_kind = $2 and status = 'active'")
                .bind(org)
                .bind(kind),
        )
        .await?;
    if campaigns.is_empty() {
        return Ok(0);
    }
    let person = load_person(db, org, root).await?;
    let opted = opted_out_channels(db, org, &person).await?;
    let mut enrolled = 0;
    for c in campaigns {
        let cid = c.uuid(0)?;
        let Ok(campaign) = serde_json::from_str::<Campaign>(&c.text(1)?) else {
            continue;
        };
        if let (Trigger::Event { name }, Some(ev)) = (&campaign.trigger, event_name) {
            if name.trim() != ev.trim() {
                continue;
            }
        }
        let last = db
            .opt(
                q("select status, ended_at from enrollments where org_id = $1 and campaign_id = $2 and profile_id = $3 \
                   order by started_at desc limit 1")
                .bind(org)
                .bind(cid)
                .bind(root),
            )
            .await?;
        if let Some(l) = last {
            if l.text(0)? == "active" {
                continue;
            }
            if let Some(ended) = l.opt_i64(1)? {
                if !nudge::can_reenter(&campaign, now, ended) {
                    continue;
                }
            }
        }
        let id = new_id();
        let mut e = Enrollment::new(
            cid.to_string(),
            root.to_string(),
            id.to_string(),
            opted.clone(),
        );
        e.on_trigger(&campaign, at);
        let inserted = db
            .exec(
                q("insert into enrollments (org_id, id, campaign_id, profile_id, state, status, context, next_due, \
                   started_at, updated_at) values ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $8) on conflict do nothing")
                .bind(org)
                .bind(id)
                .bind(cid)
                .bind(root)
                .bind(serde_json::to_string(&e).unwrap_or_default())
                .bind(ctx.to_string())
                .bind(e.next_due)
                .bind(now),
            )
            .await?;
        if inserted == 0 {
            continue;
        }
        if let Some(due) = e.next_due {
            set_step_timer(db, org, id, due, now, timers).await?;
        }
        timeline(
            db,
            org,
            root,
            now,
            "nudge",
            &format!("Entered campaign \u{201c}{}\u{201d}", c.text(2)?),
            json!({ "campaign_id": cid, "enrollment_id": id }),
            &format!("enroll:{id}"),
        )
        .await?;
        enrolled += 1;
    }
    Ok(enrolled)
}

#[allow(clippy::too_many_arguments)]
async fn timeline<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    at: Millis,
    kind: &str,
    summary: &str,
    data: Value,
    key: &str,
) -> Result<(), StoreError> {
    db.exec(
        q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, data, event_key) \
           values ($1, $2, $3, $3, $4, $5, 'nudge', $6, $7, $8) on conflict do nothing")
        .bind(org)
        .bind(new_id())
        .bind(root)
        .bind(at)
        .bind(kind)
        .bind(summary)
        .bind(data.to_string())
        .bind(key),
    )
    .await?;
    Ok(())
}

/// Feeds `event` to every active enrollment of `root` (and of profiles
/// merged into it); returns how many it ended. Stopped enrollments lose
/// their step timer.
pub(crate) async fn stop_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    event: Event,
    only_trigger: Option<&str>,
    now: Millis,
) -> Result<usize, StoreError> {
    let rows = db
        .rows(
            q(
                "select e.id, e.state, c.definition, c.trigger_kind from enrollments e \
               join campaigns c on c.org_id = e.org_id and c.id = e.campaign_id \
               where e.org_id = $1 and e.status = 'active' and e.profile_id in \
               (select id from profiles where org_id = $1 and root_id = $2)",
            )
            .bind(org)
            .bind(root),
        )
        .await?;
    let mut stopped = 0;
    for r in rows {
        let trigger = r.text(3)?;
        if only_trigger.is_some_and(|t| t != trigger) {
            continue;
        }
        let id = r.uuid(0)?;
        let (Ok(mut e), Ok(campaign)) = (
            serde_json::from_str::<Enrollment>(&r.text(1)?),
            serde_json::from_str::<Campaign>(&r.text(2)?),
        ) else {
            continue;
        };
        let ended = e.on_event(&campaign, event);
        save_enrollment(db, org, id, &e, now).await?;
        if ended {
            stopped += 1;
        }
    }
    Ok(stopped)
}

pub(crate) async fn save_enrollment<D: Db>(
    db: &mut D,
    org: Uuid,
    id: Uuid,
    e: &Enrollment,
    now: Millis,
) -> Result<(), StoreError> {
    write_enrollment(db, org, id, e, now, true).await
}

/// Saves the state; `cancel_timer` removes a pending step timer when it
/// ended (the step handler passes false: its own timer is the one running,
/// so none is pending).
async fn write_enrollment<D: Db>(
    db: &mut D,
    org: Uuid,
    id: Uuid,
    e: &Enrollment,
    now: Millis,
    cancel_timer: bool,
) -> Result<(), StoreError> {
    let (status, reason, ended) = match e.stopped {
        Some(r) => ("stopped", Some(stop_reason_str(r).to_string()), Some(now)),
        None => ("active", None, None),
    };
    db.exec(
        q(
            "update enrollments set state = $3, status = $4, stop_reason = $5, next_due = $6, \
           ended_at = coalesce(ended_at, $7), updated_at = $8 where org_id = $1 and id = $2",
        )
        .bind(org)
        .bind(id)
        .bind(serde_json::to_string(e).unwrap_or_default())
        .bind(status)
        .bind(reason)
        .bind(e.next_due)
        .bind(ended)
        .bind(now),
    )
    .await?;
    if cancel_timer && e.stopped.is_some() {
        crate::pipeline::cancel_timer(db, org, STEP_JOB, &format!("enroll:{id}")).await?;
    }
    Ok(())
}

/// A conversion (an order, or a person marking the lead won): ends the
/// enrollments that stop on it, and credits the conversion to the nudge the
/// attribution rule picks, once.
pub(crate) async fn converted_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    at: Millis,
    value_cents: Option<i64>,
    now: Millis,
) -> Result<Option<Uuid>, StoreError> {
    stop_tx(db, org, root, Event::Converted, None, now).await?;
    let settings = load_settings(db, org).await?;
    let horizon = at - settings.windows.email_ms.max(settings.windows.sms_ms);
    let rows = db
        .rows(
            q("select id, idem_key, channel, sent_at, opened_at, clicked_at, replied_at from nudge_executions \
               where org_id = $1 and profile_id in (select id from profiles where org_id = $1 and root_id = $2) \
               and sent_at is not null and sent_at >= $3 and converted_at is null \
               and status in ('sent', 'delivered', 'unknown')")
            .bind(org)
            .bind(root)
            .bind(horizon),
        )
        .await?;
    let mut touches = Vec::new();
    let mut ids = Vec::new();
    for r in rows {
        let interacted = [r.opt_i64(4)?, r.opt_i64(5)?, r.opt_i64(6)?]
            .into_iter()
            .flatten()
            .filter(|t| *t <= at)
            .max();
        touches.push(Touch {
            nudge_key: r.text(1)?,
            channel: parse_channel(&r.text(2)?),
            sent_at: r.i64(3)?,
            interacted_at: interacted,
        });
        ids.push((r.text(1)?, r.uuid(0)?));
    }
    let Some(t) = attribute(at, &touches, settings.windows) else {
        return Ok(None);
    };
    let Some((_, id)) = ids.iter().find(|(k, _)| *k == t.nudge_key) else {
        return Ok(None);
    };
    db.exec(
        q(
            "update nudge_executions set converted_at = $3, converted_cents = $4, updated_at = $5 \
           where org_id = $1 and id = $2 and converted_at is null",
        )
        .bind(org)
        .bind(*id)
        .bind(at)
        .bind(value_cents)
        .bind(now),
    )
    .await?;
    Ok(Some(*id))
}

/// What `nudge_step` and `claim_retry` read to build a message.
pub(crate) struct Built {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub link: Option<String>,
}

fn tracked(base: &str, path: &str, token: &str) -> String {
    format!("{}{path}{token}", base.trim_end_matches('/'))
}

/// Renders one variant for one person. Email gets an HTML part with values
/// escaped, line breaks kept, and the open pixel (unless `html` is false:
/// the development sink keeps only the text); SMS is plain text.
pub(crate) fn build(
    variant: &nudge::Variant,
    channel: Channel,
    person: &Person,
    ctx: &Value,
    base: &str,
    tok: &str,
    html: bool,
) -> Result<Built, nudge::TemplateError> {
    let link = ctx
        .get("cart_url")
        .and_then(Value::as_str)
        .map(str::to_string);
    let click = link.as_ref().map(|_| tracked(base, CLICK_PATH, tok));
    let unsub = tracked(base, UNSUBSCRIBE_PATH, tok);
    let vars = vars_for(person, ctx, click.as_deref(), Some(&unsub));
    if channel == Channel::Sms {
        let text = nudge::render(&variant.body, &vars, Escape::None)?;
        return Ok(Built {
            subject: None,
            text,
            html: None,
            link,
        });
    }
    let subject = match &variant.subject {
        Some(s) => Some(nudge::render(s, &vars, Escape::None)?),
        None => None,
    };
    let text = nudge::render(&variant.body, &vars, Escape::None)?;
    let html = if html {
        let html_body = nudge::render(&variant.body, &vars, Escape::Html)?;
        Some(email_html(&html_body, base, tok))
    } else {
        None
    };
    let text = if text.contains(&unsub) {
        text
    } else {
        format!("{text}\n\nUnsubscribe: {unsub}")
    };
    Ok(Built {
        subject,
        text,
        html,
        link,
    })
}

/// The HTML part of a nudge email: the (already escaped) body with its
/// line breaks, the unsubscribe link and the open pixel. The first send
/// and its retries build it here, so they look the same.
fn email_html(body_html: &str, base: &str, tok: &str) -> String {
    format!(
        "<!doctype html><html><body><div style=\"font-family:sans-serif;font-size:15px;line-height:1.5\">{}</div>\
         <p style=\"font-size:12px;color:#888\"><a href=\"{}\">Unsubscribe</a></p>\
         <img src=\"{}\" width=\"1\" height=\"1\" alt=\"\"></body></html>",
        body_html.replace('\n', "<br>\n"),
        tracked(base, UNSUBSCRIBE_PATH, tok),
        tracked(base, OPEN_PATH, tok),
    )
}

fn status_callback(base: &str, hook: Option<&str>) -> Option<String> {
    hook.map(|h| format!("{}/hooks/twilio/{h}/status", base.trim_end_matches('/')))
}

/// What the steps of one batch share: campaign definitions (parsed once,
/// and again only if the stored text differs) and channel settings (no
/// write in the batch changes them).
struct StepCache {
    campaigns: HashMap<Uuid, (String, std::sync::Arc<Campaign>)>,
    channels: HashMap<(Uuid, Channel), (ChannelConfig, Option<String>)>,
    keys: std::sync::Arc<Keyring>,
}

impl StepCache {
    fn campaign(&mut self, id: Uuid, def: String) -> Result<std::sync::Arc<Campaign>, StoreError> {
        if let Some((text, c)) = self.campaigns.get(&id) {
            if *text == def {
                return Ok(c.clone());
            }
        }
        let c: std::sync::Arc<Campaign> = std::sync::Arc::new(
            serde_json::from_str(&def)
                .map_err(|e| StoreError::Invalid(format!("campaign definition: {e}")))?,
        );
        self.campaigns.insert(id, (def, c.clone()));
        Ok(c)
    }
}

/// One due step inside the caller's transaction (see `Store::nudge_steps`).
async fn step_one<D: Db>(
    db: &mut D,
    cache: &mut StepCache,
    step: StepRequest,
    now: Millis,
    base_url: &str,
    timers: &mut Vec<Millis>,
) -> Result<StepOutcome, StoreError> {
    let StepRequest {
        org,
        enrollment,
        random,
    } = step;
    let r = db
        .opt(
            q("select e.state, e.status, e.profile_id, e.context, c.definition, c.status, c.id from enrollments e \
               left join campaigns c on c.org_id = e.org_id and c.id = e.campaign_id \
               where e.org_id = $1 and e.id = $2")
            .bind(org)
            .bind(enrollment),
        )
        .await?;
    let Some(r) = r else {
        return Ok(StepOutcome::Nothing("enrollment not found".into()));
    };
    if r.text(1)? != "active" {
        return Ok(StepOutcome::Nothing("enrollment ended".into()));
    }
    let mut e: Enrollment = serde_json::from_str(&r.text(0)?)
        .map_err(|e| StoreError::Invalid(format!("enrollment state: {e}")))?;
    let profile = r.uuid(2)?;
    let ctx: Value = serde_json::from_str(&r.text(3)?).unwrap_or_default();
    let (Some(def), Some(cstatus), Some(cid)) = (r.opt_text(4)?, r.opt_text(5)?, r.opt_uuid(6)?)
    else {
        e.on_event(&empty_campaign(), Event::Removed);
        save_enrollment(db, org, enrollment, &e, now).await?;
        return Ok(StepOutcome::Nothing("campaign deleted".into()));
    };
    let campaign = cache.campaign(cid, def)?;
    let campaign = &*campaign;
    match CampaignStatus::parse(&cstatus) {
        Some(CampaignStatus::Active) => {}
        Some(CampaignStatus::Archived) => {
            e.on_event(campaign, Event::Removed);
            save_enrollment(db, org, enrollment, &e, now).await?;
            return Ok(StepOutcome::Nothing("campaign archived".into()));
        }
        // Resuming sets the timers of waiting enrollments again.
        _ => return Ok(StepOutcome::Nothing("campaign paused".into())),
    }
    let Some(due) = e.next_due else {
        return Ok(StepOutcome::Nothing("nothing due".into()));
    };
    // Never early: a timer that fired before its time, or a
    // clock that went back, waits for the step's time.
    if now < due {
        set_step_timer(db, org, enrollment, due, now, timers).await?;
        return Ok(StepOutcome::Wait(due));
    }
    let uses = |c: Channel| {
        campaign
            .steps
            .iter()
            .any(|s| s.channel == c || s.channel == Channel::Preferred)
    };
    let need = (uses(Channel::Email), uses(Channel::Sms));
    let (root, person) = load_person_of(db, org, profile, need).await?;
    if let Some(quiet) = &campaign.quiet_hours {
        let settings = load_settings(db, org).await?;
        let allowed = quiet_until(&person, &settings, now, quiet);
        if allowed > now {
            set_step_timer(db, org, enrollment, allowed, now, timers).await?;
            return Ok(StepOutcome::Wait(allowed));
        }
    }
    // Opt-outs and missing addresses block channels for this
    // decision; only real opt-outs are kept in the state.
    let real = opted_out_channels(db, org, &person).await?;
    let mut blocked = real.clone();
    if person.email.is_none() {
        blocked.push(Channel::Email);
    }
    if person.phone.is_none() {
        blocked.push(Channel::Sms);
    }
    for c in &real {
        if !e.opted_out.contains(c) {
            e.opted_out.push(*c);
        }
    }
    let kept = e.opted_out.clone();
    for c in blocked {
        if !e.opted_out.contains(&c) {
            e.opted_out.push(c);
        }
    }
    let decision = e.on_step_due(campaign, now, random, preferred(&person));
    e.opted_out = kept;
    let Decision::Send {
        step,
        variant,
        channel,
        key,
    } = decision
    else {
        save_enrollment(db, org, enrollment, &e, now).await?;
        if let Some(next) = e.next_due {
            set_step_timer(db, org, enrollment, next, now, timers).await?;
        }
        return Ok(StepOutcome::Nothing("no step to send".into()));
    };
    write_enrollment(db, org, enrollment, &e, now, false).await?;
    if let Some(next) = e.next_due {
        set_step_timer(db, org, enrollment, next, now, timers).await?;
    }
    let v = &campaign.steps[step].variants[variant];
    let to = match channel {
        Channel::Sms => person.phone.clone(),
        _ => person.email.clone(),
    }
    .unwrap_or_default();
    let (config, hook) = match cache.channels.get(&(org, channel)) {
        Some(c) => c.clone(),
        None => {
            let c = load_channel(db, &cache.keys, org, channel).await?;
            cache.channels.insert((org, channel), c.clone());
            c
        }
    };
    let tok = send_token(now);
    let exec_id = new_id();
    let message_id = format!("{exec_id}{MESSAGE_ID_DOMAIN}");
    // The development sink has no provider to call: the message is
    // delivered by this commit (nothing can be sent twice), saving a
    // second write per nudge.
    let dev = config == ChannelConfig::Dev;
    let built = build(v, channel, &person, &ctx, base_url, &tok, !dev);
    let (status, error, built) = match built {
        Ok(b) if dev => ("delivered", None, b),
        Ok(b) => ("sending", None, b),
        Err(err) => (
            "failed",
            Some(err.to_string()),
            Built {
                subject: v.subject.clone(),
                text: v.body.clone(),
                html: None,
                link: None,
            },
        ),
    };
    let inserted = db
        .exec(
            q("insert into nudge_executions (org_id, id, enrollment_id, campaign_id, profile_id, step, variant, \
               variant_name, channel, idem_key, status, attempts, provider, error, to_addr, from_addr, subject, body, \
               message_id, token, link_url, provider_id, sent_at, delivered_at, created_at, updated_at) values ($1, $2, $3, \
               $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23, $24, $24) \
               on conflict do nothing")
            .bind(org)
            .bind(exec_id)
            .bind(enrollment)
            .bind(cid)
            .bind(root)
            .bind(step as i64)
            .bind(variant as i64)
            .bind(v.name.as_str())
            .bind(channel_str(channel))
            .bind(key.as_str())
            .bind(status)
            .bind(i64::from(status != "failed"))
            .bind(config.provider())
            .bind(error.clone())
            .bind(to.as_str())
            .bind(config.sender_addr(channel))
            .bind(built.subject.clone())
            .bind(built.text.as_str())
            .bind(message_id.as_str())
            .bind(tok.as_str())
            .bind(built.link.clone())
            .bind(None::<String>)
            .bind((status == "delivered").then_some(now))
            .bind(now),
        )
        .await?;
    if inserted == 0 {
        // The key exists: this step was claimed before.
        return Ok(StepOutcome::Nothing("step already sent".into()));
    }
    let what = match channel {
        Channel::Sms => "SMS",
        _ => "Email",
    };
    let title = built
        .subject
        .clone()
        .unwrap_or_else(|| built.text.chars().take(60).collect());
    timeline(
        db,
        org,
        root,
        now,
        "nudge",
        &format!("{what} nudge, step {}: {title}", step + 1),
        json!({ "campaign_id": cid, "execution_id": exec_id, "channel": channel_str(channel), "status": status }),
        &format!("nudge:{exec_id}"),
    )
    .await?;
    if let Some(err) = error {
        return Ok(StepOutcome::Failed(err));
    }
    db.exec(
        q("update leads set nudges_sent = nudges_sent + 1 where org_id = $1 and profile_id = $2")
            .bind(org)
            .bind(root),
    )
    .await?;
    if dev {
        return Ok(StepOutcome::Delivered(exec_id));
    }
    let unsubscribe_url =
        (channel != Channel::Sms).then(|| tracked(base_url, UNSUBSCRIBE_PATH, &tok));
    Ok(StepOutcome::Send(Box::new(Claimed {
        org_id: org,
        execution_id: exec_id,
        campaign_id: cid,
        profile_id: root,
        channel,
        to,
        from: config.sender_addr(channel),
        subject: built.subject,
        text: built.text,
        html: built.html,
        message_id,
        idem_key: key,
        unsubscribe_url,
        status_callback: status_callback(base_url, hook.as_deref()),
        attempt: 1,
        max_attempts: campaign.max_attempts.max(1),
        config,
    })))
}

impl crate::Store {
    /// A step's timer fired for `enrollment`: decides, and claims the send
    /// when there is one (the execution is `sending` when this returns).
    /// `random` picks the A/B variant. Returns the outcome and the timers
    /// it set (to wake the runner).
    pub async fn nudge_step(
        &self,
        org: Uuid,
        enrollment: Uuid,
        now: Millis,
        random: u32,
        base_url: String,
    ) -> Result<(StepOutcome, Vec<Millis>), StoreError> {
        let mut out = self
            .nudge_steps(
                vec![StepRequest {
                    org,
                    enrollment,
                    random,
                }],
                now,
                base_url,
            )
            .await?;
        out.pop()
            .ok_or_else(|| StoreError::Other("a step without an outcome".into()))
    }

    /// Many due steps in one transaction, in order: the outcome of each and
    /// the timers it set. Under load the sender hands its due steps here in
    /// groups: one commit, and one savepoint on SQLite, instead of one per
    /// step, which is what bounds how many nudges a second one writer
    /// sends. All or nothing: an error rolls back every step of the group
    /// (the caller runs them one by one then, so one bad step cannot hold
    /// up the others).
    pub async fn nudge_steps(
        &self,
        steps: Vec<StepRequest>,
        now: Millis,
        base_url: String,
    ) -> Result<Vec<(StepOutcome, Vec<Millis>)>, StoreError> {
        let keys = self.keyring();
        write_db!(self, |db| async move {
            let mut out = Vec::with_capacity(steps.len());
            let mut cache = StepCache {
                campaigns: HashMap::new(),
                channels: HashMap::new(),
                keys,
            };
            for r in &steps {
                let mut timers = Vec::new();
                let o = step_one(db, &mut cache, *r, now, &base_url, &mut timers).await?;
                out.push((o, timers));
            }
            Ok(out)
        })
    }

    /// A retry of a failed send: claims it again (`retrying` → `sending`)
    /// unless the customer opted out meanwhile or the sequence was stopped
    /// by a reply or purchase, which end it as failed.
    pub async fn claim_retry(
        &self,
        org: Uuid,
        execution: Uuid,
        now: Millis,
        base_url: String,
    ) -> Result<Option<Claimed>, StoreError> {
        let keys = self.keyring();
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select x.status, x.channel, x.to_addr, x.subject, x.body, x.message_id, x.idem_key, x.token, \
                       x.attempts, x.campaign_id, x.profile_id, c.definition, e.stop_reason \
                       from nudge_executions x left join campaigns c on c.org_id = x.org_id and c.id = x.campaign_id \
                       left join enrollments e on e.org_id = x.org_id and e.id = x.enrollment_id \
                       where x.org_id = $1 and x.id = $2")
                    .bind(org)
                    .bind(execution),
                )
                .await?;
            let Some(r) = r else { return Ok(None) };
            if r.text(0)? != "retrying" {
                return Ok(None);
            }
            let channel = parse_channel(&r.text(1)?);
            let to = r.text(2)?;
            let opted = db
                .opt(
                    q("select 1 from opt_outs where org_id = $1 and channel = $2 and address = $3")
                        .bind(org)
                        .bind(channel_str(channel))
                        .bind(to.as_str()),
                )
                .await?
                .is_some();
            let stop = r.opt_text(12)?;
            let blocked = if opted {
                Some("the customer opted out before the retry".to_string())
            } else if matches!(
                stop.as_deref(),
                Some("converted" | "replied" | "removed" | "opted_out")
            ) {
                Some(format!(
                    "the sequence stopped ({}) before the retry",
                    stop.unwrap_or_default()
                ))
            } else {
                None
            };
            if let Some(why) = blocked {
                db.exec(
                    q("update nudge_executions set status = 'failed', error = $3, updated_at = $4 where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(execution)
                        .bind(why)
                        .bind(now),
                )
                .await?;
                return Ok(None);
            }
            let attempts = r.i64(8)? + 1;
            db.exec(
                q("update nudge_executions set status = 'sending', attempts = $3, next_attempt_at = null, updated_at = $4 \
                   where org_id = $1 and id = $2 and status = 'retrying'")
                .bind(org)
                .bind(execution)
                .bind(attempts)
                .bind(now),
            )
            .await?;
            let campaign: Option<Campaign> =
                r.opt_text(11)?.and_then(|d| serde_json::from_str(&d).ok());
            let (config, hook) = load_channel(db, &keys, org, channel).await?;
            let tok = r.text(7)?;
            let subject = r.opt_text(3)?;
            let text = r.text(4)?;
            // The HTML part is rebuilt from the stored text, which holds the
            // rendered message (values were substituted at the first try).
            let html = (channel != Channel::Sms).then(|| {
                let unsub = format!(
                    "\n\nUnsubscribe: {}",
                    tracked(&base_url, UNSUBSCRIBE_PATH, &tok)
                );
                let body = text.strip_suffix(&unsub).unwrap_or(&text);
                email_html(&html_escape(body), &base_url, &tok)
            });
            Ok(Some(Claimed {
                org_id: org,
                execution_id: execution,
                campaign_id: r.uuid(9)?,
                profile_id: r.uuid(10)?,
                channel,
                to,
                from: config.sender_addr(channel),
                subject,
                text,
                html,
                message_id: r.text(5)?,
                idem_key: r.text(6)?,
                unsubscribe_url: (channel != Channel::Sms)
                    .then(|| tracked(&base_url, UNSUBSCRIBE_PATH, &tok)),
                status_callback: status_callback(&base_url, hook.as_deref()),
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                max_attempts: campaign.map(|c| c.max_attempts.max(1)).unwrap_or(1),
                config,
            }))
        })
    }

    /// The provider accepted the message.
    pub async fn execution_sent(
        &self,
        org: Uuid,
        execution: Uuid,
        provider_id: Option<String>,
        delivered: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        let status = if delivered { "delivered" } else { "sent" };
        write_db!(self, |db| async move {
            db.exec(
                q("update nudge_executions set status = $3, provider_id = $4, sent_at = $5, \
                   delivered_at = case when $3 = 'delivered' then $5 else delivered_at end, error = null, updated_at = $5 \
                   where org_id = $1 and id = $2 and status = 'sending'")
                .bind(org)
                .bind(execution)
                .bind(status)
                .bind(provider_id)
                .bind(now),
            )
            .await?;
            Ok(())
        })
    }

    /// A transient failure: tried again at `retry_at`, or failed for good
    /// when `retry_at` is `None` (attempts used up, or a permanent error).
    pub async fn execution_failed(
        &self,
        org: Uuid,
        execution: Uuid,
        error: String,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            let status = if retry_at.is_some() {
                "retrying"
            } else {
                "failed"
            };
            let n = db
                .exec(
                    q("update nudge_executions set status = $3, error = $4, next_attempt_at = $5, updated_at = $6 \
                       where org_id = $1 and id = $2 and status = 'sending'")
                    .bind(org)
                    .bind(execution)
                    .bind(status)
                    .bind(error)
                    .bind(retry_at)
                    .bind(now),
                )
                .await?;
            if let (Some(at), 1) = (retry_at, n) {
                crate::pipeline::set_timer(
                    db,
                    org,
                    SEND_JOB,
                    &format!("exec:{execution}"),
                    json!({ "execution_id": execution }).to_string(),
                    at,
                    now,
                )
                .await?;
            }
            Ok(())
        })
    }

    /// The provider may or may not have sent it (no answer after the
    /// request went out): `unknown`, shown and never re-sent.
    pub async fn execution_unknown(
        &self,
        org: Uuid,
        execution: Uuid,
        error: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            db.exec(
                q("update nudge_executions set status = 'unknown', error = $3, sent_at = coalesce(sent_at, $4), updated_at = $4 \
                   where org_id = $1 and id = $2 and status = 'sending'")
                .bind(org)
                .bind(execution)
                .bind(error)
                .bind(now),
            )
            .await?;
            Ok(())
        })
    }

    /// Executions left `sending` longer than `lease_ms` (by default
    /// [`SENDING_LEASE_MS`]) were cut off by a crash: they become `unknown`
    /// (every tenant; a system task).
    pub async fn sweep_sending(&self, now: Millis, lease_ms: Millis) -> Result<u64, StoreError> {
        write_db!(self, |db| async move {
            db.exec(
                q("update nudge_executions set status = 'unknown', \
                   error = 'the process stopped while sending; the provider may have sent it, so it is not sent again', \
                   sent_at = coalesce(sent_at, updated_at), updated_at = $1 where status = 'sending' and updated_at < $2")
                .bind(now)
                .bind(now - lease_ms.max(0)),
            )
            .await
        })
    }

    /// A provider's delivery report (Twilio status callback), applied
    /// forward only: `sent → delivered | undelivered | failed`. Returns
    /// whether it changed anything.
    pub async fn delivery_status(
        &self,
        org: Uuid,
        provider_id: String,
        status: String,
        error: Option<String>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let rank = |s: &str| match s {
            "sending" | "retrying" => 0,
            "sent" | "unknown" => 1,
            "delivered" | "undelivered" | "failed" => 2,
            _ => 0,
        };
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select id, status from nudge_executions where org_id = $1 and provider_id = $2")
                        .bind(org)
                        .bind(provider_id.as_str()),
                )
                .await?;
            let Some(r) = r else { return Ok(false) };
            let current = r.text(1)?;
            if rank(&status) <= rank(&current) {
                return Ok(false);
            }
            db.exec(
                q("update nudge_executions set status = $3, error = coalesce($4, error), \
                   delivered_at = case when $3 = 'delivered' then $5 else delivered_at end, updated_at = $5 \
                   where org_id = $1 and id = $2")
                .bind(org)
                .bind(r.uuid(0)?)
                .bind(status.as_str())
                .bind(error)
                .bind(now),
            )
            .await?;
            Ok(true)
        })
    }

    /// The open pixel was fetched. Returns whether the token is known.
    pub async fn track_open(&self, token: String, now: Millis) -> Result<bool, StoreError> {
        write_db!(self, |db| async move {
            let n = db
                .exec(
                    q("update nudge_executions set opened_at = coalesce(opened_at, $2), updated_at = $2 where token = $1")
                        .bind(token.as_str())
                        .bind(now),
                )
                .await?;
            Ok(n > 0)
        })
    }

    /// A tracked link was followed: records the click (and an open, since
    /// a click proves one) and returns where to send the browser.
    pub async fn track_click(
        &self,
        token: String,
        now: Millis,
    ) -> Result<Option<String>, StoreError> {
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select link_url from nudge_executions where token = $1")
                        .bind(token.as_str()),
                )
                .await?;
            let Some(r) = r else { return Ok(None) };
            db.exec(
                q("update nudge_executions set clicked_at = coalesce(clicked_at, $2), opened_at = coalesce(opened_at, $2), \
                   updated_at = $2 where token = $1")
                .bind(token.as_str())
                .bind(now),
            )
            .await?;
            r.opt_text(0)
        })
    }

    /// Whom an unsubscribe token names: (organization, its name, channel,
    /// address, already opted out).
    pub async fn unsubscribe_target(
        &self,
        token: String,
    ) -> Result<Option<(Uuid, String, Channel, String, bool)>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select x.org_id, o.name, x.channel, x.to_addr, \
               (select count(*) from opt_outs u where u.org_id = x.org_id and u.channel = x.channel and u.address = x.to_addr) \
               from nudge_executions x join organizations o on o.id = x.org_id where x.token = $1")
            .bind(token.as_str()),
        )
        .await?;
        rows.first()
            .map(|r| {
                Ok((
                    r.uuid(0)?,
                    r.text(1)?,
                    parse_channel(&r.text(2)?),
                    r.text(3)?,
                    r.i64(4)? > 0,
                ))
            })
            .transpose()
    }

    /// The unsubscribe link (page button or RFC 8058 one-click POST): opts
    /// the address out of the message's channel. Returns false for an
    /// unknown token.
    pub async fn unsubscribe(&self, token: String, now: Millis) -> Result<bool, StoreError> {
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select org_id, channel, to_addr, profile_id from nudge_executions where token = $1")
                        .bind(token.as_str()),
                )
                .await?;
            let Some(r) = r else { return Ok(false) };
            let (org, channel, addr, profile) = (
                r.uuid(0)?,
                parse_channel(&r.text(1)?),
                r.text(2)?,
                r.uuid(3)?,
            );
            opt_out_tx(
                db,
                org,
                channel,
                &addr,
                Some(profile),
                "unsubscribe link",
                true,
                now,
            )
            .await?;
            Ok(true)
        })
    }

    /// A person opts an address in or out from the UI or API.
    pub async fn set_opt_out(
        &self,
        org: Uuid,
        channel: Channel,
        address: String,
        opted_out: bool,
        source: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            let profile = db
                .opt(
                    q("select root_id from identity_links where org_id = $1 and kind = $2 and value = $3")
                        .bind(org)
                        .bind(if channel == Channel::Sms { "phone" } else { "email" })
                        .bind(address.as_str()),
                )
                .await?
                .map(|r| r.uuid(0))
                .transpose()?;
            opt_out_tx(db, org, channel, &address, profile, &source, opted_out, now).await
        })
    }

    /// A message from a customer (inbound SMS or email): recorded on their
    /// timeline once (by provider id), it ends their sequences as a reply,
    /// and a STOP/START keyword opts their address out of (or back into)
    /// that channel everywhere at once.
    pub async fn inbound_message(
        &self,
        org: Uuid,
        msg: InboundMessage,
        now: Millis,
    ) -> Result<InboundOutcome, StoreError> {
        let settings = self.pipeline_settings(org).await?;
        write_db!(self, |db| async move {
            let key = format!("msg:{}:{}", msg.provider, msg.provider_id);
            // A reply names the message it answers: find its customer first.
            let mut root = None;
            for mid in &msg.in_reply_to {
                // Our Message-IDs are `{execution id}@bos.nudge`.
                let Some(id) = mid
                    .trim_matches(|c| c == '<' || c == '>')
                    .strip_suffix(MESSAGE_ID_DOMAIN)
                    .and_then(|s| Uuid::parse_str(s).ok())
                else {
                    continue;
                };
                let r = db
                    .opt(
                        q("select profile_id from nudge_executions where org_id = $1 and id = $2")
                            .bind(org)
                            .bind(id),
                    )
                    .await?;
                if let Some(r) = r {
                    root = Some(r.uuid(0)?);
                    break;
                }
            }
            let kind = if msg.channel == Channel::Sms {
                IdentifierKind::Phone
            } else {
                IdentifierKind::Email
            };
            let address = normalize(&kind, &msg.from, &settings.identity.default_region)
                .map(|i| i.value)
                .unwrap_or_else(|_| msg.from.trim().to_lowercase());
            let (label, summary) = match msg.channel {
                Channel::Sms => ("SMS", msg.text.chars().take(140).collect::<String>()),
                _ => (
                    "Email",
                    msg.subject
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| msg.text.chars().take(140).collect()),
                ),
            };
            let event = NewEvent {
                kind: "message_in".into(),
                summary: format!("{label} from customer: {summary}"),
                occurred_at: now,
                data: json!({ "channel": channel_str(msg.channel), "from": msg.from, "to": msg.to,
                              "subject": msg.subject, "text": msg.text, "provider": msg.provider })
                .to_string(),
                key: Some(key.clone()),
                revenue_cents: 0,
                is_order: false,
            };
            let duplicate = db
                .opt(
                    q("select root_id from timeline where org_id = $1 and event_key = $2")
                        .bind(org)
                        .bind(key.as_str()),
                )
                .await?;
            if let Some(d) = duplicate {
                return Ok(InboundOutcome {
                    profile_id: d.uuid(0)?,
                    duplicate: true,
                    stopped: 0,
                    opted: None,
                });
            }
            let root = match root {
                Some(p) => {
                    let root = db
                        .opt(
                            q("select root_id from profiles where org_id = $1 and id = $2")
                                .bind(org)
                                .bind(p),
                        )
                        .await?
                        .map(|r| r.uuid(0))
                        .transpose()?
                        .unwrap_or(p);
                    timeline_event(db, org, root, &event).await?;
                    root
                }
                None => {
                    let Ok(id) = normalize(&kind, &msg.from, &settings.identity.default_region)
                    else {
                        return Err(StoreError::Invalid(format!(
                            "the sender {:?} is not a valid {}",
                            msg.from,
                            if msg.channel == Channel::Sms {
                                "phone number"
                            } else {
                                "email address"
                            }
                        )));
                    };
                    let input = IdentifyInput {
                        identifiers: vec![id],
                        traits: Traits::default(),
                        source: msg.provider.clone(),
                        event: Some(event),
                        now,
                    };
                    identify_tx(db, org, &settings.identity, &input)
                        .await?
                        .profile_id
                }
            };
            let mut opted = None;
            let stopped = match msg.opt {
                Some(out) => {
                    opt_out_tx(
                        db,
                        org,
                        msg.channel,
                        &address,
                        Some(root),
                        &format!("{label} keyword"),
                        out,
                        now,
                    )
                    .await?;
                    opted = Some(out);
                    0
                }
                None => {
                    // The latest nudge on this channel gets the reply.
                    db.exec(
                        q("update nudge_executions set replied_at = $4, updated_at = $4 where org_id = $1 and id = \
                           (select id from nudge_executions where org_id = $1 and channel = $3 and profile_id in \
                           (select id from profiles where org_id = $1 and root_id = $2) and sent_at is not null \
                           and replied_at is null order by sent_at desc limit 1)")
                        .bind(org)
                        .bind(root)
                        .bind(channel_str(msg.channel))
                        .bind(now),
                    )
                    .await?;
                    stop_tx(db, org, root, Event::Replied, None, now).await?
                }
            };
            Ok(InboundOutcome {
                profile_id: root,
                duplicate: false,
                stopped,
                opted,
            })
        })
    }

    /// A person takes a customer out of a campaign.
    pub async fn remove_enrollment(
        &self,
        org: Uuid,
        enrollment: Uuid,
        now: Millis,
    ) -> Result<bool, StoreError> {
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select e.state, c.definition from enrollments e join campaigns c on c.org_id = e.org_id \
                       and c.id = e.campaign_id where e.org_id = $1 and e.id = $2 and e.status = 'active'")
                    .bind(org)
                    .bind(enrollment),
                )
                .await?;
            let Some(r) = r else { return Ok(false) };
            let (Ok(mut e), Ok(c)) = (
                serde_json::from_str::<Enrollment>(&r.text(0)?),
                serde_json::from_str::<Campaign>(&r.text(1)?),
            ) else {
                return Ok(false);
            };
            e.on_event(&c, Event::Removed);
            save_enrollment(db, org, enrollment, &e, now).await?;
            Ok(true)
        })
    }

    /// Resuming a campaign: its waiting enrollments' step timers are set
    /// again (at their due time, or now when it passed while paused).
    /// Returns the timers set.
    pub async fn rearm_campaign(
        &self,
        org: Uuid,
        campaign: Uuid,
        now: Millis,
    ) -> Result<Vec<Millis>, StoreError> {
        write_db!(self, |db| async move {
            let rows = db
                .rows(
                    q("select id, next_due from enrollments where org_id = $1 and campaign_id = $2 and status = 'active' \
                       and next_due is not null")
                    .bind(org)
                    .bind(campaign),
                )
                .await?;
            let mut timers = Vec::new();
            for r in rows {
                let due = r.i64(1)?.max(now);
                set_step_timer(db, org, r.uuid(0)?, due, now, &mut timers).await?;
            }
            Ok(timers)
        })
    }

    /// Stores a campaign under a known id, replacing its definition and
    /// status if it exists: for seeding (the demo) and tests. The caller
    /// validates the campaign first.
    pub async fn put_campaign(
        &self,
        org: Uuid,
        id: Uuid,
        campaign: &Campaign,
        status: CampaignStatus,
        now: Millis,
    ) -> Result<(), StoreError> {
        let def = serde_json::to_string(campaign).map_err(|e| StoreError::Other(e.to_string()))?;
        let name = campaign.name.trim().to_string();
        let kind = trigger_kind(&campaign.trigger);
        let event = match &campaign.trigger {
            Trigger::Event { name } => Some(name.clone()),
            _ => None,
        };
        write_db!(self, |db| async move {
            db.exec(
                q("insert into campaigns (org_id, id, name, trigger_kind, trigger_event, definition, status, created_at, updated_at) \
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $8) on conflict (org_id, id) do update set name = excluded.name, \
                   trigger_kind = excluded.trigger_kind, trigger_event = excluded.trigger_event, \
                   definition = excluded.definition, status = excluded.status, updated_at = excluded.updated_at")
                .bind(org)
                .bind(id)
                .bind(name)
                .bind(kind)
                .bind(event)
                .bind(def)
                .bind(status.as_str())
                .bind(now),
            )
            .await?;
            Ok(())
        })
    }

    /// Sets how a tenant's channel sends (the settings page validates).
    /// Keeps the webhook key of the channel, making one on first save.
    pub async fn put_channel_config(
        &self,
        org: Uuid,
        channel: Channel,
        config: &ChannelConfig,
        now: Millis,
    ) -> Result<String, StoreError> {
        let cfg = serde_json::to_string(config).map_err(|e| StoreError::Other(e.to_string()))?;
        // Sealed whole: the JSON holds the channel's passwords and tokens.
        let cfg = self
            .keyring()
            .seal(&channel_context(org, channel_str(channel)), &cfg);
        let provider = config.provider();
        write_db!(self, |db| async move {
            let existing = db
                .opt(
                    q("select hook_key from channel_settings where org_id = $1 and channel = $2")
                        .bind(org)
                        .bind(channel_str(channel)),
                )
                .await?;
            let hook = match existing {
                Some(r) => r.text(0)?,
                None => token(),
            };
            db.exec(
                q("insert into channel_settings (org_id, channel, provider, config, hook_key, updated_at) \
                   values ($1, $2, $3, $4, $5, $6) on conflict (org_id, channel) do update set \
                   provider = excluded.provider, config = excluded.config, updated_at = excluded.updated_at")
                .bind(org)
                .bind(channel_str(channel))
                .bind(provider)
                .bind(cfg)
                .bind(hook.as_str())
                .bind(now),
            )
            .await?;
            Ok(hook)
        })
    }

    /// The channel settings a sender needs (the engine builds senders).
    pub async fn channel_config(
        &self,
        org: Uuid,
        channel: Channel,
    ) -> Result<ChannelConfig, StoreError> {
        let keys = self.keyring();
        write_db!(self, |db| async move {
            Ok(load_channel(db, &keys, org, channel).await?.0)
        })
    }

    /// Which tenant and channel a provider webhook's hook key names.
    pub async fn channel_by_hook(
        &self,
        hook_key: String,
    ) -> Result<Option<(Uuid, Channel, ChannelConfig)>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select org_id, channel, config from channel_settings where hook_key = $1")
                .bind(hook_key.as_str()),
        )
        .await?;
        let keys = self.keyring();
        rows.first()
            .map(|r: &Row| {
                let (org, channel) = (r.uuid(0)?, parse_channel(&r.text(1)?));
                Ok((
                    org,
                    channel,
                    open_channel_config(&keys, org, channel, &r.text(2)?)?,
                ))
            })
            .transpose()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn empty_campaign() -> Campaign {
    Campaign {
        name: String::new(),
        trigger: Trigger::LeadGhosting,
        steps: Vec::new(),
        stop: nudge::StopConditions::default(),
        quiet_hours: None,
        max_attempts: 1,
        reentry_cooldown_ms: 0,
    }
}

async fn timeline_event<D: Db>(
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

/// Opts an address out of (or back into) a channel for the whole tenant,
/// and ends the sequences of everyone on that address whose campaigns stop
/// on opt-out; the others keep going on their other channel.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn opt_out_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    channel: Channel,
    address: &str,
    profile: Option<Uuid>,
    source: &str,
    out: bool,
    now: Millis,
) -> Result<(), StoreError> {
    if !out {
        db.exec(
            q("delete from opt_outs where org_id = $1 and channel = $2 and address = $3")
                .bind(org)
                .bind(channel_str(channel))
                .bind(address),
        )
        .await?;
        return Ok(());
    }
    db.exec(
        q("insert into opt_outs (org_id, channel, address, profile_id, source, at) values ($1, $2, $3, $4, $5, $6) \
           on conflict do nothing")
        .bind(org)
        .bind(channel_str(channel))
        .bind(address)
        .bind(profile)
        .bind(source)
        .bind(now),
    )
    .await?;
    let kind = if channel == Channel::Sms {
        "phone"
    } else {
        "email"
    };
    let roots = db
        .rows(
            q("select distinct root_id from identity_links where org_id = $1 and kind = $2 and value = $3")
                .bind(org)
                .bind(kind)
                .bind(address),
        )
        .await?;
    let mut seen = Vec::new();
    for r in roots {
        seen.push(r.uuid(0)?);
    }
    if let Some(p) = profile {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    for root in seen {
        stop_tx(db, org, root, Event::OptedOut(channel), None, now).await?;
        // Retries waiting on that channel to that address must not go out.
        db.exec(
            q("update nudge_executions set status = 'failed', error = 'the customer opted out', updated_at = $4 \
               where org_id = $1 and channel = $2 and to_addr = $3 and status = 'retrying'")
            .bind(org)
            .bind(channel_str(channel))
            .bind(address)
            .bind(now),
        )
        .await?;
    }
    Ok(())
}

/// One step execution, as tests and the engine's benchmarks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub id: Uuid,
    pub enrollment_id: Uuid,
    pub profile_id: Uuid,
    pub step: i64,
    pub channel: String,
    pub status: String,
    pub attempts: i64,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub message_id: String,
    pub token: String,
    pub error: Option<String>,
    pub sent_at: Option<Millis>,
    pub converted_at: Option<Millis>,
    pub replied_at: Option<Millis>,
    pub created_at: Millis,
}

impl crate::Store {
    /// A campaign's executions, oldest first (at most `limit`).
    pub async fn campaign_executions(
        &self,
        org: Uuid,
        campaign: Uuid,
        limit: u32,
    ) -> Result<Vec<Execution>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select id, enrollment_id, profile_id, step, channel, status, attempts, to_addr, subject, body, \
               message_id, token, error, sent_at, converted_at, replied_at, created_at from nudge_executions \
               where org_id = $1 and campaign_id = $2 order by created_at, id limit $3")
            .bind(org)
            .bind(campaign)
            .bind(i64::from(limit)),
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Execution {
                    id: r.uuid(0)?,
                    enrollment_id: r.uuid(1)?,
                    profile_id: r.uuid(2)?,
                    step: r.i64(3)?,
                    channel: r.text(4)?,
                    status: r.text(5)?,
                    attempts: r.i64(6)?,
                    to: r.text(7)?,
                    subject: r.opt_text(8)?,
                    body: r.text(9)?,
                    message_id: r.text(10)?,
                    token: r.text(11)?,
                    error: r.opt_text(12)?,
                    sent_at: r.opt_i64(13)?,
                    converted_at: r.opt_i64(14)?,
                    replied_at: r.opt_i64(15)?,
                    created_at: r.i64(16)?,
                })
            })
            .collect()
    }

    /// An enrollment's status and stop reason.
    pub async fn enrollment_status(
        &self,
        org: Uuid,
        enrollment: Uuid,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select status, stop_reason from enrollments where org_id = $1 and id = $2")
                .bind(org)
                .bind(enrollment),
        )
        .await?;
        rows.first()
            .map(|r| Ok((r.text(0)?, r.opt_text(1)?)))
            .transpose()
    }
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
}

#[cfg(test)]
mod tests {
    /// Every one of the 128 bits varies across keys: none is fixed, as a
    /// v4 UUID's version and variant bits are. (A given bit staying the
    /// same across 256 random keys has odds of 2^-255.)
    #[test]
    fn webhook_keys_carry_128_random_bits() {
        let keys: Vec<u128> = (0..256)
            .map(|_| {
                let t = super::token();
                assert_eq!(t.len(), 32, "{t}");
                u128::from_str_radix(&t, 16).unwrap()
            })
            .collect();
        let ones = keys.iter().fold(0u128, |acc, k| acc | k);
        let zeros = keys.iter().fold(0u128, |acc, k| acc | !k);
        assert_eq!(ones, u128::MAX, "bits never set: {:032x}", !ones);
        assert_eq!(zeros, u128::MAX, "bits never clear: {:032x}", !zeros);
    }
}
