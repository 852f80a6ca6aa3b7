//! Customers (the God View): the searchable list and the customer page with
//! identity badges, the journey timeline, the merge explanation with
//! Unmerge, possible duplicates with a one-click merge, export and erase.

use super::{fmt_time, relative, Chrome, PathId};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::params::{
    customer_cursor, parse_customer_cursor, parse_sort, timeline_cursor, timeline_query,
};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::identity::IdentifierKind;
use bos_engine::identity::{self, kind_label, IdentityError, TIMELINE_KINDS};
use bos_store::identity::{Profile, ProfileQuery, ProfileSort};
use serde::Deserialize;
use std::collections::BTreeMap;

/// 1234567 → "1,234,567".
pub fn group_digits(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Money in minor units as "$1,234.50" (USD) or "1,234.50 EUR".
/// Timeline entries written before merges by hand had their own words read
/// "same manual chosen by a person"; show them as new ones read.
fn legacy_summary(kind: &str, summary: &str) -> String {
    const OLD: &str = " — same manual chosen by a person";
    match summary.strip_suffix(OLD) {
        Some(head) if kind == "merge" => format!("{head} by hand"),
        _ => summary.to_string(),
    }
}

pub fn money(cents: i64, currency: &str) -> String {
    let neg = cents < 0;
    let c = cents.unsigned_abs();
    let grouped = group_digits((c / 100) as i64);
    let s = format!("{grouped}.{:02}", c % 100);
    let sign = if neg { "-" } else { "" };
    match currency {
        "USD" | "" => format!("{sign}${s}"),
        other => format!("{sign}{s} {other}"),
    }
}

pub struct Badge {
    pub platform: &'static str,
    pub label: &'static str,
    pub value: String,
    pub title: String,
}

fn badge(kind: &str, value: &str, extra: &str) -> Badge {
    let k = IdentifierKind::parse(kind).unwrap_or(IdentifierKind::Custom(kind.to_string()));
    let label = match &k {
        IdentifierKind::Email => "Email",
        IdentifierKind::Phone => "Phone",
        IdentifierKind::ShopifyCustomerId => "Shopify",
        IdentifierKind::InstagramId => "Instagram",
        IdentifierKind::FacebookPsid => "Facebook",
        IdentifierKind::SegmentUserId => "User id",
        IdentifierKind::AnonymousId => "Device",
        IdentifierKind::Custom(_) => "Custom",
    };
    let short = if value.chars().count() > 28 {
        format!("{}…", value.chars().take(27).collect::<String>())
    } else {
        value.to_string()
    };
    Badge {
        platform: k.platform(),
        label,
        value: short,
        title: format!("{kind}: {value}{extra}"),
    }
}

pub struct Row {
    id: String,
    name: String,
    initials: String,
    email: String,
    phone: String,
    lead_state: String,
    ltv: String,
    orders: i64,
    last_active: String,
    badges: Vec<Badge>,
}

#[derive(Template)]
#[template(path = "customers.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
    total: String,
    q: String,
    sort: &'static str,
    sorts: Vec<(&'static str, &'static str)>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    after: Option<String>,
    done: Option<String>,
}

