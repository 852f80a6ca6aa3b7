//! The Command Center: the organization's AI agents at a glance. A strip of
//! metrics for the chosen period (success rate, first response, cost per
//! interaction and the period's total, CSAT, human intervention) with a
//! trend against the period before; a card per agent with its status in
//! context (a live call's clock and bar, the conversations it handles, its
//! error), a ⋯ menu to pause, resume, read its details or configure it;
//! and the latest lines of the conversations agents handle, each a link
//! into the inbox. Pausing and resuming are for every member (decision
//! 0039); the page is complete without script, and `assets/agents.js`
//! follows `/command-center/stream`, which sends one re-rendered card and
//! the strip per agent change, and the snippets when a conversation moves.
//!
//! Settings → Agents (the registry, admins only) is `ui::agents`; the
//! customer page's agent history is in `ui::customers`.

use super::{fmt_time, relative, Chrome, PathId};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::live::{self, Heard, Step};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::agents::status::clock;
use bos_core::agents::{Compared, LiveStatus, Period, Trend, TrendDirection};
use bos_engine::agents::{AgentMetrics, PausedBy};
use bos_engine::Live;
use bos_store::agents::{Agent, AgentSnippet, StoredInteraction};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// Conversations in the live transcript panel.
const SNIPPETS: u32 = 6;
/// Interactions on an agent's details page.
const RECENT: u32 = 50;
/// A live call's bar is full at this length.
pub const CALL_BAR_FULL_MS: i64 = 20 * 60_000;
/// How often the stream re-reads statuses nobody reported (an agent going
/// offline is derived from silence, so no event says so).
const STATUS_SWEEP: Duration = Duration::from_secs(10);

/// The period picker: today, the last 7 days, the last 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Today,
    Week,
    Month,
}

impl Span {
    pub fn parse(s: &str) -> Span {
        match s {
            "7d" => Span::Week,
            "30d" => Span::Month,
            _ => Span::Today,
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Span::Today => "today",
            Span::Week => "7d",
            Span::Month => "30d",
        }
    }
    pub fn days(self) -> i64 {
        match self {
            Span::Today => 1,
            Span::Week => 7,
            Span::Month => 30,
        }
    }
    /// How the strip names the period ("today", "7 days").
    pub fn label(self) -> &'static str {
        match self {
            Span::Today => "today",
            Span::Week => "7 days",
            Span::Month => "30 days",
        }
    }
    /// How the strip names the period before.
    pub fn before(self) -> &'static str {
        match self {
            Span::Today => "yesterday",
            Span::Week => "the 7 days before",
            Span::Month => "the 30 days before",
        }
    }
    pub const ALL: [Span; 3] = [Span::Today, Span::Week, Span::Month];
}

/// "92%".
pub fn pct(r: f64) -> String {
    format!("{:.0}%", r * 100.0)
}

/// "850 ms", "1.8 s", "2m 05s".
pub fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as i64;
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

/// Dollars from millionths: "$0.042" below a dollar, "$12.30" above.
pub fn usd(micros: f64) -> String {
    let d = micros / 1_000_000.0;
    if d.abs() < 1.0 && d != 0.0 {
        format!("${d:.3}")
    } else {
        let cents = (d * 100.0).round() as i64;
        super::customers::money(cents, "USD")
    }
}

/// One metric tile of the strip.
pub struct Tile {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
    pub sub: String,
    pub arrow: &'static str,
    /// `good`, `bad`, `flat` or `new`.
    pub tone: &'static str,
    pub change: String,
    pub title: String,
}

fn tile(
    key: &'static str,
    label: &'static str,
    value: Option<String>,
    sub: String,
    trend: Trend,
    previous: Option<String>,
    span: Span,
) -> Tile {
    let tone = match trend.direction {
        TrendDirection::New => "new",
        TrendDirection::Flat => "flat",
        _ if trend.good => "good",
        _ => "bad",
    };
    let change = match (trend.direction, trend.change) {
        (TrendDirection::New | TrendDirection::Flat, _) | (_, None) => String::new(),
        (_, Some(c)) => format!("{:+.0}%", c * 100.0),
    };
    let title = match previous {
        Some(p) => format!("vs {p} {}", span.before()),
        None => format!("nothing to compare with {}", span.before()),
    };
    Tile {
        key,
        label,
        value: value.unwrap_or_else(|| "—".into()),
        sub,
        arrow: trend.arrow(),
        tone,
        change,
        title,
    }
}

