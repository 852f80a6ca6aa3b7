//! The intake dashboard: the live lead feed with intent badges
//! and lead states, the state distribution and category counts, filters,
//! and quick actions (assign, tag, mark converted or lost, reopen). The
//! page is complete without script; `assets/intake.js` follows
//! `/intake/stream` and moves updated leads to the top as they change.

use super::customers::{group_digits, money};
use super::{fmt_time, relative, Chrome, PathId};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::live::{self, Heard, Step};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::intent::{Category, Fired};
use bos_core::leads::{Input, LeadState};
use bos_engine::leads::{self, Action, Done};
use bos_engine::Live;
use bos_store::pipeline::{Lead, LeadFilter};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

/// Leads per page of the feed.
const PAGE: u32 = 50;

/// The intent badge's hover text: "checkout started +50 · cart value ≥ 100.00 +20".
pub fn reasons_title(fired: &[Fired]) -> String {
    if fired.is_empty() {
        return "No intent rule fired yet".into();
    }
    fired
        .iter()
        .map(|f| format!("{} {:+}", f.why, f.points))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub fn category_label(c: &str) -> &'static str {
    Category::parse(c)
        .map(Category::label)
        .unwrap_or("Unscored")
}

pub fn state_label(s: &str) -> &'static str {
    LeadState::parse(s)
        .map(LeadState::label)
        .unwrap_or("Unknown")
}

/// One row of the feed, ready to show.
pub struct LeadRow {
    pub id: String,
    pub name: String,
    pub contact: String,
    pub initials: String,
    pub state: String,
    pub state_label: &'static str,
    pub category: String,
    pub category_label: &'static str,
    pub score: i64,
    pub reasons: String,
    pub last_event: String,
    pub ltv: String,
    pub open_cart: String,
    pub assignee: String,
    pub tags: Vec<String>,
    pub when: String,
    pub at: String,
    pub open: bool,
    pub can_convert: bool,
    pub can_lose: bool,
    pub can_reopen: bool,
}

/// Whether a person's move applies to a lead in this state (the state
/// machine decides; the buttons follow).
fn can(state: &str, input: Input) -> bool {
    LeadState::parse(state).is_some_and(|s| {
        bos_core::leads::next(s, &input, &bos_core::leads::LeadSettings::default()).is_some()
    })
}

pub fn initials(name: &str) -> String {
    let i: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .collect();
    if i.is_empty() {
        "?".into()
    } else {
        i.to_uppercase()
    }
}

impl LeadRow {
    pub fn new(l: &Lead, now: i64) -> LeadRow {
        let name = if l.display_name.is_empty() {
            if !l.email.is_empty() {
                l.email.clone()
            } else if !l.phone.is_empty() {
                l.phone.clone()
            } else {
                "Anonymous visitor".into()
            }
        } else {
            l.display_name.clone()
        };
        let contact = if !l.display_name.is_empty() && !l.email.is_empty() {
            l.email.clone()
        } else if !l.display_name.is_empty() {
            l.phone.clone()
        } else {
            String::new()
        };
        LeadRow {
            id: l.profile_id.to_string(),
            initials: initials(&name),
            name,
            contact,
            state: l.state.as_str().to_string(),
            state_label: l.state.label(),
            category: l.category.as_str().to_string(),
            category_label: l.category.label(),
            score: l.score,
            reasons: reasons_title(&leads::fired_rules(&l.fired)),
            last_event: l.last_event.clone(),
            ltv: money(l.ltv_cents, "USD"),
            open_cart: l
                .open_cart_cents
                .map(|c| money(c, "USD"))
                .unwrap_or_default(),
            assignee: l.assignee.clone().unwrap_or_default(),
            tags: leads::tags_of(&l.tags),
            when: relative(l.updated_at, now),
            at: fmt_time(l.updated_at),
            open: bos_core::leads::is_open(l.state),
            can_convert: can(l.state.as_str(), Input::MarkConverted),
            can_lose: can(l.state.as_str(), Input::MarkLost),
            can_reopen: can(l.state.as_str(), Input::Reopen),
        }
    }
}

/// A member in the assign menu: (email, label).
pub type MemberOpt = (String, String);

/// One feed row alone: the page includes it, and the stream sends it.
#[derive(Template)]
#[template(path = "intake_row.html")]
pub struct RowTemplate<'a> {
    pub r: &'a LeadRow,
    pub csrf: &'a str,
    pub members: &'a [MemberOpt],
    pub me: &'a str,
    pub back: &'a str,
}

