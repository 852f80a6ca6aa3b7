//! AI agents' storage: the registry (name, kind, provider, paused and by
//! whom, the last heartbeat as reported), the API key made for an agent
//! (created in the same transaction, bound to it), which agent handles a
//! conversation, and the interactions agents report with the one indexed
//! query that adds them up into [`bos_core::agents::Totals`]. The status a
//! member reads is never stored: callers derive it from [`Agent::facts`]
//! with `LiveStatus::derive` at read time (decision 0039). A voice agent's
//! webhook secret is sealed at rest and opened only by [`Store::agent_hook`],
//! the system lookup its signed call-report hook finds it by. Everything
//! else is scoped by organization.

mod cockpit;
mod interactions;
/// Each agent's numbered events, and hand-offs between agents and members.
pub mod stream;

pub use cockpit::{AgentSnippet, ProfileInteraction, SnippetLine};
pub use interactions::{
    InteractionRecorded, InteractionUpdate, NewInteraction, StoredInteraction, TranscriptLine,
};
pub(crate) use stream::cue_inbound;

use bos_core::agents::{AgentFacts, AgentKind, AgentProvider, Heartbeat, Reported};
use bos_core::{Millis, ScopeSet};
use uuid::Uuid;

use crate::engine::write_db;
use crate::secrets::agent_context;
use crate::sql::{q, read_rows, Db, Row};
use crate::{new_id, ApiKey, Store, StoreError};

/// An agent as stored, with the open conversations it is handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub kind: AgentKind,
    pub provider: AgentProvider,
    pub platform_agent_id: Option<String>,
    pub paused: bool,
    pub paused_at: Option<Millis>,
    pub paused_by: Option<Uuid>,
    pub paused_by_name: Option<String>,
    pub last_heartbeat_at: Option<Millis>,
    pub last: Option<Heartbeat>,
    pub open_conversations: u32,
    /// The display prefix of the newest live key made for the agent.
    pub key_prefix: Option<String>,
    pub created_at: Millis,
}

impl Agent {
    /// What `LiveStatus::derive` needs.
    pub fn facts(&self) -> AgentFacts {
        AgentFacts {
            provider: self.provider,
            paused: self.paused,
            last_heartbeat_at: self.last_heartbeat_at,
            last: self.last.clone(),
            open_conversations: self.open_conversations,
        }
    }
}

/// A new agent, checked by the caller.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub kind: AgentKind,
    pub provider: AgentProvider,
    pub platform_agent_id: Option<String>,
    /// A voice platform's signing secret (sealed before it is written).
    pub webhook_secret: Option<String>,
}

/// What a voice platform's signed hook needs to know about the agent its
/// URL names: whose it is, which platform signs for it, and the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentHook {
    pub org_id: Uuid,
    pub id: Uuid,
    pub provider: AgentProvider,
    pub secret: String,
}

impl std::fmt::Debug for AgentHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, in logs or panics.
        write!(
            f,
            "AgentHook({} {} of {})",
            self.provider, self.id, self.org_id
        )
    }
}

/// The key made with a new agent: its secret is hashed by the caller.
#[derive(Debug, Clone)]
pub struct AgentKey {
    pub display_prefix: String,
    pub key_hash: Vec<u8>,
    pub created_by: Option<Uuid>,
}

const AGENT_SELECT: &str =
    "select a.id, a.org_id, a.name, a.kind, a.provider, a.platform_agent_id, \
    a.paused, a.paused_at, a.paused_by, a.paused_by_name, a.heartbeat_at, a.heartbeat_status, \
    a.heartbeat_activity, a.heartbeat_error, a.call_started_at, a.interval_ms, a.created_at, \
    (select count(*) from conversations c where c.org_id = a.org_id and c.agent_id = a.id \
     and c.status = 'open' and c.assignee_id is null and c.handoff_at is null) \
     as open_conversations, \
    (select k.display_prefix from api_keys k where k.org_id = a.org_id and k.agent_id = a.id \
     and k.revoked_at is null order by k.created_at desc limit 1) as key_prefix \
    from agents a";