/// The strip of metrics of a period against the one before.
#[derive(Template)]
#[template(path = "agent_strip.html")]
pub struct Strip {
    pub tiles: Vec<Tile>,
}

impl Strip {
    pub fn new(m: &Compared, span: Span) -> Strip {
        let (c, p) = (&m.current, &m.previous);
        let n = crate::ui::count(c.interactions, "interaction", "interactions");
        Strip {
            tiles: vec![
                tile(
                    "success",
                    "Success rate",
                    c.success_rate.map(pct),
                    format!("{n} {}", span.label()),
                    m.success,
                    p.success_rate.map(pct),
                    span,
                ),
                tile(
                    "response",
                    "Avg first response",
                    c.avg_first_response_ms.map(duration),
                    "until the agent's first reply".into(),
                    m.response,
                    p.avg_first_response_ms.map(duration),
                    span,
                ),
                tile(
                    "cost",
                    "Cost per interaction",
                    c.cost_per_interaction_micros.map(usd),
                    format!("{} {}", usd(c.cost_total_micros as f64), span.label()),
                    m.cost,
                    p.cost_per_interaction_micros.map(usd),
                    span,
                ),
                tile(
                    "csat",
                    "CSAT",
                    c.csat.map(|v| format!("{v:.1}/10")),
                    "customers' own rating".into(),
                    m.csat,
                    p.csat.map(|v| format!("{v:.1}/10")),
                    span,
                ),
                tile(
                    "intervention",
                    "Human intervention",
                    c.intervention_rate.map(pct),
                    "handed off or taken over".into(),
                    m.intervention,
                    p.intervention_rate.map(pct),
                    span,
                ),
            ],
        }
    }
}

/// One agent's card.
pub struct Card {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub provider: &'static str,
    /// The dot's colour: `talking`, `working`, `idle`, `error`, `paused`, `offline`.
    pub key: &'static str,
    pub label: String,
    /// What the agent says it is doing, when the status does not say it.
    pub context: String,
    /// A live call's start (server milliseconds), for the clock and bar.
    pub call_start: Option<i64>,
    /// The call's clock now (`2:34`); the script keeps it counting.
    pub clock: String,
    /// The bar's width now, 0–100.
    pub bar: i64,
    pub paused: bool,
    /// The period's numbers: interactions, success, cost.
    pub numbers: Vec<String>,
}

impl Card {
    pub fn new(a: &Agent, m: Option<&Compared>, now: i64) -> Card {
        let status = LiveStatus::derive(&a.facts(), now);
        let activity = a
            .last
            .as_ref()
            .and_then(|h| h.activity.clone())
            .unwrap_or_default();
        let (label, context) = match &status {
            LiveStatus::Paused => (
                "paused".to_string(),
                format!(
                    "by {} · {}",
                    a.paused_by_name
                        .clone()
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| "a member".into()),
                    a.paused_at.map(|t| relative(t, now)).unwrap_or_default()
                ),
            ),
            LiveStatus::Offline { last_seen } => (
                "offline".to_string(),
                match last_seen {
                    Some(t) => format!("last heartbeat {}", relative(*t, now)),
                    None => "never reported".into(),
                },
            ),
            LiveStatus::Working(a) => (a.clone(), String::new()),
            other => (other.label(), activity),
        };
        let (call_start, bar, clock_now) = match &status {
            LiveStatus::Talking { elapsed_ms } => (
                a.last.as_ref().and_then(|h| h.call_started_at),
                (elapsed_ms * 100 / CALL_BAR_FULL_MS).clamp(1, 100),
                clock(*elapsed_ms),
            ),
            _ => (None, 0, String::new()),
        };
        // The clock is shown apart from the word, so the script can count it.
        let label = match &status {
            LiveStatus::Talking { .. } => "talking".to_string(),
            _ => label,
        };
        let numbers = match m {
            Some(m) if m.current.interactions > 0 => {
                let c = &m.current;
                let mut parts = vec![crate::ui::count(
                    c.interactions,
                    "interaction",
                    "interactions",
                )];
                if let Some(s) = c.success_rate {
                    parts.push(format!("{} success", pct(s)));
                }
                parts.push(usd(c.cost_total_micros as f64));
                parts
            }
            _ => vec!["no interactions".into()],
        };
        Card {
            id: a.id.to_string(),
            name: a.name.clone(),
            kind: a.kind.label(),
            provider: a.provider.as_str(),
            key: status.key(),
            label,
            context,
            call_start,
            clock: clock_now,
            bar,
            paused: a.paused,
            numbers,
        }
    }
}

