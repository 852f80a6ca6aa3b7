//! An agent's identity (kind, provider), the heartbeat it reports and the
//! live status derived from the facts the store keeps about it.
//!
//! The status a member reads is derived, never stored: a paused agent is
//! "paused" whatever it last said; an agent that expects heartbeats and has
//! missed three intervals is "offline" even if its last word was "talking";
//! otherwise its own report wins (an error, a live call), and between those
//! the number of conversations it is handling. Deriving it at read time is
//! what makes "offline" appear without anyone writing anything.

use crate::Millis;

/// How often an external agent is expected to report, unless it says otherwise.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: Millis = 30_000;
/// Missed intervals after which an agent reads "offline".
pub const MISSED_BEATS_OFFLINE: i64 = 3;
/// Shortest and longest interval an agent may announce.
pub const HEARTBEAT_INTERVAL_RANGE_MS: (Millis, Millis) = (1_000, 3_600_000);
/// Longest "what I am doing" or error text kept, in characters.
pub const ACTIVITY_MAX_CHARS: usize = 200;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? } expected $expected:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The one string it is stored and sent as.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            /// Reads the stored or sent string; the error names the allowed values.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s { $($s => Ok($name::$variant),)+ other => Err(format!(
                    "{other:?} is not one of {}", $expected)) }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum! {
    /// What the agent does for the business.
    AgentKind { Chat = "chat", Voice = "voice", Sms = "sms", Email = "email", Sdr = "sdr" }
    expected "chat, voice, sms, email, sdr"
}

string_enum! {
    /// Who runs the agent: an external program over the API, BOS's own agent,
    /// or a voice platform that reports calls to a signed hook.
    AgentProvider { Api = "api", Builtin = "builtin", Vapi = "vapi", Retell = "retell" }
    expected "api, builtin, vapi, retell"
}

string_enum! {
    /// What an agent says it is doing in a heartbeat.
    Reported { Idle = "idle", Working = "working", Talking = "talking", Error = "error" }
    expected "idle, working, talking, error"
}

impl AgentKind {
    /// The words a card shows under the name.
    pub fn label(self) -> &'static str {
        match self {
            AgentKind::Chat => "Chat agent",
            AgentKind::Voice => "Voice agent",
            AgentKind::Sms => "SMS agent",
            AgentKind::Email => "E-mail agent",
            AgentKind::Sdr => "Automated SDR",
        }
    }
}

impl AgentProvider {
    /// External agents report heartbeats; BOS's own agent is alive while
    /// the server is, and voice platforms only speak when a call happens,
    /// so missing heartbeats means nothing for them.
    pub fn expects_heartbeats(self) -> bool {
        matches!(self, AgentProvider::Api)
    }
}

/// One heartbeat, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub status: Reported,
    /// What the agent is doing, in its own words ("Handling refund request #1234").
    pub activity: Option<String>,
    /// The error it reports when `status` is `error` ("API timeout").
    pub error: Option<String>,
    /// When the live call started, for `talking`.
    pub call_started_at: Option<Millis>,
    /// The interval the agent promises to report at.
    pub interval_ms: Millis,
}

/// Why a heartbeat was refused (422 at the edge, in words that say what to send).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("status: {0}")]
    Status(String),
    #[error("{field} is longer than {ACTIVITY_MAX_CHARS} characters; send a short sentence")]
    TooLong { field: &'static str },
    #[error("status \"error\" needs an \"error\" text saying what went wrong")]
    ErrorWithoutText,
    #[error("interval_seconds must be between 1 and 3600")]
    Interval,
    #[error("call_started_at is after the heartbeat itself; send when the call started")]
    CallInFuture,
}

fn clean(text: Option<&str>, field: &'static str) -> Result<Option<String>, HeartbeatError> {
    let Some(t) = text else { return Ok(None) };
    // Control characters would break the one-line card; newlines become spaces.
    let t: String = t
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if t.is_empty() {
        return Ok(None);
    }
    if t.chars().count() > ACTIVITY_MAX_CHARS {
        return Err(HeartbeatError::TooLong { field });
    }
    Ok(Some(t))
}

