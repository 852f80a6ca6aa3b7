//! What the Command Center, Settings → Agents and the customer page read
//! and write about agents beyond the registry and the metrics: an agent's
//! latest interactions, a customer's interactions with any agent (across
//! the profiles merged into them), the live transcript snippets of the
//! conversations agents handle, the timeline line an interaction leaves on
//! its customer, and a fresh key for an existing agent (the old ones
//! revoked in the same write). Everything is scoped by organization.

use bos_core::{Millis, ScopeSet};
use uuid::Uuid;

use super::interactions::{interaction_row, COLS};
use super::{AgentKey, StoredInteraction};
use crate::engine::write_db;
use crate::sql::{q, read_rows, Db};
use crate::{new_id, ApiKey, Store, StoreError};

/// An interaction with the name of the agent that had it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileInteraction {
    pub interaction: StoredInteraction,
    pub agent_name: String,
}

/// One line of a live transcript snippet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetLine {
    /// `customer`, `agent`, `member` or `automation`.
    pub author_kind: String,
    pub author_name: String,
    pub body: String,
    pub at: Millis,
}

/// The latest lines of a conversation an agent is handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSnippet {
    pub conversation_id: Uuid,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub profile_id: Uuid,
    pub customer_name: String,
    pub open: bool,
    pub last_message_at: Millis,
    pub channel: String,
    /// Oldest first.
    pub lines: Vec<SnippetLine>,
}

fn interactions_with_names(
    rows: &[crate::sql::Row],
) -> Result<Vec<ProfileInteraction>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(ProfileInteraction {
                interaction: interaction_row(r)?,
                agent_name: r.text("agent_name")?,
            })
        })
        .collect()
}