/// One card alone: the page includes it, and the stream sends it.
#[derive(Template)]
#[template(path = "agent_card.html")]
pub struct CardTemplate<'a> {
    pub a: &'a Card,
    pub csrf: &'a str,
    pub is_admin: bool,
    pub span: &'a str,
    /// Where Pause and Resume come back to: `details`, or the Command Center.
    pub back: &'a str,
}

/// A snippet line, ready to show.
pub struct Line {
    pub who: String,
    pub kind: String,
    pub text: String,
}

/// One conversation an agent handles, its latest lines.
pub struct Snippet {
    pub conversation: String,
    pub agent: String,
    pub customer: String,
    pub customer_id: String,
    pub channel: String,
    pub open: bool,
    pub when: String,
    pub at: String,
    pub lines: Vec<Line>,
}

fn short(t: &str, n: usize) -> String {
    let one: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > n {
        format!("{}…", one.chars().take(n - 1).collect::<String>())
    } else {
        one
    }
}

impl Snippet {
    pub fn new(s: &AgentSnippet, now: i64) -> Snippet {
        Snippet {
            conversation: s.conversation_id.to_string(),
            agent: s.agent_name.clone(),
            customer: s.customer_name.clone(),
            customer_id: s.profile_id.to_string(),
            channel: s.channel.clone(),
            open: s.open,
            when: relative(s.last_message_at, now),
            at: fmt_time(s.last_message_at),
            lines: s
                .lines
                .iter()
                .map(|l| Line {
                    who: match l.author_kind.as_str() {
                        "customer" => s.customer_name.clone(),
                        _ if !l.author_name.is_empty() => l.author_name.clone(),
                        other => other.to_string(),
                    },
                    kind: l.author_kind.clone(),
                    text: short(&l.body, 160),
                })
                .collect(),
        }
    }
}

/// The live transcript panel's list.
#[derive(Template)]
#[template(path = "agent_snippets.html")]
pub struct Snippets {
    pub items: Vec<Snippet>,
    /// For each snippet's Takeover form.
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "command_center.html")]
struct Page {
    c: Chrome,
    span: Span,
    spans: Vec<(&'static str, &'static str, bool)>,
    strip: Strip,
    cards: Vec<Card>,
    snippets: Snippets,
    online: usize,
    now: i64,
    css: &'static str,
    js: &'static str,
}

impl Page {
    fn strip_html(&self) -> String {
        self.strip.render().unwrap_or_default()
    }
    fn card(&self, a: &Card) -> String {
        CardTemplate {
            a,
            csrf: &self.c.csrf,
            is_admin: self.c.is_admin,
            span: self.span.key(),
            back: "",
        }
        .render()
        .unwrap_or_default()
    }
    fn snippets_html(&self) -> String {
        self.snippets.render().unwrap_or_default()
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    period: String,
    done: Option<String>,
}

fn notice(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "paused" => "Paused: the agent's writes are refused until it is resumed; it may still report heartbeats.",
        "resumed" => "Resumed: the agent may write again.",
        _ => return super::notice(code),
    };
    Some(text.to_string())
}

async fn period(st: &AppState, org: Uuid, span: Span) -> Result<Period, AppError> {
    Ok(st.agents.last_days(org, span.days(), st.now()).await?)
}

