//! AI agents as workers: the service the API (and later the Command Center
//! and the voice hooks) calls to register an agent with its bound key,
//! list agents with the status derived at read time, take heartbeats,
//! pause and resume (who and when), record interactions, and answer the
//! metrics of a period against the period before, per agent and overall.
//! Every change is published on the live bus as [`Live::Agent`] so a
//! Command Center follows it. The rules (heartbeat validation, the status,
//! the metrics and trends) are `bos_core::agents`; the SQL is the store's.
//!
//! It also owns the hand-offs between an agent and the people of the
//! organization (an agent asks for a human; a member takes a conversation
//! over or hands it back) and reads each agent's numbered event stream,
//! which the store writes in the same transaction as the change it reports.
//!
//! [`Live::Agent`]: crate::bus::Live::Agent

use bos_core::agents::{
    AgentKind, AgentProvider, Compared, Heartbeat, LiveStatus, Outcome, Period, PeriodError, Totals,
};
use bos_core::{ApiKeyParts, Millis};
pub use bos_store::agents::stream::{
    ConversationHands, HandsMoved, StreamCustomer, StreamEvent, StreamKind, StreamMessage,
    EVENTS_PAGE,
};
use bos_store::agents::{
    Agent, AgentKey, AgentSnippet, InteractionUpdate, NewAgent, NewInteraction, ProfileInteraction,
    StoredInteraction, TranscriptLine,
};
use bos_store::inbox::InboxTimelineEntry;
use bos_store::{Store, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::admin::IssuedKey;
use crate::bus::{Bus, BusEvent};
use crate::tokens::{random_token, sha256};

/// Longest agent name, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest webhook secret, in characters.
pub const SECRET_MAX_CHARS: usize = 500;
/// Longest summary of an interaction, in characters.
pub const SUMMARY_MAX_CHARS: usize = 2_000;
/// Most tokens one interaction may report.
pub const TOKENS_MAX: i64 = 1_000_000_000;
/// Most transcript lines one interaction keeps.
pub const TRANSCRIPT_MAX_LINES: usize = 500;
/// Longest transcript line, in characters.
pub const LINE_MAX_CHARS: usize = 10_000;
/// The most one interaction may cost, in US dollars: far above any real
/// call or chat, low enough that a unit mistake (cents sent as dollars)
/// is refused rather than skewing the day's total.
pub const COST_MAX_USD: f64 = 10_000.0;
/// Longest reason an agent gives for asking for a human, in characters.
pub const HANDOFF_REASON_MAX_CHARS: usize = 1_000;
/// How long an agent's events are kept for a stream to resume from: a
/// week, far longer than any reconnect, short enough that the table stays
/// small.
pub const STREAM_RETENTION_MS: Millis = 7 * 86_400_000;

/// Why an agent operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// An input is not acceptable; the text says what to send.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// No such agent (or customer, or conversation) in this organization.
    #[error("no such agent")]
    NotFound,
    /// The agent is paused: it may report heartbeats, not write.
    #[error("{name} is paused (by {by}); a member must resume it before it writes again")]
    Paused {
        name: String,
        by: String,
        since: Millis,
    },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AgentError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AgentError::NotFound,
            StoreError::Conflict(c) => AgentError::Conflict(c),
            other => AgentError::Store(other),
        }
    }
}

fn invalid(field: &'static str, detail: impl Into<String>) -> AgentError {
    AgentError::Invalid {
        field,
        detail: detail.into(),
    }
}

/// An agent with the status a member reads now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    pub agent: Agent,
    pub status: LiveStatus,
}

/// What an admin sends to register an agent.
#[derive(Debug, Clone, Default)]
pub struct CreateAgent {
    pub name: String,
    pub kind: String,
    pub provider: String,
    /// The voice platform's assistant or agent id (Vapi, Retell).
    pub platform_agent_id: Option<String>,
    /// What the voice platform signs its call reports with: Vapi's server
    /// secret, Retell's API key. Required for them, refused for others.
    pub webhook_secret: Option<String>,
}

/// A heartbeat as sent.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatInput {
    pub status: String,
    pub activity: Option<String>,
    pub error: Option<String>,
    pub call_started_at: Option<Millis>,
    pub interval_seconds: Option<i64>,
}

