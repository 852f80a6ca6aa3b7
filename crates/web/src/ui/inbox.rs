//! The Unified Inbox tab: the channel sidebar with unread counts, the
//! filters, sorts and search, the thread list, the open conversation with
//! its author badges and sanitized e-mail, the composer, and assign,
//! resolve and reopen. Every page is complete without script (links and
//! forms); `assets/inbox.js` follows `/inbox/stream` so a new message
//! appears in the list and the open thread without a reload, and adds the
//! keyboard (`j`/`k` move, `Enter` open, `r` reply, `e` resolve, `/`
//! search). Handlers only parse, call the inbox service and render.

use super::customers::money;
use super::intake::initials;
use super::{fmt_time, relative, Chrome, PathId};
use crate::auth::session::{CsrfForm, Session};
use crate::error::{AppError, PageResult};
use crate::live::{self, Heard, Step};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Redirect, Response};
use bos_core::inbox::{AuthorKind, Channel, Direction, Priority, Status, REMOTE_SRC_ATTR};
use bos_engine::inbox::{Inbox, KeyedReply, Reply, ReplyBy, ReplyChannel};
use bos_engine::Live;
use bos_store::inbox::{
    AuthorFilter, ConversationDetail, ConversationSummary, ListQuery, Message, SearchHit, SearchIn,
    Sort, StatusFilter,
};

/// One channel in the composer's selector: where the reply would go, or
/// why it cannot go there now.
pub struct ComposerChannel {
    pub key: &'static str,
    pub label: &'static str,
    /// The customer's address there, masked.
    pub to: String,
    pub available: bool,
    pub why_not: String,
    pub selected: bool,
}

/// The composer's channels: the service's answer, the one the customer
/// last wrote on chosen when it is open, else the first open one.
fn composer_channels(channels: &[ReplyChannel], preferred: &str) -> Vec<ComposerChannel> {
    let chosen = channels
        .iter()
        .find(|c| c.available && c.channel.as_str() == preferred)
        .or_else(|| channels.iter().find(|c| c.available))
        .map(|c| c.channel);
    channels
        .iter()
        .map(|c| ComposerChannel {
            key: c.channel.as_str(),
            label: c.channel.label(),
            to: c.to.clone(),
            available: c.available,
            why_not: c.why_not.clone().unwrap_or_default(),
            selected: Some(c.channel) == chosen,
        })
        .collect()
}
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

/// Conversations per page of the thread list.
const PAGE: u32 = 50;
/// Search results shown at once.
const HITS: u32 = 50;
/// Unread conversations counted for the sidebar; more shows as "N+".
const UNREAD_COUNTED: u32 = 200;

/// The page's own content security policy when the member asked to see an
/// e-mail's remote images: the usual one with images from any https host.
/// Everything else stays as strict as on every other page.
const CSP_WITH_IMAGES: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: https:; connect-src 'self'; font-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

fn inbox(st: &AppState) -> &Inbox {
    &st.inbox
}

/// The list's filters as the URL carries them. Unknown values are dropped
/// (a hand-edited URL shows the unfiltered list rather than an error), so
/// only known words ever reach the page and its links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub channel: String,
    /// `""` (open, the default), `all`, or a store status filter.
    pub status: String,
    pub author: String,
    pub priority: String,
    pub sort: String,
    pub q: String,
    pub cursor: String,
}

#[derive(Deserialize, Default)]
pub struct InboxQuery {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    cursor: String,
    /// Load the open e-mail's remote images.
    #[serde(default)]
    images: String,
    /// The live stream: the conversation open on the page.
    #[serde(default)]
    open: String,
    done: Option<String>,
}

/// The most characters of a search kept in the URL and the box.
const MAX_Q_CHARS: usize = 200;

impl Filters {
    fn from_query(q: &InboxQuery) -> Filters {
        let keep = |v: &str, ok: bool| if ok { v.to_string() } else { String::new() };
        Filters {
            channel: keep(&q.channel, Channel::parse(&q.channel).is_some()),
            status: keep(
                &q.status,
                q.status == "all" || StatusFilter::parse(&q.status).is_some(),
            ),
            author: keep(&q.author, AuthorFilter::parse(&q.author).is_some()),
            priority: keep(&q.priority, Priority::parse(&q.priority).is_some()),
            sort: keep(
                &q.sort,
                Sort::parse(&q.sort).is_some_and(|s| s != Sort::Recent),
            ),
            q: q.q.trim().chars().take(MAX_Q_CHARS).collect(),
            cursor: q
                .cursor
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(200)
                .collect(),
        }
    }