pub struct Seg {
    pub key: &'static str,
    pub label: &'static str,
    pub n: String,
    pub on: bool,
    /// Position and width in the 0..1000 bar.
    pub x: i64,
    pub w: i64,
}

/// Leads per state and per category, as the store counts them.
pub type Counts = (Vec<(String, i64)>, Vec<(String, i64)>);

/// The distribution panel: the stacked bar, state counts, category counts.
#[derive(Template)]
#[template(path = "intake_counts.html")]
pub struct CountsTemplate {
    pub states: Vec<Seg>,
    pub categories: Vec<Seg>,
    pub total: String,
    pub state: String,
    pub category: String,
}

impl CountsTemplate {
    pub fn new(counts: &Counts, state: &str, category: &str) -> CountsTemplate {
        let get = |v: &[(String, i64)], k: &str| {
            v.iter().find(|(a, _)| a == k).map(|(_, n)| *n).unwrap_or(0)
        };
        let total: i64 = LeadState::ALL
            .iter()
            .map(|s| get(&counts.0, s.as_str()))
            .sum();
        let mut x = 0;
        let states = LeadState::ALL
            .iter()
            .map(|s| {
                let n = get(&counts.0, s.as_str());
                let w = if total > 0 { n * 1000 / total } else { 0 };
                let seg = Seg {
                    key: s.as_str(),
                    label: s.label(),
                    n: group_digits(n),
                    on: state == s.as_str(),
                    x,
                    w,
                };
                x += w;
                seg
            })
            .collect();
        let categories = Category::ALL
            .iter()
            .map(|c| Seg {
                key: c.as_str(),
                label: c.label(),
                n: group_digits(get(&counts.1, c.as_str())),
                on: category == c.as_str(),
                x: 0,
                w: 0,
            })
            .collect();
        CountsTemplate {
            states,
            categories,
            total: group_digits(total),
            state: state.to_string(),
            category: category.to_string(),
        }
    }

    /// The feed's URL with this state (and the current category).
    pub fn state_href(&self, s: &str) -> String {
        feed_href(if self.state == s { "" } else { s }, &self.category, None)
    }

    pub fn category_href(&self, c: &str) -> String {
        feed_href(&self.state, if self.category == c { "" } else { c }, None)
    }
}