impl Heartbeat {
    /// Validates what an agent sent at `now`.
    pub fn new(
        status: &str,
        activity: Option<&str>,
        error: Option<&str>,
        call_started_at: Option<Millis>,
        interval_ms: Option<Millis>,
        now: Millis,
    ) -> Result<Self, HeartbeatError> {
        let status = Reported::parse(status).map_err(HeartbeatError::Status)?;
        let activity = clean(activity, "activity")?;
        let error = clean(error, "error")?;
        if status == Reported::Error && error.is_none() {
            return Err(HeartbeatError::ErrorWithoutText);
        }
        let interval_ms = interval_ms.unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_MS);
        let (lo, hi) = HEARTBEAT_INTERVAL_RANGE_MS;
        if !(lo..=hi).contains(&interval_ms) {
            return Err(HeartbeatError::Interval);
        }
        let call_started_at = match status {
            // A talking agent that does not say when the call began started it now.
            Reported::Talking => Some(call_started_at.unwrap_or(now)),
            _ => None,
        };
        if call_started_at.is_some_and(|t| t > now) {
            return Err(HeartbeatError::CallInFuture);
        }
        Ok(Heartbeat {
            status,
            activity,
            error: if status == Reported::Error {
                error
            } else {
                None
            },
            call_started_at,
            interval_ms,
        })
    }
}

/// What the store knows about an agent when a page or the API asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFacts {
    pub provider: AgentProvider,
    pub paused: bool,
    pub last_heartbeat_at: Option<Millis>,
    pub last: Option<Heartbeat>,
    /// Open conversations assigned to the agent.
    pub open_conversations: u32,
}

/// The status a member reads on the agent's card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveStatus {
    Paused,
    /// Never reported, or missed [`MISSED_BEATS_OFFLINE`] intervals.
    Offline {
        last_seen: Option<Millis>,
    },
    Error(String),
    Talking {
        elapsed_ms: Millis,
    },
    Handling(u32),
    /// Working on something it named, with no conversation assigned.
    Working(String),
    Idle,
}

impl LiveStatus {
    /// Derives the status at `now`.
    pub fn derive(f: &AgentFacts, now: Millis) -> LiveStatus {
        if f.paused {
            return LiveStatus::Paused;
        }
        if f.provider.expects_heartbeats() {
            let interval = f
                .last
                .as_ref()
                .map_or(DEFAULT_HEARTBEAT_INTERVAL_MS, |h| h.interval_ms);
            match f.last_heartbeat_at {
                None => return LiveStatus::Offline { last_seen: None },
                Some(at) if now - at >= MISSED_BEATS_OFFLINE * interval => {
                    return LiveStatus::Offline {
                        last_seen: Some(at),
                    }
                }
                Some(_) => {}
            }
        }
        match &f.last {
            Some(h) if h.status == Reported::Error => {
                LiveStatus::Error(h.error.clone().unwrap_or_else(|| "unknown".into()))
            }
            Some(h) if h.status == Reported::Talking => LiveStatus::Talking {
                elapsed_ms: (now - h.call_started_at.unwrap_or(now)).max(0),
            },
            _ if f.open_conversations > 0 => LiveStatus::Handling(f.open_conversations),
            Some(Heartbeat {
                status: Reported::Working,
                activity: Some(a),
                ..
            }) => LiveStatus::Working(a.clone()),
            _ => LiveStatus::Idle,
        }
    }

    /// The status with its context, as the card and the API say it.
    pub fn label(&self) -> String {
        match self {
            LiveStatus::Paused => "paused".into(),
            LiveStatus::Offline { .. } => "offline".into(),
            LiveStatus::Error(e) => format!("error: {e}"),
            LiveStatus::Talking { elapsed_ms } => format!("talking · {}", clock(*elapsed_ms)),
            LiveStatus::Handling(1) => "handling 1 conversation".into(),
            LiveStatus::Handling(n) => format!("handling {n} conversations"),
            LiveStatus::Working(a) => a.clone(),
            LiveStatus::Idle => "idle".into(),
        }
    }

    /// One word for the dot's colour and for filters.
    pub fn key(&self) -> &'static str {
        match self {
            LiveStatus::Paused => "paused",
            LiveStatus::Offline { .. } => "offline",
            LiveStatus::Error(_) => "error",
            LiveStatus::Talking { .. } => "talking",
            LiveStatus::Handling(_) | LiveStatus::Working(_) => "working",
            LiveStatus::Idle => "idle",
        }
    }

    /// Counts toward "AI agents online" in the header.
    pub fn is_online(&self) -> bool {
        !matches!(self, LiveStatus::Paused | LiveStatus::Offline { .. })
    }
}