    /// From a `back` form field: the filters of the page the form was on.
    fn from_back(raw: &str) -> Filters {
        let q: InboxQuery =
            serde_urlencoded::from_str(raw.trim_start_matches('?')).unwrap_or_default();
        Filters::from_query(&q)
    }

    fn status_filter(&self) -> Option<StatusFilter> {
        match self.status.as_str() {
            "" => Some(StatusFilter::Open),
            "all" => None,
            s => StatusFilter::parse(s),
        }
    }

    /// What the store lists for `member`.
    fn list_query(&self, member: Uuid) -> ListQuery {
        ListQuery {
            member: Some(member),
            channel: Channel::parse(&self.channel),
            status: self.status_filter(),
            author: AuthorFilter::parse(&self.author),
            priority: Priority::parse(&self.priority),
            sort: Sort::parse(&self.sort).unwrap_or_default(),
            cursor: Some(self.cursor.clone()).filter(|c| !c.is_empty()),
            limit: PAGE,
        }
    }

    /// The query string of these filters (no cursor), `""` when none.
    pub fn query(&self) -> String {
        self.pairs(None)
    }

    fn pairs(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (k, v) in [
            ("channel", &self.channel),
            ("status", &self.status),
            ("author", &self.author),
            ("priority", &self.priority),
            ("sort", &self.sort),
            ("q", &self.q),
        ] {
            if !v.is_empty() {
                pairs.push((k, v.as_str()));
            }
        }
        if let Some(c) = cursor {
            pairs.push(("cursor", c));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }

    /// `/inbox` or `/inbox/{id}` with these filters.
    pub fn href(&self, open: Option<Uuid>) -> String {
        with_query(&path_of(open), &self.query())
    }

    /// The same list with one filter changed (the sidebar and the tabs).
    pub fn with(&self, key: &str, value: &str) -> String {
        let mut f = self.clone();
        f.cursor.clear();
        match key {
            "channel" => f.channel = value.into(),
            "status" => f.status = value.into(),
            _ => {}
        }
        f.href(None)
    }

    /// Whether a conversation belongs in this list, for the live stream
    /// (the store decides for the page itself; this follows its filters).
    fn admits(&self, c: &ConversationSummary, member: Uuid) -> bool {
        let channel = Channel::parse(&self.channel).is_none_or(|ch| c.channels.contains(&ch));
        let status = match self.status_filter() {
            None => true,
            Some(StatusFilter::Open) => c.status == Status::Open,
            Some(StatusFilter::Resolved) => c.status == Status::Resolved,
            Some(StatusFilter::Unassigned) => c.status == Status::Open && c.assignee_id.is_none(),
            Some(StatusFilter::AssignedToMe) => c.assignee_id == Some(member),
            Some(StatusFilter::Unread) => c.unread,
        };
        let author = match AuthorFilter::parse(&self.author) {
            None => true,
            Some(AuthorFilter::Ai) => c.ai_involved,
            Some(AuthorFilter::Human) => !c.ai_involved,
        };
        let priority = Priority::parse(&self.priority).is_none_or(|p| c.priority == p);
        let waiting =
            Sort::parse(&self.sort) != Some(Sort::OldestUnread) || c.waiting_since.is_some();
        channel && status && author && priority && waiting
    }
}

fn path_of(open: Option<Uuid>) -> String {
    match open {
        Some(id) => format!("/inbox/{id}"),
        None => "/inbox".into(),
    }
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

pub fn priority_label(p: Priority) -> &'static str {
    match p {
        Priority::Urgent => "Urgent",
        Priority::High => "High",
        Priority::Normal => "Normal",
        Priority::Low => "Low",
    }
}

/// The badge an author gets in the thread: who wrote it, when not the
/// customer. (class, label)
pub fn author_badge(a: AuthorKind) -> Option<(&'static str, &'static str)> {
    match a {
        AuthorKind::Customer => None,
        AuthorKind::Member => Some(("human", "Human")),
        AuthorKind::Agent => Some(("ai", "AI")),
        AuthorKind::Automation => Some(("auto", "Automated")),
    }
}

/// The customer's name as the inbox shows it: their name, else how to
/// reach them.
fn display_name(c: &ConversationSummary) -> String {
    [&c.customer_name, &c.customer_email, &c.customer_phone]
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "Unnamed customer".into())
}