/// An interaction as sent.
#[derive(Debug, Clone, Default)]
pub struct InteractionInput {
    pub customer_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub outcome: String,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub first_response_ms: Option<i64>,
    pub cost_usd: Option<f64>,
    pub tokens: Option<i64>,
    pub csat: Option<i64>,
    pub sentiment: Option<f64>,
    pub human_intervened: Option<bool>,
    pub summary: Option<String>,
    pub transcript: Vec<TranscriptLine>,
    pub external_id: Option<String>,
}

/// Who paused an agent: a member (with their user id) or an admin key.
#[derive(Debug, Clone)]
pub struct PausedBy {
    pub user_id: Option<Uuid>,
    pub name: String,
}

/// The metrics of a period against the one before it, overall and per agent.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    pub period: Period,
    pub overall: Compared,
    /// Every agent asked about (all of them, or the one named), by name.
    pub per_agent: Vec<(Agent, Compared)>,
}

/// What an interaction's timeline line says.
struct TimelineFacts {
    outcome: Outcome,
    sentiment: Option<f64>,
    human_intervened: bool,
    summary: Option<String>,
}

/// "Ava: resolved · sentiment 8.5/10 · a human stepped in — Refund sent".
fn timeline_summary(agent: &str, f: &TimelineFacts) -> String {
    let mut s = format!(
        "{agent}: {}",
        match f.outcome {
            Outcome::Success => "resolved",
            Outcome::Failure => "not resolved",
            Outcome::HandedOff => "handed off to a person",
        }
    );
    if let Some(v) = f.sentiment {
        s.push_str(&format!(" · sentiment {v:.1}/10"));
    }
    if f.human_intervened && f.outcome != Outcome::HandedOff {
        s.push_str(" · a human stepped in");
    }
    if let Some(t) = &f.summary {
        let short: String = t.chars().take(160).collect();
        s.push_str(" — ");
        s.push_str(&short);
        if t.chars().count() > 160 {
            s.push('…');
        }
    }
    s
}

/// The agents of one process: the store they live in and the bus they tell.
#[derive(Clone)]
pub struct Agents {
    store: Store,
    bus: Bus,
}

fn view(agent: Agent, now: Millis) -> AgentView {
    let status = LiveStatus::derive(&agent.facts(), now);
    AgentView { agent, status }
}

fn usd_to_micros(usd: f64) -> Result<i64, AgentError> {
    if !usd.is_finite() || !(0.0..=COST_MAX_USD).contains(&usd) {
        return Err(invalid(
            "cost_usd",
            format!("send the cost in US dollars, between 0 and {COST_MAX_USD}"),
        ));
    }
    Ok((usd * 1_000_000.0).round() as i64)
}

fn clean_text(
    field: &'static str,
    t: Option<String>,
    max: usize,
) -> Result<Option<String>, AgentError> {
    let Some(t) = t else { return Ok(None) };
    let t = t.trim().to_string();
    if t.is_empty() {
        return Ok(None);
    }
    if t.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    Ok(Some(t))
}

impl Agents {
    pub fn new(store: Store, bus: Bus) -> Agents {
        Agents { store, bus }
    }

    fn tell(&self, org: Uuid, agent: Uuid) {
        self.bus.publish(BusEvent::agent(org, agent));
    }