/// The interaction's columns, qualified, for joins with `agents`.
fn cols_of(alias: &str) -> String {
    COLS.split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// An agent's latest interactions, newest first (at most `limit`).
    pub async fn agent_recent_interactions(
        &self,
        org: Uuid,
        agent: Uuid,
        limit: u32,
    ) -> Result<Vec<StoredInteraction>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {COLS} from agent_interactions where org_id = $1 and agent_id = $2 \
                 order by started_at desc, id desc limit {}",
                limit.min(500)
            ))
            .bind(org)
            .bind(agent),
        )
        .await?;
        rows.iter().map(interaction_row).collect()
    }

    /// A customer's interactions with any agent, newest first: those of
    /// every profile merged into the customer's root count.
    pub async fn profile_agent_interactions(
        &self,
        org: Uuid,
        profile: Uuid,
        limit: u32,
    ) -> Result<Vec<ProfileInteraction>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {}, a.name as agent_name from agent_interactions i \
                 join agents a on a.org_id = i.org_id and a.id = i.agent_id \
                 where i.org_id = $1 and i.profile_id in \
                   (select m.id from profiles m where m.org_id = $1 and m.root_id = \
                     (select p.root_id from profiles p where p.org_id = $1 and p.id = $2)) \
                 order by i.started_at desc, i.id desc limit {}",
                cols_of("i"),
                limit.min(200)
            ))
            .bind(org)
            .bind(profile),
        )
        .await?;
        interactions_with_names(&rows)
    }

    /// The conversations agents handle, latest message first, each with
    /// its last `lines` messages (at most `limit` conversations).
    pub async fn agent_snippets(
        &self,
        org: Uuid,
        limit: u32,
        lines: u32,
    ) -> Result<Vec<AgentSnippet>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select c.id, c.agent_id, a.name as agent_name, c.profile_id, \
                 p.display_name, p.primary_email, p.primary_phone, c.status, c.last_message_at, \
                 c.last_channel from conversations c \
                 join agents a on a.org_id = c.org_id and a.id = c.agent_id \
                 left join profiles p on p.org_id = c.org_id and p.id = c.profile_id \
                 where c.org_id = $1 and c.agent_id is not null \
                 order by c.last_message_at desc, c.id desc limit {}",
                limit.min(50)
            ))
            .bind(org),
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id = r.uuid("id")?;
            let name = [
                r.opt_text("display_name")?,
                r.opt_text("primary_email")?,
                r.opt_text("primary_phone")?,
            ]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "A customer".into());
            let msgs = read_rows(
                self,
                q(format!(
                    "select author_kind, author_name, body, created_at from messages \
                     where org_id = $1 and conversation_id = $2 \
                     order by created_at desc, id desc limit {}",
                    lines.clamp(1, 10)
                ))
                .bind(org)
                .bind(id),
            )
            .await?;
            let mut lines = msgs
                .iter()
                .map(|m| {
                    Ok(SnippetLine {
                        author_kind: m.text("author_kind")?,
                        author_name: m.text("author_name")?,
                        body: m.text("body")?,
                        at: m.i64("created_at")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            lines.reverse();
            out.push(AgentSnippet {
                conversation_id: id,
                agent_id: r.uuid("agent_id")?,
                agent_name: r.text("agent_name")?,
                profile_id: r.uuid("profile_id")?,
                customer_name: name,
                open: r.text("status")? == "open",
                last_message_at: r.i64("last_message_at")?,
                channel: r.text("last_channel")?,
                lines,
            });
        }
        Ok(out)
    }

    /// Writes the line an interaction leaves on its customer's timeline
    /// (on the profile's root), once per interaction: writing it again does
    /// nothing, so a retried report repairs a line a failure left unwritten.
    /// An interaction with no customer writes nothing.
    pub async fn agent_interaction_timeline(
        &self,
        org: Uuid,
        interaction: Uuid,
        summary: &str,
        data: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let (summary, data) = (summary.to_string(), data.to_string());
        write_db!(self, |db| async move {
            let i = db
                .one(
                    q(
                        "select i.profile_id, i.started_at, p.root_id from agent_interactions i \
                       left join profiles p on p.org_id = i.org_id and p.id = i.profile_id \
                       where i.org_id = $1 and i.id = $2",
                    )
                    .bind(org)
                    .bind(interaction),
                )
                .await?;
            let (Some(profile), Some(root)) = (i.opt_uuid("profile_id")?, i.opt_uuid("root_id")?)
            else {
                return Ok(());
            };
            db.exec(
                q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, \
                   summary, data, event_key) \
                   values ($1, $2, $3, $4, $5, 'agent_interaction', 'agent', $6, $7, $8) \
                   on conflict do nothing")
                .bind(org)
                .bind(new_id())
                .bind(profile)
                .bind(root)
                .bind(i.i64("started_at")?)
                .bind(summary.as_str())
                .bind(data.as_str())
                .bind(format!("agent_interaction:{interaction}")),
            )
            .await?;
            Ok(())
        })
    }

    /// Makes a new key of scope `agent` for an existing agent and revokes
    /// its other live keys in the same write (a lost key is replaced, never
    /// shown again).
    pub async fn rekey_agent(
        &self,
        org: Uuid,
        agent: Uuid,
        key: &AgentKey,
        now: Millis,
    ) -> Result<ApiKey, StoreError> {
        let key = key.clone();
        let key_id = new_id();
        let scopes = ScopeSet::new(vec![bos_core::Scope::Agent])
            .map_err(|e| StoreError::Other(e.to_string()))?
            .to_db();
        let k2 = key.clone();
        let name = write_db!(self, |db| async move {
            let a = db
                .one(
                    q("select name from agents where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(agent),
                )
                .await?;
            let name = format!("Agent: {}", a.text("name")?);
            db.exec(
                q("update api_keys set revoked_at = $3 \
                   where org_id = $1 and agent_id = $2 and revoked_at is null")
                .bind(org)
                .bind(agent)
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
                .bind(name.as_str())
                .bind(k2.display_prefix.as_str())
                .bind(crate::sql::Arg::Bytes(k2.key_hash.clone()))
                .bind(scopes.as_str())
                .bind(k2.created_by)
                .bind(now)
                .bind(agent),
            )
            .await?;
            Ok(name)
        })?;
        Ok(ApiKey {
            id: key_id,
            org_id: org,
            name,
            display_prefix: key.display_prefix,
            scopes: vec!["agent".into()],
            created_by: key.created_by,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            agent_id: Some(agent),
        })
    }
}