fn agent_row(r: &Row) -> Result<Agent, StoreError> {
    let status = r.opt_text("heartbeat_status")?;
    let last = match status {
        None => None,
        Some(s) => Some(Heartbeat {
            status: Reported::parse(&s)
                .map_err(|_| StoreError::unknown_value("heartbeat_status", &s))?,
            activity: r.opt_text("heartbeat_activity")?,
            error: r.opt_text("heartbeat_error")?,
            call_started_at: r.opt_i64("call_started_at")?,
            interval_ms: r
                .opt_i64("interval_ms")?
                .unwrap_or(bos_core::agents::DEFAULT_HEARTBEAT_INTERVAL_MS),
        }),
    };
    Ok(Agent {
        id: r.uuid("id")?,
        org_id: r.uuid("org_id")?,
        name: r.text("name")?,
        kind: r.parsed("kind", |s| AgentKind::parse(s).ok())?,
        provider: r.parsed("provider", |s| AgentProvider::parse(s).ok())?,
        platform_agent_id: r.opt_text("platform_agent_id")?,
        paused: r.i64("paused")? != 0,
        paused_at: r.opt_i64("paused_at")?,
        paused_by: r.opt_uuid("paused_by")?,
        paused_by_name: r.opt_text("paused_by_name")?,
        last_heartbeat_at: r.opt_i64("heartbeat_at")?,
        last,
        open_conversations: u32::try_from(r.i64("open_conversations")?).unwrap_or(u32::MAX),
        key_prefix: r.opt_text("key_prefix")?,
        created_at: r.i64("created_at")?,
    })
}