/// One row of the thread list, ready to show.
pub struct ThreadRow {
    pub id: String,
    pub href: String,
    pub name: String,
    pub initials: String,
    pub preview: String,
    pub preview_author: &'static str,
    pub when: String,
    pub at: String,
    pub unread: bool,
    pub channel: &'static str,
    pub channel_label: &'static str,
    pub priority: &'static str,
    pub priority_label: &'static str,
    pub priority_reason: String,
    pub resolved: bool,
    pub assignee: String,
    pub ai: bool,
    pub selected: bool,
}

impl ThreadRow {
    fn new(
        c: &ConversationSummary,
        f: &Filters,
        members: &[MemberOpt],
        open: Option<Uuid>,
        now: i64,
    ) -> ThreadRow {
        let name = display_name(c);
        ThreadRow {
            id: c.id.to_string(),
            href: f.href(Some(c.id)),
            initials: initials(&name),
            name,
            preview: c.last_preview.clone(),
            preview_author: match c.last_author {
                AuthorKind::Customer => "",
                AuthorKind::Member => "Team: ",
                AuthorKind::Agent => "AI: ",
                AuthorKind::Automation => "Auto: ",
            },
            when: relative(c.last_message_at, now),
            at: fmt_time(c.last_message_at),
            unread: c.unread,
            channel: c.last_channel.as_str(),
            channel_label: c.last_channel.label(),
            priority: c.priority.as_str(),
            priority_label: priority_label(c.priority),
            priority_reason: c.priority_reason.clone(),
            resolved: c.status == Status::Resolved,
            assignee: c
                .assignee_id
                .and_then(|a| members.iter().find(|m| m.id == a))
                .map(|m| m.short.clone())
                .unwrap_or_default(),
            ai: c.ai_involved,
            selected: open == Some(c.id),
        }
    }
}

/// A member in the assign menu.
#[derive(Debug, Clone)]
pub struct MemberOpt {
    pub id: Uuid,
    pub label: String,
    /// Their first name or e-mail, for the list's assignee chip.
    pub short: String,
}

async fn members_of(st: &AppState, org: Uuid) -> Result<Vec<MemberOpt>, AppError> {
    Ok(st
        .store
        .members(org)
        .await?
        .into_iter()
        .map(|m| {
            let name = m.display_name.trim();
            MemberOpt {
                id: m.user_id,
                label: if name.is_empty() {
                    m.email.clone()
                } else {
                    format!("{name} ({})", m.email)
                },
                short: name
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
                    .unwrap_or(m.email),
            }
        })
        .collect())
}

/// One thread row alone: the list includes it, and the stream sends it.
#[derive(Template)]
#[template(path = "inbox_row.html")]
pub struct RowTemplate<'a> {
    pub r: &'a ThreadRow,
}

/// One message as the conversation shows it.
pub struct MessageView {
    pub id: String,
    pub inbound: bool,
    pub badge: Option<(&'static str, &'static str)>,
    pub author: String,
    pub channel: &'static str,
    pub channel_label: &'static str,
    pub subject: String,
    pub text: String,
    /// Sanitized e-mail HTML (safe to insert as is, see
    /// `bos_core::inbox::sanitize`), with remote images loaded or not.
    pub html: Option<String>,
    pub parked_images: bool,
    pub when: String,
    pub at: String,
    pub status: &'static str,
    pub status_detail: String,
    pub attachments: Vec<String>,
}