/// `GET /command-center`.
pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<PageQuery>,
) -> PageResult<Response> {
    let org = s.org.id;
    let span = Span::parse(&q.period);
    let now = st.now();
    let m = st
        .agents
        .metrics(org, None, period(&st, org, span).await?)
        .await?;
    let snippets = st.agents.snippets(org, SNIPPETS).await?;
    let cards: Vec<Card> = m
        .per_agent
        .iter()
        .map(|(a, c)| Card::new(a, Some(c), now))
        .collect();
    let online = m
        .per_agent
        .iter()
        .filter(|(a, _)| LiveStatus::derive(&a.facts(), now).is_online())
        .count();
    let mut c = Chrome::new(&s, "Command Center", "command_center");
    c.notice = notice(q.done.as_deref());
    let page = Page {
        c,
        spans: Span::ALL
            .iter()
            .map(|x| (x.key(), x.label(), *x == span))
            .collect(),
        strip: Strip::new(&m.overall, span),
        cards,
        snippets: Snippets {
            items: snippets.iter().map(|x| Snippet::new(x, now)).collect(),
            csrf: s.csrf.clone(),
        },
        online,
        now,
        span,
        css: crate::assets::url("agents.css"),
        js: crate::assets::url("agents.js"),
    };
    Ok(super::render(&page))
}

/// One interaction on the details page.
pub struct InteractionRow {
    pub when: String,
    pub at: String,
    pub customer_id: Option<String>,
    pub conversation_id: Option<String>,
    pub outcome: &'static str,
    pub outcome_key: &'static str,
    pub response: String,
    pub cost: String,
    pub csat: String,
    pub senti: Option<Senti>,
    pub intervened: bool,
    pub summary: String,
}

/// A 0–10 sentiment on a bar: its text, the bar's width (0–100) and tone.
pub struct Senti {
    pub text: String,
    pub width: i64,
    pub tone: &'static str,
}

impl Senti {
    pub fn of(v: f64) -> Senti {
        Senti {
            text: format!("{v:.1}"),
            width: (v * 10.0).round().clamp(0.0, 100.0) as i64,
            tone: sentiment_tone(v),
        }
    }
}

/// Where a sentiment sits on the 0–10 bar, and its tone.
pub fn sentiment_tone(v: f64) -> &'static str {
    if v >= 7.0 {
        "good"
    } else if v >= 4.0 {
        "mid"
    } else {
        "bad"
    }
}

pub fn outcome_label(o: bos_core::agents::Outcome) -> (&'static str, &'static str) {
    match o {
        bos_core::agents::Outcome::Success => ("resolved", "success"),
        bos_core::agents::Outcome::Failure => ("not resolved", "failure"),
        bos_core::agents::Outcome::HandedOff => ("handed off", "handed_off"),
    }
}

