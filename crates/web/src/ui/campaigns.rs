//! Campaigns: the list with live figures, the builder (a
//! plain form: steps are rows, "Add step" and "Remove last step" submit
//! the form and render it again with everything typed kept), a campaign's
//! page with its per-step funnel, A/B comparison and recent sends,
//! previews rendered for a real customer, the development sink's outbox,
//! and Settings → Nudges. Viewing is for every member; building, editing,
//! status changes and settings are for admins, as for sources and intake.

use super::customers::money;
use super::{fmt_time, notice, relative, Chrome, NoticeQuery, PathId};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageError, PageResult};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::nudge::campaign::{DAY_MS, HOUR_MS, MINUTE_MS, WEEK_MS};
use bos_core::nudge::cap::MAX_CAP_PER_DAY;
use bos_core::nudge::{
    Campaign, Channel, FrequencyCap, QuietHours, Step, StopConditions, Trigger, Variant, Windows,
};
use bos_engine::campaigns;
use bos_engine::rules::sentence;
use bos_store::nudge::{CampaignStatus, NudgeSettings};
use bos_store::nudge_admin::{CampaignRow, ExecutionRow};
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

/// The variables every template may use, with what they hold.
pub const STANDARD_VARS: [(&str, &str); 6] = [
    ("first_name", "the customer's first name"),
    ("last_name", "their last name"),
    ("company", "their company"),
    ("cart_url", "a tracked link to their cart or checkout"),
    ("cart_total", "the cart's total, such as 129.00 USD"),
    (
        "unsubscribe_url",
        "the unsubscribe link (added to email when missing)",
    ),
];

pub fn trigger_words(t: &Trigger) -> String {
    match t {
        Trigger::LeadGhosting => "Lead goes quiet (ghosting)".into(),
        Trigger::CheckoutAbandoned => "Checkout abandoned".into(),
        Trigger::FormStartedNotFinished => "Form started, not finished".into(),
        Trigger::Event { name } => format!("Custom event \u{201c}{name}\u{201d}"),
    }
}

/// "12.5%" or "—" when nothing was sent.
pub fn rate(n: i64, of: i64) -> String {
    if of <= 0 {
        "—".into()
    } else {
        let p = n as f64 * 100.0 / of as f64;
        if p >= 10.0 || p == 0.0 {
            format!("{p:.0}%")
        } else {
            format!("{p:.1}%")
        }
    }
}

fn status_note(s: &str) -> &'static str {
    match s {
        "unknown" => "may have been sent; not retried",
        "sending" => "handed to the provider",
        "retrying" => "the provider failed; tried again later",
        "failed" => "not sent",
        "undelivered" => "the provider could not deliver it",
        _ => "",
    }
}

// ---------------------------------------------------------------- the form

/// One step as typed.
#[derive(Clone, Debug)]
pub struct StepForm {
    pub delay: String,
    pub unit: String,
    pub channel: String,
    pub a_subject: String,
    pub a_body: String,
    pub b_on: bool,
    pub b_subject: String,
    pub b_body: String,
    /// Share of sends for variant A, in percent.
    pub split: String,
}

impl Default for StepForm {
    fn default() -> Self {
        StepForm {
            delay: "1".into(),
            unit: "days".into(),
            channel: "email".into(),
            a_subject: String::new(),
            a_body: String::new(),
            b_on: false,
            b_subject: String::new(),
            b_body: String::new(),
            split: "50".into(),
        }
    }
}

/// The builder as typed: kept whole across "Add step", errors and previews.
#[derive(Clone, Debug)]
pub struct BuilderForm {
    pub name: String,
    pub trigger: String,
    pub event_name: String,
    pub steps: Vec<StepForm>,
    pub quiet_on: bool,
    pub quiet_start: String,
    pub quiet_end: String,
    pub stop_converted: bool,
    pub stop_replied: bool,
    pub stop_opted_out: bool,
    pub max_attempts: String,
    pub cooldown_days: String,
    /// Who goes first under the daily cap: 0–100, higher first.
    pub priority: String,
    pub status: String,
    pub preview_step: String,
    pub preview_variant: String,
    pub preview_email: String,
}

impl Default for BuilderForm {
    fn default() -> Self {
        BuilderForm {
            name: String::new(),
            trigger: "checkout_abandoned".into(),
            event_name: String::new(),
            steps: vec![StepForm::default()],
            quiet_on: false,
            quiet_start: "21:00".into(),
            quiet_end: "08:00".into(),
            stop_converted: true,
            stop_replied: true,
            stop_opted_out: true,
            max_attempts: "5".into(),
            cooldown_days: "30".into(),
            priority: "0".into(),
            status: "draft".into(),
            preview_step: "1".into(),
            preview_variant: "A".into(),
            preview_email: String::new(),
        }
    }
}