impl MessageView {
    fn new(m: &Message, images: bool, now: i64) -> MessageView {
        let parked = format!(" {REMOTE_SRC_ATTR}=");
        let html = m.html.as_ref().map(|h| {
            if images {
                // The sanitizer only ever writes the attribute in this
                // form, inside an <img> it has rebuilt: moving it back
                // to `src` restores exactly the address it parked.
                h.replace(&parked, " src=")
            } else {
                h.clone()
            }
        });
        MessageView {
            id: m.id.to_string(),
            inbound: m.direction == Direction::Inbound,
            badge: author_badge(m.author_kind),
            author: if m.author_name.trim().is_empty() {
                "Unknown".into()
            } else {
                m.author_name.clone()
            },
            channel: m.channel.as_str(),
            channel_label: m.channel.label(),
            subject: m.subject.clone().unwrap_or_default(),
            text: m.text.clone(),
            parked_images: !images && m.html.as_ref().is_some_and(|h| h.contains(&parked)),
            html,
            when: relative(m.created_at, now),
            at: fmt_time(m.created_at),
            status: m.status.as_str(),
            status_detail: m.status_detail.clone().unwrap_or_default(),
            attachments: m
                .attachments
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| {
                            x.get("name")
                                .or_else(|| x.get("filename"))
                                .and_then(|n| n.as_str())
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The messages of the open conversation: the page includes them, and the
/// stream sends them again when one arrives.
#[derive(Template)]
#[template(path = "inbox_messages.html")]
pub struct MessagesTemplate<'a> {
    pub messages: &'a [MessageView],
    pub truncated: bool,
    pub images_href: &'a str,
}

/// The open conversation's header: who, status, priority, assignee.
pub struct OpenView {
    pub id: String,
    pub profile_id: String,
    pub name: String,
    pub initials: String,
    pub email: String,
    pub phone: String,
    pub ltv: String,
    pub resolved: bool,
    pub priority: &'static str,
    pub priority_label: &'static str,
    pub priority_reason: String,
    pub assignee: Option<Uuid>,
    pub channels: Vec<(&'static str, &'static str)>,
    pub messages: Vec<MessageView>,
    pub truncated: bool,
    pub images_href: String,
    pub reply_channel: &'static str,
    pub composer: Vec<ComposerChannel>,
    /// A fresh random idempotency key per rendered composer: a double
    /// submit of the same form sends once.
    pub reply_key: String,
}

impl OpenView {
    fn new(d: &ConversationDetail, f: &Filters, images: bool, now: i64) -> OpenView {
        let c = &d.conversation;
        let name = display_name(c);
        let mut images_q = f.query();
        images_q.push_str(if images_q.is_empty() {
            "images=1"
        } else {
            "&images=1"
        });
        // Reply where the customer last wrote, on a channel that can answer.
        let reply_channel = d
            .messages
            .iter()
            .rev()
            .find(|m| m.direction == Direction::Inbound && m.channel.can_reply())
            .map(|m| m.channel)
            .or_else(|| c.channels.iter().copied().find(|ch| ch.can_reply()))
            // A caller was found by their number: answer a call by text.
            .or_else(|| c.channels.contains(&Channel::Voice).then_some(Channel::Sms))
            .unwrap_or(Channel::Email)
            .as_str();
        OpenView {
            id: c.id.to_string(),
            profile_id: c.profile_id.to_string(),
            initials: initials(&name),
            name,
            email: c.customer_email.clone(),
            phone: c.customer_phone.clone(),
            ltv: money(c.customer_ltv_cents, "USD"),
            resolved: c.status == Status::Resolved,
            priority: c.priority.as_str(),
            priority_label: priority_label(c.priority),
            priority_reason: c.priority_reason.clone(),
            assignee: c.assignee_id,
            channels: c
                .channels
                .iter()
                .map(|ch| (ch.as_str(), ch.label()))
                .collect(),
            messages: d
                .messages
                .iter()
                .map(|m| MessageView::new(m, images, now))
                .collect(),
            truncated: d.truncated,
            images_href: with_query(&path_of(Some(c.id)), &images_q),
            reply_channel,
            composer: Vec::new(),
            reply_key: Uuid::new_v4().to_string(),
        }
    }

    fn has_closed(&self) -> bool {
        self.composer.iter().any(|c| !c.available)
    }

    fn can_send(&self) -> bool {
        self.composer.iter().any(|c| c.available)
    }

    fn messages_html(&self) -> String {
        MessagesTemplate {
            messages: &self.messages,
            truncated: self.truncated,
            images_href: &self.images_href,
        }
        .render()
        .unwrap_or_default()
    }
}

/// A search result, ready to show: the snippet's parts stay plain text
/// (the template escapes them and marks the matches).
pub struct HitView {
    pub href: String,
    pub name: String,
    pub initials: String,
    pub found_in: &'static str,
    pub channel: &'static str,
    pub channel_label: &'static str,
    pub parts: Vec<(String, bool)>,
    pub when: String,
    pub at: String,
}

impl HitView {
    fn new(h: &SearchHit, f: &Filters, now: i64) -> HitView {
        let name = if h.customer_name.trim().is_empty() {
            "Unnamed customer".to_string()
        } else {
            h.customer_name.clone()
        };
        HitView {
            href: f.href(Some(h.conversation_id)),
            initials: initials(&name),
            name,
            found_in: match h.found_in {
                SearchIn::Message => "message",
                SearchIn::Customer => "customer",
            },
            channel: h.channel.map(Channel::as_str).unwrap_or(""),
            channel_label: h.channel.map(Channel::label).unwrap_or(""),
            parts: h
                .snippet
                .iter()
                .map(|p| (p.text.clone(), p.matched))
                .collect(),
            when: relative(h.at, now),
            at: fmt_time(h.at),
        }
    }
}

/// A sidebar entry: a channel (or all) with its unread count.
pub struct ChannelNav {
    pub key: &'static str,
    pub label: &'static str,
    pub href: String,
    pub unread: String,
    pub on: bool,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    c: Chrome,
    f: Filters,
    back: String,
    sidebar: Vec<ChannelNav>,
    statuses: Vec<(&'static str, &'static str, String, bool)>,
    rows: Vec<ThreadRow>,
    hits: Option<Vec<HitView>>,
    older: Option<String>,
    open: Option<OpenView>,
    members: Vec<MemberOpt>,
    me: Uuid,
    priorities: Vec<(&'static str, &'static str)>,
    stream: String,
    js: &'static str,
    leads_css: &'static str,
    inbox_css: &'static str,
}

impl InboxPage {
    fn row(&self, r: &ThreadRow) -> String {
        RowTemplate { r }.render().unwrap_or_default()
    }

    fn member_selected(&self, m: &MemberOpt) -> bool {
        self.open.as_ref().is_some_and(|o| o.assignee == Some(m.id))
    }

    fn assigned_to_me(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.assignee == Some(self.me))
    }
}

/// Messages after an action, chosen by code (no URL text is shown).
fn notice(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "assigned" => "Assigned.",
        "unassigned" => "Unassigned: the conversation is nobody's.",
        "resolved" => "Resolved. The next message from the customer reopens it.",
        "reopened" => "Reopened.",
        "sent" => "Reply sent.",
        "sending" => "That reply is already on its way: it is sent once, whatever the number of clicks.",
        "send_failed" => {
            "The provider refused the reply: its reason is on the message. Nothing was sent."
        }
        "send_unknown" => {
            "The provider did not answer: the reply may have gone out. It is marked unknown and is never re-sent by itself."
        }
        _ => return super::notice(code),
    };
    Some(text.to_string())
}

/// `GET /inbox`: the thread list.
pub async fn page(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<InboxQuery>,
) -> PageResult<Response> {
    show(st, s, q, None).await
}

/// `GET /inbox/{conversation_id}`: the list with one conversation open;
/// opening it marks it read for this member.
pub async fn conversation(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    Query(q): Query<InboxQuery>,
) -> PageResult<Response> {
    show(st, s, q, Some(id)).await
}

async fn show(st: AppState, s: Session, q: InboxQuery, open: Option<Uuid>) -> PageResult<Response> {
    let org = s.org.id;
    let me = s.user.id;
    let svc = inbox(&st);
    let f = Filters::from_query(&q);
    let images = q.images == "1";
    let now = st.now();
    // Read it before the list is: the list then shows it read.
    let open_detail = match open {
        Some(id) => {
            svc.mark_read(org, id, me, now).await?;
            Some(svc.get(org, id, Some(me)).await?)
        }
        None => None,
    };
    let members = members_of(&st, org).await?;
    let page = match svc.list(org, Some(me), f.list_query(me)).await {
        Ok(p) => p,
        // A cursor from another sort or a tampered one: the first page.
        Err(bos_engine::inbox::InboxError::Invalid { .. }) if !f.cursor.is_empty() => {
            let mut first = f.clone();
            first.cursor.clear();
            svc.list(org, Some(me), first.list_query(me)).await?
        }
        Err(e) => return Err(AppError::from(e).into()),
    };
    // Search keeps the list's filters (channel, status, author, priority).
    let hits = if f.q.is_empty() {
        None
    } else {
        Some(
            svc.find(org, Some(me), f.list_query(me), &f.q)
                .await?
                .hits
                .iter()
                .take(HITS as usize)
                .map(|h| HitView::new(h, &f, now))
                .collect(),
        )
    };
    // Unread per channel, counted from the member's unread conversations.
    let unread = svc
        .list(
            org,
            Some(me),
            ListQuery {
                status: Some(StatusFilter::Unread),
                limit: UNREAD_COUNTED,
                ..ListQuery::default()
            },
        )
        .await?;
    let more = if unread.next_cursor.is_some() {
        "+"
    } else {
        ""
    };
    let count = |n: usize| {
        if n == 0 {
            String::new()
        } else {
            format!("{n}{more}")
        }
    };
    let mut sidebar = vec![ChannelNav {
        key: "",
        label: "All channels",
        href: f.with("channel", ""),
        unread: count(unread.items.len()),
        on: f.channel.is_empty(),
    }];
    for ch in Channel::ALL {
        sidebar.push(ChannelNav {
            key: ch.as_str(),
            label: ch.label(),
            href: f.with("channel", ch.as_str()),
            unread: count(
                unread
                    .items
                    .iter()
                    .filter(|c| c.channels.contains(ch))
                    .count(),
            ),
            on: f.channel == ch.as_str(),
        });
    }
    let statuses = [
        ("", "Open"),
        ("unread", "Unread"),
        ("mine", "Mine"),
        ("unassigned", "Unassigned"),
        ("resolved", "Resolved"),
        ("all", "All"),
    ]
    .into_iter()
    .map(|(k, l)| (k, l, f.with("status", k), f.status == k))
    .collect();
    let older = page
        .next_cursor
        .as_deref()
        .map(|c| with_query(&path_of(open), &f.pairs(Some(c))));
    let mut open_view = open_detail
        .as_ref()
        .map(|d| OpenView::new(d, &f, images, now));
    if let Some(o) = open_view.as_mut() {
        if let Some(id) = open {
            let channels = svc.reply_channels(org, id, now, true).await?;
            o.composer = composer_channels(&channels, o.reply_channel);
        }
    }
    let mut stream_q = f.query();
    if let Some(id) = open {
        stream_q.push_str(if stream_q.is_empty() {
            "open="
        } else {
            "&open="
        });
        stream_q.push_str(&id.to_string());
    }
    let mut c = Chrome::new(&s, "Inbox", "inbox");
    c.notice = notice(q.done.as_deref());
    let page = InboxPage {
        rows: page
            .items
            .iter()
            .map(|i| ThreadRow::new(i, &f, &members, open, now))
            .collect(),
        hits,
        older,
        open: open_view,
        back: f.query(),
        sidebar,
        statuses,
        priorities: Priority::ALL
            .iter()
            .map(|p| (p.as_str(), priority_label(*p)))
            .collect(),
        members,
        me,
        stream: with_query("/inbox/stream", &stream_q),
        js: crate::assets::url("inbox.js"),
        leads_css: crate::assets::url("leads.css"),
        inbox_css: crate::assets::url("inbox.css"),
        f,
        c,
    };
    let mut res = super::render(&page);
    if images && open.is_some() {
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP_WITH_IMAGES),
        );
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct ActionForm {
    /// The filters of the page the form was on, to go back to.
    #[serde(default)]
    back: String,
    /// Assign: `me`, a member's id, or empty for nobody.
    #[serde(default)]
    member: String,
}

fn back_to(id: Uuid, back: &str, done: &str) -> Response {
    let f = Filters::from_back(back);
    let mut q = f.query();
    q.push_str(if q.is_empty() { "done=" } else { "&done=" });
    q.push_str(done);
    Redirect::to(&with_query(&path_of(Some(id)), &q)).into_response()
}

/// `POST /inbox/{conversation_id}/assign`: to me, a member, or nobody.
pub async fn assign(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<ActionForm>,
) -> PageResult<Response> {
    let who = match f.member.trim() {
        "" => None,
        "me" => Some(s.user.id),
        other => Some(Uuid::parse_str(other).map_err(|_| {
            AppError::invalid(
                "member",
                "Choose a member of this organization from the list, or nobody.",
            )
        })?),
    };
    inbox(&st).assign(s.org.id, id, who, st.now()).await?;
    Ok(back_to(
        id,
        &f.back,
        if who.is_some() {
            "assigned"
        } else {
            "unassigned"
        },
    ))
}

#[derive(Deserialize)]
pub struct ReplyForm {
    #[serde(default)]
    back: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    subject: String,
    /// The composer's per-form key: a second submit of the same form
    /// (a double click, a resent POST) sends nothing again.
    #[serde(default)]
    idempotency_key: String,
}

/// `POST /inbox/{conversation_id}/reply`: the composer. The reply is sent
/// once (the service writes it before the provider is called), and once
/// per form: a repeat of the same form's key is sent back to the first
/// answer. The page says how it went.
pub async fn reply(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<ReplyForm>,
) -> PageResult<Response> {
    // Look up first: another organization's conversation is "not found"
    // whatever the form says.
    inbox(&st).summary(s.org.id, id, Some(s.user.id)).await?;
    let channel = Channel::parse(f.channel.trim()).ok_or_else(|| {
        AppError::invalid(
            "channel",
            "Choose the channel to reply on: sms, email, instagram or facebook.",
        )
    })?;
    let subject = Some(f.subject.trim().to_string()).filter(|s| !s.is_empty());
    let svc = inbox(&st);
    let reply = Reply {
        channel,
        text: f.text,
        subject,
    };
    let by = ReplyBy::Member(s.user.id);
    let key = f.idempotency_key.trim();
    if !key.is_empty() {
        match svc
            .claim_reply_key(s.org.id, &by, key, id, &reply, st.now())
            .await?
        {
            KeyedReply::Send => {}
            // The first submit's outcome, already shown or on its way.
            KeyedReply::Replay { body, .. } => {
                let done = match body.as_str() {
                    "send_failed" => "send_failed",
                    "send_unknown" => "send_unknown",
                    _ => "sent",
                };
                return Ok(back_to(id, &f.back, done));
            }
            KeyedReply::InFlight { .. } => return Ok(back_to(id, &f.back, "sending")),
        }
    }
    let sent = match svc
        .reply_as(s.org.id, by.clone(), id, reply, st.now())
        .await
    {
        Ok(m) => m,
        Err(e) => {
            // Refused before anything was written: the member fixes the
            // form and sends it again under the same key. (A storage
            // failure may come after the write: that key stays taken.)
            let refused = !matches!(e, bos_engine::inbox::InboxError::Store(_));
            if refused && !key.is_empty() {
                svc.release_reply_key(s.org.id, &by, key).await?;
            }
            return Err(e.into());
        }
    };
    let done = match sent.status {
        bos_core::inbox::DeliveryStatus::Failed => "send_failed",
        bos_core::inbox::DeliveryStatus::Unknown => "send_unknown",
        _ => "sent",
    };
    if !key.is_empty() {
        svc.answer_reply_key(s.org.id, &by, key, 303, done).await?;
    }
    Ok(back_to(id, &f.back, done))
}

/// `POST /inbox/{conversation_id}/resolve`.
pub async fn resolve(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<ActionForm>,
) -> PageResult<Response> {
    inbox(&st).resolve(s.org.id, id, st.now()).await?;
    Ok(back_to(id, &f.back, "resolved"))
}

/// `POST /inbox/{conversation_id}/reopen`.
pub async fn reopen(
    State(st): State<AppState>,
    s: Session,
    PathId(id): PathId,
    CsrfForm(f): CsrfForm<ActionForm>,
) -> PageResult<Response> {
    inbox(&st).reopen(s.org.id, id, st.now()).await?;
    Ok(back_to(id, &f.back, "reopened"))
}

/// `GET /inbox/stream`: `ready` at once, then one `conversation` event per
/// change to one of this organization's conversations, with its list row
/// (empty when the page's filters leave it out) and, for the conversation
/// open on the page, its messages; `resync` when changes were missed.
pub async fn stream(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<InboxQuery>,
) -> PageResult<Response> {
    // Subscribe before answering: nothing after `ready` is missed.
    let opened = live::open(&st, &s);
    let members = members_of(&st, s.org.id).await?;
    let ready = Event::default()
        .event("ready")
        .retry(Duration::from_secs(3))
        .data("{}");
    let view = InboxFeed {
        org: s.org.id,
        me: s.user.id,
        filters: Filters::from_query(&q),
        open: Uuid::parse_str(q.open.trim()).ok(),
        members,
    };
    Ok(opened.sse(st, Step::Send(ready), view))
}

/// The inbox's live view.
struct InboxFeed {
    org: Uuid,
    me: Uuid,
    filters: Filters,
    open: Option<Uuid>,
    members: Vec<MemberOpt>,
}

impl InboxFeed {
    async fn message(&self, st: &AppState, id: Uuid) -> Result<String, AppError> {
        let svc = inbox(st);
        let now = st.now();
        let is_open = self.open == Some(id);
        // The member is looking at it: what arrives is read.
        if is_open {
            svc.mark_read(self.org, id, self.me, now).await?;
        }
        // The open conversation with its messages; any other, its row only.
        let (summary, thread) = if is_open {
            let d = svc.get(self.org, id, Some(self.me)).await?;
            let v = OpenView::new(&d, &self.filters, false, now);
            (d.conversation, Some(v.messages_html()))
        } else {
            (svc.summary(self.org, id, Some(self.me)).await?, None)
        };
        let row = if self.filters.admits(&summary, self.me) {
            let r = ThreadRow::new(&summary, &self.filters, &self.members, self.open, now);
            RowTemplate { r: &r }
                .render()
                .map_err(|e| AppError::Internal(format!("template: {e}")))?
        } else {
            String::new()
        };
        Ok(serde_json::json!({
            "id": id,
            "row": row,
            "thread": thread,
            "resolved": summary.status == Status::Resolved,
        })
        .to_string())
    }
}

impl live::View for InboxFeed {
    fn wants(&self, l: &Live) -> bool {
        matches!(l, Live::Conversation { .. })
    }