/// `/intake?state=…&category=…&before=…`, leaving out empty parts.
pub fn feed_href(state: &str, category: &str, before: Option<&str>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if !state.is_empty() {
        pairs.push(("state", state.to_string()));
    }
    if !category.is_empty() {
        pairs.push(("category", category.to_string()));
    }
    if let Some(b) = before {
        pairs.push(("before", b.to_string()));
    }
    if pairs.is_empty() {
        "/intake".into()
    } else {
        format!(
            "/intake?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    }
}

#[derive(Template)]
#[template(path = "intake.html")]
struct FeedPage {
    c: Chrome,
    rows: Vec<LeadRow>,
    counts: CountsTemplate,
    members: Vec<MemberOpt>,
    me: String,
    state: String,
    category: String,
    states: Vec<(&'static str, &'static str)>,
    categories: Vec<(&'static str, &'static str)>,
    paged: bool,
    older: Option<String>,
    back: String,
    js: &'static str,
    leads_css: &'static str,
}

impl FeedPage {
    fn counts_html(&self) -> String {
        self.counts.render().unwrap_or_default()
    }

    fn row(&self, r: &LeadRow) -> String {
        RowTemplate {
            r,
            csrf: &self.c.csrf,
            members: &self.members,
            me: &self.me,
            back: &self.back,
        }
        .render()
        .unwrap_or_default()
    }
}

#[derive(Deserialize, Default)]
pub struct FeedQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    before: String,
    done: Option<String>,
}

/// Only known states and categories survive into the page and its links.
fn known_state(s: &str) -> String {
    LeadState::parse(s)
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

fn known_category(c: &str) -> String {
    Category::parse(c)
        .map(|c| c.as_str().to_string())
        .unwrap_or_default()
}

/// Messages after a quick action, chosen by code (no URL text is shown).
pub fn notice(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "converted" => "Marked converted.",
        "lost" => "Marked lost.",
        "reopened" => "Reopened: the lead is engaged again.",
        "assigned" => "Assigned.",
        "unassigned" => "Unassigned.",
        "tagged" => "Tag added.",
        "unchanged" => "Nothing changed: that move does not apply to the lead's current state.",
        _ => return super::notice(code),
    };
    Some(text.to_string())
}

pub async fn members_of(st: &AppState, org: Uuid) -> Result<Vec<MemberOpt>, AppError> {
    Ok(st
        .store
        .members(org)
        .await?
        .into_iter()
        .map(|m| {
            let label = if m.display_name.is_empty() {
                m.email.clone()
            } else {
                format!("{} ({})", m.display_name, m.email)
            };
            (m.email, label)
        })
        .collect())
}

/// `GET /intake`: the feed, newest change first.
pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<FeedQuery>,
) -> PageResult<Response> {
    let org = s.org.id;
    let state = known_state(&q.state);
    let category = known_category(&q.category);
    let (before, before_id) = leads::parse_feed_cursor(q.before.trim()).unwrap_or((None, None));
    let leads = st
        .store
        .lead_feed(
            org,
            &LeadFilter {
                state: LeadState::parse(&state),
                category: Category::parse(&category),
                before,
                before_id,
                limit: PAGE,
            },
        )
        .await?;
    let now = st.now();
    let counts = st.store.lead_counts(org).await?;
    let older = (leads.len() as u32 == PAGE)
        .then(|| {
            leads
                .last()
                .map(|l| feed_href(&state, &category, Some(&leads::feed_cursor(l))))
        })
        .flatten();
    let mut c = Chrome::new(&s, "Intake", "intake");
    c.notice = notice(q.done.as_deref());
    let page = FeedPage {
        rows: leads.iter().map(|l| LeadRow::new(l, now)).collect(),
        counts: CountsTemplate::new(&counts, &state, &category),
        members: members_of(&st, org).await?,
        me: s.user.email.clone(),
        back: feed_href(&state, &category, None),
        states: LeadState::ALL
            .iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        categories: Category::ALL
            .iter()
            .map(|c| (c.as_str(), c.label()))
            .collect(),
        paged: before.is_some(),
        older,
        state,
        category,
        js: crate::assets::url("intake.js"),
        leads_css: crate::assets::url("leads.css"),
        c,
    };
    Ok(super::render(&page))
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    tag: String,
    /// Where to go back to: only a feed URL this page made, or the profile.
    #[serde(default)]
    back: String,
}

/// A redirect target the form may name: the feed (with known filters) or
/// this lead's profile page. Anything else goes to the feed.
fn back_to(raw: &str, profile: Uuid) -> String {
    if raw == format!("/customers/{profile}") {
        return raw.to_string();
    }
    let qs = raw.strip_prefix("/intake").unwrap_or("");
    let qs = qs.strip_prefix('?').unwrap_or("");
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(qs).unwrap_or_default();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    feed_href(
        &known_state(&get("state")),
        &known_category(&get("category")),
        None,
    )
}

fn with_done(url: &str, code: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}done={code}")
}

/// `POST /intake/{customer_id}/action`: a quick action from the feed or the
/// profile page; back to where it came from.
pub async fn action(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<ActionForm>,
) -> PageResult<Response> {
    let org = s.org.id;
    // Look up first: another organization's lead is "not found" whatever the input.
    let lead = st.store.lead(org, id).await?.ok_or(AppError::NotFound)?;
    let action = match f.action.as_str() {
        "mark_converted" => Action::MarkConverted,
        "mark_lost" => Action::MarkLost,
        "reopen" => Action::Reopen,
        "assign" => {
            let who = if f.assignee == "me" {
                s.user.email.clone()
            } else {
                f.assignee.clone()
            };
            Action::Assign(leads::assignee(&st.store, org, &who).await?)
        }
        "tag" => leads::tag(&f.tag)?,
        _ => {
            return Err(AppError::invalid(
                "action",
                "Send one of: mark_converted, mark_lost, reopen, assign (with assignee), tag (with tag).",
            )
            .into())
        }
    };
    let done = leads::act(
        &st.lead_deps(),
        org,
        lead.profile_id,
        action,
        &s.user.email,
        st.now(),
    )
    .await?;
    let code = match done {
        Done::Moved(c) => c,
        Done::Unchanged => "unchanged",
    };
    Ok(Redirect::to(&with_done(&back_to(&f.back, lead.profile_id), code)).into_response())
}