fn initials(name: &str) -> String {
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

pub async fn list(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<ListQuery>,
) -> PageResult<Response> {
    let sort = parse_sort(&q.sort).unwrap_or(ProfileSort::LastActive);
    let after = q
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(parse_customer_cursor)
        .transpose()?;
    let limit = 50;
    let profiles = st
        .store
        .list_profiles(
            s.org.id,
            &ProfileQuery {
                q: q.q.clone(),
                sort: Some(sort),
                after,
                limit,
            },
        )
        .await?;
    let now = st.now();
    let mut rows = Vec::with_capacity(profiles.len());
    for p in &profiles {
        // A page is 50 rows; one indexed lookup each keeps the badges honest.
        let links = st.store.profile_identities(s.org.id, p.id).await?;
        let mut by_platform: BTreeMap<&'static str, Badge> = BTreeMap::new();
        for l in &links {
            let b = badge(&l.kind, &l.value, "");
            by_platform.entry(b.platform).or_insert(b);
        }
        rows.push(Row {
            id: p.id.to_string(),
            initials: initials(&p.display_name),
            name: if p.display_name.is_empty() {
                "Unnamed".into()
            } else {
                p.display_name.clone()
            },
            email: p.primary_email.clone(),
            phone: p.primary_phone.clone(),
            lead_state: p.lead_state.clone(),
            ltv: money(p.ltv_cents, &p.currency),
            orders: p.order_count,
            last_active: relative(p.last_active_at, now),
            badges: by_platform.into_values().collect(),
        });
    }
    let next = (profiles.len() as u32 == limit)
        .then(|| profiles.last().map(|p| customer_cursor(p, sort)))
        .flatten()
        .map(|cur| {
            serde_urlencoded::to_string([
                ("q", q.q.as_str()),
                ("sort", sort.as_str()),
                ("after", cur.as_str()),
            ])
            .unwrap_or_default()
        });
    let mut c = Chrome::new(&s, "Customers", "customers");
    c.notice = super::notice(q.done.as_deref());
    let page = ListPage {
        c,
        rows,
        total: {
            let (n, more) = st.store.count_profiles_capped(s.org.id, 100_000).await?;
            let many = if more { 2 } else { n };
            format!(
                "{}{} {}",
                group_digits(n),
                if more { "+" } else { "" },
                super::noun(many, "customer", "customers")
            )
        },
        q: q.q,
        sort: sort.as_str(),
        sorts: vec![
            ("last_active", "Last active"),
            ("ltv", "Lifetime value"),
            ("created", "Newest"),
            ("name", "Name"),
        ],
        next,
    };
    Ok(super::render(&page))
}

pub struct Entry {
    kind: String,
    label: &'static str,
    summary: String,
    when: String,
    at: String,
    source: String,
    from_other: bool,
}

pub struct MergeView {
    id: String,
    other_name: String,
    other_id: String,
    via: String,
    reason: String,
    actor: String,
    when: String,
    undone: Option<String>,
    live: bool,
}

pub struct DupView {
    id: String,
    name: String,
    email: String,
    company: String,
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    c: Chrome,
    p: Profile,
    /// Their conversation in the inbox, when they have written or been answered.
    conversation: Option<String>,
    name: String,
    initials: String,
    ltv: String,
    last_active: String,
    created: String,
    resolved_from: Option<String>,
    badges: Vec<Badge>,
    entries: Vec<Entry>,
    kinds: Vec<(&'static str, &'static str, bool)>,
    from: String,
    to: String,
    older: Option<String>,
    filter_qs: String,
    live_merges: Vec<MergeView>,
    past_merges: Vec<MergeView>,
    duplicates: Vec<DupView>,
    members: usize,
    lead: Option<super::intake::LeadRow>,
    fired: Vec<bos_core::intent::Fired>,
    history: Vec<HistoryView>,
    leads_css: &'static str,
    nudge_enrollments: Vec<super::campaigns::EnrollmentView>,
    nudge_execs: Vec<super::campaigns::ExecView>,
    /// Custom traits, name → shown value, in name order.
    traits: Vec<(String, String)>,
    /// Their latest interactions with AI agents, and the average sentiment.
    agent_history: Vec<AgentLine>,
    agent_senti: Option<super::command_center::Senti>,
    agents_css: &'static str,
}

/// One interaction with an agent on the profile's agent history panel.
pub struct AgentLine {
    agent: String,
    agent_id: String,
    outcome: &'static str,
    outcome_key: &'static str,
    senti: Option<super::command_center::Senti>,
    intervened: bool,
    summary: String,
    conversation: Option<String>,
    when: String,
    at: String,
}

/// Interactions on the profile's agent history panel.
const AGENT_HISTORY: u32 = 10;

/// One lead state move on the profile's Lead panel.
pub struct HistoryView {
    from: &'static str,
    from_key: String,
    to: &'static str,
    to_key: String,
    reason: String,
    actor: String,
    when: String,
    at: String,
}

#[derive(Deserialize, Default)]
pub struct CustomerQueryParams {
    #[serde(default)]
    kind: Vec<String>,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<String>,
    done: Option<String>,
}

pub async fn show(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> PageResult<Response> {
    // Repeated `kind=` parameters: parse them by hand (serde_urlencoded has no sequences).
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let q = CustomerQueryParams {
        kind: pairs
            .iter()
            .filter(|(k, _)| k == "kind")
            .map(|(_, v)| v.clone())
            .collect(),
        from: get("from"),
        to: get("to"),
        before: Some(get("before")).filter(|b| !b.is_empty()),
        done: Some(get("done")).filter(|b| !b.is_empty()),
    };
    let org = s.org.id;
    let p = st.store.profile(org, id).await?;
    let now = st.now();
    let tq = timeline_query(
        &q.kind.join(","),
        Some(&q.from),
        Some(&q.to),
        q.before.as_deref(),
        60,
    )?;
    let timeline = st.store.timeline(org, p.id, &tq).await?;
    let mut links = st.store.profile_identities(org, p.id).await?;
    // Badges in the order of the organization's identity priorities.
    let rules = st.store.identity_rules(org).await?;
    links.sort_by_key(|l| {
        let k = IdentifierKind::parse(&l.kind).unwrap_or(IdentifierKind::Custom(l.kind.clone()));
        (
            std::cmp::Reverse(rules.rule(&k).priority),
            l.kind.clone(),
            l.first_seen_at,
        )
    });
    let members = st.store.cluster_members(org, p.id).await?;
    let names: BTreeMap<uuid::Uuid, String> = members
        .iter()
        .map(|m| (m.id, m.display_name.clone()))
        .collect();
    let merges = st.store.profile_merges(org, p.id).await?;
    let mut live_merges = Vec::new();
    let mut past_merges = Vec::new();
    for m in &merges {
        let other = if m.absorbed_id == p.id {
            m.survivor_id
        } else {
            m.absorbed_id
        };
        let other_name = match names.get(&m.absorbed_id) {
            Some(n) if m.undone_at.is_none() => n.clone(),
            _ => st
                .store
                .profile_row(org, other)
                .await
                .map(|r| r.display_name)
                .unwrap_or_else(|_| "an erased customer".into()),
        };
        let v = MergeView {
            id: m.id.to_string(),
            other_name: if other_name.is_empty() {
                "Unnamed".into()
            } else {
                other_name
            },
            other_id: other.to_string(),
            via: if m.reason == "manual" {
                "merged by hand".into()
            } else {
                format!("same {} {}", m.via_kind.replace('_', " "), m.via_value)
            },
            reason: m.reason.clone(),
            actor: m.actor.clone(),
            when: fmt_time(m.created_at),
            undone: m.undone_at.map(fmt_time),
            live: m.undone_at.is_none(),
        };
        if v.live {
            live_merges.push(v)
        } else {
            past_merges.push(v)
        }
    }
    let duplicates = st
        .store
        .possible_duplicates(org, p.id)
        .await?
        .into_iter()
        .map(|d| DupView {
            id: d.id.to_string(),
            name: d.display_name,
            email: d.primary_email,
            company: d.company,
        })
        .collect();
    let entries = timeline
        .iter()
        .map(|e| Entry {
            kind: e.kind.clone(),
            label: kind_label(&e.kind),
            summary: legacy_summary(&e.kind, &e.summary),
            when: relative(e.occurred_at, now),
            at: fmt_time(e.occurred_at),
            source: e.source.clone(),
            from_other: e.profile_id != p.id,
        })
        .collect();
    let older = (timeline.len() == 60)
        .then(|| timeline.last().map(timeline_cursor))
        .flatten();
    let mut filter_pairs: Vec<(&str, &str)> = q.kind.iter().map(|k| ("kind", k.as_str())).collect();
    if !q.from.is_empty() {
        filter_pairs.push(("from", &q.from));
    }
    if !q.to.is_empty() {
        filter_pairs.push(("to", &q.to));
    }
    let filter_qs = serde_urlencoded::to_string(&filter_pairs).unwrap_or_default();
    let lead = st.store.lead(org, p.id).await?;
    let fired = lead
        .as_ref()
        .map(|l| bos_engine::leads::fired_rules(&l.fired))
        .unwrap_or_default();
    let history = if lead.is_some() {
        st.store
            .lead_history(org, p.id)
            .await?
            .into_iter()
            .rev()
            .map(|h| HistoryView {
                from: h.from_state.label(),
                to: h.to_state.label(),
                from_key: h.from_state.as_str().to_string(),
                to_key: h.to_state.as_str().to_string(),
                reason: h.reason,
                actor: h.actor,
                when: relative(h.at, now),
                at: fmt_time(h.at),
            })
            .collect()
    } else {
        Vec::new()
    };
    let (nudge_enrollments, nudge_execs) = super::campaigns::customer_panel(&st, org, p.id).await?;
    let conversation = st
        .store
        .conversation_of_profile(org, p.id)
        .await?
        .map(|c| c.to_string());
    let agent_rows = st.agents.customer_history(org, p.id, AGENT_HISTORY).await?;
    let sentiments: Vec<f64> = agent_rows
        .iter()
        .filter_map(|r| r.interaction.new.sentiment)
        .collect();
    let agent_senti = (!sentiments.is_empty()).then(|| {
        super::command_center::Senti::of(sentiments.iter().sum::<f64>() / sentiments.len() as f64)
    });
    let agent_history = agent_rows
        .iter()
        .map(|r| {
            let n = &r.interaction.new;
            let (outcome, outcome_key) = super::command_center::outcome_label(n.outcome);
            AgentLine {
                agent: r.agent_name.clone(),
                agent_id: n.agent_id.to_string(),
                outcome,
                outcome_key,
                senti: n.sentiment.map(super::command_center::Senti::of),
                intervened: n.human_intervened,
                summary: n.summary.clone().unwrap_or_default(),
                conversation: n.conversation_id.map(|c| c.to_string()),
                when: relative(n.started_at, now),
                at: fmt_time(n.started_at),
            }
        })
        .collect();
    let mut c = Chrome::new(&s, "Customer", "customers");
    c.notice = super::intake::notice(q.done.as_deref());
    let name = if p.display_name.is_empty() {
        "Unnamed customer".to_string()
    } else {
        p.display_name.clone()
    };
    let page = CustomerPage {
        c,
        conversation,
        initials: initials(&name),
        ltv: money(p.ltv_cents, &p.currency),
        last_active: relative(p.last_active_at, now),
        created: fmt_time(p.created_at),
        resolved_from: (p.id != id).then(|| id.to_string()),
        badges: links
            .iter()
            .map(|l| {
                badge(
                    &l.kind,
                    &l.value,
                    &format!(
                        " · via {} · first seen {}",
                        l.source,
                        fmt_time(l.first_seen_at)
                    ),
                )
            })
            .collect(),
        entries,
        kinds: TIMELINE_KINDS
            .iter()
            .map(|k| (*k, kind_label(k), q.kind.iter().any(|x| x == k)))
            .collect(),
        from: q.from,
        to: q.to,
        older,
        filter_qs,
        live_merges,
        past_merges,
        duplicates,
        members: members.len(),
        lead: lead.as_ref().map(|l| super::intake::LeadRow::new(l, now)),
        fired,
        history,
        leads_css: crate::assets::url("leads.css"),
        nudge_enrollments,
        nudge_execs,
        traits: trait_rows(&p.traits),
        agent_history,
        agent_senti,
        agents_css: crate::assets::url("agents.css"),
        name,
        p,
    };
    Ok(super::render(&page))
}

/// The stored traits object as rows to show; strings bare, the rest as JSON.
fn trait_rows(stored: &str) -> Vec<(String, String)> {
    let m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(stored).unwrap_or_default();
    let mut rows: Vec<(String, String)> = m
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    rows.sort();
    rows
}

#[derive(Deserialize)]
pub struct MergeForm {
    #[serde(default)]
    other_id: String,
}

pub async fn merge(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<MergeForm>,
) -> PageResult<Response> {
    let a = st.store.profile(s.org.id, id).await?;
    let other = uuid::Uuid::parse_str(f.other_id.trim()).map_err(|_| AppError::NotFound)?;
    match identity::merge(&st.store, s.org.id, a.id, other, &s.user.email, st.now()).await {
        Ok(_) => {}
        // The page says "customer" where the API says "profile".
        Err(IdentityError::SameProfile) => {
            return Err(AppError::Conflict("These are already one customer.".into()).into())
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to(&format!("/customers/{}?done=merged", a.id)).into_response())
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn unmerge(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    let m = st.store.merge_record(s.org.id, id).await?;
    identity::unmerge(&st.store, s.org.id, id, &s.user.email, st.now()).await?;
    Ok(Redirect::to(&format!("/customers/{}?done=unmerged", m.survivor_id)).into_response())
}

pub async fn export(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
) -> PageResult<Response> {
    // Look up first: another organization's id is "not found" whatever the role.
    st.store.profile(s.org.id, id).await?;
    s.require_admin()?;
    let e = st.store.export_profile(s.org.id, id).await?;
    let body = serde_json::to_string_pretty(&e).map_err(|e| AppError::Internal(e.to_string()))?;
    let disposition = format!("attachment; filename=\"customer-{}.json\"", e.profile.id);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

pub async fn erase(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(_): CsrfForm<Empty>,
) -> PageResult<Response> {
    st.store.profile(s.org.id, id).await?;
    s.require_admin()?;
    let n = st.store.erase_profile(s.org.id, id).await?;
    tracing::info!(org = %s.org.id, user = %s.user.id, rows = n, "customer erased");
    Ok(Redirect::to("/customers?done=erased").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_digits() {
        assert_eq!(money(123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(money(5, "USD"), "$0.05");
        assert_eq!(money(-1999, "EUR"), "-19.99 EUR");
        assert_eq!(group_digits(100_000), "100,000");
        assert_eq!(group_digits(999), "999");
        assert_eq!(initials("maria  lopez"), "ML");
        assert_eq!(initials(""), "?");
    }
}
