//! Live pages over server-sent events. Every live view (the intake
//! dashboard, an import's progress, and later ones) streams through
//! [`open`] and [`Opened::sse`]: it follows the bus for the signed-in
//! member's own organization only, so no view can be handed another
//! tenant's events; before anything is sent it checks that the session is
//! still signed in to that organization and the member still belongs to
//! it (and ends the stream if not); and it sends keep-alive comments so
//! proxies do not close a quiet stream.
//!
//! A view only says what to send: its first event, and what to do with
//! each event of its organization, with word that events were missed
//! (fell behind, or the link to other servers dropped), or with a quiet
//! spell when it asked for one.

use crate::auth::session::Session;
use crate::AppState;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bos_engine::{Live, Received, Subscription};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// Keep-alive comments keep proxies from closing a quiet stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a view hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Something changed in the organization.
    Event(Live),
    /// Events may have been lost: re-read what the page shows.
    Missed,
    /// Nothing relevant arrived within the view's [`View::patience`].
    Quiet,
}

/// What a view answers.
pub enum Step {
    /// Send this event and keep following.
    Send(Event),
    /// Send this event, then end the stream.
    Last(Event),
    /// Send nothing; keep following.
    Skip,
    /// End the stream.
    End,
}

/// One live page's stream.
pub trait View: Send + 'static {
    /// How long to wait for a relevant event before the view is asked
    /// anyway ([`Heard::Quiet`]); `None`: wait for events only.
    fn patience(&self) -> Option<Duration> {
        None
    }

    /// Whether this event concerns the view at all (checked before the
    /// session is, so events for other pages cost nothing).
    fn wants(&self, _live: &Live) -> bool {
        true
    }

    /// What to send for what was heard.
    fn on(&mut self, st: &AppState, heard: Heard) -> impl Future<Output = Step> + Send;
}

/// A stream subscribed to the member's organization, not yet answered.
pub struct Opened {
    sub: Subscription,
    org: Uuid,
    user: Uuid,
    token_hash: Vec<u8>,
}

/// Subscribes to the session's organization now: a view reads what it
/// shows first after this, so nothing between the read and the stream is
/// missed.
pub fn open(st: &AppState, s: &Session) -> Opened {
    Opened {
        sub: st.bus.subscribe(s.org.id),
        org: s.org.id,
        user: s.user.id,
        token_hash: s.token_hash.clone(),
    }
}

/// Whether the session that opened a stream may still be sent its
/// organization's news: signed out, expired, switched to another
/// organization or removed from this one since the stream began all end it.
async fn still_allowed(st: &AppState, o: &Opened) -> bool {
    let now = st.now();
    let live = match st.store.session(&o.token_hash).await {
        Ok(Some(rec)) => {
            rec.org_id == Some(o.org)
                && now < rec.expires_at
                && now - rec.last_seen_at < st.config.session_idle_ms
        }
        _ => false,
    };
    live && matches!(st.store.membership(o.org, o.user).await, Ok(Some(_)))
}

struct Follow<V> {
    st: AppState,
    opened: Opened,
    view: V,
    first: Option<Step>,
    ended: bool,
}

impl Opened {
    /// The SSE response: `first` at once, then whatever the view makes of
    /// its organization's events.
    pub fn sse<V: View>(self, st: AppState, first: Step, view: V) -> Response {
        let stream = futures_util::stream::unfold(
            Follow {
                st,
                opened: self,
                view,
                first: Some(first),
                ended: false,
            },
            |mut f| async move {
                if f.ended {
                    return None;
                }
                let mut step = f.first.take();
                // Events the view does not want do not put off its quiet spell.
                let mut deadline = None;
                loop {
                    match step.take() {
                        Some(Step::Send(ev)) => return Some((Ok::<Event, Infallible>(ev), f)),
                        Some(Step::Last(ev)) => {
                            f.ended = true;
                            return Some((Ok(ev), f));
                        }
                        Some(Step::End) => return None,
                        Some(Step::Skip) | None => {}
                    }
                    if deadline.is_none() {
                        deadline = f.view.patience().map(|p| tokio::time::Instant::now() + p);
                    }
                    let heard = match deadline {
                        Some(at) => match tokio::time::timeout_at(at, f.opened.sub.recv()).await {
                            Ok(r) => r.map(heard),
                            Err(_) => Some(Heard::Quiet),
                        },
                        None => f.opened.sub.recv().await.map(heard),
                    };
                    let heard = heard?;
                    if let Heard::Event(l) = &heard {
                        if !f.view.wants(l) {
                            continue;
                        }
                    }
                    if !still_allowed(&f.st, &f.opened).await {
                        return None;
                    }
                    step = Some(f.view.on(&f.st, heard).await);
                    deadline = None;
                }
            },
        );
        Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
            .into_response()
    }
}

fn heard(r: Received) -> Heard {
    match r {
        Received::Event(l) => Heard::Event(l),
        Received::Missed => Heard::Missed,
    }
}