impl InteractionRow {
    pub fn new(i: &StoredInteraction, now: i64) -> InteractionRow {
        let n = &i.new;
        let (outcome, outcome_key) = outcome_label(n.outcome);
        InteractionRow {
            when: relative(n.started_at, now),
            at: fmt_time(n.started_at),
            customer_id: n.profile_id.map(|p| p.to_string()),
            conversation_id: n.conversation_id.map(|c| c.to_string()),
            outcome,
            outcome_key,
            response: n
                .first_response_ms
                .map(|r| duration(r as f64))
                .unwrap_or_else(|| "—".into()),
            cost: usd(n.cost_micros as f64),
            csat: n
                .csat
                .map(|c| format!("{c}/10"))
                .unwrap_or_else(|| "—".into()),
            senti: n.sentiment.map(Senti::of),
            intervened: n.human_intervened,
            summary: n.summary.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "agent_detail.html")]
struct DetailPage {
    c: Chrome,
    card: Card,
    strip: Strip,
    span: Span,
    spans: Vec<(&'static str, &'static str, bool)>,
    rows: Vec<InteractionRow>,
    agent_id: String,
    now: i64,
    css: &'static str,
    js: &'static str,
}

impl DetailPage {
    fn card_html(&self) -> String {
        CardTemplate {
            a: &self.card,
            csrf: &self.c.csrf,
            is_admin: self.c.is_admin,
            span: self.span.key(),
            back: "details",
        }
        .render()
        .unwrap_or_default()
    }
    fn strip_html(&self) -> String {
        self.strip.render().unwrap_or_default()
    }
}

/// `GET /command-center/agents/{agent_id}`: one agent's card, its metrics
/// and its latest interactions.
pub async fn details(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    Query(q): Query<PageQuery>,
) -> PageResult<Response> {
    let org = s.org.id;
    let span = Span::parse(&q.period);
    let now = st.now();
    let m: AgentMetrics = st
        .agents
        .metrics(org, Some(id), period(&st, org, span).await?)
        .await?;
    let (agent, _) = m.per_agent.first().ok_or(AppError::NotFound)?;
    let rows = st
        .agents
        .recent_interactions(org, id, RECENT)
        .await?
        .iter()
        .map(|i| InteractionRow::new(i, now))
        .collect();
    let mut c = Chrome::new(&s, &agent.name, "command_center");
    c.notice = notice(q.done.as_deref());
    let page = DetailPage {
        card: Card::new(agent, Some(&m.overall), now),
        strip: Strip::new(&m.overall, span),
        spans: Span::ALL
            .iter()
            .map(|x| (x.key(), x.label(), *x == span))
            .collect(),
        span,
        rows,
        agent_id: id.to_string(),
        now,
        c,
        css: crate::assets::url("agents.css"),
        js: crate::assets::url("agents.js"),
    };
    Ok(super::render(&page))
}

#[derive(Deserialize)]
pub struct ActForm {
    /// Where to go back to: `settings`, `details`, or the Command Center.
    #[serde(default)]
    back: String,
    #[serde(default)]
    period: String,
}

fn back_to(f: &ActForm, id: Uuid, code: &str) -> String {
    let span = Span::parse(&f.period).key();
    match f.back.as_str() {
        "settings" => format!("/settings/agents?done={code}#agent-{id}"),
        "details" => format!("/command-center/agents/{id}?period={span}&done={code}"),
        _ => format!("/command-center?period={span}&done={code}"),
    }
}

/// `POST /command-center/agents/{agent_id}/pause`: any member may stop an
/// agent; its next write is refused (409) until someone resumes it.
pub async fn pause(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<ActForm>,
) -> PageResult<Response> {
    let by = PausedBy {
        user_id: Some(s.user.id),
        name: if s.user.display_name.is_empty() {
            s.user.email.clone()
        } else {
            s.user.display_name.clone()
        },
    };
    st.agents.pause(s.org.id, id, &by, st.now()).await?;
    Ok(Redirect::to(&back_to(&f, id, "paused")).into_response())
}

/// `POST /command-center/agents/{agent_id}/resume`.
pub async fn resume(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<ActForm>,
) -> PageResult<Response> {
    st.agents.resume(s.org.id, id, st.now()).await?;
    Ok(Redirect::to(&back_to(&f, id, "resumed")).into_response())
}

/// `POST /command-center/conversations/{conversation_id}/takeover`: the
/// member takes the conversation over from its agent (assigned to them, no
/// longer waiting for a human; the agent's stream says `takeover` and its
/// replies there are refused) and goes to it in the inbox.
pub async fn takeover(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(_): CsrfForm<ActForm>,
) -> PageResult<Response> {
    st.agents
        .take_over(s.org.id, id, s.user.id, st.now())
        .await?;
    Ok(Redirect::to(&format!("/inbox/{id}")).into_response())
}

#[derive(Deserialize, Default)]
pub struct StreamQuery {
    #[serde(default)]
    period: String,
}

/// `GET /command-center/stream`: `ready` at once, then an `agent` event
/// per change to one of this organization's agents (its card and the
/// strip, re-rendered), `snippets` when a conversation an agent handles
/// moves, and `resync` when changes were missed (the page reloads).
pub async fn stream(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<StreamQuery>,
) -> PageResult<Response> {
    let opened = live::open(&st, &s);
    let org = s.org.id;
    let span = Span::parse(&q.period);
    // What every card says now, so the sweep only sends what changed.
    let now = st.now();
    let shown = st
        .agents
        .list(org, now)
        .await?
        .into_iter()
        .map(|v| (v.agent.id, v.status.key()))
        .collect();
    let ready = Event::default()
        .event("ready")
        .retry(Duration::from_secs(3))
        .data("{}");
    let view = Cockpit {
        org,
        span,
        csrf: s.csrf.clone(),
        is_admin: s.role.can_administer(),
        shown,
    };
    Ok(opened.sse(st, Step::Send(ready), view))
}

/// The Command Center's live view.
struct Cockpit {
    org: Uuid,
    span: Span,
    csrf: String,
    is_admin: bool,
    /// Each agent's status key as last sent.
    shown: HashMap<Uuid, &'static str>,
}

impl Cockpit {
    /// The `agent` event for these agents: their cards and the strip.
    async fn agents_message(&mut self, st: &AppState, only: &[Uuid]) -> Result<String, AppError> {
        let now = st.now();
        let m = st
            .agents
            .metrics(self.org, None, period(st, self.org, self.span).await?)
            .await?;
        let mut cards = Vec::new();
        for (a, c) in &m.per_agent {
            if !only.contains(&a.id) {
                continue;
            }
            let card = Card::new(a, Some(c), now);
            self.shown.insert(a.id, card.key);
            let html = CardTemplate {
                a: &card,
                csrf: &self.csrf,
                is_admin: self.is_admin,
                span: self.span.key(),
                back: "",
            }
            .render()
            .map_err(|e| AppError::Internal(format!("template: {e}")))?;
            cards.push(serde_json::json!({"id": a.id, "card": html}));
        }
        let online = m
            .per_agent
            .iter()
            .filter(|(a, _)| LiveStatus::derive(&a.facts(), now).is_online())
            .count();
        let strip = Strip::new(&m.overall, self.span)
            .render()
            .map_err(|e| AppError::Internal(format!("template: {e}")))?;
        Ok(serde_json::json!({
            "cards": cards,
            "strip": strip,
            "online": online,
            "total": m.per_agent.len(),
            "now": now,
        })
        .to_string())
    }