/// "1" for whole numbers, "1.5" otherwise.
fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn unit_ms(unit: &str) -> i64 {
    match unit {
        "minutes" => MINUTE_MS,
        "hours" => HOUR_MS,
        "weeks" => WEEK_MS,
        _ => DAY_MS,
    }
}

impl BuilderForm {
    /// The form for a stored campaign.
    pub fn from_campaign(c: &Campaign, status: CampaignStatus) -> BuilderForm {
        let steps = c
            .steps
            .iter()
            .map(|s| {
                let (delay, unit) = [("weeks", WEEK_MS), ("days", DAY_MS), ("hours", HOUR_MS)]
                    .iter()
                    .find(|(_, ms)| s.delay_ms % ms == 0)
                    .map(|(u, ms)| ((s.delay_ms / ms).to_string(), *u))
                    .unwrap_or_else(|| (num(s.delay_ms as f64 / MINUTE_MS as f64), "minutes"));
                let a = s.variants.first();
                let b = s.variants.get(1);
                let total: u64 = s.variants.iter().map(|v| u64::from(v.weight)).sum();
                let split = match (a, b) {
                    (Some(a), Some(_)) if total > 0 => {
                        ((u64::from(a.weight) * 100 + total / 2) / total).to_string()
                    }
                    _ => "50".into(),
                };
                StepForm {
                    delay,
                    unit: unit.into(),
                    channel: s.channel.as_str().into(),
                    a_subject: a.and_then(|v| v.subject.clone()).unwrap_or_default(),
                    a_body: a.map(|v| v.body.clone()).unwrap_or_default(),
                    b_on: b.is_some(),
                    b_subject: b.and_then(|v| v.subject.clone()).unwrap_or_default(),
                    b_body: b.map(|v| v.body.clone()).unwrap_or_default(),
                    split,
                }
            })
            .collect();
        let (trigger, event_name) = match &c.trigger {
            Trigger::LeadGhosting => ("lead_ghosting", String::new()),
            Trigger::CheckoutAbandoned => ("checkout_abandoned", String::new()),
            Trigger::FormStartedNotFinished => ("form_started_not_finished", String::new()),
            Trigger::Event { name } => ("event", name.clone()),
        };
        let d = BuilderForm::default();
        BuilderForm {
            name: c.name.clone(),
            trigger: trigger.into(),
            event_name,
            steps,
            quiet_on: c.quiet_hours.is_some(),
            quiet_start: c
                .quiet_hours
                .map(|q| hhmm(q.start_minute))
                .unwrap_or(d.quiet_start),
            quiet_end: c
                .quiet_hours
                .map(|q| hhmm(q.end_minute))
                .unwrap_or(d.quiet_end),
            stop_converted: c.stop.converted,
            stop_replied: c.stop.replied,
            stop_opted_out: c.stop.opted_out,
            max_attempts: c.max_attempts.to_string(),
            cooldown_days: num(c.reentry_cooldown_ms as f64 / DAY_MS as f64),
            priority: c.priority.to_string(),
            status: status.as_str().into(),
            ..d
        }
    }