/// `m:ss` below an hour, `h:mm:ss` above.
pub fn clock(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: Millis = 1_800_000_000_000;

    fn facts(last: Option<Heartbeat>, at: Option<Millis>) -> AgentFacts {
        AgentFacts {
            provider: AgentProvider::Api,
            paused: false,
            last_heartbeat_at: at,
            last,
            open_conversations: 0,
        }
    }

    fn beat(status: &str, err: Option<&str>, started: Option<Millis>) -> Heartbeat {
        Heartbeat::new(
            status,
            Some("Handling refund request #1234"),
            err,
            started,
            None,
            NOW,
        )
        .unwrap()
    }

    #[test]
    fn the_labels_say_what_the_spec_shows() {
        let talking = facts(Some(beat("talking", None, Some(NOW - 154_000))), Some(NOW));
        assert_eq!(LiveStatus::derive(&talking, NOW).label(), "talking · 2:34");
        let mut three = facts(Some(beat("idle", None, None)), Some(NOW));
        three.open_conversations = 3;
        assert_eq!(
            LiveStatus::derive(&three, NOW).label(),
            "handling 3 conversations"
        );
        three.open_conversations = 1;
        assert_eq!(
            LiveStatus::derive(&three, NOW).label(),
            "handling 1 conversation"
        );
        let idle = facts(
            Some(Heartbeat::new("idle", None, None, None, None, NOW).unwrap()),
            Some(NOW),
        );
        assert_eq!(LiveStatus::derive(&idle, NOW).label(), "idle");
        let err = facts(Some(beat("error", Some("API timeout"), None)), Some(NOW));
        assert_eq!(LiveStatus::derive(&err, NOW).label(), "error: API timeout");
        let working = facts(Some(beat("working", None, None)), Some(NOW));
        assert_eq!(
            LiveStatus::derive(&working, NOW).label(),
            "Handling refund request #1234"
        );
        let mut paused = err.clone();
        paused.paused = true;
        assert_eq!(LiveStatus::derive(&paused, NOW).label(), "paused");
        assert_eq!(
            LiveStatus::derive(&facts(None, None), NOW).label(),
            "offline"
        );
        assert_eq!(clock(3_725_000), "1:02:05");
    }

    #[test]
    fn three_missed_intervals_make_an_agent_offline() {
        let f = facts(Some(beat("talking", None, None)), Some(NOW));
        let interval = DEFAULT_HEARTBEAT_INTERVAL_MS;
        assert!(LiveStatus::derive(&f, NOW + 3 * interval - 1).is_online());
        assert_eq!(
            LiveStatus::derive(&f, NOW + 3 * interval),
            LiveStatus::Offline {
                last_seen: Some(NOW)
            }
        );
        // A voice platform's agent is never offline for silence.
        let mut vapi = f.clone();
        vapi.provider = AgentProvider::Vapi;
        assert!(LiveStatus::derive(&vapi, NOW + 100 * interval).is_online());
    }

    #[test]
    fn heartbeats_are_checked_in_words() {
        assert!(matches!(
            Heartbeat::new("sleeping", None, None, None, None, NOW),
            Err(HeartbeatError::Status(m)) if m.contains("idle, working, talking, error")
        ));
        assert_eq!(
            Heartbeat::new("error", None, Some("  "), None, None, NOW),
            Err(HeartbeatError::ErrorWithoutText)
        );
        assert_eq!(
            Heartbeat::new("idle", Some(&"x".repeat(201)), None, None, None, NOW),
            Err(HeartbeatError::TooLong { field: "activity" })
        );
        assert_eq!(
            Heartbeat::new("idle", None, None, None, Some(10), NOW),
            Err(HeartbeatError::Interval)
        );
        assert_eq!(
            Heartbeat::new("talking", None, None, Some(NOW + 1), None, NOW),
            Err(HeartbeatError::CallInFuture)
        );
        let h = Heartbeat::new(
            "idle",
            Some("a\nb\u{0}\tc"),
            Some("ignored"),
            Some(1),
            None,
            NOW,
        )
        .unwrap();
        assert_eq!(h.activity.as_deref(), Some("a b c"));
        assert_eq!((h.error, h.call_started_at), (None, None));
        for k in AgentKind::ALL {
            assert_eq!(AgentKind::parse(k.as_str()), Ok(*k));
        }
        for p in AgentProvider::ALL {
            assert_eq!(AgentProvider::parse(p.as_str()), Ok(*p));
        }
    }

    proptest! {
        #[test]
        fn paused_wins_and_offline_follows_only_silence(
            status in prop::sample::select(vec!["idle", "working", "talking", "error"]),
            silence in 0i64..10_000_000,
            open in 0u32..5,
            paused: bool,
            interval_s in 1i64..3600,
        ) {
            let h = Heartbeat::new(status, Some("x"), Some("boom"), None, Some(interval_s * 1000), NOW).unwrap();
            let f = AgentFacts { provider: AgentProvider::Api, paused, last_heartbeat_at: Some(NOW), last: Some(h), open_conversations: open };
            let s = LiveStatus::derive(&f, NOW + silence);
            if paused {
                prop_assert_eq!(s, LiveStatus::Paused);
            } else if silence >= 3 * interval_s * 1000 {
                prop_assert_eq!(s, LiveStatus::Offline { last_seen: Some(NOW) });
            } else {
                prop_assert!(s.is_online());
                prop_assert!(!s.label().is_empty());
            }
        }
    }
}