    async fn on(&mut self, st: &AppState, heard: Heard) -> Step {
        match heard {
            Heard::Event(Live::Conversation { conversation_id }) => {
                match self.message(st, conversation_id).await {
                    Ok(data) => Step::Send(Event::default().event("conversation").data(data)),
                    Err(AppError::NotFound) => Step::Skip,
                    Err(e) => {
                        tracing::warn!(org = %self.org, error = ?e, "inbox stream: conversation not rendered");
                        Step::Skip
                    }
                }
            }
            Heard::Missed => Step::Send(Event::default().event("resync").data("{}")),
            Heard::Event(_) | Heard::Quiet => Step::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &str) -> InboxQuery {
        serde_urlencoded::from_str(pairs).unwrap()
    }

    #[test]
    fn only_known_filters_survive_into_links() {
        let f = Filters::from_query(&q(
            "channel=sms&status=bogus&author=ai&priority=urgent&sort=recent&q=%20hi%20",
        ));
        assert_eq!(f.channel, "sms");
        assert_eq!(f.status, "");
        assert_eq!(f.sort, "", "the default sort is left out of links");
        assert_eq!(f.q, "hi");
        assert_eq!(f.query(), "channel=sms&author=ai&priority=urgent&q=hi");
        let id = Uuid::nil();
        assert_eq!(
            f.href(Some(id)),
            format!("/inbox/{id}?channel=sms&author=ai&priority=urgent&q=hi")
        );
        assert_eq!(
            f.with("channel", ""),
            "/inbox?author=ai&priority=urgent&q=hi"
        );
        // A back field is re-read, never reflected.
        let back = Filters::from_back("status=resolved&x=%3Cscript%3E&q=a%26b");
        assert_eq!(back.query(), "status=resolved&q=a%26b");
        assert_eq!(Filters::from_back("https://evil.example/").query(), "");
    }

    #[test]
    fn the_live_list_follows_the_page_filters() {
        let c = ConversationSummary {
            id: Uuid::nil(),
            profile_id: Uuid::nil(),
            customer_name: "Ann".into(),
            customer_email: String::new(),
            customer_phone: String::new(),
            customer_ltv_cents: 0,
            status: Status::Open,
            assignee_id: None,
            priority: Priority::High,
            priority_reason: String::new(),
            last_message_at: 1,
            last_inbound_at: Some(1),
            waiting_since: Some(1),
            last_preview: String::new(),
            last_channel: Channel::Sms,
            last_author: AuthorKind::Customer,
            channels: vec![Channel::Sms],
            ai_involved: false,
            message_count: 1,
            unread: true,
            created_at: 1,
        };
        let me = Uuid::now_v7();
        let admits = |s: &str| Filters::from_query(&q(s)).admits(&c, me);
        assert!(admits(""));
        assert!(admits(
            "channel=sms&status=unread&priority=high&author=human"
        ));
        assert!(!admits("channel=email"));
        assert!(!admits("status=resolved"));
        assert!(!admits("status=mine"));
        assert!(admits("status=unassigned"));
        assert!(!admits("author=ai"));
        assert!(!admits("priority=low"));
        let resolved = ConversationSummary {
            status: Status::Resolved,
            ..c.clone()
        };
        assert!(!Filters::default().admits(&resolved, me));
        assert!(Filters::from_query(&q("status=all")).admits(&resolved, me));
    }

    #[test]
    fn badges_name_who_wrote() {
        assert_eq!(author_badge(AuthorKind::Customer), None);
        assert_eq!(author_badge(AuthorKind::Agent).unwrap().1, "AI");
        assert_eq!(author_badge(AuthorKind::Member).unwrap().1, "Human");
        assert_eq!(author_badge(AuthorKind::Automation).unwrap().1, "Automated");
    }
}