/// A lead change as the stream reports it.
struct LeadChanged {
    profile_id: Uuid,
    kind: &'static str,
    created: bool,
}

/// The JSON each `lead` event carries (what `intake.js` reads).
async fn lead_message(
    st: &AppState,
    org: Uuid,
    ev: &LeadChanged,
    csrf: &str,
    members: &[MemberOpt],
    me: &str,
) -> Result<String, AppError> {
    let lead = st.store.lead(org, ev.profile_id).await?;
    let counts = st.store.lead_counts(org).await?;
    let now = st.now();
    let (row, state, category, id) = match &lead {
        Some(l) => {
            let r = LeadRow::new(l, now);
            let html = RowTemplate {
                r: &r,
                csrf,
                members,
                me,
                back: "/intake",
            }
            .render()
            .map_err(|e| AppError::Internal(format!("template: {e}")))?;
            (
                html,
                l.state.as_str().to_string(),
                l.category.as_str().to_string(),
                l.profile_id,
            )
        }
        // Erased or merged away: the page drops the row.
        None => (String::new(), String::new(), String::new(), ev.profile_id),
    };
    Ok(serde_json::json!({
        "id": id,
        "was": ev.profile_id,
        "kind": ev.kind,
        "created": ev.created,
        "state": state,
        "category": category,
        "row": row,
        "totals": {
            "states": counts.0.iter().map(|(k, n)| (k.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
            "categories": counts.1.iter().map(|(k, n)| (k.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
        },
    })
    .to_string())
}

/// `GET /intake/stream`: a `ready` event at once, then one `lead` event per
/// change to one of this organization's leads (never another's), with the
/// row's HTML and the new counts; `resync` when changes were missed (the
/// page reloads).
pub async fn stream(State(st): State<AppState>, s: Session) -> PageResult<Response> {
    // Subscribe before answering: nothing after `ready` is missed.
    let opened = live::open(&st, &s);
    let org = s.org.id;
    let members = members_of(&st, org).await?;
    let ready = Event::default()
        .event("ready")
        .retry(Duration::from_secs(3))
        .data("{}");
    let view = LeadFeed {
        org,
        csrf: s.csrf.clone(),
        me: s.user.email.clone(),
        members,
    };
    Ok(opened.sse(st, Step::Send(ready), view))
}

/// The intake dashboard's live view.
struct LeadFeed {
    org: Uuid,
    csrf: String,
    me: String,
    members: Vec<MemberOpt>,
}

impl live::View for LeadFeed {
    fn wants(&self, l: &Live) -> bool {
        matches!(l, Live::Lead { .. })
    }

    async fn on(&mut self, st: &AppState, heard: Heard) -> Step {
        match heard {
            Heard::Event(Live::Lead {
                profile_id,
                change,
                created,
            }) => {
                let ev = LeadChanged {
                    profile_id,
                    kind: change.as_str(),
                    created,
                };
                match lead_message(st, self.org, &ev, &self.csrf, &self.members, &self.me).await {
                    Ok(data) => Step::Send(Event::default().event("lead").data(data)),
                    Err(e) => {
                        tracing::warn!(org = %self.org, error = ?e, "intake stream: lead not rendered");
                        Step::Skip
                    }
                }
            }
            // Too far behind, or changes elsewhere lost: the page reloads.
            Heard::Missed => Step::Send(Event::default().event("resync").data("{}")),
            Heard::Event(_) | Heard::Quiet => Step::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_tags() {
        let fired = vec![
            Fired {
                rule_id: "a".into(),
                name: "A".into(),
                points: 50,
                why: "checkout started".into(),
            },
            Fired {
                rule_id: "b".into(),
                name: "B".into(),
                points: -5,
                why: "came from a test".into(),
            },
        ];
        assert_eq!(
            reasons_title(&fired),
            "checkout started +50 · came from a test -5"
        );
        assert_eq!(feed_href("", "", None), "/intake");
        assert_eq!(
            feed_href("new", "high_value", Some("5")),
            "/intake?state=new&category=high_value&before=5"
        );
        let p = Uuid::nil();
        assert_eq!(back_to("https://evil.example/", p), "/intake");
        assert_eq!(back_to("/intake?state=lost&x=1", p), "/intake?state=lost");
        assert_eq!(
            back_to(&format!("/customers/{p}"), p),
            format!("/customers/{p}")
        );
    }
}