    /// The form as posted. Checkboxes absent from a posted form are off.
    pub fn from_pairs(p: &Pairs) -> BuilderForm {
        let get = |k: &str| {
            p.iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let on = |k: &str| p.iter().any(|(a, v)| a == k && !v.is_empty());
        let count = get("steps")
            .trim()
            .parse::<usize>()
            .unwrap_or(1)
            .clamp(1, bos_core::nudge::campaign::MAX_STEPS);
        let steps = (0..count)
            .map(|i| {
                let f = |k: &str| get(&format!("s{i}_{k}"));
                let d = StepForm::default();
                let or = |v: String, d: String| if v.is_empty() { d } else { v };
                StepForm {
                    delay: f("delay"),
                    unit: or(f("unit"), d.unit),
                    channel: or(f("channel"), d.channel),
                    a_subject: f("a_subject"),
                    a_body: f("a_body"),
                    b_on: on(&format!("s{i}_b_on")),
                    b_subject: f("b_subject"),
                    b_body: f("b_body"),
                    split: or(f("split"), d.split),
                }
            })
            .collect();
        let d = BuilderForm::default();
        let or = |k: &str, d: String| {
            let v = get(k);
            if v.trim().is_empty() {
                d
            } else {
                v
            }
        };
        BuilderForm {
            name: get("name"),
            trigger: or("trigger", d.trigger),
            event_name: get("event_name"),
            steps,
            quiet_on: get("quiet") == "on",
            quiet_start: get("quiet_start"),
            quiet_end: get("quiet_end"),
            stop_converted: on("stop_converted"),
            stop_replied: on("stop_replied"),
            stop_opted_out: on("stop_opted_out"),
            max_attempts: get("max_attempts"),
            cooldown_days: get("cooldown_days"),
            priority: or("priority", d.priority),
            status: or("status", d.status),
            preview_step: or("preview_step", d.preview_step),
            preview_variant: or("preview_variant", d.preview_variant),
            preview_email: get("preview_email"),
        }
    }

    /// The campaign the form describes, or the first field that is not a
    /// number or time as a sentence. [`Campaign::validate`] checks the rest.
    pub fn to_campaign(&self) -> Result<Campaign, String> {
        let trigger = match self.trigger.as_str() {
            "lead_ghosting" => Trigger::LeadGhosting,
            "checkout_abandoned" => Trigger::CheckoutAbandoned,
            "form_started_not_finished" => Trigger::FormStartedNotFinished,
            "event" => Trigger::Event {
                name: self.event_name.trim().to_string(),
            },
            _ => return Err("Pick what starts the campaign.".into()),
        };
        let mut steps = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            let n = i + 1;
            let delay: f64 = s
                .delay
                .trim()
                .parse()
                .ok()
                .filter(|d: &f64| d.is_finite() && *d >= 0.0)
                .ok_or_else(|| {
                    format!(
                        "Step {n}: the delay \u{201c}{}\u{201d} is not a number; enter one such as 2.",
                        s.delay.trim()
                    )
                })?;
            let delay_ms = (delay * unit_ms(&s.unit) as f64)
                .round()
                .min(i64::MAX as f64) as i64;
            let channel = match s.channel.as_str() {
                "sms" => Channel::Sms,
                "preferred" => Channel::Preferred,
                _ => Channel::Email,
            };
            let subject = |t: &str| {
                (channel.may_be_email() && !t.trim().is_empty()).then(|| t.trim().to_string())
            };
            let mut variants = vec![Variant {
                name: "A".into(),
                weight: 100,
                subject: subject(&s.a_subject),
                body: s.a_body.trim().to_string(),
            }];
            if s.b_on {
                let split: u32 = s
                    .split
                    .trim()
                    .trim_end_matches('%')
                    .parse()
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| {
                        format!("Step {n}: the split is a percentage for variant A, from 0 to 100.")
                    })?;
                variants[0].weight = split;
                variants.push(Variant {
                    name: "B".into(),
                    weight: 100 - split,
                    subject: subject(&s.b_subject),
                    body: s.b_body.trim().to_string(),
                });
            }
            steps.push(Step {
                delay_ms,
                channel,
                variants,
            });
        }
        let quiet_hours = if self.quiet_on {
            let t = |v: &str, which: &str| {
                parse_hhmm(v).ok_or_else(|| {
                    format!(
                        "Quiet hours: the {which} \u{201c}{}\u{201d} is not a time; use HH:MM such as 21:00.",
                        v.trim()
                    )
                })
            };
            Some(QuietHours {
                start_minute: t(&self.quiet_start, "start")?,
                end_minute: t(&self.quiet_end, "end")?,
            })
        } else {
            None
        };
        let max_attempts = self.max_attempts.trim().parse::<u32>().map_err(|_| {
            format!(
                "Max attempts \u{201c}{}\u{201d} is not a whole number; use from 1 to 10.",
                self.max_attempts.trim()
            )
        })?;
        let cooldown: f64 = self
            .cooldown_days
            .trim()
            .parse()
            .ok()
            .filter(|d: &f64| d.is_finite())
            .ok_or_else(|| {
                format!(
                    "The re-entry cooldown \u{201c}{}\u{201d} is not a number of days; use from 0 to 365.",
                    self.cooldown_days.trim()
                )
            })?;
        let priority = self.priority.trim().parse::<u32>().map_err(|_| {
            format!(
                "Priority \u{201c}{}\u{201d} is not a whole number; use from 0 to 100 (higher goes first).",
                self.priority.trim()
            )
        })?;
        Ok(Campaign {
            name: self.name.trim().to_string(),
            trigger,
            steps,
            stop: StopConditions {
                converted: self.stop_converted,
                replied: self.stop_replied,
                opted_out: self.stop_opted_out,
            },
            quiet_hours,
            max_attempts,
            reentry_cooldown_ms: (cooldown * DAY_MS as f64)
                .round()
                .clamp(i64::MIN as f64, i64::MAX as f64) as i64,
            priority,
        })
    }

    /// The chosen preview step and variant, from 0.
    fn preview_choice(&self) -> (usize, usize) {
        let step = self
            .preview_step
            .trim()
            .parse::<usize>()
            .unwrap_or(1)
            .max(1)
            - 1;
        let variant = usize::from(self.preview_variant.trim().eq_ignore_ascii_case("B"));
        (step, variant)
    }
}