    /// Registers an agent and makes its key of scope `agent`, bound to it;
    /// the key's secret is in the answer only.
    pub async fn create(
        &self,
        org: Uuid,
        created_by: Option<Uuid>,
        c: CreateAgent,
        now: Millis,
    ) -> Result<(AgentView, IssuedKey), AgentError> {
        let name = c.name.trim().to_string();
        if name.is_empty() || name.chars().count() > NAME_MAX_CHARS {
            return Err(invalid(
                "name",
                format!("give the agent a name of 1 to {NAME_MAX_CHARS} characters"),
            ));
        }
        let kind = AgentKind::parse(c.kind.trim()).map_err(|e| invalid("kind", e))?;
        let provider =
            AgentProvider::parse(c.provider.trim()).map_err(|e| invalid("provider", e))?;
        let platform = clean_text("platform_agent_id", c.platform_agent_id, 200)?;
        let platform = match provider {
            AgentProvider::Vapi | AgentProvider::Retell => Some(platform.ok_or_else(|| {
                invalid(
                    "platform_agent_id",
                    format!(
                        "a {provider} agent needs the platform's assistant or agent id, so its call reports find it"
                    ),
                )
            })?),
            // Only voice platforms report under an id of their own.
            AgentProvider::Api | AgentProvider::Builtin => None,
        };
        let secret = clean_text("webhook_secret", c.webhook_secret, SECRET_MAX_CHARS)?;
        let webhook_secret = match provider {
            AgentProvider::Vapi | AgentProvider::Retell => Some(secret.ok_or_else(|| {
                invalid(
                    "webhook_secret",
                    match provider {
                        AgentProvider::Vapi => "a vapi agent needs the secret Vapi signs its server messages with (the assistant's server secret)",
                        _ => "a retell agent needs the Retell API key its webhooks are signed with",
                    },
                )
            })?),
            AgentProvider::Api | AgentProvider::Builtin if secret.is_some() => {
                return Err(invalid(
                    "webhook_secret",
                    "only vapi and retell agents report to a signed hook; an api agent reports with its key",
                ))
            }
            AgentProvider::Api | AgentProvider::Builtin => None,
        };
        let parts = ApiKeyParts::from_encoded_secret(&random_token(30));
        let (agent, key) = self
            .store
            .create_agent(
                org,
                &NewAgent {
                    name,
                    kind,
                    provider,
                    platform_agent_id: platform,
                    webhook_secret,
                },
                &AgentKey {
                    display_prefix: parts.display_prefix.clone(),
                    key_hash: sha256(&parts.full),
                    created_by,
                },
                now,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AgentError::Conflict(
                    "another agent already reports under this platform_agent_id".into(),
                ),
                other => other.into(),
            })?;
        self.tell(org, agent.id);
        Ok((
            view(agent, now),
            IssuedKey {
                key,
                secret: parts.full,
            },
        ))
    }

    /// The organization's agents by name, each with its status now.
    pub async fn list(&self, org: Uuid, now: Millis) -> Result<Vec<AgentView>, AgentError> {
        Ok(self
            .store
            .agents(org)
            .await?
            .into_iter()
            .map(|a| view(a, now))
            .collect())
    }

    /// One agent with its status now.
    pub async fn get(&self, org: Uuid, id: Uuid, now: Millis) -> Result<AgentView, AgentError> {
        Ok(view(self.store.agent(org, id).await?, now))
    }

    /// Keeps a heartbeat; a paused agent may still report (that is how a
    /// member sees it is alive and waiting).
    pub async fn heartbeat(
        &self,
        org: Uuid,
        id: Uuid,
        h: HeartbeatInput,
        now: Millis,
    ) -> Result<AgentView, AgentError> {
        let interval_ms = match h.interval_seconds {
            Some(s) => Some(s.checked_mul(1000).ok_or_else(|| {
                invalid(
                    "interval_seconds",
                    "interval_seconds must be between 1 and 3600",
                )
            })?),
            None => None,
        };
        let beat = Heartbeat::new(
            &h.status,
            h.activity.as_deref(),
            h.error.as_deref(),
            h.call_started_at,
            interval_ms,
            now,
        )
        .map_err(|e| {
            let field = match e {
                bos_core::agents::HeartbeatError::Status(_) => "status",
                bos_core::agents::HeartbeatError::TooLong { field } => field,
                bos_core::agents::HeartbeatError::ErrorWithoutText => "error",
                bos_core::agents::HeartbeatError::Interval => "interval_seconds",
                bos_core::agents::HeartbeatError::CallInFuture => "call_started_at",
            };
            invalid(field, e.to_string())
        })?;
        self.store.agent_heartbeat(org, id, &beat, now).await?;
        self.tell(org, id);
        self.get(org, id, now).await
    }

    /// Pauses an agent: its writes are refused until a member resumes it.
    /// Pausing a paused agent keeps who paused it first.
    pub async fn pause(
        &self,
        org: Uuid,
        id: Uuid,
        by: &PausedBy,
        now: Millis,
    ) -> Result<AgentView, AgentError> {
        if self
            .store
            .set_agent_paused(org, id, true, by.user_id, &by.name, now)
            .await?
        {
            self.tell(org, id);
        }
        self.get(org, id, now).await
    }

    /// Resumes a paused agent.
    pub async fn resume(&self, org: Uuid, id: Uuid, now: Millis) -> Result<AgentView, AgentError> {
        if self
            .store
            .set_agent_paused(org, id, false, None, "", now)
            .await?
        {
            self.tell(org, id);
        }
        self.get(org, id, now).await
    }

    /// `Paused` when the agent may not write now (interactions, messages).
    pub async fn ensure_active(&self, org: Uuid, id: Uuid) -> Result<Agent, AgentError> {
        let a = self.store.agent(org, id).await?;
        if a.paused {
            return Err(AgentError::Paused {
                name: a.name.clone(),
                by: a
                    .paused_by_name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "a member".into()),
                since: a.paused_at.unwrap_or_default(),
            });
        }
        Ok(a)
    }

    /// Records an interaction of an active agent, once per `external_id`:
    /// the id stored, and whether this call stored it.
    pub async fn record(
        &self,
        org: Uuid,
        agent: Uuid,
        i: InteractionInput,
        now: Millis,
    ) -> Result<(Uuid, bool), AgentError> {
        self.ensure_active(org, agent).await?;
        self.keep(org, agent, i, now).await
    }

    /// Records a call a voice platform reported, once per `external_id`
    /// (the call's id): as [`Agents::record`], except that a paused agent's
    /// call is kept too. The call happened on the platform whatever BOS
    /// says, and refusing its report would only lose what was said to a
    /// customer (decision 0040).
    pub async fn record_reported(
        &self,
        org: Uuid,
        agent: Uuid,
        i: InteractionInput,
        now: Millis,
    ) -> Result<(Uuid, bool), AgentError> {
        self.keep(org, agent, i, now).await
    }

    /// Completes the interaction stored under `external_id` with what a
    /// later report knows (Retell's analysis after the call's end). `None`
    /// when there is none yet; otherwise its id and whether it changed.
    pub async fn complete(
        &self,
        org: Uuid,
        agent: Uuid,
        external_id: &str,
        u: &InteractionUpdate,
    ) -> Result<Option<(Uuid, bool)>, AgentError> {
        if u.sentiment
            .is_some_and(|s| !s.is_finite() || !(0.0..=10.0).contains(&s))
        {
            return Err(invalid("sentiment", "sentiment is a number from 0 to 10"));
        }
        let mut u = u.clone();
        u.summary = clean_text("summary", u.summary, SUMMARY_MAX_CHARS)?;
        let r = self
            .store
            .update_agent_interaction(org, agent, external_id, &u)
            .await?;
        if let Some((_, true)) = r {
            self.tell(org, agent);
        }
        Ok(r)
    }

    /// Checks and stores an interaction (whether the agent may write is
    /// the caller's question).
    async fn keep(
        &self,
        org: Uuid,
        agent: Uuid,
        i: InteractionInput,
        now: Millis,
    ) -> Result<(Uuid, bool), AgentError> {
        let outcome = Outcome::parse(i.outcome.trim()).map_err(|e| invalid("outcome", e))?;
        if i.started_at > now + 86_400_000 {
            return Err(invalid(
                "started_at",
                "started_at is in the future; send when it began",
            ));
        }
        if let Some(end) = i.ended_at {
            if end < i.started_at {
                return Err(invalid("ended_at", "ended_at is before started_at"));
            }
        }
        if i.first_response_ms
            .is_some_and(|r| !(0..=86_400_000).contains(&r))
        {
            return Err(invalid(
                "first_response_ms",
                "first_response_ms is milliseconds from 0 to one day",
            ));
        }
        let cost_micros = match i.cost_usd {
            Some(usd) => usd_to_micros(usd)?,
            None => 0,
        };
        let tokens = i.tokens.unwrap_or(0);
        // Bounded so no sum of a period's tokens can overflow the column.
        if !(0..=TOKENS_MAX).contains(&tokens) {
            return Err(invalid(
                "tokens",
                format!("tokens is a whole number from 0 to {TOKENS_MAX}"),
            ));
        }
        let csat = match i.csat {
            Some(c) if (0..=10).contains(&c) => Some(c as u8),
            Some(_) => return Err(invalid("csat", "csat is a whole number from 0 to 10")),
            None => None,
        };
        if i.sentiment
            .is_some_and(|s| !s.is_finite() || !(0.0..=10.0).contains(&s))
        {
            return Err(invalid("sentiment", "sentiment is a number from 0 to 10"));
        }
        let summary = clean_text("summary", i.summary, SUMMARY_MAX_CHARS)?;
        let external_id = clean_text("external_id", i.external_id, 200)?;
        if i.transcript.len() > TRANSCRIPT_MAX_LINES {
            return Err(invalid(
                "transcript",
                format!("at most {TRANSCRIPT_MAX_LINES} lines"),
            ));
        }
        for l in &i.transcript {
            if !matches!(l.role.as_str(), "agent" | "customer" | "human") {
                return Err(invalid(
                    "transcript",
                    format!("role {:?} is not one of agent, customer, human", l.role),
                ));
            }
            if l.text.chars().count() > LINE_MAX_CHARS {
                return Err(invalid(
                    "transcript",
                    format!("a line is at most {LINE_MAX_CHARS} characters"),
                ));
            }
        }
        let facts = TimelineFacts {
            outcome,
            sentiment: i.sentiment,
            human_intervened: i.human_intervened.unwrap_or(false) || outcome == Outcome::HandedOff,
            summary: summary.clone(),
        };
        let r = self
            .store
            .record_agent_interaction(
                org,
                &NewInteraction {
                    agent_id: agent,
                    profile_id: i.customer_id,
                    conversation_id: i.conversation_id,
                    outcome,
                    started_at: i.started_at,
                    ended_at: i.ended_at,
                    first_response_ms: i.first_response_ms,
                    cost_micros,
                    tokens,
                    csat,
                    sentiment: i.sentiment,
                    human_intervened: i.human_intervened.unwrap_or(false)
                        || outcome == Outcome::HandedOff,
                    summary,
                    transcript: i.transcript,
                    external_id,
                },
                now,
            )
            .await?;
        // Written again on a retry too: the line is kept once per interaction.
        self.write_timeline(org, agent, r.id, &facts).await?;
        if r.created {
            self.tell(org, agent);
        }
        Ok((r.id, r.created))
    }

    /// Makes the agent the one handling a conversation it wrote in, so its
    /// card counts the conversation while it is open.
    pub async fn handles(
        &self,
        org: Uuid,
        agent: Uuid,
        conversation: Uuid,
    ) -> Result<(), AgentError> {
        self.store
            .set_conversation_agent(org, conversation, Some(agent))
            .await?;
        self.bus.publish_all([
            BusEvent::conversation(org, conversation),
            BusEvent::agent(org, agent),
        ]);
        Ok(())
    }

    /// The period a metrics request names: whole local days `from..=to` in
    /// the organization's zone, or today when neither is given.
    pub async fn period(
        &self,
        org: Uuid,
        from: Option<&str>,
        to: Option<&str>,
        now: Millis,
    ) -> Result<Period, AgentError> {
        let zone = self.store.nudge_settings(org).await?.timezone;
        let field = |e: &PeriodError| match e {
            PeriodError::Reversed | PeriodError::TooLong => "to",
            _ => "from",
        };
        let p = match (from, to) {
            (None, None) => Period::today(now, &zone),
            (Some(f), None) => Period::dates(f, f, &zone),
            (None, Some(_)) => {
                return Err(invalid("from", "send from (and to) as YYYY-MM-DD"));
            }
            (Some(f), Some(t)) => Period::dates(f, t, &zone),
        };
        p.map_err(|e| invalid(field(&e), e.to_string()))
    }

    /// The metrics of `period` against the period just before it, overall
    /// and per agent (one agent when `agent` names one).
    pub async fn metrics(
        &self,
        org: Uuid,
        agent: Option<Uuid>,
        period: Period,
    ) -> Result<AgentMetrics, AgentError> {
        let prev = period.previous();
        let agents = match agent {
            Some(id) => vec![self.store.agent(org, id).await?],
            None => self.store.agents(org).await?,
        };
        let overall = Compared::of(
            self.store.agent_totals(org, agent, period).await?,
            self.store.agent_totals(org, agent, prev).await?,
        );
        let cur = self.store.agent_totals_by_agent(org, period).await?;
        let before = self.store.agent_totals_by_agent(org, prev).await?;
        let of = |v: &[(Uuid, Totals)], id: Uuid| {
            v.iter()
                .find(|(a, _)| *a == id)
                .map(|(_, t)| *t)
                .unwrap_or_default()
        };
        let per_agent = agents
            .into_iter()
            .map(|a| {
                let c = Compared::of(of(&cur, a.id), of(&before, a.id));
                (a, c)
            })
            .collect();
        Ok(AgentMetrics {
            period,
            overall,
            per_agent,
        })
    }

    /// The organization's days ending today, `days` of them, in its zone
    /// (1 is today): the Command Center's period picker.
    pub async fn last_days(&self, org: Uuid, days: i64, now: Millis) -> Result<Period, AgentError> {
        let zone = self.store.nudge_settings(org).await?.timezone;
        let bad = |e: PeriodError| invalid("period", e.to_string());
        let today = Period::today(now, &zone).map_err(bad)?;
        // Noon of the first day, so a day of 23 or 25 hours is still found.
        let first = today.from - (days.clamp(1, 366) - 1) * 86_400_000 + 43_200_000;
        let from = Period::today(first.min(now), &zone).map_err(bad)?.from;
        Ok(Period { from, to: today.to })
    }

    /// An agent's latest interactions, newest first.
    pub async fn recent_interactions(
        &self,
        org: Uuid,
        agent: Uuid,
        limit: u32,
    ) -> Result<Vec<StoredInteraction>, AgentError> {
        Ok(self
            .store
            .agent_recent_interactions(org, agent, limit)
            .await?)
    }

    /// A customer's interactions with agents, newest first.
    pub async fn customer_history(
        &self,
        org: Uuid,
        profile: Uuid,
        limit: u32,
    ) -> Result<Vec<ProfileInteraction>, AgentError> {
        Ok(self
            .store
            .profile_agent_interactions(org, profile, limit)
            .await?)
    }

    /// The conversations agents handle, latest first, with their last lines.
    pub async fn snippets(&self, org: Uuid, limit: u32) -> Result<Vec<AgentSnippet>, AgentError> {
        Ok(self.store.agent_snippets(org, limit, 2).await?)
    }

    /// A new key for an agent whose key was lost; its other keys stop
    /// working at once. The secret is in the answer only.
    pub async fn rekey(
        &self,
        org: Uuid,
        agent: Uuid,
        created_by: Option<Uuid>,
        now: Millis,
    ) -> Result<IssuedKey, AgentError> {
        let parts = ApiKeyParts::from_encoded_secret(&random_token(30));
        let key = self
            .store
            .rekey_agent(
                org,
                agent,
                &AgentKey {
                    display_prefix: parts.display_prefix.clone(),
                    key_hash: sha256(&parts.full),
                    created_by,
                },
                now,
            )
            .await?;
        self.tell(org, agent);
        Ok(IssuedKey {
            key,
            secret: parts.full,
        })
    }

    /// The line an interaction leaves on its customer's timeline: the
    /// agent, the outcome, the sentiment and whether a human stepped in.
    async fn write_timeline(
        &self,
        org: Uuid,
        agent: Uuid,
        id: Uuid,
        i: &TimelineFacts,
    ) -> Result<(), AgentError> {
        let name = self.store.agent(org, agent).await?.name;
        let data = serde_json::json!({
            "interaction_id": id,
            "agent_id": agent,
            "outcome": i.outcome.as_str(),
            "sentiment": i.sentiment,
            "human_intervened": i.human_intervened,
        });
        self.store
            .agent_interaction_timeline(org, id, &timeline_summary(&name, i), &data)
            .await?;
        Ok(())
    }

    /// The agent's events after `after` (its stream's last number), oldest
    /// first, each with the message text and customer it names.
    pub async fn events(
        &self,
        org: Uuid,
        agent: Uuid,
        after: i64,
    ) -> Result<Vec<StreamEvent>, AgentError> {
        Ok(self
            .store
            .agent_events(org, agent, after, EVENTS_PAGE)
            .await?)
    }

    /// The number of the agent's latest event: a new stream starts after it.
    pub async fn events_head(&self, org: Uuid, agent: Uuid) -> Result<i64, AgentError> {
        Ok(self.store.agent_events_head(org, agent).await?)
    }

    /// Drops the organization's events older than the resume window.
    pub async fn prune_events(&self, org: Uuid, now: Millis) -> Result<(), AgentError> {
        self.store
            .prune_agent_events(org, now - STREAM_RETENTION_MS)
            .await?;
        Ok(())
    }

    /// Which agent and which member have a conversation now.
    pub async fn hands(
        &self,
        org: Uuid,
        conversation: Uuid,
    ) -> Result<ConversationHands, AgentError> {
        Ok(self.store.conversation_hands(org, conversation).await?)
    }

    async fn hands_line(
        &self,
        org: Uuid,
        conversation: Uuid,
        moved: &HandsMoved,
        kind: &str,
        summary: String,
        now: Millis,
    ) -> Result<(), AgentError> {
        self.store
            .inbox_timeline(
                org,
                &InboxTimelineEntry {
                    profile_id: moved.hands.profile_id,
                    kind: kind.into(),
                    summary,
                    data: json!({
                        "conversation_id": conversation,
                        "agent_id": moved.hands.agent_id,
                        "reason": moved.hands.handoff_reason,
                    }),
                    key: format!("inbox:{kind}:{conversation}:{now}"),
                    at: now,
                },
            )
            .await?;
        let mut events = vec![BusEvent::conversation(org, conversation)];
        if let Some(a) = moved.hands.agent_id {
            events.push(BusEvent::agent(org, a));
        }
        self.bus.publish_all(events);
        Ok(())
    }

    /// An agent asks for a human (`agent`: the agent asking with its own
    /// key; `None`: a member acting for the conversation's agent). The
    /// conversation waits for a human at `high` priority with the reason;
    /// the customer's timeline says so; live views and the agent's stream
    /// are told. Asking again changes nothing. A paused agent may not.
    pub async fn hand_off(
        &self,
        org: Uuid,
        conversation: Uuid,
        agent: Option<Uuid>,
        reason: &str,
        now: Millis,
    ) -> Result<HandsMoved, AgentError> {
        let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
        if reason.is_empty() || reason.chars().count() > HANDOFF_REASON_MAX_CHARS {
            return Err(invalid(
                "reason",
                format!("say why a human is needed, in 1 to {HANDOFF_REASON_MAX_CHARS} characters"),
            ));
        }
        if let Some(a) = agent {
            self.ensure_active(org, a).await?;
        }
        let moved = self
            .store
            .hand_off_conversation(org, conversation, agent, &reason, now)
            .await?;
        if moved.changed {
            let name = match moved.hands.agent_id {
                Some(a) => self.store.agent(org, a).await?.name,
                None => "The agent".into(),
            };
            self.hands_line(
                org,
                conversation,
                &moved,
                "agent_handoff",
                format!("{name} asked for a human: {reason}"),
                now,
            )
            .await?;
        }
        Ok(moved)
    }

    /// A member takes the conversation over from its agent: assigned to
    /// them, no longer waiting; the agent's stream says `takeover`.
    pub async fn take_over(
        &self,
        org: Uuid,
        conversation: Uuid,
        member: Uuid,
        now: Millis,
    ) -> Result<HandsMoved, AgentError> {
        let name = self.member_name(org, member).await?;
        let moved = self
            .store
            .take_over_conversation(org, conversation, member, &name, now)
            .await
            .map_err(|e| match e {
                StoreError::Invalid(d) => invalid(
                    "member",
                    format!("{d}: a takeover is made by a member of this organization"),
                ),
                other => other.into(),
            })?;
        if moved.changed {
            self.hands_line(
                org,
                conversation,
                &moved,
                "conversation_taken_over",
                format!("{name} took the conversation over"),
                now,
            )
            .await?;
        }
        Ok(moved)
    }

    /// A member gives the conversation back to its agent; the agent's
    /// stream says `handed_back`.
    pub async fn hand_back(
        &self,
        org: Uuid,
        conversation: Uuid,
        by_name: &str,
        now: Millis,
    ) -> Result<HandsMoved, AgentError> {
        let moved = self
            .store
            .hand_back_conversation(org, conversation, by_name, now)
            .await?;
        if moved.changed {
            let agent = match moved.hands.agent_id {
                Some(a) => self.store.agent(org, a).await?.name,
                None => "its agent".into(),
            };
            self.hands_line(
                org,
                conversation,
                &moved,
                "conversation_handed_back",
                format!("{by_name} handed the conversation back to {agent}"),
                now,
            )
            .await?;
        }
        Ok(moved)
    }

    /// A member's name as the organization shows it (their e-mail without one).
    pub async fn member_name(&self, org: Uuid, member: Uuid) -> Result<String, AgentError> {
        self.store
            .members(org)
            .await?
            .into_iter()
            .find(|m| m.user_id == member)
            .map(|m| {
                if m.display_name.trim().is_empty() {
                    m.email
                } else {
                    m.display_name
                }
            })
            .ok_or_else(|| {
                invalid(
                    "member",
                    "a takeover is made by a member of this organization: use a key a member created",
                )
            })
    }
}