    /// Agents whose derived status moved without an event (offline after
    /// missed heartbeats).
    async fn drifted(&self, st: &AppState) -> Result<Vec<Uuid>, AppError> {
        let now = st.now();
        Ok(st
            .agents
            .list(self.org, now)
            .await?
            .into_iter()
            .filter(|v| self.shown.get(&v.agent.id) != Some(&v.status.key()))
            .map(|v| v.agent.id)
            .collect())
    }
}

impl live::View for Cockpit {
    fn patience(&self) -> Option<Duration> {
        Some(STATUS_SWEEP)
    }

    fn wants(&self, l: &Live) -> bool {
        matches!(l, Live::Agent { .. } | Live::Conversation { .. })
    }

    async fn on(&mut self, st: &AppState, heard: Heard) -> Step {
        let sent = match heard {
            Heard::Event(Live::Agent { agent_id }) => self
                .agents_message(st, &[agent_id])
                .await
                .map(|d| Some(Event::default().event("agent").data(d))),
            Heard::Event(Live::Conversation { .. }) => {
                let now = st.now();
                st.agents
                    .snippets(self.org, SNIPPETS)
                    .await
                    .map_err(AppError::from)
                    .and_then(|v| {
                        Snippets {
                            items: v.iter().map(|x| Snippet::new(x, now)).collect(),
                            csrf: self.csrf.clone(),
                        }
                        .render()
                        .map_err(|e| AppError::Internal(format!("template: {e}")))
                    })
                    .map(|html| {
                        Some(
                            Event::default()
                                .event("snippets")
                                .data(serde_json::json!({ "html": html }).to_string()),
                        )
                    })
            }
            Heard::Quiet => match self.drifted(st).await {
                Ok(ids) if ids.is_empty() => Ok(None),
                Ok(ids) => self
                    .agents_message(st, &ids)
                    .await
                    .map(|d| Some(Event::default().event("agent").data(d))),
                Err(e) => Err(e),
            },
            Heard::Missed => return Step::Send(Event::default().event("resync").data("{}")),
            Heard::Event(_) => return Step::Skip,
        };
        match sent {
            Ok(Some(ev)) => Step::Send(ev),
            Ok(None) => Step::Skip,
            Err(e) => {
                tracing::warn!(org = %self.org, error = ?e, "command center stream: not rendered");
                Step::Skip
            }
        }
    }
}