fn parse_hhmm(v: &str) -> Option<u16> {
    let (h, m) = v.trim().split_once(':')?;
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn op_of(p: &Pairs) -> String {
    p.iter()
        .find(|(k, _)| k == "op")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- views

pub struct PreviewView {
    pub error: Option<String>,
    pub customer: Option<(String, String)>,
    pub step: usize,
    pub variant: String,
    pub channel: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct ListRow {
    id: String,
    name: String,
    status: &'static str,
    trigger: String,
    steps: usize,
    active: i64,
    sent: i64,
    delivered: i64,
    opened: i64,
    clicked: i64,
    replied: i64,
    converted: i64,
    rate: String,
    revenue: String,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<ListRow>,
    can_edit: bool,
}

/// What the builder partial needs; both builder pages carry it.
pub struct Builder {
    f: BuilderForm,
    error: Option<String>,
    traits: Vec<String>,
    preview: Option<PreviewView>,
    action: String,
    preview_action: String,
    is_new: bool,
    can_edit: bool,
    vars: [(&'static str, &'static str); 6],
}

#[derive(Template)]
#[template(path = "campaign_new.html")]
struct NewPage {
    c: Chrome,
    b: Builder,
}

pub struct FunnelRow {
    step: i64,
    sent: i64,
    delivered: i64,
    opened: i64,
    clicked: i64,
    replied: i64,
    converted: i64,
    failed: i64,
    unknown: i64,
    rate: String,
    /// Customers this step skipped or moved, by reason ("no address 12 ·
    /// daily cap moved it 3"), or "—".
    skipped: String,
    /// Bar widths out of 200: sent, delivered, opened, clicked, converted.
    bars: [i64; 5],
}

pub struct VariantRow {
    step: i64,
    variant: String,
    sent: i64,
    converted: i64,
    rate: String,
}

pub struct ExecView {
    pub at: String,
    pub ago: String,
    pub profile_id: String,
    pub to: String,
    pub campaign: String,
    pub campaign_id: String,
    pub step: i64,
    pub variant: String,
    pub channel: String,
    pub status: String,
    pub note: &'static str,
    pub subject: String,
    pub body: String,
    pub marks: Vec<&'static str>,
    pub error: String,
}

fn exec_view(x: &ExecutionRow, now: i64) -> ExecView {
    let mut marks = Vec::new();
    for (t, m) in [
        (x.opened_at, "opened"),
        (x.clicked_at, "clicked"),
        (x.replied_at, "replied"),
        (x.converted_at, "converted"),
    ] {
        if t.is_some() {
            marks.push(m);
        }
    }
    ExecView {
        at: fmt_time(x.created_at),
        ago: relative(x.created_at, now),
        profile_id: x.profile_id.to_string(),
        to: x.to.clone(),
        campaign: x.campaign_name.clone(),
        campaign_id: x.campaign_id.to_string(),
        step: x.step + 1,
        variant: x.variant.clone(),
        channel: x.channel.clone(),
        status: x.status.clone(),
        note: status_note(&x.status),
        subject: x.subject.clone().unwrap_or_default(),
        body: x.body.clone(),
        marks,
        error: x.error.clone().unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    c: Chrome,
    id: String,
    status: &'static str,
    trigger: String,
    steps: usize,
    enrolled: i64,
    active: i64,
    /// Customers the trigger caught but the campaign could not enroll.
    not_enrolled: i64,
    /// Why, by reason, or "—".
    not_enrolled_why: String,
    funnel: Vec<FunnelRow>,
    variants: Vec<VariantRow>,
    recent: Vec<ExecView>,
    b: Builder,
}

// ---------------------------------------------------------------- handlers

pub async fn list(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let rows = st.store.campaigns(s.org.id).await?;
    let mut c = Chrome::new(&s, "Campaigns", "campaigns");
    c.notice = notice(q.done.as_deref());
    let rows = rows
        .into_iter()
        .map(|r| ListRow {
            id: r.row.id.to_string(),
            name: r.row.campaign.name.clone(),
            status: r.row.status.as_str(),
            trigger: trigger_words(&r.row.campaign.trigger),
            steps: r.row.campaign.steps.len(),
            active: r.stats.active,
            sent: r.stats.sent,
            delivered: r.stats.delivered,
            opened: r.stats.opened,
            clicked: r.stats.clicked,
            replied: r.stats.replied,
            converted: r.stats.converted,
            rate: rate(r.stats.converted, r.stats.sent),
            revenue: money(r.stats.converted_cents, ""),
        })
        .collect();
    Ok(super::render(&ListPage {
        can_edit: s.role.can_administer(),
        c,
        rows,
    }))
}

async fn builder(
    st: &AppState,
    s: &Session,
    f: BuilderForm,
    error: Option<String>,
    preview: Option<PreviewView>,
    id: Option<Uuid>,
) -> Result<Builder, AppError> {
    let traits = st.store.custom_trait_names(s.org.id).await?;
    let (action, preview_action) = match id {
        Some(id) => (
            format!("/campaigns/{id}"),
            format!("/campaigns/{id}/preview"),
        ),
        None => ("/campaigns".to_string(), "/campaigns/preview".to_string()),
    };
    Ok(Builder {
        f,
        error,
        traits,
        preview,
        action,
        preview_action,
        is_new: id.is_none(),
        can_edit: s.role.can_administer(),
        vars: STANDARD_VARS,
    })
}

async fn new_page_with(
    st: &AppState,
    s: &Session,
    f: BuilderForm,
    error: Option<String>,
    preview: Option<PreviewView>,
) -> Result<Response, AppError> {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = NewPage {
        c: Chrome::new(s, "New campaign", "campaigns"),
        b: builder(st, s, f, error, preview, None).await?,
    };
    Ok((status, super::render(&page)).into_response())
}

pub async fn new_page(State(st): State<AppState>, s: Session) -> PageResult<Response> {
    s.require_admin()?;
    Ok(new_page_with(&st, &s, BuilderForm::default(), None, None).await?)
}

/// Applies "Add step" / "Remove last step"; true when the form changed.
fn apply_op(f: &mut BuilderForm, op: &str) -> bool {
    match op {
        "add_step" => {
            if f.steps.len() < bos_core::nudge::campaign::MAX_STEPS {
                let mut next = StepForm::default();
                if let Some(last) = f.steps.last() {
                    next.channel = last.channel.clone();
                }
                f.steps.push(next);
            }
            true
        }
        "remove_step" => {
            if f.steps.len() > 1 {
                f.steps.pop();
            }
            true
        }
        _ => false,
    }
}

/// The form's campaign, checked: a sentence for the first problem.
async fn checked(st: &AppState, org: Uuid, f: &BuilderForm) -> Result<Campaign, String> {
    let c = f.to_campaign()?;
    match campaigns::check(&st.store, org, &c).await {
        Ok(()) => Ok(c),
        Err(campaigns::CampaignError::Invalid { detail, .. }) => Err(detail),
        Err(e) => Err(AppError::from(e).detail()),
    }
}

pub async fn create(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(p): CsrfForm<Pairs>,
) -> PageResult<Response> {
    s.require_admin()?;
    let mut f = BuilderForm::from_pairs(&p);
    if apply_op(&mut f, &op_of(&p)) {
        return Ok(new_page_with(&st, &s, f, None, None).await?);
    }
    let c = match checked(&st, s.org.id, &f).await {
        Ok(c) => c,
        Err(e) => return Ok(new_page_with(&st, &s, f, Some(e), None).await?),
    };
    let status = match f.status.as_str() {
        "active" => CampaignStatus::Active,
        _ => CampaignStatus::Draft,
    };
    let id = campaigns::create(&st.store, s.org.id, &c, status, st.now()).await?;
    Ok(Redirect::to(&format!("/campaigns/{id}?done=campaign_created")).into_response())
}

/// Skip counts as a person reads them: the reasons that happened, with
/// their counts ("no address 12 · opted out 1"), or "—" when none did.
fn skip_words(counts: &[bos_store::nudge::SkipCount]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|c| c.count > 0)
        .map(|c| format!("{} {}", c.label, c.count))
        .collect();
    if parts.is_empty() {
        "\u{2014}".into()
    } else {
        parts.join(" \u{b7} ")
    }
}

/// Why the trigger's customers were not enrolled, as a person reads it:
/// those no step can reach are named as such ("not reachable: no address
/// 3"), apart from those a stop kept out ("stopped 1").
fn not_enrolled_words(counts: &[bos_store::nudge::SkipCount]) -> String {
    use bos_core::nudge::SkipReason;
    let unreachable = |c: &&bos_store::nudge::SkipCount| {
        matches!(
            SkipReason::parse(&c.reason),
            Some(SkipReason::NoAddress | SkipReason::OptedOut)
        )
    };
    let (reach, other): (Vec<_>, Vec<_>) = counts
        .iter()
        .filter(|c| c.count > 0)
        .partition(|c| unreachable(c));
    let mut parts = Vec::new();
    if !reach.is_empty() {
        let why: Vec<String> = reach
            .iter()
            .map(|c| format!("{} {}", c.label, c.count))
            .collect();
        parts.push(format!("not reachable: {}", why.join(", ")));
    }
    parts.extend(other.iter().map(|c| format!("{} {}", c.label, c.count)));
    if parts.is_empty() {
        "\u{2014}".into()
    } else {
        parts.join(" \u{b7} ")
    }
}

async fn campaign_page(
    st: &AppState,
    s: &Session,
    row: &CampaignRow,
    f: BuilderForm,
    error: Option<String>,
    preview: Option<PreviewView>,
    notice_code: Option<&str>,
) -> Result<Response, AppError> {
    let org = s.org.id;
    let funnel = st.store.campaign_funnel(org, row.id).await?;
    let max = funnel.iter().map(|f| f.sent).max().unwrap_or(0).max(1);
    let w = |n: i64| n * 200 / max;
    let funnel = funnel
        .iter()
        .map(|f| FunnelRow {
            step: f.step + 1,
            sent: f.sent,
            delivered: f.delivered,
            opened: f.opened,
            clicked: f.clicked,
            replied: f.replied,
            converted: f.converted,
            failed: f.failed,
            unknown: f.unknown,
            rate: rate(f.converted, f.sent),
            skipped: skip_words(&f.skipped),
            bars: [
                w(f.sent),
                w(f.delivered),
                w(f.opened),
                w(f.clicked),
                w(f.converted),
            ],
        })
        .collect();
    let variants = st
        .store
        .variant_stats(org, row.id)
        .await?
        .into_iter()
        .map(|v| VariantRow {
            step: v.step + 1,
            rate: rate(v.converted, v.sent),
            variant: v.variant,
            sent: v.sent,
            converted: v.converted,
        })
        .collect();
    let now = st.now();
    let recent = st
        .store
        .recent_executions(org, row.id, 25)
        .await?
        .iter()
        .map(|x| exec_view(x, now))
        .collect();
    let summary = st.store.campaign_stats(org, row.id).await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut c = Chrome::new(s, &row.campaign.name, "campaigns");
    c.notice = notice(notice_code);
    let page = CampaignPage {
        c,
        id: row.id.to_string(),
        status: row.status.as_str(),
        trigger: trigger_words(&row.campaign.trigger),
        steps: row.campaign.steps.len(),
        enrolled: summary.enrolled,
        active: summary.active,
        not_enrolled: summary.not_enrolled.iter().map(|c| c.count).sum(),
        not_enrolled_why: not_enrolled_words(&summary.not_enrolled),
        funnel,
        variants,
        recent,
        b: builder(st, s, f, error, preview, Some(row.id)).await?,
    };
    Ok((status, super::render(&page)).into_response())
}

pub async fn show(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    let row = campaigns::find(&st.store, s.org.id, id).await?;
    let f = BuilderForm::from_campaign(&row.campaign, row.status);
    Ok(campaign_page(&st, &s, &row, f, None, None, q.done.as_deref()).await?)
}

pub async fn save(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(p): CsrfForm<Pairs>,
) -> PageResult<Response> {
    let row = campaigns::find(&st.store, s.org.id, id).await?;
    s.require_admin()?;
    let mut f = BuilderForm::from_pairs(&p);
    f.status = row.status.as_str().into();
    if apply_op(&mut f, &op_of(&p)) {
        return Ok(campaign_page(&st, &s, &row, f, None, None, None).await?);
    }
    let c = match checked(&st, s.org.id, &f).await {
        Ok(c) => c,
        Err(e) => return Ok(campaign_page(&st, &s, &row, f, Some(e), None, None).await?),
    };
    campaigns::update(&st.store, s.org.id, id, &c, st.now()).await?;
    Ok(Redirect::to(&format!("/campaigns/{id}?done=campaign_saved")).into_response())
}

#[derive(serde::Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    status: String,
}

pub async fn set_status(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<StatusForm>,
) -> PageResult<Response> {
    let row = campaigns::find(&st.store, s.org.id, id).await?;
    s.require_admin()?;
    let to = campaigns::parse_status(&f.status)?;
    campaigns::change_status(&st.store, &st.scheduler, s.org.id, &row, to, st.now()).await?;
    Ok(Redirect::to(&format!("/campaigns/{id}?done=status_{}", to.as_str())).into_response())
}

/// Renders the form's chosen step for the chosen (or the most recently
/// active) customer.
async fn render_preview(
    st: &AppState,
    org: Uuid,
    campaign_id: Option<Uuid>,
    c: &Campaign,
    f: &BuilderForm,
) -> Result<PreviewView, AppError> {
    let (step, variant) = f.preview_choice();
    let mut v = PreviewView {
        error: None,
        customer: None,
        step: step + 1,
        variant: if variant == 0 { "A".into() } else { "B".into() },
        channel: String::new(),
        to: String::new(),
        subject: String::new(),
        text: String::new(),
        html: String::new(),
    };
    let email = f.preview_email.trim();
    let profile = if email.is_empty() {
        st.store.preview_profile(org).await?
    } else {
        st.store.profile_by_email(org, email).await?
    };
    let Some(profile) = profile else {
        v.error = Some(if email.is_empty() {
            "There are no customers yet to preview with.".into()
        } else {
            format!("No customer has the email \u{201c}{email}\u{201d}; check it, or leave it empty for the most recently active lead.")
        });
        return Ok(v);
    };
    let p = st.store.profile(org, profile).await?;
    let name = if p.display_name.trim().is_empty() {
        p.primary_email.clone()
    } else {
        p.display_name.clone()
    };
    v.customer = Some((p.id.to_string(), name));
    match st
        .store
        .preview(org, campaign_id, c, step, variant, p.id, &st.urls())
        .await?
    {
        Ok(r) => {
            v.channel = r.channel;
            v.to =
                r.to.unwrap_or_else(|| "(no address on this channel)".into());
            v.subject = r.subject.unwrap_or_default();
            v.text = r.text;
            v.html = r.html.unwrap_or_default();
        }
        Err(e) => v.error = Some(sentence(&e)),
    }
    Ok(v)
}

pub async fn preview_new(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(p): CsrfForm<Pairs>,
) -> PageResult<Response> {
    let f = BuilderForm::from_pairs(&p);
    match f.to_campaign() {
        Ok(c) => {
            let v = render_preview(&st, s.org.id, None, &c, &f).await?;
            Ok(new_page_with(&st, &s, f, None, Some(v)).await?)
        }
        Err(e) => Ok(new_page_with(&st, &s, f, Some(e), None).await?),
    }
}

pub async fn preview_saved(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(p): CsrfForm<Pairs>,
) -> PageResult<Response> {
    let row = campaigns::find(&st.store, s.org.id, id).await?;
    // From the builder: the fields as edited (not yet saved); else the
    // saved definition with the chosen step.
    let from_builder = p.iter().any(|(k, v)| k == "form" && v == "builder");
    let mut f = if from_builder {
        BuilderForm::from_pairs(&p)
    } else {
        let mut f = BuilderForm::from_campaign(&row.campaign, row.status);
        let posted = BuilderForm::from_pairs(&p);
        f.preview_step = posted.preview_step;
        f.preview_variant = posted.preview_variant;
        f.preview_email = posted.preview_email;
        f
    };
    f.status = row.status.as_str().into();
    let c = match f.to_campaign() {
        Ok(c) => c,
        Err(e) => return Ok(campaign_page(&st, &s, &row, f, Some(e), None, None).await?),
    };
    let v = render_preview(&st, s.org.id, Some(id), &c, &f).await?;
    Ok(campaign_page(&st, &s, &row, f, None, Some(v), None).await?)
}

// ---------------------------------------------------------------- outbox

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    c: Chrome,
    rows: Vec<ExecView>,
    dev_channels: Vec<&'static str>,
}

pub async fn outbox(State(st): State<AppState>, s: Session) -> PageResult<Response> {
    let now = st.now();
    let rows = st
        .store
        .outbox(s.org.id, 200)
        .await?
        .iter()
        .map(|x| exec_view(x, now))
        .collect();
    let mut dev_channels = Vec::new();
    for (ch, name) in [(Channel::Email, "email"), (Channel::Sms, "SMS")] {
        if st.store.channel_config(s.org.id, ch).await?.provider() == "dev" {
            dev_channels.push(name);
        }
    }
    Ok(super::render(&OutboxPage {
        c: Chrome::new(&s, "Outbox", "outbox"),
        rows,
        dev_channels,
    }))
}

// ---------------------------------------------------------------- settings

pub struct SettingsForm {
    timezone: String,
    email_days: String,
    sms_hours: String,
    email_cap: String,
    sms_cap: String,
}

#[derive(Template)]
#[template(path = "nudge_settings.html")]
struct SettingsPage {
    c: Chrome,
    f: SettingsForm,
    error: Option<String>,
}

fn settings_form(s: &NudgeSettings) -> SettingsForm {
    SettingsForm {
        timezone: s.timezone.clone(),
        email_days: num(s.windows.email_ms as f64 / DAY_MS as f64),
        sms_hours: num(s.windows.sms_ms as f64 / HOUR_MS as f64),
        email_cap: s.cap.email_per_day.to_string(),
        sms_cap: s.cap.sms_per_day.to_string(),
    }
}

pub async fn settings_page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<NoticeQuery>,
) -> PageResult<Response> {
    s.require_admin()?;
    let settings = st.store.nudge_settings(s.org.id).await?;
    let mut c = Chrome::new(&s, "Nudges", "nudge_settings");
    c.notice = notice(q.done.as_deref());
    Ok(super::render(&SettingsPage {
        c,
        f: settings_form(&settings),
        error: None,
    }))
}