impl Store {
    /// Creates an agent and, in the same transaction, its API key of scope
    /// `agent` bound to it: an agent never exists without a way to report.
    pub async fn create_agent(
        &self,
        org: Uuid,
        a: &NewAgent,
        key: &AgentKey,
        now: Millis,
    ) -> Result<(Agent, ApiKey), StoreError> {
        let (a, key) = (a.clone(), key.clone());
        let id = new_id();
        let key_id = new_id();
        let scopes = ScopeSet::new(vec![bos_core::Scope::Agent])
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let key_name = format!("Agent: {}", a.name);
        let (a2, key2, key_name2, sc) = (a.clone(), key.clone(), key_name.clone(), scopes.to_db());
        let sealed = a
            .webhook_secret
            .as_deref()
            .map(|plain| self.keyring().seal(&agent_context(org, id), plain));
        write_db!(self, |db| async move {
            db.exec(
                q(
                    "insert into agents (org_id, id, name, kind, provider, platform_agent_id, \
                   webhook_secret, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(org)
                .bind(id)
                .bind(a2.name.as_str())
                .bind(a2.kind.as_str())
                .bind(a2.provider.as_str())
                .bind(a2.platform_agent_id.clone())
                .bind(sealed)
                .bind(now),
            )
            .await?;
            db.exec(
                q(
                    "insert into api_keys (id, org_id, name, display_prefix, key_hash, scopes, \
                   created_by, created_at, agent_id) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(key_id)
                .bind(org)
                .bind(key_name2.as_str())
                .bind(key2.display_prefix.as_str())
                .bind(crate::sql::Arg::Bytes(key2.key_hash.clone()))
                .bind(sc.as_str())
                .bind(key2.created_by)
                .bind(now)
                .bind(id),
            )
            .await?;
            Ok(())
        })?;
        let agent = Agent {
            id,
            org_id: org,
            name: a.name,
            kind: a.kind,
            provider: a.provider,
            platform_agent_id: a.platform_agent_id,
            paused: false,
            paused_at: None,
            paused_by: None,
            paused_by_name: None,
            last_heartbeat_at: None,
            last: None,
            open_conversations: 0,
            key_prefix: Some(key.display_prefix.clone()),
            created_at: now,
        };
        let api_key = ApiKey {
            id: key_id,
            org_id: org,
            name: key_name,
            display_prefix: key.display_prefix,
            scopes: vec!["agent".into()],
            created_by: key.created_by,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            agent_id: Some(id),
        };
        Ok((agent, api_key))
    }

    /// The organization's agents by name.
    pub async fn agents(&self, org: Uuid) -> Result<Vec<Agent>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "{AGENT_SELECT} where a.org_id = $1 order by a.name, a.id"
            ))
            .bind(org),
        )
        .await?;
        rows.iter().map(agent_row).collect()
    }

    /// One agent of the organization; `NotFound` for another's id.
    pub async fn agent(&self, org: Uuid, id: Uuid) -> Result<Agent, StoreError> {
        let rows = read_rows(
            self,
            q(format!("{AGENT_SELECT} where a.org_id = $1 and a.id = $2"))
                .bind(org)
                .bind(id),
        )
        .await?;
        rows.first().map(agent_row).ok_or(StoreError::NotFound)?
    }

    /// A system lookup for the public voice hooks: the agent named by the
    /// id in the URL, whatever its organization, with its webhook secret
    /// opened; `None` when there is no such agent or it has no secret. The
    /// caller still has to prove the delivery was signed with it.
    pub async fn agent_hook(&self, id: Uuid) -> Result<Option<AgentHook>, StoreError> {
        let rows = read_rows(
            self,
            q("select org_id, id, provider, webhook_secret from agents \
               where id = $1 and webhook_secret is not null")
            .bind(id),
        )
        .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let (org_id, id) = (r.uuid("org_id")?, r.uuid("id")?);
        let secret = self
            .keyring()
            .open(&agent_context(org_id, id), &r.text("webhook_secret")?)?;
        Ok(Some(AgentHook {
            org_id,
            id,
            provider: r.parsed("provider", |s| AgentProvider::parse(s).ok())?,
            secret,
        }))
    }

    /// Keeps an agent's latest heartbeat (the caller validated it).
    pub async fn agent_heartbeat(
        &self,
        org: Uuid,
        id: Uuid,
        h: &Heartbeat,
        at: Millis,
    ) -> Result<(), StoreError> {
        let h = h.clone();
        write_db!(self, |db| async move {
            let n = db
                .exec(
                    q(
                        "update agents set heartbeat_at = $3, heartbeat_status = $4, \
                       heartbeat_activity = $5, heartbeat_error = $6, call_started_at = $7, \
                       interval_ms = $8, updated_at = $3 where org_id = $1 and id = $2",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(at)
                    .bind(h.status.as_str())
                    .bind(h.activity.clone())
                    .bind(h.error.clone())
                    .bind(h.call_started_at)
                    .bind(h.interval_ms),
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    /// Pauses (with who and when) or resumes an agent. `Ok(false)` when it
    /// already was so: pausing twice keeps the first pause's who and when.
    pub async fn set_agent_paused(
        &self,
        org: Uuid,
        id: Uuid,
        paused: bool,
        by: Option<Uuid>,
        by_name: &str,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let by_name = by_name.to_string();
        write_db!(self, |db| async move {
            let n = if paused {
                db.exec(
                    q(
                        "update agents set paused = 1, paused_at = $3, paused_by = $4, \
                       paused_by_name = $5, updated_at = $3 \
                       where org_id = $1 and id = $2 and paused = 0",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(at)
                    .bind(by)
                    .bind(by_name.as_str()),
                )
                .await?
            } else {
                db.exec(
                    q(
                        "update agents set paused = 0, paused_at = null, paused_by = null, \
                       paused_by_name = null, updated_at = $3 \
                       where org_id = $1 and id = $2 and paused = 1",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(at),
                )
                .await?
            };
            if n > 0 {
                // The agent's stream says so, in the same write.
                let kind = if paused {
                    stream::StreamKind::Paused
                } else {
                    stream::StreamKind::Resumed
                };
                let detail = paused.then(|| by_name.clone());
                stream::append(db, org, id, kind, None, None, detail, at).await?;
            }
            if n == 0 {
                // Unchanged: either already so, or not this organization's.
                db.one(
                    q("select id from agents where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(id),
                )
                .await?;
                return Ok(false);
            }
            Ok(true)
        })
    }

    /// Makes `agent` the AI agent handling `conversation` (both the
    /// organization's); `NotFound` otherwise.
    pub async fn set_conversation_agent(
        &self,
        org: Uuid,
        conversation: Uuid,
        agent: Option<Uuid>,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            if let Some(a) = agent {
                db.one(
                    q("select id from agents where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(a),
                )
                .await?;
            }
            let n = db
                .exec(
                    q("update conversations set agent_id = $3 where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(conversation)
                        .bind(agent),
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }
}