#[derive(serde::Deserialize)]
pub struct SettingsPost {
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    email_days: String,
    #[serde(default)]
    sms_hours: String,
    #[serde(default)]
    email_cap: String,
    #[serde(default)]
    sms_cap: String,
}

pub async fn settings_save(
    State(st): State<AppState>,
    s: Session,
    CsrfForm(p): CsrfForm<SettingsPost>,
) -> PageResult<Response> {
    s.require_admin()?;
    let parse = |v: &str, what: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| AppError::invalid("window", format!("{what} must be a number.")))
    };
    let result = async {
        let days = parse(&p.email_days, "The email window (days)")?;
        let hours = parse(&p.sms_hours, "The SMS window (hours)")?;
        // A form without the cap fields (an older page) keeps the caps.
        let current = st.store.nudge_settings(s.org.id).await?.cap;
        let cap = |v: &str, field: &'static str, what: &str, keep: u32| {
            if v.trim().is_empty() {
                return Ok(keep);
            }
            v.trim().parse::<u32>().map_err(|_| {
                AppError::invalid(
                    field,
                    format!("{what} must be a whole number from 1 to {MAX_CAP_PER_DAY}."),
                )
            })
        };
        let settings = NudgeSettings {
            timezone: p.timezone.trim().to_string(),
            windows: Windows {
                email_ms: (days * DAY_MS as f64).round() as i64,
                sms_ms: (hours * HOUR_MS as f64).round() as i64,
            },
            cap: FrequencyCap {
                email_per_day: cap(
                    &p.email_cap,
                    "email_cap_per_day",
                    "The e-mail cap",
                    current.email_per_day,
                )?,
                sms_per_day: cap(
                    &p.sms_cap,
                    "sms_cap_per_day",
                    "The SMS cap",
                    current.sms_per_day,
                )?,
            },
        };
        campaigns::save_settings(&st.store, s.org.id, &settings, st.now())
            .await
            .map_err(AppError::from)
    }
    .await;
    match result {
        Ok(()) => Ok(Redirect::to("/settings/nudges?done=nudges").into_response()),
        Err(e @ AppError::Invalid { .. }) => {
            let page = SettingsPage {
                c: Chrome::new(&s, "Nudges", "nudge_settings"),
                f: SettingsForm {
                    timezone: p.timezone,
                    email_days: p.email_days,
                    sms_hours: p.sms_hours,
                    email_cap: p.email_cap,
                    sms_cap: p.sms_cap,
                },
                error: Some(e.detail()),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, super::render(&page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- profile

pub struct EnrollmentView {
    pub id: String,
    pub campaign: String,
    pub campaign_id: String,
    pub active: bool,
    pub status: String,
    pub next: String,
    pub started: String,
}

/// The Nudges panel of a customer's page.
pub async fn customer_panel(
    st: &AppState,
    org: Uuid,
    profile: Uuid,
) -> Result<(Vec<EnrollmentView>, Vec<ExecView>), AppError> {
    let now = st.now();
    let enrollments = st
        .store
        .enrollments_for_profile(org, profile)
        .await?
        .into_iter()
        .map(|e| {
            let active = e.status == "active";
            EnrollmentView {
                id: e.id.to_string(),
                campaign: e.campaign_name,
                campaign_id: e.campaign_id.to_string(),
                status: if active {
                    "active".into()
                } else {
                    e.ended_why.unwrap_or_else(|| "ended".into())
                },
                next: match (active, e.next_due) {
                    (true, Some(t)) => format!("step {} at {}", e.step_index + 1, fmt_time(t)),
                    (true, None) => "waiting".into(),
                    _ => "—".into(),
                },
                started: fmt_time(e.started_at),
                active,
            }
        })
        .collect();
    let execs = st
        .store
        .executions_for_profile(org, profile)
        .await?
        .iter()
        .map(|x| exec_view(x, now))
        .collect();
    Ok((enrollments, execs))
}

/// `POST /customers/{customer_id}/enrollments/{enrollment_id}/remove`.
pub async fn remove_enrollment(
    State(st): State<AppState>,
    s: Session,
    axum::extract::Path((profile, enrollment)): axum::extract::Path<(String, String)>,
    CsrfForm(_): CsrfForm<Pairs>,
) -> PageResult<Response> {
    let (Ok(profile), Ok(enrollment)) = (profile.parse::<Uuid>(), enrollment.parse::<Uuid>())
    else {
        return Err(PageError(AppError::NotFound));
    };
    let p = st.store.profile(s.org.id, profile).await?;
    let (_, owner) = st
        .store
        .enrollment_owner(s.org.id, enrollment)
        .await?
        .ok_or(AppError::NotFound)?;
    let members = st.store.cluster_members(s.org.id, p.id).await?;
    if owner != p.id && !members.iter().any(|m| m.id == owner) {
        return Err(PageError(AppError::NotFound));
    }
    st.store
        .remove_enrollment(s.org.id, enrollment, st.now())
        .await?;
    Ok(Redirect::to(&format!(
        "/customers/{}?done=enrollment_removed#nudges",
        p.id
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bos_store::nudge::SkipCount;

    fn n(reason: &str, label: &str, count: i64) -> SkipCount {
        SkipCount {
            reason: reason.into(),
            label: label.into(),
            count,
        }
    }

    #[test]
    fn not_enrolled_names_the_unreachable_apart_from_the_stopped() {
        let counts = [
            n("no_address", "no address", 3),
            n("opted_out", "opted out", 1),
            n("stopped", "stopped", 2),
            n("cap", "daily cap moved it", 0),
        ];
        assert_eq!(
            not_enrolled_words(&counts),
            "not reachable: no address 3, opted out 1 \u{b7} stopped 2"
        );
        assert_eq!(
            not_enrolled_words(&[n("stopped", "stopped", 1)]),
            "stopped 1"
        );
        assert_eq!(not_enrolled_words(&[]), "\u{2014}");
    }
}
